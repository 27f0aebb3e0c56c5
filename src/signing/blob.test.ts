/**
 * Detached blob signatures (model.tar.gz.sig): the digest verifier must
 * accept exactly what @noble/curves' own `verify` accepts with the options
 * Aegis has always used (prehash off, DER, high-S allowed), on every curve,
 * for valid, tampered, malformed, wrong-key and wrong-curve inputs; the
 * worker-thread pool must give the same answers as the calling thread, even
 * when a worker dies; and the trust decisions (revoked, expired, untrusted,
 * CA chain) stay what verifyBlobSignature decided before.
 */
import { createHash, createPublicKey, ECDH, generateKeyPairSync, randomBytes, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { p256, p384, p521 } from '@noble/curves/nist.js';
import { describe, expect, it } from 'vitest';
import { isAegisError } from '../errors.js';
import { BlobVerifierPool } from './blob-pool.js';
import { blobKeys, blobSigner, signDigest, verifyBlobSignature, verifyDigest } from './blob.js';
import { batchVerifier } from './digest-verify.js';
import { keyHint } from './keys.js';
import type { TrustAnchor, TrustedKey } from './trust.js';

type Curve = typeof p256;
const CURVES: { name: string; node: string; curve: Curve }[] = [
  { name: 'P-256', node: 'prime256v1', curve: p256 },
  { name: 'P-384', node: 'secp384r1', curve: p384 },
  { name: 'P-521', node: 'secp521r1', curve: p521 },
];

/** The verifier as it was before the per-key cache: noble's verify with a fresh point each call (the oracle). */
function reference(digest: Buffer, signature: Buffer, key: KeyObject): boolean {
  try {
    const curve = CURVES.find((c) => key.asymmetricKeyType === 'ec' && c.node === key.asymmetricKeyDetails?.namedCurve)?.curve;
    if (!curve) return false;
    const jwk = key.export({ format: 'jwk' });
    const point = Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]);
    return curve.verify(new Uint8Array(signature), new Uint8Array(digest), new Uint8Array(point), { prehash: false, format: 'der', lowS: false });
  } catch {
    return false;
  }
}

function keyPair(node: string): { privateKey: KeyObject; publicKey: KeyObject } {
  return generateKeyPairSync('ec', { namedCurve: node });
}

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest();

/** Minimal DER INTEGER of a non-negative value. */
function derInt(v: bigint): Buffer {
  let hex = v.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  let b = Buffer.from(hex, 'hex');
  if (b[0]! & 0x80) b = Buffer.concat([Buffer.from([0]), b]);
  return Buffer.concat([Buffer.from([0x02, b.length]), b]);
}

function derLength(n: number): Buffer {
  return n < 0x80 ? Buffer.from([n]) : Buffer.from([0x81, n]);
}

function derSig(r: bigint, s: bigint): Buffer {
  const body = Buffer.concat([derInt(r), derInt(s)]);
  return Buffer.concat([Buffer.from([0x30]), derLength(body.length), body]);
}

/** The same public key, its SPKI re-encoded with the compressed point (as `openssl ec -conv_form compressed` writes it). */
function compressedSpki(publicKey: KeyObject, curve: string): KeyObject {
  const der = publicKey.export({ type: 'spki', format: 'der' });
  const algStart = der[1]! & 0x80 ? 2 + (der[1]! & 0x7f) : 2;
  const alg = der.subarray(algStart, algStart + 2 + der[algStart + 1]!);
  const jwk = publicKey.export({ format: 'jwk' });
  const xy = Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]);
  const point = ECDH.convertKey(xy, curve, undefined, undefined, 'compressed') as Buffer;
  const bitString = Buffer.concat([Buffer.from([0x03]), derLength(point.length + 1), Buffer.from([0]), point]);
  const body = Buffer.concat([alg, bitString]);
  return createPublicKey({ key: Buffer.concat([Buffer.from([0x30]), derLength(body.length), body]), format: 'der', type: 'spki' });
}

function rs(curve: Curve, sig: Buffer): { r: bigint; s: bigint } {
  const { r, s } = curve.Signature.fromBytes(new Uint8Array(sig), 'der');
  return { r, s };
}

