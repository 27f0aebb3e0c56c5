/**
 * The backup CronJob, the drill CronJob and the restore Job of deploy/kubernetes,
 * run as a kubelet would run them, minus the container: the objects come from
 * `kubectl kustomize deploy/kubernetes/backup` and the restore Job's file; each
 * container's args (with Kubernetes' $(VAR) expansion) and env run `aegis` with
 * its volumes as local folders (the ConfigMap's keys as files, the cache claim
 * shared between Jobs), the Secret and ConfigMap the manifests name as given
 * here, and S3 credentials standing in for IRSA. Real PostgreSQL
 * (AEGIS_TEST_DATABASE_URL) and S3 (moto, AEGIS_TEST_S3_ENDPOINT). What cannot
 * run here: the image and a cluster; the manifests' schema is checked in
 * test/kubernetes-manifests.test.ts.
 */
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { openDb, type Db } from '../src/db/index.js';
import { publicKeyPem } from '../src/signing/keys.js';
import { S3Store } from '../src/store/index.js';
import { seedRegistry, tableChecksums, testKeys } from '../src/test-support/backup.js';
import { tempDir } from '../src/test-support/fs.js';
import { aegisContainers, BACKUP_DIR, expandArgs, manifestObjects, RESTORE_JOB, type AegisContainer, type K8sObject } from '../src/test-support/kubernetes.js';
import { SERVICES_HINT } from '../src/test-support/prometheus.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(REPO, 'bin', 'aegis.js');
const ADMIN_URL = process.env.AEGIS_TEST_DATABASE_URL;
const ENDPOINT = process.env.AEGIS_TEST_S3_ENDPOINT;
const CREDENTIALS = { accessKeyId: 'test', secretAccessKey: 'test' };
/** What IRSA gives a pod on EKS, here pointing at moto. */
const IRSA_ENV = { AEGIS_S3_ENDPOINT: ENDPOINT ?? '', AWS_ACCESS_KEY_ID: CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: CREDENTIALS.secretAccessKey, AWS_REGION: 'us-east-1', AWS_EC2_METADATA_DISABLED: 'true' };
const BUCKET = `aegis-k8s-itest-${randomBytes(4).toString('hex')}`;
const keys = testKeys();

let admin: pg.Client;
let work: Awaited<ReturnType<typeof tempDir>>;
let source: { db: Db; url: string };
let store: S3Store;
let rendered: K8sObject[];
const databases: string[] = [];

/** The ConfigMaps and Secret the manifests name, as a cluster operator would create them. */
let secrets: Record<string, Record<string, string>>;
let configMaps: Record<string, Record<string, string>>;
/** Persistent volume claims outlive a Job: one folder per claim for the whole file. */
const claims = new Map<string, string>();

interface JobRun {
  code: number;
  stdout: string;
  stderr: string;
  json: Record<string, unknown>;
}

/**
 * Runs a container of the manifests: its args and env (secretRef/configMapRef
 * from the maps above), each volume a local folder, paths under a mount point
 * rewritten to that folder. Nothing of this test process's environment leaks in
 * but PATH (for pg_dump) and the IRSA stand-in.
 */
