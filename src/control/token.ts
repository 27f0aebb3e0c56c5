import { randomBytes } from 'node:crypto';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { AegisError, fsError } from '../errors.js';

/**
 * The control-plane token: the configured one, else the one in
 * <home>/control.token, else (create=true, what `aegis up` does) a new random
 * one written there with mode 0600 so only this user's CLI can read it.
 */
export async function controlToken(configured: string | undefined, path: string, create: boolean): Promise<string> {
  if (configured) return configured;
  try {
    const t = (await readFile(path, 'utf8')).trim();
    if (t.length >= 16) return t;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw fsError(err, path, 'control-plane token');
  }
  if (!create) {
    throw new AegisError('CONTROL_UNAUTHORIZED', `no control-plane token: ${path} does not exist and AEGIS_CONTROL_TOKEN is not set`, {
      hint: 'Start the control plane with `aegis up` (it writes the token file), or set AEGIS_CONTROL_TOKEN / control.token to the token of a remote control plane.',
      details: { path },
    });
  }
  const token = randomBytes(32).toString('base64url');
  await writeFile(path, token + '\n', { mode: 0o600 });
  await chmod(path, 0o600);
  return token;
}
