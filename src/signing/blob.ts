import type { KeyObject } from 'node:crypto';
import { p256, p384, p521 } from '@noble/curves/nist.js';
import { AegisError } from '../errors.js';
import { digestVerifier, parseBlobSignature } from './digest-verify.js';
import { curveInfo, keyHint } from './keys.js';
import { assertUsable, type TrustAnchor } from './trust.js';

/**
 * Detached blob signatures in cosign's format: base64 of a DER ECDSA signature
 * over the SHA-256 digest of the blob (`cosign verify-blob --key pub.pem
 * --signature model.tar.gz.sig --insecure-ignore-tlog`). The digest is computed
 * while the archive streams (one pass), so signing works on the digest itself:
 * Node's crypto only signs messages it hashes itself, hence @noble/curves.
 */

function curveImpl(key: KeyObject) {
  const c = curveInfo(key).curve;
  return c === 'p256' ? p256 : c === 'p384' ? p384 : p521;
}

function jwkBytes(v: string | undefined): Uint8Array {
  return new Uint8Array(Buffer.from(v ?? '', 'base64url'));
}

/** Deterministic ECDSA (RFC 6979) over a digest; DER-encoded. */
export function signDigest(digest: Buffer, privateKey: KeyObject): Buffer {
  const curve = curveImpl(privateKey);
  const d = jwkBytes(privateKey.export({ format: 'jwk' }).d);
  const sig = curve.sign(new Uint8Array(digest), d, { prehash: false, format: 'der' });
  return Buffer.from(sig);
}

/**
 * Whether `signature` (DER ECDSA) is `publicKey`'s over `digest`. High-S
 * signatures are accepted, as by cosign and OpenSSL. See digest-verify.ts for
 * how a digest (not a message) is verified with node:crypto.
 */
export function verifyDigest(digest: Buffer, signature: Buffer, publicKey: KeyObject): boolean {
  return digestVerifier(publicKey)(digest, signature);
}

/** Reads a `.sig` file's content: base64 (cosign) or raw DER. */
export function decodeBlobSignature(content: Buffer, source: string): Buffer {
  const der = parseBlobSignature(content);
  if (der) return Buffer.from(der.buffer, der.byteOffset, der.byteLength);
  throw notABlobSignature(source);
}

/** The error for a `.sig` file that holds neither base64 nor DER. */
export function notABlobSignature(source: string): AegisError {
  return new AegisError('ARCHIVE_SIGNATURE_INVALID', `${source} is not a signature (expected base64 DER ECDSA)`, {
    hint: 'Pass the model.tar.gz.sig written by `aegis model package`.',
    details: { source },
  });
}

export interface BlobSigner {
  keyHint: string;
  trustedId?: string;
}

/**
 * Checks a detached signature over `digest` against the trust anchor. A blob
 * signature carries no key hint, so every key the anchor allows is tried; the
 * one that verifies must be usable now (not revoked or expired).
 */
export function verifyBlobSignature(digest: Buffer, signature: Buffer, trust: TrustAnchor, now: Date, what: string): BlobSigner {
  const keys = blobKeys(trust);
  return blobSigner(trust, keys.findIndex((k) => verifyDigest(digest, signature, k)), now, what);
}

/**
 * The keys a blob signature is tried against, in order (blob-pool.ts tries
 * the same list on worker threads). Throws for an anchor that cannot check a
 * blob signature (a CA chain).
 */
export function blobKeys(trust: TrustAnchor): KeyObject[] {
  if (trust.kind === 'publicKey') return [trust.key];
  if (trust.kind === 'certificates') throw noBlobKeys();
  return trust.policy.keys.map((k) => k.key);
}

function noBlobKeys(): AegisError {
  return new AegisError('BUNDLE_METHOD_MISMATCH', 'archive signatures are checked with a public key or a trust policy, not a CA chain', {
    hint: 'Pass --public-key KEY.pem or --trust TRUST.yaml.',
  });
}

/**
 * The outcome of a blob signature check once `index`, the first key of
 * `blobKeys(trust)` that verified it (-1: none), is known: the signer, or
 * ARCHIVE_SIGNATURE_INVALID, or why the key that signed may not be used now.
 */
export function blobSigner(trust: TrustAnchor, index: number, now: Date, what: string): BlobSigner {
  if (trust.kind === 'certificates') throw noBlobKeys();
  if (trust.kind === 'publicKey') {
    if (index === 0) return { keyHint: hintOf(trust.key) };
    throw new AegisError('ARCHIVE_SIGNATURE_INVALID', `the signature of ${what} does not verify with ${trust.source}`, {
      hint: 'The archive was altered or signed with another key: do not use it. Check the public key, or fetch the archive again.',
    });
  }
  const k = index >= 0 ? trust.policy.keys[index] : undefined;
  if (!k) {
    throw new AegisError('ARCHIVE_SIGNATURE_INVALID', `the signature of ${what} verifies with none of the keys in ${trust.policy.path}`, {
      hint: 'The archive was altered or signed by an untrusted key: do not use it.',
    });
  }
  const revoked = trust.policy.keys.find((e) => e.hint === k.hint && e.revoked);
  assertUsable(revoked ?? k, 'signing key', now);
  return { keyHint: k.hint, trustedId: k.id };
}

/** keyHint hashes the key's PEM: once per key, not once per signature checked. */
const hints = new WeakMap<KeyObject, string>();
function hintOf(key: KeyObject): string {
  let h = hints.get(key);
  if (h === undefined) {
    h = keyHint(key);
    hints.set(key, h);
  }
  return h;
}
