import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { currentSchemaVersion, LATEST_SCHEMA_VERSION, migrate, MIGRATIONS, openDb } from '../db/index.js';
import { AegisError } from '../errors.js';
import { registrySuite } from './registry.suite.js';

/**
 * The registry contract and the PostgreSQL driver on a real server:
 * AEGIS_TEST_DATABASE_URL (scripts/services.sh starts one and prints it) is an
 * admin connection; each run creates its own databases and drops them after.
 * No server → every test fails with the reason (never skipped).
 */
const ADMIN_URL = process.env.AEGIS_TEST_DATABASE_URL;
const created: string[] = [];
let admin: pg.Client | undefined;

function urlFor(database: string): string {
  const u = new URL(ADMIN_URL!);
  u.pathname = `/${database}`;
  return u.toString();
}

async function freshDatabase(suffix = ''): Promise<string> {
  const name = `aegis_test_${randomBytes(4).toString('hex')}${suffix}`;
  await admin!.query(`CREATE DATABASE ${name}`);
  created.push(name);
  return urlFor(name);
}

let testUrl: string;

beforeAll(async () => {
  if (!ADMIN_URL) {
    throw new Error(
      'AEGIS_TEST_DATABASE_URL is not set: start PostgreSQL with `scripts/services.sh` and `eval "$(scripts/services.sh env)"` before the integration tests',
    );
  }
  const client = new pg.Client({ connectionString: ADMIN_URL, connectionTimeoutMillis: 10_000 });
  try {
    await client.connect();
  } catch (err) {
    const u = new URL(ADMIN_URL);
    throw new Error(
      `PostgreSQL does not answer at ${u.hostname}:${u.port || 5432} (AEGIS_TEST_DATABASE_URL): ${(err as Error).message}; run scripts/services.sh`,
      { cause: err },
    );
  }
  admin = client;
  testUrl = await freshDatabase();
});

afterAll(async () => {
  if (!admin) return;
  for (const name of created) await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.end();
});

describe('registry on PostgreSQL', () => {
  registrySuite(() => openDb({ url: testUrl }));
});

describe('PostgreSQL driver', () => {
  it('reopens a migrated database without re-running migrations, and refuses a newer schema', async () => {
    const url = await freshDatabase('_reopen');
    const first = await openDb({ url });
    expect(first.engine).toBe('postgres');
    await first.close();
    const db = await openDb({ url });
    try {
      expect(await migrate(db)).toEqual({ from: LATEST_SCHEMA_VERSION, to: LATEST_SCHEMA_VERSION, applied: [] });
      const rows = await db.query<{ version: number; name: string }>('SELECT version, name FROM schema_migrations ORDER BY version');
      expect(rows.rows).toEqual(MIGRATIONS.map((m) => ({ version: m.version, name: m.name })));
      await db.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [LATEST_SCHEMA_VERSION + 1, 'future']);
    } finally {
      await db.close();
    }
    const err = await openDb({ url }).catch((e: unknown) => e as AegisError);
    expect(err).toBeInstanceOf(AegisError);
    expect((err as AegisError).code).toBe('DB_SCHEMA_TOO_NEW');
  });

  it('lets concurrent openers migrate a new database exactly once', async () => {
    const url = await freshDatabase('_race');
    const opened = await Promise.allSettled([1, 2, 3, 4].map(() => openDb({ url })));
    const dbs = opened.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []));
    try {
      for (const o of opened) if (o.status === 'rejected') throw o.reason;
      expect(await currentSchemaVersion(dbs[0]!)).toBe(LATEST_SCHEMA_VERSION);
      const n = await dbs[1]!.query<{ n: number }>('SELECT count(*)::int AS n FROM schema_migrations');
      expect(n.rows[0]!.n).toBe(MIGRATIONS.length);
    } finally {
      await Promise.all(dbs.map((d) => d.close()));
    }
  });

  it('reports a missing database as DB_UNREACHABLE with a createdb hint', async () => {
    const missing = `aegis_test_missing_${randomBytes(4).toString('hex')}`;
    const err = await openDb({ url: urlFor(missing) }).catch((e: unknown) => e as AegisError);
    expect(err).toBeInstanceOf(AegisError);
    expect((err as AegisError).code).toBe('DB_UNREACHABLE');
    expect((err as AegisError).hint).toContain(`createdb`);
    expect((err as AegisError).hint).toContain(missing);
  });

  it('rolls a pg transaction back on a dedicated client and returns it to the pool', async () => {
    const db = await openDb({ url: testUrl });
    try {
      const name = `tx-${randomBytes(3).toString('hex')}`;
      for (let i = 0; i < 15; i++) {
        // more rounds than the pool has clients: a leaked client would hang here
        await db
          .transaction(async (tx) => {
            await tx.query('INSERT INTO models (name) VALUES ($1)', [`${name}-${i}`]);
            await tx.query('SELECT 1 / 0');
          })
          .catch(() => undefined);
      }
      const n = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM models WHERE name LIKE $1`, [`${name}-%`]);
      expect(n.rows[0]!.n).toBe(0);
      // and a transaction sees its own writes before commit while others do not
      await db.transaction(async (tx) => {
        await tx.query('INSERT INTO models (name) VALUES ($1)', [`${name}-visible`]);
        expect((await tx.query('SELECT 1 FROM models WHERE name = $1', [`${name}-visible`])).rowCount).toBe(1);
        expect((await db.query('SELECT 1 FROM models WHERE name = $1', [`${name}-visible`])).rowCount).toBe(0);
      });
      expect((await db.query('SELECT 1 FROM models WHERE name = $1', [`${name}-visible`])).rowCount).toBe(1);
    } finally {
      await db.close();
    }
  });
});
