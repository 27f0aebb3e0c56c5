import { createHash } from 'node:crypto';
import { Readable, pipeline } from 'node:stream';
import { createGzip } from 'node:zlib';
import { currentSchemaVersion } from '../db/index.js';
import type { Queryable } from '../db/types.js';
import { AegisError, isAegisError } from '../errors.js';
import { childLogger } from '../log.js';
import type { ArtifactStore } from '../store/types.js';
import { locationIn } from './catalog.js';
import { LOGICAL_TOOL, logicalDumpChunks } from './logical.js';
import { backupIdAt, serializeManifest } from './manifest.js';
import { checkToolVersion, connection, findPgTool, runTool, ToolError, toolVersion, type PgToolPaths } from './pgtools.js';
import { rowCounts, serverVersion, userTables } from './schema.js';
import { hashed } from './stream-util.js';
import { DUMP_NAMES, MANIFEST_NAME, type BackupFormat, type BackupLocation, type BackupManifest, type DbTarget } from './types.js';

export interface BackupOptions {
  source: DbTarget;
  /** The store whose `db-backups/` receives the backup. */
  store: ArtifactStore;
  /** Default: pg_dump-custom on PostgreSQL, aegis-logical on PGlite (pg_dump cannot read PGlite). */
  format?: BackupFormat;
  tools?: PgToolPaths;
  now?: () => Date;
  onProgress?: (bytes: number) => void;
}

export interface BackupResult {
  manifest: BackupManifest;
  location: BackupLocation;
  /** URI of the backup's folder. */
  uri: string;
}

const log = () => childLogger('backup');

export function defaultFormat(source: DbTarget): BackupFormat {
  return source.db.engine === 'postgres' ? 'pg_dump-custom' : 'aegis-logical';
}

/** The first free `db-backups/<id>/` for this start time (`-1`, `-2`… when that second is taken). */
async function claimLocation(store: ArtifactStore, at: Date): Promise<BackupLocation> {
  for (let suffix = 0; suffix < 1000; suffix++) {
    const location = locationIn(store, backupIdAt(at, suffix));
    let taken = false;
    for await (const _ of store.list(location.prefix)) {
      taken = true;
      break;
    }
    if (!taken) return location;
  }
  throw new AegisError('BACKUP_FAILED', `no free backup id for ${at.toISOString()} in ${store.uri}`, { hint: 'Retry in a second.' });
}

interface DumpInfo {
  schemaVersion: number;
  serverVersion: string;
  tool: string;
  tables: Record<string, number>;
  sha256: string;
  size: number;
}

/**
 * Backs up the database: the dump streams into `db-backups/<id>/dump.<ext>`
 * (hashed on the way, never held whole in memory), row counts come from the
 * same snapshot, and manifest.json is written last, once the dump is stored.
 * Whatever fails or is killed before that leaves no manifest, so nothing that
 * counts as a backup; a failed run also removes the dump it stored.
 */
export async function runBackup(o: BackupOptions): Promise<BackupResult> {
  const now = o.now ?? (() => new Date());
  const started = now();
  const format = o.format ?? defaultFormat(o.source);
  if (format === 'pg_dump-custom' && (o.source.db.engine !== 'postgres' || !o.source.url)) {
    throw new AegisError('USAGE', 'pg_dump backups need a PostgreSQL database (with its URL); the embedded database is backed up in the aegis-logical format', {
      hint: 'Leave out --format (the default suits the engine), or pass --format logical.',
    });
  }
  const location = await claimLocation(o.store, started);
  const dumpName = DUMP_NAMES[format];
  const dumpKey = `${location.prefix}${dumpName}`;
  log().info({ event: 'backup_started', backup: location.uri, format, engine: o.source.db.engine }, 'database backup started');
  try {
    const info = format === 'pg_dump-custom' ? await pgDumpBackup(o, dumpKey, location.uri) : await logicalBackup(o, dumpKey);
    const manifest: BackupManifest = {
      apiVersion: 'aegis.dev/v1',
      kind: 'DatabaseBackup',
      id: location.id,
      format,
      engine: o.source.db.engine,
      serverVersion: info.serverVersion,
      tool: info.tool,
      schemaVersion: info.schemaVersion,
      tables: info.tables,
      dump: { name: dumpName, sha256: info.sha256, size: info.size },
      startedAt: started.toISOString(),
      finishedAt: now().toISOString(),
    };
    if (manifest.schemaVersion < 1) {
      throw new AegisError('BACKUP_FAILED', 'the database has no Aegis schema (schema version 0): there is nothing to back up', {
        hint: 'Point AEGIS_DATABASE_URL (or the embedded database folder) at an Aegis database.',
      });
    }
    await o.store.put(`${location.prefix}${MANIFEST_NAME}`, serializeManifest(manifest), { contentType: 'application/json' });
    log().info({ event: 'backup_completed', backup: location.uri, bytes: info.size, sha256: info.sha256, schemaVersion: info.schemaVersion }, 'database backup completed');
    return { manifest, location, uri: location.uri };
  } catch (err) {
    await o.store.delete(dumpKey).catch(() => undefined);
    const e = asBackupError(err, location.uri);
    log().warn({ event: 'backup_failed', backup: location.uri, code: e.code, reason: e.message }, 'database backup failed');
    throw e;
  }
}

