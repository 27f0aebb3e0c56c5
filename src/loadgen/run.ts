/**
 * Open-loop, constant-arrival-rate load generation.
 *
 * Request i is due at t0 + i/qps whatever the server does: a timer issues every
 * request whose time has passed (several at once when the generator or its
 * event loop fell behind) and never waits for responses. Latency is measured
 * from that intended start to the end of the response, so time a request spent
 * waiting for the generator, a connection or the server is never hidden
 * (no coordinated omission). In-flight requests are capped: a request that
 * finds the cap full is not sent ("dropped") and is recorded with the timeout
 * as its latency; a request still unanswered after `timeoutMs` is aborted and
 * recorded as a timeout.
 */
import { Pool, type Dispatcher } from 'undici';
import { AegisError } from '../errors.js';
import { LatencyHistogram, type LatencySummary } from './histogram.js';
import { malformedBodies, seededRandom, type MalformedKind } from './payload.js';

/** How one request ended. Malformed requests are expected to get a 4xx. */
export type Outcome =
  | 'ok' // valid request, status < 400
  | 'expected4xx' // malformed request, 4xx
  | 'serverError' // valid request, 5xx
  | 'unexpected' // valid request got a 4xx, or malformed request got a 2xx/3xx/5xx
  | 'networkError' // no HTTP response: connection refused or reset, DNS, …
  | 'timeout' // no complete response within timeoutMs of being sent
  | 'dropped'; // not sent: maxInFlight requests were already waiting

export interface OutcomeCounts {
  ok: number;
  expected4xx: number;
  serverErrors: number;
  unexpected: number;
  networkErrors: number;
  timeouts: number;
  dropped: number;
}

const COUNT_KEY: Record<Outcome, keyof OutcomeCounts> = {
  ok: 'ok',
  expected4xx: 'expected4xx',
  serverError: 'serverErrors',
  unexpected: 'unexpected',
  networkError: 'networkErrors',
  timeout: 'timeouts',
  dropped: 'dropped',
};

/** One request, for `onResult` (integration tests and custom analyses). */
export interface RequestResult {
  index: number;
  /** When the request was due, on the `performance.now()` clock. */
  intendedAt: number;
  /** When it was handed to the HTTP client (undefined if dropped). */
  sentAt: number | undefined;
  /** End of response (or time of the error/timeout) minus `intendedAt`; the timeout for a dropped request. */
  latencyMs: number;
  status: number | undefined;
  outcome: Outcome;
  malformed: MalformedKind | undefined;
  errorCode: string | undefined;
}

/** A snapshot for a live progress line, once a second. */
export interface LoadProgress {
  elapsedMs: number;
  durationMs: number;
  sent: number;
  completed: number;
  inFlight: number;
  ok: number;
  expected4xx: number;
  /** server errors + unexpected + network errors + timeouts + dropped */
  errors: number;
  /** Responses during the last second. */
  rps: number;
  /** p99 latency of valid requests so far, ms. */
  p99Ms: number;
}

export interface LoadOptions {
  url: string;
  /** Requests per second (the arrival rate). */
  qps: number;
  durationMs: number;
  /** Share (0..1) of requests replaced by deliberately malformed ones. Default 0. */
  errorRate?: number;
  /** Seed of the PRNG that picks the malformed requests. Default 1. */
  seed?: number;
  /** The request body, sent verbatim with content-type application/json. Without one, valid requests are GETs. */
  payload?: Uint8Array | string;
  /** Default: POST with a payload, GET without. */
  method?: Dispatcher.HttpMethod;
  headers?: Record<string, string>;
  /** Per request, from when it is sent. Default 10 s. */
  timeoutMs?: number;
  /** Most requests waiting for a response at once. Default qps × timeout, at least 64, at most 10 000. */
  maxInFlight?: number;
  /** Most TCP connections. Default 100. */
  connections?: number;
  /** HTTP/1.1 pipelining depth per connection. Default 1 (none). */
  pipelining?: number;
  /** Stop early when, this long into the run, nothing has connected. Default 2 s. */
  unreachableAfterMs?: number;
  /** Called once a second while the run lasts. */
  onTick?: (p: LoadProgress) => void;
  /** Called for every request as it ends. */
  onResult?: (r: RequestResult) => void;
  /** Stops issuing requests (e.g. on Ctrl-C); the report covers what ran. */
  signal?: AbortSignal;
}

