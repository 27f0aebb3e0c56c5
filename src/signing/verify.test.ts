/**
 * Adversarial verification: every way an attacker (or an accident) can change
 * a signed model or its bundle must be refused, for the right reason. Each
 * case signs a fresh model in a temp dir, checks it verifies, tampers with
 * it, and asserts the AegisError code (and, where it helps, the file named).
 */
import { createHash, randomBytes, sign as cryptoSign, type KeyObject } from 'node:crypto';
import type * as FsPromises from 'node:fs/promises';
import { mkdir, open, readFile, rename, rm, symlink, truncate, writeFile, appendFile } from 'node:fs/promises';
import type * as WorkerThreads from 'node:worker_threads';
import { execFileSync } from 'node:child_process';
import { join, resolve, sep } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { isAegisError, type AegisError, type ErrorCode } from '../errors.js';
import { SHARED_DIR, tempDir } from '../test-support/fs.js';
import { writeModel } from '../test-support/models.js';
import { resolveTrustAnchor } from './anchor.js';
import { serializeBundle } from './bundle.js';
import { IN_TOTO_PAYLOAD_TYPE, pae, paeCompatV02 } from './dsse.js';
import { curveInfo, generateKeyPair, parsePrivateKey, parsePublicKey, type Curve } from './keys.js';
import { PemCertificateSigner, PemKeySigner } from './pem/index.js';
import { signModel, type SignOptions, type SignResult } from './sign.js';
import { LEGACY_PREDICATE_TYPE } from './statement.js';
import { loadTrustPolicy, type TrustAnchor } from './trust.js';
import { verifyModel, type VerificationReport, type VerifyOptions } from './verify.js';

// Pass-through probes: count jobs handed to hashing worker threads (workers are pooled and
// reused across calls, so constructions are not counted), and record every path the code under test
// hands to node:fs/promises (to prove a crafted bundle cannot make the verifier read outside the model).
const probe = vi.hoisted(() => ({ workers: 0, fsPaths: [] as string[] }));

vi.mock('node:worker_threads', async (importOriginal) => {
  const real = await importOriginal<typeof WorkerThreads>();
  class CountingWorker extends real.Worker {
    override postMessage(...args: Parameters<InstanceType<typeof real.Worker>['postMessage']>): void {
      probe.workers++;
      super.postMessage(...args);
    }
  }
  return { ...real, Worker: CountingWorker };
});

vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof FsPromises>();
  const record =
    <A extends unknown[], R>(f: (...a: A) => R) =>
    (...a: A): R => {
      if (typeof a[0] === 'string') probe.fsPaths.push(a[0]);
      return f(...a);
    };
  return {
    ...real,
    open: record(real.open),
    readFile: record(real.readFile),
    stat: record(real.stat),
    lstat: record(real.lstat),
    readdir: record(real.readdir),
    realpath: record(real.realpath),
  };
});

const MiB = 1024 * 1024;
const ASSETS = join(SHARED_DIR, 'oms-conformance', 'assets');

// ---------------------------------------------------------------- keys

interface TestKey {
  priv: KeyObject;
  pub: KeyObject;
  pubPem: string;
  hint: string;
  signer: PemKeySigner;
}

function makeKey(curve: Curve = 'p256'): TestKey {
  const pair = generateKeyPair(curve);
  const priv = parsePrivateKey(pair.privateKeyPem, `test ${curve} key`);
  return { priv, pub: parsePublicKey(pair.publicKeyPem, 'test'), pubPem: pair.publicKeyPem, hint: pair.hint, signer: new PemKeySigner(priv) };
}

const A = makeKey(); // the trusted signer
const B = makeKey(); // someone else
const P384 = makeKey('p384');
const anchorA: TrustAnchor = { kind: 'publicKey', key: A.pub, source: 'trusted-a.pub.pem' };

// ---------------------------------------------------------------- fixtures

let tmp: Awaited<ReturnType<typeof tempDir>>;
beforeEach(async () => {
  tmp = await tempDir('aegis-verify-');
});
afterEach(async () => tmp.cleanup());

const BASIC: Record<string, string | number> = {
  'config.json': '{"arch":"tiny"}\n',
  'weights/a.bin': 5000,
  'weights/b.bin': 3000,
  'tokenizer/vocab.txt': 'hello\nworld\n',
  'empty.bin': '',
};

async function model(files: Record<string, string | number | Buffer> = BASIC, dir = 'model'): Promise<string> {
  return writeModel(join(tmp.path, dir), files);
}

function verify(modelPath: string, bundlePath: string, o: Partial<VerifyOptions> = {}): Promise<VerificationReport> {
  return verifyModel({ modelPath, bundlePath, trust: anchorA, ...o });
}

/** Signs (bundle beside the model unless given), writes the bundle, and checks it verifies untampered. */
async function signed(
  modelPath: string,
  o: Partial<SignOptions> & { key?: TestKey; verifyWith?: Partial<VerifyOptions> } = {},
): Promise<{ bundlePath: string; result: SignResult }> {
  const { key = A, verifyWith, ...rest } = o;
  const bundlePath = rest.bundlePath ?? `${modelPath}.sig`;
  const result = await signModel({ modelPath, signer: key.signer, ...rest, bundlePath });
  await writeFile(bundlePath, result.bundleJson);
  const control = await verify(modelPath, bundlePath, { trust: { kind: 'publicKey', key: key.pub, source: 'signer' }, ...verifyWith });
  expect(control.verified).toBe(true);
  return { bundlePath, result };
}

/** The AegisError `p` rejects with; fails if it resolves or rejects with anything else or another code. */
async function refused(p: Promise<unknown>, code: ErrorCode, ...mentions: string[]): Promise<AegisError> {
  const err = await p.then(
    (v) => ({ unexpectedlyResolved: v }),
    (e: unknown) => e,
  );
  expect(isAegisError(err), `expected AegisError ${code}, got ${isAegisError(err) ? '' : JSON.stringify(err) ?? String(err)}`).toBe(true);
  const e = err as AegisError;
  expect(e.code, e.message).toBe(code);
  for (const m of mentions) expect(e.message).toContain(m);
  return e;
}

async function flipByte(path: string, offset: number): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, offset);
    b.writeUInt8(b.readUInt8(0) ^ 0xff, 0);
    await fh.write(b, 0, 1, offset);
  } finally {
    await fh.close();
  }
}

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

// ---------------------------------------------------------------- crafted bundles

interface RawBundle {
  mediaType: string;
  verificationMaterial: Record<string, unknown>;
  dsseEnvelope: { payload: string; payloadType: string; signatures: { sig: string; keyid?: string }[] };
}

interface Resource {
  name: string;
  algorithm: string;
  digest: string;
}

