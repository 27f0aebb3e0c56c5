import { existsSync } from 'node:fs';
import { appendFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPair, parsePrivateKey, parsePublicKey } from '../signing/keys.js';
import { packageModel } from '../signing/package.js';
import { PemKeySigner } from '../signing/pem/index.js';
import type { TrustAnchor } from '../signing/trust.js';
import { signDigest } from '../signing/blob.js';
import { FileStore } from '../store/file/index.js';
import type { ArtifactStore } from '../store/types.js';
import { tempDir } from '../test-support/fs.js';
import { writeModel } from '../test-support/models.js';
import { fetchAndVerifyModel } from './fetch.js';
import { createHash } from 'node:crypto';

const manifest = (name: string, version: string) => `apiVersion: aegis.dev/v1
kind: Model
name: ${name}
version: "${version}"
framework: other
runtime: { name: test }
inputs: [{ name: x, dtype: float32, shape: [-1, 4] }]
outputs: [{ name: y, dtype: float32, shape: [-1, 2] }]
`;

let work: Awaited<ReturnType<typeof tempDir>>;
let n = 0;
const pair = generateKeyPair('p256');
const signer = new PemKeySigner(parsePrivateKey(pair.privateKeyPem, 'test'));
const trust: TrustAnchor = { kind: 'publicKey', key: parsePublicKey(pair.publicKeyPem, 'test'), source: 'test key' };
const other = generateKeyPair('p256');

beforeAll(async () => {
  work = await tempDir('aegis-fetch-');
});
afterAll(async () => work.cleanup());

/** Packages a model into a fresh folder; returns the archive path (signature beside it). */
async function packaged(name = 'demo', version = '1.0', extra: Record<string, string | number> = {}) {
  const base = join(work.path, `p${n++}`);
  const model = await writeModel(join(base, 'model'), { 'aegis.yaml': manifest(name, version), 'weights.bin': 50_000, 'cfg/a.json': '{}', ...extra });
  const r = await packageModel({ modelDir: model, signer, outDir: join(base, 'out') });
  return { archive: r.archive, sha256: r.sha256, cache: join(base, 'cache') };
}

/** A store wrapper that counts reads of each key. */
function counting(store: ArtifactStore) {
  const gets = new Map<string, number>();
  const wrapped: ArtifactStore = Object.create(store) as ArtifactStore;
  wrapped.get = async (key: string) => {
    gets.set(key, (gets.get(key) ?? 0) + 1);
    return store.get(key);
  };
  wrapped.localPath = undefined;
  return { store: wrapped, gets };
}

