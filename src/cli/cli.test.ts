/**
 * The CLI, run in-process through main(argv): exit codes, stdout/stderr
 * contracts ("verified", --json), key files, trust-policy editing commands,
 * help texts, the OMS conformance adapter and the demo.
 */
import { createHash, createPublicKey } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, open, readFile, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Command } from 'commander';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { tempDir } from '../test-support/fs.js';
import { writeModel } from '../test-support/models.js';
import { buildProgram } from './main.js';
import { okCli, runCli } from '../test-support/cli.js';

let root: string;
let cleanup: () => Promise<void>;
let dirCount = 0;

/** A fresh directory under the test root. */
function fresh(name: string): string {
  return join(root, `${++dirCount}-${name}`);
}

const run = runCli;

const ok = okCli;

function json<T = Record<string, unknown>>(text: string): T {
  return JSON.parse(text) as T;
}

async function flipByte(path: string, offset: number): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, offset);
    b[0] = b[0]! ^ 0xff;
    await fh.write(b, 0, 1, offset);
  } finally {
    await fh.close();
  }
}

async function newModel(name: string, extra: Record<string, string | number> = {}): Promise<string> {
  return writeModel(fresh(name), { 'config.json': '{"arch":"tiny"}\n', 'weights.bin': 20_000, ...extra });
}

/** `keys generate` into a fresh directory; returns the key paths and id. */
async function generate(name: string, ...more: string[]): Promise<{ dir: string; key: string; pub: string; keyId: string }> {
  const dir = fresh(name);
  const r = await ok('keys', 'generate', '--out-dir', dir, '--json', ...more);
  const out = json<{ keyId: string }>(r.stdout);
  return { dir, key: join(dir, 'signing-key.pem'), pub: join(dir, 'signing-key.pub.pem'), keyId: out.keyId };
}

beforeAll(async () => {
  ({ path: root, cleanup } = await tempDir('aegis-cli-test-'));
});

afterAll(async () => {
  await cleanup();
});

afterEach(() => {
  vi.restoreAllMocks();
  process.exitCode = undefined;
});

