import { z } from 'zod';
import { AegisError } from '../errors.js';
import { IN_TOTO_PAYLOAD_TYPE } from './dsse.js';

export const BUNDLE_MEDIA_TYPE = 'application/vnd.dev.sigstore.bundle.v0.3+json';
const ACCEPTED_MEDIA_TYPES = new Set([BUNDLE_MEDIA_TYPE, 'application/vnd.dev.sigstore.bundle+json;version=0.3']);

export type VerificationMaterial =
  /** Key method: a key hint (current) or the key itself (older producers), or neither (oldest). */
  | { kind: 'publicKey'; hint?: string; rawBytes?: Buffer }
  /** Certificate method: signing certificate first, then the chain it presented. */
  | { kind: 'x509CertificateChain'; certificates: Buffer[] }
  /** Sigstore keyless (Fulcio certificate + Rekor entries): needs the public Sigstore network. */
  | { kind: 'certificate'; certificate: Buffer; tlogEntries: number };

export interface DsseSignature {
  sig: Buffer;
  keyid: string | null | undefined;
}

export interface ParsedBundle {
  mediaType: string;
  material: VerificationMaterial;
  payloadType: string;
  payload: Buffer;
  signatures: DsseSignature[];
}

// protobuf JSON encodes bytes as base64 (standard or URL-safe alphabet).
const b64 = z
  .string()
  .min(1, 'must not be empty')
  .regex(/^[A-Za-z0-9+/\-_]*={0,2}$/, 'must be base64')
  .transform((s) => Buffer.from(s, s.includes('-') || s.includes('_') ? 'base64url' : 'base64'));

const bundleSchema = z
  .object({
    mediaType: z.string(),
    verificationMaterial: z
      .object({
        publicKey: z
          .object({ hint: z.string().nullish(), rawBytes: b64.optional() })
          .loose()
          .optional(),
        x509CertificateChain: z
          .object({ certificates: z.array(z.object({ rawBytes: b64 }).loose()).min(1, 'must hold at least one certificate') })
          .loose()
          .optional(),
        certificate: z.object({ rawBytes: b64 }).loose().optional(),
        tlogEntries: z.array(z.unknown()).optional(),
      })
      .loose(),
    dsseEnvelope: z
      .object({
        payload: b64,
        payloadType: z.string(),
        signatures: z.array(z.object({ sig: b64, keyid: z.string().nullish() }).loose()),
      })
      .loose(),
  })
  .loose();

function malformed(message: string, field?: string): AegisError {
  return new AegisError('BUNDLE_MALFORMED', `bundle is malformed: ${message}`, {
    hint: 'Pass the .sig file written by `aegis model sign` (or model_signing); it may be truncated or corrupted.',
    details: field ? { field } : {},
  });
}

/** Parses a Sigstore bundle (v0.3) holding a DSSE envelope, without checking any signature. */
export function parseBundle(text: string): ParsedBundle {
  if (text.trim() === '') throw malformed('the file is empty');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw malformed(`not valid JSON (${(err as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw malformed('top level is not a JSON object');
  const obj = json as Record<string, unknown>;
  if (obj.dsseEnvelope === undefined) {
    throw malformed(
      obj.messageSignature !== undefined
        ? 'it holds a messageSignature, not a DSSE envelope (is it a cosign blob signature?)'
        : 'dsseEnvelope is missing',
      'dsseEnvelope',
    );
  }
  if (obj.verificationMaterial === undefined) throw malformed('verificationMaterial is missing', 'verificationMaterial');
  const parsed = bundleSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.map(String).join('.');
    throw malformed(`${field}: ${issue.message}`, field);
  }
  const b = parsed.data;
  if (!ACCEPTED_MEDIA_TYPES.has(b.mediaType)) {
    throw new AegisError('BUNDLE_MEDIA_TYPE', `bundle mediaType is ${JSON.stringify(b.mediaType)}, expected ${BUNDLE_MEDIA_TYPE}`, {
      hint: 'Only Sigstore bundle v0.3 files carry OMS signatures; re-sign the model.',
      details: { mediaType: b.mediaType },
    });
  }
  const env = b.dsseEnvelope;
  if (env.payloadType !== IN_TOTO_PAYLOAD_TYPE) {
    throw new AegisError('PAYLOAD_TYPE', `DSSE payloadType is ${JSON.stringify(env.payloadType)}, expected ${IN_TOTO_PAYLOAD_TYPE}`, {
      hint: 'The envelope does not carry an in-toto statement; re-sign the model.',
      details: { payloadType: env.payloadType },
    });
  }
  if (env.signatures.length === 0) throw malformed('the DSSE envelope has no signatures', 'dsseEnvelope.signatures');

  const vm = b.verificationMaterial;
  const present = [vm.publicKey, vm.x509CertificateChain, vm.certificate].filter((x) => x !== undefined).length;
  if (present !== 1) {
    throw malformed(
      present === 0
        ? 'verificationMaterial has no publicKey, x509CertificateChain or certificate'
        : 'verificationMaterial holds more than one kind of key material',
      'verificationMaterial',
    );
  }
  let material: VerificationMaterial;
  if (vm.publicKey) {
    material = {
      kind: 'publicKey',
      ...(vm.publicKey.hint ? { hint: vm.publicKey.hint } : {}),
      ...(vm.publicKey.rawBytes ? { rawBytes: vm.publicKey.rawBytes } : {}),
    };
  } else if (vm.x509CertificateChain) {
    material = { kind: 'x509CertificateChain', certificates: vm.x509CertificateChain.certificates.map((c) => c.rawBytes) };
  } else {
    const tlog = vm.tlogEntries ?? [];
    if (tlog.length === 0) {
      throw malformed('a Sigstore (certificate) bundle must carry at least one transparency log entry', 'verificationMaterial.tlogEntries');
    }
    material = { kind: 'certificate', certificate: vm.certificate!.rawBytes, tlogEntries: tlog.length };
  }
  return {
    mediaType: b.mediaType,
    material,
    payloadType: env.payloadType,
    payload: env.payload,
    signatures: env.signatures.map((s) => ({ sig: s.sig, keyid: s.keyid })),
  };
}

export function serializeBundle(material: Record<string, unknown>, payload: Buffer, sig: Buffer): string {
  return (
    JSON.stringify(
      {
        mediaType: BUNDLE_MEDIA_TYPE,
        verificationMaterial: { ...material, tlogEntries: [] },
        dsseEnvelope: {
          payload: payload.toString('base64'),
          payloadType: IN_TOTO_PAYLOAD_TYPE,
          signatures: [{ sig: sig.toString('base64'), keyid: '' }],
        },
      },
      null,
      2,
    ) + '\n'
  );
}
