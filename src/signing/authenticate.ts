import { createPublicKey, verify as verifySig, type KeyObject } from 'node:crypto';
import { AegisError } from '../errors.js';
import type { ParsedBundle } from './bundle.js';
import { pae, paeCompatV02 } from './dsse.js';
import { curveInfo, keyHint } from './keys.js';
import { assertUsable, type TrustAnchor } from './trust.js';
import { parseCertificate, validateChain } from './x509.js';

export interface SignerIdentity {
  method: 'key' | 'certificate';
  /** Hint (SHA-256 of the PEM public key) of the key whose signature verified. */
  keyHint: string;
  /** Id of the trust policy entry that allowed it. */
  trustedId?: string;
  subject?: string;
  issuer?: string;
  /** Set when the signature used the encoding of model_signing v0.2. */
  legacyEncoding?: boolean;
}

/**
 * Checks the DSSE signature with `key`. Accepts the current PAE with the
 * curve's hash, and, for bundles from model_signing v0.2, its buggy encoding
 * (with the curve's hash, or SHA-256 as v0.2 hard-coded).
 */
function envelopeVerifies(bundle: ParsedBundle, key: KeyObject): { ok: boolean; legacy: boolean } {
  const { hash } = curveInfo(key);
  const current = pae(bundle.payloadType, bundle.payload);
  const legacy = paeCompatV02(bundle.payloadType, bundle.payload);
  for (const s of bundle.signatures) {
    try {
      if (verifySig(hash, current, key, s.sig)) return { ok: true, legacy: false };
      if (verifySig(hash, legacy, key, s.sig) || (hash !== 'sha256' && verifySig('sha256', legacy, key, s.sig))) {
        return { ok: true, legacy: true };
      }
    } catch {
      // A signature that is not DER ECDSA simply does not verify.
    }
  }
  return { ok: false, legacy: false };
}

function badSignature(detail: string): AegisError {
  return new AegisError('SIGNATURE_INVALID', `signature does not verify: ${detail}`, {
    hint: 'The signed statement was altered, or it was signed with another key. Do not trust this model.',
  });
}

function bundleKey(raw: Buffer): KeyObject | undefined {
  try {
    const text = raw.toString('utf8');
    return text.includes('-----BEGIN') ? createPublicKey(text) : createPublicKey({ key: raw, format: 'der', type: 'spki' });
  } catch {
    return undefined;
  }
}

function methodMismatch(bundleMethod: string, flag: string): AegisError {
  return new AegisError('BUNDLE_METHOD_MISMATCH', `the bundle was signed with the ${bundleMethod} method; ${flag}`, {
    hint: bundleMethod === 'key' ? 'Verify it with --public-key KEY.pem or --trust TRUST.yaml.' : 'Verify it with --cert-chain CA.pem or --trust TRUST.yaml.',
  });
}

/** Establishes who signed the bundle and that the trust anchor allows them at `now`. */
export function authenticate(bundle: ParsedBundle, anchor: TrustAnchor, now: Date): SignerIdentity {
  const m = bundle.material;
  if (m.kind === 'certificate') {
    throw new AegisError('BUNDLE_METHOD_UNSUPPORTED', 'this is a Sigstore keyless bundle (Fulcio certificate + Rekor log)', {
      hint: 'Keyless bundles need the public Sigstore services; verify it with `model_signing verify sigstore`, or sign with a key or certificate for Aegis.',
    });
  }
  if (m.kind === 'publicKey') {
    if (anchor.kind === 'certificates') throw methodMismatch('key', 'a certificate chain cannot verify it');
    const embedded = m.rawBytes ? bundleKey(m.rawBytes) : undefined;
    const hint = m.hint ?? (embedded ? keyHint(embedded) : undefined);
    if (anchor.kind === 'publicKey') {
      const ours = keyHint(anchor.key);
      if (hint !== undefined && hint !== ours) {
        throw new AegisError('KEY_MISMATCH', `the bundle was signed by key ${hint.slice(0, 16)}…, not by ${anchor.source} (${ours.slice(0, 16)}…)`, {
          hint: 'Verify with the public key that matches the signing key, or use --trust with a policy listing it.',
          details: { bundleKeyHint: hint, givenKeyHint: ours },
        });
      }
      const r = envelopeVerifies(bundle, anchor.key);
      if (!r.ok) throw badSignature(`not by the key in ${anchor.source}`);
      return { method: 'key', keyHint: ours, ...(r.legacy ? { legacyEncoding: true } : {}) };
    }
    const candidates = hint ? anchor.policy.keys.filter((k) => k.hint === hint) : anchor.policy.keys;
    if (candidates.length === 0) {
      throw new AegisError('KEY_UNTRUSTED', `the bundle was signed by key ${hint ?? '(unknown)'}, which trust policy ${anchor.policy.path} does not list`, {
        hint: 'Add the signer\'s public key to the trust policy if you trust it, or get the model re-signed by a listed key.',
        details: { keyHint: hint },
      });
    }
    for (const k of candidates) {
      const r = envelopeVerifies(bundle, k.key);
      if (!r.ok) continue;
      // The same key may be listed under several ids: revoking any of them revokes the key.
      const revoked = anchor.policy.keys.find((e) => e.hint === k.hint && e.revoked);
      assertUsable(revoked ?? k, 'signing key', now);
      return { method: 'key', keyHint: k.hint, trustedId: k.id, ...(r.legacy ? { legacyEncoding: true } : {}) };
    }
    throw badSignature(hint ? `not by key ${candidates[0]!.id} named in the bundle` : 'by none of the keys in the trust policy');
  }

  // certificate method
  if (anchor.kind === 'publicKey') throw methodMismatch('certificate', 'a public key cannot verify it');
  const [leafDer, ...chainDer] = m.certificates;
  const leaf = parseCertificate(leafDer!, 'bundle signing certificate');
  const intermediates = chainDer.map((d, i) => parseCertificate(d, `bundle chain certificate ${i + 1}`));
  const roots = anchor.kind === 'certificates' ? anchor.roots : anchor.policy.authorities.map((a) => a.certificate);
  if (roots.length === 0) {
    throw new AegisError('CERT_CHAIN_UNTRUSTED', `trust policy ${anchor.kind === 'policy' ? anchor.policy.path : ''} lists no certificate authority`, {
      hint: 'Add the CA under certificateAuthorities in the trust policy.',
    });
  }
  const chain = validateChain(leaf, intermediates, roots, now);
  let trustedId: string | undefined;
  if (anchor.kind === 'policy') {
    const entry = anchor.policy.authorities.find((a) => a.certificate.fingerprint256 === chain.anchor.fingerprint256)!;
    assertUsable(entry, 'certificate authority', now);
    trustedId = entry.id;
  }
  const r = envelopeVerifies(bundle, leaf.publicKey);
  if (!r.ok) throw badSignature(`not by the key of certificate "${leaf.subject.replace(/\n/g, ', ')}"`);
  return {
    method: 'certificate',
    keyHint: keyHint(leaf.publicKey),
    subject: leaf.subject.replace(/\n/g, ', '),
    issuer: leaf.issuer.replace(/\n/g, ', '),
    ...(trustedId ? { trustedId } : {}),
    ...(r.legacy ? { legacyEncoding: true } : {}),
  };
}
