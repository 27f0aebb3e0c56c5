import { PGlite, type Results, type Transaction } from '@electric-sql/pglite';
import { mkdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { AegisError } from '../../errors.js';
import type { Db, QueryResult, Queryable } from '../types.js';
import { acquireDirLock, type DirLock } from './lock.js';

/**
 * Embedded driver: PostgreSQL compiled to WASM (PGlite), in-process, one
 * connection. `dataDir` is a folder (created if missing) or `memory://` for a
 * throw-away database (tests).
 *
 * PGlite itself does not stop a second process from opening the same folder
 * (which corrupts it), so a lock file `<dataDir>.lock` holding our pid guards
 * it for as long as the database is open.
 */
export const MEMORY = 'memory://';

type PgliteQueryable = Pick<Transaction, 'query' | 'exec'>;

function toResult<T>(r: Results<T>): QueryResult<T> {
  return { rows: r.rows, rowCount: r.rowCount ?? r.affectedRows ?? r.rows.length };
}

async function run<T>(target: PgliteQueryable, sql: string, params?: unknown[]): Promise<QueryResult<T>> {
  if (params === undefined) {
    // Simple protocol: several statements allowed (migrations); report the last one.
    const all = await target.exec(sql);
    const last = all[all.length - 1];
    return last ? toResult(last as Results<T>) : { rows: [], rowCount: 0 };
  }
  return toResult(await target.query<T>(sql, params));
}

class PgliteDb implements Db {
  readonly engine = 'pglite' as const;
  readonly #pg: PGlite;
  readonly #lock: DirLock | undefined;

  constructor(pg: PGlite, lock: DirLock | undefined) {
    this.#pg = pg;
    this.#lock = lock;
  }

  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<QueryResult<T>> {
    return run<T>(this.#pg, sql, params);
  }

  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    // PGlite's transaction() issues BEGIN/COMMIT (ROLLBACK on throw) and holds
    // its mutex, so other queries on this instance wait until it ends.
    return this.#pg.transaction((tx) => fn({ query: <R>(sql: string, params?: unknown[]) => run<R>(tx, sql, params) }));
  }

  async close(): Promise<void> {
    try {
      if (!this.#pg.closed) await this.#pg.close();
    } finally {
      await this.#lock?.release();
    }
  }
}

export async function openPglite(dataDir: string): Promise<Db> {
  const memory = dataDir === MEMORY;
  const dir = memory ? MEMORY : resolve(dataDir);
  let lock: DirLock | undefined;
  if (!memory) {
    await mkdir(dirname(dir), { recursive: true }).catch((err: unknown) => {
      throw unreachable(dir, err);
    });
    lock = await acquireDirLock(`${dir}.lock`, dir);
  }
  try {
    const pg = await PGlite.create(dir);
    return new PgliteDb(pg, lock);
  } catch (err) {
    await lock?.release();
    throw unreachable(dir, err);
  }
}

function unreachable(dir: string, err: unknown): AegisError {
  return new AegisError('DB_UNREACHABLE', `cannot open the embedded database in ${dir}: ${(err as Error).message}`, {
    cause: err,
    hint:
      'Check that the folder is writable and holds an Aegis database (or is empty); ' +
      'set AEGIS_HOME to use another folder, or AEGIS_DATABASE_URL to use PostgreSQL.',
    details: { dataDir: dir },
  });
}