async function runContainer(c: AegisContainer, envOverrides: Record<string, string> = {}): Promise<JobRun> {
  const pod = await mkdtempIn(work.path, `${c.owner.metadata.name}-`);
  const mounts: { mountPath: string; dir: string }[] = [];
  for (const m of c.container.volumeMounts ?? []) {
    const v = c.pod.volumes!.find((x) => x.name === m.name)!;
    let dir: string;
    if (v.persistentVolumeClaim) {
      const claim = v.persistentVolumeClaim.claimName;
      if (!claims.has(claim)) claims.set(claim, await mkdtempIn(work.path, `pvc-${claim}-`));
      dir = claims.get(claim)!;
    } else if (v.configMap) {
      const data = configMaps[v.configMap.name];
      if (!data) throw new Error(`ConfigMap ${v.configMap.name} (volume ${v.name}) is not one the docs tell operators to create`);
      dir = join(pod, `cm-${v.name}`);
      await mkdir(dir);
      for (const [k, val] of Object.entries(data)) await writeFile(join(dir, k), val);
    } else {
      expect(v.emptyDir, `volume ${v.name}: emptyDir, configMap or a claim`).toBeDefined();
      dir = join(pod, `empty-${v.name}`);
      await mkdir(dir);
    }
    mounts.push({ mountPath: m.mountPath, dir });
  }
  const local = (value: string) => {
    const m = mounts.find((x) => value === x.mountPath || value.startsWith(`${x.mountPath}/`));
    return m ? m.dir + value.slice(m.mountPath.length) : value;
  };
  const env: Record<string, string> = {};
  for (const from of (c.container.envFrom ?? []) as { secretRef?: { name: string }; configMapRef?: { name: string } }[]) {
    const data = from.secretRef ? secrets[from.secretRef.name] : configMaps[from.configMapRef!.name];
    if (!data) throw new Error(`envFrom ${JSON.stringify(from)} names nothing the docs tell operators to create`);
    Object.assign(env, data);
  }
  for (const e of c.container.env ?? []) env[e.name] = expandArgs([e.value ?? ''], env)[0]!;
  Object.assign(env, envOverrides);
  for (const [k, v] of Object.entries(env)) env[k] = local(v);
  const tmp = mounts.find((m) => m.mountPath === '/tmp');
  const args = expandArgs(c.args, env).map(local);
  const childEnv = { ...env, ...IRSA_ENV, PATH: process.env.PATH ?? '', ...(tmp ? { TMPDIR: tmp.dir } : {}) };
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: childEnv, cwd: pod });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      let json: Record<string, unknown> = {};
      try {
        json = JSON.parse(stdout) as Record<string, unknown>;
      } catch {
        // not JSON: the assertions show stdout
      }
      resolve({ code: code ?? -1, stdout, stderr, json });
    });
  });
}

async function mkdtempIn(parent: string, prefix: string): Promise<string> {
  const dir = join(parent, `${prefix}${randomBytes(3).toString('hex')}`);
  await mkdir(dir, { recursive: true });
  return dir;
}

function urlFor(database: string): string {
  const u = new URL(ADMIN_URL!);
  u.pathname = `/${database}`;
  return u.toString();
}

const container = (kind: string, name: string): AegisContainer => {
  const c = aegisContainers(rendered).find((x) => x.owner.kind === kind && x.owner.metadata.name === name);
  if (!c) throw new Error(`no ${kind}/${name} in the rendered manifests`);
  return c;
};
const checkDetail = (r: JobRun, name: string) => ((r.json.checks ?? (r.json.restore as { checks?: unknown } | undefined)?.checks) as { name: string; ok?: boolean; status?: string; detail: string }[] | undefined)?.find((c) => c.name === name);

beforeAll(async () => {
  if (!ADMIN_URL || !ENDPOINT) throw new Error(`AEGIS_TEST_DATABASE_URL and AEGIS_TEST_S3_ENDPOINT must be set. ${SERVICES_HINT}`);
  const kustomized = await promisify(execFile)('kubectl', ['kustomize', BACKUP_DIR], { maxBuffer: 16 << 20 }).catch((err: Error) => {
    throw new Error(`kubectl kustomize ${BACKUP_DIR} failed (is kubectl installed?): ${err.message}`, { cause: err });
  });
  rendered = [
    ...YAML.parseAllDocuments(kustomized.stdout).map((d) => ({ ...(d.toJS() as Omit<K8sObject, 'file'>), file: BACKUP_DIR })),
    ...manifestObjects().filter((o) => o.file === RESTORE_JOB),
  ];
  work = await tempDir('aegis-k8s-it-');
  admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  const name = `aegis_k8s_${randomBytes(4).toString('hex')}`;
  await admin.query(`CREATE DATABASE ${name}`);
  databases.push(name);
  store = new S3Store({ bucket: BUCKET, prefix: 'aegis/prod', endpoint: ENDPOINT, credentials: CREDENTIALS });
  await store.client.send(new CreateBucketCommand({ Bucket: BUCKET }));
  source = { url: urlFor(name), db: await openDb({ url: urlFor(name) }) };
  await seedRegistry(source.db, store, keys.privateKey, 6);
  // docs/backup-restore.md: Secret aegis-db, ConfigMaps aegis-store and aegis-trust (the key beside trust.yaml).
  secrets = { 'aegis-db': { AEGIS_DATABASE_URL: source.url } };
  configMaps = {
    'aegis-store': { AEGIS_STORE_URI: store.uri },
    'aegis-trust': {
      'trust.yaml': YAML.stringify({ apiVersion: 'aegis.dev/v1', kind: 'TrustPolicy', keys: [{ id: 'release', publicKey: 'release.pub.pem' }] }),
      'release.pub.pem': publicKeyPem(keys.trust.kind === 'publicKey' ? keys.trust.key : (undefined as never)),
    },
  };
}, 60_000);

