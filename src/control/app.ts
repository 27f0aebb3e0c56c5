import { createHash, timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { Gauge, Registry as MetricsRegistry } from 'prom-client';
import { z } from 'zod';
import { AegisError, isAegisError, type ErrorCode } from '../errors.js';
import { childLogger } from '../log.js';
import { describeRollout } from '../rollout/controller/describe.js';
import type { RolloutController } from '../rollout/controller/index.js';
import type { RolloutRecord } from '../rollout/controller/types.js';
import { parseRolloutSpec, validateRolloutSpec } from '../rollout/spec.js';
import type { Registry } from '../registry/index.js';
import { STAGES } from '../registry/types.js';
import { dbBackupRequest, dbDrillRequest, type DatabaseOps } from './database.js';

const log = () => childLogger('control');

export interface ControlAppOptions {
  controller: RolloutController;
  /** Bearer token every /api call must carry. */
  token: string;
  /** What the local deployment serves (GET /api/v1/deployment). */
  deployment?: () => unknown;
  /** Extra metrics to expose on GET /metrics (e.g. the backup metric). */
  metrics?: MetricsRegistry;
  /** Registers a verified archive (POST /api/v1/versions; what `aegis model register` falls back to while the control plane holds the embedded DB). */
  register?: (uri: string, actor: string) => Promise<unknown>;
  /** The registry (GET/POST /api/v1/registry/…: what `aegis model list|show|promote|history` use while the control plane holds the embedded DB). */
  registry?: Registry;
  /** Retrain pipeline runs (GET /api/v1/pipeline/runs[/:id]): what `aegis pipeline list|show` read while the control plane holds the embedded DB. */
  pipelineRuns?: {
    list(filter: { state?: string; model?: string; limit?: number }): Promise<unknown>;
    show(id: number): Promise<unknown>;
    /** POST /api/v1/pipeline/runs, …/:id/retry, …/:id/cancel: what `aegis pipeline run|retry|cancel` send while the control plane holds the embedded DB (its runner executes the run). */
    submit?(input: { datasetUri: string; model?: string; requestId?: string; executor?: 'local' | 'external'; actor: string }): Promise<unknown>;
    retry?(id: number): Promise<unknown>;
    cancel?(id: number): Promise<unknown>;
  };
  /** Database backups and drills (POST /api/v1/db/backups, /api/v1/db/drills): what `aegis db backup|drill` use while the control plane holds the embedded DB. */
  database?: DatabaseOps;
  /** Mounts more routes (e.g. the Alertmanager receiver) on the same server. */
  plugins?: Array<(app: FastifyInstance) => Promise<void> | void>;
}

const HTTP_STATUS: Partial<Record<ErrorCode, number>> = {
  USAGE: 400,
  ROLLOUT_SPEC_INVALID: 400,
  REGISTRY_INPUT_INVALID: 400,
  REGISTRY_NOT_FOUND: 404,
  PIPELINE_NOT_FOUND: 404,
  PIPELINE_INPUT_INVALID: 400,
  PIPELINE_STATE_INVALID: 409,
  ROLLOUT_NOT_FOUND: 404,
  ROLLOUT_ACTIVE: 409,
  ROLLOUT_NOT_ALLOWED: 409,
  ROLLOUT_TARGET_MISSING: 409,
  CONTROL_UNAUTHORIZED: 401,
};

const MODEL = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, 'a model name');
const startBody = z
  .object({
    model: MODEL,
    version: z.string().min(1).max(128),
    /** The spec as an object, or YAML text. */
    spec: z.union([z.string(), z.record(z.string(), z.unknown())]).optional(),
    injectFault: z.string().min(1).max(200).optional(),
  })
  .strict();
const promoteBody = z.object({ full: z.boolean().optional() }).strict();
const abortBody = z.object({ reason: z.string().min(1).max(1000).optional() }).strict();

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/**
 * The control-plane HTTP API (the composition root's face): the rollout
 * commands `aegis rollout …` send, status, metrics. Every /api route needs
 * `Authorization: Bearer <token>` (compared in constant time); /healthz and
 * /metrics are open (read-only, and the control plane listens on 127.0.0.1
 * unless told otherwise). The actor recorded in the audit log comes from the
 * `x-aegis-actor` header (the CLI sends the configured actor).
 */
