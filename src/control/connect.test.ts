/**
 * How the CLI finds the control plane: the address `aegis up` recorded counts
 * only while that process lives and only on this machine (the bearer token
 * goes there).
 */
import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig, platformPaths, type AegisConfig } from '../config/index.js';
import { tempDir } from '../test-support/fs.js';
import { controlPlaneRecord, controlUrl, runningControlPlane } from './connect.js';

let work: Awaited<ReturnType<typeof tempDir>>;
let config: AegisConfig;
beforeEach(async () => {
  work = await tempDir('aegis-connect-');
  config = loadConfig({ cwd: work.path, env: { AEGIS_HOME: join(work.path, 'home') } });
  await mkdir(config.home, { recursive: true });
});
afterEach(async () => work.cleanup());

const record = (rec: unknown) => writeFile(platformPaths(config).controlUrl, typeof rec === 'string' ? rec : JSON.stringify(rec));

/** A pid that is not running: a child that has exited. */
async function deadPid(): Promise<number> {
  const c = spawn(process.execPath, ['-e', '']);
  await new Promise((r) => c.once('exit', r));
  return c.pid!;
}

describe('controlUrl', () => {
  it('prefers control.url, then the running aegis up of this home, then the configured address', async () => {
    expect(controlUrl(config)).toBe('http://127.0.0.1:8079');
    await writeFile(platformPaths(config).controlUrl, controlPlaneRecord('http://127.0.0.1:43123'));
    expect(controlUrl(config)).toBe('http://127.0.0.1:43123');
    const explicit = loadConfig({ cwd: work.path, env: { AEGIS_HOME: config.home, AEGIS_CONTROL_URL: 'https://aegis.example.com' } });
    expect(controlUrl(explicit)).toBe('https://aegis.example.com');
  });

  it('ignores a record left by a process that is gone, one naming another host, and one that does not parse', async () => {
    await record({ url: 'http://127.0.0.1:43123', pid: await deadPid() });
    expect(runningControlPlane(config)).toBeUndefined();
    await record({ url: 'http://attacker.example:80', pid: process.pid });
    expect(runningControlPlane(config)).toBeUndefined();
    await record('http://127.0.0.1:43123\n'); // the format of an earlier build
    expect(runningControlPlane(config)).toBeUndefined();
    expect(controlUrl(config)).toBe('http://127.0.0.1:8079');
  });

  it('reads a wildcard listening address as loopback', async () => {
    await writeFile(platformPaths(config).controlUrl, controlPlaneRecord('http://0.0.0.0:43123'));
    expect(runningControlPlane(config)).toBe('http://127.0.0.1:43123');
    await writeFile(platformPaths(config).controlUrl, controlPlaneRecord('http://[::]:43123'));
    expect(runningControlPlane(config)).toBe('http://[::1]:43123');
  });
});
