/**
 * Backup and restore on the embedded engine (PGlite) with a file store:
 * the aegis-logical format end to end, the refusals (corrupt, truncated,
 * incomplete, newer schema, non-empty target), migrations forward, and the
 * smoke checks.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFile, writeFile, truncate, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { currentSchemaVersion, LATEST_SCHEMA_VERSION, MEMORY, MIGRATIONS, openDb, openDbUnmigrated, type Db } from '../db/index.js';
import { isAegisError } from '../errors.js';
import { Registry } from '../registry/index.js';
import { FileStore } from '../store/index.js';
import { AWKWARD, seedRegistry, sequenceStates, signedArchive, tableChecksums, testKeys } from '../test-support/backup.js';
import { tempDir } from '../test-support/fs.js';
import { listBackups, readBackup, resolveBackup } from './catalog.js';
import { checkHealth } from './checks.js';
import { runBackup } from './backup.js';
import { pgliteScratch, runDrill } from './drill.js';
import { runRestore, type RestoreOptions } from './restore.js';
import { DbBackupRunLog } from './runs.js';
import { backupJob, BackupScheduler } from './scheduler.js';
import { Registry as PromRegistry } from 'prom-client';
import type { CompleteBackup } from './types.js';

let work: Awaited<ReturnType<typeof tempDir>>;
let store: FileStore;
let source: Db;
const open: Db[] = [];
const keys = testKeys();

async function memoryDb(migrated = true): Promise<Db> {
  const db = migrated ? await openDb({ url: MEMORY }) : await openDbUnmigrated({ url: MEMORY });
  open.push(db);
  return db;
}

beforeEach(async () => {
  work = await tempDir('aegis-backup-');
  store = new FileStore(join(work.path, 'artifacts'));
  source = await memoryDb();
  await seedRegistry(source, store, keys.privateKey);
});
afterEach(async () => {
  for (const db of open.splice(0)) await db.close();
  await work.cleanup();
});

function restoreInto(target: Db, backup: CompleteBackup, extra: Partial<RestoreOptions> = {}) {
  return runRestore({ backup, target: { db: target }, archives: { trust: keys.trust, store }, ...extra });
}

async function errorOf(p: Promise<unknown>): Promise<{ code: string; message: string; hint?: string | undefined }> {
  try {
    await p;
  } catch (err) {
    if (isAegisError(err)) return { code: err.code, message: err.message, hint: err.hint };
    return { code: `not an AegisError: ${(err as Error).stack}`, message: '' };
  }
  return { code: 'no error', message: '' };
}

describe('backup (PGlite, aegis-logical)', () => {
  it('writes the dump and then a manifest that describes it', async () => {
    const r = await runBackup({ source: { db: source }, store, now: () => new Date('2026-11-22T22:30:00.123Z') });
    expect(r.manifest).toMatchObject({
      apiVersion: 'aegis.dev/v1',
      kind: 'DatabaseBackup',
      id: '20261122T223000Z',
      format: 'aegis-logical',
      engine: 'pglite',
      tool: 'aegis-logical 1',
      schemaVersion: LATEST_SCHEMA_VERSION,
      dump: { name: 'dump.sql.gz' },
    });
    expect(r.manifest.tables).toMatchObject({ 'public.models': 2, 'public.model_versions': 4, 'public.schema_migrations': LATEST_SCHEMA_VERSION, 'public.backup_runs': 0 });
    expect(r.manifest.tables['public.audit_log']).toBe((await tableChecksums(source))['public.audit_log']!.rows);
    const dump = await readFile(join(store.root, 'db-backups', '20261122T223000Z', 'dump.sql.gz'));
    expect(dump.length).toBe(r.manifest.dump.size);
    const { createHash } = await import('node:crypto');
    expect(createHash('sha256').update(dump).digest('hex')).toBe(r.manifest.dump.sha256);
    const listed = await listBackups(store);
    expect(listed.complete.map((b) => b.id)).toEqual(['20261122T223000Z']);
    expect(listed.incomplete).toEqual([]);
  });

  it('takes the next free id when two backups start in the same second', async () => {
    const now = () => new Date('2026-11-22T22:30:00Z');
    const a = await runBackup({ source: { db: source }, store, now });
    const b = await runBackup({ source: { db: source }, store, now });
    expect([a.manifest.id, b.manifest.id]).toEqual(['20261122T223000Z', '20261122T223000Z-1']);
    expect((await resolveBackup('latest', store)).id).toBe('20261122T223000Z-1');
  });

  it('refuses pg_dump for the embedded database with a hint', async () => {
    const e = await errorOf(runBackup({ source: { db: source }, store, format: 'pg_dump-custom' }));
    expect(e.code).toBe('USAGE');
    expect(e.hint).toMatch(/logical/);
  });
});

describe('restore (PGlite → PGlite)', () => {
  it('round-trips every row of every table, the sequences and the checks', async () => {
    const { manifest } = await runBackup({ source: { db: source }, store });
    const target = await memoryDb(false);
    const report = await restoreInto(target, await resolveBackup(manifest.id, store));
    expect(report.ok).toBe(true);
    expect(report.checks.map((c) => [c.name, c.status])).toEqual([
      ['dump-integrity', 'passed'],
      ['row-counts', 'passed'],
      ['model-archives', 'passed'],
      ['control-plane-health', 'skipped'],
    ]);
    expect(report.checks[2]!.detail).toMatch(/^4 model versions/);
    expect(await tableChecksums(target)).toEqual(await tableChecksums(source));
    expect(await sequenceStates(target)).toEqual(await sequenceStates(source));
    // the restored registry works: ids continue, the audit log is append-only again
    const registry = new Registry(target);
    const a = await signedArchive(store, 'fraud', '9.0', keys.privateKey);
    const { version } = await registry.registerVersion({ name: 'fraud', version: '9.0', archiveUri: a.uri, archiveSha256: a.sha256, signerKeyId: 'k', manifest: {}, actor: 't' });
    expect(version.id).toBe(5);
    await expect(target.query('DELETE FROM audit_log')).rejects.toThrow(/append-only/);
    const awkward = await registry.audit({ actor: AWKWARD });
    expect(awkward.length).toBeGreaterThan(0);
  });

  it('refuses a dump with one byte changed before touching the target', async () => {
    const { manifest } = await runBackup({ source: { db: source }, store });
    const path = join(store.root, 'db-backups', manifest.id, manifest.dump.name);
    const bytes = await readFile(path);
    bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
    await writeFile(path, bytes);
    const target = await memoryDb(false);
    const e = await errorOf(restoreInto(target, await resolveBackup(manifest.id, store)));
    expect(e.code).toBe('BACKUP_CORRUPT');
    expect(e.message).toMatch(/SHA-256/);
    expect(await currentSchemaVersion(target)).toBe(0);
  });

  it('refuses a truncated dump (listed as incomplete: its size differs from the manifest)', async () => {
    const { manifest } = await runBackup({ source: { db: source }, store });
    const path = join(store.root, 'db-backups', manifest.id, manifest.dump.name);
    await truncate(path, manifest.dump.size - 100);
    expect((await listBackups(store)).complete).toEqual([]);
    expect((await listBackups(store)).incomplete[0]!.reason).toMatch(/bytes, the manifest records/);
    expect((await errorOf(resolveBackup(manifest.id, store))).code).toBe('BACKUP_INCOMPLETE');
    // even when handed the manifest directly, the download check refuses it
    const target = await memoryDb(false);
    const backup: CompleteBackup = { id: manifest.id, manifest, location: { store, prefix: `db-backups/${manifest.id}/`, id: manifest.id, uri: 'x' } };
    const e = await errorOf(restoreInto(target, backup));
    expect(e.code).toBe('BACKUP_CORRUPT');
    expect(e.message).toMatch(/truncated/);
    expect(await currentSchemaVersion(target)).toBe(0);
  });

  it('ignores a backup without a manifest: not listed, not restorable', async () => {
    const { manifest } = await runBackup({ source: { db: source }, store });
    await unlink(join(store.root, 'db-backups', manifest.id, 'manifest.json'));
    const listed = await listBackups(store);
    expect(listed.complete).toEqual([]);
    expect(listed.incomplete).toEqual([expect.objectContaining({ id: manifest.id, reason: expect.stringMatching(/no manifest/) })]);
    expect((await errorOf(resolveBackup(manifest.id, store))).code).toBe('BACKUP_INCOMPLETE');
    expect((await errorOf(resolveBackup('latest', store))).code).toBe('BACKUP_NOT_FOUND');
    expect((await errorOf(resolveBackup('20200101T000000Z', store))).code).toBe('BACKUP_NOT_FOUND');
  });

  it('refuses a manifest that is not valid', async () => {
    const { manifest } = await runBackup({ source: { db: source }, store });
    const path = join(store.root, 'db-backups', manifest.id, 'manifest.json');
    await writeFile(path, JSON.stringify({ ...manifest, schemaVersion: 'two' }));
    expect((await errorOf(resolveBackup(manifest.id, store))).code).toBe('BACKUP_MANIFEST_INVALID');
    expect((await listBackups(store)).complete).toEqual([]);
  });

  it('refuses a non-empty target without force, and replaces it with force', async () => {
    const { manifest } = await runBackup({ source: { db: source }, store });
    const target = await memoryDb();
    await target.query("INSERT INTO models (name) VALUES ('precious')");
    const backup = await resolveBackup(manifest.id, store);
    const e = await errorOf(restoreInto(target, backup));
    expect(e.code).toBe('RESTORE_TARGET_NOT_EMPTY');
    expect(e.hint).toMatch(/--force/);
    expect((await target.query('SELECT name FROM models')).rows).toEqual([{ name: 'precious' }]);
    const report = await restoreInto(target, backup, { force: true });
    expect(report.ok).toBe(true);
    expect(report.target.replacedTablesWithData).toEqual(['public.models']);
    expect(await tableChecksums(target)).toEqual(await tableChecksums(source));
  });

  it('accepts a migrated but empty target without force', async () => {
    const { manifest } = await runBackup({ source: { db: source }, store });
    const target = await memoryDb();
    const report = await restoreInto(target, await resolveBackup(manifest.id, store));
    expect(report.ok).toBe(true);
    expect(report.target.previousSchemaVersion).toBe(LATEST_SCHEMA_VERSION);
  });

  it('migrates an older dump forward after loading it', async () => {
    const old = await openDb({ url: MEMORY, migrations: MIGRATIONS.slice(0, 1) });
    open.push(old);
    await seedRegistry(old, store, keys.privateKey, 2);
    const { manifest } = await runBackup({ source: { db: old }, store });
    expect(manifest.schemaVersion).toBe(1);
    expect(manifest.tables['public.backup_runs']).toBeUndefined();
    const target = await memoryDb(false);
    const report = await restoreInto(target, await resolveBackup(manifest.id, store));
    expect(report.ok).toBe(true);
    expect(report.migrations).toMatchObject({ from: 1, to: LATEST_SCHEMA_VERSION });
    expect(report.migrations.applied.map((m) => m.version)).toEqual(MIGRATIONS.slice(1).map((m) => m.version));
    expect(await currentSchemaVersion(target)).toBe(LATEST_SCHEMA_VERSION);
    const before = await tableChecksums(old);
    const after = await tableChecksums(target);
    for (const table of Object.keys(before).filter((t) => t !== 'public.schema_migrations')) expect(after[table], table).toEqual(before[table]);
  });

  it('refuses a dump from a newer schema than this build knows, before touching the target', async () => {
    const future = [...MIGRATIONS, { version: LATEST_SCHEMA_VERSION + 1, name: 'future', sql: 'CREATE TABLE future_thing (x int)' }];
    const newer = await openDb({ url: MEMORY, migrations: future });
    open.push(newer);
    const { manifest } = await runBackup({ source: { db: newer }, store });
    expect(manifest.schemaVersion).toBe(LATEST_SCHEMA_VERSION + 1);
    const target = await memoryDb(false);
    const e = await errorOf(restoreInto(target, await resolveBackup(manifest.id, store)));
    expect(e.code).toBe('BACKUP_SCHEMA_TOO_NEW');
    expect(await currentSchemaVersion(target)).toBe(0);
  });
});

describe('smoke checks', () => {
  it('fail (and the report is not ok) when an archive is gone or its signature does not verify', async () => {
    const { manifest } = await runBackup({ source: { db: source }, store });
    await store.delete('model-archives/fraud/1.0/model.tar.gz');
    await store.put('model-archives/churn/1.1/model.tar.gz.sig', Buffer.from(Buffer.alloc(70, 1).toString('base64')));
    const target = await memoryDb(false);
    const report = await restoreInto(target, await resolveBackup(manifest.id, store));
    expect(report.ok).toBe(false);
    const archives = report.checks.find((c) => c.name === 'model-archives')!;
    expect(archives.status).toBe('failed');
    expect(archives.detail).toBe('2 of 4 model versions have a missing or unverifiable archive');
    expect(archives.problems).toEqual([
      expect.stringMatching(/^fraud@1\.0: archive missing: file:/),
      expect.stringMatching(/^churn@1\.1: ARCHIVE_SIGNATURE_INVALID/),
    ]);
  });

  it('fail when the signer is not trusted', async () => {
    const { manifest } = await runBackup({ source: { db: source }, store });
    const target = await memoryDb(false);
    const report = await runRestore({ backup: await resolveBackup(manifest.id, store), target: { db: target }, archives: { trust: testKeys().trust, store } });
    expect(report.ok).toBe(false);
    expect(report.checks.find((c) => c.name === 'model-archives')!.status).toBe('failed');
  });

  it('report a disabled archive check as skipped, with the reason', async () => {
    const { manifest } = await runBackup({ source: { db: source }, store });
    const target = await memoryDb(false);
    const report = await runRestore({ backup: await resolveBackup(manifest.id, store), target: { db: target }, archives: { skip: 'disabled by --no-verify-archives' } });
    expect(report.checks.find((c) => c.name === 'model-archives')).toEqual({ name: 'model-archives', status: 'skipped', detail: 'disabled by --no-verify-archives' });
    expect(report.ok).toBe(true);
  });

  describe('control-plane health', () => {
    let server: Server;
    let status = 200;
    beforeEach(async () => {
      server = createServer((req, res) => {
        res.statusCode = req.url === '/healthz' ? status : 404;
        res.end('ok');
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    });
    afterEach(() => new Promise<void>((r) => server.close(() => r())));
    const url = () => `http://127.0.0.1:${(server.address() as AddressInfo).port}/healthz`;

    it('passes on 2xx, fails otherwise, and is skipped (never passed) without a URL', async () => {
      expect(await checkHealth(url())).toMatchObject({ status: 'passed' });
      status = 503;
      expect(await checkHealth(url())).toMatchObject({ status: 'failed', detail: expect.stringMatching(/HTTP 503/) });
      expect(await checkHealth('http://127.0.0.1:9/healthz')).toMatchObject({ status: 'failed', detail: expect.stringMatching(/did not answer/) });
      expect(await checkHealth(undefined)).toMatchObject({ status: 'skipped', detail: expect.stringMatching(/no control-plane health URL/) });
    });

    it('a failing health check fails the restore report', async () => {
      status = 500;
      const { manifest } = await runBackup({ source: { db: source }, store });
      const target = await memoryDb(false);
      const report = await restoreInto(target, await resolveBackup(manifest.id, store), { healthUrl: url() });
      expect(report.ok).toBe(false);
      expect(report.checks.find((c) => c.name === 'control-plane-health')!.status).toBe('failed');
    });
  });
});

describe('drill (PGlite)', () => {
  it('backs up, restores into a scratch database, checks, and reports RPO and RTO', async () => {
    const runs = new DbBackupRunLog(source);
    const report = await runDrill({ source: { db: source }, store, scratch: pgliteScratch(), archives: { trust: keys.trust, store }, runs });
    expect(report.ok).toBe(true);
    expect(report.backup.new).toBe(true);
    expect(report.rpoSeconds).toBeGreaterThanOrEqual(0);
    expect(report.rtoSeconds).toBe(report.restore.timings.totalMs / 1000);
    expect(report.scratch).toBe('in-memory PGlite');
    expect(await readBackup((await listBackups(store)).complete[0]!.location)).toMatchObject({ id: report.backup.id });
    expect(await runs.recent(5)).toEqual([expect.objectContaining({ trigger: 'drill', status: 'succeeded', backupId: report.backup.id })]);
    expect(await runs.lastSuccess()).toBeInstanceOf(Date);
  });
});

describe('scheduled backup job', () => {
  it('backs up, prunes to the policy, records the run and exports the metric', async () => {
    const registry = new PromRegistry();
    const runs = new DbBackupRunLog(source);
    let clock = Date.parse('2026-11-20T22:30:00Z');
    const now = () => new Date(clock);
    const scheduler = new BackupScheduler({
      schedule: '30 22 * * *',
      registry,
      runs,
      timers: { now, setTimeout: () => 0, clearTimeout: () => undefined },
      backup: backupJob({ source: { db: source }, store, now, retention: { keepDaily: 1, keepWeekly: 0 } }),
    });
    for (let day = 0; day < 3; day++) {
      expect((await scheduler.runNow()).ok).toBe(true);
      clock += 24 * 3600 * 1000;
    }
    expect((await listBackups(store)).complete.map((b) => b.id)).toEqual(['20261122T223000Z']);
    expect((await runs.recent(10)).map((r) => `${r.trigger}:${r.status}`)).toEqual(['schedule:succeeded', 'schedule:succeeded', 'schedule:succeeded']);
    expect(await registry.metrics()).toMatch(/^aegis_db_backup_last_success_timestamp_seconds 1795386600$/m);
  });
});
