import { existsSync } from 'node:fs';
import type { ControlClient } from '../control/client.js';
export { reviveDates } from '../control/client.js';
import { AegisError, isAegisError } from '../errors.js';
import type { CliContext } from './context.js';
import type { RegistryView } from '../control/remote-registry.js';

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
    const { connectControl, runningControlPlane } = await import('../control/connect.js');
    // The holder of the lock is the `aegis up` of this home: its address, whatever control.url names.
    const client = await connectControl(ctx.config, ctx.actor(), { url: runningControlPlane(ctx.config) });
    try {
      return await remote(client);
    } catch (remoteErr) {
      const gone = isAegisError(remoteErr, 'CONTROL_UNREACHABLE');
      const old = isAegisError(remoteErr, 'CONTROL_REQUEST_FAILED') && / answered 404 /.test(remoteErr.message);
      if (!gone && !old) throw remoteErr;
      throw new AegisError('DB_LOCKED', err.message, {
        cause: remoteErr,
        hint: gone
          ? `${err.hint ?? ''} No control plane answered at ${client.url}: the database is held by another process (another aegis command, or an aegis up that was killed).`.trim()
          : `The control plane at ${client.url} is older than this CLI and cannot do this: restart \`aegis up\` with this version.`,
        ...(err.details ? { details: err.details } : {}),
      });
    }
  }
}


/** The registry: the database, or the control plane's API while `aegis up` holds the embedded database. */
export async function registryFor(ctx: CliContext): Promise<RegistryView> {
  return withControlFallback<RegistryView>(
    ctx,
    () => ctx.registry(),
    async (client) => new (await import('../control/remote-registry.js')).RemoteRegistry(client),
  );
}
