// ECDSA verification over a SHA-256 digest, one verifier per public key.
// Self-contained on purpose (node: and @noble/curves imports only): it is also
// loaded by path as a worker thread (blob-pool.ts), both from dist/ (compiled)
// and from src/ under Node's type stripping in tests, so it must not import
// project modules.
import { createECDH, createHash, createPublicKey, hash, verify as opensslVerify, type ECDH, type KeyObject } from 'node:crypto';
import { closeSync, constants as fsConstants, openSync, readSync, statSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { p256, p384, p521 } from '@noble/curves/nist.js';
import { bytesToNumberBE } from '@noble/curves/utils.js';

/**
 * Why this file exists: a blob signature is checked against the digest the
 * registry recorded (or computed while streaming), not against the archive's
 * bytes, and `crypto.verify` (OpenSSL) only verifies messages it hashes
 * itself; Node 24 has no prehashed verify (nodejs/node#62345 proposes
 * `crypto.verifyDigest`). Pure JavaScript (@noble/curves) costs 0.34-1.7 ms
 * per verification, OpenSSL ~0.05 ms, and a restore checks every registered
 * version (100k in the backup bench), so this routes the work through OpenSSL
 * by an exact rewrite of the verification equation (SEC 1 4.1.4):
 *
 *   valid(Q, e, r, s)  iff  r, s in [1, n-1],  R = (e/s)G + (r/s)Q != O,  x(R) = r (mod n)
 *
 * OpenSSL verifies a fixed message m' (e' = SHA-256 of the empty string) under
 * the key Q' = Q + aG with a = (e - e')/r (mod n): its R' = (e'/s)G + (r/s)Q'
 * = (e'/s)G + (r/s)Q + ((e - e')/s)G = R. So OpenSSL's answer for
 * (Q', m', r, s) is exactly the answer for (Q, e, r, s). aG is OpenSSL's
 * fixed-base multiplication (ECDH.setPrivateKey computes the public point);
 * the one point addition Q + aG and the inversions of r (mod n) and of the x
 * difference (mod p) are field arithmetic here, batched (Montgomery's trick:
 * one inversion per batch). Where Q + aG has no affine form (aG = +-Q, which
 * only a signer who knows the private key can arrange) or a = 0 cannot be
 * given to ECDH, the rare case is decided by @noble/curves' equation instead.
 * DER parsing stays noble's (strict: minimal lengths and integers, r and s in
 * [1, n-1]) and OpenSSL gets the re-encoded (r, s), so what is accepted as DER
 * is unchanged. blob.test.ts holds every path to noble's own
 * `verify(sig, digest, point, { prehash: false, format: 'der', lowS: false })`
 * on valid, tampered, high-S, malformed, wrong-key and edge-case inputs, on
 * P-256, P-384 and P-521. Cost on P-256 (2-core dev machine): ~0.1 ms per
 * signature in a batch, 0.15 ms alone, against 0.34 ms (noble with 0.2 s of
 * tables per key) or 0.48 ms (smaller tables) before.
 */
export type DigestVerify = (digest: Uint8Array, signature: Uint8Array) => boolean;

export interface DigestSignature {
  digest: Uint8Array;
  signature: Uint8Array;
}

/** Verifies many signatures under one key: true where the signature is the key's over the digest. */
export type BatchVerify = (items: readonly DigestSignature[]) => boolean[];

type Curve = typeof p256;
type Point = InstanceType<Curve['Point']>;

const CURVES: Record<string, Curve> = { prime256v1: p256, secp384r1: p384, secp521r1: p521 };

/** DoS guard noble applies to the message before converting it to a number. */
const MAX_DIGEST_BYTES = 8192;

/** The message OpenSSL is given; see above. */
const FIXED_MESSAGE = Buffer.alloc(0);

/**
 * The key as PEM: Node parses a PEM string about 18 µs faster than the same
 * SPKI as DER (OpenSSL 3's decoder path for `format: 'der'`; measured 64 vs
 * 82 µs per parse + verify on P-256), and this key is new for every signature.
 */
function pemOf(spki: Buffer): string {
  const b64 = spki.toString('base64');
  let body = '';
  for (let i = 0; i < b64.length; i += 64) body += `${b64.slice(i, i + 64)}\n`;
  return `-----BEGIN PUBLIC KEY-----\n${body}-----END PUBLIC KEY-----\n`;
}
const FIXED_E = bytesToNumberBE(createHash('sha256').update(FIXED_MESSAGE).digest());

const never: BatchVerify = (items) => items.map(() => false);
const cache = new WeakMap<KeyObject, BatchVerify>();

/** The batch verifier for `key` (made once per KeyObject). A key that is not EC on P-256/384/521 verifies nothing. */
export function batchVerifier(key: KeyObject): BatchVerify {
  let v = cache.get(key);
  if (!v) {
    v = makeVerifier(key);
    cache.set(key, v);
  }
  return v;
}

/** One signature at a time (a batch of one). */
export function digestVerifier(key: KeyObject): DigestVerify {
  const batch = batchVerifier(key);
  return (digest, signature) => batch([{ digest, signature }])[0]!;
}

function makeVerifier(key: KeyObject): BatchVerify {
  const name = key.asymmetricKeyType === 'ec' ? (key.asymmetricKeyDetails?.namedCurve ?? '') : '';
  const curve = CURVES[name];
  if (!curve) return never;
  const { Point, Signature } = curve;
  const Fn = Point.Fn;
  const Fp = Point.Fp;
  let Q: Point;
  let spkiPrefix: Buffer;
  try {
    // The point from the JWK (whatever form the key was stored in: a compressed point exports compressed), and
    // the SPKI header for Q' from the key re-imported from that JWK, which exports its point uncompressed.
    const jwk = key.export({ format: 'jwk' });
    const xy = Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x ?? '', 'base64url'), Buffer.from(jwk.y ?? '', 'base64url')]);
    Q = Point.fromBytes(new Uint8Array(xy)); // on the curve
    const spki = createPublicKey({ key: { kty: 'EC', crv: jwk.crv, x: jwk.x, y: jwk.y }, format: 'jwk' }).export({ type: 'spki', format: 'der' });
    if (spki.length <= xy.length || !spki.subarray(spki.length - xy.length).equals(xy)) return never;
    spkiPrefix = Buffer.from(spki.subarray(0, spki.length - xy.length));
  } catch {
    return never;
  }
  if (Q.is0()) return never;
  const { x: qx, y: qy } = Q.toAffine();
  const ecdh: ECDH = createECDH(name);
  const fixedE = Fn.create(FIXED_E);
  const toBytes = (v: bigint, len: number) => Buffer.from(v.toString(16).padStart(len * 2, '0'), 'hex');

  /** noble's equation, for the rare case the rewrite cannot take (no tables: it almost never runs). */
  const direct = (e: bigint, r: bigint, s: bigint): boolean => {
    const w = Fn.inv(s);
    const R = Point.BASE.multiplyUnsafe(Fn.create(e * w)).add(Q.multiplyUnsafe(Fn.create(r * w)));
    return !R.is0() && Fn.create(R.toAffine().x) === r;
  };

  return (items) => {
    const out = items.map(() => false);
    // 1. Parse (strict DER) and reduce the digest as noble does (bits2int: its leftmost bits).
    const todo: { i: number; e: bigint; r: bigint; s: bigint; a?: bigint; ax?: bigint; ay?: bigint }[] = [];
    for (let i = 0; i < items.length; i++) {
      const { digest, signature } = items[i]!;
      if (digest.length > MAX_DIGEST_BYTES) continue;
      try {
        const { r, s } = Signature.fromBytes(signature, 'der'); // r and s in [1, n-1]
        const delta = digest.length * 8 - Fn.BITS;
        const e = bytesToNumberBE(digest);
        todo.push({ i, e: Fn.create(delta > 0 ? e >> BigInt(delta) : e), r, s });
      } catch {
        // not a DER signature: false
      }
    }
    if (todo.length === 0) return out;
    // 2. a = (e - e')/r, then aG on OpenSSL's fixed-base path.
    const rInv = Fn.invertBatch(todo.map((t) => t.r));
    const adding: typeof todo = [];
    todo.forEach((t, j) => {
      try {
        const a = Fn.mul(Fn.sub(t.e, fixedE), rInv[j]!);
        if (a === 0n) {
          out[t.i] = direct(t.e, t.r, t.s);
          return;
        }
        ecdh.setPrivateKey(toBytes(a, Fn.BYTES));
        const aG = ecdh.getPublicKey();
        const ax = bytesToNumberBE(aG.subarray(1, 1 + Fp.BYTES));
        if (ax === qx) {
          out[t.i] = direct(t.e, t.r, t.s); // aG = +-Q
          return;
        }
        Object.assign(t, { a, ax, ay: bytesToNumberBE(aG.subarray(1 + Fp.BYTES)) });
        adding.push(t);
      } catch {
        // not expected (every value is in range); a verification that cannot be done is a failed one
      }
    });
    // 3. Q' = Q + aG (affine addition), and OpenSSL verifies (r, s) over m' under Q'.
    const dxInv = Fp.invertBatch(adding.map((t) => Fp.sub(t.ax!, qx)));
    adding.forEach((t, j) => {
      const l = Fp.mul(Fp.sub(t.ay!, qy), dxInv[j]!);
      const x3 = Fp.sub(Fp.sub(Fp.sqr(l), qx), t.ax!);
      const y3 = Fp.sub(Fp.mul(l, Fp.sub(qx, x3)), qy);
      const spki = Buffer.concat([spkiPrefix, Buffer.from([4]), toBytes(x3, Fp.BYTES), toBytes(y3, Fp.BYTES)]);
      const der = new Signature(t.r, t.s).toBytes('der');
      try {
        out[t.i] = opensslVerify('sha256', FIXED_MESSAGE, pemOf(spki), der);
      } catch {
        // as above
      }
    });
    return out;
  };
}