interface Statement {
  _type: string;
  subject: { name: string; digest: { sha256: string } }[];
  predicateType: string;
  predicate: { serialization: Record<string, unknown>; resources: Resource[] };
}

async function readRaw(bundlePath: string): Promise<RawBundle> {
  return JSON.parse(await readFile(bundlePath, 'utf8')) as RawBundle;
}

function statementOf(raw: RawBundle): Statement {
  return JSON.parse(Buffer.from(raw.dsseEnvelope.payload, 'base64').toString('utf8')) as Statement;
}

/** Independent OMS root digest: SHA-256 over the raw resource digests in listed order. */
function rootOf(resources: readonly Resource[]): string {
  const h = createHash('sha256');
  for (const r of resources) h.update(Buffer.from(r.digest, 'hex'));
  return h.digest('hex');
}

/** A bundle for `statement`, properly signed by `key` (what an attacker holding that key could produce). */
function resign(statement: object, key: TestKey = A, material: Record<string, unknown> = { publicKey: { hint: key.hint } }): string {
  const payload = Buffer.from(JSON.stringify(statement, null, 2), 'utf8');
  const sig = cryptoSign(curveInfo(key.priv).hash, pae(IN_TOTO_PAYLOAD_TYPE, payload), key.priv);
  return serializeBundle(material, payload, sig);
}

/** Writes a crafted bundle beside the real one and returns its path. */
async function crafted(text: string | Buffer, name = 'crafted.sig'): Promise<string> {
  const path = join(tmp.path, name);
  await writeFile(path, text);
  return path;
}

/** Paths the code under test touched that are neither inside `root` nor in `allowed`. */
function touchedOutside(root: string, allowed: readonly string[]): string[] {
  return probe.fsPaths.map((p) => resolve(p)).filter((p) => p !== root && !p.startsWith(root + sep) && !allowed.includes(p));
}

// ================================================================= model content

describe('tampered model content', () => {
  it('catches one flipped byte in the middle of a 40 MiB file hashed by the worker pool', async () => {
    const m = await model({ 'config.json': '{}' });
    const big = join(m, 'big.bin');
    await writeFile(big, randomBytes(40 * MiB));
    // A larger (sparse) decoy: the pool hands the largest job out first, so big.bin goes to another executor.
    await writeFile(join(m, 'decoy.bin'), '');
    await truncate(join(m, 'decoy.bin'), 41 * MiB);
    const { bundlePath } = await signed(m, { workers: 2, verifyWith: { workers: 2 } });
    await flipByte(big, 20 * MiB);
    probe.workers = 0;
    const err = await refused(verify(m, bundlePath, { workers: 2 }), 'DIGEST_MISMATCH', 'file big.bin differs');
    expect(probe.workers, 'verification of > 32 MiB in several files must use hashing workers').toBeGreaterThan(0);
    expect(err.details.mismatched).toEqual([expect.objectContaining({ name: 'big.bin' })]);
  });

  it('catches one flipped byte in a sharded 40 MiB file, naming the shard', async () => {
    const m = await model({ 'config.json': '{}' });
    await writeFile(join(m, 'big.bin'), randomBytes(40 * MiB));
    const shardSize = 8 * MiB;
    const { bundlePath } = await signed(m, { shardSize, workers: 2, verifyWith: { workers: 2 } });
    await flipByte(join(m, 'big.bin'), 20 * MiB);
    probe.workers = 0;
    await refused(verify(m, bundlePath, { workers: 2 }), 'DIGEST_MISMATCH', `big.bin:${2 * shardSize}:${3 * shardSize}`);
    expect(probe.workers).toBeGreaterThan(0);
  });

  it('catches a file renamed', async () => {
    const m = await model();
    const { bundlePath } = await signed(m);
    await rename(join(m, 'weights', 'a.bin'), join(m, 'weights', 'a2.bin'));
    const err = await refused(verify(m, bundlePath), 'FILE_MISSING', 'weights/a.bin');
    expect(err.details).toMatchObject({ missing: ['weights/a.bin'], extra: ['weights/a2.bin'] });
  });

  it('catches a file moved to another folder', async () => {
    const m = await model();
    const { bundlePath } = await signed(m);
    await rename(join(m, 'weights', 'b.bin'), join(m, 'tokenizer', 'b.bin'));
    const err = await refused(verify(m, bundlePath), 'FILE_MISSING', 'weights/b.bin');
    expect(err.details).toMatchObject({ missing: ['weights/b.bin'], extra: ['tokenizer/b.bin'] });
  });

  it('catches two files swapped (same names, exchanged contents)', async () => {
    const m = await model({ 'x.bin': 100, 'y.bin': 100 });
    const { bundlePath } = await signed(m);
    await rename(join(m, 'x.bin'), join(m, 'tmp'));
    await rename(join(m, 'y.bin'), join(m, 'x.bin'));
    await rename(join(m, 'tmp'), join(m, 'y.bin'));
    const err = await refused(verify(m, bundlePath), 'DIGEST_MISMATCH', 'file x.bin differs');
    expect((err.details.mismatched as { name: string }[]).map((x) => x.name)).toEqual(['x.bin', 'y.bin']);
  });

  it('catches a file deleted', async () => {
    const m = await model();
    const { bundlePath } = await signed(m);
    await rm(join(m, 'tokenizer', 'vocab.txt'));
    const err = await refused(verify(m, bundlePath), 'FILE_MISSING', 'tokenizer/vocab.txt');
    expect(err.details).toMatchObject({ missing: ['tokenizer/vocab.txt'], extra: [] });
  });

  it('catches a signed empty file deleted', async () => {
    const m = await model();
    const { bundlePath } = await signed(m);
    await rm(join(m, 'empty.bin'));
    await refused(verify(m, bundlePath), 'FILE_MISSING', 'empty.bin');
  });

  it('catches an extra file added, at the root and in a new folder', async () => {
    const m = await model();
    const { bundlePath } = await signed(m);
    await writeFile(join(m, 'payload.py'), 'import os\n');
    await refused(verify(m, bundlePath), 'FILE_EXTRA', 'payload.py');
    await rm(join(m, 'payload.py'));
    await writeModel(m, { 'new/dir/evil.pkl': 10 });
    await refused(verify(m, bundlePath), 'FILE_EXTRA', 'new/dir/evil.pkl');
  });

  it('catches an extra empty file added', async () => {
    const m = await model();
    const { bundlePath } = await signed(m);
    await writeFile(join(m, '__init__.py'), '');
    await refused(verify(m, bundlePath), 'FILE_EXTRA', '__init__.py');
  });

  it('catches a file truncated', async () => {
    const m = await model();
    const { bundlePath } = await signed(m);
    await truncate(join(m, 'weights', 'a.bin'), 4999);
    await refused(verify(m, bundlePath), 'DIGEST_MISMATCH', 'file weights/a.bin differs');
  });

  it('catches a file appended to', async () => {
    const m = await model();
    const { bundlePath } = await signed(m);
    await appendFile(join(m, 'config.json'), ' ');
    await refused(verify(m, bundlePath), 'DIGEST_MISMATCH', 'file config.json differs');
  });

  it('catches an empty file made non-empty', async () => {
    const m = await model();
    const { bundlePath } = await signed(m);
    await writeFile(join(m, 'empty.bin'), '\0');
    await refused(verify(m, bundlePath), 'DIGEST_MISMATCH', 'file empty.bin differs');
  });

  it('catches a file replaced by a directory of the same name', async () => {
    const m = await model();
    const { bundlePath } = await signed(m);
    await rm(join(m, 'config.json'));
    await writeModel(m, { 'config.json/inner': 'x' });
    const err = await refused(verify(m, bundlePath), 'FILE_MISSING', 'config.json');
    expect(err.details).toMatchObject({ extra: ['config.json/inner'] });
  });

  it('catches a signed file replaced by a FIFO without blocking on it', async () => {
    const m = await model();
    const { bundlePath } = await signed(m);
    await rm(join(m, 'weights', 'b.bin'));
    execFileSync('mkfifo', [join(m, 'weights', 'b.bin')]);
    await refused(verify(m, bundlePath), 'UNSUPPORTED_FILE_TYPE', 'b.bin');
    await refused(verify(m, bundlePath, { ignoreUnsignedFiles: true }), 'UNSUPPORTED_FILE_TYPE', 'weights/b.bin');
  });

  it('refuses the bundle of another model signed by the same key (same layout, other weights)', async () => {
    const m = await model();
    await signed(m);
    const other = await model({ ...BASIC, 'weights/a.bin': Buffer.alloc(5000, 7) }, 'other-model');
    const { bundlePath: otherBundle } = await signed(other);
    await refused(verify(m, otherBundle), 'DIGEST_MISMATCH', 'file weights/a.bin differs');
  });

  it('refuses the bundle of a model with other files', async () => {
    const m = await model();
    const other = await model({ 'model.safetensors': 100 }, 'other-model');
    const { bundlePath } = await signed(other);
    await refused(verify(m, bundlePath), 'FILE_MISSING', 'model.safetensors');
  });

  it('refuses a model that is missing altogether', async () => {
    const m = await model();
    const { bundlePath } = await signed(m);
    await rm(m, { recursive: true });
    await refused(verify(m, bundlePath), 'MODEL_NOT_FOUND', m);
  });
});

