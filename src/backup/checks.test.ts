/**
 * The restore smoke check "every model version's archive is in the store and
 * its signature verifies", on a file store and the embedded database: each
 * way an archive or its signature can be missing or wrong is reported for
 * the right version and reason, in registry order, whether the signatures
 * are verified on worker threads (a registry of 64+ archives) or on the
 * calling thread; rotated and revoked keys of a trust policy are honoured.
 */
import { createHash, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MEMORY, openDb, type Db } from '../db/index.js';
import { signDigest } from '../signing/blob.js';
import { keyHint } from '../signing/keys.js';
import type { TrustAnchor, TrustedKey } from '../signing/trust.js';
import { archiveKey, FileStore } from '../store/index.js';
import { seedRegistry, testKeys } from '../test-support/backup.js';
import { tempDir } from '../test-support/fs.js';
import { checkModelArchives, sameRegistryRows } from './checks.js';

const VERSIONS = 70; // above the 64 archives from which signatures are verified on worker threads
const keys = testKeys();

let work: Awaited<ReturnType<typeof tempDir>>;
let store: FileStore;
let db: Db;

/** fraud@1.0, churn@1.1, fraud@1.2, … as seedRegistry names them. */
const version = (i: number) => ({ name: i % 2 === 0 ? 'fraud' : 'churn', version: `1.${i}` });
const sigKey = (i: number) => `${archiveKey(version(i).name, version(i).version)}.sig`;

async function recordedDigest(i: number): Promise<Buffer> {
  const { name, version: v } = version(i);
  const r = await db.query<{ sha: string }>('SELECT v.archive_sha256 AS sha FROM model_versions v JOIN models m ON m.id = v.model_id WHERE m.name = $1 AND v.version = $2', [name, v]);
  return Buffer.from(r.rows[0]!.sha, 'hex');
}

async function resign(i: number, key: KeyObject): Promise<void> {
  await store.put(sigKey(i), Buffer.from(signDigest(await recordedDigest(i), key).toString('base64')));
}

beforeEach(async () => {
  work = await tempDir('aegis-checks-');
  store = new FileStore(join(work.path, 'artifacts'));
  db = await openDb({ url: MEMORY });
  await seedRegistry(db, store, keys.privateKey, VERSIONS);
});
afterEach(async () => {
  await db.close();
  await work.cleanup();
});

