import { existsSync } from 'node:fs';
import type { ControlClient } from '../control/client.js';
import { isAegisError } from '../errors.js';
import type { CliContext } from './context.js';

/**
 * Runs `local` against the database; if the embedded database is held by a
 * running control plane (`aegis up`: DB_LOCKED) and its token file exists,
 * runs `remote` against the control plane's API instead. PostgreSQL is never
 * locked, so there the command always runs locally.
 */
export async function withControlFallback<T>(ctx: CliContext, local: () => Promise<T>, remote: (client: ControlClient) => Promise<T>): Promise<T> {
  try {
    return await local();
  } catch (err) {
    if (!isAegisError(err, 'DB_LOCKED') || !existsSync(ctx.paths.controlToken)) throw err;
    const { ControlClient, controlToken } = await import('../control/index.js');
    const url = ctx.config.control.url ?? `http://127.0.0.1:${ctx.config.control.port}`;
    return remote(new ControlClient(url, await controlToken(ctx.config.control.token, ctx.paths.controlToken, false), ctx.actor()));
  }
}

/** JSON from the API back into the shapes the commands print: ISO strings in `…At` fields become Dates. */
export function reviveDates<T>(value: T): T {
  if (Array.isArray(value)) return value.map(reviveDates) as T;
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      out[k] = /At$/.test(k) && typeof v === 'string' && !Number.isNaN(Date.parse(v)) ? new Date(v) : k === 'steps' || k === 'runs' || k === 'run' ? reviveDates(v) : v;
    }
    return out as T;
  }
  return value;
}