describe('keys generate', () => {
  it('writes signing-key.pem with mode 0600 and the public key, and prints the key id', async () => {
    const dir = fresh('gen');
    const r = await ok('keys', 'generate', '--out-dir', dir);
    const keyPath = join(dir, 'signing-key.pem');
    const pubPath = join(dir, 'signing-key.pub.pem');
    expect((await stat(keyPath)).mode & 0o777).toBe(0o600);
    const pubPem = await readFile(pubPath, 'utf8');
    const pub = createPublicKey(pubPem);
    expect(pub.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(await readFile(keyPath, 'utf8')).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    const keyId = createHash('sha256').update(pubPem).digest('hex');
    expect(r.stdout).toContain(`key id      ${keyId}\n`);
    expect(r.stdout).toContain(keyPath);
    expect(r.stderr).toBe('');
  });

  it('refuses to overwrite existing keys without --force (exit 2), and replaces them with it', async () => {
    const dir = fresh('gen-force');
    await ok('keys', 'generate', '--out-dir', dir);
    const keyPath = join(dir, 'signing-key.pem');
    const before = await readFile(keyPath, 'utf8');

    const refused = await run('keys', 'generate', '--out-dir', dir);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('[USAGE]');
    expect(refused.stderr).toContain(`${keyPath} already exists`);
    expect(refused.stderr).toContain('--force');
    expect(await readFile(keyPath, 'utf8')).toBe(before);

    // Even if the old key file had been made readable, the new one is private.
    await chmod(keyPath, 0o644);
    await ok('keys', 'generate', '--out-dir', dir, '--force');
    expect(await readFile(keyPath, 'utf8')).not.toBe(before);
    expect((await stat(keyPath)).mode & 0o777).toBe(0o600);
  });

  it('--curve p384 gives a P-384 key; an unknown curve is a usage error', async () => {
    const k = await generate('gen384', '--curve', 'p384');
    expect(createPublicKey(await readFile(k.pub)).asymmetricKeyDetails?.namedCurve).toBe('secp384r1');
    const bad = await run('keys', 'generate', '--out-dir', fresh('gen-bad'), '--curve', 'p999');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('unknown curve p999');
  });

  it('--json reports the paths, key id and curve', async () => {
    const dir = fresh('gen-json');
    const r = await ok('keys', 'generate', '--out-dir', dir, '--json', '--curve', 'p521');
    const out = json(r.stdout);
    expect(out).toMatchObject({ ok: true, privateKey: join(dir, 'signing-key.pem'), publicKey: join(dir, 'signing-key.pub.pem'), curve: 'p521' });
    expect(out.keyId).toBe(createHash('sha256').update(await readFile(join(dir, 'signing-key.pub.pem'))).digest('hex'));
  });

  it('a missing required option is a usage error (exit 2), not a crash', async () => {
    const r = await run('keys', 'generate');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("required option '--out-dir <dir>' not specified");
  });
});

describe('model sign and model verify', () => {
  let key: { key: string; pub: string; keyId: string };
  beforeAll(async () => {
    key = await generate('signer');
  });

  it('sign then verify prints exactly "verified" and exits 0', async () => {
    const model = await newModel('roundtrip');
    const s = await ok('model', 'sign', model, '--key', key.key);
    expect(s.stdout).toMatch(/^signed 2 file\(s\), 20016 bytes → .*model\.sig\n$/);
    expect(existsSync(join(model, 'model.sig'))).toBe(true);

    const v = await run('model', 'verify', model, '--public-key', key.pub);
    expect(v).toEqual({ code: 0, stdout: 'verified\n', stderr: '' });
  });

  it('a tampered model exits 1 and stderr names the code and the file', async () => {
    const model = await newModel('tampered');
    await ok('model', 'sign', model, '--key', key.key);
    await flipByte(join(model, 'weights.bin'), 1234);
    const v = await run('model', 'verify', model, '--public-key', key.pub);
    expect(v.code).toBe(1);
    expect(v.stdout).toBe('');
    expect(v.stderr).toMatch(/^not verified \[DIGEST_MISMATCH\]: file weights\.bin differs from what was signed/);
    expect(v.stderr).toContain('hint: The file was modified after signing');
  });

  it('a file added after signing is refused with FILE_EXTRA unless ignored', async () => {
    const model = await newModel('extra');
    await ok('model', 'sign', model, '--key', key.key);
    await writeFile(join(model, 'notes.txt'), 'added later\n');
    const v = await run('model', 'verify', model, '--public-key', key.pub);
    expect(v.code).toBe(1);
    expect(v.stderr).toContain('[FILE_EXTRA]');
    expect(v.stderr).toContain('notes.txt');
    expect((await run('model', 'verify', model, '--public-key', key.pub, '--ignore', 'notes.txt')).stdout).toBe('verified\n');
  });

  it('--json output of sign and verify is valid JSON with the expected fields', async () => {
    const model = await newModel('json');
    const bundle = join(fresh('bundles'), 'json.sig');
    const s = await ok('model', 'sign', model, '--key', key.key, '--bundle', bundle, '--json');
    const signed = json(s.stdout);
    expect(signed).toMatchObject({ ok: true, bundle, method: 'key', keyHint: key.keyId, modelName: basename(model), files: 2, bytes: 20016, resources: 2 });
    expect(signed.rootDigest).toMatch(/^[0-9a-f]{64}$/);
    expect(signed).not.toHaveProperty('bundleJson');
    expect(existsSync(bundle)).toBe(true);

    const v = await ok('model', 'verify', model, '--bundle', bundle, '--public-key', key.pub, '--json');
    const report = json(v.stdout);
    expect(report).toMatchObject({ verified: true, model, bundle, files: 2, method: 'files', rootDigest: signed.rootDigest, signer: { method: 'key', keyHint: key.keyId } });
    expect(v.stderr).toBe('');

    await flipByte(join(model, 'config.json'), 2);
    const bad = await run('model', 'verify', model, '--bundle', bundle, '--public-key', key.pub, '--json');
    expect(bad.code).toBe(1);
    const failed = json<{ verified: boolean; model: string; error: { code: string; message: string; hint?: string } }>(bad.stdout);
    expect(failed.verified).toBe(false);
    expect(failed.model).toBe(model);
    expect(failed.error.code).toBe('DIGEST_MISMATCH');
    expect(failed.error.message).toContain('config.json');
    expect(bad.stderr).toBe('');
  });

  it('a single-file model gets its bundle beside it (FILE.sig)', async () => {
    const dir = fresh('single');
    const file = join((await writeModel(dir, { 'model.onnx': 5000 })), 'model.onnx');
    await ok('model', 'sign', file, '--key', key.key);
    expect(existsSync(`${file}.sig`)).toBe(true);
    expect((await run('model', 'verify', file, '--public-key', key.pub)).stdout).toBe('verified\n');
  });

  it('sign --json reports a failure as JSON on stdout with the error code', async () => {
    const model = await newModel('sign-fail');
    const missing = join(fresh('nokey'), 'signing-key.pem');
    const r = await run('model', 'sign', model, '--key', missing, '--json');
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('');
    const out = json<{ ok: boolean; error: { code: string; message: string } }>(r.stdout);
    expect(out.ok).toBe(false);
    expect(out.error.code).toBe('FILE_NOT_FOUND');
    expect(out.error.message).toContain(missing);
    expect(existsSync(join(model, 'model.sig'))).toBe(false);
  });

  it('a bundle signed by another key gives KEY_MISMATCH', async () => {
    const model = await newModel('other-key');
    await ok('model', 'sign', model, '--key', key.key);
    const other = await generate('other');
    const v = await run('model', 'verify', model, '--public-key', other.pub);
    expect(v.code).toBe(1);
    expect(v.stderr).toContain('[KEY_MISMATCH]');
  });

  it('no trust anchor is a usage error (exit 2), in text and in --json', async () => {
    const model = await newModel('no-anchor');
    await ok('model', 'sign', model, '--key', key.key);
    const v = await run('model', 'verify', model);
    expect(v.code).toBe(2);
    expect(v.stdout).toBe('');
    expect(v.stderr).toContain('[USAGE]: no trust anchor given');
    expect(v.stderr).toContain('--public-key');

    const j = await run('model', 'verify', model, '--json');
    expect(j.code).toBe(2);
    expect(json<{ verified: boolean; error: { code: string } }>(j.stdout)).toMatchObject({ verified: false, error: { code: 'USAGE' } });
  });

  it('two trust anchors are a usage error (exit 2)', async () => {
    const model = await newModel('two-anchors');
    await ok('model', 'sign', model, '--key', key.key);
    const trust = join(fresh('two-anchors-trust'), 'trust.yaml');
    await ok('keys', 'add', '--trust', trust, '--public-key', key.pub, '--id', 'k');
    for (const second of [['--trust', trust], ['--cert-chain', key.pub]]) {
      const v = await run('model', 'verify', model, '--public-key', key.pub, ...second);
      expect(v.code).toBe(2);
      expect(v.stderr).toContain('[USAGE]: give only one trust anchor');
      expect(v.stdout).toBe('');
    }
  });

  it('an invalid configuration is a usage error (exit 2) with or without --json', async () => {
    const model = await newModel('bad-config');
    const saved = process.env.AEGIS_HASH_WORKERS;
    process.env.AEGIS_HASH_WORKERS = '0';
    try {
      const r = await run('model', 'verify', model, '--public-key', key.pub);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('[CONFIG_INVALID]');
      expect(r.stderr).toContain('hashing.workers');
      const j = await run('model', 'verify', model, '--public-key', key.pub, '--json');
      expect(j.code).toBe(2);
      expect(json<{ error: { code: string } }>(j.stdout).error.code).toBe('CONFIG_INVALID');
    } finally {
      if (saved === undefined) delete process.env.AEGIS_HASH_WORKERS;
      else process.env.AEGIS_HASH_WORKERS = saved;
    }
  });

  it('an unknown option is a usage error (exit 2)', async () => {
    const r = await run('model', 'verify', 'x', '--no-such-flag');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("unknown option '--no-such-flag'");
  });
});

interface ListEntry {
  kind: string;
  id: string;
  keyId?: string;
  status: string;
  notBefore?: string;
  notAfter?: string;
  reason?: string;
}

async function list(trust: string): Promise<ListEntry[]> {
  const r = await ok('keys', 'list', '--trust', trust, '--json');
  const out = json<{ trust: string; entries: ListEntry[] }>(r.stdout);
  expect(out.trust).toBe(trust);
  return out.entries;
}

describe('trust policy commands', () => {
  it('keys rotate creates the policy, a second rotate expires the first key after the overlap, and models by both keys verify', async () => {
    const dir = fresh('rotate');
    const trust = join(dir, 'trust.yaml');
    const first = await ok('keys', 'rotate', '--trust', trust, '--out-dir', join(dir, 'keys', 'one'), '--id', 'one', '--json');
    const r1 = json<{ ok: boolean; newKey: { id: string; keyId: string }; expiring: string[] }>(first.stdout);
    expect(r1).toMatchObject({ ok: true, trust, newKey: { id: 'one' }, expiring: [] });
    expect(existsSync(trust)).toBe(true);
    expect((await stat(join(dir, 'keys', 'one', 'signing-key.pem'))).mode & 0o777).toBe(0o600);
    // The policy refers to the key relative to its own folder.
    expect(await readFile(trust, 'utf8')).toContain('publicKey: keys/one/signing-key.pub.pem');

    const modelOne = await newModel('by-one');
    await ok('model', 'sign', modelOne, '--key', join(dir, 'keys', 'one', 'signing-key.pem'));

    const t0 = Date.now();
    const second = await ok('keys', 'rotate', '--trust', trust, '--out-dir', join(dir, 'keys', 'two'), '--id', 'two', '--overlap', '7d');
    const t1 = Date.now();
    expect(second.stdout).toMatch(/^new key two → .*signing-key\.pem\nkey one now expires \S+Z\nupdated /);

    const entries = await list(trust);
    expect(entries.map((e) => [e.kind, e.id, e.status])).toEqual([
      ['key', 'one', 'active'],
      ['key', 'two', 'active'],
    ]);
    const notAfter = Date.parse(entries[0]!.notAfter!);
    expect(notAfter).toBeGreaterThanOrEqual(t0 + 7 * 86_400_000 - 1000);
    expect(notAfter).toBeLessThanOrEqual(t1 + 7 * 86_400_000 + 1000);
    expect(entries[1]!.notAfter).toBeUndefined();
    expect(entries[1]!.notBefore).toBeDefined();
    expect(entries[0]!.keyId).toBe(r1.newKey.keyId);

    const modelTwo = await newModel('by-two');
    await ok('model', 'sign', modelTwo, '--key', join(dir, 'keys', 'two', 'signing-key.pem'));
    expect((await run('model', 'verify', modelOne, '--trust', trust)).stdout).toBe('verified\n');
    expect((await run('model', 'verify', modelTwo, '--trust', trust)).stdout).toBe('verified\n');
    const v = json<{ signer: { trustedId: string } }>((await ok('model', 'verify', modelOne, '--trust', trust, '--json')).stdout);
    expect(v.signer.trustedId).toBe('one');

    // A third rotation with a longer overlap does not extend key one, only limits key two.
    const third = json<{ expiring: string[] }>(
      (await ok('keys', 'rotate', '--trust', trust, '--out-dir', join(dir, 'keys', 'three'), '--id', 'three', '--overlap', '30d', '--json')).stdout,
    );
    expect(third.expiring).toEqual(['two']);
    expect((await list(trust))[0]!.notAfter).toBe(entries[0]!.notAfter);

    // Same id twice is refused.
    const dup = await run('keys', 'rotate', '--trust', trust, '--out-dir', join(dir, 'keys', 'four'), '--id', 'three');
    expect(dup.code).toBe(2);
    expect(dup.stderr).toContain('already has a key with id three');
    expect(existsSync(join(dir, 'keys', 'four'))).toBe(false);
  });

  it('keys rotate refuses a bad --overlap', async () => {
    const dir = fresh('rotate-bad');
    const r = await run('keys', 'rotate', '--trust', join(dir, 'trust.yaml'), '--out-dir', join(dir, 'k'), '--overlap', 'a while');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('not a duration: a while');
    expect(existsSync(join(dir, 'trust.yaml'))).toBe(false);
  });

  it('keys revoke makes verification with --trust fail with KEY_REVOKED and the reason', async () => {
    const dir = fresh('revoke');
    const trust = join(dir, 'trust.yaml');
    await ok('keys', 'rotate', '--trust', trust, '--out-dir', join(dir, 'k1'), '--id', 'k1');
    const model = await newModel('revoked');
    await ok('model', 'sign', model, '--key', join(dir, 'k1', 'signing-key.pem'));
    expect((await run('model', 'verify', model, '--trust', trust)).stdout).toBe('verified\n');

    const r = await ok('keys', 'revoke', '--trust', trust, '--id', 'k1', '--reason', 'key leaked');
    expect(r.stdout).toBe(`revoked k1 in ${trust}\n`);
    const v = await run('model', 'verify', model, '--trust', trust);
    expect(v.code).toBe(1);
    expect(v.stdout).toBe('');
    expect(v.stderr).toContain('not verified [KEY_REVOKED]');
    expect(v.stderr).toContain('key leaked');
    const j = await run('model', 'verify', model, '--trust', trust, '--json');
    expect(json<{ error: { code: string; details: { id: string } } }>(j.stdout).error).toMatchObject({ code: 'KEY_REVOKED', details: { id: 'k1' } });

    const [entry] = await list(trust);
    expect(entry).toMatchObject({ id: 'k1', status: 'revoked', reason: 'key leaked' });

    const unknown = await run('keys', 'revoke', '--trust', trust, '--id', 'nope');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('no key or CA with id nope');
  });

  it('keys add trusts an existing key (creating the policy), refuses a duplicate id and bad times', async () => {
    const dir = fresh('add');
    const trust = join(dir, 'trust.yaml');
    const partner = await generate('partner');
    const r = await ok('keys', 'add', '--trust', trust, '--public-key', partner.pub, '--id', 'partner', '--not-after', '2999-01-01T00:00:00Z');
    expect(r.stdout).toBe(`trusted partner (${partner.keyId}) in ${trust}\n`);
    expect(await list(trust)).toEqual([
      { kind: 'key', id: 'partner', keyId: partner.keyId, status: 'active', notAfter: '2999-01-01T00:00:00.000Z' },
    ]);

    const model = await newModel('partner-model');
    await ok('model', 'sign', model, '--key', partner.key);
    expect((await run('model', 'verify', model, '--trust', trust)).stdout).toBe('verified\n');

    const dup = await run('keys', 'add', '--trust', trust, '--public-key', partner.pub, '--id', 'partner');
    expect(dup.code).toBe(2);
    expect(dup.stderr).toContain('already has a key with id partner');

    const before = await readFile(trust, 'utf8');
    const other = await generate('partner2');
    const badTime = await run('keys', 'add', '--trust', trust, '--public-key', other.pub, '--id', 'p2', '--not-before', 'tomorrow');
    expect(badTime.code).toBe(1);
    expect(badTime.stderr).toContain('[TRUST_POLICY_INVALID]');
    expect(badTime.stderr).toContain('keys.1.notBefore');
    expect(await readFile(trust, 'utf8')).toBe(before);

    // A policy that does not load (here: a key file gone) is not edited.
    const broken = join(dir, 'broken.yaml');
    const brokenText = `apiVersion: aegis.dev/v1\nkind: TrustPolicy\nkeys:\n  - id: gone\n    publicKey: gone.pub.pem\n`;
    await writeFile(broken, brokenText);
    const refused = await run('keys', 'add', '--trust', broken, '--public-key', other.pub, '--id', 'p2');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('[FILE_NOT_FOUND]');
    expect(refused.stderr).toContain(join(dir, 'gone.pub.pem'));
    expect(await readFile(broken, 'utf8')).toBe(brokenText);

    // Without --id the id is derived from the key id.
    const derived = json<{ id: string }>((await ok('keys', 'add', '--trust', trust, '--public-key', other.pub, '--json')).stdout);
    expect(derived.id).toBe(`key-${other.keyId.slice(0, 12)}`);
  });

  it('keys list prints one line per entry; policy editing commands refuse a broken policy with TRUST_POLICY_INVALID', async () => {
    const dir = fresh('list');
    const trust = join(dir, 'trust.yaml');
    await ok('keys', 'rotate', '--trust', trust, '--out-dir', join(dir, 'k'), '--id', 'only');
    const text = await ok('keys', 'list', '--trust', trust);
    expect(text.stdout).toMatch(/^key {2}only +active +\n$/);

    const broken = join(dir, 'broken.yaml');
    await writeFile(broken, 'keys: [\n');
    for (const args of [
      ['keys', 'revoke', '--trust', broken, '--id', 'x'],
      ['keys', 'list', '--trust', broken],
      ['keys', 'add', '--trust', broken, '--public-key', join(dir, 'k', 'signing-key.pub.pem')],
      ['keys', 'rotate', '--trust', broken, '--out-dir', join(dir, 'k2')],
    ]) {
      const r = await run(...args);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr, args.join(' ')).toContain(`error [TRUST_POLICY_INVALID]: trust policy ${broken} is invalid`);
    }
    // rotate refused before writing a key.
    expect(existsSync(join(dir, 'k2'))).toBe(false);
  });
});