describe('model-archive check', () => {
  it('passes an intact registry, on worker threads and on the calling thread', async () => {
    for (const verifyThreads of [2, 0]) {
      expect(await checkModelArchives(db, { trust: keys.trust, store, verifyThreads })).toEqual({
        name: 'model-archives',
        status: 'passed',
        detail: `${VERSIONS} model versions (${VERSIONS} archives): archive present, signature verified`,
      });
    }
  });

  it('names each missing or bad archive and signature, in registry order, with the same result on any thread count', async () => {
    const stranger = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    await store.delete(archiveKey('fraud', '1.0')); // 0: archive gone
    await store.delete(sigKey(1)); // 1: signature gone
    const tampered = Buffer.from(signDigest(await recordedDigest(2), keys.privateKey));
    tampered[tampered.length - 1] = tampered[tampered.length - 1]! ^ 1;
    await store.put(sigKey(2), Buffer.from(tampered.toString('base64'))); // 2: signature altered
    await store.put(sigKey(3), Buffer.alloc(70 * 1024, 0x41)); // 3: not a signature, and large
    await store.delete(sigKey(4));
    await mkdir(store.localPath(sigKey(4))); // 4: a folder where the signature should be
    await resign(5, stranger); // 5: signed by an untrusted key
    await store.put(sigKey(6), Buffer.from('not a signature!')); // 6: not base64, not DER
    await store.put(sigKey(7), Buffer.from(createHash('sha256').update('x').digest().toString('base64'))); // 7: base64, but no DER
    const expected = [
      /^fraud@1\.0: archive missing: file:\/\/.*\/model-archives\/fraud\/1\.0\/model\.tar\.gz$/,
      /^churn@1\.1: signature missing: file:\/\/.*\/model-archives\/churn\/1\.1\/model\.tar\.gz\.sig$/,
      /^fraud@1\.2: ARCHIVE_SIGNATURE_INVALID: the signature of .*fraud\/1\.2\/model\.tar\.gz does not verify with test key$/,
      /^churn@1\.3: ARCHIVE_SIGNATURE_INVALID: .*churn\/1\.3\/model\.tar\.gz\.sig is larger than 65536 bytes: not a signature$/,
      /^fraud@1\.4: signature missing: /,
      /^churn@1\.5: ARCHIVE_SIGNATURE_INVALID: the signature of .* does not verify with test key$/,
      /^fraud@1\.6: ARCHIVE_SIGNATURE_INVALID: .*fraud\/1\.6\/model\.tar\.gz\.sig is not a signature/,
      /^churn@1\.7: ARCHIVE_SIGNATURE_INVALID: the signature of .* does not verify with test key$/,
    ];
    for (const verifyThreads of [2, 0]) {
      const r = await checkModelArchives(db, { trust: keys.trust, store, verifyThreads, concurrency: 4 });
      expect(r.status).toBe('failed');
      expect(r.detail).toBe(`8 of ${VERSIONS} model versions have a missing or unverifiable archive`);
      expect(r.problems).toHaveLength(expected.length);
      r.problems!.forEach((p, i) => expect(p, `threads ${verifyThreads}`).toMatch(expected[i]!));
    }
  });

  it('with a signature cache, verifies only what it has not seen, and still finds what changed since', async () => {
    const cache = join(work.path, 'cache', 'verified-signatures');
    const first = await checkModelArchives(db, { trust: keys.trust, store, verifyThreads: 2, signatureCache: cache });
    expect(first.detail).toBe(`${VERSIONS} model versions (${VERSIONS} archives): archive present, signature verified`);
    const second = await checkModelArchives(db, { trust: keys.trust, store, verifyThreads: 2, signatureCache: cache });
    expect(second.detail).toBe(`${VERSIONS} model versions (${VERSIONS} archives): archive present, signature verified (${VERSIONS} of them verified by an earlier check: ${cache})`);

    // Changed since: an archive deleted, a signature replaced by another key's, one altered. None is answered by the cache.
    await store.delete(archiveKey('fraud', '1.0'));
    await resign(1, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
    const tampered = Buffer.from(signDigest(await recordedDigest(2), keys.privateKey));
    tampered[tampered.length - 1] = tampered[tampered.length - 1]! ^ 1;
    await store.put(sigKey(2), Buffer.from(tampered.toString('base64')));
    const third = await checkModelArchives(db, { trust: keys.trust, store, verifyThreads: 2, signatureCache: cache });
    expect(third.status).toBe('failed');
    expect(third.problems).toEqual([
      expect.stringMatching(/^fraud@1\.0: archive missing: /),
      expect.stringMatching(/^churn@1\.1: ARCHIVE_SIGNATURE_INVALID: /),
      expect.stringMatching(/^fraud@1\.2: ARCHIVE_SIGNATURE_INVALID: /),
    ]);

    // A registry row whose digest was changed (a tampered backup): the cached signature is over the old digest.
    await db.query("UPDATE model_versions SET archive_sha256 = repeat('ab', 32) WHERE version = '1.4'");
    const fifth = await checkModelArchives(db, { trust: keys.trust, store, verifyThreads: 2, signatureCache: cache });
    expect(fifth.problems).toContainEqual(expect.stringMatching(/^fraud@1\.4: ARCHIVE_SIGNATURE_INVALID: /));
    expect(fifth.detail).toBe(`4 of ${VERSIONS} model versions have a missing or unverifiable archive`);

    // The key replaced in the trust anchor by another one: its cached signatures count for nothing.
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
    const replaced = await checkModelArchives(db, { trust: { kind: 'publicKey', key: other, source: 'other.pem' }, store, verifyThreads: 2, signatureCache: cache });
    expect(replaced.detail).toBe(`${VERSIONS} of ${VERSIONS} model versions have a missing or unverifiable archive`);

    // A key revoked after its signatures were cached: every one of them is refused.
    const oldPublic = keys.trust.kind === 'publicKey' ? keys.trust.key : (undefined as never);
    const revoked: TrustAnchor = { kind: 'policy', policy: { path: 'TRUST.yaml', keys: [{ id: 'old', key: oldPublic, hint: keyHint(oldPublic), revoked: true, reason: 'leaked' }], authorities: [] } };
    const fourth = await checkModelArchives(db, { trust: revoked, store, verifyThreads: 2, signatureCache: cache });
    expect(fourth.detail).toBe(`${VERSIONS} of ${VERSIONS} model versions have a missing or unverifiable archive`);
    expect(fourth.problems!.slice(1, 4)).toEqual([
      expect.stringMatching(/^churn@1\.1: ARCHIVE_SIGNATURE_INVALID: /),
      expect.stringMatching(/^fraud@1\.2: ARCHIVE_SIGNATURE_INVALID: /),
      'churn@1.3: KEY_REVOKED: signing key "old" is revoked: leaked',
    ]);
  });

  it('reports every archive missing when the store folder is gone, listing the first 20', async () => {
    await rm(join(store.root, 'model-archives'), { recursive: true });
    const r = await checkModelArchives(db, { trust: keys.trust, store });
    expect(r.status).toBe('failed');
    expect(r.detail).toBe(`${VERSIONS} of ${VERSIONS} model versions have a missing or unverifiable archive`);
    expect(r.problems).toHaveLength(20); // capped
  });

  describe('with a trust policy', () => {
    const newKey = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const entry = (id: string, key: KeyObject, extra: Partial<TrustedKey> = {}): TrustedKey => ({ id, key, hint: keyHint(key), revoked: false, ...extra });
    const oldPublic = keys.trust.kind === 'publicKey' ? keys.trust.key : (undefined as never);
    const policy = (...k: TrustedKey[]): TrustAnchor => ({ kind: 'policy', policy: { path: 'TRUST.yaml', keys: k, authorities: [] } });

    it('accepts archives signed by any trusted key (rotation), and refuses those of a revoked one', async () => {
      for (let i = 0; i < VERSIONS; i += 3) await resign(i, newKey.privateKey); // a third re-signed with the new key
      const rotated = policy(entry('new', newKey.publicKey), entry('old', oldPublic, { notAfter: new Date('2100-01-01T00:00:00Z') }));
      expect(await checkModelArchives(db, { trust: rotated, store, verifyThreads: 2 })).toMatchObject({ status: 'passed' });

      const revoked = policy(entry('new', newKey.publicKey), entry('old', oldPublic, { revoked: true, reason: 'leaked' }));
      const r = await checkModelArchives(db, { trust: revoked, store, verifyThreads: 2 });
      const signedByOld = Array.from({ length: VERSIONS }, (_, i) => i).filter((i) => i % 3 !== 0);
      expect(r.detail).toBe(`${signedByOld.length} of ${VERSIONS} model versions have a missing or unverifiable archive`);
      expect(r.problems![0]).toBe(`churn@1.1: KEY_REVOKED: signing key "old" is revoked: leaked`);
    });

    it('refuses every archive when the anchor is a CA chain (it checks no blob signature)', async () => {
      const r = await checkModelArchives(db, { trust: { kind: 'certificates', roots: [], source: 'ca.pem' }, store });
      expect(r.status).toBe('failed');
      expect(r.problems![0]).toMatch(/^fraud@1\.0: BUNDLE_METHOD_MISMATCH: /);
    });
  });
});

describe('sameRegistryRows (an early archive check counts only for the rows the restored database holds)', () => {
  const H1 = '1'.repeat(64);
  const H2 = '2'.repeat(64);
  const P = 'f'.repeat(64);
  it('compares field for field: rows whose tab/newline-joined text is the same are still different', () => {
    const checked = [
      { name: 'a', version: 'b', archive_uri: 's3://b/good1', archive_sha256: H1 },
      { name: `p\t${P}\nq`, version: 'r', archive_uri: 's3://b/good2', archive_sha256: H2 },
    ];
    const restored = [
      { name: 'a', version: 'b', archive_uri: `s3://b/good1\t${H1}\np`, archive_sha256: P },
      { name: 'q', version: 'r', archive_uri: 's3://b/good2', archive_sha256: H2 },
    ];
    const joined = (rows: typeof checked) => rows.map((r) => [r.name, r.version, r.archive_uri, r.archive_sha256].join('\t')).join('\n');
    expect(joined(checked)).toBe(joined(restored)); // a digest of this text could not tell them apart
    expect(sameRegistryRows(checked, restored)).toBe(false);
    expect(sameRegistryRows(checked, structuredClone(checked))).toBe(true);
    expect(sameRegistryRows(checked, checked.slice(0, 1))).toBe(false);
    expect(sameRegistryRows([], [])).toBe(true);
  });
});
