import type { Db, Queryable } from '../db/types.js';
import { AegisError } from '../errors.js';
import { copyLine, decodeRow, encodeRow, quoteIdent, setvalLine, type ScriptItem } from './copy-text.js';
import { MIGRATIONS_TABLE, tableColumns, userSequences, userTables } from './schema.js';

/**
 * The aegis-logical format: data only, as the data part of a dump script
 * (see copy-text.ts). Values are the types' text output, read under fixed
 * session settings so they read back identically on any PostgreSQL (and
 * PGlite) version: UTC, ISO dates, hex bytea, exact floats.
 */
export const LOGICAL_TOOL = 'aegis-logical 1';
const FETCH_ROWS = 2000;

export async function setPortableSession(q: Queryable): Promise<void> {
  await q.query(
    "SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, YMD'; SET LOCAL IntervalStyle = 'postgres'; " +
      "SET LOCAL extra_float_digits = 3; SET LOCAL bytea_output = 'hex'",
  );
}

/**
 * Writes the dump of every user table and sequence as text chunks, counting
 * rows per table into `counts`. Run inside one transaction (one snapshot);
 * rows are read through a cursor, so memory stays bounded.
 */
export async function* logicalDumpChunks(tx: Queryable, counts: Record<string, number>): AsyncGenerator<string> {
  await setPortableSession(tx);
  yield `-- Aegis database dump (${LOGICAL_TOOL}): data only, PostgreSQL COPY text format.\n-- Restore with \`aegis db restore\` (the schema comes from the migrations at the manifest's schemaVersion).\n`;
  let cursorNo = 0;
  for (const t of await userTables(tx)) {
    const columns = (await tableColumns(tx, t.name)).filter((c) => !c.generated);
    const cursor = `aegis_dump_${cursorNo++}`;
    const select = columns.map((c, i) => `(${quoteIdent(c.name)})::text AS c${i}`).join(', ');
    yield `\n${copyLine(t.name, columns.map((c) => c.name))}\n`;
    await tx.query(`DECLARE ${cursor} NO SCROLL CURSOR FOR SELECT ${select || 'NULL'} FROM ${t.name}`);
    let n = 0;
    for (;;) {
      const batch = await tx.query<Record<string, string | null>>(`FETCH FORWARD ${FETCH_ROWS} FROM ${cursor}`);
      if (batch.rows.length === 0) break;
      let chunk = '';
      for (const row of batch.rows) chunk += encodeRow(columns.map((_, i) => row[`c${i}`] ?? null)) + '\n';
      n += batch.rows.length;
      yield chunk;
    }
    await tx.query(`CLOSE ${cursor}`);
    counts[t.name] = n;
    yield '\\.\n';
  }
  yield '\n';
  for (const seq of await userSequences(tx)) {
    const r = await tx.query<{ value: string; called: boolean }>(`SELECT last_value::text AS value, is_called AS called FROM ${seq}`);
    yield `${setvalLine({ sequence: seq, value: r.rows[0]!.value, isCalled: r.rows[0]!.called })}\n`;
  }
}

export interface LoadResult {
  /** Rows inserted per table. */
  rows: Record<string, number>;
  sequences: number;
}

const BATCH_ROWS = 5000;
const BATCH_CHARS = 8 * 1024 * 1024;

interface ForeignKey {
  table: string;
  name: string;
  definition: string;
}

/**
 * Loads a data-only dump script into a database whose schema is already in
 * place (and whose tables are empty), in one transaction: foreign keys are
 * dropped for the load and added back (validated) at the end, so table order
 * does not matter; user triggers (e.g. the audit log's append-only guard)
 * are disabled while loading. Rows arrive as COPY text and are inserted in
 * batches with each column cast from text to its type, which works the same
 * on PGlite and PostgreSQL.
 */
export async function loadScript(db: Db, items: AsyncIterable<ScriptItem>, source: string): Promise<LoadResult> {
  return db.transaction(async (tx) => {
    await setPortableSession(tx);
    const tables = new Map((await userTables(tx)).map((t) => [t.name, t]));
    const fks = await tx.query<ForeignKey>(
      `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS table, quote_ident(k.conname) AS name,
              pg_get_constraintdef(k.oid) AS definition
       FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE k.contype = 'f' AND n.nspname NOT IN ('pg_catalog', 'information_schema')`,
    );
    for (const fk of fks.rows) await tx.query(`ALTER TABLE ${fk.table} DROP CONSTRAINT ${fk.name}`);
    for (const t of tables.values()) await tx.query(`ALTER TABLE ${t.name} DISABLE TRIGGER USER`);

    const rows: Record<string, number> = {};
    let sequences = 0;
    for await (const item of items) {
      if (item.kind === 'setval') {
        await tx.query('SELECT setval($1::regclass, $2::bigint, $3::boolean)', [item.setval.sequence, item.setval.value, item.setval.isCalled]);
        sequences++;
        continue;
      }
      const { table, columns } = item.header;
      const info = tables.get(table);
      if (!info) throw mismatch(source, `it holds data for table ${table}, which the restored schema does not have`, { table });
      const targetColumns = new Map((await tableColumns(tx, table)).map((c) => [c.name, c]));
      const types = columns.map((c) => {
        const col = targetColumns.get(c);
        if (!col) throw mismatch(source, `it holds column ${c} of ${table}, which the restored schema does not have`, { table, column: c });
        return col.type;
      });
      if (info.table === MIGRATIONS_TABLE) await tx.query(`DELETE FROM ${table}`); // the dump's history replaces the one just written
      const insert =
        `INSERT INTO ${table} (${columns.map(quoteIdent).join(', ')}) OVERRIDING SYSTEM VALUE ` +
        `SELECT ${types.map((type, i) => `u.c${i}::${type}`).join(', ')} ` +
        `FROM unnest(${types.map((_, i) => `$${i + 1}::text[]`).join(', ')}) AS u(${types.map((_, i) => `c${i}`).join(', ')})`;
      let batch: Array<Array<string | null>> = columns.map(() => []);
      let batchRows = 0;
      let batchChars = 0;
      let count = 0;
      const flush = async () => {
        if (batchRows === 0) return;
        await tx.query(insert, batch);
        count += batchRows;
        batch = columns.map(() => []);
        batchRows = 0;
        batchChars = 0;
      };
      for await (const line of item.rows) {
        const values = decodeRow(line);
        if (values.length !== columns.length) {
          throw mismatch(source, `a row of ${table} has ${values.length} fields, expected ${columns.length}`, { table, row: count + batchRows + 1 });
        }
        for (let i = 0; i < values.length; i++) batch[i]!.push(values[i]!);
        batchRows++;
        batchChars += line.length;
        if (batchRows >= BATCH_ROWS || batchChars >= BATCH_CHARS) await flush();
      }
      await flush();
      rows[table] = (rows[table] ?? 0) + count;
    }

    for (const t of tables.values()) await tx.query(`ALTER TABLE ${t.name} ENABLE TRIGGER USER`);
    for (const fk of fks.rows) await tx.query(`ALTER TABLE ${fk.table} ADD CONSTRAINT ${fk.name} ${fk.definition}`);
    return { rows, sequences };
  });
}

function mismatch(source: string, what: string, details: Record<string, unknown>): AegisError {
  return new AegisError('RESTORE_FAILED', `cannot load ${source}: ${what}`, {
    hint: 'The dump does not match the schema version its manifest records; restore another backup, or use the Aegis version that made it.',
    details,
  });
}
