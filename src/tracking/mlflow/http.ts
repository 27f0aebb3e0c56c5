import { createReadStream, createWriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request, type Dispatcher } from 'undici';
import { AegisError, type ErrorCode } from '../../errors.js';
import { childLogger } from '../../log.js';

const log = childLogger('tracking');

/** Largest JSON answer read; MLflow's biggest (a run with many metrics, a search page) is a few MB. */
const MAX_JSON_BYTES = 64 * 1024 * 1024;

/** Answers worth another try (MLflow's own client: _TRANSIENT_FAILURE_RESPONSE_CODES). */
const TRANSIENT_STATUS = new Set([408, 429, 500, 502, 503, 504]);

export interface MlflowHttpOptions {
  /** Tracking server base, http(s)://host[:port][/prefix]. */
  baseUrl: string;
  /** Bearer token (MLFLOW_TRACKING_TOKEN convention). */
  token?: string;
  /** HTTP basic auth (MLflow's basic-auth app); wins over `token`, as in MLflow's client. */
  username?: string;
  password?: string;
  /** Deadline of one JSON call attempt, ms; artifact transfers use it as their idle timeout (no progress). */
  timeoutMs?: number;
  /** Extra attempts of idempotent calls after a transient failure. */
  retries?: number;
  /** Backoff: attempt n waits a random time in [0, min(maxDelayMs, minDelayMs·2ⁿ)] (or Retry-After, when longer). */
  minDelayMs?: number;
  maxDelayMs?: number;
  /** undici dispatcher; default one Agent per client (keep-alive, 10 s connect timeout). */
  dispatcher?: Dispatcher;
}

export interface CallOptions {
  /** Safe to send again when the outcome is unknown (connection lost, 5xx). */
  idempotent: boolean;
  query?: Readonly<Record<string, string | number | undefined>>;
  body?: unknown;
}

/** The parsed MLflow error answer ({"error_code": "...", "message": "..."}), when there was one. */
export interface MlflowErrorDetails {
  endpoint: string;
  status?: number;
  errorCode?: string;
  mlflowMessage?: string;
}

/** MLflow's error_code on an AegisError from this client (e.g. RESOURCE_ALREADY_EXISTS). */
export function mlflowErrorCode(err: unknown): string | undefined {
  return err instanceof AegisError && typeof err.details.errorCode === 'string' ? err.details.errorCode : undefined;
}

/** A failure worth another attempt of an idempotent call. */
class Transient extends Error {
  readonly error: AegisError;
  readonly retryAfterMs: number | undefined;
  constructor(error: AegisError, retryAfterMs?: number) {
    super(error.message);
    this.error = error;
    this.retryAfterMs = retryAfterMs;
  }
}

/**
 * HTTP transport of the MLflow REST client: base URL, auth, timeouts, retries
 * with exponential backoff and jitter, and errors mapped to AegisError codes.
 * Written on undici's `request` by hand rather than with undici's RetryAgent
 * because retrying depends on the endpoint, not the method (MLflow sends
 * idempotent writes such as runs/log-batch as POST and non-idempotent ones such
 * as runs/create as POST too), and because an artifact upload's body must be
 * reopened from its file for every attempt.
 */
export class MlflowHttp {
  readonly baseUrl: string;
  private readonly auth: string | undefined;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly minDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly dispatcher: Dispatcher;
  private readonly ownDispatcher: boolean;

  constructor(options: MlflowHttpOptions) {
    let url: URL;
    try {
      url = new URL(options.baseUrl);
    } catch (err) {
      throw new AegisError('CONFIG_INVALID', `MLflow tracking URI ${JSON.stringify(options.baseUrl)} is not a URL`, {
        cause: err,
        hint: 'Set tracking.mlflowUri (AEGIS_MLFLOW_TRACKING_URI) to the server, e.g. http://127.0.0.1:5000.',
      });
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new AegisError('CONFIG_INVALID', `MLflow tracking URI ${options.baseUrl} is not http:// or https://`, {
        hint: 'Aegis talks to an MLflow tracking server over its REST API; run `mlflow server` and give its http(s) address.',
      });
    }
    if (url.username || url.password) {
      throw new AegisError('CONFIG_INVALID', 'the MLflow tracking URI carries credentials', {
        hint: 'Put them in tracking.username/password (AEGIS_MLFLOW_TRACKING_USERNAME/PASSWORD) or tracking.token instead, so they stay out of logs.',
      });
    }
    url.search = '';
    url.hash = '';
    this.baseUrl = url.toString().replace(/\/+$/, '');
    if (options.username !== undefined && options.password !== undefined) {
      this.auth = `Basic ${Buffer.from(`${options.username}:${options.password}`).toString('base64')}`;
    } else if (options.token) {
      this.auth = `Bearer ${options.token}`;
    }
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.retries = options.retries ?? 4;
    this.minDelayMs = options.minDelayMs ?? 250;
    this.maxDelayMs = options.maxDelayMs ?? 8_000;
    this.ownDispatcher = !options.dispatcher;
    this.dispatcher = options.dispatcher ?? new Agent({ connect: { timeout: 10_000 }, keepAliveTimeout: 4_000 });
  }

