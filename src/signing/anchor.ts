import { AegisError } from '../errors.js';
import { readPublicKey } from './keys.js';
import { loadTrustPolicy, type TrustAnchor } from './trust.js';
import { readCertificates } from './x509.js';

export interface AnchorOptions {
  publicKey?: string;
  certChain?: readonly string[];
  trust?: string;
}

/** Builds the trust anchor from exactly one of: a public key, CA certificates, a trust policy. */
export async function resolveTrustAnchor(o: AnchorOptions): Promise<TrustAnchor> {
  const given = [o.publicKey, o.certChain?.length ? o.certChain : undefined, o.trust].filter((x) => x !== undefined);
  if (given.length !== 1) {
    throw new AegisError('USAGE', given.length === 0 ? 'no trust anchor given' : 'give only one trust anchor', {
      hint: 'Pass exactly one of --public-key KEY.pem, --cert-chain CA.pem (repeatable) or --trust TRUST.yaml.',
    });
  }
  if (o.publicKey) return { kind: 'publicKey', key: await readPublicKey(o.publicKey), source: o.publicKey };
  if (o.trust) return { kind: 'policy', policy: await loadTrustPolicy(o.trust) };
  return { kind: 'certificates', roots: await readCertificates(o.certChain!), source: o.certChain!.join(', ') };
}
