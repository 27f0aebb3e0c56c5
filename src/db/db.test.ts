import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AegisError } from '../errors.js';
import { currentSchemaVersion, LATEST_SCHEMA_VERSION, MEMORY, migrate, MIGRATIONS, openDb } from './index.js';
import { openPglite } from './pglite/index.js';
import type { Db } from './types.js';

async function code(p: Promise<unknown>): Promise<AegisError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, 'expected an AegisError').toBeInstanceOf(AegisError);
  return err as AegisError;
}

describe('openDb on a PGlite data dir', () => {
  // The steps share one data dir (PGlite's initdb costs about a second) and run in order.
  let home: string;
  let dir: string;
  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), 'aegis-db-'));
    dir = join(home, 'nested', 'db');
  });
  afterAll(async () => {
    await rm(home, { recursive: true, force: true });
  });

  it('creates and migrates a new data dir, and lets only one opener in', async () => {
    const db = await openDb({ dataDir: dir });
    try {
      expect(await currentSchemaVersion(db)).toBe(LATEST_SCHEMA_VERSION);
      await db.query(`INSERT INTO models (name) VALUES ('kept')`);
      expect((await readFile(`${dir}.lock`, 'utf8')).trim()).toBe(String(process.pid));
      const err = await code(openDb({ dataDir: dir }));
      expect(err.code).toBe('DB_LOCKED');
      expect(err.message).toContain(`in use by process ${process.pid}`);
    } finally {
      await db.close();
    }
    expect(existsSync(`${dir}.lock`)).toBe(false);
  });

  it('reopens (taking over a stale lock) with the data kept and no migration re-run', async () => {
    const dead = spawnSync(process.execPath, ['-e', '']).pid!; // a process that has exited
    await writeFile(`${dir}.lock`, `${dead}\n`);
    const db = await openDb({ dataDir: dir });
    try {
      expect((await readFile(`${dir}.lock`, 'utf8')).trim()).toBe(String(process.pid));
      expect(await migrate(db)).toEqual({ from: LATEST_SCHEMA_VERSION, to: LATEST_SCHEMA_VERSION, applied: [] });
      const applied = await db.query<{ version: number; name: string }>('SELECT version, name FROM schema_migrations ORDER BY version');
      expect(applied.rows).toEqual(MIGRATIONS.map((m) => ({ version: m.version, name: m.name })));
      expect((await db.query<{ name: string }>('SELECT name FROM models')).rows).toEqual([{ name: 'kept' }]);
    } finally {
      await db.close();
    }
  });

  it('refuses a data dir a newer build migrated (DB_SCHEMA_TOO_NEW), and closes it again', async () => {
    const newer = [...MIGRATIONS, { version: LATEST_SCHEMA_VERSION + 1, name: 'future', sql: 'CREATE TABLE future_thing (x int)' }];
    await (await openDb({ dataDir: dir, migrations: newer })).close();

    const err = await code(openDb({ dataDir: dir }));
    expect(err.code).toBe('DB_SCHEMA_TOO_NEW');
    expect(err.message).toBe(
      `the database schema is at version ${LATEST_SCHEMA_VERSION + 1}, newer than this build of Aegis knows (up to ${LATEST_SCHEMA_VERSION})`,
    );
    expect(err.details).toEqual({ schemaVersion: LATEST_SCHEMA_VERSION + 1, latestKnown: LATEST_SCHEMA_VERSION });
    // the refused open released its lock: the newer build can still open it
    const again = await openDb({ dataDir: dir, migrations: newer });
    expect(await currentSchemaVersion(again)).toBe(LATEST_SCHEMA_VERSION + 1);
    await again.close();
  });

  it('reports an unusable data dir as DB_UNREACHABLE naming the folder', async () => {
    const file = join(home, 'not-a-dir');
    await writeFile(file, 'x');
    const err = await code(openDb({ dataDir: join(file, 'db') }));
    expect(err.code).toBe('DB_UNREACHABLE');
    expect(err.message).toContain(join(file, 'db'));
    expect(err.hint).toMatch(/writable/);
  });
});

describe('PGlite driver', () => {
  let raw: Db; // opened without migrating
  beforeAll(async () => {
    raw = await openPglite(MEMORY);
  });
  afterAll(async () => {
    await raw?.close();
  });

  it('serializes concurrent migrators: each migration runs once', async () => {
    const results = await Promise.all([migrate(raw), migrate(raw), migrate(raw)]);
    expect(results.flatMap((r) => r.applied).map((m) => m.version).sort((a, b) => a - b)).toEqual(MIGRATIONS.map((m) => m.version));
    expect(await currentSchemaVersion(raw)).toBe(LATEST_SCHEMA_VERSION);
  });

  it('accepts several statements without parameters and returns the last result', async () => {
    const r = await raw.query<{ n: number }>('CREATE TABLE t (n int); INSERT INTO t VALUES (1), (2); SELECT count(*)::int AS n FROM t');
    expect(r.rows).toEqual([{ n: 2 }]);
    const u = await raw.query('UPDATE t SET n = n + $1', [1]);
    expect(u.rowCount).toBe(2);
    const tx = await raw.transaction((q) => q.query<{ n: number }>('INSERT INTO t VALUES (5); SELECT max(n) AS n FROM t'));
    expect(tx.rows).toEqual([{ n: 5 }]);
  });
});

describe('openDb on PostgreSQL URLs', () => {
  it('names host and port (never the password) when the server does not answer', async () => {
    // port 1 on loopback: nothing listens there, so the connection is refused at once
    const err = await code(openDb({ url: 'postgres://aegis:s3cret@127.0.0.1:1/aegis' }));
    expect(err.code).toBe('DB_UNREACHABLE');
    expect(err.message).toContain('127.0.0.1:1');
    expect(err.hint).toContain('pg_isready -h 127.0.0.1 -p 1');
    expect(err.details).toMatchObject({ host: '127.0.0.1', port: 1, database: 'aegis' });
    expect(JSON.stringify(err.toJSON())).not.toContain('s3cret');
  });

  it('rejects URLs of other databases instead of treating them as folders', async () => {
    const err = await code(openDb({ url: 'mysql://root:pw@localhost/aegis' }));
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message).not.toContain('pw@');
  });
});
