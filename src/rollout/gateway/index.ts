import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { LATENCY_BUCKETS } from '../../serving/metrics.js';
import { childLogger } from '../../log.js';
import { WeightedSplit } from './split.js';

export type Track = 'stable' | 'canary';

export interface Upstream {
  url: string;
  version?: string;
}

export interface GatewayOptions {
  model: string;
  stable: Upstream;
  canary?: Upstream;
  /** Called for every proxied inference request (feeds the embedded metric provider). */
  onResult?: (track: Track, status: number, latencyMs: number) => void;
  /** Largest request body, bytes. */
  bodyLimit?: number;
  connections?: number;
}

interface UpstreamState {
  upstream: Upstream;
  pool: Pool;
  inflight: number;
}

const log = () => childLogger('gateway');

/**
 * The local traffic splitter in front of the stable and canary model servers
 * (Argo Rollouts does this on a cluster). Inference POSTs are split by the
 * canary weight; everything else goes to stable. A request that cannot reach
 * the canary (connection refused/reset before any response) is retried once on
 * stable, so a canary going away never drops a request. In-flight counts per
 * upstream let a controller drain one before stopping it.
 */
export class Gateway {
  readonly split = new WeightedSplit();
  readonly registry = new Registry();
  readonly #requests: Counter<'model' | 'version' | 'track' | 'code'>;
  readonly #duration: Histogram<'model' | 'version' | 'track'>;
  #stable: UpstreamState;
  #canary: UpstreamState | undefined;
  #server: Server | undefined;
  readonly #o: GatewayOptions;