// ================================================================= symlinks

describe('symlinks', () => {
  it('refuses a symlink added after signing', async () => {
    const m = await model();
    const { bundlePath } = await signed(m);
    await symlink('weights/a.bin', join(m, 'alias.bin'));
    await refused(verify(m, bundlePath), 'SYMLINK_REJECTED', 'alias.bin');
  });

  it('refuses a signed file replaced by a symlink to an identical copy outside the model', async () => {
    const m = await model();
    const { bundlePath } = await signed(m);
    const outside = join(tmp.path, 'outside-a.bin');
    await rename(join(m, 'weights', 'a.bin'), outside);
    await symlink(outside, join(m, 'weights', 'a.bin'));
    await refused(verify(m, bundlePath), 'SYMLINK_REJECTED', 'a.bin');
    await refused(verify(m, bundlePath, { ignoreUnsignedFiles: true }), 'SYMLINK_REJECTED', 'weights/a.bin');
  });

  it('refuses a signed folder replaced by a symlink to an identical copy outside the model', async () => {
    const m = await model();
    const { bundlePath } = await signed(m);
    const outside = join(tmp.path, 'outside-weights');
    await rename(join(m, 'weights'), outside);
    await symlink(outside, join(m, 'weights'));
    await refused(verify(m, bundlePath), 'SYMLINK_REJECTED', 'weights');
    await refused(verify(m, bundlePath, { ignoreUnsignedFiles: true }), 'SYMLINK_ESCAPES_ROOT', 'weights/');
  });

  it('refuses a signed folder replaced by a symlink inside the model when symlinks were not allowed', async () => {
    const m = await model();
    const { bundlePath } = await signed(m);
    await rename(join(m, 'weights'), join(m, 'real-weights'));
    await symlink('real-weights', join(m, 'weights'));
    await refused(verify(m, bundlePath), 'SYMLINK_REJECTED', 'weights');
    // With --ignore-unsigned-files only the signed names are looked up: the link in their path must still be refused.
    await refused(verify(m, bundlePath, { ignoreUnsignedFiles: true }), 'SYMLINK_REJECTED', 'weights/a.bin');
  });

  it('refuses a signed symlink retargeted outside the model (allowSymlinks)', async () => {
    const m = await model();
    await symlink('weights/a.bin', join(m, 'alias.bin'));
    const { bundlePath } = await signed(m, { allowSymlinks: true });
    const outside = join(tmp.path, 'copy.bin');
    await writeFile(outside, await readFile(join(m, 'weights', 'a.bin')));
    await rm(join(m, 'alias.bin'));
    await symlink(outside, join(m, 'alias.bin'));
    await refused(verify(m, bundlePath), 'SYMLINK_ESCAPES_ROOT', 'alias.bin');
    await refused(verify(m, bundlePath, { ignoreUnsignedFiles: true }), 'SYMLINK_ESCAPES_ROOT', 'alias.bin');
  });

  it('refuses a folder retargeted outside the model through a symlink (allowSymlinks)', async () => {
    const m = await model();
    const { bundlePath } = await signed(m, { allowSymlinks: true });
    const outside = join(tmp.path, 'outside-weights');
    await rename(join(m, 'weights'), outside);
    await symlink(outside, join(m, 'weights'));
    await refused(verify(m, bundlePath), 'SYMLINK_ESCAPES_ROOT', 'weights');
    await refused(verify(m, bundlePath, { ignoreUnsignedFiles: true }), 'SYMLINK_ESCAPES_ROOT', 'weights/');
  });
});

// ================================================================= signer and trust

