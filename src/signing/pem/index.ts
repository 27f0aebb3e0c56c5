import { createHash, createPublicKey, type KeyObject, type X509Certificate } from 'node:crypto';
import { AegisError } from '../../errors.js';
import { signDigest } from '../blob.js';
import { curveInfo, keyHint, readPrivateKey } from '../keys.js';
import type { Signer } from '../signer.js';
import { readCertificates } from '../x509.js';

/** Signs with an EC private key read from a PEM file (key method). */
export class PemKeySigner implements Signer {
  readonly method: 'key' | 'certificate' = 'key';
  readonly keyHint: string;
  protected readonly key: KeyObject;

  constructor(key: KeyObject) {
    this.key = key;
    this.keyHint = keyHint(key);
  }

  static async fromFile(path: string, passphrase?: string): Promise<PemKeySigner> {
    return new PemKeySigner(await readPrivateKey(path, passphrase));
  }

  /** Deterministic ECDSA (RFC 6979): the same model and key give the same bundle bytes. */
  async sign(data: Buffer): Promise<Buffer> {
    return signDigest(createHash(curveInfo(this.key).hash).update(data).digest(), this.key);
  }

  async signDigest(sha256: Buffer): Promise<Buffer> {
    return signDigest(sha256, this.key);
  }

  verificationMaterial(): Record<string, unknown> {
    return { publicKey: { hint: this.keyHint } };
  }
}

/** Signs with an EC private key and presents its certificate chain (certificate method). */
export class PemCertificateSigner extends PemKeySigner {
  override readonly method = 'certificate' as const;
  private readonly chain: X509Certificate[];

  constructor(key: KeyObject, certificate: X509Certificate, chain: X509Certificate[]) {
    super(key);
    const fromKey = createPublicKey(key).export({ type: 'spki', format: 'der' });
    const fromCert = certificate.publicKey.export({ type: 'spki', format: 'der' });
    if (!fromKey.equals(fromCert)) {
      throw new AegisError('KEY_MISMATCH', 'the signing certificate does not belong to the private key', {
        hint: 'Pass the certificate issued for this key with --cert.',
      });
    }
    this.chain = [certificate, ...chain];
  }

  static async fromFiles(keyPath: string, certPath: string, chainPaths: readonly string[], passphrase?: string): Promise<PemCertificateSigner> {
    const key = await readPrivateKey(keyPath, passphrase);
    const [cert] = await readCertificates([certPath]);
    const chain = chainPaths.length ? await readCertificates(chainPaths) : [];
    return new PemCertificateSigner(key, cert!, chain);
  }

  override verificationMaterial(): Record<string, unknown> {
    return { x509CertificateChain: { certificates: this.chain.map((c) => ({ rawBytes: c.raw.toString('base64') })) } };
  }
}