  constructor(o: GatewayOptions) {
    this.#o = o;
    collectDefaultMetrics({ register: this.registry, prefix: 'aegis_gateway_' });
    this.#requests = new Counter({
      name: 'aegis_gateway_requests_total',
      help: 'Inference requests through the gateway, by model, version, track and status code.',
      labelNames: ['model', 'version', 'track', 'code'],
      registers: [this.registry],
    });
    this.#duration = new Histogram({
      name: 'aegis_gateway_request_duration_seconds',
      help: 'Latency through the gateway, by track.',
      labelNames: ['model', 'version', 'track'],
      buckets: LATENCY_BUCKETS,
      registers: [this.registry],
    });
    this.#stable = this.#state(o.stable);
    if (o.canary) this.#canary = this.#state(o.canary);
  }

  #state(upstream: Upstream): UpstreamState {
    return { upstream, pool: new Pool(upstream.url, { connections: this.#o.connections ?? 64, keepAliveTimeout: 30_000 }), inflight: 0 };
  }

  get weight(): number {
    return this.#canary ? this.split.weight : 0;
  }

  setWeight(w: number): void {
    this.split.setWeight(w);
    log().info({ event: 'weight_changed', weight: w }, 'canary weight changed');
  }

  /** Points the canary slot at a server (weight stays where it is: set it explicitly). */
  setCanary(upstream: Upstream | undefined): void {
    const old = this.#canary;
    this.#canary = upstream ? this.#state(upstream) : undefined;
    if (!upstream) this.split.setWeight(0);
    if (old) void this.#retire(old);
  }

  /**
   * Promotion: the canary's version becomes the stable. With `replacement`
   * (a server of the canary's version started as the stable track, so its
   * own metrics say track="stable"), stable traffic moves there and the old
   * stable and the canary are both drained and released; without it, the
   * canary server itself becomes the stable. One synchronous switch: the
   * next request goes to the new stable.
   */
  promoteCanary(replacement?: Upstream): void {
    if (!this.#canary) return;
    const old = this.#stable;
    const canary = this.#canary;
    this.#stable = replacement ? this.#state(replacement) : canary;
    this.#canary = undefined;
    this.split.setWeight(0);
    void this.#retire(old);
    if (replacement) void this.#retire(canary);
  }

  /** Upstreams taken out of service whose in-flight requests are still finishing. */
  readonly #retiring = new Set<UpstreamState>();

  async #retire(s: UpstreamState): Promise<void> {
    this.#retiring.add(s);
    try {
      while (s.inflight > 0) await new Promise((r) => setTimeout(r, 10));
      await s.pool.close();
    } finally {
      this.#retiring.delete(s);
    }
  }

  /** Requests in flight to a track's current upstream. */
  inflight(track: Track): number {
    return (track === 'stable' ? this.#stable : this.#canary)?.inflight ?? 0;
  }

  /** Resolves when no request is in flight to the upstream at `url`. */
  async drained(url: string): Promise<void> {
    for (;;) {
      const busy = [this.#stable, this.#canary, ...this.#retiring].some((s) => s && s.upstream.url === url && s.inflight > 0);
      if (!busy) return;
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  async #forward(s: UpstreamState, req: IncomingMessage, body: Buffer) {
    s.inflight++;
    try {
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) {
        if (typeof v === 'string' && !['host', 'connection', 'content-length', 'transfer-encoding', 'keep-alive'].includes(k)) headers[k] = v;
      }
      const r = await s.pool.request({ path: req.url ?? '/', method: (req.method ?? 'GET') as 'GET', headers, body: body.length ? body : null });
      const data = Buffer.from(await r.body.arrayBuffer());
      return { status: r.statusCode, headers: r.headers, data };
    } finally {
      s.inflight--;
    }
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method === 'GET' && (req.url === '/metrics' || req.url === '/gateway/metrics')) {
      res.writeHead(200, { 'content-type': this.registry.contentType });
      res.end(await this.registry.metrics());
      return;
    }
    if (req.method === 'GET' && (req.url === '/gateway/healthz')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ok: true, weight: this.weight, stable: this.#stable.upstream, canary: this.#canary?.upstream ?? null }));
      return;
    }
    const started = process.hrtime.bigint();
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of req) {
      size += (c as Buffer).length;
      if (size > (this.#o.bodyLimit ?? 16 * 1024 * 1024)) {
        res.writeHead(413, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: 'request body is over the gateway limit' }));
        return;
      }
      chunks.push(c as Buffer);
    }
    const body = Buffer.concat(chunks);
    const inference = req.method === 'POST' && (req.url === '/infer' || /\/infer$/.test(req.url ?? ''));
    let track: Track = inference && this.#canary ? this.split.next() : 'stable';
    let target = track === 'canary' ? this.#canary! : this.#stable;
    let out;
    try {
      out = await this.#forward(target, req, body);
    } catch (err) {
      if (track === 'canary') {
        // The canary went away before answering: serve the request from stable instead.
        log().warn({ event: 'canary_unreachable', err: (err as Error).message }, 'canary unreachable; retried on stable');
        track = 'stable';
        target = this.#stable;
        out = await this.#forward(target, req, body).catch((e: Error) => e);
      } else out = err as Error;
    }
    const latencyMs = Number(process.hrtime.bigint() - started) / 1e6;
    if (out instanceof Error) {
      res.writeHead(502, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: `upstream ${target.upstream.url} unreachable: ${out.message}` }));
      this.#observe(inference, track, target, 502, latencyMs);
      return;
    }
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(out.headers)) if (v !== undefined && !['connection', 'keep-alive', 'transfer-encoding', 'content-length'].includes(k)) headers[k] = v;
    headers['x-aegis-track'] = track;
    res.writeHead(out.status, headers);
    res.end(out.data);
    this.#observe(inference, track, target, out.status, latencyMs);
  }

  /** Labelled metric children, looked up once per (version, track, code) instead of hashed per request. */
  readonly #children = new Map<string, { count: { inc: () => void }; time: { observe: (v: number) => void } }>();

  #observe(inference: boolean, track: Track, s: UpstreamState, status: number, latencyMs: number): void {
    if (!inference) return;
    const version = s.upstream.version ?? 'unknown';
    const key = `${version}\0${track}\0${status}`;
    let c = this.#children.get(key);
    if (!c) {
      const labels = { model: this.#o.model, version, track };
      c = { count: this.#requests.labels({ ...labels, code: String(status) }), time: this.#duration.labels(labels) };
      this.#children.set(key, c);
    }
    c.count.inc();
    c.time.observe(latencyMs / 1000);
    this.#o.onResult?.(track, status, latencyMs);
  }

  async listen(port: number, host = '127.0.0.1'): Promise<string> {
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch((err: Error) => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: err.message }));
      });
    });
    this.#server.keepAliveTimeout = 30_000;
    await new Promise<void>((resolve, reject) => {
      this.#server!.once('error', reject);
      this.#server!.listen(port, host, () => resolve());
    });
    const a = this.#server.address() as AddressInfo;
    return `http://${a.address}:${a.port}`;
  }

  async close(): Promise<void> {
    if (this.#server) {
      const s = this.#server;
      const idle = setInterval(() => s.closeIdleConnections(), 50);
      await new Promise<void>((r) => s.close(() => r()));
      clearInterval(idle);
    }
    await Promise.all([this.#stable, this.#canary].filter((x): x is UpstreamState => !!x).map((x) => this.#retire(x)));
  }
}