export interface SecondStats extends OutcomeCounts {
  /** Seconds since the start, by the requests' intended start. */
  second: number;
  /** Requests due in this second that were sent (not dropped). */
  sent: number;
  /** … of which malformed. */
  malformed: number;
  /** p99 latency of this second's valid requests, ms (null if none). */
  p99Ms: number | null;
}

export interface LoadReport {
  url: string;
  method: string;
  target: { qps: number; durationS: number; requests: number };
  achieved: {
    /** Responses received during the run window, per second. */
    rps: number;
    /** Requests sent during the run window, per second (the generator keeping its schedule). */
    sentRps: number;
    /** rps / target qps */
    ratio: number;
  };
  /** From the first intended start to the last response (includes the drain). */
  elapsedS: number;
  scheduled: number;
  sent: number;
  /** Requests that got an HTTP response (any status). */
  completed: number;
  outcomes: OutcomeCounts;
  statusCounts: Record<string, number>;
  networkErrorCodes: Record<string, number>;
  /**
   * Valid requests only: responses of any status, timeouts (at the time they
   * were given up) and dropped requests (at the timeout); network errors are
   * counted but not timed. Measured from each request's intended start.
   */
  latencyMs: LatencySummary;
  malformed: {
    errorRate: number;
    sent: number;
    kinds: Partial<Record<MalformedKind, number>>;
    expected4xx: number;
    unexpected: number;
    /** Malformed requests' latency, kept apart from the valid ones'. */
    latencyMs: LatencySummary;
  };
  /** How late the generator sent requests after their intended start (part of latencyMs). */
  scheduleLagMs: { p50: number; p99: number; max: number };
  stoppedEarly: 'unreachable' | 'interrupted' | null;
  settings: { timeoutMs: number; maxInFlight: number; connections: number; pipelining: number; seed: number };
  series: SecondStats[];
}

interface Normalized {
  url: URL;
  path: string;
  qps: number;
  durationMs: number;
  errorRate: number;
  seed: number;
  payload: Buffer | undefined;
  method: Dispatcher.HttpMethod;
  headers: Record<string, string>;
  timeoutMs: number;
  maxInFlight: number;
  connections: number;
  pipelining: number;
  unreachableAfterMs: number;
}

function usage(message: string, hint: string): AegisError {
  return new AegisError('USAGE', message, { hint });
}

function normalize(o: LoadOptions): Normalized {
  let url: URL;
  try {
    url = new URL(o.url);
  } catch {
    throw usage(`--url ${JSON.stringify(o.url)} is not a URL`, 'Pass the full URL, e.g. --url http://127.0.0.1:8080/infer');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw usage(`--url must be http:// or https://, got ${url.protocol}`, 'e.g. --url http://127.0.0.1:8080/infer');
  if (!(Number.isFinite(o.qps) && o.qps > 0 && o.qps <= 1_000_000)) throw usage(`--qps must be a number of requests per second > 0, got ${o.qps}`, 'e.g. --qps 20');
  if (!(Number.isFinite(o.durationMs) && o.durationMs > 0)) throw usage(`--duration must be > 0, got ${o.durationMs} ms`, 'e.g. --duration 180s');
  const errorRate = o.errorRate ?? 0;
  if (!(errorRate >= 0 && errorRate <= 1)) throw usage(`--error-rate must be a share between 0 and 1, got ${o.errorRate}`, 'e.g. --error-rate 0.02 for 2 % malformed requests');
  const timeoutMs = o.timeoutMs ?? 10_000;
  if (!(Number.isFinite(timeoutMs) && timeoutMs > 0)) throw usage(`--timeout must be > 0, got ${o.timeoutMs} ms`, 'e.g. --timeout 10s');
  const maxInFlight = o.maxInFlight ?? Math.min(10_000, Math.max(64, Math.ceil((o.qps * timeoutMs) / 1000)));
  if (!(Number.isInteger(maxInFlight) && maxInFlight >= 1)) throw usage(`--max-in-flight must be a whole number >= 1, got ${o.maxInFlight}`, 'e.g. --max-in-flight 1000');
  const connections = o.connections ?? 100;
  const pipelining = o.pipelining ?? 1;
  if (!(Number.isInteger(connections) && connections >= 1)) throw usage(`--connections must be a whole number >= 1, got ${o.connections}`, 'e.g. --connections 100');
  if (!(Number.isInteger(pipelining) && pipelining >= 1)) throw usage(`--pipelining must be a whole number >= 1, got ${o.pipelining}`, 'e.g. --pipelining 1 (no pipelining)');
  const payload = o.payload === undefined ? undefined : Buffer.from(o.payload);
  return {
    url,
    path: `${url.pathname}${url.search}`,
    qps: o.qps,
    durationMs: o.durationMs,
    errorRate,
    seed: o.seed ?? 1,
    payload,
    method: o.method ?? (payload ? 'POST' : 'GET'),
    headers: o.headers ?? {},
    timeoutMs,
    maxInFlight,
    connections,
    pipelining,
    unreachableAfterMs: o.unreachableAfterMs ?? 2000,
  };
}

/** Errors that mean no connection could be made at all. */
const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'UND_ERR_CONNECT_TIMEOUT', 'CERT_HAS_EXPIRED', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'ERR_TLS_CERT_ALTNAME_INVALID']);