  async close(): Promise<void> {
    if (this.ownDispatcher) await this.dispatcher.close();
  }

  /** One JSON call: `endpoint` is the path after the base, e.g. /api/2.0/mlflow/runs/create. */
  async call<T>(method: 'GET' | 'POST' | 'PATCH' | 'DELETE', endpoint: string, options: CallOptions): Promise<T> {
    const url = this.url(endpoint, options.query);
    const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
    return this.withRetries(`${method} ${endpoint}`, options.idempotent, async () => {
      const signal = AbortSignal.timeout(this.timeoutMs);
      let res: Dispatcher.ResponseData;
      try {
        res = await request(url, {
          method,
          dispatcher: this.dispatcher,
          signal,
          headers: this.headers(payload === undefined ? {} : { 'content-type': 'application/json' }),
          ...(payload === undefined ? {} : { body: payload }),
        });
      } catch (err) {
        throw new Transient(this.unreachable(method, endpoint, err, signal.aborted));
      }
      let text: string;
      try {
        text = await readCapped(res.body, MAX_JSON_BYTES);
      } catch (err) {
        throw new Transient(this.unreachable(method, endpoint, err, signal.aborted));
      }
      if (res.statusCode >= 200 && res.statusCode < 300) {
        if (text.trim() === '') return {} as T;
        try {
          return JSON.parse(text) as T;
        } catch (err) {
          throw new AegisError('TRACKING_REJECTED', `${this.baseUrl} answered ${method} ${endpoint} with a body that is not JSON: ${JSON.stringify(text.slice(0, 120))}`, {
            cause: err,
            hint: this.notMlflowHint(),
            details: { endpoint, status: res.statusCode },
          });
        }
      }
      throw this.statusError(method, endpoint, res.statusCode, text, res.headers);
    });
  }