describe('fetchAndVerifyModel', () => {
  it('verifies and unpacks into <cache>/<sha256>/, with the manifest and both signers', async () => {
    const p = await packaged();
    const r = await fetchAndVerifyModel({ uri: p.archive, trust, cacheDir: p.cache, expect: { name: 'demo', version: '1.0' } });
    expect(r.dir).toBe(join(p.cache, p.sha256));
    expect(r.fromCache).toBe(false);
    expect(r.manifest).toMatchObject({ name: 'demo', version: '1.0' });
    expect(r.archiveSigner.keyHint).toBe(signer.keyHint);
    expect(r.verification.signer.keyHint).toBe(signer.keyHint);
    expect((await readdir(r.dir)).sort()).toEqual(['aegis.yaml', 'cfg', 'model.sig', 'weights.bin']);
    // nothing left behind in the work area
    expect(await readdir(join(p.cache, '.tmp'))).toEqual([]);
  });

  it('serves a second fetch from the cache after re-verifying it', async () => {
    const p = await packaged();
    await fetchAndVerifyModel({ uri: p.archive, trust, cacheDir: p.cache });
    const again = await fetchAndVerifyModel({ uri: p.archive, trust, cacheDir: p.cache });
    expect(again.fromCache).toBe(true);
    expect(again.archiveSha256).toBe(p.sha256);
  });

  it('notices a tampered cache entry and fetches the model again', async () => {
    const p = await packaged();
    const first = await fetchAndVerifyModel({ uri: p.archive, trust, cacheDir: p.cache });
    await appendFile(join(first.dir, 'weights.bin'), 'tampered');
    const again = await fetchAndVerifyModel({ uri: p.archive, trust, cacheDir: p.cache });
    expect(again.fromCache).toBe(false);
    const weights = await readFile(join(again.dir, 'weights.bin'));
    expect(weights.subarray(-8).toString()).not.toBe('tampered');
  });

  it('refuses an archive whose bytes changed, before extracting anything', async () => {
    const p = await packaged();
    await appendFile(p.archive, Buffer.from([0]));
    await expect(fetchAndVerifyModel({ uri: p.archive, trust, cacheDir: p.cache })).rejects.toMatchObject({ code: 'ARCHIVE_SIGNATURE_INVALID' });
    expect(existsSync(join(p.cache, p.sha256))).toBe(false);
    expect(await readdir(join(p.cache, '.tmp'))).toEqual([]);
  });

  it('refuses an archive signed by another key', async () => {
    const p = await packaged();
    const otherTrust: TrustAnchor = { kind: 'publicKey', key: parsePublicKey(other.publicKeyPem, 'other'), source: 'other key' };
    await expect(fetchAndVerifyModel({ uri: p.archive, trust: otherTrust, cacheDir: p.cache })).rejects.toMatchObject({ code: 'ARCHIVE_SIGNATURE_INVALID' });
  });

  it('refuses an archive with no signature', async () => {
    const p = await packaged();
    const { rm } = await import('node:fs/promises');
    await rm(`${p.archive}.sig`);
    await expect(fetchAndVerifyModel({ uri: p.archive, trust, cacheDir: p.cache })).rejects.toMatchObject({ code: 'ARCHIVE_SIGNATURE_INVALID', message: expect.stringContaining('no signature') });
  });

  it('refuses a validly signed archive whose files do not match the OMS bundle inside', async () => {
    // A hostile archive: the trusted key signs the archive bytes, but a file was swapped after the OMS bundle was made.
    const p = await packaged();
    const { execFileSync } = await import('node:child_process');
    const dir = join(work.path, `swap${n++}`);
    await mkdir(dir);
    execFileSync('tar', ['xzf', p.archive, '-C', dir]);
    await writeFile(join(dir, 'weights.bin'), 'swapped');
    const tarball = execFileSync('tar', ['cf', '-', '-C', dir, '.']);
    const gz = gzipSync(tarball);
    await writeFile(p.archive, gz);
    await writeFile(`${p.archive}.sig`, signDigest(createHash('sha256').update(gz).digest(), parsePrivateKey(pair.privateKeyPem, 't')).toString('base64'));
    await expect(fetchAndVerifyModel({ uri: p.archive, trust, cacheDir: p.cache })).rejects.toMatchObject({ code: 'DIGEST_MISMATCH' });
    expect((await readdir(p.cache)).filter((e) => !e.startsWith('.'))).toEqual([]);
  });

  it('refuses a different model or version than the one asked for (swap / downgrade)', async () => {
    const p = await packaged('demo', '1.0');
    await expect(fetchAndVerifyModel({ uri: p.archive, trust, cacheDir: p.cache, expect: { name: 'demo', version: '2.0' } })).rejects.toMatchObject({
      code: 'MODEL_IDENTITY_MISMATCH',
      message: expect.stringContaining('demo@1.0'),
    });
    await expect(fetchAndVerifyModel({ uri: p.archive, trust, cacheDir: p.cache, expect: { name: 'other' } })).rejects.toMatchObject({ code: 'MODEL_IDENTITY_MISMATCH' });
    // ...also when it is already in the cache
    await fetchAndVerifyModel({ uri: p.archive, trust, cacheDir: p.cache });
    await expect(fetchAndVerifyModel({ uri: p.archive, trust, cacheDir: p.cache, expect: { version: '0.9' } })).rejects.toMatchObject({ code: 'MODEL_IDENTITY_MISMATCH' });
  });

  it('refuses a cached model whose key was revoked since', async () => {
    const p = await packaged();
    const policyDir = join(work.path, `pol${n++}`);
    await mkdir(policyDir);
    await writeFile(join(policyDir, 'k.pub.pem'), pair.publicKeyPem);
    const { loadTrustPolicy } = await import('../signing/trust.js');
    const write = (revoked: boolean) =>
      writeFile(join(policyDir, 'trust.yaml'), `apiVersion: aegis.dev/v1\nkind: TrustPolicy\nkeys:\n  - id: k1\n    publicKey: k.pub.pem\n    revoked: ${revoked}\n`);
    await write(false);
    await fetchAndVerifyModel({ uri: p.archive, trust: { kind: 'policy', policy: await loadTrustPolicy(join(policyDir, 'trust.yaml')) }, cacheDir: p.cache });
    await write(true);
    await expect(
      fetchAndVerifyModel({ uri: p.archive, trust: { kind: 'policy', policy: await loadTrustPolicy(join(policyDir, 'trust.yaml')) }, cacheDir: p.cache }),
    ).rejects.toMatchObject({ code: 'KEY_REVOKED' });
  });

  it('downloads once for concurrent fetches of the same model', async () => {
    const p = await packaged();
    const { store, gets } = counting(new FileStore(join(p.archive, '..')));
    const open = () => ({ store, key: 'model.tar.gz' });
    const results = await Promise.all(Array.from({ length: 5 }, () => fetchAndVerifyModel({ uri: p.archive, trust, cacheDir: p.cache, open })));
    expect(new Set(results.map((r) => r.dir)).size).toBe(1);
    expect(gets.get('model.tar.gz')).toBe(1);
  });

  it('streams from a remote-style store through a private copy, then cleans up', async () => {
    const p = await packaged();
    const { store, gets } = counting(new FileStore(join(p.archive, '..')));
    const r = await fetchAndVerifyModel({ uri: p.archive, trust, cacheDir: p.cache, open: () => ({ store, key: 'model.tar.gz' }) });
    expect(gets.get('model.tar.gz')).toBe(1);
    expect(gets.get('model.tar.gz.sig')).toBe(1);
    expect(existsSync(join(r.dir, 'weights.bin'))).toBe(true);
    expect(await readdir(join(p.cache, '.tmp'))).toEqual([]);
  });

  it('reports a missing archive', async () => {
    await expect(fetchAndVerifyModel({ uri: join(work.path, 'nope', 'model.tar.gz'), trust, cacheDir: join(work.path, 'c') })).rejects.toMatchObject({ code: 'STORE_NOT_FOUND' });
  });
});
