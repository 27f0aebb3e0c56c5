import { Counter, Gauge, type Registry } from 'prom-client';
import type { BackupRunLog } from './runs.js';

/**
 * Prometheus metrics of database backups, for the AegisDbBackupStale alert:
 * - aegis_db_backup_last_success_timestamp_seconds: when the newest successful
 *   backup finished (0: none known). At each scrape it also reads the run log
 *   (backup_runs), so backups made elsewhere (the Kubernetes CronJob, `aegis db
 *   backup`) count, and a restarted control plane does not report 0.
 * - aegis_db_backup_runs_total{outcome}: runs made by this process.
 */
export class BackupMetrics {
  readonly lastSuccess: Gauge;
  readonly runsTotal: Counter<'outcome'>;
  #known = 0;

  constructor(o: { registry: Registry; runs?: BackupRunLog | undefined }) {
    const update = async (): Promise<number> => {
      const last = await o.runs?.lastSuccess().catch(() => undefined);
      if (last) this.#known = Math.max(this.#known, last.getTime() / 1000);
      return this.#known;
    };
    this.lastSuccess = new Gauge({
      name: 'aegis_db_backup_last_success_timestamp_seconds',
      help: 'Unix time at which the newest successful database backup finished (0: none known).',
      registers: [o.registry],
      async collect() {
        this.set(await update());
      },
    });
    this.runsTotal = new Counter({
      name: 'aegis_db_backup_runs_total',
      help: 'Database backup runs made by this process, by outcome.',
      labelNames: ['outcome'],
      registers: [o.registry],
    });
    this.lastSuccess.set(0);
    this.runsTotal.inc({ outcome: 'success' }, 0);
    this.runsTotal.inc({ outcome: 'failure' }, 0);
  }

  succeeded(finishedAt: Date): void {
    this.#known = Math.max(this.#known, finishedAt.getTime() / 1000);
    this.lastSuccess.set(this.#known);
    this.runsTotal.inc({ outcome: 'success' });
  }

  failed(): void {
    this.runsTotal.inc({ outcome: 'failure' });
  }
}