function asBackupError(err: unknown, uri: string): AegisError {
  if (isAegisError(err)) return err;
  if (err instanceof ToolError) {
    return new AegisError('BACKUP_FAILED', `backup ${uri} failed: ${err.message}`, {
      cause: err,
      hint: 'Check that the database is reachable with the configured URL and that its user may read every table; nothing counts as a backup until its manifest is written.',
      details: { tool: err.path, exitCode: err.code, signal: err.signal },
    });
  }
  return new AegisError('BACKUP_FAILED', `backup ${uri} failed: ${(err as Error)?.message ?? String(err)}`, {
    cause: err,
    hint: 'Nothing counts as a backup until its manifest is written; fix the cause and run the backup again.',
  });
}

/** REPEATABLE READ, READ ONLY: one snapshot for the dump and the row counts. */
async function snapshotTransaction(q: Queryable, engine: DbTarget['db']['engine']): Promise<void> {
  if (engine === 'postgres') await q.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY');
}

async function pgDumpBackup(o: BackupOptions, dumpKey: string, uri: string): Promise<DumpInfo> {
  const pgDump = findPgTool('pg_dump', o.tools?.pgDump);
  const version = await toolVersion(pgDump);
  const { dbname, env } = connection(o.source.url!);
  return o.source.db.transaction(async (tx) => {
    await snapshotTransaction(tx, 'postgres');
    const server = await serverVersion(tx);
    checkToolVersion('pg_dump', pgDump, version.major, server);
    // pg_dump reads the very snapshot this transaction holds (kept open until it is done).
    const snapshot = (await tx.query<{ s: string }>('SELECT pg_export_snapshot() AS s')).rows[0]!.s;
    const schemaVersion = await currentSchemaVersion(tx);
    const run = runTool(pgDump, ['--format=custom', `--snapshot=${snapshot}`, `--dbname=${dbname}`], { env, what: 'pg_dump' });
    const hash = createHash('sha256');
    const counter = { bytes: 0 };
    // A pg_dump that fails fails the stream, so the store keeps nothing (no temp file renamed, no multipart completed).
    const exited = () =>
      run.done.catch((err: unknown) => {
        throw asBackupError(err, uri);
      });
    const body = Readable.from(hashed(run.child.stdout, hash, counter, exited));
    try {
      const [, tables] = await Promise.all([
        o.store.put(dumpKey, body, { contentType: 'application/octet-stream', ...(o.onProgress ? { onProgress: o.onProgress } : {}) }),
        userTables(tx).then((t) => rowCounts(tx, t)),
      ]);
      return { schemaVersion, serverVersion: server, tool: version.text, tables, sha256: hash.digest('hex'), size: counter.bytes };
    } finally {
      if (run.child.exitCode === null) run.child.kill('SIGTERM');
    }
  });
}

async function logicalBackup(o: BackupOptions, dumpKey: string): Promise<DumpInfo> {
  return o.source.db.transaction(async (tx) => {
    await snapshotTransaction(tx, o.source.db.engine);
    const server = await serverVersion(tx);
    const schemaVersion = await currentSchemaVersion(tx);
    const tables: Record<string, number> = {};
    const gzip = pipeline(Readable.from(logicalDumpChunks(tx, tables)), createGzip(), () => undefined);
    const hash = createHash('sha256');
    const counter = { bytes: 0 };
    await o.store.put(dumpKey, Readable.from(hashed(gzip, hash, counter)), {
      contentType: 'application/gzip',
      ...(o.onProgress ? { onProgress: o.onProgress } : {}),
    });
    return { schemaVersion, serverVersion: server, tool: LOGICAL_TOOL, tables, sha256: hash.digest('hex'), size: counter.bytes };
  });
}