describe('signer and trust', () => {
  async function writePolicy(entries: string): Promise<TrustAnchor> {
    await mkdir(join(tmp.path, 'keys'), { recursive: true });
    await writeFile(join(tmp.path, 'keys', 'a.pub.pem'), A.pubPem);
    await writeFile(join(tmp.path, 'keys', 'b.pub.pem'), B.pubPem);
    const path = join(tmp.path, 'TRUST.yaml');
    await writeFile(path, `apiVersion: aegis.dev/v1\nkind: TrustPolicy\nkeys:\n${entries}`);
    return { kind: 'policy', policy: await loadTrustPolicy(path) };
  }

  it('refuses a bundle signed by another key when given a public key (KEY_MISMATCH)', async () => {
    const m = await model();
    const { bundlePath } = await signed(m, { key: B });
    const err = await refused(verify(m, bundlePath), 'KEY_MISMATCH', B.hint.slice(0, 16), 'trusted-a.pub.pem');
    expect(err.details).toEqual({ bundleKeyHint: B.hint, givenKeyHint: A.hint });
  });

  it('refuses a bundle signed by a key the trust policy does not list (KEY_UNTRUSTED)', async () => {
    const m = await model();
    const { bundlePath } = await signed(m, { key: B });
    const trust = await writePolicy('  - id: release-a\n    publicKey: keys/a.pub.pem\n');
    await refused(verify(m, bundlePath, { trust }), 'KEY_UNTRUSTED', B.hint);
  });

  it("refuses another key's signature under the trusted key's hint", async () => {
    const m = await model();
    const { bundlePath } = await signed(m, { key: B });
    const raw = await readRaw(bundlePath);
    raw.verificationMaterial = { publicKey: { hint: A.hint }, tlogEntries: [] };
    const forged = await crafted(JSON.stringify(raw));
    await refused(verify(m, forged), 'SIGNATURE_INVALID', 'trusted-a.pub.pem');
    const trust = await writePolicy('  - id: release-a\n    publicKey: keys/a.pub.pem\n');
    await refused(verify(m, forged, { trust }), 'SIGNATURE_INVALID', 'release-a');
  });

  it("refuses another key's signature with the key hint removed", async () => {
    const m = await model();
    const { bundlePath } = await signed(m, { key: B });
    const raw = await readRaw(bundlePath);
    raw.verificationMaterial = { publicKey: {}, tlogEntries: [] };
    const stripped = await crafted(JSON.stringify(raw));
    await refused(verify(m, stripped), 'SIGNATURE_INVALID');
    const trust = await writePolicy('  - id: release-a\n    publicKey: keys/a.pub.pem\n');
    await refused(verify(m, stripped, { trust }), 'SIGNATURE_INVALID', 'none of the keys');
  });

  it('refuses a revoked key, with the reason', async () => {
    const m = await model();
    const { bundlePath } = await signed(m);
    const trust = await writePolicy('  - id: release-a\n    publicKey: keys/a.pub.pem\n    revoked: true\n    reason: key leaked\n');
    const err = await refused(verify(m, bundlePath, { trust }), 'KEY_REVOKED', 'release-a', 'key leaked');
    expect(err.details).toEqual({ id: 'release-a' });
  });

  it('refuses a revoked key even when the same key is listed again under another id', async () => {
    const m = await model();
    const { bundlePath } = await signed(m);
    const trust = await writePolicy(
      '  - id: release-a\n    publicKey: keys/a.pub.pem\n' + '  - id: release-a-leaked\n    publicKey: keys/a.pub.pem\n    revoked: true\n',
    );
    await refused(verify(m, bundlePath, { trust }), 'KEY_REVOKED', 'release-a-leaked');
  });

  it('refuses an expired key from notAfter on, and accepts it just before', async () => {
    const m = await model();
    const { bundlePath } = await signed(m);
    const trust = await writePolicy('  - id: release-a\n    publicKey: keys/a.pub.pem\n    notAfter: 2026-01-01T00:00:00Z\n');
    const ok = await verify(m, bundlePath, { trust, now: new Date('2025-12-31T23:59:59.999Z') });
    expect(ok.signer.trustedId).toBe('release-a');
    await refused(verify(m, bundlePath, { trust, now: new Date('2026-01-01T00:00:00Z') }), 'KEY_EXPIRED', 'release-a');
  });

  it('refuses a key that expired long ago by the real clock', async () => {
    const m = await model();
    const { bundlePath } = await signed(m);
    const trust = await writePolicy('  - id: old\n    publicKey: keys/a.pub.pem\n    notAfter: 2001-01-01T00:00:00Z\n');
    await refused(verify(m, bundlePath, { trust }), 'KEY_EXPIRED', '2001-01-01');
  });

  it('refuses a key before notBefore, and accepts it from then on', async () => {
    const m = await model();
    const { bundlePath } = await signed(m);
    const trust = await writePolicy('  - id: next\n    publicKey: keys/a.pub.pem\n    notBefore: 2030-01-01T00:00:00Z\n');
    await refused(verify(m, bundlePath, { trust, now: new Date('2029-12-31T23:59:59.999Z') }), 'KEY_NOT_YET_VALID', 'next');
    await refused(verify(m, bundlePath, { trust }), 'KEY_NOT_YET_VALID');
    expect((await verify(m, bundlePath, { trust, now: new Date('2030-01-01T00:00:00Z') })).verified).toBe(true);
  });

  it('after a rotation, accepts the new key and refuses the expired old one', async () => {
    const m = await model();
    const { bundlePath: byA } = await signed(m);
    const { bundlePath: byB } = await signed(m, { key: B, bundlePath: join(tmp.path, 'by-b.sig') });
    const trust = await writePolicy(
      '  - id: old\n    publicKey: keys/a.pub.pem\n    notAfter: 2020-01-01T00:00:00Z\n' + '  - id: new\n    publicKey: keys/b.pub.pem\n    notBefore: 2019-12-01T00:00:00Z\n',
    );
    const r = await verify(m, byB, { trust });
    expect(r.signer).toMatchObject({ method: 'key', keyHint: B.hint, trustedId: 'new' });
    await refused(verify(m, byA, { trust }), 'KEY_EXPIRED', 'old');
  });

  it('refuses a certificate bundle given a public key (BUNDLE_METHOD_MISMATCH)', async () => {
    const m = await model();
    const certs = join(ASSETS, 'keys', 'certificate');
    const signer = await PemCertificateSigner.fromFiles(join(certs, 'signing-key.pem'), join(certs, 'signing-key-cert.pem'), [join(certs, 'int-ca-cert.pem')]);
    const result = await signModel({ modelPath: m, signer });
    const bundlePath = await crafted(result.bundleJson);
    const caAnchor = await resolveTrustAnchor({ certChain: [join(certs, 'ca-cert.pem')] });
    expect((await verify(m, bundlePath, { trust: caAnchor })).signer.method).toBe('certificate'); // control
    const certKey = await resolveTrustAnchor({ publicKey: join(certs, 'signing-key-pub.pem') });
    await refused(verify(m, bundlePath, { trust: certKey }), 'BUNDLE_METHOD_MISMATCH', 'certificate method');
  });

  it('refuses a key bundle given CA certificates (BUNDLE_METHOD_MISMATCH)', async () => {
    const m = await model();
    const { bundlePath } = await signed(m);
    const caAnchor = await resolveTrustAnchor({ certChain: [join(ASSETS, 'keys', 'certificate', 'ca-cert.pem')] });
    await refused(verify(m, bundlePath, { trust: caAnchor }), 'BUNDLE_METHOD_MISMATCH', 'key method');
  });

  it('refuses a Sigstore keyless bundle (BUNDLE_METHOD_UNSUPPORTED)', async () => {
    const m = await model();
    const { bundlePath } = await signed(m);
    const raw = await readRaw(bundlePath);
    raw.verificationMaterial = { certificate: { rawBytes: randomBytes(64).toString('base64') }, tlogEntries: [{ logIndex: '1' }] };
    await refused(verify(m, await crafted(JSON.stringify(raw))), 'BUNDLE_METHOD_UNSUPPORTED');
  });
});