function errorCode(err: unknown): string {
  const e = err as { code?: unknown; cause?: { code?: unknown } } | undefined;
  const code = e?.code ?? e?.cause?.code;
  return typeof code === 'string' ? code : 'UNKNOWN';
}

function emptyCounts(): OutcomeCounts {
  return { ok: 0, expected4xx: 0, serverErrors: 0, unexpected: 0, networkErrors: 0, timeouts: 0, dropped: 0 };
}

interface Bucket extends OutcomeCounts {
  sent: number;
  malformed: number;
  hist: LatencyHistogram | undefined;
}

/** One request in flight: the undici dispatch handler. */
class InFlight implements Dispatcher.DispatchHandler {
  status = 0;
  settled = false;
  controller: Dispatcher.DispatchController | undefined;

  readonly run: LoadRun;
  readonly index: number;
  readonly intendedAt: number;
  readonly sentAt: number;
  readonly kind: MalformedKind | undefined;

  constructor(run: LoadRun, index: number, intendedAt: number, sentAt: number, kind: MalformedKind | undefined) {
    this.run = run;
    this.index = index;
    this.intendedAt = intendedAt;
    this.sentAt = sentAt;
    this.kind = kind;
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    // Timed out while still queued for a connection: never send it.
    if (this.settled) controller.abort(new Error('aegis loadgen: timed out before it was sent'));
    else this.controller = controller;
  }

  onResponseStart(_c: Dispatcher.DispatchController, statusCode: number): void {
    this.status = statusCode;
  }

  onResponseData(): void {}

  onResponseEnd(): void {
    if (!this.settled) this.run.responded(this, performance.now());
  }

  onResponseError(_c: Dispatcher.DispatchController, err: Error): void {
    if (!this.settled) this.run.failed(this, err, performance.now());
  }
}

class LoadRun {
  readonly o: Normalized;
  readonly pool: Pool;
  readonly interval: number;
  readonly total: number;
  readonly random: () => number;
  readonly malformed: { kind: MalformedKind; body: Buffer }[];
  readonly validHeaders: Record<string, string>;
  readonly malformedHeaders: Record<string, string>;
  readonly onTick: ((p: LoadProgress) => void) | undefined;
  readonly onResult: ((r: RequestResult) => void) | undefined;

  t0 = 0;
  next = 0;
  inFlight = 0;
  sent = 0;
  completed = 0;
  sentInWindow = 0;
  responsesInWindow = 0;
  responsesLastTick = 0;
  lastResponseAt = 0;
  connectErrorsOnly = true;
  stoppedEarly: LoadReport['stoppedEarly'] = null;
  stopAt: number | undefined;
  windowCounts: { sent: number; responses: number } | undefined;
  readonly counts = emptyCounts();
  readonly malformedCounts = { sent: 0, expected4xx: 0, unexpected: 0, kinds: {} as Partial<Record<MalformedKind, number>> };
  readonly statusCounts = new Map<number, number>();
  readonly networkErrorCodes = new Map<string, number>();
  readonly valid = new LatencyHistogram(3);
  readonly bad = new LatencyHistogram(3);
  readonly lag = new LatencyHistogram(3);
  readonly buckets: Bucket[];
  /** Sent requests in the order sent (so by send time): the timeout sweep looks at the head only. */
  pending: (InFlight | undefined)[] = [];
  head = 0;
  timer: NodeJS.Timeout | undefined;
  sweeper: NodeJS.Timeout | undefined;
  ticker: NodeJS.Timeout | undefined;
  finish: (() => void) | undefined;
  readonly signal: AbortSignal | undefined;

