import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { currentSchemaVersion, LATEST_SCHEMA_VERSION, migrate, MIGRATIONS } from '../db/migrations.js';
import type { Db, QueryResult, Queryable } from '../db/types.js';
import { AegisError } from '../errors.js';
import { AUDIT_ACTIONS, Registry, type RegisterVersionInput } from './index.js';

/**
 * The registry contract, written once and run on every Db driver:
 * registry.test.ts (in-memory PGlite) and registry.itest.ts (PostgreSQL).
 * `makeDb` returns an open, migrated database; on PostgreSQL each call is a
 * new connection pool to the same database (used for the concurrency tests).
 * Tests share one database, so each uses its own model names.
 */
export function registrySuite(makeDb: () => Promise<Db>): void {
  let db: Db;
  let other: Db; // a second connection on PostgreSQL; the same instance on PGlite (one connection by design)
  let registry: Registry;
  const run = randomBytes(3).toString('hex');
  let n = 0;
  const model = (label: string) => `${label}-${run}-${++n}`;
  const sha = (s: string) => createHash('sha256').update(s).digest('hex');
  const input = (name: string, version: string, over: Partial<RegisterVersionInput> = {}): RegisterVersionInput => ({
    name,
    version,
    archiveUri: `file:///artifacts/model-archives/${name}/${version}/model.tar.gz`,
    archiveSha256: sha(`${name}@${version}`),
    signerKeyId: 'key-1',
    manifest: { name, version, format: 'onnx', inputs: [{ name: 'x', shape: [1, 4] }] },
    lineage: { parentVersion: undefined, datasetUri: 's3://data/train.parquet' },
    actor: 'alice',
    ...over,
  });

  async function rejects(p: Promise<unknown>, code: string): Promise<AegisError> {
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err, `expected ${code}, but it succeeded`).toBeInstanceOf(AegisError);
    expect((err as AegisError).code).toBe(code);
    return err as AegisError;
  }

  async function dbError(p: Promise<unknown>): Promise<{ code?: string; message: string }> {
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err, 'expected the database to refuse').toBeInstanceOf(Error);
    return err as { code?: string; message: string };
  }

  const VERSION_ROWS = 'SELECT count(*)::int AS n FROM model_versions v JOIN models m ON m.id = v.model_id WHERE m.name = $1 AND v.version = $2';
  const count = async (sql: string, params: unknown[]) => Number((await db.query<{ n: number }>(sql, params)).rows[0]!.n);

  beforeAll(async () => {
    db = await makeDb();
    other = db.engine === 'postgres' ? await makeDb() : db;
    registry = new Registry(db);
  });

  afterAll(async () => {
    if (other && other !== db) await other.close();
    await db?.close();
  });

  describe('migrations', () => {
    it('leave the database at the latest schema and are idempotent', async () => {
      expect(LATEST_SCHEMA_VERSION).toBe(MIGRATIONS.length);
      expect(await currentSchemaVersion(db)).toBe(LATEST_SCHEMA_VERSION);
      const again = await migrate(db);
      expect(again).toEqual({ from: LATEST_SCHEMA_VERSION, to: LATEST_SCHEMA_VERSION, applied: [] });
      expect(await count('SELECT count(*)::int AS n FROM schema_migrations', [])).toBe(LATEST_SCHEMA_VERSION);
    });

    it('refuse a database whose schema is newer than this build (DB_SCHEMA_TOO_NEW)', async () => {
      const future = LATEST_SCHEMA_VERSION + 1;
      await db.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [future, 'from-the-future']);
      try {
        expect(await currentSchemaVersion(db)).toBe(future);
        const err = await rejects(migrate(db), 'DB_SCHEMA_TOO_NEW');
        expect(err.message).toContain(String(future));
        expect(err.hint).toMatch(/newer Aegis/);
      } finally {
        await db.query('DELETE FROM schema_migrations WHERE version = $1', [future]);
      }
    });

    it('refuse a database migrated by a different build (same version, other name)', async () => {
      await db.query(`UPDATE schema_migrations SET name = 'something-else' WHERE version = 1`);
      try {
        const err = await rejects(migrate(db, [...MIGRATIONS, { version: LATEST_SCHEMA_VERSION + 1, name: 'next', sql: 'SELECT 1' }]), 'DB_MIGRATION_FAILED');
        expect(err.message).toContain('something-else');
      } finally {
        await db.query('UPDATE schema_migrations SET name = $1 WHERE version = 1', [MIGRATIONS[0]!.name]);
      }
    });

    it('roll a failing migration back completely', async () => {
      const table = `aegis_probe_${run}`;
      const broken = { version: LATEST_SCHEMA_VERSION + 1, name: 'broken', sql: `CREATE TABLE ${table} (x int); SELECT 1 / 0;` };
      const err = await rejects(migrate(db, [...MIGRATIONS, broken]), 'DB_MIGRATION_FAILED');
      expect(err.message).toMatch(/migration \d+ \(broken\) failed: division by zero/);
      expect(await currentSchemaVersion(db)).toBe(LATEST_SCHEMA_VERSION);
      const probe = await db.query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [table]);
      expect(probe.rows[0]!.t).toBeNull();
    });
  });

  describe('registerVersion', () => {
    it('creates the model and the version, with an audit entry for each', async () => {
      const name = model('fraud');
      const before = new Date(Date.now() - 60_000);
      const r = await registry.registerVersion(input(name, '1.0.0', { lineage: { parentVersion: 'none-yet', datasetUri: 's3://d/1', runId: 'r1' } }));
      expect(r.created).toBe(true);
      expect(r.version).toMatchObject({
        name,
        version: '1.0.0',
        archiveUri: `file:///artifacts/model-archives/${name}/1.0.0/model.tar.gz`,
        archiveSha256: sha(`${name}@1.0.0`),
        signerKeyId: 'key-1',
        stage: 'none',
        manifest: { name, version: '1.0.0', format: 'onnx', inputs: [{ name: 'x', shape: [1, 4] }] },
        lineage: { parentVersion: 'none-yet', datasetUri: 's3://d/1', runId: 'r1' },
      });
      expect(typeof r.version.id).toBe('number');
      expect(typeof r.version.modelId).toBe('number');
      expect(r.version.createdAt).toBeInstanceOf(Date);
      expect(r.version.createdAt.getTime()).toBeGreaterThan(before.getTime());
      expect(await registry.getVersion(name, '1.0.0')).toEqual(r.version);

      const log = await registry.audit({ model: name });
      expect(log.map((e) => [e.action, e.subject, e.actor])).toEqual([
        [AUDIT_ACTIONS.register, `${name}@1.0.0`, 'alice'],
        [AUDIT_ACTIONS.modelCreate, name, 'alice'],
      ]);
      expect(log[0]!.details).toEqual({ archiveUri: r.version.archiveUri, archiveSha256: r.version.archiveSha256, signerKeyId: 'key-1' });
      expect(log[0]!.at).toBeInstanceOf(Date);
    });

    it('is idempotent for the same name@version and digest (created: false, nothing written)', async () => {
      const name = model('idem');
      const first = await registry.registerVersion(input(name, '1.0.0'));
      const auditBefore = (await registry.audit({ model: name })).length;
      const again = await registry.registerVersion(input(name, '1.0.0', { archiveSha256: first.version.archiveSha256.toUpperCase(), actor: 'bob' }));
      expect(again.created).toBe(false);
      expect(again.version).toEqual(first.version);
      expect(await count(VERSION_ROWS, [name, '1.0.0'])).toBe(1);
      expect((await registry.audit({ model: name })).length).toBe(auditBefore);
    });

    it('refuses a different archive for an existing version (VERSION_IMMUTABLE names both digests)', async () => {
      const name = model('immutable');
      const first = await registry.registerVersion(input(name, '1.0.0'));
      const other = sha('tampered');
      const err = await rejects(registry.registerVersion(input(name, '1.0.0', { archiveSha256: other })), 'VERSION_IMMUTABLE');
      expect(err.message).toContain(first.version.archiveSha256);
      expect(err.message).toContain(other);
      expect(err.hint).toMatch(/new version/);
      expect((await registry.getVersion(name, '1.0.0')).archiveSha256).toBe(first.version.archiveSha256);
    });

    it('rejects invalid input before touching the database', async () => {
      const name = model('bad');
      await rejects(registry.registerVersion(input('../etc', '1.0.0')), 'REGISTRY_INPUT_INVALID');
      await rejects(registry.registerVersion(input('a@b', '1.0.0')), 'REGISTRY_INPUT_INVALID');
      await rejects(registry.registerVersion(input(name, 'production')), 'REGISTRY_INPUT_INVALID');
      await rejects(registry.registerVersion(input(name, 'latest')), 'REGISTRY_INPUT_INVALID');
      await rejects(registry.registerVersion(input(name, '1.0/2')), 'REGISTRY_INPUT_INVALID');
      await rejects(registry.registerVersion(input(name, '1.0.0', { archiveSha256: 'abc' })), 'REGISTRY_INPUT_INVALID');
      await rejects(registry.registerVersion(input(name, '1.0.0', { manifest: [] as unknown as Record<string, unknown> })), 'REGISTRY_INPUT_INVALID');
      await rejects(registry.registerVersion(input(name, '1.0.0', { manifest: { n: 1n } })), 'REGISTRY_INPUT_INVALID');
      await rejects(registry.registerVersion(input(name, '1.0.0', { actor: ' ' })), 'REGISTRY_INPUT_INVALID');
      expect(await count('SELECT count(*)::int AS n FROM models WHERE name = $1', [name])).toBe(0);
    });

    it('leaves nothing behind when a statement in its transaction fails', async () => {
      const name = model('rollback');
      const failing = failOn(db, /INSERT INTO audit_log/);
      const err = await new Registry(failing).registerVersion(input(name, '1.0.0')).catch((e: unknown) => e as Error);
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).message).toBe('injected failure');
      expect(await count('SELECT count(*)::int AS n FROM models WHERE name = $1', [name])).toBe(0);
      expect(await count(`SELECT count(*)::int AS n FROM audit_log WHERE split_part(subject, '@', 1) = $1`, [name])).toBe(0);
      // and the same registration succeeds afterwards
      expect((await registry.registerVersion(input(name, '1.0.0'))).created).toBe(true);
    });
  });

  describe('Db.transaction', () => {
    it('commits on success and rolls back on throw', async () => {
      const a = model('tx-commit');
      const b = model('tx-rollback');
      const value = await db.transaction(async (tx) => {
        await tx.query('INSERT INTO models (name) VALUES ($1)', [a]);
        return 42;
      });
      expect(value).toBe(42);
      const boom = new Error('boom');
      await expect(
        db.transaction(async (tx) => {
          await tx.query('INSERT INTO models (name) VALUES ($1)', [b]);
          throw boom;
        }),
      ).rejects.toBe(boom);
      expect(await count('SELECT count(*)::int AS n FROM models WHERE name = $1', [a])).toBe(1);
      expect(await count('SELECT count(*)::int AS n FROM models WHERE name = $1', [b])).toBe(0);
    });

    it('does not commit a transaction whose failed statement was caught inside it', async () => {
      const a = model('tx-swallowed');
      const err = await dbError(
        db.transaction(async (tx) => {
          await tx.query('INSERT INTO models (name) VALUES ($1)', [a]);
          await tx.query('SELECT 1 / 0').catch(() => undefined);
          return 'done';
        }),
      );
      expect(err.message).toMatch(/rolled back|aborted/i);
      expect(await count('SELECT count(*)::int AS n FROM models WHERE name = $1', [a])).toBe(0);
    });

    it('rolls back after a failed statement and stays usable', async () => {
      const a = model('tx-sqlerr');
      const err = await dbError(
        db.transaction(async (tx) => {
          await tx.query('INSERT INTO models (name) VALUES ($1)', [a]);
          await tx.query('INSERT INTO models (name) VALUES ($1)', [a]); // unique violation
        }),
      );
      expect(err.code).toBe('23505');
      expect(await count('SELECT count(*)::int AS n FROM models WHERE name = $1', [a])).toBe(0);
      expect((await db.query<{ one: number }>('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    });
  });

  describe('reading', () => {
    it('resolves name, name@latest, name@version and name@stage', async () => {
      const name = model('resolve');
      for (const v of ['1.0.0', '1.1.0', '2.0.0-rc.1+build.5']) await registry.registerVersion(input(name, v));
      expect((await registry.resolve(name)).version).toBe('2.0.0-rc.1+build.5');
      expect((await registry.resolve(`${name}@latest`)).version).toBe('2.0.0-rc.1+build.5');
      expect((await registry.resolve(`${name}@1.1.0`)).version).toBe('1.1.0');

      const noProd = await rejects(registry.resolve(`${name}@production`), 'REGISTRY_NOT_FOUND');
      expect(noProd.message).toContain('production');
      expect(noProd.hint).toContain('aegis model promote');

      await registry.promote(name, '1.0.0', 'production', 'alice');
      await registry.promote(name, '1.1.0', 'canary', 'alice');
      await registry.promote(name, '2.0.0-rc.1+build.5', 'staging', 'alice');
      expect((await registry.resolve(`${name}@production`)).version).toBe('1.0.0');
      expect((await registry.resolve(`${name}@canary`)).version).toBe('1.1.0');
      expect((await registry.resolve(`${name}@staging`)).version).toBe('2.0.0-rc.1+build.5');
      expect((await registry.resolve(`${name}@PRODUCTION`)).version).toBe('1.0.0');

      await rejects(registry.resolve(`${name}@archived`), 'REGISTRY_INPUT_INVALID');
      await rejects(registry.resolve(`${name}@`), 'REGISTRY_INPUT_INVALID');
      await rejects(registry.resolve('@1.0.0'), 'REGISTRY_INPUT_INVALID');
    });

    it('reports unknown models and versions as REGISTRY_NOT_FOUND with a hint', async () => {
      const name = model('known');
      await registry.registerVersion(input(name, '1.0.0'));
      const ghost = model('ghost');
      const calls = [
        () => registry.resolve(ghost),
        () => registry.resolve(`${ghost}@1.0.0`),
        () => registry.resolve(`${ghost}@production`),
        () => registry.listVersions(ghost),
        () => registry.getVersion(ghost, '1.0.0'),
      ];
      for (const call of calls) {
        const err = await rejects(call(), 'REGISTRY_NOT_FOUND');
        expect(err.message).toContain(`${ghost} is not registered`);
        expect(err.hint).toContain('aegis model list');
      }
      const err = await rejects(registry.resolve(`${name}@9.9.9`), 'REGISTRY_NOT_FOUND');
      expect(err.message).toBe(`model ${name} has no version 9.9.9`);
      await rejects(registry.promote(name, '9.9.9', 'production', 'alice'), 'REGISTRY_NOT_FOUND');
      await rejects(registry.promote(ghost, '1.0.0', 'production', 'alice'), 'REGISTRY_NOT_FOUND');
    });

    it('lists models with latest, production and canary versions, and versions newest first', async () => {
      const name = model('list');
      const empty = model('list-none');
      await registry.registerVersion(input(name, '1.0.0'));
      await registry.registerVersion(input(name, '1.1.0'));
      await registry.registerVersion(input(name, '1.2.0'));
      await registry.promote(name, '1.0.0', 'production', 'alice');
      await registry.promote(name, '1.1.0', 'canary', 'alice');
      await registry.registerVersion(input(empty, '0.1'));

      const all = await registry.listModels();
      const names = all.map((m) => m.name);
      expect(names).toEqual([...names].sort());
      expect(all.find((m) => m.name === name)).toMatchObject({
        name,
        versionCount: 3,
        latestVersion: '1.2.0',
        productionVersion: '1.0.0',
        canaryVersion: '1.1.0',
      });
      expect(all.find((m) => m.name === empty)).toMatchObject({ versionCount: 1, latestVersion: '0.1', productionVersion: null, canaryVersion: null });
      expect(all.find((m) => m.name === name)!.createdAt).toBeInstanceOf(Date);

      const versions = await registry.listVersions(name);
      expect(versions.map((v) => [v.version, v.stage])).toEqual([
        ['1.2.0', 'none'],
        ['1.1.0', 'canary'],
        ['1.0.0', 'production'],
      ]);
    });
  });

  describe('promote', () => {
    it('moves the previous production version to archived and the previous canary to none', async () => {
      const name = model('promote');
      for (const v of ['1', '2', '3', '4']) await registry.registerVersion(input(name, v));
      const p1 = await registry.promote(name, '1', 'production', 'alice', { reason: 'first release' });
      expect(p1).toMatchObject({ previousStage: 'none', changed: true, displaced: [] });
      expect(p1.version.stage).toBe('production');

      await registry.promote(name, '2', 'canary', 'alice');
      const c3 = await registry.promote(name, '3', 'canary', 'bob');
      expect(c3.displaced).toEqual([{ version: '2', from: 'canary', to: 'none' }]);

      const p3 = await registry.promote(name, '3', 'production', 'bob');
      expect(p3).toMatchObject({ previousStage: 'canary', displaced: [{ version: '1', from: 'production', to: 'archived' }] });

      const stages = Object.fromEntries((await registry.listVersions(name)).map((v) => [v.version, v.stage]));
      expect(stages).toEqual({ '1': 'archived', '2': 'none', '3': 'production', '4': 'none' });

      const log = await registry.audit({ model: name, limit: 20 });
      const stageLog = log
        .filter((e) => e.action !== AUDIT_ACTIONS.register && e.action !== AUDIT_ACTIONS.modelCreate)
        .map((e) => [e.action, e.subject, e.actor, e.details])
        .reverse();
      expect(stageLog).toEqual([
        [AUDIT_ACTIONS.promote, `${name}@1`, 'alice', { from: 'none', to: 'production', reason: 'first release' }],
        [AUDIT_ACTIONS.promote, `${name}@2`, 'alice', { from: 'none', to: 'canary' }],
        [AUDIT_ACTIONS.demote, `${name}@2`, 'bob', { from: 'canary', to: 'none', replacedBy: '3' }],
        [AUDIT_ACTIONS.promote, `${name}@3`, 'bob', { from: 'none', to: 'canary' }],
        [AUDIT_ACTIONS.archive, `${name}@1`, 'bob', { from: 'production', to: 'archived', replacedBy: '3' }],
        [AUDIT_ACTIONS.promote, `${name}@3`, 'bob', { from: 'canary', to: 'production' }],
      ]);
    });

    it('is a no-op (nothing written) when the version is already at that stage', async () => {
      const name = model('noop');
      await registry.registerVersion(input(name, '1'));
      await registry.promote(name, '1', 'production', 'alice');
      const before = (await registry.audit({ model: name })).length;
      const again = await registry.promote(name, '1', 'production', 'bob');
      expect(again).toMatchObject({ changed: false, previousStage: 'production', displaced: [] });
      expect((await registry.audit({ model: name })).length).toBe(before);
    });

    it('rejects an unknown stage with STAGE_INVALID listing the valid ones', async () => {
      const name = model('stage');
      await registry.registerVersion(input(name, '1'));
      const err = await rejects(registry.promote(name, '1', 'prod' as never, 'alice'), 'STAGE_INVALID');
      expect(err.hint).toBe('Valid stages: none, staging, canary, production, archived.');
      expect((await registry.getVersion(name, '1')).stage).toBe('none');
    });

    it('allows rolling back to an archived (superseded) production version', async () => {
      const name = model('rollback-prod');
      await registry.registerVersion(input(name, '1'));
      await registry.registerVersion(input(name, '2'));
      await registry.promote(name, '1', 'production', 'alice');
      await registry.promote(name, '2', 'production', 'alice');
      expect((await registry.getVersion(name, '1')).stage).toBe('archived');
      const back = await registry.promote(name, '1', 'production', 'oncall', { reason: 'v2 error rate' });
      expect(back).toMatchObject({ previousStage: 'archived', displaced: [{ version: '2', from: 'production', to: 'archived' }] });
      expect((await registry.resolve(`${name}@production`)).version).toBe('1');
    });

    it('refuses to bring back a retired version without force (VERSION_RETIRED)', async () => {
      const name = model('retired');
      await registry.registerVersion(input(name, '1'));
      await registry.registerVersion(input(name, '2'));
      await registry.promote(name, '1', 'production', 'alice');
      const retired = await registry.promote(name, '2', 'archived', 'carol', { reason: 'leaks PII' });
      expect(retired.previousStage).toBe('none');

      for (const stage of ['production', 'canary', 'staging', 'none'] as const) {
        const err = await rejects(registry.promote(name, '2', stage, 'alice'), 'VERSION_RETIRED');
        expect(err.message).toContain('retired by carol');
        expect(err.message).toContain('leaks PII');
        expect(err.hint).toMatch(/--force/);
      }
      expect((await registry.resolve(`${name}@production`)).version).toBe('1');

      const forced = await registry.promote(name, '2', 'production', 'alice', { force: true, reason: 'false alarm' });
      expect(forced.displaced).toEqual([{ version: '1', from: 'production', to: 'archived' }]);
      const last = (await registry.audit({ subject: `${name}@2`, limit: 1 }))[0]!;
      expect(last).toMatchObject({ action: AUDIT_ACTIONS.promote, details: { from: 'archived', to: 'production', reason: 'false alarm', force: true } });
      // 1 was superseded, not retired: it may come back without force
      expect((await registry.promote(name, '1', 'production', 'alice')).changed).toBe(true);
    });

    it('keeps one production and one canary per model even under concurrent promotions', async () => {
      const name = model('race-promote');
      const versions = ['1', '2', '3', '4', '5', '6'];
      for (const v of versions) await registry.registerVersion(input(name, v));
      const regs = [registry, new Registry(other)];
      await Promise.all(versions.map((v, i) => regs[i % 2]!.promote(name, v, 'production', `actor-${i}`)));
      const stages = (await registry.listVersions(name)).map((v) => v.stage);
      expect(stages.filter((s) => s === 'production')).toHaveLength(1);
      expect(stages.filter((s) => s === 'archived')).toHaveLength(versions.length - 1);
      await Promise.all(versions.map((v, i) => regs[i % 2]!.promote(name, v, 'canary', `actor-${i}`)));
      const after = (await registry.listVersions(name)).map((v) => v.stage);
      expect(after.filter((s) => s === 'canary')).toHaveLength(1);
      expect(after.filter((s) => s === 'production')).toHaveLength(0); // the production version was moved to canary too
    });
  });

  describe('database invariants', () => {
    it('a direct UPDATE making a second production or canary version fails', async () => {
      const name = model('invariant');
      for (const v of ['1', '2', '3']) await registry.registerVersion(input(name, v));
      await registry.promote(name, '1', 'production', 'alice');
      await registry.promote(name, '2', 'canary', 'alice');
      const bump = (stage: string, version: string) =>
        db.query('UPDATE model_versions SET stage = $1 WHERE version = $2 AND model_id = (SELECT id FROM models WHERE name = $3)', [stage, version, name]);
      const prod = await dbError(bump('production', '3'));
      expect(prod.code).toBe('23505');
      expect(prod.message).toContain('model_versions_one_production');
      const canary = await dbError(bump('canary', '3'));
      expect(canary.code).toBe('23505');
      expect(canary.message).toContain('model_versions_one_canary');
      const bogus = await dbError(bump('live', '3'));
      expect(bogus.code).toBe('23514'); // check constraint
      expect((await registry.getVersion(name, '3')).stage).toBe('none');
    });

    it('the audit log is append-only: UPDATE, DELETE and TRUNCATE raise', async () => {
      const name = model('audit-ro');
      await registry.registerVersion(input(name, '1'));
      const before = await count(`SELECT count(*)::int AS n FROM audit_log WHERE split_part(subject, '@', 1) = $1`, [name]);
      expect(before).toBe(2);
      for (const sql of [
        `UPDATE audit_log SET actor = 'mallory' WHERE split_part(subject, '@', 1) = $1`,
        `DELETE FROM audit_log WHERE split_part(subject, '@', 1) = $1`,
      ]) {
        const err = await dbError(db.query(sql, [name]));
        expect(err.message).toMatch(/audit_log is append-only: (UPDATE|DELETE) is not allowed/);
      }
      const truncate = await dbError(db.query('TRUNCATE audit_log'));
      expect(truncate.message).toBe('audit_log is append-only: TRUNCATE is not allowed');
      expect(await count(`SELECT count(*)::int AS n FROM audit_log WHERE split_part(subject, '@', 1) = $1 AND actor = 'alice'`, [name])).toBe(before);
    });
  });

  describe('audit', () => {
    it('filters by model, subject, action, actor, since and limit, newest first', async () => {
      const name = model('audit-q');
      const sibling = `${name}x`; // shares a prefix: must not match the model filter
      await registry.registerVersion(input(name, '1', { actor: 'alice' }));
      await registry.registerVersion(input(name, '2', { actor: 'bob' }));
      await registry.registerVersion(input(sibling, '1', { actor: 'bob' }));
      await registry.promote(name, '2', 'production', 'bob');

      const all = await registry.audit({ model: name });
      expect(all.map((e) => e.action)).toEqual([AUDIT_ACTIONS.promote, AUDIT_ACTIONS.register, AUDIT_ACTIONS.register, AUDIT_ACTIONS.modelCreate]);
      expect(all.map((e) => e.id)).toEqual([...all.map((e) => e.id)].sort((a, b) => b - a));
      expect((await registry.audit({ model: name, actor: 'bob' })).map((e) => e.subject)).toEqual([`${name}@2`, `${name}@2`]);
      expect((await registry.audit({ subject: `${name}@1` })).map((e) => e.action)).toEqual([AUDIT_ACTIONS.register]);
      expect((await registry.audit({ model: name, action: AUDIT_ACTIONS.register })).length).toBe(2);
      expect((await registry.audit({ model: name, limit: 1 }))[0]!.action).toBe(AUDIT_ACTIONS.promote);
      const future = new Date(Date.now() + 3_600_000);
      expect(await registry.audit({ model: name, since: future })).toEqual([]);
      expect((await registry.audit({ model: name, since: all[all.length - 1]!.at })).length).toBe(4);
      await rejects(registry.audit({ limit: 0 }), 'REGISTRY_INPUT_INVALID');
    });
  });

  describe('concurrency', () => {
    it(`concurrent registration of the same name@version ends with one row`, async () => {
      for (let round = 0; round < 6; round++) {
        const name = model('race-register');
        // odd rounds: the model exists already, so the race is on the version row alone
        if (round % 2 === 1) await registry.registerVersion(input(name, '0.9'));
        // several writers per connection pool, so the transactions really overlap on PostgreSQL
        const writers = [db, other, db, other, db, other, db, other].map((d) => new Registry(d));
        const results = await Promise.all(writers.map((r) => r.registerVersion(input(name, '1.0.0'))));
        expect(results.filter((r) => r.created)).toHaveLength(1);
        expect(new Set(results.map((r) => r.version.id)).size).toBe(1);
        expect(await count(VERSION_ROWS, [name, '1.0.0'])).toBe(1);
        expect(await count('SELECT count(*)::int AS n FROM audit_log WHERE subject = $1', [`${name}@1.0.0`])).toBe(1);
      }
    });

    it('concurrent registration of one name@version with different digests: one wins, the others are refused', async () => {
      const name = model('race-digest');
      await registry.registerVersion(input(name, '0.9'));
      const digests = ['a', 'b', 'c', 'd', 'e', 'f'].map(sha);
      const outcomes = await Promise.allSettled(
        digests.map((d, i) => new Registry(i % 2 ? other : db).registerVersion(input(name, '1.0.0', { archiveSha256: d }))),
      );
      const won = outcomes.filter((o) => o.status === 'fulfilled');
      expect(won).toHaveLength(1);
      for (const o of outcomes.filter((x) => x.status === 'rejected')) expect((o.reason as AegisError).code).toBe('VERSION_IMMUTABLE');
      expect(await count(VERSION_ROWS, [name, '1.0.0'])).toBe(1);
      expect((await registry.getVersion(name, '1.0.0')).archiveSha256).toBe(won[0]!.value.version.archiveSha256);
    });
  });
}

/** A Db whose transactions fail on statements matching `pattern` (fault injection). */
function failOn(db: Db, pattern: RegExp): Db {
  const wrap = (q: Queryable): Queryable => ({
    query<T>(sql: string, params?: unknown[]): Promise<QueryResult<T>> {
      return pattern.test(sql) ? Promise.reject(new Error('injected failure')) : q.query<T>(sql, params);
    },
  });
  return {
    engine: db.engine,
    query: (sql, params) => db.query(sql, params),
    transaction: (fn) => db.transaction((tx) => fn(wrap(tx))),
    close: () => db.close(),
  };
}
