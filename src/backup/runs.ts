import type { Queryable } from '../db/types.js';
import { isAegisError } from '../errors.js';
import { childLogger } from '../log.js';

/**
 * The outcome of every backup run (scheduled, manual, drill), kept in the
 * `backup_runs` table (migration 2). A role so the scheduler can be tested
 * without a database.
 */
export type BackupTrigger = 'schedule' | 'manual' | 'drill';

export interface BackupRun {
  trigger: BackupTrigger;
  status: 'succeeded' | 'failed';
  startedAt: Date;
  finishedAt: Date;
  backupId?: string | undefined;
  location?: string | undefined;
  format?: string | undefined;
  bytes?: number | undefined;
  errorCode?: string | undefined;
  errorMessage?: string | undefined;
}

export interface BackupRunLog {
  record(run: BackupRun): Promise<void>;
  /** Finish time of the newest successful run, if any. */
  lastSuccess(): Promise<Date | undefined>;
  recent(limit: number): Promise<BackupRun[]>;
}

interface RunRow {
  trigger: BackupTrigger;
  status: 'succeeded' | 'failed';
  started_at: Date;
  finished_at: Date;
  backup_id: string | null;
  location: string | null;
  format: string | null;
  bytes: number | null;
  error_code: string | null;
  error_message: string | null;
}

export class DbBackupRunLog implements BackupRunLog {
  readonly #db: Queryable;

  constructor(db: Queryable) {
    this.#db = db;
  }

  async record(run: BackupRun): Promise<void> {
    await this.#db.query(
      `INSERT INTO backup_runs (trigger, status, started_at, finished_at, backup_id, location, format, bytes, error_code, error_message)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
      [
        run.trigger,
        run.status,
        run.startedAt,
        run.finishedAt,
        run.backupId ?? null,
        run.location ?? null,
        run.format ?? null,
        run.bytes ?? null,
        run.errorCode ?? null,
        run.errorMessage?.slice(0, 2000) ?? null,
      ],
    );
  }

  async lastSuccess(): Promise<Date | undefined> {
    const r = await this.#db.query<{ at: Date | null }>("SELECT max(finished_at) AS at FROM backup_runs WHERE status = 'succeeded'");
    return r.rows[0]?.at ?? undefined;
  }

  async recent(limit: number): Promise<BackupRun[]> {
    const r = await this.#db.query<RunRow>(
      'SELECT trigger, status, started_at, finished_at, backup_id, location, format, bytes, error_code, error_message FROM backup_runs ORDER BY id DESC LIMIT $1',
      [limit],
    );
    return r.rows.map((x) => ({
      trigger: x.trigger,
      status: x.status,
      startedAt: x.started_at,
      finishedAt: x.finished_at,
      ...(x.backup_id ? { backupId: x.backup_id } : {}),
      ...(x.location ? { location: x.location } : {}),
      ...(x.format ? { format: x.format } : {}),
      ...(x.bytes !== null ? { bytes: Number(x.bytes) } : {}),
      ...(x.error_code ? { errorCode: x.error_code } : {}),
      ...(x.error_message ? { errorMessage: x.error_message } : {}),
    }));
  }
}

/** Records a run without letting a recording failure hide the backup's own outcome. */
export async function recordQuietly(log: BackupRunLog | undefined, run: BackupRun): Promise<void> {
  if (!log) return;
  try {
    await log.record(run);
  } catch (err) {
    childLogger('backup').warn(
      { event: 'backup_run_not_recorded', status: run.status, code: isAegisError(err) ? err.code : undefined, err: (err as Error).message },
      'could not record the backup run in backup_runs',
    );
  }
}
