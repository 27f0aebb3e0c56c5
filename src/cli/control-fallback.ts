import { existsSync } from 'node:fs';
import type { ControlClient } from '../control/client.js';
export { reviveDates } from '../control/client.js';
import { isAegisError } from '../errors.js';
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
    const { connectControl } = await import('../control/connect.js');
    return remote(await connectControl(ctx.config, ctx.actor()));
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
