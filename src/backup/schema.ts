import type { Db, Queryable } from '../db/types.js';

/**
 * What the backup sees of a database, discovered from the catalog rather
 * than hard-coded, so tables added by later migrations are covered
 * automatically: every ordinary table and sequence in every user schema
 * (all schemas but pg_catalog, information_schema and pg_*). Names are
 * qualified and quoted as `quote_ident(schema).quote_ident(name)`, the form
 * pg_dump writes.
 */
const USER_SCHEMA = `n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'`;
/** Objects that belong to an extension are the extension's, not ours. */
const NOT_EXTENSION = `NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')`;

export interface TableInfo {
  /** Qualified, quoted name, e.g. `public.models`. */
  name: string;
  schema: string;
  table: string;
}

export interface ColumnInfo {
  name: string;
  /** `format_type()`, e.g. `character(64)`, `timestamp with time zone`. */
  type: string;
  generated: boolean;
}

export async function userTables(q: Queryable): Promise<TableInfo[]> {
  const r = await q.query<TableInfo>(
    `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS name, n.nspname AS schema, c.relname AS table
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind = 'r' AND ${USER_SCHEMA} AND ${NOT_EXTENSION}
     ORDER BY n.nspname, c.relname`,
  );
  return r.rows;
}

export async function tableColumns(q: Queryable, table: string): Promise<ColumnInfo[]> {
  const r = await q.query<ColumnInfo>(
    `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, a.attgenerated <> '' AS generated
     FROM pg_attribute a WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
    [table],
  );
  return r.rows;
}

export async function userSequences(q: Queryable): Promise<string[]> {
  const r = await q.query<{ name: string }>(
    `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS name
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind = 'S' AND ${USER_SCHEMA} AND ${NOT_EXTENSION}
     ORDER BY n.nspname, c.relname`,
  );
  return r.rows.map((x) => x.name);
}

/**
 * Tables ordered so that every table comes after the tables its foreign keys
 * reference (self-references ignored); tables in a reference cycle keep name order at the end.
 */
export async function foreignKeyOrder(q: Queryable, tables: readonly TableInfo[]): Promise<TableInfo[]> {
  const r = await q.query<{ child: string; parent: string }>(
    `SELECT quote_ident(cn.nspname) || '.' || quote_ident(cc.relname) AS child,
            quote_ident(pn.nspname) || '.' || quote_ident(pc.relname) AS parent
     FROM pg_constraint k
     JOIN pg_class cc ON cc.oid = k.conrelid JOIN pg_namespace cn ON cn.oid = cc.relnamespace
     JOIN pg_class pc ON pc.oid = k.confrelid JOIN pg_namespace pn ON pn.oid = pc.relnamespace
     WHERE k.contype = 'f'`,
  );
  const parents = new Map<string, Set<string>>(tables.map((t) => [t.name, new Set<string>()]));
  for (const { child, parent } of r.rows) if (child !== parent && parents.has(parent)) parents.get(child)?.add(parent);
  const ordered: TableInfo[] = [];
  const done = new Set<string>();
  let progress = true;
  while (progress && ordered.length < tables.length) {
    progress = false;
    for (const t of tables) {
      if (done.has(t.name) || ![...parents.get(t.name)!].every((p) => done.has(p))) continue;
      ordered.push(t);
      done.add(t.name);
      progress = true;
    }
  }
  for (const t of tables) if (!done.has(t.name)) ordered.push(t);
  return ordered;
}

/** Exact row counts (in the caller's snapshot). */
export async function rowCounts(q: Queryable, tables: readonly TableInfo[]): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const t of tables) {
    const r = await q.query<{ n: number | bigint }>(`SELECT count(*) AS n FROM ${t.name}`);
    counts[t.name] = Number(r.rows[0]!.n);
  }
  return counts;
}

/** The migration bookkeeping table: restores manage it, and it does not make a database "non-empty". */
export const MIGRATIONS_TABLE = 'schema_migrations';

/** User tables holding at least one row (schema_migrations aside): what makes a restore target non-empty. */
export async function tablesWithRows(q: Queryable): Promise<string[]> {
  const out: string[] = [];
  for (const t of await userTables(q)) {
    if (t.table === MIGRATIONS_TABLE) continue;
    const r = await q.query<{ any: boolean }>(`SELECT EXISTS (SELECT 1 FROM ${t.name}) AS any`);
    if (r.rows[0]?.any) out.push(t.name);
  }
  return out;
}

/**
 * Drops every user object so a restore starts from nothing: schemas other
 * than `public` go whole; in `public`, every table, view, sequence, routine
 * and free-standing type (extension members are left alone). One transaction.
 */
export async function wipeUserSchemas(db: Db): Promise<void> {
  await db.transaction(async (tx) => {
    const schemas = await tx.query<{ name: string }>(
      `SELECT quote_ident(n.nspname) AS name FROM pg_namespace n
       WHERE ${USER_SCHEMA} AND n.nspname <> 'public'
         AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass AND d.objid = n.oid AND d.deptype = 'e')`,
    );
    for (const s of schemas.rows) await tx.query(`DROP SCHEMA ${s.name} CASCADE`);
    const relations = await tx.query<{ kind: string; name: string }>(
      `SELECT c.relkind AS kind, 'public.' || quote_ident(c.relname) AS name
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND ${NOT_EXTENSION}
       ORDER BY c.relkind`,
    );
    const kinds: Record<string, string> = { r: 'TABLE', p: 'TABLE', v: 'VIEW', m: 'MATERIALIZED VIEW', S: 'SEQUENCE', f: 'FOREIGN TABLE' };
    for (const rel of relations.rows) await tx.query(`DROP ${kinds[rel.kind]!} IF EXISTS ${rel.name} CASCADE`);
    const routines = await tx.query<{ sig: string }>(
      `SELECT p.oid::regprocedure::text AS sig FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
       WHERE n.nspname = 'public' AND p.prokind IN ('f', 'p', 'a', 'w')
         AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')`,
    );
    for (const r of routines.rows) await tx.query(`DROP ROUTINE IF EXISTS ${r.sig} CASCADE`);
    const types = await tx.query<{ name: string }>(
      `SELECT t.oid::regtype::text AS name FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
       WHERE n.nspname = 'public' AND t.typtype IN ('c', 'd', 'e', 'r')
         AND (t.typrelid = 0 OR (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c')
         AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e')`,
    );
    for (const t of types.rows) await tx.query(`DROP TYPE IF EXISTS ${t.name} CASCADE`);
  });
}

export async function serverVersion(q: Queryable): Promise<string> {
  const r = await q.query<{ v: string }>("SELECT current_setting('server_version') AS v");
  return r.rows[0]!.v;
}