// ================================================================= envelope and statement

describe('envelope and statement', () => {
  it('refuses a swapped payloadType, even re-signed', async () => {
    const m = await model();
    const { bundlePath } = await signed(m);
    const raw = await readRaw(bundlePath);
    raw.dsseEnvelope.payloadType = 'application/json';
    await refused(verify(m, await crafted(JSON.stringify(raw))), 'PAYLOAD_TYPE', 'application/json');
    const payload = Buffer.from(raw.dsseEnvelope.payload, 'base64');
    raw.dsseEnvelope.signatures = [{ sig: cryptoSign('sha256', pae('application/json', payload), A.priv).toString('base64') }];
    await refused(verify(m, await crafted(JSON.stringify(raw), 'resigned.sig')), 'PAYLOAD_TYPE');
  });

  it('refuses a payload edited to match a tampered file, without re-signing (SIGNATURE_INVALID)', async () => {
    const m = await model();
    const { bundlePath } = await signed(m);
    await writeFile(join(m, 'config.json'), '{"arch":"evil"}\n');
    const raw = await readRaw(bundlePath);
    const st = statementOf(raw);
    const res = st.predicate.resources.find((r) => r.name === 'config.json')!;
    res.digest = sha256('{"arch":"evil"}\n');
    st.subject[0]!.digest.sha256 = rootOf(st.predicate.resources);
    raw.dsseEnvelope.payload = Buffer.from(JSON.stringify(st, null, 2)).toString('base64');
    await refused(verify(m, await crafted(JSON.stringify(raw))), 'SIGNATURE_INVALID');
  });

  it('refuses a payload with one whitespace byte changed (SIGNATURE_INVALID)', async () => {
    const m = await model();
    const { bundlePath } = await signed(m);
    const raw = await readRaw(bundlePath);
    const payload = Buffer.from(raw.dsseEnvelope.payload, 'base64');
    raw.dsseEnvelope.payload = Buffer.concat([payload, Buffer.from('\n')]).toString('base64');
    await refused(verify(m, await crafted(JSON.stringify(raw))), 'SIGNATURE_INVALID');
  });

  it('refuses resources reordered without re-signing (SIGNATURE_INVALID)', async () => {
    const m = await model();
    const { bundlePath } = await signed(m);
    const raw = await readRaw(bundlePath);
    const st = statementOf(raw);
    st.predicate.resources.reverse();
    raw.dsseEnvelope.payload = Buffer.from(JSON.stringify(st, null, 2)).toString('base64');
    await refused(verify(m, await crafted(JSON.stringify(raw))), 'SIGNATURE_INVALID');
  });

  it('refuses resources reordered and re-signed over the old subject digest (ROOT_DIGEST_MISMATCH)', async () => {
    const m = await model();
    const { bundlePath, result } = await signed(m);
    const st = statementOf(await readRaw(bundlePath));
    expect(st.subject[0]!.digest.sha256).toBe(result.rootDigest);
    st.predicate.resources.reverse();
    await refused(verify(m, await crafted(resign(st))), 'ROOT_DIGEST_MISMATCH', result.rootDigest);
  });

  it('refuses a resource dropped from the statement and re-signed with the old subject digest', async () => {
    const m = await model();
    const { bundlePath } = await signed(m);
    const st = statementOf(await readRaw(bundlePath));
    st.predicate.resources = st.predicate.resources.filter((r) => r.name !== 'weights/b.bin');
    await refused(verify(m, await crafted(resign(st))), 'ROOT_DIGEST_MISMATCH');
  });

  it('refuses duplicate resource names, re-signed with a consistent digest (RESOURCE_DUPLICATE)', async () => {
    const m = await model();
    const { bundlePath } = await signed(m);
    const st = statementOf(await readRaw(bundlePath));
    st.predicate.resources.push({ name: 'weights/a.bin', algorithm: 'sha256', digest: sha256('other') });
    st.subject[0]!.digest.sha256 = rootOf(st.predicate.resources);
    await refused(verify(m, await crafted(resign(st))), 'RESOURCE_DUPLICATE', 'weights/a.bin');
  });

  it('refuses an unsupported hash type, re-signed (HASH_UNSUPPORTED)', async () => {
    const m = await model();
    const { bundlePath } = await signed(m);
    const st = statementOf(await readRaw(bundlePath));
    st.predicate.serialization.hash_type = 'md5';
    await refused(verify(m, await crafted(resign(st))), 'HASH_UNSUPPORTED', 'md5');
  });

  it('refuses a statement whose hash type was switched, re-signed, because nothing then matches', async () => {
    const m = await model();
    const { bundlePath } = await signed(m);
    const st = statementOf(await readRaw(bundlePath));
    st.predicate.serialization.hash_type = 'blake2b';
    await refused(verify(m, await crafted(resign(st))), 'DIGEST_MISMATCH');
  });

  describe('unsafe resource names (re-signed) are refused before anything is read', () => {
    async function craftWithName(name: string, method: 'files' | 'shards' = 'files') {
      const m = await model();
      const secret = join(tmp.path, 'secret.bin');
      await writeFile(secret, 'top secret');
      const { bundlePath } = await signed(m, method === 'shards' ? { shardSize: 4096 } : {});
      const st = statementOf(await readRaw(bundlePath));
      // The listed digest is the outside file's own: a verifier that followed the name would find a match.
      st.predicate.resources.push({ name, algorithm: 'sha256', digest: sha256('top secret') });
      st.subject[0]!.digest.sha256 = rootOf(st.predicate.resources);
      return { m, secret, bundle: await crafted(resign(st)) };
    }

    async function expectUnsafe(name: string, method: 'files' | 'shards' = 'files') {
      const { m, secret, bundle } = await craftWithName(name, method);
      for (const ignoreUnsignedFiles of [false, true]) {
        probe.fsPaths.length = 0;
        const progress = vi.fn();
        await refused(verify(m, bundle, { ignoreUnsignedFiles, onProgress: progress }), 'RESOURCE_NAME_UNSAFE');
        expect(progress).not.toHaveBeenCalled();
        expect(probe.fsPaths, 'the fs probe must see the bundle being read').toContain(bundle);
        expect(probe.fsPaths.map((p) => resolve(p))).not.toContain(secret);
        expect(touchedOutside(m, [bundle])).toEqual([]);
      }
    }

    it('with ".."', () => expectUnsafe('../secret.bin'));
    it('with ".." after a folder', () => expectUnsafe('weights/../../secret.bin'));
    it('as an absolute path', async () => expectUnsafe(join(tmp.path, 'secret.bin')));
    it('in a shard name', () => expectUnsafe('../secret.bin:0:10', 'shards'));

    it('in a legacy (Digests/v0.1) statement', async () => {
      const m = await model({ 'a.bin': 'aaa' });
      const secret = join(tmp.path, 'secret.bin');
      await writeFile(secret, 'top secret');
      const st = {
        _type: 'https://in-toto.io/Statement/v1',
        subject: [
          { name: 'a.bin', digest: { sha256: sha256('aaa') } },
          { name: '../secret.bin', digest: { sha256: sha256('top secret') } },
        ],
        predicateType: LEGACY_PREDICATE_TYPE,
        predicate: {},
      };
      const bundle = await crafted(resign(st));
      probe.fsPaths.length = 0;
      await refused(verify(m, bundle), 'RESOURCE_NAME_UNSAFE', '../secret.bin');
      expect(probe.fsPaths).toContain(bundle);
      expect(touchedOutside(m, [bundle])).toEqual([]);
    });
  });
});

