import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { AegisError, fsError } from '../errors.js';

export type Curve = 'p256' | 'p384' | 'p521';

interface CurveInfo {
  curve: Curve;
  nodeName: string;
  /** Hash used with this curve (Sigstore key details: P-256/SHA-256, P-384/SHA-384, P-521/SHA-512). */
  hash: 'sha256' | 'sha384' | 'sha512';
  keyDetails: string;
}

const CURVES: CurveInfo[] = [
  { curve: 'p256', nodeName: 'prime256v1', hash: 'sha256', keyDetails: 'PKIX_ECDSA_P256_SHA_256' },
  { curve: 'p384', nodeName: 'secp384r1', hash: 'sha384', keyDetails: 'PKIX_ECDSA_P384_SHA_384' },
  { curve: 'p521', nodeName: 'secp521r1', hash: 'sha512', keyDetails: 'PKIX_ECDSA_P521_SHA_512' },
];

export function curveInfo(key: KeyObject): CurveInfo {
  const named = key.asymmetricKeyType === 'ec' ? key.asymmetricKeyDetails?.namedCurve : undefined;
  const info = CURVES.find((c) => c.nodeName === named);
  if (!info) {
    throw new AegisError(
      'KEY_UNSUPPORTED',
      `unsupported key type ${key.asymmetricKeyType ?? 'unknown'}${named ? ` (curve ${named})` : ''}`,
      { hint: 'Use an ECDSA key on P-256, P-384 or P-521: `aegis keys generate --curve p256`.' },
    );
  }
  return info;
}

export function curveByName(curve: Curve): CurveInfo {
  return CURVES.find((c) => c.curve === curve)!;
}

/** PEM SubjectPublicKeyInfo, in the exact form the reference tools hash for the key hint. */
export function publicKeyPem(key: KeyObject): string {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return pub.export({ type: 'spki', format: 'pem' }).toString();
}

/**
 * Key hint recorded in bundles (`verificationMaterial.publicKey.hint`):
 * hex SHA-256 of the PEM-encoded SubjectPublicKeyInfo, as model_signing does.
 * Aegis also uses it as the key id in trust policies.
 */
export function keyHint(key: KeyObject): string {
  return createHash('sha256').update(publicKeyPem(key)).digest('hex');
}

export function parsePrivateKey(pem: string | Buffer, source: string, passphrase?: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(passphrase === undefined ? pem : { key: pem, passphrase });
  } catch (err) {
    const encrypted = /ENCRYPTED/.test(pem.toString());
    throw new AegisError('KEY_INVALID', `cannot read private key ${source}: ${(err as Error).message}`, {
      cause: err,
      hint: encrypted
        ? 'The key is encrypted: pass its password with --password or AEGIS_KEY_PASSWORD.'
        : 'Pass a PEM-encoded EC private key (e.g. signing-key.pem from `aegis keys generate`).',
      details: { path: source },
    });
  }
  curveInfo(key);
  return key;
}

export function parsePublicKey(pem: string | Buffer, source: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (err) {
    throw new AegisError('KEY_INVALID', `cannot read public key ${source}: ${(err as Error).message}`, {
      cause: err,
      hint: 'Pass a PEM-encoded EC public key (e.g. signing-key.pub.pem from `aegis keys generate`).',
      details: { path: source },
    });
  }
  if (key.type === 'private') key = createPublicKey(key);
  curveInfo(key);
  return key;
}

export async function readPrivateKey(path: string, passphrase?: string): Promise<KeyObject> {
  const pem = await readFile(path).catch((err: unknown) => {
    throw fsError(err, path, 'private key');
  });
  return parsePrivateKey(pem, path, passphrase);
}

export async function readPublicKey(path: string): Promise<KeyObject> {
  const pem = await readFile(path).catch((err: unknown) => {
    throw fsError(err, path, 'public key');
  });
  return parsePublicKey(pem, path);
}

export function generateKeyPair(curve: Curve): { privateKeyPem: string; publicKeyPem: string; hint: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: curveByName(curve).nodeName });
  return {
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKeyPem: publicKeyPem(publicKey),
    hint: keyHint(publicKey),
  };
}
