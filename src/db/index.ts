import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AegisError } from '../errors.js';
import { asMigrationError, migrate, type Migration, MIGRATIONS } from './migrations.js';
import { openPostgres } from './pg/index.js';
import { MEMORY, openPglite } from './pglite/index.js';
import type { Db } from './types.js';

export type { Db, Queryable, QueryResult } from './types.js';
export { currentSchemaVersion, LATEST_SCHEMA_VERSION, migrate, MIGRATIONS, type Migration } from './migrations.js';
export { MEMORY } from './pglite/index.js';

/** Where the embedded database lives by default (under the Aegis home, ./.aegis). */
export const DEFAULT_DATA_DIR = join('.aegis', 'db');

export interface OpenDbOptions {
  /** postgres:// or postgresql:// → PostgreSQL (AEGIS_DATABASE_URL); memory://, file:// or a folder → PGlite. */
  url?: string;
  /** PGlite data folder when `url` is not a PostgreSQL URL; default ./.aegis/db. */
  dataDir?: string;
  /** For tests: the migration list to bring the database to (default: all of this build's). */
  migrations?: readonly Migration[];
}

export function isPostgresUrl(url: string | undefined): url is string {
  return url !== undefined && /^postgres(ql)?:\/\//i.test(url);
}

/** The PGlite folder (or memory://) a non-PostgreSQL `url` / `dataDir` names. */
function embeddedLocation(url: string | undefined, dataDir: string | undefined): string {
  if (url === undefined || url === '') return dataDir ?? DEFAULT_DATA_DIR;
  if (url === MEMORY) return MEMORY;
  if (/^file:\/\//i.test(url)) return fileURLToPath(url);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) {
    throw new AegisError('CONFIG_INVALID', `unsupported database URL scheme in ${url.replace(/\/\/[^@/]*@/, '//***@')}`, {
      hint: 'Use postgres://USER:PASSWORD@HOST:5432/DATABASE for PostgreSQL, or a folder / file:// URL / memory:// for the embedded database.',
    });
  }
  return url;
}

/**
 * Opens the metadata database and brings its schema up to date. Throws
 * DB_UNREACHABLE (cannot connect / open), DB_LOCKED (embedded DB used by
 * another process), DB_SCHEMA_TOO_NEW or DB_MIGRATION_FAILED; the database is
 * closed again on failure.
 */
export async function openDb(options: OpenDbOptions = {}): Promise<Db> {
  const { url } = options;
  const db = isPostgresUrl(url) ? await openPostgres(url) : await openPglite(embeddedLocation(url, options.dataDir));
  try {
    await migrate(db, options.migrations ?? MIGRATIONS);
  } catch (err) {
    await db.close().catch(() => undefined);
    throw asMigrationError(err);
  }
  return db;
}

/**
 * Opens the database as it is, without migrating it: for restores, whose target
 * must be inspected (and emptied) before any schema is created in it.
 */
export async function openDbUnmigrated(options: Omit<OpenDbOptions, 'migrations'> = {}): Promise<Db> {
  const { url } = options;
  return isPostgresUrl(url) ? openPostgres(url) : openPglite(embeddedLocation(url, options.dataDir));
}

/** A throw-away, migrated in-memory database (tests, dry runs). */
export function openMemoryDb(): Promise<Db> {
  return openDb({ url: MEMORY });
}
