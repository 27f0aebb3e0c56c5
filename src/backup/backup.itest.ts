/**
 * Backup and restore on a real PostgreSQL (AEGIS_TEST_DATABASE_URL, an admin
 * connection: each test makes its own databases and they are dropped after)
 * with backups and model archives in S3 (moto, AEGIS_TEST_S3_ENDPOINT).
 * No server → every test fails with the reason (never skipped).
 */
import { CreateBucketCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { currentSchemaVersion, LATEST_SCHEMA_VERSION, MEMORY, MIGRATIONS, openDb, openDbUnmigrated, type Db } from '../db/index.js';
import { isAegisError } from '../errors.js';
import { publicKeyPem } from '../signing/keys.js';
import { S3Store } from '../store/index.js';
import { seedRegistry, sequenceStates, tableChecksums, testKeys } from '../test-support/backup.js';
import { okCli, runCli } from '../test-support/cli.js';
import { tempDir } from '../test-support/fs.js';
import { killWhenStalled } from '../test-support/kill.js';
import { readAll } from '../test-support/store.js';
import { runBackup } from './backup.js';
import { listBackups, resolveBackup } from './catalog.js';
import { postgresScratch, runDrill } from './drill.js';
import { fetchVerifiedDump, registryRowsFromDump, runRestore } from './restore.js';
import { registryRows } from './checks.js';
import { findPgTool } from './pgtools.js';
import type { BackupFormat, CompleteBackup } from './types.js';

const ADMIN_URL = process.env.AEGIS_TEST_DATABASE_URL;
const ENDPOINT = process.env.AEGIS_TEST_S3_ENDPOINT ?? 'http://127.0.0.1:5077';
const CREDENTIALS = { accessKeyId: process.env.AWS_ACCESS_KEY_ID ?? 'test', secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY ?? 'test' };
const S3_ENV = { AEGIS_S3_ENDPOINT: ENDPOINT, AWS_ACCESS_KEY_ID: CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: CREDENTIALS.secretAccessKey, AWS_EC2_METADATA_DISABLED: 'true' };
const BUCKET = `aegis-backup-itest-${randomBytes(4).toString('hex')}`;
const KILL_CHILD = fileURLToPath(new URL('../test-support/backup-kill-child.ts', import.meta.url));
const keys = testKeys();

let admin: pg.Client | undefined;
const created: string[] = [];
const open: Db[] = [];
let n = 0;

function urlFor(database: string): string {
  const u = new URL(ADMIN_URL!);
  u.pathname = `/${database}`;
  return u.toString();
}

async function freshDatabase(): Promise<string> {
  const name = `aegis_bk_${randomBytes(4).toString('hex')}`;
  await admin!.query(`CREATE DATABASE ${name}`);
  created.push(name);
  return urlFor(name);
}

/** A migrated PostgreSQL database seeded with a registry whose archives are in `store`. */
async function seededPostgres(store: S3Store): Promise<{ db: Db; url: string }> {
  const url = await freshDatabase();
  const db = await openDb({ url });
  open.push(db);
  await seedRegistry(db, store, keys.privateKey, 6);
  return { db, url };
}

async function emptyPostgres(): Promise<{ db: Db; url: string }> {
  const url = await freshDatabase();
  const db = await openDbUnmigrated({ url });
  open.push(db);
  return { db, url };
}

function freshStore(): S3Store {
  return new S3Store({ bucket: BUCKET, prefix: `t${n++}`, endpoint: ENDPOINT, credentials: CREDENTIALS });
}

async function errorOf(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (err) {
    if (isAegisError(err)) return { code: err.code, message: err.message };
    return { code: `not an AegisError: ${(err as Error).stack}`, message: '' };
  }
  return { code: 'no error', message: '' };
}

function restore(backup: CompleteBackup, target: { db: Db; url?: string }, store: S3Store, force = false) {
  return runRestore({ backup, target, archives: { trust: keys.trust, store }, force });
}

async function userTableCount(db: Db): Promise<number> {
  const r = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')");
  return r.rows[0]!.n;
}

beforeAll(async () => {
  if (!ADMIN_URL) {
    throw new Error('AEGIS_TEST_DATABASE_URL is not set: start PostgreSQL with `scripts/services.sh` before the integration tests');
  }
  const client = new pg.Client({ connectionString: ADMIN_URL, connectionTimeoutMillis: 10_000 });
  try {
    await client.connect();
  } catch (err) {
    throw new Error(`PostgreSQL does not answer at AEGIS_TEST_DATABASE_URL (${(err as Error).message}); run scripts/services.sh`, { cause: err });
  }
  admin = client;
  const answer = await fetch(ENDPOINT, { signal: AbortSignal.timeout(5000) }).then(
    (r) => `HTTP ${r.status}`,
    (err: unknown) => `no answer (${(err as Error).message})`,
  );
  expect(answer, `the S3 test server at ${ENDPOINT} (moto) does not answer: run scripts/services.sh`).toMatch(/^HTTP 200/);
  await freshStore().client.send(new CreateBucketCommand({ Bucket: BUCKET }));
});

afterEach(async () => {
  for (const db of open.splice(0)) await db.close().catch(() => undefined);
});

afterAll(async () => {
  if (!admin) return;
  for (const name of created) await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.end();
});

describe('PostgreSQL → PostgreSQL', () => {
  it.each<[BackupFormat, string]>([
    ['pg_dump-custom', 'dump.pgdump'],
    ['aegis-logical', 'dump.sql.gz'],
  ])('round-trips every row of every table through S3 (%s)', async (format, dumpName) => {
    const store = freshStore();
    const source = await seededPostgres(store);
    const made = await runBackup({ source, store, format });
    expect(made.manifest).toMatchObject({ format, engine: 'postgres', schemaVersion: LATEST_SCHEMA_VERSION, dump: { name: dumpName } });
    expect(made.manifest.serverVersion).toMatch(/^\d+\.\d+/);
    if (format === 'pg_dump-custom') expect(made.manifest.tool).toMatch(/^pg_dump \(PostgreSQL\) \d+/);
    expect(made.manifest.tables).toMatchObject({ 'public.model_versions': 6, 'public.models': 2 });

    const target = await emptyPostgres();
    const report = await restore(await resolveBackup(made.manifest.id, store), target, store);
    expect(report.checks.map((c) => `${c.name}:${c.status}`)).toEqual(['dump-integrity:passed', 'row-counts:passed', 'model-archives:passed', 'control-plane-health:skipped']);
    expect(report.ok).toBe(true);
    expect(await tableChecksums(target.db)).toEqual(await tableChecksums(source.db));
    expect(await sequenceStates(target.db)).toEqual(await sequenceStates(source.db));
    await expect(target.db.query('UPDATE audit_log SET actor = $1', ['x'])).rejects.toThrow(/append-only/);
  });

  it('pg_dump-custom: the archive check runs beside pg_restore over the dump\'s registry rows (counted once the database holds the same rows) and still names a bad signature and a missing archive', async () => {
    const store = freshStore();
    const source = await seededPostgres(store);
    const made = await runBackup({ source, store, format: 'pg_dump-custom' });
    const backup = await resolveBackup(made.manifest.id, store);
    // The registry rows read from the dump are the database's, field for field.
    const dump = await fetchVerifiedDump(backup);
    try {
      const rows = await registryRowsFromDump(findPgTool('pg_restore'), dump.path, 'test dump');
      expect(rows.map((r) => `${r.name}@${r.version}`)).toEqual(['fraud@1.0', 'churn@1.1', 'fraud@1.2', 'churn@1.3', 'fraud@1.4', 'churn@1.5']);
      expect(rows).toEqual(await registryRows(source.db));
    } finally {
      await dump.cleanup();
    }
    const ok = await restore(backup, await emptyPostgres(), store);
    expect(ok.ok).toBe(true);
    expect(ok.timings).toMatchObject({ archiveCheckOverlapped: true });
    // Damage the store after the backup: one signature replaced by another archive's, one archive gone.
    const keyOf = async (version: string) =>
      (await source.db.query<{ archive_uri: string }>('SELECT archive_uri FROM model_versions WHERE version = $1', [version])).rows[0]!.archive_uri.replace(`${store.uri}/`, '');
    const [k1, k2, k3] = [await keyOf('1.1'), await keyOf('1.2'), await keyOf('1.3')];
    await store.put(`${k1}.sig`, await readAll(await store.get(`${k2}.sig`)));
    await store.delete(k3);
    const bad = await restore(backup, await emptyPostgres(), store);
    expect(bad.timings).toMatchObject({ archiveCheckOverlapped: true });
    expect(bad.ok).toBe(false);
    const check = bad.checks.find((c) => c.name === 'model-archives')!;
    expect(check.status).toBe('failed');
    expect(check.problems!.join('\n')).toMatch(/churn@1\.1.*(signature|SIGNATURE)/s);
    expect(check.problems!.join('\n')).toMatch(/churn@1\.3.*archive missing/s);
  });

  it('pg_dump-custom: when pg_restore fails, the early archive check is stopped and awaited: the error is RESTORE_FAILED, no pg_restore is left running, the downloaded dump is gone', async () => {
    const store = freshStore();
    const source = await seededPostgres(store);
    const made = await runBackup({ source, store, format: 'pg_dump-custom' });
    const work = await tempDir('aegis-restore-fail-');
    try {
      // pg_restore for the early check's registry read (--table) works, but is slow to finish; the load itself fails.
      const real = findPgTool('pg_restore');
      const wrapper = join(work.path, 'pg_restore');
      await writeFile(
        wrapper,
        `#!/bin/sh\ncase "$*" in\n  *--version*) exec "${real}" "$@";;\n  *--table=models*) "${real}" "$@"; sleep 3;;\n  *) sleep 0.5; echo "pg_restore: error: could not connect (test)" >&2; exit 1;;\nesac\n`,
        { mode: 0o755 },
      );
      const dumps = join(work.path, 'downloads');
      await mkdir(dumps);
      const target = await emptyPostgres();
      const started = performance.now();
      const err = await errorOf(
        runRestore({ backup: await resolveBackup(made.manifest.id, store), target, archives: { trust: keys.trust, store }, tools: { pgRestore: wrapper }, workDir: dumps }),
      );
      expect(err.code).toBe('RESTORE_FAILED');
      expect(err.message).toMatch(/could not connect \(test\)/);
      expect(performance.now() - started).toBeLessThan(30_000);
      // Nothing of it runs on, and the dump downloaded from S3 was removed after the early check had stopped.
      const running = spawnSync('pgrep', ['-f', dumps], { encoding: 'utf8' });
      expect(running.stdout.trim()).toBe('');
      expect(await readdir(dumps)).toEqual([]);
    } finally {
      await work.cleanup();
    }
  });

  it('refuses a dump with one byte changed, before touching the target', async () => {
    const store = freshStore();
    const made = await runBackup({ source: await seededPostgres(store), store });
    const key = `${store.base}db-backups/${made.manifest.id}/dump.pgdump`;
    const body = await readAll((await store.get(`db-backups/${made.manifest.id}/dump.pgdump`)) as never);
    body[Math.floor(body.length * 0.6)]! ^= 0x20;
    await store.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body }));
    const target = await emptyPostgres();
    const e = await errorOf(restore(await resolveBackup(made.manifest.id, store), target, store));
    expect(e.code).toBe('BACKUP_CORRUPT');
    expect(e.message).toMatch(/SHA-256/);
    expect(await userTableCount(target.db)).toBe(0);
  });

  it('refuses a truncated dump', async () => {
    const store = freshStore();
    const made = await runBackup({ source: await seededPostgres(store), store });
    const k = `db-backups/${made.manifest.id}/dump.pgdump`;
    const body = await readAll((await store.get(k)) as never);
    await store.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: `${store.base}${k}`, Body: body.subarray(0, body.length - 1000) }));
    expect((await listBackups(store)).complete).toEqual([]);
    expect((await errorOf(resolveBackup(made.manifest.id, store))).code).toBe('BACKUP_INCOMPLETE');
    const target = await emptyPostgres();
    const backup: CompleteBackup = { id: made.manifest.id, manifest: made.manifest, location: made.location };
    const e = await errorOf(restore(backup, target, store));
    expect(e.code).toBe('BACKUP_CORRUPT');
    expect(e.message).toMatch(/truncated/);
    expect(await userTableCount(target.db)).toBe(0);
  });

  it('ignores a backup whose manifest is missing', async () => {
    const store = freshStore();
    const made = await runBackup({ source: await seededPostgres(store), store });
    await store.delete(`db-backups/${made.manifest.id}/manifest.json`);
    const listed = await listBackups(store);
    expect(listed.complete).toEqual([]);
    expect(listed.incomplete.map((b) => b.id)).toEqual([made.manifest.id]);
    expect((await errorOf(resolveBackup(made.manifest.id, store))).code).toBe('BACKUP_INCOMPLETE');
    expect((await errorOf(resolveBackup('latest', store))).code).toBe('BACKUP_NOT_FOUND');
  });

  it('refuses a non-empty target without --force, and replaces it with --force', async () => {
    const store = freshStore();
    const source = await seededPostgres(store);
    const made = await runBackup({ source, store });
    const target = await seededPostgres(freshStore());
    await target.db.query("INSERT INTO models (name) VALUES ('only-in-target')");
    const backup = await resolveBackup(made.manifest.id, store);
    expect((await errorOf(restore(backup, target, store))).code).toBe('RESTORE_TARGET_NOT_EMPTY');
    expect((await target.db.query("SELECT 1 FROM models WHERE name = 'only-in-target'")).rowCount).toBe(1);
    const report = await restore(backup, target, store, true);
    expect(report.ok).toBe(true);
    expect(await tableChecksums(target.db)).toEqual(await tableChecksums(source.db));
  });
});

