/**
 * The Kubernetes manifests under deploy/kubernetes (backup and drill CronJobs, the
 * restore Job): each object is valid against the Kubernetes API schema
 * (kubernetes-models; offline, since `kubectl apply --dry-run` needs an API server),
 * what a pod mounts and runs as is wired up (volumes, ServiceAccount, claims,
 * image), the pods run unprivileged on a read-only root, and every `aegis`
 * command line in them is one the CLI accepts. test/kubernetes-jobs.itest.ts
 * runs those command lines against a real PostgreSQL and S3.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { CronJob } from 'kubernetes-models/batch/v1/CronJob';
import { Job } from 'kubernetes-models/batch/v1/Job';
import { PersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { buildProgram } from '../src/cli/main.js';
import { aegisContainers, BACKUP_DIR, KUSTOMIZATION, manifestObjects, RESTORE_JOB } from '../src/test-support/kubernetes.js';
import { typeErrors } from '../src/test-support/typecheck.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const PACKAGE_VERSION = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;

const objects = manifestObjects();
const kustomization = YAML.parse(readFileSync(KUSTOMIZATION, 'utf8')) as { resources: string[]; namespace: string; images: { name: string; newName: string; newTag: string }[] };

/**
 * The kinds deploy/kubernetes holds: kubernetes-models' class (runtime schema
 * check) and its API type's module and name (the compile-time check of fields).
 */
const KINDS: Record<string, { model: new (o: never) => { validate(): void }; module: string; type: string }> = {
  'batch/v1 CronJob': { model: CronJob, module: 'kubernetes-models/batch/v1/CronJob', type: 'ICronJob' },
  'batch/v1 Job': { model: Job, module: 'kubernetes-models/batch/v1/Job', type: 'IJob' },
  'v1 ServiceAccount': { model: ServiceAccount, module: 'kubernetes-models/v1/ServiceAccount', type: 'IServiceAccount' },
  'v1 PersistentVolumeClaim': { model: PersistentVolumeClaim, module: 'kubernetes-models/v1/PersistentVolumeClaim', type: 'IPersistentVolumeClaim' },
};
function kindOf(apiVersion: string, kind: string): (typeof KINDS)[string] {
  const k = KINDS[`${apiVersion} ${kind}`];
  if (!k) throw new Error(`no schema check for ${apiVersion} ${kind}: add it to KINDS`);
  return k;
}
function modelFor(apiVersion: string, kind: string): new (o: unknown) => { validate(): void } {
  return kindOf(apiVersion, kind).model as new (o: unknown) => { validate(): void };
}

/** Parses argv with the real CLI tree, without running the command: what it does not know. */
function cliProblems(argv: string[]): string[] {
  let cmd: Command = buildProgram();
  let i = 0;
  while (i < argv.length) {
    const sub = cmd.commands.find((c) => c.name() === argv[i] || c.aliases().includes(argv[i]!));
    if (!sub) break;
    cmd = sub;
    i++;
  }
  if (cmd.commands.length > 0) return [`"${argv.slice(0, i).join(' ')}" needs a subcommand`];
  const { unknown } = cmd.parseOptions(argv.slice(i));
  return unknown.map((u) => `${argv.slice(0, i).join(' ')}: unknown option or argument ${u}`);
}

