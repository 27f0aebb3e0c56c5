import type { KeyObject } from 'node:crypto';
import { p256, p384, p521 } from '@noble/curves/nist.js';
import { AegisError } from '../errors.js';
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

function publicPoint(key: KeyObject): Uint8Array {
  const jwk = key.export({ format: 'jwk' });
  return new Uint8Array(Buffer.concat([Buffer.from([4]), Buffer.from(jwkBytes(jwk.x)), Buffer.from(jwkBytes(jwk.y))]));
}

/** Deterministic ECDSA (RFC 6979) over a digest; DER-encoded. */
export function signDigest(digest: Buffer, privateKey: KeyObject): Buffer {
  const curve = curveImpl(privateKey);
  const d = jwkBytes(privateKey.export({ format: 'jwk' }).d);
  const sig = curve.sign(new Uint8Array(digest), d, { prehash: false, format: 'der' });
  return Buffer.from(sig);
}

export function verifyDigest(digest: Buffer, signature: Buffer, publicKey: KeyObject): boolean {
  try {
    return curveImpl(publicKey).verify(new Uint8Array(signature), new Uint8Array(digest), publicPoint(publicKey), {
      prehash: false,
      format: 'der',
      lowS: false,
    });
  } catch {
    return false;
  }
}

/** Reads a `.sig` file's content: base64 (cosign) or raw DER. */
export function decodeBlobSignature(content: Buffer, source: string): Buffer {
  const text = content.toString('utf8').trim();
  if (/^[A-Za-z0-9+/]+={0,2}$/.test(text)) return Buffer.from(text, 'base64');
  if (content[0] === 0x30) return content; // raw DER SEQUENCE
  throw new AegisError('ARCHIVE_SIGNATURE_INVALID', `${source} is not a signature (expected base64 DER ECDSA)`, {
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
  if (trust.kind === 'publicKey') {
    if (verifyDigest(digest, signature, trust.key)) return { keyHint: keyHint(trust.key) };
    throw new AegisError('ARCHIVE_SIGNATURE_INVALID', `the signature of ${what} does not verify with ${trust.source}`, {
      hint: 'The archive was altered or signed with another key: do not use it. Check the public key, or fetch the archive again.',
    });
  }
  if (trust.kind === 'certificates') {
    throw new AegisError('BUNDLE_METHOD_MISMATCH', 'archive signatures are checked with a public key or a trust policy, not a CA chain', {
      hint: 'Pass --public-key KEY.pem or --trust TRUST.yaml.',
    });
  }
  for (const k of trust.policy.keys) {
    if (!verifyDigest(digest, signature, k.key)) continue;
    const revoked = trust.policy.keys.find((e) => e.hint === k.hint && e.revoked);
    assertUsable(revoked ?? k, 'signing key', now);
    return { keyHint: k.hint, trustedId: k.id };
  }
  throw new AegisError('ARCHIVE_SIGNATURE_INVALID', `the signature of ${what} verifies with none of the keys in ${trust.policy.path}`, {
    hint: 'The archive was altered or signed by an untrusted key: do not use it.',
  });
}