/** Both verifiers agree, and on `expected`. */
function expectBoth(digest: Buffer, sig: Buffer, key: KeyObject, expected: boolean, what: string): void {
  expect({ what, reference: reference(digest, sig, key), now: verifyDigest(digest, sig, key) }).toEqual({ what, reference: expected, now: expected });
}

describe('verifyDigest accepts exactly what noble verify accepts', () => {
  for (const { name, node, curve } of CURVES) {
    it(`${name}: valid (OpenSSL and RFC 6979 signers), high-S, tampered, wrong digest, wrong key`, () => {
      const { privateKey, publicKey } = keyPair(node);
      const other = keyPair(node).publicKey;
      const n = curve.Point.Fn.ORDER;
      for (let i = 0; i < 4; i++) {
        const content = randomBytes(100);
        const digest = sha256(content);
        for (const [signer, sig] of [
          ['openssl', cryptoSign('sha256', content, privateKey)],
          ['rfc6979', signDigest(digest, privateKey)],
        ] as const) {
          expectBoth(digest, sig, publicKey, true, `${signer} signature`);
          const { r, s } = rs(curve, sig);
          expectBoth(digest, derSig(r, n - s), publicKey, true, `${signer} signature with s replaced by n - s (high-S is accepted, as by cosign)`);
          expectBoth(digest, sig, other, false, 'another key of the same curve');
          const flipped = Buffer.from(digest);
          flipped[i] = flipped[i]! ^ 1;
          expectBoth(flipped, sig, publicKey, false, 'a digest with one bit changed');
          for (let j = 0; j < 4; j++) {
            const bad = Buffer.from(sig);
            const at = Math.floor(Math.random() * bad.length);
            bad[at] = bad[at]! ^ (1 << Math.floor(Math.random() * 8));
            expect(verifyDigest(digest, bad, publicKey), `bit flip at byte ${at} of ${sig.toString('hex')}`).toBe(reference(digest, bad, publicKey));
          }
        }
      }
    });
  }

  it('refuses malformed DER the same way (truncated, trailing bytes, BER lengths, non-minimal and negative integers, P1363)', () => {
    const { privateKey, publicKey } = keyPair('prime256v1');
    const n = p256.Point.Fn.ORDER;
    let digest: Buffer;
    let sig: Buffer;
    // A signature whose r has its top bit set, so it carries a 0x00 pad byte in DER.
    do {
      const content = randomBytes(32);
      digest = sha256(content);
      sig = cryptoSign('sha256', content, privateKey);
    } while (!(rs(p256, sig).r >> 255n));
    const { r, s } = rs(p256, sig);
    const rBytes = Buffer.from(r.toString(16).padStart(64, '0'), 'hex');
    const sInt = derInt(s);
    const seq = (body: Buffer, len = derLength(body.length)) => Buffer.concat([Buffer.from([0x30]), len, body]);
    const cases: [string, Buffer][] = [
      ['empty', Buffer.alloc(0)],
      ['one byte', Buffer.from([0x30])],
      ['truncated by one byte', sig.subarray(0, sig.length - 1)],
      ['a trailing zero byte', Buffer.concat([sig, Buffer.from([0])])],
      ['SET instead of SEQUENCE', Buffer.concat([Buffer.from([0x31]), sig.subarray(1)])],
      ['BER long-form length for a short body', seq(sig.subarray(2), Buffer.from([0x81, sig.length - 2]))],
      ['r without its 0x00 pad (negative)', seq(Buffer.concat([Buffer.from([0x02, 32]), rBytes, sInt]))],
      ['r with an extra 0x00 (non-minimal)', seq(Buffer.concat([Buffer.from([0x02, 34, 0, 0]), rBytes, sInt]))],
      ['r = 0', derSig(0n, s)],
      ['s = 0', derSig(r, 0n)],
      ['r = n', derSig(n, s)],
      ['s = n', derSig(r, n)],
      ['r + n', derSig(r + n, s)],
      ['raw r||s (IEEE P1363), not DER', Buffer.from(p256.Signature.fromBytes(new Uint8Array(sig), 'der').toBytes('compact'))],
      ['random bytes', randomBytes(71)],
      ['a megabyte', Buffer.alloc(1 << 20, 0x30)],
    ];
    expectBoth(digest, sig, publicKey, true, 'the untouched signature (control)');
    for (const [what, bad] of cases) expectBoth(digest, bad, publicKey, false, what);
  });

  it('verifies digests of other lengths as noble does (leftmost bits of a longer one, none over 8 KiB)', () => {
    for (const { node, curve } of CURVES) {
      const { privateKey, publicKey } = keyPair(node);
      for (const d of [Buffer.alloc(0), randomBytes(20), randomBytes(48), randomBytes(64), randomBytes(9000)]) {
        let sig: Buffer;
        try {
          sig = Buffer.from(curve.sign(new Uint8Array(d), new Uint8Array(Buffer.from(privateKey.export({ format: 'jwk' }).d!, 'base64url')), { prehash: false, format: 'der' }));
        } catch {
          sig = cryptoSign('sha256', d, privateKey); // noble refuses to sign it: any signature will do
        }
        expect(verifyDigest(d, sig, publicKey), `${node}, ${d.length}-byte digest`).toBe(reference(d, sig, publicKey));
      }
    }
  });

  it('decides the cases OpenSSL cannot be given (aG = 0, Q, -Q) as noble does', () => {
    // digest-verify.ts hands OpenSSL the key Q + aG with a = (e - e')/r; these
    // signatures are crafted (with the private key) so that a is 0, d or -d.
    const fixedE = BigInt(`0x${sha256('').toString('hex')}`);
    for (const { node, curve } of CURVES) {
      const { privateKey, publicKey } = keyPair(node);
      const { Point } = curve;
      const Fn = Point.Fn;
      const d = BigInt(`0x${Buffer.from(privateKey.export({ format: 'jwk' }).d!, 'base64url').toString('hex')}`);
      const craft = (a: bigint) => {
        const k = Fn.create(BigInt(`0x${randomBytes(Fn.BYTES).toString('hex')}`)) || 1n;
        const r = Fn.create(Point.BASE.multiply(k).toAffine().x);
        const e = Fn.create(fixedE + a * r);
        const s = Fn.div(Fn.add(e, Fn.mul(r, d)), k);
        const shift = BigInt(Fn.BYTES * 8 - Fn.BITS); // P-521: the digest's leftmost 521 bits are e
        return { digest: Buffer.from((e << shift).toString(16).padStart(Fn.BYTES * 2, '0'), 'hex'), sig: derSig(r, s) };
      };
      for (const [what, a] of [['a = d (aG = Q)', d], ['a = -d (aG = -Q)', Fn.neg(d)], ['a = 1 (control)', 1n]] as const) {
        const { digest, sig } = craft(a);
        expectBoth(digest, sig, publicKey, true, `${node}: ${what}`);
        const { r, s } = rs(curve, sig);
        expectBoth(digest, derSig(r, Fn.add(s, 1n)), publicKey, false, `${node}: ${what}, s + 1`);
      }
      const empty = sha256('');
      expectBoth(empty, signDigest(empty, privateKey), publicKey, true, `${node}: a = 0 (the digest is e')`);
      expectBoth(empty, signDigest(sha256('x'), privateKey), publicKey, false, `${node}: a = 0, another digest's signature`);
    }
  });

  it('verifies under a public key stored with a compressed point, on every curve', () => {
    for (const { node } of CURVES) {
      const { privateKey, publicKey } = keyPair(node);
      const compressed = compressedSpki(publicKey, node);
      expect(compressed.export({ type: 'spki', format: 'der' }).length, `${node}: the test key really is compressed`).toBeLessThan(publicKey.export({ type: 'spki', format: 'der' }).length);
      const content = randomBytes(64);
      const sig = cryptoSign('sha256', content, privateKey);
      expectBoth(sha256(content), sig, compressed, true, `${node}: compressed public key`);
      expectBoth(sha256('other'), sig, compressed, false, `${node}: compressed public key, another digest`);
      expectBoth(sha256(content), sig, keyPair(node).publicKey, false, `${node}: another key (control)`);
    }
  });

  it('gives in a batch the answers it gives one at a time', () => {
    for (const { node } of CURVES) {
      const { privateKey, publicKey } = keyPair(node);
      const items = Array.from({ length: 40 }, (_, i) => {
        const digest = sha256(`archive ${i}`);
        const signature = signDigest(i % 4 === 1 ? sha256('other') : digest, privateKey);
        if (i % 4 === 2) signature[signature.length - 1] = signature[signature.length - 1]! ^ 1;
        return { digest, signature: i % 4 === 3 ? randomBytes(70) : signature };
      });
      const one = items.map((it) => verifyDigest(it.digest, it.signature, publicKey));
      expect(batchVerifier(publicKey)(items)).toEqual(one);
      expect(one.filter(Boolean).length).toBe(10);
    }
  });

  it('refuses a key of the wrong curve or type without throwing', () => {
    const { privateKey, publicKey } = keyPair('prime256v1');
    const content = randomBytes(64);
    const digest = sha256(content);
    const sig = cryptoSign('sha256', content, privateKey);
    const wrong: [string, KeyObject][] = [
      ['P-384 key', keyPair('secp384r1').publicKey],
      ['secp256k1 key (unsupported curve)', keyPair('secp256k1').publicKey],
      ['Ed25519 key', generateKeyPairSync('ed25519').publicKey],
      ['RSA key', generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey],
    ];
    for (const [what, key] of wrong) expectBoth(digest, sig, key, false, what);
    expectBoth(digest, sig, publicKey, true, 'the right key (control)');
    expectBoth(digest, sig, privateKey, true, 'the right private key, as before');
  });
});