describe('cross-engine', () => {
  it('PGlite → PostgreSQL (aegis-logical)', async () => {
    const store = freshStore();
    const source = await openDb({ url: MEMORY });
    open.push(source);
    await seedRegistry(source, store, keys.privateKey, 6);
    const made = await runBackup({ source: { db: source }, store });
    expect(made.manifest).toMatchObject({ engine: 'pglite', format: 'aegis-logical' });
    const target = await emptyPostgres();
    const report = await restore(await resolveBackup(made.manifest.id, store), target, store);
    expect(report.ok).toBe(true);
    expect(report.target.engine).toBe('postgres');
    expect(await tableChecksums(target.db)).toEqual(await tableChecksums(source));
    expect(await sequenceStates(target.db)).toEqual(await sequenceStates(source));
  });

  it('PostgreSQL → PGlite (pg_dump-custom through pg_restore --data-only)', async () => {
    const store = freshStore();
    const source = await seededPostgres(store);
    const made = await runBackup({ source, store });
    expect(made.manifest.format).toBe('pg_dump-custom');
    const target = await openDbUnmigrated({ url: MEMORY });
    open.push(target);
    const report = await restore(await resolveBackup(made.manifest.id, store), { db: target }, store);
    expect(report.ok).toBe(true);
    expect(await tableChecksums(target)).toEqual(await tableChecksums(source.db));
    expect(await sequenceStates(target)).toEqual(await sequenceStates(source.db));
  });
});