// ================================================================= signatures and bundle format

describe('signatures and bundle format', () => {
  async function withSigs(sigs: { sig: string; keyid?: string }[]): Promise<{ m: string; bundle: string }> {
    const m = await model();
    const { bundlePath } = await signed(m);
    const raw = await readRaw(bundlePath);
    raw.dsseEnvelope.signatures = sigs.map((s) => (s.sig === 'REAL' ? raw.dsseEnvelope.signatures[0]! : s));
    return { m, bundle: await crafted(JSON.stringify(raw)) };
  }

  it('refuses a truncated signature', async () => {
    const m = await model();
    const { bundlePath } = await signed(m);
    const raw = await readRaw(bundlePath);
    const sig = Buffer.from(raw.dsseEnvelope.signatures[0]!.sig, 'base64');
    raw.dsseEnvelope.signatures[0]!.sig = sig.subarray(0, sig.length - 4).toString('base64');
    await refused(verify(m, await crafted(JSON.stringify(raw))), 'SIGNATURE_INVALID');
  });

  it('refuses a signature with one bit flipped', async () => {
    const m = await model();
    const { bundlePath } = await signed(m);
    const raw = await readRaw(bundlePath);
    const sig = Buffer.from(raw.dsseEnvelope.signatures[0]!.sig, 'base64');
    sig.writeUInt8(sig.readUInt8(sig.length - 1) ^ 1, sig.length - 1);
    raw.dsseEnvelope.signatures[0]!.sig = sig.toString('base64');
    await refused(verify(m, await crafted(JSON.stringify(raw))), 'SIGNATURE_INVALID');
  });

  it('refuses garbage signature bytes', async () => {
    const { m, bundle } = await withSigs([{ sig: randomBytes(71).toString('base64') }]);
    await refused(verify(m, bundle), 'SIGNATURE_INVALID');
  });

  it('refuses a signature that is not base64', async () => {
    const { m, bundle } = await withSigs([{ sig: 'not base64!' }]);
    const err = await refused(verify(m, bundle), 'BUNDLE_MALFORMED', 'base64');
    expect(err.details).toEqual({ field: 'dsseEnvelope.signatures.0.sig' });
  });

  it('refuses an empty signatures array', async () => {
    const { m, bundle } = await withSigs([]);
    await refused(verify(m, bundle), 'BUNDLE_MALFORMED', 'no signatures');
  });

  it('accepts a valid signature next to a garbage one (DSSE: any signature by the trusted key)', async () => {
    const { m, bundle } = await withSigs([{ sig: randomBytes(64).toString('base64') }, { sig: 'REAL' }]);
    expect((await verify(m, bundle)).verified).toBe(true);
  });

  it('refuses a bundle over maxBundleBytes, and accepts it at exactly the limit', async () => {
    const m = await model();
    const { bundlePath, result } = await signed(m);
    const size = Buffer.byteLength(result.bundleJson);
    await refused(verify(m, bundlePath, { maxBundleBytes: size - 1 }), 'BUNDLE_TOO_LARGE', `${size} bytes`);
    expect((await verify(m, bundlePath, { maxBundleBytes: size })).verified).toBe(true);
  });

  it('refuses a bundle over the default 64 MiB limit without reading it', async () => {
    const m = await model();
    const huge = join(tmp.path, 'huge.sig');
    await writeFile(huge, '');
    await truncate(huge, 64 * MiB + 1); // sparse
    probe.fsPaths.length = 0;
    await refused(verify(m, huge), 'BUNDLE_TOO_LARGE');
    expect(probe.fsPaths).toContain(huge); // its size was looked at…
    expect(probe.fsPaths).not.toContain(m); // …and it was refused before the model was
  });

  it.each([
    ['garbage bytes', () => randomBytes(300), 'not valid JSON'],
    ['an empty file', () => '', 'empty'],
    ['whitespace only', () => '  \n\t', 'empty'],
    ['a JSON array', () => '[{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}]', 'not a JSON object'],
    ['JSON null', () => 'null', 'not a JSON object'],
    ['a JSON string', () => '"bundle"', 'not a JSON object'],
    [
      'a cosign messageSignature bundle',
      () =>
        JSON.stringify({
          mediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json',
          verificationMaterial: { publicKey: { hint: A.hint } },
          messageSignature: { messageDigest: { algorithm: 'SHA2_256', digest: randomBytes(32).toString('base64') }, signature: randomBytes(64).toString('base64') },
        }),
      'messageSignature',
    ],
    ['an envelope without verificationMaterial', () => JSON.stringify({ mediaType: 'x', dsseEnvelope: {} }), 'verificationMaterial'],
  ])('refuses %s as BUNDLE_MALFORMED', async (_what, content, mention) => {
    const m = await model();
    await refused(verify(m, await crafted(content())), 'BUNDLE_MALFORMED', mention);
  });

  it('refuses a truncated bundle file', async () => {
    const m = await model();
    const { result } = await signed(m);
    const half = result.bundleJson.slice(0, Math.floor(result.bundleJson.length / 2));
    await refused(verify(m, await crafted(half)), 'BUNDLE_MALFORMED', 'not valid JSON');
  });

  it('refuses a wrong mediaType', async () => {
    const m = await model();
    const { bundlePath } = await signed(m);
    const raw = await readRaw(bundlePath);
    raw.mediaType = 'application/vnd.dev.sigstore.bundle+json;version=0.1';
    await refused(verify(m, await crafted(JSON.stringify(raw))), 'BUNDLE_MEDIA_TYPE', 'version=0.1');
  });

  it('refuses verification material holding both a key and a certificate chain', async () => {
    const m = await model();
    const { bundlePath } = await signed(m);
    const raw = await readRaw(bundlePath);
    raw.verificationMaterial.x509CertificateChain = { certificates: [{ rawBytes: randomBytes(32).toString('base64') }] };
    await refused(verify(m, await crafted(JSON.stringify(raw))), 'BUNDLE_MALFORMED', 'more than one kind');
  });

  it('reports a missing bundle as FILE_NOT_FOUND, and a folder as FILE_UNREADABLE', async () => {
    const m = await model();
    await refused(verify(m, join(tmp.path, 'nope.sig')), 'FILE_NOT_FOUND', 'nope.sig');
    await mkdir(join(tmp.path, 'dir.sig'));
    await refused(verify(m, join(tmp.path, 'dir.sig')), 'FILE_UNREADABLE', 'dir.sig');
  });
});

