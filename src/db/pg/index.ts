import pg from 'pg';
import type { CustomTypesConfig, PoolClient, QueryResult as PgResult } from 'pg';
import { AegisError } from '../../errors.js';
import { childLogger } from '../../log.js';
import type { Db, QueryResult, Queryable } from '../types.js';

/**
 * PostgreSQL driver (node-postgres Pool). The connection string comes from the
 * caller (the app reads AEGIS_DATABASE_URL). Values are parsed like PGlite does
 * (int8 → number while exact), so both drivers return the same rows.
 */
const INT8 = 20;

const types: CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
    if (oid === INT8 && format !== 'binary') {
      return (v: string) => {
        const n = BigInt(v);
        return n < BigInt(Number.MIN_SAFE_INTEGER) || n > BigInt(Number.MAX_SAFE_INTEGER) ? n : Number(n);
      };
    }
    return pg.types.getTypeParser(oid, format ?? 'text');
  }) as CustomTypesConfig['getTypeParser'],
};

export interface PgTarget {
  host: string;
  port: number;
  database: string;
  user: string;
}

/** Where a connection string points, without the password (for messages). */
export function describeTarget(url: string): PgTarget {
  try {
    const u = new URL(url);
    const socket = u.searchParams.get('host');
    return {
      host: socket ?? (u.hostname || 'localhost'),
      port: Number(u.port || u.searchParams.get('port') || 5432),
      database: decodeURIComponent(u.pathname.replace(/^\//, '')) || decodeURIComponent(u.username) || 'postgres',
      user: decodeURIComponent(u.username) || '(default user)',
    };
  } catch (err) {
    throw new AegisError('CONFIG_INVALID', 'the PostgreSQL connection string is not a valid URL', {
      cause: err,
      hint: 'Use the form postgres://USER:PASSWORD@HOST:5432/DATABASE (AEGIS_DATABASE_URL).',
    });
  }
}

const CONNECT_ERRNO = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE']);

/** Errors meaning "could not talk to the server", as opposed to a failing statement. */
export function isConnectionError(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | undefined;
  const code = typeof e?.code === 'string' ? e.code : '';
  const message = typeof e?.message === 'string' ? e.message : '';
  return (
    CONNECT_ERRNO.has(code) ||
    code.startsWith('08') || // connection exception
    code.startsWith('28') || // invalid authorization
    code === '3D000' || // database does not exist
    code === '57P01' || // admin shutdown
    code === '57P03' || // cannot connect now (starting up)
    code === '53300' || // too many connections
    /timeout expired|Connection terminated|connect ECONNREFUSED/i.test(message)
  );
}

export function unreachableError(t: PgTarget, err: unknown): AegisError {
  const code = (err as { code?: string }).code;
  const where = `${t.host}:${t.port}`;
  let hint = `Check that PostgreSQL is running and reachable at ${where} (pg_isready -h ${t.host} -p ${t.port}), and that AEGIS_DATABASE_URL is right.`;
  if (code?.startsWith('28')) hint = `Check the user name and password in AEGIS_DATABASE_URL for user ${t.user} on ${where}.`;
  if (code === '3D000') hint = `Create the database first (createdb -h ${t.host} -p ${t.port} ${t.database}) or fix its name in AEGIS_DATABASE_URL.`;
  return new AegisError('DB_UNREACHABLE', `cannot reach PostgreSQL database "${t.database}" at ${where}: ${(err as Error).message || code}`, {
    cause: err,
    hint,
    details: { host: t.host, port: t.port, database: t.database, ...(code ? { errorCode: code } : {}) },
  });
}

/** COMMIT rolled back a transaction that an earlier failed statement had aborted. */
export class TransactionAbortedError extends Error {
  constructor() {
    super('the transaction was rolled back: a statement in it failed earlier (and the error was caught)');
    this.name = 'TransactionAbortedError';
  }
}

function toResult<T>(r: PgResult | PgResult[]): QueryResult<T> {
  // Several statements without parameters (simple protocol) give one result each.
  const last = Array.isArray(r) ? r[r.length - 1] : r;
  if (!last) return { rows: [], rowCount: 0 };
  return { rows: last.rows as T[], rowCount: last.rowCount ?? last.rows.length };
}

class PgDb implements Db {
  readonly engine = 'postgres' as const;
  readonly #pool: pg.Pool;
  readonly #target: PgTarget;
  #closing = false;

  constructor(pool: pg.Pool, target: PgTarget) {
    this.#pool = pool;
    this.#target = target;
    const log = childLogger('db');
    // An idle client losing its connection must not crash the process; the next query reports it.
    // (Connections being shut down by close() may still report their end: not worth a warning.)
    pool.on('error', (err) => {
      if (!this.#closing) log.warn({ err, host: target.host, port: target.port }, 'idle PostgreSQL connection failed');
    });
  }

  async query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<QueryResult<T>> {
    try {
      return toResult<T>(await this.#pool.query(sql, params));
    } catch (err) {
      throw isConnectionError(err) ? unreachableError(this.#target, err) : err;
    }
  }

  async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    let client: PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (err) {
      throw isConnectionError(err) ? unreachableError(this.#target, err) : err;
    }
    const tx: Queryable = {
      query: async <R>(sql: string, params?: unknown[]) => toResult<R>(await client.query(sql, params)),
    };
    let broken: unknown;
    try {
      await client.query('BEGIN');
      const result = await fn(tx);
      // COMMIT of a transaction aborted by a failed statement (caught inside fn) rolls
      // back without an error on PostgreSQL; fail like PGlite does instead of losing writes silently.
      const commit = await client.query('COMMIT');
      if (commit.command === 'ROLLBACK') throw new TransactionAbortedError();
      return result;
    } catch (err) {
      try {
        await client.query('ROLLBACK');
      } catch (rollbackErr) {
        broken = rollbackErr; // the connection is unusable: destroy it rather than return it to the pool
      }
      throw isConnectionError(err) ? unreachableError(this.#target, err) : err;
    } finally {
      client.release(broken !== undefined);
    }
  }

  close(): Promise<void> {
    if (this.#closing) return Promise.resolve();
    this.#closing = true;
    return this.#pool.end();
  }
}

export interface PgOptions {
  /** Pool size; default 10. */
  max?: number;
  /** How long to wait for a connection, ms; default 10 s. */
  connectTimeoutMs?: number;
}

/** Opens a pool and checks that the server answers (DB_UNREACHABLE if not). */
export async function openPostgres(url: string, options: PgOptions = {}): Promise<Db> {
  const target = describeTarget(url);
  const pool = new pg.Pool({
    connectionString: url,
    max: options.max ?? 10,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 10_000,
    types,
    application_name: 'aegis',
  });
  const db = new PgDb(pool, target);
  try {
    await pool.query('SELECT 1');
  } catch (err) {
    await db.close().catch(() => undefined);
    throw unreachableError(target, err);
  }
  return db;
}
