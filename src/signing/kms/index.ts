import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { createRequire } from 'node:module';
import type * as KmsSdk from '@aws-sdk/client-kms';
import type { KMSClient } from '@aws-sdk/client-kms';
import { AegisError } from '../../errors.js';
import { childLogger } from '../../log.js';
import { verifyDigest } from '../blob.js';
import { curveInfo, keyHint, publicKeyPem } from '../keys.js';
import type { Signer } from '../signer.js';
import { kmsError, type KmsRef } from './errors.js';
import { assertSignVerify, digestMessage, keySpecInfo, keySpecOfCurve, lowS, regionOfArn, validateKeyId, type KmsKeySpecInfo } from './spec.js';

// The AWS SDK takes tens of milliseconds to load: load it only when a KMS key
// is actually used, so CLI commands that never sign with KMS start faster.
const require = createRequire(import.meta.url);
let kmsSdk: typeof KmsSdk | undefined;
const sdk = (): typeof KmsSdk => (kmsSdk ??= require('@aws-sdk/client-kms') as typeof KmsSdk);

export { SUPPORTED_KEY_SPECS } from './spec.js';

export interface KmsSignerOptions {
  /** Key id, key ARN, alias (alias/NAME) or alias ARN. */
  keyId: string;
  /** Default: the region of an ARN key id, else the AWS SDK's (AWS_REGION, profile). */
  region?: string;
  /** KMS-compatible endpoint (a VPC endpoint, an emulator); default: AWS. */
  endpoint?: string;
  /** Static credentials; default: the AWS SDK's provider chain (AWS_ACCESS_KEY_ID…, AWS_PROFILE, IMDS, IRSA, …). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Attempts per request, including the first; default 3. */
  maxAttempts?: number;
  /** Connection timeout per attempt, ms; default 5000. */
  connectionTimeoutMs?: number;
  /** A ready client (custom middleware); the connection options above are then ignored. */
  client?: KMSClient;
}

const log = () => childLogger('kms');

/**
 * Signs with an asymmetric AWS KMS key (key method): the private key never
 * leaves KMS. The public key is fetched once (GetPublicKey), which fixes the
 * key hint and the curve; every signature is then one `Sign` call with
 * MessageType DIGEST over a digest computed here, so the data itself is never
 * sent and its size does not matter. Each signature KMS returns is checked
 * against that public key before it is used (an endpoint that signs something
 * else, or with another key, is refused rather than producing a bundle that
 * no verifier accepts) and is put in low-S form.
 *
 * IAM permissions: kms:GetPublicKey and kms:Sign on the key.
 */
export class KmsSigner implements Signer {
  readonly method = 'key' as const;
  readonly keyHint: string;
  /** The key's ARN (or id) as KMS reported it; every Sign call names it, so an alias retargeted later cannot switch keys under this signer. */
  readonly keyArn: string;
  readonly spec: KmsKeySpecInfo;
  readonly publicKey: KeyObject;
  private readonly client: KMSClient;
  private readonly ref: KmsRef;

  private constructor(client: KMSClient, ref: KmsRef, keyArn: string, publicKey: KeyObject, spec: KmsKeySpecInfo) {
    this.client = client;
    this.ref = ref;
    this.keyArn = keyArn;
    this.publicKey = publicKey;
    this.spec = spec;
    this.keyHint = keyHint(publicKey);
  }

  /**
   * Looks the key up (GetPublicKey) and checks that it can sign OMS bundles:
   * KeyUsage SIGN_VERIFY and KeySpec ECC_NIST_P256/P384/P521.
   */
  static async create(options: KmsSignerOptions): Promise<KmsSigner> {
    const keyId = validateKeyId(options.keyId);
    const region = options.region ?? regionOfArn(keyId);
    const client =
      options.client ??
      new (sdk().KMSClient)({
        ...(region ? { region } : {}),
        ...(options.endpoint ? { endpoint: options.endpoint } : {}),
        ...(options.credentials ? { credentials: options.credentials } : {}),
        maxAttempts: options.maxAttempts ?? 3,
        requestHandler: { connectionTimeout: options.connectionTimeoutMs ?? 5000 },
      });
    // The region the SDK settled on (AWS_REGION, a profile), for messages; unset is reported by the first call.
    const resolved = region ?? (await client.config.region().catch(() => undefined));
    const endpoint = options.endpoint ?? (options.client ? await endpointOf(client) : undefined) ?? `AWS KMS (${resolved ?? 'no region'})`;
    const ref: KmsRef = { keyId, endpoint };
    let out: KmsSdk.GetPublicKeyCommandOutput;
    try {
      out = await client.send(new (sdk().GetPublicKeyCommand)({ KeyId: keyId }));
    } catch (err) {
      throw kmsError(err, ref, 'GetPublicKey');
    }
    assertSignVerify(out.KeyUsage, keyId);
    // KeySpec since 2022; CustomerMasterKeySpec before (and from some emulators).
    const spec = keySpecInfo(out.KeySpec ?? out.CustomerMasterKeySpec, keyId);
    if (out.SigningAlgorithms && !out.SigningAlgorithms.includes(spec.algorithm)) {
      throw new AegisError('KMS_KEY_UNUSABLE', `KMS key ${keyId} does not offer ${spec.algorithm} (it offers ${out.SigningAlgorithms.join(', ') || 'none'})`, {
        hint: `Use a key whose spec is ${spec.keySpec} with signing algorithm ${spec.algorithm}.`,
        details: { keyId, keySpec: spec.keySpec, signingAlgorithms: out.SigningAlgorithms },
      });
    }
    const publicKey = parseSpki(out.PublicKey, keyId);
    let curve;
    try {
      curve = curveInfo(publicKey).curve;
    } catch (err) {
      throw new AegisError('KMS_KEY_UNUSABLE', `the public key of KMS key ${keyId} is not an EC key on a NIST curve`, { cause: err, details: { keyId } });
    }
    if (curve !== spec.curve) {
      throw new AegisError('KMS_KEY_UNUSABLE', `KMS key ${keyId} reports key spec ${spec.keySpec} but its public key is on ${keySpecOfCurve(curve).keySpec}`, {
        hint: 'The endpoint is not answering like AWS KMS: check AEGIS_KMS_ENDPOINT.',
        details: { keyId },
      });
    }
    const signer = new KmsSigner(client, ref, out.KeyId ?? keyId, publicKey, spec);
    log().info({ event: 'kms_key_opened', keyId, keyArn: signer.keyArn, keySpec: spec.keySpec, keyHint: signer.keyHint, endpoint }, 'KMS signing key opened');
    return signer;
  }

