import { CronExpressionParser } from 'cron-parser';
import type { Registry } from 'prom-client';
import { AegisError, isAegisError } from '../errors.js';
import { childLogger } from '../log.js';
import { runBackup, type BackupOptions, type BackupResult } from './backup.js';
import { pruneBackups, type RetentionPolicy } from './retention.js';
import { BackupMetrics } from './metrics.js';
import { recordQuietly, type BackupRunLog } from './runs.js';

/**
 * Runs backups on a cron schedule (UTC) inside the control plane. Each run's
 * outcome goes to the BackupRunLog (backup_runs) and to the Prometheus
 * metrics of BackupMetrics (aegis_db_backup_last_success_timestamp_seconds,
 * aegis_db_backup_runs_total{outcome}).
 * Runs never overlap: a tick that comes while a run is in progress is skipped.
 * In a cluster the CronJob in docs/backup-restore.md does the same job.
 */
export interface Timers {
  now(): Date;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const realTimers: Timers = {
  now: () => new Date(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

/** Longest single wait (setTimeout's limit is 2^31-1 ms); longer waits are chained. */
const MAX_WAIT_MS = 2 ** 31 - 1;

export interface BackupSchedulerOptions {
  /** Cron expression, 5 fields (or 6 with seconds), evaluated in UTC. */
  schedule: string;
  /** Makes one backup (and applies retention); throws on failure. */
  backup: () => Promise<BackupResult>;
  runs?: BackupRunLog;
  /** Where the metrics are registered (the control plane's registry)… */
  registry?: Registry;
  /** … or metrics the control plane already made. */
  metrics?: BackupMetrics;
  timers?: Timers;
}

export function parseSchedule(expr: string): { next(after: Date): Date } {
  try {
    CronExpressionParser.parse(expr, { tz: 'UTC' });
  } catch (err) {
    throw new AegisError('BACKUP_SCHEDULE_INVALID', `the backup schedule ${JSON.stringify(expr)} is not a cron expression: ${(err as Error).message}`, {
      cause: err,
      hint: 'Use five fields (minute hour day-of-month month day-of-week), e.g. "30 2 * * *" for 02:30 UTC every day (backup.schedule, AEGIS_BACKUP_SCHEDULE).',
      details: { schedule: expr },
    });
  }
  return { next: (after) => CronExpressionParser.parse(expr, { tz: 'UTC', currentDate: after }).next().toDate() };
}

export interface RunOutcome {
  ok: boolean;
  result?: BackupResult;
  error?: AegisError;
}

export class BackupScheduler {
  readonly #o: BackupSchedulerOptions;
  readonly #timers: Timers;
  readonly #schedule: { next(after: Date): Date };
  readonly metrics: BackupMetrics;
  #timer: unknown;
  #nextRun: Date | undefined;
  #running: Promise<RunOutcome> | undefined;
  #started = false;

  constructor(o: BackupSchedulerOptions) {
    this.#o = o;
    this.#timers = o.timers ?? realTimers;
    this.#schedule = parseSchedule(o.schedule);
    if (!o.metrics && !o.registry) throw new AegisError('INTERNAL', 'BackupScheduler needs a metrics registry');
    this.metrics = o.metrics ?? new BackupMetrics({ registry: o.registry!, runs: o.runs });
  }

  /** Arms the timer for the next scheduled time. */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#arm();
  }

  /** Disarms the timer and waits for a run in progress. */
  async stop(): Promise<void> {
    this.#started = false;
    if (this.#timer !== undefined) this.#timers.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#nextRun = undefined;
    await this.#running;
  }

  get nextRun(): Date | undefined {
    return this.#nextRun;
  }

  /** Runs one backup now (the timer calls this; so can an operator). Overlapping calls share the run in progress. */
  runNow(): Promise<RunOutcome> {
    this.#running ??= this.#run().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  #arm(): void {
    if (!this.#started) return;
    const now = this.#timers.now();
    const next = this.#nextRun && this.#nextRun > now ? this.#nextRun : this.#schedule.next(now);
    this.#nextRun = next;
    const wait = Math.max(0, next.getTime() - now.getTime());
    this.#timer = this.#timers.setTimeout(() => this.#tick(), Math.min(wait, MAX_WAIT_MS));
  }

  #tick(): void {
    this.#timer = undefined;
    if (!this.#started) return;
    if (this.#nextRun && this.#timers.now() < this.#nextRun) return this.#arm(); // a chained long wait
    this.#nextRun = undefined;
    if (this.#running) {
      childLogger('backup').warn({ event: 'backup_tick_skipped' }, 'scheduled backup skipped: the previous one is still running');
      return this.#arm();
    }
    void this.runNow().finally(() => this.#arm());
  }

  async #run(): Promise<RunOutcome> {
    const startedAt = this.#timers.now();
    try {
      const result = await this.#o.backup();
      const finishedAt = this.#timers.now();
      this.metrics.succeeded(finishedAt);
      await recordQuietly(this.#o.runs, {
        trigger: 'schedule',
        status: 'succeeded',
        startedAt,
        finishedAt,
        backupId: result.manifest.id,
        location: result.uri,
        format: result.manifest.format,
        bytes: result.manifest.dump.size,
      });
      return { ok: true, result };
    } catch (err) {
      const error = isAegisError(err)
        ? err
        : new AegisError('BACKUP_FAILED', `scheduled backup failed: ${(err as Error)?.message ?? String(err)}`, { cause: err, hint: 'See the log for the cause.' });
      this.metrics.failed();
      childLogger('backup').error({ event: 'scheduled_backup_failed', code: error.code, reason: error.message }, 'scheduled database backup failed');
      await recordQuietly(this.#o.runs, {
        trigger: 'schedule',
        status: 'failed',
        startedAt,
        finishedAt: this.#timers.now(),
        errorCode: error.code,
        errorMessage: error.message,
      });
      return { ok: false, error };
    }
  }
}

/**
 * The job a control plane schedules: one backup, then retention (a failed
 * prune is logged, and does not make the backup a failure).
 */
export function backupJob(o: BackupOptions & { retention?: RetentionPolicy | undefined }): () => Promise<BackupResult> {
  return async () => {
    const result = await runBackup(o);
    if (o.retention) {
      await pruneBackups(o.store, o.retention).catch((err: unknown) =>
        childLogger('backup').warn({ event: 'backup_prune_failed', code: isAegisError(err) ? err.code : undefined, err: (err as Error).message }, 'pruning old backups failed'),
      );
    }
    return result;
  };
}