/** Per signature, the index of the first verifier (key) whose signature it is, or -1: each key is tried on what the earlier ones refused. */
export function firstVerifyingKey(verifiers: readonly BatchVerify[], items: readonly DigestSignature[]): Int32Array {
  const out = new Int32Array(items.length).fill(-1);
  let left = items.map((_, i) => i);
  for (let k = 0; k < verifiers.length && left.length > 0; k++) {
    const ok = verifiers[k]!(left.map((i) => items[i]!));
    const next: number[] = [];
    left.forEach((i, j) => (ok[j] ? (out[i] = k) : next.push(i)));
    left = next;
  }
  return out;
}

/**
 * A `.sig` file's content as a DER signature: base64 text (cosign's format)
 * or raw DER; undefined when it is neither.
 */
export function parseBlobSignature(content: Uint8Array): Uint8Array | undefined {
  const text = Buffer.from(content.buffer, content.byteOffset, content.byteLength).toString('utf8').trim();
  if (/^[A-Za-z0-9+/]+={0,2}$/.test(text)) return new Uint8Array(Buffer.from(text, 'base64'));
  if (content[0] === 0x30) return content; // raw DER SEQUENCE
  return undefined;
}

const CACHE_DOMAIN = Buffer.from('aegis verified blob signature v2\0', 'latin1');
const cacheKeyParts = new WeakMap<Uint8Array, Buffer>();

