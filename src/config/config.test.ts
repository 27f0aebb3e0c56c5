/**
 * Configuration: defaults < config file < AEGIS_* environment, validated and
 * deep-frozen. Every test passes env/cwd/file explicitly so the real
 * environment and working directory never leak in.
 */
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { mkdir, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAegisError, type AegisError } from '../errors.js';
import { tempDir } from '../test-support/fs.js';
import { loadConfig, type LoadConfigOptions } from './index.js';

let root: string;
let cleanup: () => Promise<void>;
let n = 0;

/** A fresh empty folder to use as cwd (so no ./aegis.config.yaml is found unless written). */
async function folder(files: Record<string, string> = {}): Promise<string> {
  const dir = join(root, `cwd-${++n}`);
  await mkdir(dir, { recursive: true });
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  return dir;
}

function configError(options: LoadConfigOptions): AegisError {
  let caught: unknown;
  try {
    loadConfig(options);
  } catch (err) {
    caught = err;
  }
  expect(isAegisError(caught), `expected an AegisError, got ${String(caught)}`).toBe(true);
  expect((caught as AegisError).code).toBe('CONFIG_INVALID');
  return caught as AegisError;
}

beforeAll(async () => {
  ({ path: root, cleanup } = await tempDir('aegis-config-test-'));
});

afterAll(async () => {
  await cleanup();
});

