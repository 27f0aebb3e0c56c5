// ECDSA verification over a SHA-256 digest, one verifier per public key.
// Self-contained on purpose (node: and @noble/curves imports only): it is also
// loaded by path as a worker thread (blob-pool.ts), both from dist/ (compiled)
// and from src/ under Node's type stripping in tests, so it must not import
// project modules.
import { createPublicKey, type KeyObject } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';
import { p256, p384, p521 } from '@noble/curves/nist.js';
import { bytesToNumberBE } from '@noble/curves/utils.js';

/**
 * Why not node:crypto: `crypto.verify` (OpenSSL) only verifies messages it
 * hashes itself, and a blob signature is checked against the digest the
 * registry recorded (or computed while streaming), not against the archive's
 * bytes; Node 24 has no prehashed verify (nodejs/node#62345 proposes
 * `crypto.verifyDigest`). So this is @noble/curves, as before, with the cost
 * per verification cut by decoding each key once and giving its point
 * precomputed multiples (`Point.precompute`): the same equation as noble's
 * `verify(sig, digest, point, { prehash: false, format: 'der', lowS: false })`
 * (SEC 1 4.1.4), written against noble's Point so the key's tables are reused
 * instead of being rebuilt for a fresh Point on every call. blob.test.ts holds
 * it to noble's `verify` on valid, tampered, high-S, malformed and wrong-key
 * inputs.
 */
export type DigestVerify = (digest: Uint8Array, signature: Uint8Array) => boolean;

type Curve = typeof p256;

const CURVES: Record<string, Curve> = { prime256v1: p256, secp384r1: p384, secp521r1: p521 };

/**
 * Window of a key's table of precomputed multiples: wider is faster per
 * verification and slower to build. CPU measured on P-256 (2-core dev
 * machine): no table 1.65 ms per verification; W=6 0.48 ms (table 32 ms;
 * P-521 77 ms), the default, for a process that checks a few archives;
 * W=10 for the key and the generator 0.34 ms (tables ~0.2 s each; P-521
 * 0.5 s), which only bulk checks (thousands per thread) earn back.
 */
export const DEFAULT_WINDOW = 6;
export const BULK_WINDOW = 10;

/** DoS guard noble applies to the message before converting it to a number. */
const MAX_DIGEST_BYTES = 8192;

const never: DigestVerify = () => false;
const cache = new WeakMap<KeyObject, Map<number, DigestVerify>>();

/** The verifier for `key` (made once per KeyObject and window). A key that is not EC on P-256/384/521 verifies nothing. */
export function digestVerifier(key: KeyObject, window = DEFAULT_WINDOW): DigestVerify {
  let byWindow = cache.get(key);
  if (!byWindow) {
    byWindow = new Map();
    cache.set(key, byWindow);
  }
  let v = byWindow.get(window);
  if (!v) {
    v = makeVerifier(key, window);
    byWindow.set(window, v);
  }
  return v;
}

function makeVerifier(key: KeyObject, window: number): DigestVerify {
  const curve = key.asymmetricKeyType === 'ec' ? CURVES[key.asymmetricKeyDetails?.namedCurve ?? ''] : undefined;
  if (!curve) return never;
  const { Point, Signature } = curve;
  const Fn = Point.Fn;
  let Q: InstanceType<typeof Point>;
  try {
    const jwk = key.export({ format: 'jwk' });
    const xy = Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x ?? '', 'base64url'), Buffer.from(jwk.y ?? '', 'base64url')]);
    Q = Point.fromBytes(new Uint8Array(xy)); // checks the point is on the curve
  } catch {
    return never;
  }
  if (Q.is0()) return never;
  Q.precompute(window); // built lazily, by the first multiplication
  return (digest, signature) => {
    try {
      const { r, s } = Signature.fromBytes(signature, 'der'); // strict DER; r and s in [1, n-1]
      if (digest.length > MAX_DIGEST_BYTES) return false;
      const delta = digest.length * 8 - Fn.BITS; // leftmost bits of the digest (bits2int)
      const e = bytesToNumberBE(digest);
      const h = Fn.create(delta > 0 ? e >> BigInt(delta) : e);
      const w = Fn.inv(s);
      const R = Point.BASE.multiplyUnsafe(Fn.create(h * w)).add(Q.multiplyUnsafe(Fn.create(r * w)));
      if (R.is0()) return false;
      return Fn.create(R.toAffine().x) === r;
    } catch {
      return false;
    }
  };
}

/** Index of the first key in `keys` whose signature over `digest` this is, or -1. */
export function firstVerifyingKey(verifiers: DigestVerify[], digest: Uint8Array, signature: Uint8Array): number {
  for (let i = 0; i < verifiers.length; i++) if (verifiers[i]!(digest, signature)) return i;
  return -1;
}

/** Marks the workers blob-pool.ts starts, so that importing this module in any other thread does nothing. */
export const WORKER_TAG = 'aegis-digest-verify';

export interface VerifyWorkerData {
  tag: typeof WORKER_TAG;
  /** The candidate keys as SPKI DER, in the order they are tried. */
  keys: Uint8Array[];
  /** Table window for the keys and, in this worker only, the curves' generators. */
  window: number;
}

export interface VerifyBatch {
  id: number;
  digests: Uint8Array[];
  signatures: Uint8Array[];
}

export type VerifyReply = { id: number; matches: Int32Array } | { id: number; error: string };

const data = workerData as Partial<VerifyWorkerData> | null;
if (parentPort && data?.tag === WORKER_TAG) {
  const port = parentPort;
  const window = data.window ?? DEFAULT_WINDOW;
  // The generator's table is noble's module state: widened here, in a thread that only verifies, never on the caller's.
  if (window > DEFAULT_WINDOW) for (const curve of Object.values(CURVES)) curve.Point.BASE.precompute(window);
  const verifiers = (data.keys ?? []).map((der) => {
    try {
      return digestVerifier(createPublicKey({ key: Buffer.from(der), format: 'der', type: 'spki' }), window);
    } catch {
      return never; // not a public key: verifies nothing, as on the calling thread
    }
  });
  port.on('message', (batch: VerifyBatch) => {
    try {
      const matches = new Int32Array(batch.digests.length);
      for (let i = 0; i < matches.length; i++) matches[i] = firstVerifyingKey(verifiers, batch.digests[i]!, batch.signatures[i]!);
      port.postMessage({ id: batch.id, matches } satisfies VerifyReply, [matches.buffer]);
    } catch (err) {
      port.postMessage({ id: batch.id, error: (err as Error).message } satisfies VerifyReply);
    }
  });
}
