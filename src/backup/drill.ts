import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { MEMORY, openDbUnmigrated } from '../db/index.js';
import { AegisError } from '../errors.js';
import { childLogger } from '../log.js';
import type { ArtifactStore } from '../store/types.js';
import { runBackup, type BackupResult } from './backup.js';
import { readBackup, resolveBackup } from './catalog.js';
import type { PgToolPaths } from './pgtools.js';
import { runRestore, type RestoreOptions, type RestoreReport } from './restore.js';
import { recordQuietly, type BackupRunLog } from './runs.js';
import { tablesWithRows } from './schema.js';
import type { BackupFormat, DbTarget } from './types.js';

/**
 * A restore drill: back up (or take an existing backup), restore it into a
 * scratch database, run the smoke checks, and measure RPO (how old the
 * backup's snapshot was when the restore began: what a real loss at that
 * moment would have lost) and RTO (restore + checks).
 */
export interface ScratchDatabase {
  target: DbTarget;
  /** Where it is, for the report (no password). */
  description: string;
  dispose(): Promise<void>;
}

/** Role: makes the empty database a drill restores into. */
export interface ScratchProvider {
  create(): Promise<ScratchDatabase>;
}

/** A fresh database on the same PostgreSQL server (needs CREATEDB), dropped afterwards unless kept. */
export function postgresScratch(adminUrl: string, o: { keep?: boolean } = {}): ScratchProvider {
  return {
    async create() {
      const name = `aegis_drill_${new Date().toISOString().replace(/\D/g, '').slice(0, 14)}_${randomBytes(3).toString('hex')}`;
      const admin = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 10_000 });
      try {
        await admin.connect();
        await admin.query(`CREATE DATABASE ${name}`);
      } catch (err) {
        await admin.end().catch(() => undefined);
        throw new AegisError('RESTORE_FAILED', `cannot create the scratch database ${name} for the drill: ${(err as Error).message}`, {
          cause: err,
          hint: 'The drill needs a role that may CREATE DATABASE on the server, or an empty database given with --scratch-url.',
        });
      }
      await admin.end();
      const u = new URL(adminUrl);
      u.pathname = `/${name}`;
      const url = u.toString();
      const db = await openDbUnmigrated({ url });
      u.password = '';
      return {
        target: { db, url },
        description: u.toString(),
        async dispose() {
          await db.close();
          if (o.keep) return;
          const drop = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 10_000 });
          await drop.connect();
          try {
            await drop.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
          } finally {
            await drop.end();
          }
        },
      };
    },
  };
}

/** An existing database (must be empty unless `force`), left as the restore made it. */
export function existingScratch(url: string, o: { force?: boolean } = {}): ScratchProvider {
  return {
    async create() {
      const db = await openDbUnmigrated({ url });
      const withData = await tablesWithRows(db);
      if (withData.length && !o.force) {
        await db.close();
        throw new AegisError('RESTORE_TARGET_NOT_EMPTY', `the scratch database holds data (${withData.slice(0, 5).join(', ')}); a drill restores into an empty one`, {
          hint: 'Give an empty database to --scratch-url, or pass --force to let the drill replace its contents.',
        });
      }
      const u = new URL(url);
      u.password = '';
      return { target: { db, ...(url.startsWith('postgres') ? { url } : {}) }, description: u.protocol.startsWith('postgres') ? u.toString() : url, dispose: () => db.close() };
    },
  };
}

/** An in-memory PGlite database (the embedded platform's drill). */
export function pgliteScratch(): ScratchProvider {
  return {
    async create() {
      const db = await openDbUnmigrated({ url: MEMORY });
      return { target: { db }, description: 'in-memory PGlite', dispose: () => db.close() };
    },
  };
}

export interface DrillOptions {
  source: DbTarget;
  store: ArtifactStore;
  /** An existing backup (`latest`, an id, a URI) instead of a new one. */
  from?: string | undefined;
  format?: BackupFormat | undefined;
  scratch: ScratchProvider;
  tools?: PgToolPaths;
  archives: RestoreOptions['archives'];
  healthUrl?: string | undefined;
  runs?: BackupRunLog;
  now?: () => Date;
}

export interface DrillReport {
  ok: boolean;
  backup: { id: string; uri: string; new: boolean; startedAt: string; finishedAt: string; bytes: number };
  scratch: string;
  /** Seconds between the backup's snapshot and the start of the restore. */
  rpoSeconds: number;
  /** Seconds to restore (verify, load, migrate) and check. */
  rtoSeconds: number;
  restore: RestoreReport;
}

export async function runDrill(o: DrillOptions): Promise<DrillReport> {
  const now = o.now ?? (() => new Date());
  let made: BackupResult | undefined;
  if (!o.from) {
    const startedAt = now();
    try {
      made = await runBackup({ source: o.source, store: o.store, ...(o.format ? { format: o.format } : {}), ...(o.tools ? { tools: o.tools } : {}), now });
    } catch (err) {
      const e = err as AegisError;
      await recordQuietly(o.runs, { trigger: 'drill', status: 'failed', startedAt, finishedAt: now(), errorCode: e.code, errorMessage: e.message });
      throw err;
    }
    await recordQuietly(o.runs, {
      trigger: 'drill',
      status: 'succeeded',
      startedAt,
      finishedAt: now(),
      backupId: made.manifest.id,
      location: made.uri,
      format: made.manifest.format,
      bytes: made.manifest.dump.size,
    });
  }
  const backup = made ? await readBackup(made.location) : await resolveBackup(o.from!, o.store);
  const scratch = await o.scratch.create();
  try {
    const restoreStart = now();
    const restore = await runRestore({
      backup,
      target: scratch.target,
      archives: o.archives,
      healthUrl: o.healthUrl,
      ...(o.tools ? { tools: o.tools } : {}),
      force: true,
      now,
    });
    const rpoSeconds = Math.max(0, (restoreStart.getTime() - Date.parse(backup.manifest.startedAt)) / 1000);
    const report: DrillReport = {
      ok: restore.ok,
      backup: {
        id: backup.id,
        uri: backup.location.uri,
        new: made !== undefined,
        startedAt: backup.manifest.startedAt,
        finishedAt: backup.manifest.finishedAt,
        bytes: backup.manifest.dump.size,
      },
      scratch: scratch.description,
      rpoSeconds: Math.round(rpoSeconds * 1000) / 1000,
      rtoSeconds: restore.timings.totalMs / 1000,
      restore,
    };
    childLogger('backup').info({ event: 'restore_drill', ok: report.ok, backup: backup.id, rpoSeconds: report.rpoSeconds, rtoSeconds: report.rtoSeconds }, 'restore drill finished');
    return report;
  } finally {
    await scratch.dispose();
  }
}
