import type { KeyObject, X509Certificate } from 'node:crypto';
import { mkdir, readFile, writeFile, rename } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { z } from 'zod';
import { AegisError, fsError } from '../errors.js';
import { keyHint, parsePublicKey } from './keys.js';
import { parseCertificate } from './x509.js';

/**
 * Trust policy (TRUST.yaml): which keys and certificate authorities may sign
 * models, and when. A key is matched to a bundle by its hint (SHA-256 of the
 * PEM public key), so several keys can be trusted at once: rotation is adding
 * the new key and giving the old one a `notAfter`; revocation is `revoked: true`,
 * effective at the next verification.
 */
const when = z.union([z.date(), z.iso.datetime({ offset: true })]).transform((v) => (v instanceof Date ? v : new Date(v)));

const entryFields = {
  id: z.string().min(1).regex(/^[A-Za-z0-9._:@-]+$/, 'use letters, digits and . _ : @ -'),
  notBefore: when.optional(),
  notAfter: when.optional(),
  revoked: z.boolean().default(false),
  reason: z.string().optional(),
  description: z.string().optional(),
};

const policySchema = z
  .object({
    apiVersion: z.literal('aegis.dev/v1'),
    kind: z.literal('TrustPolicy'),
    keys: z.array(z.object({ ...entryFields, publicKey: z.string().min(1) }).strict()).default([]),
    certificateAuthorities: z
      .array(z.object({ ...entryFields, certificate: z.string().min(1) }).strict())
      .default([]),
  })
  .strict();

export type TrustPolicyDocument = z.input<typeof policySchema>;

interface Validity {
  id: string;
  notBefore?: Date;
  notAfter?: Date;
  revoked: boolean;
  reason?: string;
}

export interface TrustedKey extends Validity {
  key: KeyObject;
  hint: string;
}

export interface TrustedAuthority extends Validity {
  certificate: X509Certificate;
}

export interface TrustPolicy {
  path: string;
  keys: TrustedKey[];
  authorities: TrustedAuthority[];
}

export type TrustAnchor =
  | { kind: 'publicKey'; key: KeyObject; source: string }
  | { kind: 'certificates'; roots: X509Certificate[]; source: string }
  | { kind: 'policy'; policy: TrustPolicy };

/** A schema issue as `field.path: message`, so the user knows which setting to fix. */
function describeIssue(i: z.core.$ZodIssue): string {
  return `${i.path.map(String).join('.') || '(root)'}: ${i.message}`;
}

function policyError(path: string, message: string, cause?: unknown): AegisError {
  return new AegisError('TRUST_POLICY_INVALID', `trust policy ${path} is invalid: ${message}`, {
    cause,
    hint: 'See docs/trust-policy.md for the format, or create one with `aegis keys rotate --trust FILE`.',
    details: { path },
  });
}

/** A policy value is a path (relative to the policy file) or an inline PEM block. */
async function material(ref: string, base: string, what: string): Promise<{ text: string; source: string }> {
  if (ref.includes('-----BEGIN')) return { text: ref, source: `inline ${what}` };
  const path = isAbsolute(ref) ? ref : resolve(base, ref);
  const text = await readFile(path, 'utf8').catch((err: unknown) => {
    throw fsError(err, path, what);
  });
  return { text, source: path };
}

export async function loadTrustPolicy(path: string): Promise<TrustPolicy> {
  const text = await readFile(path, 'utf8').catch((err: unknown) => {
    throw fsError(err, path, 'trust policy');
  });
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw policyError(path, (err as Error).message, err);
  }
  const parsed = policySchema.safeParse(raw);
  if (!parsed.success) throw policyError(path, describeIssue(parsed.error.issues[0]!));
  const base = dirname(resolve(path));
  const ids = new Set<string>();
  const checkId = (id: string) => {
    if (ids.has(id)) throw policyError(path, `id ${id} is used twice`);
    ids.add(id);
  };
  const keys: TrustedKey[] = [];
  for (const k of parsed.data.keys) {
    checkId(k.id);
    const m = await material(k.publicKey, base, `public key of ${k.id}`);
    const key = parsePublicKey(m.text, m.source);
    keys.push({ ...validity(k), key, hint: keyHint(key) });
  }
  const authorities: TrustedAuthority[] = [];
  for (const a of parsed.data.certificateAuthorities) {
    checkId(a.id);
    const m = await material(a.certificate, base, `certificate of ${a.id}`);
    authorities.push({ ...validity(a), certificate: parseCertificate(m.text, m.source) });
  }
  if (keys.length === 0 && authorities.length === 0) throw policyError(path, 'it trusts no key and no certificate authority');
  return { path, keys, authorities };
}

function validity(e: { id: string; notBefore?: Date | undefined; notAfter?: Date | undefined; revoked: boolean; reason?: string | undefined }): Validity {
  return {
    id: e.id,
    revoked: e.revoked,
    ...(e.notBefore ? { notBefore: e.notBefore } : {}),
    ...(e.notAfter ? { notAfter: e.notAfter } : {}),
    ...(e.reason ? { reason: e.reason } : {}),
  };
}

/** Throws unless the policy entry may be used at `now`. */
export function assertUsable(entry: Validity, what: string, now: Date): void {
  if (entry.revoked) {
    throw new AegisError('KEY_REVOKED', `${what} "${entry.id}" is revoked${entry.reason ? `: ${entry.reason}` : ''}`, {
      hint: 'Models signed with a revoked key must be re-signed with a trusted key.',
      details: { id: entry.id },
    });
  }
  if (entry.notBefore && now < entry.notBefore) {
    throw new AegisError('KEY_NOT_YET_VALID', `${what} "${entry.id}" is not valid before ${entry.notBefore.toISOString()}`, {
      hint: 'Wait until the key becomes valid, or correct notBefore in the trust policy.',
      details: { id: entry.id, notBefore: entry.notBefore.toISOString() },
    });
  }
  if (entry.notAfter && now >= entry.notAfter) {
    throw new AegisError('KEY_EXPIRED', `${what} "${entry.id}" expired at ${entry.notAfter.toISOString()}`, {
      hint: 'Re-sign the model with the current key (`aegis keys rotate` writes one).',
      details: { id: entry.id, notAfter: entry.notAfter.toISOString() },
    });
  }
}

/** Reads the policy document as YAML data (for tools that edit it). */
export async function readPolicyDocument(path: string): Promise<TrustPolicyDocument> {
  const text = await readFile(path, 'utf8').catch((err: unknown) => {
    throw fsError(err, path, 'trust policy');
  });
  let doc: TrustPolicyDocument | null;
  try {
    doc = parseYaml(text) as TrustPolicyDocument | null;
  } catch (err) {
    throw policyError(path, (err as Error).message, err);
  }
  if (!doc || typeof doc !== 'object') throw policyError(path, 'not a YAML mapping');
  return doc;
}

/** Writes a policy document atomically (temp file + rename). */
export async function writePolicyDocument(path: string, doc: TrustPolicyDocument): Promise<void> {
  const parsed = policySchema.safeParse(doc);
  if (!parsed.success) throw policyError(path, describeIssue(parsed.error.issues[0]!));
  const header = '# Aegis trust policy: keys and CAs allowed to sign models. See docs/trust-policy.md.\n';
  const tmp = `${path}.tmp-${process.pid}`;
  await mkdir(dirname(resolve(path)), { recursive: true });
  await writeFile(tmp, header + stringifyYaml(doc, { lineWidth: 0 }), { mode: 0o644 });
  await rename(tmp, path);
}
