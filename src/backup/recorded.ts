import type { AegisError } from '../errors.js';
import { runBackup, type BackupOptions, type BackupResult } from './backup.js';
import { pruneBackups, type PruneResult, type RetentionPolicy } from './retention.js';
import { recordQuietly, type BackupRunLog, type BackupTrigger } from './runs.js';

/**
 * One backup, its outcome recorded in backup_runs (trigger, status, times,
 * size or error), then retention when a policy is given (a failed prune is
 * an error here: the user asked for it). What `aegis db backup` runs, in the
 * CLI or, while `aegis up` holds the embedded database, in the control plane.
 */
export async function runRecordedBackup(
  o: BackupOptions & { runs: BackupRunLog; trigger: BackupTrigger; retention?: RetentionPolicy | undefined },
): Promise<{ result: BackupResult; pruned?: PruneResult }> {
  const startedAt = new Date();
  let result: BackupResult;
  try {
    result = await runBackup(o);
  } catch (err) {
    const e = err as AegisError;
    await recordQuietly(o.runs, { trigger: o.trigger, status: 'failed', startedAt, finishedAt: new Date(), errorCode: e.code, errorMessage: e.message });
    throw err;
  }
  await recordQuietly(o.runs, {
    trigger: o.trigger,
    status: 'succeeded',
    startedAt,
    finishedAt: new Date(),
    backupId: result.manifest.id,
    location: result.uri,
    format: result.manifest.format,
    bytes: result.manifest.dump.size,
  });
  const pruned = o.retention ? await pruneBackups(o.store, o.retention) : undefined;
  return pruned ? { result, pruned } : { result };
}