afterAll(async () => {
  await source?.db.close();
  for (const d of databases) await admin?.query(`DROP DATABASE IF EXISTS ${d} WITH (FORCE)`).catch(() => undefined);
  // The drill's scratch databases are dropped by the drill itself.
  await admin?.end();
  await work?.cleanup();
});

describe('deploy/kubernetes Jobs, run as a kubelet would (no container, no cluster)', () => {
  let backupUri: string;

  it('CronJob aegis-db-backup backs the database up to the store, records a scheduled run and prunes', async () => {
    const r = await runContainer(container('CronJob', 'aegis-db-backup'));
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.json).toMatchObject({ ok: true });
    backupUri = r.json.uri as string;
    // Retention ran with the CronJob's policy (the only backup is kept, as the newest one always is).
    expect(r.json.pruned).toMatchObject({ dryRun: false, keep: [{ id: (r.json.manifest as { id: string }).id }], remove: [] });
    expect(backupUri).toMatch(new RegExp(`^${store.uri}/db-backups/`));
    const runs = await source.db.query<{ trigger: string; status: string }>('SELECT trigger, status FROM backup_runs ORDER BY id');
    expect(runs.rows).toEqual([{ trigger: 'schedule', status: 'succeeded' }]);
  });

  it('CronJob aegis-db-drill restores the newest backup into a scratch database and passes every check, filling the cache volume', async () => {
    const r = await runContainer(container('CronJob', 'aegis-db-drill'));
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.json).toMatchObject({ ok: true, backup: { new: false } });
    expect(checkDetail(r, 'model-archives')?.detail).toMatch(/6 .*signature verified$/);
    expect(await readdir(claims.get('aegis-signature-cache')!, { recursive: true })).toContain('verified-signatures');
  });

  it('Job aegis-db-restore with ARTIFACT_URI set to the backup brings lost rows back, checking signatures from the cache volume', async () => {
    const before = await tableChecksums(source.db);
    // The loss: two registered versions deleted by mistake (the database still holds data, hence --force in the Job).
    await source.db.query("DELETE FROM model_versions WHERE version IN ('1.4', '1.5')");
    expect((await tableChecksums(source.db))['public.model_versions']!.rows).toBe(before['public.model_versions']!.rows - 2);
    const restore = container('Job', 'aegis-db-restore');
    const r = await runContainer(restore, { ARTIFACT_URI: backupUri });
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.json).toMatchObject({ ok: true, target: { engine: 'postgres' } });
    expect(checkDetail(r, 'model-archives')?.detail).toMatch(/6 of them verified by an earlier check/);
    const after = await tableChecksums(source.db);
    for (const table of Object.keys(before).filter((t) => !['public.backup_runs', 'public.schema_migrations'].includes(t))) expect(after[table], table).toEqual(before[table]);
  });

  it('Job aegis-db-restore with ARTIFACT_URI=latest restores the newest backup', async () => {
    const r = await runContainer(container('Job', 'aegis-db-restore'), { ARTIFACT_URI: 'latest' });
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.json).toMatchObject({ ok: true, backup: { uri: backupUri } });
  });

  it('Job aegis-db-restore applied unedited fails before touching the database, and says what to set', async () => {
    const before = await tableChecksums(source.db);
    const r = await runContainer(container('Job', 'aegis-db-restore'));
    expect(r.code).not.toBe(0);
    expect(r.stderr + r.stdout).toMatch(/SET-ME/);
    expect(await tableChecksums(source.db)).toEqual(before);
  });

  it('Job aegis-db-restore with a wrong ARTIFACT_URI fails, names it, and leaves the database alone', async () => {
    const before = await tableChecksums(source.db);
    const r = await runContainer(container('Job', 'aegis-db-restore'), { ARTIFACT_URI: `${store.uri}/db-backups/19990101T000000Z` });
    expect(r.code).not.toBe(0);
    expect(r.stderr + r.stdout).toContain('19990101T000000Z');
    expect(await tableChecksums(source.db)).toEqual(before);
  });
});