  /** PUT a file's bytes (proxied artifact upload). Safe to repeat: the same path is overwritten. */
  async upload(endpoint: string, file: string, size: number): Promise<void> {
    const url = this.url(endpoint);
    await this.withRetries(`PUT ${endpoint}`, true, async () => {
      let res: Dispatcher.ResponseData;
      try {
        res = await request(url, {
          method: 'PUT',
          dispatcher: this.dispatcher,
          headersTimeout: Math.max(this.timeoutMs, 120_000),
          bodyTimeout: Math.max(this.timeoutMs, 120_000),
          headers: this.headers({ 'content-type': 'application/octet-stream', 'content-length': String(size) }),
          body: createReadStream(file),
        });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'EACCES') {
          throw new AegisError('FILE_UNREADABLE', `cannot read artifact ${file}: ${(err as Error).message}`, { cause: err, details: { path: file } });
        }
        throw new Transient(this.unreachable('PUT', endpoint, err, false));
      }
      const text = await readCapped(res.body, MAX_JSON_BYTES).catch(() => '');
      if (res.statusCode >= 200 && res.statusCode < 300) return;
      throw this.statusError('PUT', endpoint, res.statusCode, text, res.headers);
    });
  }

  /** GET raw bytes into a file; returns the byte count. Retried from the start on a transient failure. */
  async download(endpoint: string, dest: string): Promise<number> {
    const url = this.url(endpoint);
    return this.withRetries(`GET ${endpoint}`, true, async () => {
      let res: Dispatcher.ResponseData;
      try {
        res = await request(url, {
          method: 'GET',
          dispatcher: this.dispatcher,
          headersTimeout: this.timeoutMs,
          bodyTimeout: Math.max(this.timeoutMs, 120_000),
          headers: this.headers({}),
        });
      } catch (err) {
        throw new Transient(this.unreachable('GET', endpoint, err, false));
      }
      if (res.statusCode < 200 || res.statusCode >= 300) {
        const text = await readCapped(res.body, MAX_JSON_BYTES).catch(() => '');
        throw this.statusError('GET', endpoint, res.statusCode, text, res.headers);
      }
      try {
        await pipeline(res.body, createWriteStream(dest));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).syscall) throw new AegisError('FILE_UNREADABLE', `cannot write ${dest}: ${(err as Error).message}`, { cause: err, details: { path: dest } });
        throw new Transient(this.unreachable('GET', endpoint, err, false));
      }
      return (await stat(dest)).size;
    });
  }

  private url(endpoint: string, query?: CallOptions['query']): string {
    const url = new URL(this.baseUrl + endpoint);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    return url.toString();
  }

  private headers(extra: Record<string, string>): Record<string, string> {
    return { accept: 'application/json', 'user-agent': 'aegis-mlflow-client', ...(this.auth ? { authorization: this.auth } : {}), ...extra };
  }

  private async withRetries<T>(what: string, idempotent: boolean, attempt: () => Promise<T>): Promise<T> {
    for (let n = 0; ; n++) {
      try {
        return await attempt();
      } catch (err) {
        if (!(err instanceof Transient)) throw err;
        if (!idempotent || n >= this.retries) throw err.error;
        const cap = Math.min(this.maxDelayMs, this.minDelayMs * 2 ** n);
        const delay = Math.max(Math.random() * cap, Math.min(err.retryAfterMs ?? 0, 60_000));
        log.warn({ call: what, attempt: n + 1, of: this.retries + 1, delayMs: Math.round(delay), reason: err.error.message }, 'MLflow call failed; retrying');
        await sleep(delay);
      }
    }
  }

  private unreachable(method: string, endpoint: string, err: unknown, timedOut: boolean): AegisError {
    const reason = timedOut ? `no answer within ${this.timeoutMs} ms` : describeError(err);
    return new AegisError('TRACKING_UNREACHABLE', `cannot reach the MLflow tracking server at ${this.baseUrl} (${method} ${endpoint}): ${reason}`, {
      cause: err,
      hint:
        `Is the MLflow server running? Check with \`curl ${this.baseUrl}/health\`. ` +
        'Fix tracking.mlflowUri (AEGIS_MLFLOW_TRACKING_URI), or unset it to record runs in the Aegis database only.',
      details: { endpoint, url: this.baseUrl },
    });
  }

  private statusError(method: string, endpoint: string, status: number, text: string, headers: Dispatcher.ResponseData['headers']): AegisError | Transient {
    let errorCode: string | undefined;
    let mlflowMessage: string | undefined;
    try {
      const parsed = JSON.parse(text) as { error_code?: unknown; message?: unknown; detail?: unknown };
      if (typeof parsed.error_code === 'string') errorCode = parsed.error_code;
      if (typeof parsed.message === 'string') mlflowMessage = parsed.message;
      else if (typeof parsed.detail === 'string') mlflowMessage = parsed.detail;
    } catch {
      // not JSON: a proxy's or another server's page
    }
    const details: Record<string, unknown> = { endpoint, status, ...(errorCode ? { errorCode } : {}), ...(mlflowMessage ? { mlflowMessage } : {}) };
    const said = errorCode || mlflowMessage ? `${errorCode ?? ''}${errorCode && mlflowMessage ? ': ' : ''}${mlflowMessage ?? ''}` : text.trim().slice(0, 200) || 'no body';
    const message = `MLflow at ${this.baseUrl} refused ${method} ${endpoint} (HTTP ${status}): ${said}`;
    if (TRANSIENT_STATUS.has(status)) {
      const code: ErrorCode = status === 500 ? 'TRACKING_REJECTED' : 'TRACKING_UNREACHABLE';
      const hint =
        status === 429
          ? 'The server is rate limiting; try again later or lower the logging rate.'
          : `The server failed or is overloaded; see its log. Check with \`curl ${this.baseUrl}/health\`.`;
      return new Transient(new AegisError(code, message, { hint, details }), retryAfterMs(headers));
    }
    if (status === 401 || status === 403) {
      return new AegisError('TRACKING_AUTH_FAILED', message, {
        hint:
          status === 401
            ? 'Give MLflow credentials: tracking.token (AEGIS_MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_TOKEN) or tracking.username/password (AEGIS_MLFLOW_TRACKING_USERNAME/PASSWORD or MLFLOW_TRACKING_USERNAME/PASSWORD).'
            : 'The MLflow user lacks permission for this experiment or model; ask its owner to grant EDIT (or MANAGE for registered models).',
        details,
      });
    }
    if (errorCode === 'RESOURCE_DOES_NOT_EXIST' || (status === 404 && errorCode)) {
      return new AegisError('TRACKING_NOT_FOUND', message, { hint: 'The run, experiment or model may have been deleted in MLflow; check the id in the MLflow UI.', details });
    }
    if (!errorCode) {
      return new AegisError('TRACKING_REJECTED', message, { hint: this.notMlflowHint(), details });
    }
    return new AegisError('TRACKING_REJECTED', message, { hint: 'Fix the value MLflow names above; the request was not applied.', details });
  }

  private notMlflowHint(): string {
    return `Is ${this.baseUrl} an MLflow tracking server (2.x or 3.x)? Check the address and any path prefix: \`curl ${this.baseUrl}/api/2.0/mlflow/experiments/search?max_results=1\` should answer JSON.`;
  }
}

function retryAfterMs(headers: Dispatcher.ResponseData['headers']): number | undefined {
  const raw = headers['retry-after'];
  const v = Array.isArray(raw) ? raw[0] : raw;
  if (!v) return undefined;
  const seconds = Number(v);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

async function readCapped(body: Dispatcher.ResponseData['body'], max: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += (chunk as Buffer).length;
    if (size > max) {
      body.destroy();
      throw new Error(`answer larger than ${max / 1024 / 1024} MiB`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function describeError(err: unknown): string {
  const e = err as (Error & { code?: string; cause?: { code?: string; message?: string } }) | undefined;
  const code = e?.cause?.code ?? e?.code;
  const message = e?.cause?.message ?? e?.message ?? String(err);
  return code && !message.includes(code) ? `${code} (${message})` : message;
}
