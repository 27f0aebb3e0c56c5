import { createHash, timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { ModelManifest } from '../artifact/manifest.js';
import { DriftMonitor, loadReference, type DriftReport, type DriftSettings } from '../drift/index.js';
import { AegisError, isAegisError } from '../errors.js';
import { childLogger } from '../log.js';
import type { FetchedModel } from './fetch.js';
import { createServerMetrics, type ServerMetrics } from './metrics.js';
import type { LoadedModel, ModelRuntime, Tensor } from './runtime/types.js';
import { BadRequest, OIP_DATATYPE, encodeOipOutput, nested, parseOipInputs, parseSimpleInputs, type TensorSpec } from './tensors.js';

export type Track = 'stable' | 'canary';

/** What the server needs to obtain a verified model: fetch_and_verify_model, bound to trust and cache. */
export type ModelSource = (source: string, expect?: { name?: string; version?: string }) => Promise<FetchedModel>;

export interface FaultInjection {
  /** Share of requests answered 500 on purpose (drills). */
  errorRate: number;
  /** Extra latency added to every request, milliseconds. */
  latencyMs: number;
}

export interface ModelServerOptions {
  runtime: ModelRuntime;
  source: ModelSource;
  /** Name the model is served under (default: the manifest's name). */
  name?: string;
  track?: Track;
  /** Largest request body, bytes (413 above). */
  bodyLimit?: number;
  metrics?: ServerMetrics;
  faults?: FaultInjection;
  /** Deterministic fault decisions for tests. */
  random?: () => number;
  /**
   * Drift monitor (src/drift, docs/drift.md): on by default for models whose
   * manifest names a reference profile (labels.profile); settings override
   * the defaults; false turns it off.
   */
  drift?: Partial<DriftSettings> | false;
  /**
   * Who may hot-swap the model (POST /v2/repository/models/{name}/load): a
   * bearer token the caller must send, or false to turn the endpoint off (the
   * control plane replaces servers instead). Unset: open, for a server on
   * loopback only (`aegis serve` refuses other addresses without a token).
   * Only archives that verify against the trust policy ever load either way.
   */
  repositoryLoad?: { token: string } | false;
}

interface Slot {
  model: LoadedModel;
  manifest: ModelManifest;
  fetched: FetchedModel;
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  source: string;
  inflight: number;
  retired: boolean;
  /** Watches this version's inputs for drift (absent: no profile, drift off, or driftError). */
  drift?: DriftMonitor;
  /** Why this version has no drift monitor although drift is on. */
  driftError?: string;
  /** Feature labels this version published on aegis_model_drift_score. */
  driftFeatures: Set<string>;
}

export interface LoadResult {
  name: string;
  version: string;
  sha256: string;
  dir: string;
  previous?: { version: string; sha256: string };
}

const log = () => childLogger('serving');

function specs(list: ModelManifest['inputs']): TensorSpec[] {
  return list.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape }));
}

/** A batch of one with zeros, to warm a session up before it takes traffic. */
function warmupInputs(inputs: TensorSpec[]): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const s of inputs) {
    const dims = s.shape.map((d) => (d === -1 ? 1 : d));
    const n = dims.reduce((a, b) => a * b, 1);
    const data =
      s.dtype === 'string' ? new Array<string>(n).fill('') :
      s.dtype === 'bool' ? new Array<boolean>(n).fill(false) :
      s.dtype === 'int64' ? new BigInt64Array(n) :
      s.dtype === 'uint64' ? new BigUint64Array(n) :
      s.dtype === 'float64' ? new Float64Array(n) :
      s.dtype === 'int32' ? new Int32Array(n) :
      new Float32Array(n);
    out[s.name] = { dtype: s.dtype, dims, data };
  }
  return out;
}

/**
 * The model server: serves one model (its current verified version) over the
 * Open Inference Protocol v2 and the runbooks' simple /infer, with
 * Prometheus metrics, health probes and hot swap. A swap fetches, verifies,
 * loads and warms the new version, then switches atomically; requests in
 * flight finish on the old session, which is released when the last one ends.
 */