// ================================================================= legacy v0.2 encoding

describe('legacy model_signing v0.2 signatures', () => {
  function legacyStatement(files: Record<string, string>): Buffer {
    const st = {
      _type: 'https://in-toto.io/Statement/v1',
      subject: Object.entries(files).map(([name, content]) => ({ name, digest: { sha256: sha256(content) } })),
      predicateType: LEGACY_PREDICATE_TYPE,
      predicate: {},
    };
    return Buffer.from(JSON.stringify(st), 'utf8');
  }

  /** A v0.2-style bundle: no key hint, signature over the buggy "DSSEV1"+repr() encoding of `signedPayload`. */
  function legacyBundle(key: TestKey, signedPayload: Buffer, carriedPayload = signedPayload, hash = curveInfo(key.priv).hash): string {
    const sig = cryptoSign(hash, paeCompatV02(IN_TOTO_PAYLOAD_TYPE, signedPayload), key.priv);
    return serializeBundle({ publicKey: {} }, carriedPayload, sig);
  }

  const FILES = { 'a.bin': 'weights \u00e9\n', 'b.bin': "it's \"quoted\"\\" };

  it('verifies a genuine legacy bundle, with warnings', async () => {
    const m = await model(FILES);
    const r = await verify(m, await crafted(legacyBundle(A, legacyStatement(FILES))));
    expect(r.signer).toMatchObject({ method: 'key', keyHint: A.hint, legacyEncoding: true });
    expect(r.warnings).toHaveLength(2);
    expect(r.warnings.join('\n')).toMatch(/pre-1\.0.*\n.*no key hint/);
  });

  it('refuses a legacy signature carried with a different payload (tampered file, updated statement)', async () => {
    const m = await model(FILES);
    const tampered = { ...FILES, 'a.bin': 'weights \u00e8\n' };
    await writeFile(join(m, 'a.bin'), tampered['a.bin']);
    const bundle = await crafted(legacyBundle(A, legacyStatement(FILES), legacyStatement(tampered)));
    await refused(verify(m, bundle), 'SIGNATURE_INVALID');
  });

  it('refuses a legacy signature over the payload with one byte appended', async () => {
    const m = await model(FILES);
    const p = legacyStatement(FILES);
    await refused(verify(m, await crafted(legacyBundle(A, p, Buffer.concat([p, Buffer.from(' ')])))), 'SIGNATURE_INVALID');
  });

  it('on P-384 (SHA-256 fallback of v0.2), verifies the genuine bundle and refuses a different payload', async () => {
    const m = await model(FILES);
    const trust: TrustAnchor = { kind: 'publicKey', key: P384.pub, source: 'p384' };
    const genuine = legacyBundle(P384, legacyStatement(FILES), undefined, 'sha256');
    expect((await verify(m, await crafted(genuine), { trust })).signer.legacyEncoding).toBe(true);
    const other = legacyStatement({ ...FILES, 'b.bin': 'x' });
    await writeFile(join(m, 'b.bin'), 'x');
    const forged = legacyBundle(P384, legacyStatement(FILES), other, 'sha256');
    await refused(verify(m, await crafted(forged, 'forged.sig'), { trust }), 'SIGNATURE_INVALID');
  });

  it('refuses a genuine legacy bundle when a listed file was tampered with', async () => {
    const m = await model(FILES);
    const bundle = await crafted(legacyBundle(A, legacyStatement(FILES)));
    await writeFile(join(m, 'b.bin'), 'changed');
    await refused(verify(m, bundle), 'DIGEST_MISMATCH', 'b.bin');
  });
});

// ================================================================= round trips