describe('kill -9 during a backup', () => {
  async function backupAndKill(url: string, store: S3Store, point: 'dump' | 'manifest'): Promise<void> {
    await killWhenStalled(KILL_CHILD, [url, `s3://${BUCKET}/${store.base.replace(/\/$/, '')}`, point], { ...process.env, ...S3_ENV }, `while writing the ${point}`);
  }

  it.each(['dump', 'manifest'] as const)('killed while writing the %s: nothing looks like a complete backup', async (point) => {
    const store = freshStore();
    const source = await seededPostgres(store);
    await backupAndKill(source.url, store, point);
    const listed = await listBackups(store);
    expect(listed.complete).toEqual([]);
    if (point === 'manifest') {
      // the dump was stored whole, but without a manifest it is not a backup
      expect(listed.incomplete).toEqual([expect.objectContaining({ reason: expect.stringMatching(/no manifest/) })]);
      expect((await errorOf(resolveBackup(listed.incomplete[0]!.id, store))).code).toBe('BACKUP_INCOMPLETE');
    } else {
      // the dump upload was in flight: S3 shows no object at all
      expect(listed.incomplete).toEqual([]);
    }
    expect((await errorOf(resolveBackup('latest', store))).code).toBe('BACKUP_NOT_FOUND');
    // and the database is fine: a new backup works
    const again = await runBackup({ source, store });
    expect((await listBackups(store)).complete.map((b) => b.id)).toEqual([again.manifest.id]);
  });
});

