import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { pipeline as pipelineCb } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { currentSchemaVersion, LATEST_SCHEMA_VERSION, migrate, MIGRATIONS } from '../db/index.js';
import type { MigrateResult } from '../db/migrations.js';
import { AegisError, isAegisError } from '../errors.js';
import { childLogger } from '../log.js';
import { checkArchiveRows, checkHealth, checkModelArchives, checkRowCounts, registryRows, sameRegistryRows, type ArchiveCheckOptions, type VersionRow } from './checks.js';
import { decodeRow, readScript } from './copy-text.js';
import { loadScript } from './logical.js';
import { checkToolVersion, connection, findPgTool, runTool, ToolError, toolVersion, type PgToolPaths } from './pgtools.js';
import { serverVersion, tablesWithRows, wipeUserSchemas } from './schema.js';
import { hashed, lines } from './stream-util.js';
import type { CheckResult, CompleteBackup, DbTarget } from './types.js';

export interface RestoreOptions {
  backup: CompleteBackup;
  target: DbTarget;
  /** Replace a target that holds data (it is emptied first). */
  force?: boolean;
  tools?: PgToolPaths;
  /** Where a dump from a remote store is downloaded (and verified) first; default the OS temp folder. */
  workDir?: string;
  /** The model-archive check's trust anchor and store, or why it is skipped. */
  archives: ArchiveCheckOptions | { skip: string };
  /** Control-plane health URL; unset: that check is skipped. */
  healthUrl?: string | undefined;
  now?: () => Date;
  onPhase?: (phase: 'verify' | 'load' | 'migrate' | 'checks') => void;
}

export interface RestoreReport {
  ok: boolean;
  backup: { id: string; uri: string; format: string; engine: string; schemaVersion: number; startedAt: string; finishedAt: string };
  target: { engine: string; serverVersion: string; previousSchemaVersion: number; replacedTablesWithData: string[] };
  migrations: MigrateResult;
  checks: CheckResult[];
  /**
   * Milliseconds: downloading and checking the dump, loading it, migrating forward, smoke checks, all.
   * archiveCheckMs: the model-archive check itself, which runs beside the load when it can
   * (archiveCheckOverlapped; then checksMs holds only what it had left to do).
   */
  timings: { verifyMs: number; loadMs: number; migrateMs: number; checksMs: number; totalMs: number; archiveCheckMs: number; archiveCheckOverlapped: boolean };
  startedAt: string;
  finishedAt: string;
}

const log = () => childLogger('backup');

/**
 * Restores a backup into `target`. Before the target is touched: the
 * manifest's schema version must be one this build knows, and the dump is
 * read once end to end and must match the manifest's size and SHA-256 (a
 * remote dump is downloaded to `workDir` on the way). Then the target must
 * hold no data unless `force`; it is emptied and loaded:
 * - pg_dump-custom into PostgreSQL: `pg_restore --single-transaction`;
 * - anything else (aegis-logical, or pg_dump-custom into PGlite through
 *   `pg_restore --data-only -f -`): migrations up to the dump's schema version,
 *   then the data in one transaction.
 * Then row counts are compared with the manifest, migrations run forward,
 * and the smoke checks run. The report says which checks passed; `ok` is
 * false when any failed. Errors before the load leave the target untouched.
 */