function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n);
  return b;
}

/**
 * The verified-signature cache's entry (signing/verified-cache.ts) for the key
 * `spki` (SPKI DER), `digest` and the DER `signature`: SHA-256 over a domain
 * tag, the key's SHA-256, the digest (length-prefixed) and the signature; 32
 * bytes. Here so that worker threads compute it beside the read.
 */
export function signatureCacheId(spki: Uint8Array, digest: Uint8Array, signature: Uint8Array): Buffer {
  let keyPart = cacheKeyParts.get(spki);
  if (!keyPart) {
    keyPart = Buffer.concat([CACHE_DOMAIN, createHash('sha256').update(spki).digest()]);
    cacheKeyParts.set(spki, keyPart);
  }
  return hash('sha256', Buffer.concat([keyPart, u32(digest.length), digest, signature]), 'buffer');
}

/** A detached signature file on a local disk, read: the DER signature (and its cache ids, one per key), or what is wrong. */
export type SignatureRead =
  | { signature: Uint8Array; cacheIds?: string[] }
  | { missing: 'archive' | 'signature' }
  | { tooLarge: true }
  | { notSignature: true }
  | { error: string; errno?: string | undefined; path: string };

/** An archive on a local disk (its signature is `<archive>.sig`) and the SHA-256 the registry recorded for it, in hex. */
export interface LocalSignature {
  archive: string;
  digest: string;
}