  constructor(o: Normalized, opts: LoadOptions) {
    this.o = o;
    this.interval = 1000 / o.qps;
    this.total = Math.max(1, Math.floor((o.qps * o.durationMs) / 1000 + 1e-9));
    this.random = seededRandom(o.seed);
    this.malformed = o.errorRate > 0 ? malformedBodies(o.payload) : [];
    this.validHeaders = o.payload ? { 'content-type': 'application/json', ...o.headers } : { ...o.headers };
    this.malformedHeaders = { 'content-type': 'application/json', ...o.headers };
    this.onTick = opts.onTick;
    this.onResult = opts.onResult;
    this.buckets = Array.from({ length: Math.ceil(o.durationMs / 1000) }, () => ({ ...emptyCounts(), sent: 0, malformed: 0, hist: undefined }));
    this.pool = new Pool(o.url.origin, {
      connections: o.connections,
      pipelining: o.pipelining,
      connectTimeout: Math.min(o.timeoutMs, 30_000),
      // Our own sweep enforces the timeout; undici's are a backstop only.
      headersTimeout: o.timeoutMs + 5000,
      bodyTimeout: o.timeoutMs + 5000,
    });
    this.signal = opts.signal;
  }

  async run(): Promise<LoadReport> {
    const done = new Promise<void>((resolve) => (this.finish = resolve));
    this.t0 = performance.now();
    const onAbort = () => this.stop('interrupted', performance.now());
    this.signal?.addEventListener('abort', onAbort, { once: true });
    if (this.signal?.aborted) this.stop('interrupted', this.t0);
    const sweepMs = Math.min(100, Math.max(5, this.o.timeoutMs / 20));
    this.sweeper = setInterval(() => {
      const now = performance.now();
      this.sweep(now);
      this.maybeFinish();
    }, sweepMs);
    if (this.onTick) this.ticker = setInterval(() => this.onTick?.(this.progress()), 1000);
    this.tick();
    await done;
    this.signal?.removeEventListener('abort', onAbort);
    clearInterval(this.sweeper);
    clearInterval(this.ticker);
    clearTimeout(this.timer);
    await this.pool.destroy().catch(() => undefined);
    const report = this.report(performance.now());
    if (report.completed === 0 && report.outcomes.timeouts === 0 && report.outcomes.networkErrors > 0) {
      const codes = Object.entries(report.networkErrorCodes).map(([c, n]) => `${c} × ${n}`).join(', ');
      const what = this.connectErrorsOnly ? `nothing could connect to ${this.o.url.origin}` : `no request to ${this.o.url.origin} got a response`;
      throw new AegisError('LOAD_TARGET_UNREACHABLE', `${what} (${codes})${report.stoppedEarly === 'unreachable' ? '; stopped early' : ''}`, {
        hint: report.networkErrorCodes.ECONNREFUSED
          ? `Nothing listens on ${this.o.url.host}: start the server (e.g. aegis serve --port ${this.o.url.port || 80}) or fix --url.`
          : 'Check --url (host, port, scheme) and that the server is reachable from here.',
        details: { report },
      });
    }
    return report;
  }

  readonly tick = (): void => {
    this.timer = undefined;
    const now = performance.now();
    while (this.next < this.total && this.stoppedEarly === null) {
      const at = this.t0 + this.next * this.interval;
      if (at > now) break;
      this.issue(this.next++, at, now);
    }
    this.sweep(now);
    this.checkUnreachable(now);
    if (this.next < this.total && this.stoppedEarly === null) {
      this.timer = setTimeout(this.tick, Math.max(0, this.t0 + this.next * this.interval - performance.now()));
    } else {
      this.maybeFinish();
    }
  };