  /** PEM SubjectPublicKeyInfo of the KMS key: what a trust policy lists (`aegis keys add`). */
  publicKeyPem(): string {
    return publicKeyPem(this.publicKey);
  }

  /** DER ECDSA over `data` hashed with the curve's hash (SHA-256/384/512 for P-256/384/521). */
  async sign(data: Buffer): Promise<Buffer> {
    const digest = createHash(this.spec.hash).update(data).digest();
    return this.signAndCheck(digest, digest);
  }

  /**
   * DER ECDSA over a SHA-256 digest (the detached archive signature), for
   * every curve: on P-384 and P-521 the digest is zero-padded to the length
   * KMS requires, which leaves the signed integer unchanged (see digestMessage).
   */
  async signDigest(sha256: Buffer): Promise<Buffer> {
    return this.signAndCheck(digestMessage(sha256, this.spec), sha256);
  }

  verificationMaterial(): Record<string, unknown> {
    return { publicKey: { hint: this.keyHint } };
  }

  /** Sends `message` (MessageType DIGEST), then checks the signature over `digest` and normalizes it. */
  private async signAndCheck(message: Buffer, digest: Buffer): Promise<Buffer> {
    let out: KmsSdk.SignCommandOutput;
    try {
      out = await this.client.send(
        new (sdk().SignCommand)({ KeyId: this.keyArn, Message: message, MessageType: 'DIGEST', SigningAlgorithm: this.spec.algorithm }),
      );
    } catch (err) {
      throw kmsError(err, this.ref, 'Sign');
    }
    if (!out.Signature?.length) {
      throw new AegisError('KMS_SIGNATURE_INVALID', `KMS returned no signature for key ${this.ref.keyId}`, {
        hint: 'Check that the endpoint is AWS KMS (AEGIS_KMS_ENDPOINT) and retry.',
        details: { keyId: this.ref.keyId, endpoint: this.ref.endpoint },
      });
    }
    const signature = lowS(Buffer.from(out.Signature), this.spec.curve);
    if (!verifyDigest(digest, signature, this.publicKey)) {
      throw new AegisError('KMS_SIGNATURE_INVALID', `the signature KMS returned for key ${this.ref.keyId} does not verify with the key's public key`, {
        hint:
          'Nothing was written. The endpoint did not sign the digest it was sent: an emulator that ignores MessageType=DIGEST ' +
          '(moto up to 5.2.5 hashes the digest again) or a key that changed between GetPublicKey and Sign. Check AEGIS_KMS_ENDPOINT and retry.',
        details: { keyId: this.ref.keyId, keyArn: this.keyArn, endpoint: this.ref.endpoint, algorithm: this.spec.algorithm },
      });
    }
    log().debug({ event: 'kms_signed', keyArn: this.keyArn, algorithm: this.spec.algorithm }, 'KMS signature');
    return signature;
  }
}

/** The endpoint URL a ready client was given, if any. */
async function endpointOf(client: KMSClient): Promise<string | undefined> {
  try {
    const e = await client.config.endpoint?.();
    return e ? `${e.protocol}//${e.hostname}${e.port ? `:${e.port}` : ''}${e.path === '/' ? '' : e.path}` : undefined;
  } catch {
    return undefined;
  }
}

function parseSpki(der: Uint8Array | undefined, keyId: string): KeyObject {
  try {
    if (!der?.length) throw new Error('no public key in the response');
    return createPublicKey({ key: Buffer.from(der), format: 'der', type: 'spki' });
  } catch (err) {
    throw new AegisError('KMS_KEY_UNUSABLE', `KMS returned no usable public key for ${keyId}: ${(err as Error).message}`, {
      cause: err,
      hint: 'Only asymmetric KMS keys have a public key: use a SIGN_VERIFY key with key spec ECC_NIST_P256, ECC_NIST_P384 or ECC_NIST_P521.',
      details: { keyId },
    });
  }
}
