/**
 * Interoperability with the reference OpenSSF `model_signing` CLI (installed
 * by scripts/services.sh): bundles Aegis signs verify with the reference, and
 * bundles the reference signs verify with Aegis — key method on P-256 and
 * P-384, certificate method, and a model with subfolders, unicode and spaces.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { appendFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SHARED_DIR, tempDir } from '../src/test-support/fs.js';
import { TRICKY_MODEL, writeModel } from '../src/test-support/models.js';

const run = promisify(execFile);
const REPO = fileURLToPath(new URL('..', import.meta.url));
const REFERENCE = process.env.AEGIS_MODEL_SIGNING_BIN ?? join(REPO, '.services', 'venv', 'bin', 'model_signing');
const AEGIS = [join(REPO, 'bin', 'aegis.js')];
const KEYS = join(SHARED_DIR, 'oms-conformance', 'assets', 'keys');

async function aegis(...args: string[]) {
  return run(process.execPath, [...AEGIS, ...args]).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );
}

async function reference(...args: string[]) {
  return run(REFERENCE, args).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );
}

let work: Awaited<ReturnType<typeof tempDir>>;
let n = 0;
const fresh = async (files: Record<string, string | number> = TRICKY_MODEL) => writeModel(join(work.path, `m${n++}`, 'model'), files);

beforeAll(async () => {
  expect(existsSync(REFERENCE), `reference model_signing not found at ${REFERENCE}: run scripts/services.sh`).toBe(true);
  expect(existsSync(join(REPO, 'dist', 'cli', 'main.js')), 'dist/ missing: run npm run build').toBe(true);
  work = await tempDir('aegis-interop-');
});
afterAll(async () => work?.cleanup());

describe.each([
  ['P-256', 'self-signed/signing-key.pem', 'self-signed/signing-key-pub.pem'],
  ['P-384', 'p384/signing-key.pem', 'p384/signing-key-pub.pem'],
])('key method, %s', (_curve, priv, pub) => {
  it('Aegis signs, the reference verifies', async () => {
    const model = await fresh();
    const sig = `${model}.sig`;
    const s = await aegis('model', 'sign', model, '--key', join(KEYS, priv), '--bundle', sig);
    expect(s.code, s.stderr).toBe(0);
    const v = await reference('verify', 'key', '--public_key', join(KEYS, pub), '--signature', sig, model);
    expect(v.code, v.stdout + v.stderr).toBe(0);
    expect(v.stdout).toContain('Verification succeeded');
  });

  it('the reference signs, Aegis verifies and prints exactly "verified"', async () => {
    const model = await fresh();
    const sig = `${model}.sig`;
    const s = await reference('sign', 'key', '--private_key', join(KEYS, priv), '--signature', sig, model);
    expect(s.code, s.stdout + s.stderr).toBe(0);
    const v = await aegis('model', 'verify', model, '--bundle', sig, '--public-key', join(KEYS, pub));
    expect(v.code, v.stderr).toBe(0);
    expect(v.stdout).toBe('verified\n');
  });

  it('both refuse the same tampered model (the oracle can fail)', async () => {
    const model = await fresh();
    const sig = `${model}.sig`;
    expect((await aegis('model', 'sign', model, '--key', join(KEYS, priv), '--bundle', sig)).code).toBe(0);
    await appendFile(join(model, 'weights', 'layer 1.bin'), 'x');
    const r = await reference('verify', 'key', '--public_key', join(KEYS, pub), '--signature', sig, model);
    expect(r.code).not.toBe(0);
    const a = await aegis('model', 'verify', model, '--bundle', sig, '--public-key', join(KEYS, pub));
    expect(a.code).toBe(1);
    expect(a.stderr).toContain('DIGEST_MISMATCH');
    expect(a.stderr).toContain('weights/layer 1.bin');
  });
});

describe('certificate method', () => {
  const cert = join(KEYS, 'certificate');
  it('Aegis signs, the reference verifies', async () => {
    const model = await fresh();
    const sig = `${model}.sig`;
    const s = await aegis('model', 'sign', model, '--key', join(cert, 'signing-key.pem'), '--cert', join(cert, 'signing-key-cert.pem'), '--cert-chain', join(cert, 'int-ca-cert.pem'), '--bundle', sig);
    expect(s.code, s.stderr).toBe(0);
    const v = await reference('verify', 'certificate', '--certificate_chain', join(cert, 'ca-cert.pem'), '--signature', sig, model);
    expect(v.code, v.stdout + v.stderr).toBe(0);
  });

  it('the reference signs, Aegis verifies', async () => {
    const model = await fresh();
    const sig = `${model}.sig`;
    const s = await reference('sign', 'certificate', '--private_key', join(cert, 'signing-key.pem'), '--signing_certificate', join(cert, 'signing-key-cert.pem'), '--certificate_chain', join(cert, 'int-ca-cert.pem'), '--signature', sig, model);
    expect(s.code, s.stdout + s.stderr).toBe(0);
    const v = await aegis('model', 'verify', model, '--bundle', sig, '--cert-chain', join(cert, 'ca-cert.pem'));
    expect(v.code, v.stderr).toBe(0);
    expect(v.stdout).toBe('verified\n');
  });
});

describe('ignore paths and unsigned files', () => {
  it('paths ignored by the reference at signing stay ignored when Aegis verifies', async () => {
    const model = await fresh({ ...TRICKY_MODEL, 'notes.md': 'scratch\n' });
    const sig = `${model}.sig`;
    const s = await reference('sign', 'key', '--private_key', join(KEYS, 'self-signed/signing-key.pem'), '--signature', sig, '--ignore-paths', join(model, 'notes.md'), model);
    expect(s.code, s.stdout + s.stderr).toBe(0);
    await writeFile(join(model, 'notes.md'), 'edited after signing\n');
    const v = await aegis('model', 'verify', model, '--bundle', sig, '--public-key', join(KEYS, 'self-signed/signing-key-pub.pem'));
    expect(v.code, v.stderr).toBe(0);
  });

  it('--ignore-unsigned-files tolerates an added file in both tools', async () => {
    const model = await fresh();
    const sig = `${model}.sig`;
    expect((await aegis('model', 'sign', model, '--key', join(KEYS, 'self-signed/signing-key.pem'), '--bundle', sig)).code).toBe(0);
    await writeFile(join(model, 'added.txt'), 'new\n');
    const strict = await aegis('model', 'verify', model, '--bundle', sig, '--public-key', join(KEYS, 'self-signed/signing-key-pub.pem'));
    expect(strict.code).toBe(1);
    expect(strict.stderr).toContain('FILE_EXTRA');
    const lax = await aegis('model', 'verify', model, '--bundle', sig, '--public-key', join(KEYS, 'self-signed/signing-key-pub.pem'), '--ignore-unsigned-files');
    expect(lax.code, lax.stderr).toBe(0);
    const ref = await reference('verify', 'key', '--public_key', join(KEYS, 'self-signed/signing-key-pub.pem'), '--signature', sig, '--ignore_unsigned_files', model);
    expect(ref.code, ref.stdout + ref.stderr).toBe(0);
  });
});
