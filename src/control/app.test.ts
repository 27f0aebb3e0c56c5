import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { MEMORY, openDb } from '../db/index.js';
import type { Db } from '../db/types.js';
import { Registry } from '../registry/index.js';
import { RolloutController } from '../rollout/controller/index.js';
import type { RolloutTarget } from '../rollout/controller/types.js';
import type { RolloutView } from '../rollout/controller/describe.js';
import { SlidingWindowStats } from '../rollout/providers/embedded/index.js';
import { DbRolloutStore } from '../rollout/store/index.js';
import { buildControlApp } from './app.js';
import { RegistryStages } from './stages.js';

/** Stands in for the model-server processes + gateway (test/rollout.itest.ts runs the real ones). */
class RecordingTarget implements RolloutTarget {
  weight = 0;
  async deployCanary(): Promise<void> {}
  async setWeight(_m: string, w: number): Promise<void> {
    this.weight = w;
  }
  async promoteCanary(): Promise<void> {}
  async removeCanary(): Promise<void> {
    this.weight = 0;
  }
  trafficStats() {
    return new SlidingWindowStats();
  }
}

const TOKEN = 'test-token-0123456789abcdef';
const SHA = 'a'.repeat(64);

describe('control-plane API', () => {
  let db: Db;
  let app: FastifyInstance;
  let controller: RolloutController;
  let registry: Registry;
  const target = new RecordingTarget();
  const auth = { authorization: `Bearer ${TOKEN}`, 'x-aegis-actor': 'alice' };

  beforeAll(async () => {
    db = await openDb({ url: MEMORY });
    registry = new Registry(db);
    for (const version of ['1.0', '2.0']) {
      await registry.registerVersion({ name: 'm', version, archiveUri: `file:///x/${version}/model.tar.gz`, archiveSha256: SHA.replace('a', version[0]!), signerKeyId: 'k', manifest: {}, lineage: {}, actor: 'setup' });
    }
    await registry.promote('m', '1.0', 'production', 'setup');
    controller = new RolloutController({ store: new DbRolloutStore(db), target, stages: new RegistryStages(registry), maxSleepMs: 10 });
    app = await buildControlApp({ controller, token: TOKEN, deployment: () => [{ model: 'm' }], registry });
  });
  afterAll(async () => {
    await controller?.close();
    await app?.close();
    await db?.close();
  });

  it('needs the bearer token on /api (401 with WWW-Authenticate); /healthz and /metrics are open', async () => {
    expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    const none = await app.inject({ method: 'GET', url: '/api/v1/rollouts' });
    expect(none.statusCode).toBe(401);
    expect(none.headers['www-authenticate']).toMatch(/^Bearer/);
    expect(none.json().error.code).toBe('CONTROL_UNAUTHORIZED');
    const wrong = await app.inject({ method: 'GET', url: '/api/v1/rollouts', headers: { authorization: 'Bearer nope' } });
    expect(wrong.statusCode).toBe(401);
    const start = await app.inject({ method: 'POST', url: '/api/v1/rollouts', headers: { authorization: 'Bearer nope' }, payload: { model: 'm', version: '2.0' } });
    expect(start.statusCode).toBe(401);
    expect(target.weight).toBe(0);
  });

  it('serves the registry to the CLI (list, resolve, promote with the caller as actor, audit) behind the token', async () => {
    expect((await app.inject({ method: 'GET', url: '/api/v1/registry/models' })).statusCode).toBe(401);
    const models = await app.inject({ method: 'GET', url: '/api/v1/registry/models', headers: auth });
    expect(models.json().models).toMatchObject([{ name: 'm', productionVersion: '1.0' }]);
    const resolved = await app.inject({ method: 'GET', url: '/api/v1/registry/resolve?ref=m@production', headers: auth });
    expect(resolved.json()).toMatchObject({ name: 'm', version: '1.0', stage: 'production' });
    const staged = await app.inject({ method: 'POST', url: '/api/v1/registry/promote', headers: auth, payload: { name: 'm', version: '2.0', stage: 'staging', reason: 'review' } });
    expect(staged.json()).toMatchObject({ changed: true, previousStage: 'none' });
    const bad = await app.inject({ method: 'POST', url: '/api/v1/registry/promote', headers: auth, payload: { name: 'm', version: '2.0', stage: 'live' } });
    expect(bad.statusCode).toBe(400);
    const audit = await app.inject({ method: 'GET', url: '/api/v1/registry/audit?subject=m@2.0&limit=5', headers: auth });
    expect(audit.json().entries[0]).toMatchObject({ actor: 'alice', action: 'version.promote', details: { to: 'staging', reason: 'review' } });
    await registry.promote('m', '2.0', 'none', 'setup');
  });

  it('refuses bad input with the field and the code: 400 spec, 404 unknown version, 409 production version', async () => {
    const badSpec = await app.inject({ method: 'POST', url: '/api/v1/rollouts', headers: auth, payload: { model: 'm', version: '2.0', spec: 'apiVersion: aegis.dev/v1\nkind: Rollout\nstrategy: {canary: {steps: [{setWeight: 150}]}}\n' } });
    expect(badSpec.statusCode).toBe(400);
    expect(badSpec.json().error.code).toBe('ROLLOUT_SPEC_INVALID');
    expect(badSpec.json().error.message).toContain('strategy.canary.steps[0].setWeight');
    const extra = await app.inject({ method: 'POST', url: '/api/v1/rollouts', headers: auth, payload: { model: 'm', version: '2.0', weight: 5 } });
    expect(extra.statusCode).toBe(400);
    const unknown = await app.inject({ method: 'POST', url: '/api/v1/rollouts', headers: auth, payload: { model: 'm', version: '9.9' } });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().error.code).toBe('REGISTRY_NOT_FOUND');
    const prod = await app.inject({ method: 'POST', url: '/api/v1/rollouts', headers: auth, payload: { model: 'm', version: '1.0' } });
    expect(prod.statusCode).toBe(409);
    const missing = await app.inject({ method: 'GET', url: '/api/v1/rollouts/other', headers: auth });
    expect(missing.statusCode).toBe(404);
    expect(missing.json().error.code).toBe('ROLLOUT_NOT_FOUND');
  });

  it('starts, shows, pauses, resumes and aborts a rollout; records the actor; exports the phase and weight', async () => {
    const spec = { apiVersion: 'aegis.dev/v1', kind: 'Rollout', strategy: { canary: { steps: [{ setWeight: 40 }, { pause: {} }] } } };
    const started = await app.inject({ method: 'POST', url: '/api/v1/rollouts', headers: auth, payload: { model: 'm', version: '2.0', spec } });
    expect(started.statusCode, started.body).toBe(201);
    expect(started.json()).toMatchObject({ model: 'm', version: '2.0', stableVersion: '1.0', createdBy: 'alice' });
    expect((await registry.getVersion('m', '2.0')).stage).toBe('canary');
    const again = await app.inject({ method: 'POST', url: '/api/v1/rollouts', headers: auth, payload: { model: 'm', version: '2.0' } });
    expect(again.statusCode).toBe(409);
    expect(again.json().error.code).toBe('ROLLOUT_ACTIVE');

    let view: RolloutView | undefined;
    for (let i = 0; i < 200 && view?.phase !== 'Paused'; i++) {
      view = (await app.inject({ method: 'GET', url: '/api/v1/rollouts/m', headers: auth })).json() as RolloutView;
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(view).toMatchObject({ phase: 'Paused', weight: 40, step: 1 });
    expect(view!.steps.map((s) => s.status)).toEqual(['done', 'current']);
    expect(target.weight).toBe(40);

    const metrics = await app.inject({ method: 'GET', url: '/metrics' });
    expect(metrics.body).toMatch(/aegis_rollout_canary_weight\{model="m"\} 40/);
    expect(metrics.body).toMatch(/aegis_rollout_phase\{model="m",version="2.0",phase="Paused"\} 1/);

    const aborted = await app.inject({ method: 'POST', url: '/api/v1/rollouts/m/abort', headers: auth, payload: { reason: 'looks slow' } });
    expect(aborted.statusCode).toBe(200);
    expect(aborted.json()).toMatchObject({ phase: 'Degraded', weight: 0, abort: { by: 'alice', reason: 'looks slow' } });
    expect(target.weight).toBe(0);
    expect((await registry.getVersion('m', '1.0')).stage).toBe('production');
    const twice = await app.inject({ method: 'POST', url: '/api/v1/rollouts/m/abort', headers: auth, payload: {} });
    expect(twice.statusCode).toBe(409);
    const history = await registry.audit({ model: 'm', action: 'rollout.abort' });
    expect(history[0]).toMatchObject({ actor: 'alice', subject: 'm@2.0' });
    const list = await app.inject({ method: 'GET', url: '/api/v1/rollouts?model=m', headers: auth });
    expect((list.json() as { rollouts: RolloutView[] }).rollouts.map((r) => r.phase)).toEqual(['Degraded']);
  });

  it('runs database backups and drills for the CLI behind the token, refusing unknown fields and relative key paths', async () => {
    const calls: unknown[] = [];
    const withDb = await buildControlApp({
      controller,
      token: TOKEN,
      database: {
        backup: async (req) => (calls.push(['backup', req]), { ok: true, uri: 'file:///b/db-backups/x' }),
        drill: async (req) => (calls.push(['drill', req]), { ok: true, rtoSeconds: 1 }),
      },
    });
    try {
      expect((await withDb.inject({ method: 'POST', url: '/api/v1/db/backups', payload: {} })).statusCode).toBe(401);
      const made = await withDb.inject({ method: 'POST', url: '/api/v1/db/backups', headers: auth, payload: { format: 'logical', keepDaily: 7 } });
      expect(made.statusCode).toBe(201);
      expect(made.json()).toEqual({ ok: true, uri: 'file:///b/db-backups/x' });
      const unknown = await withDb.inject({ method: 'POST', url: '/api/v1/db/backups', headers: auth, payload: { format: 'zip' } });
      expect(unknown.statusCode).toBe(400);
      expect(unknown.json().error.message).toMatch(/^format: /);
      const relative = await withDb.inject({ method: 'POST', url: '/api/v1/db/drills', headers: auth, payload: { publicKey: 'keys/pub.pem' } });
      expect(relative.statusCode).toBe(400);
      expect(relative.json().error.message).toBe('publicKey: an absolute path');
      const drill = await withDb.inject({ method: 'POST', url: '/api/v1/db/drills', headers: auth, payload: { from: 'latest', signatureCache: false } });
      expect(drill.statusCode).toBe(200);
      expect(calls).toEqual([
        ['backup', { format: 'logical', keepDaily: 7 }],
        ['drill', { from: 'latest', signatureCache: false }],
      ]);
      // A control plane without them says so.
      expect((await app.inject({ method: 'POST', url: '/api/v1/db/backups', headers: auth, payload: {} })).json().error.code).toBe('USAGE');
    } finally {
      await withDb.close();
    }
  });

  it('starts, retries and cancels pipeline runs for the CLI, recording the caller; 400 for a bad body or id', async () => {
    const calls: unknown[] = [];
    const withRuns = await buildControlApp({
      controller,
      token: TOKEN,
      pipelineRuns: {
        list: async () => [],
        show: async (id) => ({ run: { id }, steps: [] }),
        submit: async (input) => (calls.push(['submit', input]), { id: 7, state: 'queued' }),
        retry: async (id) => (calls.push(['retry', id]), { id, state: 'queued' }),
        cancel: async (id) => (calls.push(['cancel', id]), { id, state: 'cancelled' }),
      },
    });
    try {
      expect((await withRuns.inject({ method: 'POST', url: '/api/v1/pipeline/runs', payload: { datasetUri: 'x' } })).statusCode).toBe(401);
      const started = await withRuns.inject({ method: 'POST', url: '/api/v1/pipeline/runs', headers: auth, payload: { datasetUri: 's3://d/v2/', model: 'm', executor: 'external' } });
      expect(started.statusCode).toBe(201);
      expect(started.json()).toEqual({ id: 7, state: 'queued' });
      const bad = await withRuns.inject({ method: 'POST', url: '/api/v1/pipeline/runs', headers: auth, payload: { model: 'm' } });
      expect(bad.statusCode).toBe(400);
      expect(bad.json().error.message).toMatch(/^datasetUri: /);
      expect((await withRuns.inject({ method: 'POST', url: '/api/v1/pipeline/runs/7/retry', headers: auth, payload: {} })).json()).toEqual({ id: 7, state: 'queued' });
      expect((await withRuns.inject({ method: 'POST', url: '/api/v1/pipeline/runs/7/cancel', headers: auth, payload: {} })).json()).toEqual({ id: 7, state: 'cancelled' });
      expect((await withRuns.inject({ method: 'POST', url: '/api/v1/pipeline/runs/0/cancel', headers: auth, payload: {} })).statusCode).toBe(400);
      expect(calls).toEqual([
        ['submit', { datasetUri: 's3://d/v2/', model: 'm', executor: 'external', actor: 'alice' }],
        ['retry', 7],
        ['cancel', 7],
      ]);
    } finally {
      await withRuns.close();
    }
  });
});
