/**
 * The verified-signature cache answers "verified before" only for the exact
 * (key, digest, signature) that verified, survives a reopen, and never turns
 * a damaged file into a wrong answer: it is ignored and rewritten.
 */
import { createHash, generateKeyPairSync } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { tempDir } from '../test-support/fs.js';
import { signDigest } from './blob.js';
import { VerifiedSignatureCache } from './verified-cache.js';

const a = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const b = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const digest = createHash('sha256').update('archive').digest();
const sig = signDigest(digest, a.privateKey);

let work: Awaited<ReturnType<typeof tempDir>>;
let path: string;
beforeEach(async () => {
  work = await tempDir('aegis-vsig-');
  path = join(work.path, 'cache', 'verified-signatures');
});
afterEach(async () => work.cleanup());

describe('VerifiedSignatureCache', () => {
  it('remembers a verified signature across a reopen, under that key only', async () => {
    const c = await VerifiedSignatureCache.open(path);
    expect(c.firstKey([a.publicKey], digest, sig)).toBe(-1);
    c.add(a.publicKey, digest, sig);
    await c.save();
    expect((await stat(path)).mode & 0o777).toBe(0o600);

    const again = await VerifiedSignatureCache.open(path);
    expect(again.size).toBe(1);
    expect(again.firstKey([a.publicKey], digest, sig)).toBe(0);
    expect(again.firstKey([b.publicKey, a.publicKey], digest, sig)).toBe(1); // the key that verified, at its place in the anchor
    expect(again.firstKey([a.privateKey], digest, sig)).toBe(0); // a private key stands for its public key, as in verification
    expect(again.firstKey([b.publicKey], digest, sig)).toBe(-1);
    const otherDigest = Buffer.from(digest);
    otherDigest[0] = otherDigest[0]! ^ 1;
    expect(again.firstKey([a.publicKey], otherDigest, sig)).toBe(-1);
    const otherSig = Buffer.from(sig);
    otherSig[otherSig.length - 1] = otherSig[otherSig.length - 1]! ^ 1;
    expect(again.firstKey([a.publicKey], digest, otherSig)).toBe(-1);
    expect(again.firstKey([a.publicKey], digest, Buffer.concat([sig, Buffer.from([0])]))).toBe(-1);
  });

  it('ignores a damaged file (the check then verifies everything) and replaces it on save', async () => {
    const c = await VerifiedSignatureCache.open(path);
    c.add(a.publicKey, digest, sig);
    await c.save();
    const good = await readFile(path);
    for (const damaged of [good.subarray(0, good.length - 1), Buffer.concat([Buffer.from('XXXX'), good.subarray(4)]), Buffer.alloc(0)]) {
      await writeFile(path, damaged);
      const d = await VerifiedSignatureCache.open(path);
      expect(d.firstKey([a.publicKey], digest, sig)).toBe(-1);
      d.add(a.publicKey, digest, sig);
      await d.save();
      expect((await VerifiedSignatureCache.open(path)).firstKey([a.publicKey], digest, sig)).toBe(0);
    }
  });

  it('keeps earlier entries when new ones are added, and writes nothing when nothing was added', async () => {
    const c = await VerifiedSignatureCache.open(path);
    c.add(a.publicKey, digest, sig);
    await c.save();
    const d2 = createHash('sha256').update('other').digest();
    const s2 = signDigest(d2, b.privateKey);
    const c2 = await VerifiedSignatureCache.open(path);
    c2.add(b.publicKey, d2, s2);
    await c2.save();
    const c3 = await VerifiedSignatureCache.open(path);
    expect(c3.size).toBe(2);
    expect(c3.firstKey([a.publicKey], digest, sig)).toBe(0);
    expect(c3.firstKey([b.publicKey], d2, s2)).toBe(0);
    const before = (await stat(path)).mtimeMs;
    await new Promise((r) => setTimeout(r, 20));
    c3.firstKey([a.publicKey], digest, sig);
    await c3.save();
    expect((await stat(path)).mtimeMs).toBe(before);
  });

  it('does not fail when the folder cannot be written (it is only a cache)', async () => {
    await writeFile(join(work.path, 'cache'), 'a file where the folder should be');
    const c = await VerifiedSignatureCache.open(path);
    c.add(a.publicKey, digest, sig);
    await expect(c.save()).resolves.toBeUndefined();
  });
});