export class ModelServer {
  readonly app: FastifyInstance;
  readonly metrics: ServerMetrics;
  #track: Track;
  #slot: Slot | undefined;
  #swapChain: Promise<unknown> = Promise.resolve();
  #closing = false;
  readonly #o: ModelServerOptions;

  constructor(o: ModelServerOptions) {
    this.#o = o;
    this.#track = o.track ?? 'stable';
    this.metrics = o.metrics ?? createServerMetrics();
    this.app = Fastify({ bodyLimit: o.bodyLimit ?? 16 * 1024 * 1024, logger: false, return503OnClosing: true });
    this.#routes();
  }

  /** The `track` label of the metrics: stable or canary. */
  get track(): Track {
    return this.#track;
  }

  /** Changes the track label of the requests that start from now on (a pod Argo Rollouts promoted). */
  setTrack(track: Track): void {
    this.#track = track;
  }

  get ready(): boolean {
    return this.#slot !== undefined && !this.#closing;
  }

  get current(): { name: string; version: string; sha256: string } | undefined {
    const s = this.#slot;
    return s ? { name: this.servedName(s), version: s.manifest.version, sha256: s.fetched.archiveSha256 } : undefined;
  }

  servedName(s: Slot): string {
    return this.#o.name ?? s.manifest.name;
  }

  /** Fetches, verifies, loads and warms a version, then makes it current. Serialized: one swap at a time. */
  load(source: string, expect?: { name?: string; version?: string }): Promise<LoadResult> {
    const run = this.#swapChain.then(() => this.#load(source, expect));
    this.#swapChain = run.catch(() => undefined);
    return run;
  }

