import { AegisError } from '../errors.js';

/**
 * PostgreSQL's COPY text format (one row per line, columns split by TAB,
 * `\N` for NULL, backslash escapes) and the few statements of a data-only
 * dump script around it: `COPY table (columns) FROM stdin;` … `\.` and
 * `SELECT pg_catalog.setval('sequence', value, is_called);`. That is what
 * `pg_restore --data-only -f -` prints for a pg_dump archive and what the
 * aegis-logical format writes, so one reader loads both.
 */

const ENCODE: Record<string, string> = { '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t', '\b': '\\b', '\f': '\\f', '\v': '\\v' };
const NEEDS_ESCAPE = /[\\\n\r\t\b\f\v]/g;

/** One field in COPY text form. */
export function encodeField(value: string | null): string {
  if (value === null) return '\\N';
  return value.replace(NEEDS_ESCAPE, (c) => ENCODE[c]!);
}

export function encodeRow(values: ReadonlyArray<string | null>): string {
  return values.map(encodeField).join('\t');
}

const SIMPLE: Record<string, string> = { b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v' };

/** One field from COPY text form (`\N` alone is NULL). */
export function decodeField(field: string): string | null {
  if (field === '\\N') return null;
  if (!field.includes('\\')) return field;
  let out = '';
  let bytes: number[] | undefined; // octal / hex escapes name bytes of the (UTF-8) encoding
  const flush = () => {
    if (bytes) out += Buffer.from(bytes).toString('utf8');
    bytes = undefined;
  };
  for (let i = 0; i < field.length; i++) {
    const c = field[i]!;
    if (c !== '\\' || i === field.length - 1) {
      flush();
      out += c;
      continue;
    }
    const n = field[++i]!;
    const octal = /^[0-7]{1,3}/.exec(field.slice(i, i + 3));
    const hex = n === 'x' ? /^[0-9a-fA-F]{1,2}/.exec(field.slice(i + 1, i + 3)) : null;
    if (octal) {
      (bytes ??= []).push(parseInt(octal[0], 8) & 0xff);
      i += octal[0].length - 1;
    } else if (hex) {
      (bytes ??= []).push(parseInt(hex[0], 16));
      i += hex[0].length;
    } else {
      flush();
      out += SIMPLE[n] ?? n;
    }
  }
  flush();
  return out;
}

export function decodeRow(line: string): Array<string | null> {
  return line.split('\t').map(decodeField);
}

/** `quote_ident`: quotes unless the name is a plain lower-case identifier. */
export function quoteIdent(name: string): string {
  return /^[a-z_][a-z0-9_$]*$/.test(name) ? name : `"${name.replace(/"/g, '""')}"`;
}

/** Splits `a, "B c", d` / `public."T"` style identifier lists, keeping each identifier quoted as written. */
function splitIdentifiers(text: string, separator: ',' | '.'): string[] {
  const out: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      current += c;
      if (c === '"') {
        if (text[i + 1] === '"') current += text[++i];
        else quoted = false;
      }
    } else if (c === '"') {
      quoted = true;
      current += c;
    } else if (c === separator) {
      out.push(current.trim());
      current = '';
    } else current += c;
  }
  if (quoted) throw new Error(`unterminated quoted identifier in ${text}`);
  out.push(current.trim());
  return out;
}

/** Unquotes one identifier as PostgreSQL reads it (unquoted names fold to lower case). */
export function unquoteIdent(ident: string): string {
  if (ident.startsWith('"') && ident.endsWith('"') && ident.length >= 2) return ident.slice(1, -1).replace(/""/g, '"');
  return ident.toLowerCase();
}

export interface CopyHeader {
  /** Qualified, quoted table name as written, e.g. `public.models`. */
  table: string;
  /** Column names (unquoted). */
  columns: string[];
}

const COPY_LINE = /^COPY\s+(.+?)\s*\((.*)\)\s+FROM\s+stdin;$/i;
const COPY_NO_COLUMNS = /^COPY\s+(\S+)\s+FROM\s+stdin;$/i;
const SETVAL_LINE = /^SELECT\s+pg_catalog\.setval\('((?:[^']|'')+)',\s*(-?\d+),\s*(true|false)\);$/i;

export function parseCopyLine(line: string): CopyHeader | undefined {
  const m = COPY_LINE.exec(line);
  if (m) return { table: normalizeQualified(m[1]!), columns: splitIdentifiers(m[2]!, ',').filter((c) => c !== '').map(unquoteIdent) };
  const bare = COPY_NO_COLUMNS.exec(line);
  if (bare) return { table: normalizeQualified(bare[1]!), columns: [] };
  return undefined;
}

/** `public.models`, `"public"."models"`, `models` → `public.models` (quote_ident form; unqualified means public). */
export function normalizeQualified(name: string): string {
  const parts = splitIdentifiers(name, '.').map(unquoteIdent);
  if (parts.length === 1) parts.unshift('public');
  return parts.map(quoteIdent).join('.');
}

export interface Setval {
  sequence: string;
  value: string;
  isCalled: boolean;
}

export function parseSetvalLine(line: string): Setval | undefined {
  const m = SETVAL_LINE.exec(line);
  if (!m) return undefined;
  return { sequence: normalizeQualified(m[1]!.replace(/''/g, "'")), value: m[2]!, isCalled: m[3]!.toLowerCase() === 'true' };
}

export function copyLine(table: string, columns: readonly string[]): string {
  return `COPY ${table} (${columns.map(quoteIdent).join(', ')}) FROM stdin;`;
}

export function setvalLine(s: Setval): string {
  return `SELECT pg_catalog.setval('${s.sequence.replace(/'/g, "''")}', ${s.value}, ${s.isCalled});`;
}

export type ScriptItem =
  | { kind: 'table'; header: CopyHeader; rows: AsyncIterable<string> }
  | { kind: 'setval'; setval: Setval };

/**
 * Reads a data-only dump script: yields each COPY block (its rows as an
 * iterable the caller must drain before asking for the next item) and each
 * setval. Other statements (SET, comments, search_path) are skipped. A COPY
 * block without its `\.` terminator means the script was cut short.
 */
export async function* readScript(lines: AsyncIterable<string>, source: string): AsyncGenerator<ScriptItem> {
  const it = lines[Symbol.asyncIterator]();
  for (;;) {
    const next = await it.next();
    if (next.done) return;
    const line = next.value;
    const header = parseCopyLine(line);
    if (header) {
      let ended = false;
      let drained = false;
      const rows = (async function* () {
        for (;;) {
          const r = await it.next();
          if (r.done) break;
          if (r.value === '\\.') {
            ended = true;
            break;
          }
          yield r.value;
        }
        drained = true;
      })();
      yield { kind: 'table', header, rows };
      if (!drained) for await (const _ of rows) void _; // the caller did not drain: skip the block
      if (!ended) {
        throw new AegisError('BACKUP_CORRUPT', `${source} ends inside the data of ${header.table} (no \\. terminator)`, {
          hint: 'The dump was cut short; restore another backup.',
          details: { table: header.table },
        });
      }
      continue;
    }
    const setval = parseSetvalLine(line);
    if (setval) yield { kind: 'setval', setval };
  }
}