/**
 * Whether `f.archive` is a file, and the signature in `<archive>.sig` (a
 * file of at most `max` bytes). Plain synchronous system calls (stat, open,
 * one read, close), on purpose: ~8 µs this way against ~30 µs through the
 * promise API and libuv's thread pool; a restore check makes 100k of them,
 * on the pool's worker threads (blob-pool.ts) so that they run side by side.
 * The open is non-blocking so that a FIFO in place of a signature cannot
 * hang the check. A signature returned may be a view of `buf`.
 */
function readSignatureFile(f: LocalSignature, max: number, buf: Buffer): SignatureRead {
  try {
    if (!statSync(f.archive, { throwIfNoEntry: false })?.isFile()) return { missing: 'archive' };
  } catch (err) {
    const errno = (err as NodeJS.ErrnoException).code;
    if (errno === 'ENOTDIR') return { missing: 'archive' };
    return { error: (err as Error).message, errno, path: f.archive };
  }
  const path = `${f.archive}.sig`;
  let fd: number;
  try {
    fd = openSync(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  } catch (err) {
    const errno = (err as NodeJS.ErrnoException).code;
    if (errno === 'ENOENT' || errno === 'ENOTDIR') return { missing: 'signature' };
    return { error: (err as Error).message, errno, path };
  }
  let n: number;
  try {
    // One read of one byte past the limit: a short read of a regular file is its end, and a longer one is not a signature.
    n = readSync(fd, buf, 0, max + 1, 0);
  } catch (err) {
    const errno = (err as NodeJS.ErrnoException).code;
    if (errno === 'EISDIR') return { missing: 'signature' }; // a folder where the signature should be
    return { error: (err as Error).message, errno, path };
  } finally {
    closeSync(fd);
  }
  if (n > max) return { tooLarge: true };
  const signature = parseBlobSignature(buf.subarray(0, n));
  return signature ? { signature } : { notSignature: true };
}

/**
 * Reads of many signature files, packed into a few buffers (transferred
 * between threads without copying, where 100k small objects cost more to
 * clone than to read): per file a status (0 = signature, else what is
 * wrong), the DER signatures end to end, and their cache ids (32 bytes per
 * key) when asked.
 */
export interface PackedReads {
  status: Uint8Array;
  ends: Uint32Array;
  signatures: Uint8Array;
  ids: Uint8Array;
  keys: number;
  problems: { at: number; read: SignatureRead }[];
}

export function readSignatureFiles(files: readonly LocalSignature[], max: number, spkis?: readonly Uint8Array[]): PackedReads {
  const buf = Buffer.allocUnsafe(max + 1);
  const keys = spkis?.length ?? 0;
  const status = new Uint8Array(files.length);
  const ends = new Uint32Array(files.length);
  const ids = new Uint8Array(files.length * keys * 32);
  let signatures = new Uint8Array(files.length * 80);
  let end = 0;
  const problems: PackedReads['problems'] = [];
  files.forEach((f, i) => {
    const r = readSignatureFile(f, max, buf);
    if ('signature' in r) {
      if (end + r.signature.length > signatures.length) {
        const grown = new Uint8Array(Math.max(signatures.length * 2, end + r.signature.length));
        grown.set(signatures.subarray(0, end));
        signatures = grown;
      }
      signatures.set(r.signature, end);
      const sig = signatures.subarray(end, end + r.signature.length);
      if (spkis) {
        const digest = Buffer.from(f.digest, 'hex');
        spkis.forEach((k, j) => ids.set(signatureCacheId(k, digest, sig), (i * keys + j) * 32));
      }
      end += r.signature.length;
    } else {
      status[i] = 1;
      problems.push({ at: i, read: r });
    }
    ends[i] = end;
  });
  return { status, ends, signatures: signatures.slice(0, end), ids, keys, problems };
}

/** The reads as objects again (on the receiving thread). */
export function unpackReads(p: PackedReads): SignatureRead[] {
  const out = new Array<SignatureRead>(p.status.length);
  for (const { at, read } of p.problems) out[at] = read;
  const ids = Buffer.from(p.ids.buffer, p.ids.byteOffset, p.ids.byteLength);
  for (let i = 0, start = 0; i < p.status.length; start = p.ends[i]!, i++) {
    if (p.status[i] !== 0) continue;
    const read: SignatureRead = { signature: p.signatures.subarray(start, p.ends[i]!) };
    if (p.keys > 0) read.cacheIds = Array.from({ length: p.keys }, (_, j) => ids.toString('latin1', (i * p.keys + j) * 32, (i * p.keys + j + 1) * 32));
    out[i] = read;
  }
  return out;
}

/** Marks the workers blob-pool.ts starts, so that importing this module in any other thread does nothing. */
export const WORKER_TAG = 'aegis-digest-verify';

export interface VerifyWorkerData {
  tag: typeof WORKER_TAG;
  /** The candidate keys as SPKI DER, in the order they are tried. */
  keys: Uint8Array[];
}

export type WorkerRequest = { id: number; digests: Uint8Array[]; signatures: Uint8Array[] } | { id: number; read: LocalSignature[]; max: number; cacheIds: boolean };

export type WorkerReply = { id: number; matches: Int32Array } | { id: number; reads: PackedReads } | { id: number; error: string };

const data = workerData as Partial<VerifyWorkerData> | null;
if (parentPort && data?.tag === WORKER_TAG) {
  const port = parentPort;
  const keys = data.keys ?? [];
  const verifiers = keys.map((der) => {
    try {
      return batchVerifier(createPublicKey({ key: Buffer.from(der), format: 'der', type: 'spki' }));
    } catch {
      return never; // not a public key: verifies nothing, as on the calling thread
    }
  });
  port.on('message', (req: WorkerRequest) => {
    try {
      if ('read' in req) {
        const reads = readSignatureFiles(req.read, req.max, req.cacheIds ? keys : undefined);
        port.postMessage({ id: req.id, reads } satisfies WorkerReply, [reads.status.buffer, reads.ends.buffer, reads.signatures.buffer, reads.ids.buffer] as ArrayBuffer[]);
        return;
      }
      const matches = firstVerifyingKey(
        verifiers,
        req.digests.map((digest, i) => ({ digest, signature: req.signatures[i]! })),
      );
      port.postMessage({ id: req.id, matches } satisfies WorkerReply, [matches.buffer as ArrayBuffer]);
    } catch (err) {
      port.postMessage({ id: req.id, error: (err as Error).message } satisfies WorkerReply);
    }
  });
}