  async #load(source: string, expect?: { name?: string; version?: string }): Promise<LoadResult> {
    const started = Date.now();
    let model: LoadedModel | undefined;
    try {
      const fetched = await this.#o.source(source, { ...(this.#slot && !expect?.name ? { name: this.#slot.manifest.name } : {}), ...expect });
      const manifest = fetched.manifest;
      if (manifest.framework !== 'onnx') {
        throw new AegisError('MODEL_LOAD_FAILED', `${manifest.name}@${manifest.version} is a ${manifest.framework} model; this server runs ONNX models`, {
          hint: 'Serve ONNX models (framework: onnx in aegis.yaml).',
        });
      }
      model = await this.#o.runtime.load(fetched.dir, manifest);
      const inputs = specs(manifest.inputs);
      await model.run(warmupInputs(inputs)).catch((err: unknown) => {
        throw new AegisError('MODEL_LOAD_FAILED', `warm-up inference failed: ${(err as Error).message}`, {
          cause: err,
          hint: 'The model does not run on inputs of the declared shapes; check inputs in aegis.yaml.',
        });
      });
      const drift = await this.#driftMonitor(fetched.dir, manifest);
      const previous = this.#slot;
      this.#slot = { model, manifest, fetched, inputs, outputs: specs(manifest.outputs), source, inflight: 0, retired: false, ...drift, driftFeatures: new Set() };
      if (previous) {
        previous.retired = true;
        if (previous.inflight === 0) void previous.model.close();
        this.metrics.info.remove(this.servedName(previous), previous.manifest.version, previous.fetched.archiveSha256, previous.fetched.archiveSigner.trustedId ?? previous.fetched.archiveSigner.keyHint);
        this.#retireDrift(previous);
      }
      const slot = this.#slot;
      slot.drift?.start((r) => this.#publishDrift(slot, r));
      this.metrics.info.set({ model: this.servedName(this.#slot), version: manifest.version, digest: fetched.archiveSha256, signer: fetched.archiveSigner.trustedId ?? fetched.archiveSigner.keyHint }, 1);
      this.metrics.loads.inc({ outcome: 'success' });
      log().info({ event: 'model_loaded', name: manifest.name, version: manifest.version, sha256: fetched.archiveSha256, previous: previous?.manifest.version, ms: Date.now() - started }, 'model loaded');
      return {
        name: this.servedName(this.#slot),
        version: manifest.version,
        sha256: fetched.archiveSha256,
        dir: fetched.dir,
        ...(previous ? { previous: { version: previous.manifest.version, sha256: previous.fetched.archiveSha256 } } : {}),
      };
    } catch (err) {
      if (model) await model.close().catch(() => undefined);
      this.metrics.loads.inc({ outcome: 'failure' });
      log().warn({ event: 'model_load_failed', source, code: isAegisError(err) ? err.code : 'INTERNAL', reason: (err as Error).message, keepsServing: this.#slot?.manifest.version }, 'model load refused; the current version keeps serving');
      throw err;
    }
  }

  /** The drift monitor of a version being loaded; a bad profile or setting leaves the model serving without one (and says why). */
  async #driftMonitor(dir: string, manifest: ModelManifest): Promise<{ drift?: DriftMonitor; driftError?: string }> {
    if (this.#o.drift === false) return {};
    const model = { name: this.#o.name ?? manifest.name, version: manifest.version };
    try {
      const reference = await loadReference(dir, manifest);
      if (!reference) return {};
      return { drift: new DriftMonitor({ reference, model, settings: this.#o.drift ?? {} }) };
    } catch (err) {
      const reason = (err as Error).message;
      log().warn({ event: 'drift_monitor_unavailable', name: model.name, version: model.version, code: isAegisError(err) ? err.code : 'INTERNAL', reason }, 'drift is not monitored for this version');
      return { driftError: reason };
    }
  }

  /** Exports a drift report on the gauges (only the current version's). */
  #publishDrift(slot: Slot, r: DriftReport): void {
    if (slot.retired) return;
    const labels = { model: r.model, version: r.version };
    const m = this.metrics;
    m.driftWindowRows.set(labels, r.window.rows);
    m.driftDataset.set({ ...labels, dataset_uri: r.datasetUri, reference_dataset_uri: r.reference.datasetUri }, 1);
    if (r.status !== 'ok' || r.drift === null) return;
    m.driftDetected.set(labels, r.drift ? 1 : 0);
    m.driftShare.set(labels, r.share?.value ?? 0);
    const scores: [string, number][] = [...r.features.map((f): [string, number] => [f.name, f.score]), ...r.multivariate.map((v): [string, number] => [v.input, v.score])];
    if (r.prediction) scores.push([r.prediction.name, r.prediction.score]);
    for (const [feature, score] of scores) {
      // +Inf is a valid sample (an unseen category); NaN too, but says nothing
      m.driftScore.set({ ...labels, feature }, score);
      slot.driftFeatures.add(feature);
    }
  }

  #retireDrift(slot: Slot): void {
    slot.drift?.stop();
    if (!slot.drift) return;
    const labels = { model: slot.drift.model.name, version: slot.drift.model.version };
    const m = this.metrics;
    m.driftDetected.remove(labels);
    m.driftShare.remove(labels);
    m.driftWindowRows.remove(labels);
    const last = slot.drift.lastReport;
    if (last) m.driftDataset.remove({ ...labels, dataset_uri: last.datasetUri, reference_dataset_uri: last.reference.datasetUri });
    for (const feature of slot.driftFeatures) m.driftScore.remove({ ...labels, feature });
  }

  /** Pins a slot for one request: it is not released (closed) until every request holding it is done. */
  #acquire(slot: Slot): Slot {
    slot.inflight++;
    return slot;
  }

  #release(slot: Slot | undefined): void {
    if (!slot) return;
    slot.inflight--;
    if (slot.retired && slot.inflight === 0) void slot.model.close();
  }

  /** The slot serving `name`/`version`, or an HTTP error. */
  #slotFor(name: string, version?: string): Slot {
    const s = this.#slot;
    if (!s) throw new BadRequest(`model ${name} is not loaded yet`, 503);
    if (name !== this.servedName(s)) throw new BadRequest(`unknown model ${JSON.stringify(name)}; this server serves ${this.servedName(s)}`, 404);
    if (version !== undefined && version !== s.manifest.version) throw new BadRequest(`model ${name} version ${JSON.stringify(version)} is not loaded; serving ${s.manifest.version}`, 404);
    return s;
  }

  async #faults(): Promise<void> {
    const f = this.#o.faults;
    if (!f) return;
    if (f.latencyMs > 0) await new Promise((r) => setTimeout(r, f.latencyMs));
    if (f.errorRate > 0 && (this.#o.random ?? Math.random)() < f.errorRate) throw new BadRequest('injected fault (aegis serve --inject-fault): this is a drill', 500);
  }

  #routes(): void {
    const app = this.app;
    const send = (reply: FastifyReply, status: number, body: unknown) => reply.code(status).send(body);

    app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, _req, reply) => {
      if (err instanceof BadRequest) return send(reply, err.status, { error: err.message });
      if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return send(reply, 413, { error: `request body is larger than the ${this.#o.bodyLimit ?? 16 * 1024 * 1024}-byte limit` });
      if (err.statusCode && err.statusCode < 500) return send(reply, err.statusCode, { error: err.message });
      log().error({ event: 'inference_error', err: err.message }, 'request failed');
      return send(reply, 500, { error: `inference failed: ${err.message}` });
    });
    app.setNotFoundHandler((req, reply) => send(reply, 404, { error: `no route ${req.method} ${req.url}` }));
    // Plain JSON.parse: inputs are only read, never merged into objects, so prototype
    // poisoning cannot apply, and it is markedly faster than fastify's guarded parser.
    app.removeContentTypeParser('application/json');
    app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
      try {
        done(null, JSON.parse(body as string));
      } catch (err) {
        done(new BadRequest(`request body is not valid JSON: ${(err as Error).message}`), undefined);
      }
    });
    // While draining, answers close their keep-alive connection so shutdown does not wait for idle sockets.
    app.addHook('onSend', async (_req, reply) => {
      if (this.#closing) reply.header('connection', 'close');
    });

    // Probes
    const live = async () => ({ live: true });
    const ready = async (_req: FastifyRequest, reply: FastifyReply) => (this.ready ? { ready: true } : send(reply, 503, { ready: false, error: this.#closing ? 'shutting down' : 'no model loaded yet' }));
    app.get('/v2/health/live', live);
    app.get('/v2/health/ready', ready);
    app.get('/healthz', live);
    app.get('/readyz', ready);
    app.get('/metrics', async (_req, reply) => reply.type(this.metrics.registry.contentType).send(await this.metrics.registry.metrics()));
    app.get('/v2', async () => ({ name: 'aegis', version: process.env.npm_package_version ?? '0.1.0', extensions: ['model_repository'] }));

    // Model metadata and readiness
    const metadata = async (req: FastifyRequest<{ Params: { name: string; version?: string } }>) => {
      const s = this.#slotFor(req.params.name, req.params.version);
      const t = (x: TensorSpec) => ({ name: x.name, datatype: OIP_DATATYPE[x.dtype], shape: x.shape });
      return { name: this.servedName(s), versions: [s.manifest.version], platform: this.#o.runtime.platform, inputs: s.inputs.map(t), outputs: s.outputs.map(t) };
    };
    app.get('/v2/models/:name', metadata);
    app.get('/v2/models/:name/versions/:version', metadata);
    const modelReady = async (req: FastifyRequest<{ Params: { name: string; version?: string } }>) => {
      const s = this.#slotFor(req.params.name, req.params.version);
      return { name: this.servedName(s), version: s.manifest.version, ready: this.ready };
    };
    app.get('/v2/models/:name/ready', modelReady);
    app.get('/v2/models/:name/versions/:version/ready', modelReady);

    // Inference
    // Labelled children are looked up once per (version, track, code), not hashed on every request.
    const children = new Map<string, { count: { inc: () => void }; time: { observe: (v: number) => void } }>();
    const observe = (slot: Slot | undefined, code: number, started: bigint) => {
      const model = slot ? this.servedName(slot) : 'unknown';
      const version = slot?.manifest.version ?? 'unknown';
      const key = `${model}\0${version}\0${this.#track}\0${code}`;
      let c = children.get(key);
      if (!c) {
        const labels = { model, version, track: this.#track };
        c = { count: this.metrics.requests.labels({ ...labels, code: String(code) }), time: this.metrics.duration.labels(labels) };
        children.set(key, c);
      }
      c.count.inc();
      c.time.observe(Number(process.hrtime.bigint() - started) / 1e9);
    };
    const oip = async (req: FastifyRequest<{ Params: { name: string; version?: string }; Body: unknown }>, reply: FastifyReply) => {
      const started = process.hrtime.bigint();
      let slot: Slot | undefined;
      try {
        slot = this.#acquire(this.#slotFor(req.params.name, req.params.version));
        const body = req.body as { id?: unknown; inputs?: unknown; outputs?: { name?: unknown }[]; parameters?: unknown } | null;
        if (!body || typeof body !== 'object') throw new BadRequest('request body must be a JSON object with "inputs"');
        const inputs = parseOipInputs(body.inputs, slot.inputs);
        let wanted: string[] | undefined;
        if (body.outputs !== undefined) {
          if (!Array.isArray(body.outputs)) throw new BadRequest('"outputs" must be an array of {name}');
          wanted = body.outputs.map((o, i) => {
            if (typeof o?.name !== 'string' || !slot!.outputs.some((s) => s.name === o.name)) {
              throw new BadRequest(`outputs[${i}]: unknown output ${JSON.stringify(o?.name)}; the model has ${slot!.outputs.map((s) => s.name).join(', ')}`);
            }
            return o.name;
          });
        }
        await this.#faults();
        const result = await slot.model.run(inputs, wanted);
        observe(slot, 200, started);
        slot.drift?.observe(inputs, result);
        return {
          model_name: this.servedName(slot),
          model_version: slot.manifest.version,
          ...(typeof body.id === 'string' ? { id: body.id } : {}),
          ...(body.parameters && typeof body.parameters === 'object' ? { parameters: body.parameters } : {}),
          outputs: Object.entries(result).map(([name, t]) => encodeOipOutput(name, t)),
        };
      } catch (err) {
        const code = err instanceof BadRequest ? err.status : 500;
        observe(slot, code, started);
        throw err;
      } finally {
        this.#release(slot);
      }
      void reply;
    };
    app.post('/v2/models/:name/infer', oip);
    app.post('/v2/models/:name/versions/:version/infer', oip);

    app.post('/infer', async (req: FastifyRequest<{ Body: unknown }>) => {
      const started = process.hrtime.bigint();
      const slot = this.#slot ? this.#acquire(this.#slot) : undefined;
      try {
        if (!slot) throw new BadRequest('no model loaded yet', 503);
        const body = req.body as { inputs?: unknown } | null;
        if (!body || typeof body !== 'object') throw new BadRequest('request body must be a JSON object: {"inputs": {"name": [[...]]}}');
        const inputs = parseSimpleInputs(body.inputs, slot.inputs);
        await this.#faults();
        const result = await slot.model.run(inputs);
        observe(slot, 200, started);
        slot.drift?.observe(inputs, result);
        const outputs: Record<string, unknown> = {};
        for (const [name, t] of Object.entries(result)) outputs[name] = nested(t);
        return { model_name: this.servedName(slot), model_version: slot.manifest.version, outputs };
      } catch (err) {
        observe(slot, err instanceof BadRequest ? err.status : 500, started);
        throw err;
      } finally {
        this.#release(slot);
      }
    });

    // Drift report of the version being served (src/drift): tests rerun when new rows arrived since the last run.
    const driftReport = async (req: FastifyRequest<{ Params: { name: string; version?: string } }>, reply: FastifyReply) => {
      const s = this.#slotFor(req.params.name, req.params.version);
      const id = `${this.servedName(s)}@${s.manifest.version}`;
      if (!s.drift) {
        const why = s.driftError
          ? { status: 503, error: `drift is not monitored for ${id}: ${s.driftError}`, hint: 'Fix the reference profile or the drift settings (see the server log and docs/drift.md), then load the model again.' }
          : this.#o.drift === false
            ? { status: 404, error: `drift monitoring is turned off on this server`, hint: 'Enable it (drift.enabled: true, AEGIS_DRIFT_ENABLED=true) and restart the server.' }
            : { status: 404, error: `${id} has no reference profile (labels.profile in aegis.yaml), so its inputs are not watched for drift`, hint: 'Train with `aegis train` (it writes profile.json and labels.profile), then package and sign the model again.' };
        return send(reply, why.status, { error: why.error, code: 'DRIFT_UNAVAILABLE', hint: why.hint });
      }
      const r = await s.drift.evaluate();
      this.#publishDrift(s, r);
      return r;
    };
    app.get('/v2/models/:name/drift', driftReport);
    app.get('/v2/models/:name/versions/:version/drift', driftReport);

    // Repository extension: index and hot swap
    const index = async () => (this.#slot ? [{ name: this.servedName(this.#slot), version: this.#slot.manifest.version, state: 'READY' }] : []);
    app.post('/v2/repository/index', index);
    app.get('/v2/repository/index', index);
    const loadAccess = this.#o.repositoryLoad;
    const tokenDigest = loadAccess ? createHash('sha256').update(loadAccess.token).digest() : undefined;
    app.post('/v2/repository/models/:name/load', async (req: FastifyRequest<{ Params: { name: string }; Body: unknown }>, reply) => {
      if (loadAccess === false) {
        return send(reply, 403, { loaded: false, error: 'hot swap is turned off on this server', code: 'USAGE', hint: 'This server is managed by a control plane: roll out the version with `aegis rollout start NAME@VERSION`.' });
      }
      if (tokenDigest) {
        const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
        if (!m || !timingSafeEqual(createHash('sha256').update(m[1]!).digest(), tokenDigest)) {
          reply.header('www-authenticate', 'Bearer realm="aegis-model-server"');
          return send(reply, 401, { loaded: false, error: m ? 'the admin token is wrong' : 'hot swap needs the admin token', code: 'CONTROL_UNAUTHORIZED', hint: 'Pass --admin-token-file FILE (or AEGIS_SERVER_ADMIN_TOKEN) to `aegis model load`.' });
        }
      }
      const body = (req.body ?? {}) as { uri?: unknown; version?: unknown; parameters?: { uri?: unknown; version?: unknown } };
      const uri = body.uri ?? body.parameters?.uri;
      const version = body.version ?? body.parameters?.version;
      if (typeof uri !== 'string' || uri === '') throw new BadRequest('body must name the archive to load: {"uri": "s3://…/model.tar.gz" (or a registry ref), "version": "1.2"}');
      if (this.#slot && req.params.name !== this.servedName(this.#slot)) throw new BadRequest(`unknown model ${JSON.stringify(req.params.name)}; this server serves ${this.servedName(this.#slot)}`, 404);
      try {
        const r = await this.load(uri, typeof version === 'string' ? { version } : undefined);
        return { loaded: true, ...r };
      } catch (err) {
        const e = isAegisError(err) ? err : new AegisError('INTERNAL', (err as Error).message, { cause: err });
        return send(reply, 422, { loaded: false, error: e.message, code: e.code, hint: e.hint, serving: this.current });
      }
    });
  }

  async listen(port: number, host = '127.0.0.1'): Promise<string> {
    return this.app.listen({ port, host });
  }

  /** Graceful shutdown: not ready, stop accepting, let requests in flight finish, release the session. */
  async close(): Promise<void> {
    this.#closing = true;
    const idle = setInterval(() => this.app.server.closeIdleConnections(), 50);
    try {
      await this.app.close();
    } finally {
      clearInterval(idle);
    }
    await this.#swapChain;
    const slot = this.#slot;
    slot?.drift?.stop();
    if (slot) {
      // Requests still holding the slot finish first (inject-based callers are not tracked by app.close).
      while (slot.inflight > 0) await new Promise((r) => setTimeout(r, 5));
      slot.retired = true;
      await slot.model.close();
    }
  }
}
