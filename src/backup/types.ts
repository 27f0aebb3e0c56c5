import type { Db } from '../db/types.js';
import type { ArtifactStore } from '../store/types.js';

/**
 * Database backups as stored: `db-backups/<id>/dump.<ext>` and
 * `db-backups/<id>/manifest.json`, the manifest written last. A backup is
 * complete when its manifest exists, parses, and names a dump of the size it
 * records; anything else under `db-backups/` is incomplete (in flight, or left
 * by a crash) and is never listed as a backup nor restored.
 */
export const BACKUPS_PREFIX = 'db-backups/';
export const MANIFEST_NAME = 'manifest.json';

/**
 * - `pg_dump-custom`: `pg_dump -Fc` of a PostgreSQL database (schema + data), restored with `pg_restore`.
 * - `aegis-logical`: data only, gzip'd SQL with one `COPY … FROM stdin` block per table and `setval` per
 *   sequence (the data part of a `pg_restore -f -` script); restored into a schema rebuilt by the
 *   migrations at the recorded schema version. Written for PGlite; loadable into either engine.
 */
export const BACKUP_FORMATS = ['pg_dump-custom', 'aegis-logical'] as const;
export type BackupFormat = (typeof BACKUP_FORMATS)[number];

export const DUMP_NAMES: Readonly<Record<BackupFormat, string>> = Object.freeze({
  'pg_dump-custom': 'dump.pgdump',
  'aegis-logical': 'dump.sql.gz',
});

export type Engine = Db['engine'];

export interface BackupManifest {
  apiVersion: 'aegis.dev/v1';
  kind: 'DatabaseBackup';
  /** UTC timestamp of the start, e.g. 20261122T223000Z (a `-N` suffix when that second was taken). */
  id: string;
  format: BackupFormat;
  engine: Engine;
  /** `SHOW server_version` of the database that was backed up. */
  serverVersion: string;
  /** What wrote the dump, e.g. `pg_dump (PostgreSQL) 15.18` or `aegis-logical 1`. */
  tool: string;
  /** Highest schema migration applied to the database at the snapshot. */
  schemaVersion: number;
  /** Rows per table (`schema.table`) in the snapshot the dump was taken from. */
  tables: Record<string, number>;
  dump: { name: string; sha256: string; size: number };
  startedAt: string;
  finishedAt: string;
}

/** Where one backup lives: `prefix` + file name, in `store`. */
export interface BackupLocation {
  store: ArtifactStore;
  /** Key prefix of the backup's folder, ending in `/` (or '' when the store is rooted at the folder). */
  prefix: string;
  id: string;
  /** URI of the backup's folder, for messages and reports. */
  uri: string;
}

export interface CompleteBackup {
  id: string;
  location: BackupLocation;
  manifest: BackupManifest;
}

export interface IncompleteBackup {
  id: string;
  location: BackupLocation;
  /** Why it does not count as a backup. */
  reason: string;
  keys: string[];
}

/** A database to back up or restore into: the open handle, plus the URL that pg_dump / pg_restore connect to (PostgreSQL). */
export interface DbTarget {
  db: Db;
  /** postgres://… for PostgreSQL; undefined for PGlite. */
  url?: string;
}

export type CheckStatus = 'passed' | 'failed' | 'skipped';

export interface CheckResult {
  name: 'dump-integrity' | 'row-counts' | 'model-archives' | 'control-plane-health';
  status: CheckStatus;
  detail: string;
  /** Individual problems (first ones), for the report. */
  problems?: string[];
}