  issue(index: number, intendedAt: number, now: number): void {
    let kind: MalformedKind | undefined;
    let body: Buffer | undefined = this.o.payload;
    if (this.malformed.length && this.random() < this.o.errorRate) {
      const m = this.malformed[Math.floor(this.random() * this.malformed.length)]!;
      kind = m.kind;
      body = m.body;
    }
    if (this.inFlight >= this.o.maxInFlight) {
      this.record(index, intendedAt, undefined, kind, 'dropped', this.o.timeoutMs, undefined, undefined);
      return;
    }
    const bucket = this.buckets[this.second(index)];
    const req = new InFlight(this, index, intendedAt, now, kind);
    this.inFlight++;
    this.sent++;
    if (bucket) bucket.sent++;
    if (kind) {
      this.malformedCounts.sent++;
      this.malformedCounts.kinds[kind] = (this.malformedCounts.kinds[kind] ?? 0) + 1;
      if (bucket) bucket.malformed++;
    }
    if (now - this.t0 <= this.o.durationMs) this.sentInWindow++;
    this.lag.recordMs(now - intendedAt);
    this.pending.push(req);
    this.pool.dispatch(
      {
        path: this.o.path,
        method: kind ? 'POST' : this.o.method,
        headers: kind ? this.malformedHeaders : this.validHeaders,
        body: body ?? null,
      },
      req,
    );
  }

  /** The second request `index` is due in (from its index: no floating-point drift at the boundaries). */
  second(index: number): number {
    return Math.floor(index / this.o.qps + 1e-9);
  }

  responded(r: InFlight, end: number): void {
    r.settled = true;
    this.inFlight--;
    this.completed++;
    this.lastResponseAt = end;
    if (end - this.t0 <= this.o.durationMs) this.responsesInWindow++;
    const status = r.status;
    this.statusCounts.set(status, (this.statusCounts.get(status) ?? 0) + 1);
    let outcome: Outcome;
    if (r.kind) outcome = status >= 400 && status < 500 ? 'expected4xx' : 'unexpected';
    else outcome = status >= 500 ? 'serverError' : status >= 400 ? 'unexpected' : 'ok';
    this.record(r.index, r.intendedAt, r.sentAt, r.kind, outcome, end - r.intendedAt, status, undefined);
    this.maybeFinish();
  }

  failed(r: InFlight, err: unknown, end: number): void {
    r.settled = true;
    this.inFlight--;
    const code = errorCode(err);
    if (!CONNECT_ERRORS.has(code)) this.connectErrorsOnly = false;
    this.networkErrorCodes.set(code, (this.networkErrorCodes.get(code) ?? 0) + 1);
    this.record(r.index, r.intendedAt, r.sentAt, r.kind, 'networkError', end - r.intendedAt, undefined, code);
    this.maybeFinish();
  }

  /** Gives up on requests sent more than timeoutMs ago. */
  sweep(now: number): void {
    const p = this.pending;
    while (this.head < p.length) {
      const r = p[this.head]!;
      if (!r.settled) {
        if (now - r.sentAt < this.o.timeoutMs) break;
        r.settled = true;
        this.inFlight--;
        this.record(r.index, r.intendedAt, r.sentAt, r.kind, 'timeout', now - r.intendedAt, undefined, undefined);
        r.controller?.abort(new Error('aegis loadgen: request timed out'));
      }
      p[this.head++] = undefined;
    }
    if (this.head > 4096 && this.head * 2 > p.length) {
      this.pending = p.slice(this.head);
      this.head = 0;
    }
  }

  record(index: number, intendedAt: number, sentAt: number | undefined, kind: MalformedKind | undefined, outcome: Outcome, latencyMs: number, status: number | undefined, code: string | undefined): void {
    const key = COUNT_KEY[outcome];
    this.counts[key]++;
    const bucket = this.buckets[this.second(index)];
    if (bucket) bucket[key]++;
    if (outcome !== 'networkError') {
      if (kind) this.bad.recordMs(latencyMs);
      else {
        this.valid.recordMs(latencyMs);
        if (bucket) (bucket.hist ??= new LatencyHistogram(2)).recordMs(latencyMs);
      }
    }
    if (kind) {
      if (outcome === 'expected4xx') this.malformedCounts.expected4xx++;
      else if (outcome === 'unexpected') this.malformedCounts.unexpected++;
    }
    this.onResult?.({ index, intendedAt, sentAt, latencyMs, status, outcome, malformed: kind, errorCode: code });
  }

