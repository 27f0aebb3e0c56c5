import type { AegisConfig } from '../config/index.js';
import { AegisError } from '../errors.js';
import { KmsSigner, type KmsSignerOptions } from './kms/index.js';
import { PemKeySigner } from './pem/index.js';
import type { Signer } from './signer.js';

export interface OpenSignerOptions {
  /** PEM private key file (`--key`). */
  pemPath?: string;
  /** Password of an encrypted PEM key. */
  password?: string;
  /** AWS KMS key id, ARN or alias (`--kms-key`); default `signing.kmsKeyId` (AEGIS_KMS_KEY_ID). */
  kmsKeyId?: string;
  /** Passed to KmsSigner (tests, static credentials). */
  kms?: Omit<KmsSignerOptions, 'keyId'>;
}

/** Which key provider `openSigner` would use, without opening it. */
export function signerSource(config: Pick<AegisConfig, 'signing'>, o: OpenSignerOptions): { kind: 'pem'; path: string } | { kind: 'kms'; keyId: string } | undefined {
  if (o.pemPath !== undefined && o.kmsKeyId !== undefined) {
    throw new AegisError('USAGE', 'pass either --key or --kms-key, not both', {
      hint: '--key signs with a PEM private key file; --kms-key with an AWS KMS key.',
    });
  }
  if (o.pemPath !== undefined) return { kind: 'pem', path: o.pemPath };
  const keyId = o.kmsKeyId ?? config.signing.kmsKeyId;
  return keyId !== undefined ? { kind: 'kms', keyId } : undefined;
}

/**
 * The signing key from the configured provider: a PEM file when `pemPath`
 * is given, otherwise the AWS KMS key named by `kmsKeyId` or by the
 * configuration (signing.kmsKeyId / AEGIS_KMS_KEY_ID, with kmsRegion and
 * kmsEndpoint). An explicit `pemPath` wins over a configured KMS key.
 */
export async function openSigner(config: Pick<AegisConfig, 'signing'>, o: OpenSignerOptions = {}): Promise<Signer> {
  const source = signerSource(config, o);
  if (!source) {
    throw new AegisError('USAGE', 'no signing key given', {
      hint: 'Pass --key KEY.pem (a PEM private key, e.g. from `aegis keys generate`) or --kms-key ID (an AWS KMS key), or set AEGIS_KMS_KEY_ID.',
    });
  }
  if (source.kind === 'pem') return PemKeySigner.fromFile(source.path, o.password);
  return openKmsSigner(config, source.keyId, o.kms);
}

/**
 * The AWS KMS key `keyId` (default signing.kmsKeyId / AEGIS_KMS_KEY_ID) with
 * the configured region and endpoint.
 */
export async function openKmsSigner(config: Pick<AegisConfig, 'signing'>, keyId?: string, kms?: Omit<KmsSignerOptions, 'keyId'>): Promise<KmsSigner> {
  const s = config.signing;
  const id = keyId ?? s.kmsKeyId;
  if (id === undefined) {
    throw new AegisError('USAGE', 'no KMS key given', { hint: 'Pass --kms-key ID (key id, ARN or alias/NAME), or set AEGIS_KMS_KEY_ID.' });
  }
  return KmsSigner.create({
    keyId: id,
    ...(s.kmsRegion ? { region: s.kmsRegion } : {}),
    ...(s.kmsEndpoint ? { endpoint: s.kmsEndpoint } : {}),
    ...kms,
  });
}