function policyKey(id: string, key: KeyObject, extra: Partial<TrustedKey> = {}): TrustedKey {
  return { id, key, hint: keyHint(key), revoked: false, ...extra };
}

function policy(...keys: TrustedKey[]): TrustAnchor {
  return { kind: 'policy', policy: { path: 'TRUST.yaml', keys, authorities: [] } };
}

function codeOf(f: () => unknown): string {
  try {
    f();
    return 'no error';
  } catch (err) {
    return isAegisError(err) ? err.code : `not an AegisError: ${(err as Error).message}`;
  }
}

describe('verifyBlobSignature and blobSigner', () => {
  const now = new Date('2026-06-01T00:00:00Z');
  const a = keyPair('prime256v1');
  const b = keyPair('secp384r1');
  const digest = sha256('archive');
  const byA = signDigest(digest, a.privateKey);
  const byB = signDigest(digest, b.privateKey);

  it('names the key that signed, tries every key of a policy, and refuses what none signed', () => {
    expect(verifyBlobSignature(digest, byA, { kind: 'publicKey', key: a.publicKey, source: 'a.pem' }, now, 'x')).toEqual({ keyHint: keyHint(a.publicKey) });
    expect(codeOf(() => verifyBlobSignature(digest, byB, { kind: 'publicKey', key: a.publicKey, source: 'a.pem' }, now, 'x'))).toBe('ARCHIVE_SIGNATURE_INVALID');
    const both = policy(policyKey('a', a.publicKey), policyKey('b', b.publicKey));
    expect(verifyBlobSignature(digest, byB, both, now, 'x')).toEqual({ keyHint: keyHint(b.publicKey), trustedId: 'b' });
    expect(codeOf(() => verifyBlobSignature(sha256('other'), byB, both, now, 'x'))).toBe('ARCHIVE_SIGNATURE_INVALID');
  });

  it('refuses a revoked, expired or not-yet-valid signer, and a CA chain', () => {
    expect(codeOf(() => verifyBlobSignature(digest, byA, policy(policyKey('a', a.publicKey, { revoked: true })), now, 'x'))).toBe('KEY_REVOKED');
    // Revoked under another id with the same key material: still revoked.
    expect(codeOf(() => verifyBlobSignature(digest, byA, policy(policyKey('a', a.publicKey), policyKey('a-old', a.publicKey, { revoked: true })), now, 'x'))).toBe('KEY_REVOKED');
    expect(codeOf(() => verifyBlobSignature(digest, byA, policy(policyKey('a', a.publicKey, { notAfter: new Date('2026-01-01T00:00:00Z') })), now, 'x'))).toBe('KEY_EXPIRED');
    expect(codeOf(() => verifyBlobSignature(digest, byA, policy(policyKey('a', a.publicKey, { notBefore: new Date('2027-01-01T00:00:00Z') })), now, 'x'))).toBe('KEY_NOT_YET_VALID');
    const ca: TrustAnchor = { kind: 'certificates', roots: [], source: 'ca.pem' };
    expect(codeOf(() => verifyBlobSignature(digest, byA, ca, now, 'x'))).toBe('BUNDLE_METHOD_MISMATCH');
    expect(codeOf(() => blobSigner(ca, 0, now, 'x'))).toBe('BUNDLE_METHOD_MISMATCH');
  });
});