/** Every command in the tree, as its argv path. */
function commandPaths(cmd: Command, prefix: string[] = []): { path: string[]; cmd: Command }[] {
  return cmd.commands.flatMap((c) => [{ path: [...prefix, c.name()], cmd: c }, ...commandPaths(c, [...prefix, c.name()])]);
}

describe('help', () => {
  const all = commandPaths(buildProgram());

  it('the command tree has the documented commands', () => {
    const names = all.map((c) => c.path.join(' '));
    for (const n of ['keys generate', 'keys rotate', 'keys add', 'keys revoke', 'keys list', 'model sign', 'model verify', 'oms sign-model', 'oms verify-model', 'demo']) {
      expect(names).toContain(n);
    }
  });

  it.each([{ name: '', path: [] as string[] }, ...all.map((c) => ({ name: c.path.join(' '), path: c.path }))])('aegis $name --help shows an example and exits 0', async ({ path }) => {
    const r = await run(...path, '--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Usage: aegis${path.length ? ' ' + path.join(' ') : ''}`);
    expect(r.stdout).toMatch(/Examples?:\n {2}\$ /);
    expect(r.stderr).toBe('');
  });

  it('outputHelp on every command (with its added help text) contains "Example"', () => {
    for (const { path, cmd } of all) {
      let text = '';
      cmd.configureOutput({ writeOut: (s) => (text += s), writeErr: (s) => (text += s) });
      cmd.outputHelp();
      expect(text, path.join(' ')).toContain('Example');
      expect(cmd.helpInformation(), path.join(' ')).toContain('Usage:');
    }
  });
});

describe('oms adapter', () => {
  it('sign-model / verify-model: exit 0 on success with absolute --ignore-paths, non-zero on a tampered model', async () => {
    const key = await generate('oms-key');
    const model = await newModel('oms', { 'ignore-me': 'not signed\n' });
    const bundle = join(fresh('oms-bundle'), 'model.sig');
    const signed = await run('oms', 'sign-model', '--method', 'key', '--model-path', model, '--output-bundle', bundle, '--private-key', key.key, '--ignore-paths', join(model, 'ignore-me'));
    expect(signed.code).toBe(0);
    expect(json<{ predicate: unknown }>(Buffer.from(json<{ dsseEnvelope: { payload: string } }>(await readFile(bundle, 'utf8')).dsseEnvelope.payload, 'base64').toString())).toMatchObject({
      predicate: { serialization: { ignore_paths: expect.arrayContaining(['ignore-me']) } },
    });

    const verify = (...more: string[]) => run('oms', 'verify-model', '--method', 'key', '--model-path', model, '--bundle', bundle, '--public-key', key.pub, ...more);
    expect(await verify()).toEqual({ code: 0, stdout: 'verified\n', stderr: '' });

    // A file added after signing: refused, unless named by an absolute --ignore-paths.
    await writeFile(join(model, 'added.txt'), 'late\n');
    const extra = await verify();
    expect(extra.code).not.toBe(0);
    expect(extra.stderr).toContain('[FILE_EXTRA]');
    expect((await verify('--ignore-paths', join(model, 'added.txt'))).code).toBe(0);

    await flipByte(join(model, 'weights.bin'), 0);
    const bad = await verify('--ignore-paths', join(model, 'added.txt'));
    expect(bad.code).not.toBe(0);
    expect(bad.stdout).toBe('');
    expect(bad.stderr).toContain('[DIGEST_MISMATCH]');
  });

  it('refuses the sigstore method and a missing key with a non-zero exit', async () => {
    const model = await newModel('oms-sigstore');
    const sig = await run('oms', 'sign-model', '--method', 'sigstore', '--model-path', model, '--output-bundle', join(model, 'x.sig'));
    expect(sig.code).not.toBe(0);
    expect(sig.stderr).toContain('[BUNDLE_METHOD_UNSUPPORTED]');
    const noKey = await run('oms', 'verify-model', '--method', 'key', '--model-path', model, '--bundle', join(model, 'x.sig'));
    expect(noKey.code).not.toBe(0);
    expect(noKey.stderr).toContain('--public-key is required');
  });

  it('capabilities prints JSON', async () => {
    const r = await ok('oms', 'capabilities');
    expect(json(r.stdout)).toMatchObject({ hash_algorithms: expect.arrayContaining(['sha256']) });
  });
});

describe('demo', () => {
  it('creates a dev key under AEGIS_HOME, prints verified and refused; a second run reuses the key', async () => {
    const home = fresh('demo-home');
    const saved = process.env.AEGIS_HOME;
    process.env.AEGIS_HOME = home;
    try {
      const r = await ok('demo');
      expect(r.stdout).toContain('created a DEV signing key');
      expect(r.stdout).toContain('\nverified\n');
      expect(r.stdout).toContain('refused [DIGEST_MISMATCH]');
      expect(r.stdout).not.toContain('NOT REFUSED');
      expect((await stat(join(home, 'keys', 'dev', 'signing-key.pem'))).mode & 0o777).toBe(0o600);
      expect(existsSync(join(home, 'trust.yaml'))).toBe(true);
      expect(existsSync(join(home, 'bundles', 'example_multimodal-0.1.sig'))).toBe(true);

      const again = await ok('demo', '--json');
      const report = json<{ ok: boolean; verification: { verified: boolean; signer: { trustedId: string } }; tampered: { code: string } }>(again.stdout);
      expect(report.ok).toBe(true);
      expect(report.verification.verified).toBe(true);
      expect(report.verification.signer.trustedId).toBe('dev-local');
      expect(report.tampered.code).toBe('DIGEST_MISMATCH');
    } finally {
      if (saved === undefined) delete process.env.AEGIS_HOME;
      else process.env.AEGIS_HOME = saved;
    }
  });
});

describe('serve', () => {
  it('refuses to listen beyond loopback with hot swap open to anyone (no admin token, not turned off)', async () => {
    const r = await runCli('serve', '--model', 'example_multimodal@production', '--host', '0.0.0.0', '--port', '0');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/USAGE.*hot swap would be open to anyone who can reach 0\.0\.0\.0/);
    expect(r.stderr).toMatch(/--admin-token-file|--no-repository-load/);
  });
});