describe('drill', () => {
  it('restores into a scratch database on the same server, reports RPO and RTO, and drops it', async () => {
    const store = freshStore();
    const source = await seededPostgres(store);
    const report = await runDrill({ source, store, scratch: postgresScratch(ADMIN_URL!), archives: { trust: keys.trust, store } });
    expect(report.ok).toBe(true);
    expect(report.restore.checks.find((c) => c.name === 'model-archives')).toMatchObject({ status: 'passed' });
    expect(report.rpoSeconds).toBeGreaterThanOrEqual(0);
    expect(report.rtoSeconds).toBeGreaterThan(0);
    const scratchName = new URL(report.scratch).pathname.slice(1);
    expect(scratchName).toMatch(/^aegis_drill_/);
    expect((await admin!.query('SELECT 1 FROM pg_database WHERE datname = $1', [scratchName])).rowCount).toBe(0);
    expect(new URL(report.scratch).password).toBe('');
  });

  it('through the CLI on PostgreSQL and S3, with --json', async () => {
    const store = freshStore();
    const source = await seededPostgres(store);
    const work = await tempDir('aegis-db-itest-');
    const saved = { ...process.env };
    try {
      const pub = join(work.path, 'pub.pem');
      await writeFile(pub, publicKeyPem(keys.trust.kind === 'publicKey' ? keys.trust.key : (undefined as never)));
      Object.assign(process.env, S3_ENV, { AEGIS_HOME: join(work.path, 'home'), AEGIS_DATABASE_URL: source.url, AEGIS_STORE_URI: store.uri });
      const backup = JSON.parse((await okCli('db', 'backup', '--json')).stdout);
      expect(backup.uri).toBe(`${store.uri}/db-backups/${backup.manifest.id}`);
      const drill = JSON.parse((await okCli('db', 'drill', '--from', 'latest', '--public-key', pub, '--json')).stdout);
      expect(drill).toMatchObject({ ok: true, backup: { id: backup.manifest.id, new: false } });
      const target = await freshDatabase();
      const r = await runCli('db', 'restore', '--from', backup.uri, '--target', target, '--public-key', pub, '--json');
      expect(r.code, r.stderr + r.stdout).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, target: { engine: 'postgres' } });
      // The drill verified the signatures; this restore found them in <home>/cache/verified-signatures …
      const archiveCheck = (out: string) => (JSON.parse(out) as { checks: { name: string; detail: string }[] }).checks.find((c) => c.name === 'model-archives')!.detail;
      expect(archiveCheck(r.stdout)).toMatch(/signature verified \(\d+ of them verified by an earlier check: .*verified-signatures\)$/);
      // … and --no-signature-cache verifies them all again.
      const again = await runCli('db', 'restore', '--from', backup.uri, '--target', await freshDatabase(), '--public-key', pub, '--no-signature-cache', '--json');
      expect(again.code, again.stderr + again.stdout).toBe(0);
      expect(archiveCheck(again.stdout)).toMatch(/signature verified$/);
      const runs = await source.db.query<{ trigger: string; status: string }>('SELECT trigger, status FROM backup_runs ORDER BY id');
      expect(runs.rows).toEqual([{ trigger: 'manual', status: 'succeeded' }]);
    } finally {
      for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
      Object.assign(process.env, saved);
      await work.cleanup();
    }
  });
});

