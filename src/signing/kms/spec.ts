import { p256, p384, p521 } from '@noble/curves/nist.js';
import { AegisError } from '../../errors.js';
import type { Curve } from '../keys.js';

/**
 * The pure parts of signing with an AWS KMS key: which key specs can sign an
 * OMS bundle and with which KMS algorithm, how a SHA-256 digest is presented
 * to an algorithm that expects a longer one, and the low-S form of a
 * signature. No SDK here, so these load and test without AWS.
 */

export type KmsSigningAlgorithm = 'ECDSA_SHA_256' | 'ECDSA_SHA_384' | 'ECDSA_SHA_512';

export interface KmsKeySpecInfo {
  keySpec: 'ECC_NIST_P256' | 'ECC_NIST_P384' | 'ECC_NIST_P521';
  curve: Curve;
  /** Hash of the curve (Sigstore key details), which KMS's algorithm for the spec also uses. */
  hash: 'sha256' | 'sha384' | 'sha512';
  algorithm: KmsSigningAlgorithm;
  /** Bytes of a digest that `Sign` with MessageType DIGEST accepts for `algorithm`. */
  digestBytes: 32 | 48 | 64;
}

const SPECS: readonly KmsKeySpecInfo[] = [
  { keySpec: 'ECC_NIST_P256', curve: 'p256', hash: 'sha256', algorithm: 'ECDSA_SHA_256', digestBytes: 32 },
  { keySpec: 'ECC_NIST_P384', curve: 'p384', hash: 'sha384', algorithm: 'ECDSA_SHA_384', digestBytes: 48 },
  { keySpec: 'ECC_NIST_P521', curve: 'p521', hash: 'sha512', algorithm: 'ECDSA_SHA_512', digestBytes: 64 },
];

/** The key specs Aegis signs with (the NIST curves OMS key bundles use). */
export const SUPPORTED_KEY_SPECS = SPECS.map((s) => s.keySpec);

/**
 * What Aegis signs with for a KMS key spec; KMS_KEY_UNUSABLE for any other
 * (RSA, secp256k1, SM2, ML-DSA, HMAC, symmetric keys).
 */
export function keySpecInfo(keySpec: string | undefined, keyId: string): KmsKeySpecInfo {
  const info = SPECS.find((s) => s.keySpec === keySpec);
  if (!info) {
    throw new AegisError('KMS_KEY_UNUSABLE', `KMS key ${keyId} has key spec ${keySpec ?? '(none)'}; Aegis signs with ${SUPPORTED_KEY_SPECS.join(', ')} keys`, {
      hint:
        'OpenSSF Model Signing key bundles and cosign-style archive signatures are ECDSA on a NIST curve. Create a key with ' +
        '`aws kms create-key --key-spec ECC_NIST_P256 --key-usage SIGN_VERIFY` and pass its id or alias.',
      details: { keyId, keySpec },
    });
  }
  return info;
}

/** The spec whose curve is `curve` (to cross-check the public key KMS returns). */
export function keySpecOfCurve(curve: Curve): KmsKeySpecInfo {
  return SPECS.find((s) => s.curve === curve)!;
}

/** KeyUsage must be SIGN_VERIFY; KMS_KEY_UNUSABLE otherwise. */
export function assertSignVerify(keyUsage: string | undefined, keyId: string): void {
  if (keyUsage === 'SIGN_VERIFY') return;
  throw new AegisError('KMS_KEY_UNUSABLE', `KMS key ${keyId} has key usage ${keyUsage ?? '(none)'}, not SIGN_VERIFY: it cannot sign`, {
    hint: 'A key\'s usage is fixed when it is created. Create a signing key: `aws kms create-key --key-spec ECC_NIST_P256 --key-usage SIGN_VERIFY`.',
    details: { keyId, keyUsage },
  });
}

/**
 * The Message for `Sign` (MessageType DIGEST) that signs a SHA-256 digest
 * with `info`'s algorithm. KMS requires a digest as long as the algorithm's
 * hash (48 bytes for ECDSA_SHA_384, 64 for ECDSA_SHA_512), while a detached
 * archive signature is ECDSA over the SHA-256 digest whatever the curve (as
 * PemKeySigner and cosign do). ECDSA reads the digest as a big-endian integer
 * truncated to the order's bit length (SEC 1 4.1.3 step 5): with 256 bits
 * below the order's 384 or 521, left-padding with zero bytes gives the very
 * same integer, so the signature KMS makes over the padded digest is the
 * signature over the SHA-256 digest, and verifies as such.
 */
export function digestMessage(sha256: Buffer, info: KmsKeySpecInfo): Buffer {
  if (sha256.length !== 32) {
    throw new AegisError('INTERNAL', `a SHA-256 digest is 32 bytes, got ${sha256.length}`);
  }
  if (info.digestBytes === 32) return sha256;
  return Buffer.concat([Buffer.alloc(info.digestBytes - 32), sha256]);
}

function curveImpl(curve: Curve) {
  return curve === 'p256' ? p256 : curve === 'p384' ? p384 : p521;
}

/**
 * A DER ECDSA signature in low-S form (s ≤ n/2). KMS returns either half;
 * Aegis, cosign, OpenSSL and model_signing accept both, but stricter
 * verifiers (noble's default, libraries that reject malleable signatures)
 * only low-S, and PemKeySigner only ever writes low-S: normalizing keeps the
 * two providers' output alike. (s and n − s are both valid for the same r.)
 * Throws KMS_SIGNATURE_INVALID when `der` is not a DER ECDSA signature.
 */
export function lowS(der: Buffer, curve: Curve): Buffer {
  const c = curveImpl(curve);
  let sig;
  try {
    sig = c.Signature.fromBytes(new Uint8Array(der), 'der');
  } catch (err) {
    throw new AegisError('KMS_SIGNATURE_INVALID', `KMS returned a signature that is not DER ECDSA on ${curve}: ${(err as Error).message}`, {
      cause: err,
      hint: 'Check that the endpoint is AWS KMS (or a faithful emulator) and that the key is an ECC_NIST key.',
    });
  }
  if (!sig.hasHighS()) return der;
  return Buffer.from(new c.Signature(sig.r, c.Point.Fn.ORDER - sig.s).toBytes('der'));
}

/** Region of a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID or alias/NAME), if `keyId` is one. */
export function regionOfArn(keyId: string): string | undefined {
  const m = /^arn:aws[a-z-]*:kms:([a-z0-9-]+):\d{12}:(key|alias)\/.+$/.exec(keyId);
  return m?.[1];
}

/**
 * Checks a key id as a user typed it: a key id (UUID or mrk-…), a key ARN, an
 * alias (alias/NAME) or an alias ARN. KMS would refuse anything else with a
 * less helpful message.
 */
export function validateKeyId(keyId: string): string {
  const id = keyId.trim();
  const ok =
    /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id) ||
    /^mrk-[0-9a-f]{32}$/i.test(id) ||
    /^alias\/[A-Za-z0-9/_-]{1,250}$/.test(id) ||
    regionOfArn(id) !== undefined;
  if (!ok) {
    throw new AegisError('USAGE', `not a KMS key id: ${JSON.stringify(keyId)}`, {
      hint: 'Pass a key id (1234abcd-12ab-34cd-56ef-1234567890ab), a key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID), or an alias (alias/model-signing).',
    });
  }
  return id;
}
