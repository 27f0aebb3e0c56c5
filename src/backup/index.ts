/**
 * Database backup, restore, restore drills and the backup schedule.
 * See docs/backup-restore.md for the runbook and the formats.
 */
export { defaultFormat, runBackup, type BackupOptions, type BackupResult } from './backup.js';
export { compareIds, listBackups, locationIn, readBackup, resolveBackup, type BackupListing } from './catalog.js';
export { checkHealth, checkModelArchives, checkRowCounts, type ArchiveCheckOptions } from './checks.js';
export { existingScratch, pgliteScratch, postgresScratch, runDrill, type DrillOptions, type DrillReport, type ScratchDatabase, type ScratchProvider } from './drill.js';
export { BackupMetrics } from './metrics.js';
export { backupIdAt, backupIdTime, isBackupId, parseManifest } from './manifest.js';
export { findPgTool, type PgToolPaths } from './pgtools.js';
export { runRecordedBackup } from './recorded.js';
export { backupStore, FORMAT_NAMES, pgTools, signatureCachePath } from './settings.js';
export { fetchVerifiedDump, runRestore, type RestoreOptions, type RestoreReport } from './restore.js';
export { checkPolicy, deleteBackup, planRetention, pruneBackups, type PruneResult, type RetentionPlan, type RetentionPolicy } from './retention.js';
export { DbBackupRunLog, recordQuietly, type BackupRun, type BackupRunLog, type BackupTrigger } from './runs.js';
export { backupJob, BackupScheduler, parseSchedule, type BackupSchedulerOptions, type RunOutcome, type Timers } from './scheduler.js';
export * from './types.js';
