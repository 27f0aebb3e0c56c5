/**
 * When the embedded database is held, commands go to the control plane of the
 * `aegis up` that holds it; with nobody answering (another process holds it,
 * or an aegis up that was killed) the error is the lock, with where the CLI
 * asked, not "start aegis up".
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig, platformPaths, type AegisConfig } from '../config/index.js';
import { controlPlaneRecord } from '../control/connect.js';
import { AegisError, isAegisError } from '../errors.js';
import { tempDir } from '../test-support/fs.js';
import { CliContext } from './context.js';
import { withControlFallback } from './control-fallback.js';

let work: Awaited<ReturnType<typeof tempDir>>;
let config: AegisConfig;
beforeEach(async () => {
  work = await tempDir('aegis-fallback-');
  config = loadConfig({ cwd: work.path, env: { AEGIS_HOME: join(work.path, 'home') } });
  await mkdir(config.home, { recursive: true });
});
afterEach(async () => work.cleanup());

describe('withControlFallback', () => {
  const locked = () => Promise.reject(new AegisError('DB_LOCKED', 'the embedded database is in use by process 1', { hint: 'Only one process can open it.' }));

  it('reports a held database with no control plane answering as DB_LOCKED, saying where it asked', async () => {
    await writeFile(platformPaths(config).controlToken, 'x'.repeat(32));
    const closed = await new Promise<number>((resolve) => {
      const srv = createServer().listen(0, '127.0.0.1', () => {
        const port = (srv.address() as { port: number }).port;
        srv.close(() => resolve(port));
      });
    });
    await writeFile(platformPaths(config).controlUrl, controlPlaneRecord(`http://127.0.0.1:${closed}`));
    const ctx = new CliContext(config);
    const err = await withControlFallback(ctx, locked, (client) => client.request('GET', '/api/v1/deployment')).catch((e: unknown) => e);
    expect(isAegisError(err, 'DB_LOCKED')).toBe(true);
    expect((err as AegisError).hint).toContain(`No control plane answered at http://127.0.0.1:${closed}`);
  });

  it('runs the local command alone when the database is free, and passes other errors through', async () => {
    const ctx = new CliContext(config);
    expect(await withControlFallback(ctx, async () => 'local', async () => 'remote')).toBe('local');
    const other = new AegisError('USAGE', 'bad flag');
    await expect(withControlFallback(ctx, () => Promise.reject(other), async () => 'remote')).rejects.toBe(other);
    // No token file: nothing to talk to, the lock error stands.
    await expect(withControlFallback(ctx, locked, async () => 'remote')).rejects.toMatchObject({ code: 'DB_LOCKED' });
  });
});
