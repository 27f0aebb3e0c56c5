/**
 * The database role: one interface, two drivers (db/pglite for the embedded
 * default in ./.aegis/db, db/pg for PostgreSQL when AEGIS_DATABASE_URL is set).
 * The same SQL (PostgreSQL dialect) and migrations run on both.
 */
export interface QueryResult<T> {
  rows: T[];
  rowCount: number;
}

export interface Queryable {
  /**
   * Runs one statement with `$1…` parameters. Without `params`, `sql` may hold
   * several statements separated by `;` (migrations); the result is the last one's.
   * Row values: timestamptz → Date, jsonb → parsed JSON, int8/bigserial → number
   * (bigint beyond 2^53), numeric → string.
   */
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<QueryResult<T>>;
}

export interface Db extends Queryable {
  readonly engine: 'pglite' | 'postgres';
  /** Runs `fn` in a transaction (BEGIN/COMMIT, ROLLBACK on throw). */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}