describe('deploy/kubernetes', () => {
  it('holds the objects the runbook names: the backup and drill CronJobs and the restore Job', () => {
    const names = objects.map((o) => `${o.kind}/${o.metadata.name}`);
    expect(names).toEqual(expect.arrayContaining(['CronJob/aegis-db-backup', 'CronJob/aegis-db-drill', 'Job/aegis-db-restore', 'ServiceAccount/aegis-backup', 'PersistentVolumeClaim/aegis-signature-cache']));
    // Everything in the backup folder is in its kustomization (nothing silently left out of `kubectl apply -k`).
    const inFolder = objects.filter((o) => o.file.startsWith(BACKUP_DIR)).map((o) => o.file.slice(BACKUP_DIR.length + 1));
    expect([...new Set(inFolder)].sort()).toEqual([...kustomization.resources].sort());
    expect(kustomization.namespace).toBe('aegis');
    expect(objects.find((o) => o.file === RESTORE_JOB)?.metadata.namespace).toBe('aegis');
  });

  it.each(objects.map((o) => ({ name: `${o.kind}/${o.metadata.name}`, o })))('$name is valid against the Kubernetes API schema', ({ o }) => {
    const { file: _file, ...body } = o;
    const Model = modelFor(o.apiVersion, o.kind);
    expect(() => new Model(body).validate()).not.toThrow();
  });

  it('no object has a field the Kubernetes API does not know (kubectl apply refuses them; validate() above does not)', () => {
    const values = objects.map((o) => {
      const { file: _file, ...value } = o;
      const k = kindOf(o.apiVersion, o.kind);
      return { type: { module: k.module, name: k.type }, value, label: `${o.kind}/${o.metadata.name}` };
    });
    // The check can fail: a misspelt container field (volumeMount) is an error.
    const cron = values.find((v) => v.label === 'CronJob/aegis-db-backup')!;
    const typo = structuredClone(cron.value) as { spec: { jobTemplate: { spec: { template: { spec: { containers: Record<string, unknown>[] } } } } } };
    typo.spec.jobTemplate.spec.template.spec.containers[0]!.volumeMount = [];
    const errors = typeErrors([...values, { ...cron, value: typo, label: 'typo' }]);
    expect(errors.typo!.join('\n')).toMatch(/volumeMount/);
    delete errors.typo;
    expect(errors).toEqual(Object.fromEntries(values.map((v) => [v.label, []])));
  }, 30_000);

  it('the schema check is not a formality: a wrongly typed field is refused', () => {
    const cron = objects.find((o) => o.kind === 'CronJob')!;
    const { file: _file, ...body } = cron;
    const Model = modelFor('batch/v1', 'CronJob');
    expect(() => new Model({ ...body, spec: { ...(body.spec as object), schedule: 5 } }).validate()).toThrow(/schedule/);
  });

  const containers = aegisContainers(objects);

  it.each(containers.map((c) => ({ name: `${c.owner.kind}/${c.owner.metadata.name}`, c })))('$name: its aegis command line is one the CLI accepts', ({ c }) => {
    expect(c.args[0], 'args start with the aegis command (the image entrypoint is aegis)').toMatch(/^[a-z]/);
    expect(cliProblems(c.args)).toEqual([]);
    expect(c.args, 'CI and log collectors read the report').toContain('--json');
  });

  it.each(containers.map((c) => ({ name: `${c.owner.kind}/${c.owner.metadata.name}`, c })))('$name: mounts, ServiceAccount, claims and image are wired up, and the pod runs unprivileged', ({ c }) => {
    const volumes = new Map(c.pod.volumes?.map((v) => [v.name, v]) ?? []);
    for (const m of c.container.volumeMounts ?? []) expect(volumes.has(m.name), `volume ${m.name}`).toBe(true);
    for (const v of volumes.values()) {
      expect(c.container.volumeMounts?.some((m) => m.name === v.name), `volume ${v.name} is mounted`).toBe(true);
      if (v.persistentVolumeClaim) expect(objects.some((o) => o.kind === 'PersistentVolumeClaim' && o.metadata.name === v.persistentVolumeClaim!.claimName)).toBe(true);
    }
    expect(objects.some((o) => o.kind === 'ServiceAccount' && o.metadata.name === c.pod.serviceAccountName)).toBe(true);
    // A read-only root: whatever the CLI writes goes to a mounted folder.
    expect(c.container.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
    expect(c.pod.securityContext).toMatchObject({ runAsNonRoot: true });
    const mounted = (path: string) => (c.container.volumeMounts ?? []).some((m) => path === m.mountPath || path.startsWith(`${m.mountPath}/`));
    const env = new Map((c.container.env ?? []).map((e) => [e.name, e.value]));
    expect(mounted(env.get('AEGIS_HOME') ?? '/nowhere'), 'AEGIS_HOME is on a volume').toBe(true);
    if (env.has('AEGIS_CACHE_DIR')) expect(mounted(env.get('AEGIS_CACHE_DIR')!)).toBe(true);
    expect(mounted('/tmp')).toBe(true);
    for (const a of c.args.filter((x) => x.startsWith('/'))) expect(mounted(a), `${a} is on a volume`).toBe(true);
    // The database and store come from the Secret and ConfigMap the docs name.
    expect(c.container.envFrom).toEqual(expect.arrayContaining([{ secretRef: { name: 'aegis-db' } }, { configMapRef: { name: 'aegis-store' } }]));
    expect(c.restartPolicy).toBe('Never');
    // One image for the whole folder: kustomize sets it on the CronJobs; the standalone Job names the same.
    const image = kustomization.images.find((i) => i.name === 'aegis')!;
    expect(image.newTag).toBe(PACKAGE_VERSION);
    if (c.owner.file === RESTORE_JOB) expect(c.container.image).toBe(`${image.newName}:${image.newTag}`);
    else expect(c.container.image).toBe('aegis');
  });

  it('the pods run as the image\'s user, with the image\'s AEGIS_HOME (Dockerfile)', () => {
    const dockerfile = readFileSync(join(REPO, 'Dockerfile'), 'utf8');
    const user = /^USER (\d+):(\d+)$/m.exec(dockerfile);
    const home = /AEGIS_HOME=(\S+)/.exec(dockerfile);
    expect(user && home, 'Dockerfile sets USER uid:gid and AEGIS_HOME').toBeTruthy();
    for (const c of containers) {
      expect(c.pod.securityContext).toMatchObject({ runAsUser: Number(user![1]), runAsGroup: Number(user![2]) });
      expect(c.container.env).toContainEqual({ name: 'AEGIS_HOME', value: home![1] });
    }
  });

  it('the restore Job takes the backup from ARTIFACT_URI (the seed runbook edits that); as shipped it names none', () => {
    const restore = containers.find((c) => c.owner.file === RESTORE_JOB)!;
    expect(restore.args.slice(0, 4)).toEqual(['db', 'restore', '--from', '$(ARTIFACT_URI)']);
    const shipped = restore.container.env?.find((e) => e.name === 'ARTIFACT_URI')?.value;
    // Not `latest`, an id (UTC timestamp) or a URI: an unedited apply (kubectl apply -R, a GitOps sync) restores nothing.
    expect(shipped).toMatch(/^SET-ME/);
  });
});
