import { Agent, fetch, type Response } from 'undici';
import { AegisError, type ErrorCode } from '../errors.js';

/**
 * No undici header or body deadline of its own (300 s by default): a backup or
 * drill the control plane runs answers when it is done, and the caller's
 * `timeoutMs` is the one limit.
 */
const dispatcher = new Agent({ headersTimeout: 0, bodyTimeout: 0, connectTimeout: 10_000 });

/** The CLI's side of the control-plane API. */
export class ControlClient {
  readonly url: string;
  readonly #token: string;
  readonly #actor: string;

  constructor(url: string, token: string, actor: string) {
    this.url = url.replace(/\/+$/, '');
    this.#token = token;
    this.#actor = actor;
  }

  /** `timeoutMs`: how long to wait for the answer (default 30 s; a backup or drill run by the control plane takes longer). */
  async request<T>(method: 'GET' | 'POST', path: string, body?: unknown, options: { timeoutMs?: number } = {}): Promise<T> {
    let res: Response;
    const timeoutMs = options.timeoutMs ?? 30_000;
    try {
      res = await fetch(this.url + path, {
        method,
        headers: { authorization: `Bearer ${this.#token}`, 'x-aegis-actor': this.#actor, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(timeoutMs),
        dispatcher,
      });
    } catch (err) {
      if ((err as Error).name === 'TimeoutError') {
        throw new AegisError('CONTROL_REQUEST_FAILED', `the control plane at ${this.url} did not answer ${method} ${path} within ${Math.round(timeoutMs / 1000)} s`, {
          cause: err,
          hint: 'It may still be working on it: check its log, and the result (e.g. `aegis db backups`, `aegis pipeline list`) before trying again.',
          details: { url: this.url, path },
        });
      }
      throw new AegisError('CONTROL_UNREACHABLE', `cannot reach the control plane at ${this.url}: ${(err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message}`, {
        cause: err,
        hint: 'Start it with `aegis up` (or `npm start`), or point --control-url / AEGIS_CONTROL_URL at the running one.',
        details: { url: this.url },
      });
    }
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    if (!res.ok) {
      const e = (parsed as { error?: { code?: string; message?: string; hint?: string; details?: Record<string, unknown> } } | undefined)?.error;
      if (e?.code && e.message) throw new AegisError(e.code as ErrorCode, e.message, { ...(e.hint ? { hint: e.hint } : {}), ...(e.details ? { details: e.details } : {}) });
      throw new AegisError('CONTROL_REQUEST_FAILED', `the control plane answered ${res.status} to ${method} ${path}: ${text.slice(0, 300)}`, { hint: 'See the control plane log.' });
    }
    return parsed as T;
  }
}

/** JSON from the API back into the shapes the modules return: ISO strings in `at` / `…At` fields become Dates. */
export function reviveDates<T>(value: T): T {
  if (Array.isArray(value)) return value.map(reviveDates) as T;
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      out[k] = (k === 'at' || /At$/.test(k)) && typeof v === 'string' && !Number.isNaN(Date.parse(v)) ? new Date(v) : v !== null && typeof v === 'object' ? reviveDates(v) : v;
    }
    return out as T;
  }
  return value;
}