  checkUnreachable(now: number): void {
    const c = this.counts;
    if (this.stoppedEarly === null && this.completed === 0 && c.timeouts === 0 && c.networkErrors > 0 && this.connectErrorsOnly && now - this.t0 >= this.o.unreachableAfterMs) {
      this.stop('unreachable', now);
    }
  }

  stop(reason: 'unreachable' | 'interrupted', now: number): void {
    if (this.stoppedEarly !== null || this.next >= this.total) return;
    this.stoppedEarly = reason;
    this.stopAt = now;
    this.windowCounts = { sent: this.sentInWindow, responses: this.responsesInWindow };
    clearTimeout(this.timer);
    this.timer = undefined;
    this.maybeFinish();
  }

  maybeFinish(): void {
    if (this.inFlight === 0 && (this.next >= this.total || this.stoppedEarly !== null) && this.timer === undefined) this.finish?.();
  }

  progress(): LoadProgress {
    const c = this.counts;
    const rps = this.completed - this.responsesLastTick;
    this.responsesLastTick = this.completed;
    return {
      elapsedMs: Math.round(performance.now() - this.t0),
      durationMs: this.o.durationMs,
      sent: this.sent,
      completed: this.completed,
      inFlight: this.inFlight,
      ok: c.ok,
      expected4xx: c.expected4xx,
      errors: c.serverErrors + c.unexpected + c.networkErrors + c.timeouts + c.dropped,
      rps,
      p99Ms: this.valid.percentileMs(99),
    };
  }

  report(end: number): LoadReport {
    const o = this.o;
    const windowMs = this.stopAt !== undefined ? Math.max(1, this.stopAt - this.t0) : o.durationMs;
    const inWindow = this.windowCounts ?? { sent: this.sentInWindow, responses: this.responsesInWindow };
    const rps = inWindow.responses / (windowMs / 1000);
    const lag = this.lag.summary();
    const round = (x: number) => Math.round(x * 1000) / 1000;
    const lastSecond = Math.ceil(windowMs / 1000);
    return {
      url: o.url.href,
      method: o.method,
      target: { qps: o.qps, durationS: o.durationMs / 1000, requests: this.total },
      achieved: { rps: round(rps), sentRps: round(inWindow.sent / (windowMs / 1000)), ratio: Math.round((rps / o.qps) * 10_000) / 10_000 },
      elapsedS: round((Math.max(end, this.lastResponseAt) - this.t0) / 1000),
      scheduled: this.next,
      sent: this.sent,
      completed: this.completed,
      outcomes: { ...this.counts },
      statusCounts: Object.fromEntries([...this.statusCounts].sort((a, b) => a[0] - b[0]).map(([k, v]) => [String(k), v])),
      networkErrorCodes: Object.fromEntries(this.networkErrorCodes),
      latencyMs: this.valid.summary(),
      malformed: {
        errorRate: o.errorRate,
        sent: this.malformedCounts.sent,
        kinds: { ...this.malformedCounts.kinds },
        expected4xx: this.malformedCounts.expected4xx,
        unexpected: this.malformedCounts.unexpected,
        latencyMs: this.bad.summary(),
      },
      scheduleLagMs: { p50: lag.p50, p99: lag.p99, max: lag.max },
      stoppedEarly: this.stoppedEarly,
      settings: { timeoutMs: o.timeoutMs, maxInFlight: o.maxInFlight, connections: o.connections, pipelining: o.pipelining, seed: o.seed },
      series: this.buckets.slice(0, lastSecond).map((b, second) => ({
        second,
        sent: b.sent,
        malformed: b.malformed,
        ok: b.ok,
        expected4xx: b.expected4xx,
        serverErrors: b.serverErrors,
        unexpected: b.unexpected,
        networkErrors: b.networkErrors,
        timeouts: b.timeouts,
        dropped: b.dropped,
        p99Ms: b.hist ? b.hist.percentileMs(99) : null,
      })),
    };
  }
}

/**
 * Sends `qps` requests per second to `url` for `durationMs`, open loop, and
 * returns the report. Throws AegisError USAGE for bad options and
 * LOAD_TARGET_UNREACHABLE (with the report in `details.report`) when no
 * request got any response because nothing could connect.
 */
export async function runLoad(options: LoadOptions): Promise<LoadReport> {
  const o = normalize(options);
  return new LoadRun(o, options).run();
}