export async function runRestore(o: RestoreOptions): Promise<RestoreReport> {
  const now = o.now ?? (() => new Date());
  const started = now();
  const t0 = performance.now();
  const { manifest, location } = o.backup;
  const { db } = o.target;
  if (manifest.schemaVersion > LATEST_SCHEMA_VERSION) {
    throw new AegisError(
      'BACKUP_SCHEMA_TOO_NEW',
      `backup ${manifest.id} is at schema version ${manifest.schemaVersion}, newer than this build of Aegis knows (up to ${LATEST_SCHEMA_VERSION})`,
      {
        hint: 'Restore it with the Aegis version that made it (or newer); this build cannot read its schema.',
        details: { schemaVersion: manifest.schemaVersion, latestKnown: LATEST_SCHEMA_VERSION },
      },
    );
  }
  const usePgRestore = manifest.format === 'pg_dump-custom';
  if (usePgRestore && db.engine === 'postgres' && !o.target.url) throw new AegisError('USAGE', 'restoring into PostgreSQL needs its URL for pg_restore');
  const pgRestore = usePgRestore ? findPgTool('pg_restore', o.tools?.pgRestore) : undefined;
  const pgRestoreVersion = pgRestore ? await toolVersion(pgRestore) : undefined;

  o.onPhase?.('verify');
  const dump = await fetchVerifiedDump(o.backup, o.workDir);
  const tVerified = performance.now();
  let early: ReturnType<typeof earlyArchiveCheck> | undefined;
  const stopEarly = new AbortController();
  try {
    const targetServer = await serverVersion(db);
    const previousSchemaVersion = await currentSchemaVersion(db);
    const withData = await tablesWithRows(db);
    if (withData.length > 0 && !o.force) {
      throw new AegisError('RESTORE_TARGET_NOT_EMPTY', `the target database holds data (${withData.slice(0, 5).join(', ')}${withData.length > 5 ? ', …' : ''}); refusing to overwrite it`, {
        hint: 'Restore into an empty database, or pass --force to replace everything in this one with the backup.',
        details: { tables: withData },
      });
    }
    if (pgRestore && db.engine === 'postgres') checkToolVersion('pg_restore', pgRestore, pgRestoreVersion!.major, targetServer);

    o.onPhase?.('load');
    log().info({ event: 'restore_started', backup: location.uri, engine: db.engine, force: o.force === true, replacing: withData }, 'database restore started');
    await wipeUserSchemas(db);
    // pg_restore loads on the server; meanwhile the model-archive check runs here over the registry rows read
    // from the same (verified) dump. It counts only if the restored database turns out to hold those rows.
    early = pgRestore && db.engine === 'postgres' && !('skip' in o.archives) ? earlyArchiveCheck(pgRestore, dump.path, location.uri, o.archives, stopEarly.signal) : undefined;
    if (pgRestore && db.engine === 'postgres') {
      const { dbname, env } = connection(o.target.url!);
      const run = runTool(pgRestore, ['--no-owner', '--no-privileges', '--single-transaction', '--exit-on-error', `--dbname=${dbname}`, dump.path], {
        env,
        what: 'pg_restore',
      });
      await run.done.catch((err: unknown) => {
        throw restoreError(err, location.uri); // the early check is stopped (and awaited) below, before the dump goes
      });
    } else {
      await migrate(db, MIGRATIONS.slice(0, manifest.schemaVersion));
      if (pgRestore) {
        const run = runTool(pgRestore, ['--data-only', '--file=-', dump.path], { what: 'pg_restore --data-only' });
        try {
          await loadScript(db, readScript(lines(run.child.stdout), location.uri), location.uri);
        } finally {
          if (run.child.exitCode === null) run.child.kill('SIGTERM');
        }
        await run.done.catch((err: unknown) => {
          throw restoreError(err, location.uri);
        });
      } else {
        const text = pipelineCb(createReadStream(dump.path), createGunzip(), () => undefined);
        await loadScript(db, readScript(lines(text), location.uri), location.uri).catch((err: unknown) => {
          throw restoreError(err, location.uri);
        });
      }
    }
    const counts = await checkRowCounts(db, manifest.tables);
    const tLoaded = performance.now();

    o.onPhase?.('migrate');
    const migrations = await migrate(db);
    const tMigrated = performance.now();

    o.onPhase?.('checks');
    const archived = await early;
    let fromDump: Extract<typeof archived, { check: unknown }> | undefined;
    let again: string | undefined;
    if (archived && 'check' in archived) {
      // Counted only for exactly the rows the restored database holds (a dump may carry SQL that changes them after
      // the data; migrations may too): compared field for field, as the database returns them.
      try {
        if (sameRegistryRows(await registryRows(db), archived.rows)) fromDump = archived;
        else again = 'the restored registry differs from the rows read from the dump';
      } catch (err) {
        again = `cannot read the restored registry: ${(err as Error).message}`;
      }
    } else if (archived) again = archived.error;
    if (again) log().info({ event: 'restore_archive_check_again', reason: again }, 'checking the model archives against the restored database');
    const tArchives = performance.now();
    const archives = fromDump ? fromDump.check : await checkModelArchives(db, o.archives);
    const archiveCheckMs = fromDump ? fromDump.ms : performance.now() - tArchives;
    const health = await checkHealth(o.healthUrl);
    const tDone = performance.now();
    const checks: CheckResult[] = [{ name: 'dump-integrity', status: 'passed', detail: `sha256 ${manifest.dump.sha256.slice(0, 16)}…, ${manifest.dump.size} bytes, as in the manifest` }, counts, archives, health];
    const report: RestoreReport = {
      ok: checks.every((c) => c.status !== 'failed'),
      backup: {
        id: manifest.id,
        uri: location.uri,
        format: manifest.format,
        engine: manifest.engine,
        schemaVersion: manifest.schemaVersion,
        startedAt: manifest.startedAt,
        finishedAt: manifest.finishedAt,
      },
      target: { engine: db.engine, serverVersion: targetServer, previousSchemaVersion, replacedTablesWithData: withData },
      migrations,
      checks,
      timings: {
        verifyMs: Math.round(tVerified - t0),
        loadMs: Math.round(tLoaded - tVerified),
        migrateMs: Math.round(tMigrated - tLoaded),
        checksMs: Math.round(tDone - tMigrated),
        totalMs: Math.round(tDone - t0),
        archiveCheckMs: Math.round(archiveCheckMs),
        archiveCheckOverlapped: fromDump !== undefined,
      },
      startedAt: started.toISOString(),
      finishedAt: now().toISOString(),
    };
    log().info({ event: 'restore_completed', backup: location.uri, ok: report.ok, checks: checks.map((c) => `${c.name}:${c.status}`) }, 'database restore completed');
    return report;
  } finally {
    // A restore that failed stops the early check, and waits for it (child process, threads, cache file) before the dump goes.
    stopEarly.abort(new Error('the restore stopped'));
    await early;
    await dump.cleanup();
  }
}

