import { join } from 'node:path';
import { platformPaths, type AegisConfig } from '../config/index.js';
import { openStore } from '../store/index.js';
import type { ArtifactStore } from '../store/types.js';
import type { PgToolPaths } from './pgtools.js';
import type { BackupFormat } from './types.js';

/**
 * What the CLI (`aegis db …`) and the control plane (the schedule, and the
 * commands it runs for the CLI while `aegis up` holds the embedded database)
 * derive from the configuration the same way.
 */

/** `--format` names (and the API's `format` values) for the backup formats. */
export const FORMAT_NAMES: Readonly<Record<'pgdump' | 'logical', BackupFormat>> = Object.freeze({ pgdump: 'pg_dump-custom', logical: 'aegis-logical' });

/** pg_dump / pg_restore as configured (backup.pgDumpPath, backup.pgRestorePath; else found on PATH). */
export function pgTools(config: AegisConfig): PgToolPaths {
  return { pgDump: config.backup.pgDumpPath, pgRestore: config.backup.pgRestorePath };
}

/** The store whose `db-backups/` holds the backups: `uri` when given, else backup.storeUri, else the artifact store. */
export function backupStore(config: AegisConfig, uri?: string): ArtifactStore {
  return openStore(uri ?? config.backup.storeUri ?? platformPaths(config).store);
}

/** The verified-signature cache the restore check uses (signing/verified-cache.ts): `<cache>/verified-signatures`. */
export function signatureCachePath(config: AegisConfig): string {
  return join(platformPaths(config).cache, 'verified-signatures');
}
