import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { AsnConvert } from '@peculiar/asn1-schema';
import {
  BasicConstraints,
  Certificate,
  ExtendedKeyUsage,
  KeyUsage,
  KeyUsageFlags,
  id_ce_basicConstraints,
  id_ce_extKeyUsage,
  id_ce_keyUsage,
  id_kp_codeSigning,
} from '@peculiar/asn1-x509';
import { AegisError, fsError } from '../errors.js';

/**
 * X.509 path validation for the OMS certificate method. Node's crypto checks
 * signatures and names; the ASN.1 library decodes the extensions Node does not
 * expose (key usage bits, basic constraints path length). The path building
 * itself is small and is the security contract, so it is written here.
 */

interface Extensions {
  keyUsage?: number;
  extKeyUsage?: string[];
  ca?: boolean;
  pathLen?: number;
}

function extensions(cert: X509Certificate): Extensions {
  const parsed = AsnConvert.parse(cert.raw, Certificate);
  const out: Extensions = {};
  for (const ext of parsed.tbsCertificate.extensions ?? []) {
    const value = ext.extnValue.buffer;
    if (ext.extnID === id_ce_keyUsage) out.keyUsage = AsnConvert.parse(value, KeyUsage).toNumber();
    else if (ext.extnID === id_ce_extKeyUsage) out.extKeyUsage = [...AsnConvert.parse(value, ExtendedKeyUsage)];
    else if (ext.extnID === id_ce_basicConstraints) {
      const bc = AsnConvert.parse(value, BasicConstraints);
      out.ca = bc.cA;
      if (bc.pathLenConstraint !== undefined) out.pathLen = bc.pathLenConstraint;
    }
  }
  return out;
}

export function parseCertificate(der: Buffer | string, source: string): X509Certificate {
  try {
    return new X509Certificate(der);
  } catch (err) {
    throw new AegisError('CERT_INVALID', `cannot parse certificate from ${source}: ${(err as Error).message}`, {
      cause: err,
      hint: 'Pass PEM-encoded X.509 certificates.',
      details: { source },
    });
  }
}

/** Reads every certificate in one or more PEM files. */
export async function readCertificates(paths: readonly string[]): Promise<X509Certificate[]> {
  const out: X509Certificate[] = [];
  for (const path of paths) {
    const text = await readFile(path, 'utf8').catch((err: unknown) => {
      throw fsError(err, path, 'certificate file');
    });
    const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
    if (blocks.length === 0) {
      throw new AegisError('CERT_INVALID', `no PEM certificate found in ${path}`, {
        hint: 'The file must contain one or more "-----BEGIN CERTIFICATE-----" blocks.',
        details: { path },
      });
    }
    for (const block of blocks) out.push(parseCertificate(block, path));
  }
  return out;
}

function validAt(cert: X509Certificate, at: Date): 'ok' | 'expired' | 'not-yet-valid' {
  if (at < new Date(cert.validFrom)) return 'not-yet-valid';
  if (at > new Date(cert.validTo)) return 'expired';
  return 'ok';
}

function describe(cert: X509Certificate): string {
  return cert.subject.replace(/\n/g, ', ');
}

export interface ChainResult {
  /** Leaf first, trust anchor last. */
  path: X509Certificate[];
  anchor: X509Certificate;
}

/**
 * Builds a path from the signing certificate through the presented
 * intermediates to one of the trust anchors, checking at time `at`: validity
 * periods, issuer signatures, CA flag and path length on issuers, key usage
 * (keyCertSign on issuers; digitalSignature or codeSigning on the leaf).
 */
export function validateChain(
  leaf: X509Certificate,
  intermediates: readonly X509Certificate[],
  anchors: readonly X509Certificate[],
  at: Date,
): ChainResult {
  const leafState = validAt(leaf, at);
  if (leafState !== 'ok') {
    throw new AegisError(
      'CERT_EXPIRED',
      `signing certificate "${describe(leaf)}" is ${leafState === 'expired' ? `expired (notAfter ${leaf.validTo})` : `not valid yet (notBefore ${leaf.validFrom})`}`,
      { hint: 'Re-sign the model with a current certificate.', details: { subject: describe(leaf), validFrom: leaf.validFrom, validTo: leaf.validTo } },
    );
  }
  const leafExt = extensions(leaf);
  const canSign =
    leafExt.keyUsage === undefined
      ? leafExt.extKeyUsage === undefined || leafExt.extKeyUsage.includes(id_kp_codeSigning)
      : (leafExt.keyUsage & KeyUsageFlags.digitalSignature) !== 0 ||
        (leafExt.extKeyUsage?.includes(id_kp_codeSigning) ?? false);
  if (!canSign) {
    throw new AegisError('CERT_USAGE', `signing certificate "${describe(leaf)}" is not allowed to sign (key usage)`, {
      hint: 'Issue a certificate with the digitalSignature key usage or the codeSigning extended key usage.',
    });
  }
  const isAnchor = (c: X509Certificate) => anchors.some((a) => a.fingerprint256 === c.fingerprint256);
  if (isAnchor(leaf)) return { path: [leaf], anchor: leaf };

  const candidates = [...anchors, ...intermediates];
  let lastProblem = '';
  const extend = (path: X509Certificate[]): ChainResult | undefined => {
    const current = path[path.length - 1]!;
    if (path.length > 10) return undefined;
    for (const issuer of candidates) {
      if (path.some((p) => p.fingerprint256 === issuer.fingerprint256)) continue;
      if (!current.checkIssued(issuer)) continue;
      if (!current.verify(issuer.publicKey)) {
        lastProblem = `"${describe(current)}" names "${describe(issuer)}" as issuer but its signature does not verify`;
        continue;
      }
      const ext = extensions(issuer);
      if (!ext.ca) {
        lastProblem = `"${describe(issuer)}" is not a CA certificate`;
        continue;
      }
      if (ext.keyUsage !== undefined && (ext.keyUsage & KeyUsageFlags.keyCertSign) === 0) {
        lastProblem = `"${describe(issuer)}" may not sign certificates (key usage)`;
        continue;
      }
      // Intermediates between this issuer and the leaf (the leaf itself does not count).
      if (ext.pathLen !== undefined && path.length - 1 > ext.pathLen) {
        lastProblem = `path length constraint of "${describe(issuer)}" exceeded`;
        continue;
      }
      const state = validAt(issuer, at);
      if (state !== 'ok') {
        lastProblem = `issuer "${describe(issuer)}" is ${state === 'expired' ? `expired (notAfter ${issuer.validTo})` : `not valid yet (notBefore ${issuer.validFrom})`}`;
        continue;
      }
      const next = [...path, issuer];
      if (isAnchor(issuer)) return { path: next, anchor: issuer };
      const found = extend(next);
      if (found) return found;
    }
    return undefined;
  };
  const result = extend([leaf]);
  if (!result) {
    throw new AegisError(
      'CERT_CHAIN_UNTRUSTED',
      `signing certificate "${describe(leaf)}" does not chain to a trusted root${lastProblem ? `: ${lastProblem}` : ''}`,
      {
        hint: 'Pass the CA that issued the signing certificate with --cert-chain (or add it to the trust policy).',
        details: { subject: describe(leaf), issuer: leaf.issuer.replace(/\n/g, ', ') },
      },
    );
  }
  return result;
}
