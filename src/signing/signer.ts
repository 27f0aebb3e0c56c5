/**
 * Signer role: produces an ECDSA signature and the bundle's verification
 * material. One implementation per folder (pem/ now; KMS and Vault later),
 * chosen by the caller and passed in.
 */
export interface Signer {
  readonly method: 'key' | 'certificate';
  /** Key hint (SHA-256 of the PEM public key): the key id used in trust policies. */
  readonly keyHint: string;
  /** DER ECDSA signature over `data`, hashed with the curve's hash. */
  sign(data: Buffer): Promise<Buffer>;
  /** DER ECDSA signature over a precomputed SHA-256 digest (detached archive signatures). */
  signDigest(sha256: Buffer): Promise<Buffer>;
  /** `verificationMaterial` of the Sigstore bundle, without tlogEntries. */
  verificationMaterial(): Record<string, unknown>;
}