describe('round trips', () => {
  it('reports what was verified', async () => {
    const m = await model();
    const { bundlePath, result } = await signed(m);
    const r = await verify(m, bundlePath);
    const st = statementOf(await readRaw(bundlePath));
    expect(r).toEqual({
      verified: true,
      model: m,
      bundle: bundlePath,
      signer: { method: 'key', keyHint: A.hint },
      modelName: 'model',
      rootDigest: result.rootDigest,
      method: 'files',
      files: 5,
      bytes: 16 + 5000 + 3000 + 12,
      resources: 5,
      unsignedFiles: [],
      warnings: [],
    });
    expect(rootOf(st.predicate.resources)).toBe(result.rootDigest);
    expect(st.predicate.resources.map((x) => x.name)).toEqual(['config.json', 'empty.bin', 'tokenizer/vocab.txt', 'weights/a.bin', 'weights/b.bin']);
  });

  it('round-trips shards, including an exact multiple of the shard size and an empty file', async () => {
    const m = await model({ 'exact.bin': 3072, 'short.bin': 100, 'long.bin': 2500, 'empty.bin': '' });
    const { bundlePath } = await signed(m, { shardSize: 1024 });
    const st = statementOf(await readRaw(bundlePath));
    expect(st.predicate.serialization).toMatchObject({ method: 'shards', shard_size: 1024 });
    expect(st.predicate.resources.map((x) => x.name)).toEqual([
      'exact.bin:0:1024',
      'exact.bin:1024:2048',
      'exact.bin:2048:3072',
      'long.bin:0:1024',
      'long.bin:1024:2048',
      'long.bin:2048:2500',
      'short.bin:0:100',
    ]);
    const r = await verify(m, bundlePath);
    expect(r).toMatchObject({ verified: true, method: 'shards', resources: 7, bytes: 3072 + 100 + 2500 });

    await flipByte(join(m, 'exact.bin'), 3071);
    await refused(verify(m, bundlePath), 'DIGEST_MISMATCH', 'exact.bin:2048:3072');
    await flipByte(join(m, 'exact.bin'), 3071);
    await appendFile(join(m, 'exact.bin'), 'x');
    await refused(verify(m, bundlePath), 'DIGEST_MISMATCH', 'exact.bin:3072:3073', 'file grew');
    await truncate(join(m, 'exact.bin'), 3072);
    await truncate(join(m, 'long.bin'), 2048);
    await refused(verify(m, bundlePath), 'DIGEST_MISMATCH', 'long.bin:2048:2500', 'does not exist');
  });

  it('in shards mode, still catches an empty file made non-empty', async () => {
    const m = await model({ 'w.bin': 2048, 'empty.bin': '' });
    const { bundlePath } = await signed(m, { shardSize: 1024 });
    await writeFile(join(m, 'empty.bin'), 'x');
    await refused(verify(m, bundlePath), 'FILE_EXTRA', 'empty.bin');
  });

  it('round-trips a single-file model and catches a change to it', async () => {
    await writeModel(tmp.path, { 'model.safetensors': 2000, 'sibling.bin': 5 });
    const file = join(tmp.path, 'model.safetensors');
    const { bundlePath, result } = await signed(file);
    expect(result).toMatchObject({ modelName: 'model.safetensors', files: 1, bytes: 2000 });
    const r = await verify(file, bundlePath);
    expect(r).toMatchObject({ verified: true, modelName: 'model.safetensors', files: 1, bytes: 2000, method: 'files' });
    await writeFile(join(tmp.path, 'sibling.bin'), 'changed'); // not part of the model
    expect((await verify(file, bundlePath)).verified).toBe(true);
    await flipByte(file, 1000);
    await refused(verify(file, bundlePath), 'DIGEST_MISMATCH', 'model.safetensors');
  });

  it('ignoreUnsignedFiles tolerates extra files but still catches a modified or missing signed file', async () => {
    const m = await model();
    const { bundlePath } = await signed(m);
    await writeModel(m, { 'README.md': '# notes\n', 'extra/more.txt': 'x' });
    await refused(verify(m, bundlePath), 'FILE_EXTRA', 'README.md');
    const r = await verify(m, bundlePath, { ignoreUnsignedFiles: true });
    expect(r.unsignedFiles).toEqual(['README.md', 'extra/more.txt']);
    expect(r.files).toBe(5);
    await flipByte(join(m, 'weights', 'b.bin'), 0);
    await refused(verify(m, bundlePath, { ignoreUnsignedFiles: true }), 'DIGEST_MISMATCH', 'weights/b.bin');
    await rm(join(m, 'weights', 'b.bin'));
    await refused(verify(m, bundlePath, { ignoreUnsignedFiles: true }), 'FILE_MISSING', 'weights/b.bin');
  });

  it('verify-time ignore paths tolerate exactly the named extra files', async () => {
    const m = await model();
    const { bundlePath } = await signed(m);
    await writeModel(m, { 'logs/run.txt': 'x', 'other.txt': 'y' });
    await refused(verify(m, bundlePath, { ignorePaths: ['logs'] }), 'FILE_EXTRA', 'other.txt');
    expect((await verify(m, bundlePath, { ignorePaths: ['logs', 'other.txt'] })).verified).toBe(true);
  });

  it('keeps the bundle inside the model out of the signature, and ignores git paths added later', async () => {
    const m = await model();
    const bundlePath = join(m, 'model.sig');
    await signed(m, { bundlePath });
    await writeModel(m, { '.git/HEAD': 'ref\n', '.gitignore': '*.tmp\n' });
    expect((await verify(m, bundlePath)).files).toBe(5);
  });

  it('round-trips a model signed with its git paths (ignoreGitPaths: false), and catches a change to them', async () => {
    const m = await model({ ...BASIC, '.gitattributes': '*.bin filter=lfs\n', '.github/CODEOWNERS': '* @ml\n' });
    const { bundlePath } = await signed(m, { ignoreGitPaths: false });
    const st = statementOf(await readRaw(bundlePath));
    expect(st.predicate.resources.map((r) => r.name)).toContain('.gitattributes');
    expect((await verify(m, bundlePath)).files).toBe(7);
    await writeFile(join(m, '.gitattributes'), '*.bin -filter\n');
    await refused(verify(m, bundlePath), 'DIGEST_MISMATCH', '.gitattributes');
    await rm(join(m, '.github'), { recursive: true });
    await refused(verify(m, bundlePath), 'FILE_MISSING', '.github/CODEOWNERS');
  });

  it('keeps a bundle inside the model out of the signature even when its name starts with ".."', async () => {
    const m = await model();
    const bundlePath = join(m, '..model.sig');
    await signed(m, { bundlePath });
    const st = statementOf(await readRaw(bundlePath));
    expect(st.predicate.resources.map((r) => r.name)).not.toContain('..model.sig');
    expect((await verify(m, bundlePath)).verified).toBe(true);
  });

  it('honours ignore paths recorded at signing time', async () => {
    const m = await model({ ...BASIC, 'cache/state.bin': 10 });
    const { bundlePath } = await signed(m, { ignorePaths: ['cache'] });
    await writeFile(join(m, 'cache', 'state.bin'), 'changed');
    await writeFile(join(m, 'cache', 'new.bin'), 'new');
    expect((await verify(m, bundlePath)).verified).toBe(true);
    await flipByte(join(m, 'weights', 'a.bin'), 10);
    await refused(verify(m, bundlePath), 'DIGEST_MISMATCH', 'weights/a.bin');
  });

  it('round-trips a P-384 key and a symlink inside the model with allowSymlinks', async () => {
    const m = await model();
    await symlink('weights/a.bin', join(m, 'alias.bin'));
    const { bundlePath } = await signed(m, { key: P384, allowSymlinks: true });
    const r = await verify(m, bundlePath, { trust: { kind: 'publicKey', key: P384.pub, source: 'p384' } });
    expect(r).toMatchObject({ files: 6, signer: { keyHint: P384.hint } });
    await refused(verify(m, bundlePath), 'KEY_MISMATCH');
  });
});