it('a pg_dump backup from an older schema is migrated forward after pg_restore', async () => {
  const store = freshStore();
  const url = await freshDatabase();
  const old = await openDb({ url, migrations: MIGRATIONS.slice(0, 1) });
  open.push(old);
  await seedRegistry(old, store, keys.privateKey, 2);
  const made = await runBackup({ source: { db: old, url }, store });
  expect(made.manifest.schemaVersion).toBe(1);
  const target = await emptyPostgres();
  const report = await restore(await resolveBackup(made.manifest.id, store), target, store);
  expect(report.ok).toBe(true);
  expect(report.migrations).toMatchObject({ from: 1, to: LATEST_SCHEMA_VERSION });
  expect(report.migrations.applied.map((m) => m.version)).toEqual(MIGRATIONS.slice(1).map((m) => m.version));
  const before = await tableChecksums(old);
  const after = await tableChecksums(target.db);
  for (const table of Object.keys(before).filter((t) => t !== 'public.schema_migrations')) expect(after[table], table).toEqual(before[table]);
});

it('the schema version of a restored database is this build\'s', async () => {
  const store = freshStore();
  const made = await runBackup({ source: await seededPostgres(store), store });
  const target = await emptyPostgres();
  await restore(await resolveBackup(made.manifest.id, store), target, store);
  expect(await currentSchemaVersion(target.db)).toBe(LATEST_SCHEMA_VERSION);
});