describe('loadConfig', () => {
  it('uses the documented defaults when there is no file and no environment', async () => {
    const cfg = loadConfig({ env: {}, cwd: await folder() });
    // The feature sections (drift, alerts, tracking, pipeline) have their own defaults tests beside their modules.
    expect(cfg).toMatchObject({
      home: './.aegis',
      logLevel: 'warn',
      hashing: { workers: Math.max(1, availableParallelism()), chunkBytes: 2 * 1024 * 1024 },
      fetch: { maxEntries: 100_000, maxBytes: 256 * 2 ** 30 },
      signing: { defaultCurve: 'p256', maxBundleBytes: 64 * 1024 * 1024 },
      backup: { keepDaily: 7, keepWeekly: 4 },
      control: { host: '127.0.0.1', port: 8079 },
    });
    expect(cfg.databaseUrl).toBeUndefined();
    expect(cfg.control.token).toBeUndefined();
  });

  it('reads ./aegis.config.yaml from cwd; file values override defaults, others keep their default', async () => {
    const cwd = await folder({ 'aegis.config.yaml': 'home: /var/lib/aegis\nhashing:\n  workers: 4\nsigning:\n  defaultCurve: p384\n' });
    const cfg = loadConfig({ env: {}, cwd });
    expect(cfg.home).toBe('/var/lib/aegis');
    expect(cfg.hashing).toEqual({ workers: 4, chunkBytes: 2 * 1024 * 1024 });
    expect(cfg.signing).toEqual({ defaultCurve: 'p384', maxBundleBytes: 64 * 1024 * 1024 });
    expect(cfg.logLevel).toBe('warn');
  });

  it('reads the file named by the file option or $AEGIS_CONFIG (relative to cwd) instead of the default one', async () => {
    const cwd = await folder({
      'aegis.config.yaml': 'logLevel: error\n',
      'other.yaml': 'logLevel: debug\n',
      'third.yaml': 'logLevel: trace\n',
    });
    expect(loadConfig({ env: {}, cwd }).logLevel).toBe('error');
    expect(loadConfig({ env: { AEGIS_CONFIG: 'other.yaml' }, cwd }).logLevel).toBe('debug');
    expect(loadConfig({ env: {}, cwd, file: join(cwd, 'third.yaml') }).logLevel).toBe('trace');
    // The explicit option wins over $AEGIS_CONFIG.
    expect(loadConfig({ env: { AEGIS_CONFIG: 'other.yaml' }, cwd, file: 'third.yaml' }).logLevel).toBe('trace');
  });

  it('environment variables override the file, parsed to numbers where needed', async () => {
    const cwd = await folder({ 'aegis.config.yaml': 'home: /from/file\nlogLevel: error\nhashing:\n  workers: 4\n  chunkBytes: 1048576\n' });
    const cfg = loadConfig({
      cwd,
      env: {
        AEGIS_HOME: '/from/env',
        AEGIS_LOG_LEVEL: 'info',
        AEGIS_HASH_WORKERS: '3',
        AEGIS_DEFAULT_CURVE: 'p521',
        AEGIS_MAX_BUNDLE_BYTES: '2048',
      },
    });
    expect(cfg.home).toBe('/from/env');
    expect(cfg.logLevel).toBe('info');
    expect(cfg.hashing.workers).toBe(3);
    expect(typeof cfg.hashing.workers).toBe('number');
    expect(cfg.hashing.chunkBytes).toBe(1048576); // from the file, not overridden
    expect(cfg.signing).toEqual({ defaultCurve: 'p521', maxBundleBytes: 2048 });
  });

  it('takes string settings from the environment verbatim, even when they look like numbers', async () => {
    const cfg = loadConfig({ cwd: await folder(), env: { AEGIS_HOME: '2024' } });
    expect(cfg.home).toBe('2024');
  });

  it('ignores empty environment variables and unrelated ones', async () => {
    const cwd = await folder({ 'aegis.config.yaml': 'hashing:\n  workers: 5\n' });
    const cfg = loadConfig({ cwd, env: { AEGIS_HASH_WORKERS: '', AEGIS_SOMETHING_ELSE: 'x', HOME: '/root' } });
    expect(cfg.hashing.workers).toBe(5);
    expect(cfg.home).toBe('./.aegis');
  });

  it.each([
    ['hashing.workers', { AEGIS_HASH_WORKERS: '0' }],
    ['hashing.workers', { AEGIS_HASH_WORKERS: '1.5' }],
    ['hashing.workers', { AEGIS_HASH_WORKERS: 'many' }],
    ['hashing.chunkBytes', { AEGIS_HASH_CHUNK_BYTES: '1024' }],
    ['logLevel', { AEGIS_LOG_LEVEL: 'verbose' }],
    ['signing.defaultCurve', { AEGIS_DEFAULT_CURVE: 'ed25519' }],
    ['signing.maxBundleBytes', { AEGIS_MAX_BUNDLE_BYTES: '-1' }],
  ])('an invalid environment value is CONFIG_INVALID naming %s', async (path, env) => {
    const e = configError({ env, cwd: await folder() });
    expect(e.message).toContain(`invalid configuration at ${path}:`);
    expect(e.details.path).toBe(path);
    expect(e.hint).toContain(path);
  });

  it('an invalid file value is CONFIG_INVALID naming the setting and the file', async () => {
    const cwd = await folder({ 'aegis.config.yaml': 'hashing:\n  workers: "four"\n' });
    const e = configError({ env: {}, cwd });
    expect(e.message).toContain('hashing.workers');
    expect(e.hint).toContain(join(cwd, 'aegis.config.yaml'));
  });

  it('refuses unknown keys, at the top level and nested', async () => {
    const top = configError({ env: {}, cwd: await folder({ 'aegis.config.yaml': 'homedir: /x\n' }) });
    expect(top.message).toContain('homedir');
    const nested = configError({ env: {}, cwd: await folder({ 'aegis.config.yaml': 'hashing:\n  threads: 4\n' }) });
    expect(nested.message).toContain('hashing');
    expect(nested.message).toContain('threads');
  });

  it('refuses a file that is not a mapping or not YAML', async () => {
    const list = configError({ env: {}, cwd: await folder({ 'aegis.config.yaml': '- a\n- b\n' }) });
    expect(list.message).toContain('must be a YAML mapping');
    const bad = configError({ env: {}, cwd: await folder({ 'aegis.config.yaml': 'hashing: [\n' }) });
    expect(bad.message).toContain('cannot read config file');
  });

  it('an empty file means defaults', async () => {
    const cfg = loadConfig({ env: {}, cwd: await folder({ 'aegis.config.yaml': '# nothing yet\n' }) });
    expect(cfg.logLevel).toBe('warn');
  });

  it('refuses an explicit file that does not exist, but a missing default file is fine', async () => {
    const cwd = await folder();
    const viaOption = configError({ env: {}, cwd, file: 'missing.yaml' });
    expect(viaOption.message).toContain(join(cwd, 'missing.yaml'));
    expect(viaOption.hint).toContain('Create the file');
    const viaEnv = configError({ env: { AEGIS_CONFIG: join(cwd, 'gone.yaml') }, cwd });
    expect(viaEnv.message).toContain(join(cwd, 'gone.yaml'));
    expect(() => loadConfig({ env: {}, cwd })).not.toThrow();
  });

  it('returns a deeply frozen object', async () => {
    const cfg = loadConfig({ env: { AEGIS_HASH_WORKERS: '2' }, cwd: await folder() });
    expect(Object.isFrozen(cfg)).toBe(true);
    expect(Object.isFrozen(cfg.hashing)).toBe(true);
    expect(Object.isFrozen(cfg.signing)).toBe(true);
    // ES modules are strict: assigning to a frozen property throws.
    expect(() => {
      (cfg as { home: string }).home = '/elsewhere';
    }).toThrow(TypeError);
    expect(() => {
      (cfg.hashing as { workers: number }).workers = 64;
    }).toThrow(TypeError);
    expect(cfg.home).toBe('./.aegis');
    expect(cfg.hashing.workers).toBe(2);
  });

  it('each call returns an independent result (defaults are not shared between calls)', async () => {
    const cwd = await folder();
    const a = loadConfig({ env: {}, cwd });
    const b = loadConfig({ env: { AEGIS_HASH_WORKERS: '7' }, cwd });
    expect(b.hashing.workers).toBe(7);
    expect(a.hashing.workers).toBe(Math.max(1, availableParallelism()));
    expect(loadConfig({ env: {}, cwd }).hashing.workers).toBe(Math.max(1, availableParallelism()));
  });
});