describe('BlobVerifierPool', () => {
  const a = keyPair('prime256v1');
  const b = keyPair('secp384r1');
  const trust = policy(policyKey('a', a.publicKey), policyKey('b', b.publicKey));
  /** 300 signatures: by a, by b, by neither, tampered, and not DER. */
  function items(): { digest: Buffer; signature: Buffer }[] {
    const stranger = keyPair('prime256v1').privateKey;
    return Array.from({ length: 300 }, (_, i) => {
      const digest = sha256(`archive ${i}`);
      const signature = [
        () => signDigest(digest, a.privateKey),
        () => signDigest(digest, b.privateKey),
        () => signDigest(digest, stranger),
        () => {
          const s = signDigest(digest, a.privateKey);
          s[s.length - 1] = s[s.length - 1]! ^ 1;
          return s;
        },
        () => randomBytes(70),
      ][i % 5]!();
      return { digest, signature };
    });
  }
  const expected = (list: { digest: Buffer; signature: Buffer }[]) => list.map((it) => blobKeys(trust).findIndex((k) => verifyDigest(it.digest, it.signature, k)));

  it('gives, on worker threads, the key index the calling thread finds', async () => {
    const list = items();
    const pool = new BlobVerifierPool(trust, { threads: 2 });
    try {
      expect(pool.threads).toBe(0); // started by the first signatures
      const got = [...(await pool.matches(list))];
      expect(pool.threads).toBe(2);
      expect(got).toEqual(expected(list));
      expect(got.slice(0, 5)).toEqual([0, 1, -1, -1, -1]);
    } finally {
      await pool.close();
    }
  });

  it('gives the same answers when its workers die (checked on the calling thread instead)', async () => {
    const list = items();
    const pool = new BlobVerifierPool(trust, { threads: 2 });
    try {
      await pool.matches(list.slice(0, 1));
      const workers = (pool as unknown as { workers: { terminate(): Promise<void> }[] }).workers;
      expect(workers.length).toBe(2);
      await workers[0]!.terminate();
      await workers[1]!.terminate();
      expect([...(await pool.matches(list))]).toEqual(expected(list));
      expect(pool.threads).toBe(0);
    } finally {
      await pool.close();
    }
  });

  it('accepts a private key as the anchor, as the calling thread does', async () => {
    const digest = sha256('archive');
    const list = [{ digest, signature: signDigest(digest, a.privateKey) }, { digest, signature: signDigest(digest, b.privateKey) }];
    const pool = new BlobVerifierPool({ kind: 'publicKey', key: a.privateKey, source: 'a.key' }, { threads: 1 });
    try {
      expect([...(await pool.matches(list))]).toEqual([0, -1]);
    } finally {
      await pool.close();
    }
  });

  it('with a CA chain as anchor verifies nothing, so blobSigner refuses each', async () => {
    const pool = new BlobVerifierPool({ kind: 'certificates', roots: [], source: 'ca.pem' }, { threads: 2 });
    try {
      expect(pool.threads).toBe(0);
      expect([...(await pool.matches(items().slice(0, 3)))]).toEqual([-1, -1, -1]);
    } finally {
      await pool.close();
    }
  });
});