/**
 * The model-archive check over the registry rows of a pg_dump archive, started
 * beside pg_restore: `pg_restore --data-only --table=models --table=model_versions`
 * prints just those two tables (a small part of the dump), and the check
 * reads the store and verifies signatures while the server loads the rest.
 * Settles (never rejects) with the result and the rows it checked, or with
 * why it could not run (then the check runs after the load as before).
 */
async function earlyArchiveCheck(
  pgRestore: string,
  dumpPath: string,
  source: string,
  o: ArchiveCheckOptions,
  signal: AbortSignal,
): Promise<{ check: CheckResult; rows: VersionRow[]; ms: number } | { error: string }> {
  const t = performance.now();
  try {
    const rows = await registryRowsFromDump(pgRestore, dumpPath, source, signal);
    const check = await checkArchiveRows(rows, o, signal);
    return { check, rows, ms: performance.now() - t };
  } catch (err) {
    return { error: (err as Error)?.message ?? String(err) };
  }
}

/** name, version, archive URI and digest of every model version in a pg_dump archive, in id order. */
export async function registryRowsFromDump(pgRestore: string, dumpPath: string, source: string, signal?: AbortSignal): Promise<VersionRow[]> {
  signal?.throwIfAborted();
  const run = runTool(pgRestore, ['--data-only', '--schema=public', '--table=models', '--table=model_versions', '--file=-', dumpPath], { what: 'pg_restore --data-only (registry)' });
  const stop = () => run.child.kill('SIGTERM');
  signal?.addEventListener('abort', stop, { once: true });
  const names = new Map<string, string>();
  const versions: { id: number; model: string; version: string; uri: string; sha256: string }[] = [];
  const column = (columns: string[], name: string) => {
    const i = columns.indexOf(name);
    if (i < 0) throw new Error(`${source}: no column ${name} in the registry tables (${columns.join(', ')})`);
    return i;
  };
  try {
    for await (const item of readScript(lines(run.child.stdout), source)) {
      if (item.kind !== 'table') continue;
      const { table, columns } = item.header;
      if (table === 'public.models') {
        const [id, name] = [column(columns, 'id'), column(columns, 'name')];
        for await (const line of item.rows) {
          const f = decodeRow(line);
          if (f[id] == null || f[name] == null) throw new Error(`${source}: a models row without id or name`);
          names.set(f[id], f[name]);
        }
      } else if (table === 'public.model_versions') {
        const c = ['id', 'model_id', 'version', 'archive_uri', 'archive_sha256'].map((n) => column(columns, n));
        for await (const line of item.rows) {
          const f = decodeRow(line);
          const [id, model, version, uri, sha256] = c.map((i) => f[i]);
          if (id == null || model == null || version == null || uri == null || sha256 == null) throw new Error(`${source}: a model_versions row with a NULL in the registry columns`);
          versions.push({ id: Number(id), model, version, uri, sha256 });
        }
      }
    }
  } finally {
    signal?.removeEventListener('abort', stop);
    if (run.child.exitCode === null) run.child.kill('SIGTERM');
  }
  await run.done;
  signal?.throwIfAborted();
  versions.sort((a, b) => a.id - b.id);
  return versions.map((v) => {
    const name = names.get(v.model);
    if (name === undefined) throw new Error(`${source}: model version ${v.id} names model ${v.model}, which is not in the dump`);
    return { name, version: v.version, archive_uri: v.uri, archive_sha256: v.sha256 };
  });
}