export async function buildControlApp(o: ControlAppOptions): Promise<FastifyInstance> {
  const app = Fastify({ logger: false, bodyLimit: 1024 * 1024 });
  const expected = digest(o.token);
  const metrics = new MetricsRegistry();
  const phaseGauge = new Gauge({ name: 'aegis_rollout_phase', help: 'Current rollout phase per model (1 for the phase it is in).', labelNames: ['model', 'version', 'phase'], registers: [metrics] });
  const weightGauge = new Gauge({ name: 'aegis_rollout_canary_weight', help: 'Share of inference traffic sent to the canary, percent.', labelNames: ['model'], registers: [metrics] });
  const observe = (r: RolloutRecord) => {
    for (const p of ['Progressing', 'Paused', 'Healthy', 'Degraded']) phaseGauge.set({ model: r.model, version: r.version, phase: p }, r.phase === p ? 1 : 0);
    weightGauge.set({ model: r.model }, r.phase === 'Healthy' ? 0 : r.state.weight);
  };

  app.setErrorHandler((err: unknown, _req, reply) => {
    if (isAegisError(err)) return reply.code(HTTP_STATUS[err.code] ?? 500).send({ error: err.toJSON() });
    const e = err as { statusCode?: number; message?: string; code?: string };
    if (e.statusCode && e.statusCode < 500) return reply.code(e.statusCode).send({ error: { code: 'USAGE', message: e.message ?? 'bad request' } });
    log().error({ event: 'control_api_error', err: e.message }, 'control API request failed');
    return reply.code(500).send({ error: { code: 'INTERNAL', message: e.message ?? 'internal error' } });
  });

  const auth = async (req: FastifyRequest, reply: FastifyReply) => {
    const h = req.headers.authorization ?? '';
    const m = /^Bearer\s+(\S+)$/i.exec(h);
    if (!m || !timingSafeEqual(digest(m[1]!), expected)) {
      reply.header('www-authenticate', 'Bearer realm="aegis"');
      throw new AegisError('CONTROL_UNAUTHORIZED', m ? 'the control-plane token is wrong' : 'the control-plane API needs a bearer token', {
        hint: 'The CLI reads it from <home>/control.token (written by `aegis up`) or AEGIS_CONTROL_TOKEN.',
      });
    }
  };
  const actor = (req: FastifyRequest) => {
    const a = req.headers['x-aegis-actor'];
    return typeof a === 'string' && a.length > 0 && a.length <= 200 ? a : 'api';
  };
  const parse = <T>(schema: z.ZodType<T>, body: unknown): T => {
    const r = schema.safeParse(body ?? {});
    if (!r.success) {
      const i = r.error.issues[0]!;
      throw new AegisError('USAGE', `${i.path.join('.') || 'body'}: ${i.message}`, { hint: 'See `aegis rollout --help` for the fields.' });
    }
    return r.data;
  };
  const model = (req: FastifyRequest) => parse(MODEL, (req.params as { model: string }).model);

  app.get('/healthz', async () => ({ ok: true }));
  app.get('/metrics', async (_req, reply) => {
    for (const r of await o.controller.list({ limit: 100 })) observe(r);
    const text = (await metrics.metrics()) + (o.metrics ? await o.metrics.metrics() : '');
    return reply.type(metrics.contentType).send(text);
  });

  await app.register(async (api) => {
    api.addHook('onRequest', auth);
    api.get('/api/v1/deployment', async () => ({ models: o.deployment?.() ?? [] }));
    api.post('/api/v1/versions', async (req, reply) => {
      const b = parse(z.object({ uri: z.string().min(1).max(4096) }).strict(), req.body);
      if (!o.register) throw new AegisError('USAGE', 'this control plane does not register versions', { hint: 'Use `aegis model register` against the database directly.' });
      return reply.code(201).send(await o.register(b.uri, actor(req)));
    });
    const registry = () => {
      if (!o.registry) throw new AegisError('USAGE', 'this control plane has no registry', { hint: 'Use the aegis model commands against the database.' });
      return o.registry;
    };
    api.get('/api/v1/registry/models', async () => ({ models: await registry().listModels() }));
    api.get('/api/v1/registry/models/:model/versions', async (req) => ({ versions: await registry().listVersions(model(req)) }));
    api.get('/api/v1/registry/resolve', async (req) => registry().resolve(parse(z.object({ ref: z.string().min(1).max(300) }).strict(), req.query).ref));
    api.post('/api/v1/registry/promote', async (req) => {
      const b = parse(z.object({ name: MODEL, version: z.string().min(1).max(128), stage: z.enum(STAGES), reason: z.string().max(1000).optional(), force: z.boolean().optional() }).strict(), req.body);
      return registry().promote(b.name, b.version, b.stage, actor(req), { ...(b.reason ? { reason: b.reason } : {}), ...(b.force ? { force: true } : {}) });
    });
    api.get('/api/v1/registry/audit', async (req) => {
      const q = parse(
        z.object({ model: MODEL.optional(), subject: z.string().max(300).optional(), action: z.string().max(100).optional(), actor: z.string().max(200).optional(), since: z.coerce.date().optional(), limit: z.coerce.number().int().min(1).max(10_000).optional() }).strict(),
        req.query,
      );
      return { entries: await registry().audit(Object.fromEntries(Object.entries(q).filter(([, v]) => v !== undefined))) };
    });
    api.get('/api/v1/pipeline/runs', async (req) => {
      if (!o.pipelineRuns) throw new AegisError('USAGE', 'this control plane runs no pipeline', { hint: 'Use `aegis pipeline list` against the database.' });
      const q = parse(z.object({ state: z.string().max(20).optional(), model: MODEL.optional(), limit: z.coerce.number().int().min(1).max(1000).optional() }).strict(), req.query);
      return { runs: await o.pipelineRuns.list(q) };
    });
    const runs = (what: 'submit' | 'retry' | 'cancel') => {
      const p = o.pipelineRuns;
      if (!p?.[what]) throw new AegisError('USAGE', 'this control plane runs no pipeline', { hint: `Use \`aegis pipeline ${what === 'submit' ? 'run' : what}\` against the database.` });
      return p as Required<NonNullable<ControlAppOptions['pipelineRuns']>>;
    };
    const runIdParam = (req: FastifyRequest) => parse(z.object({ id: z.coerce.number().int().min(1) }).strict(), req.params).id;
    api.post('/api/v1/pipeline/runs', async (req, reply) => {
      const b = parse(
        z.object({ datasetUri: z.string().min(1).max(4096), model: MODEL.optional(), requestId: z.string().min(1).max(200).optional(), executor: z.enum(['local', 'external']).optional() }).strict(),
        req.body,
      );
      return reply.code(201).send(await runs('submit').submit({ ...b, actor: actor(req) }));
    });
    api.post('/api/v1/pipeline/runs/:id/retry', async (req) => runs('retry').retry(runIdParam(req)));
    api.post('/api/v1/pipeline/runs/:id/cancel', async (req) => runs('cancel').cancel(runIdParam(req)));
    api.get('/api/v1/pipeline/runs/:id', async (req) => {
      if (!o.pipelineRuns) throw new AegisError('USAGE', 'this control plane runs no pipeline', { hint: 'Use `aegis pipeline show` against the database.' });
      const { id } = parse(z.object({ id: z.coerce.number().int().min(1) }).strict(), req.params);
      return o.pipelineRuns.show(id);
    });
    const database = () => {
      if (!o.database) throw new AegisError('USAGE', 'this control plane does not run database backups', { hint: 'Run `aegis db backup` / `aegis db drill` against the database directly.' });
      return o.database;
    };
    api.post('/api/v1/db/backups', async (req, reply) => reply.code(201).send(await database().backup(parse(dbBackupRequest, req.body))));
    api.post('/api/v1/db/drills', async (req) => database().drill(parse(dbDrillRequest, req.body)));
    api.get('/api/v1/rollouts', async (req) => {
      const q = req.query as { model?: string; limit?: string };
      const rows = await o.controller.list({ ...(q.model ? { model: parse(MODEL, q.model) } : {}), ...(q.limit ? { limit: Number(q.limit) } : {}) });
      return { rollouts: rows.map(describeRollout) };
    });
    api.post('/api/v1/rollouts', async (req, reply) => {
      const b = parse(startBody, req.body);
      const spec = b.spec === undefined ? undefined : typeof b.spec === 'string' ? parseRolloutSpec(b.spec, 'the spec sent') : validateRolloutSpec(b.spec, 'the spec sent');
      const r = await o.controller.start({ model: b.model, version: b.version, actor: actor(req), ...(spec ? { spec } : {}), ...(b.injectFault ? { injectFault: b.injectFault } : {}) });
      return reply.code(201).send(describeRollout(r));
    });
    api.get('/api/v1/rollouts/:model', async (req) => describeRollout(await o.controller.status(model(req))));
    api.post('/api/v1/rollouts/:model/promote', async (req) => {
      const b = parse(promoteBody, req.body);
      return describeRollout(await o.controller.promote(model(req), { actor: actor(req), ...(b.full ? { full: true } : {}) }));
    });
    api.post('/api/v1/rollouts/:model/abort', async (req) => {
      const b = parse(abortBody, req.body);
      return describeRollout(await o.controller.abort(model(req), { actor: actor(req), ...(b.reason ? { reason: b.reason } : {}) }));
    });
    api.post('/api/v1/rollouts/:model/pause', async (req) => describeRollout(await o.controller.pause(model(req), { actor: actor(req) })));
    api.post('/api/v1/rollouts/:model/resume', async (req) => describeRollout(await o.controller.resume(model(req), { actor: actor(req) })));
  });
  for (const plugin of o.plugins ?? []) await plugin(app);
  return app;
}