function restoreError(err: unknown, uri: string): AegisError {
  if (isAegisError(err)) return err;
  return new AegisError('RESTORE_FAILED', `restoring ${uri} failed: ${(err as Error)?.message ?? String(err)}`, {
    cause: err,
    hint:
      'The load runs in one transaction, so the target holds no partial data (it was emptied first); fix the cause ' +
      '(connection, permissions, disk) and run the restore again.',
    ...(err instanceof ToolError ? { details: { tool: err.path, exitCode: err.code } } : {}),
  });
}

/**
 * The dump as a local file whose size and SHA-256 match the manifest. A
 * dump on this machine is read in place; a remote one is downloaded (and
 * hashed while downloading) into a private temp folder, removed by `cleanup`.
 */
export async function fetchVerifiedDump(backup: CompleteBackup, workDir?: string): Promise<{ path: string; cleanup: () => Promise<void> }> {
  const { manifest, location } = backup;
  const key = `${location.prefix}${manifest.dump.name}`;
  const local = location.store.localPath?.(key);
  const hash = createHash('sha256');
  const counter = { bytes: 0 };
  let path: string;
  let cleanup = async () => undefined as void;
  if (local) {
    path = local;
    for await (const _ of hashed(await location.store.get(key), hash, counter)) void _;
  } else {
    const dir = join(workDir ?? tmpdir(), `aegis-restore-${randomBytes(6).toString('hex')}`);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    cleanup = () => rm(dir, { recursive: true, force: true });
    path = join(dir, manifest.dump.name);
    try {
      await pipeline(hashed(await location.store.get(key), hash, counter), createWriteStream(path, { mode: 0o600 }));
    } catch (err) {
      await cleanup();
      throw err;
    }
  }
  const sha256 = hash.digest('hex');
  const problem =
    counter.bytes !== manifest.dump.size
      ? `it has ${counter.bytes} bytes, the manifest records ${manifest.dump.size}${counter.bytes < manifest.dump.size ? ' (truncated)' : ''}`
      : sha256 !== manifest.dump.sha256
        ? `its SHA-256 is ${sha256}, the manifest records ${manifest.dump.sha256}`
        : undefined;
  if (problem) {
    await cleanup();
    throw new AegisError('BACKUP_CORRUPT', `the dump of backup ${manifest.id} does not match its manifest: ${problem}`, {
      hint: 'The dump was damaged or altered after the backup; nothing was restored. Restore another backup (`aegis db backups`).',
      details: { backup: location.uri, expectedSha256: manifest.dump.sha256, actualSha256: sha256, expectedSize: manifest.dump.size, actualSize: counter.bytes },
    });
  }
  return { path, cleanup };
}
