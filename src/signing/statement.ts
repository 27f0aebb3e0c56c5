import { createHash } from 'node:crypto';
import { z } from 'zod';
import { assertSafeResourceName } from '../artifact/paths.js';
import { isSupportedHash, type HashAlgorithm, type Resource } from '../artifact/hash.js';
import { AegisError } from '../errors.js';

export const STATEMENT_TYPE = 'https://in-toto.io/Statement/v1';
export const PREDICATE_TYPE = 'https://model_signing/signature/v1.0';
/** Predicate of model_signing v0.2 bundles: the subjects are the files themselves. */
export const LEGACY_PREDICATE_TYPE = 'https://model_signing/Digests/v0.1';

export interface Serialization {
  method: 'files' | 'shards';
  hashType: HashAlgorithm;
  allowSymlinks: boolean;
  shardSize?: number;
  ignorePaths: string[];
}

/** What a signature says about a model: its resources and how they were computed. */
export interface SignedManifest {
  modelName: string;
  rootDigest: string;
  serialization: Serialization;
  resources: Resource[];
  predicateType: string;
}

/** OMS root digest: SHA-256 over the concatenated raw resource digests, in listed order. */
export function rootDigest(resources: readonly Resource[]): string {
  const h = createHash('sha256');
  for (const r of resources) h.update(Buffer.from(r.digest, 'hex'));
  return h.digest('hex');
}

export function buildStatement(modelName: string, resources: readonly Resource[], s: Serialization): object {
  const serialization: Record<string, unknown> = {
    method: s.method,
    hash_type: s.hashType,
    allow_symlinks: s.allowSymlinks,
  };
  if (s.method === 'shards') serialization.shard_size = s.shardSize;
  if (s.ignorePaths.length) serialization.ignore_paths = [...s.ignorePaths];
  return {
    _type: STATEMENT_TYPE,
    subject: [{ name: modelName, digest: { sha256: rootDigest(resources) } }],
    predicateType: PREDICATE_TYPE,
    predicate: {
      serialization,
      resources: resources.map((r) => ({ name: r.name, algorithm: r.algorithm, digest: r.digest })),
    },
  };
}

const hex = z.string().regex(/^[0-9a-f]+$/, 'must be lowercase hex');
const subjectSchema = z.object({ name: z.string(), digest: z.object({ sha256: hex.length(64) }).loose() }).loose();
const resourceSchema = z.object({ name: z.string().min(1), algorithm: z.string(), digest: hex }).loose();
const serializationSchema = z
  .object({
    method: z.enum(['files', 'shards']),
    hash_type: z.string(),
    // Some producers wrote the flag as a string; the reference accepts both.
    allow_symlinks: z.union([z.boolean(), z.enum(['true', 'false']).transform((v) => v === 'true')]),
    shard_size: z.number().int().positive().optional(),
    ignore_paths: z.array(z.string().min(1)).optional(),
  })
  .loose();
const statementSchema = z
  .object({
    _type: z.string(),
    subject: z.array(subjectSchema),
    predicateType: z.string(),
    predicate: z.unknown().optional(),
  })
  .loose();
const predicateSchema = z
  .object({ resources: z.array(resourceSchema).min(1, 'must list at least one resource'), serialization: serializationSchema })
  .loose();

function malformed(message: string, details: Record<string, unknown> = {}): AegisError {
  return new AegisError('STATEMENT_MALFORMED', `signed statement is malformed: ${message}`, {
    hint: 'The bundle was not produced by an OMS signer or was altered; re-sign the model.',
    details,
  });
}

function zodMessage(err: z.ZodError, prefix: string): string {
  const i = err.issues[0]!;
  const path = [prefix, ...i.path.map(String)].filter(Boolean).join('.');
  return `${path}: ${i.message}`;
}

/** Splits a resource name into the file path and, for shards, the byte range. */
export function resourcePath(name: string, method: 'files' | 'shards'): { path: string; start?: number; end?: number } {
  if (method === 'files') return { path: name };
  const m = /^(.*):(\d+):(\d+)$/.exec(name);
  if (!m) throw malformed(`shard resource ${JSON.stringify(name)} is not "path:start:end"`);
  const start = Number(m[2]);
  const end = Number(m[3]);
  if (!(start < end)) throw malformed(`shard resource ${JSON.stringify(name)} has an empty or inverted range`);
  return { path: m[1]!, start, end };
}

/** Parses and checks the in-toto statement carried in a verified DSSE payload. */
export function parseStatement(payload: Buffer): SignedManifest {
  let json: unknown;
  try {
    json = JSON.parse(payload.toString('utf8'));
  } catch (err) {
    throw malformed(`payload is not JSON (${(err as Error).message})`);
  }
  const st = statementSchema.safeParse(json);
  if (!st.success) throw malformed(zodMessage(st.error, 'statement'));
  const s = st.data;
  if (s._type !== STATEMENT_TYPE) {
    throw malformed(`_type is ${JSON.stringify(s._type)}, expected ${STATEMENT_TYPE}`, { field: '_type' });
  }
  if (s.predicateType === LEGACY_PREDICATE_TYPE) return parseLegacy(s.subject);
  if (s.predicateType !== PREDICATE_TYPE) {
    throw new AegisError('PREDICATE_TYPE', `predicateType is ${JSON.stringify(s.predicateType)}, expected ${PREDICATE_TYPE}`, {
      hint: 'This is not an OpenSSF Model Signing statement; sign the model with `aegis model sign`.',
      details: { predicateType: s.predicateType },
    });
  }
  if (s.subject.length !== 1) {
    throw malformed(`subject must have exactly one entry, found ${s.subject.length}`, { field: 'subject' });
  }
  if (s.predicate === undefined || s.predicate === null) throw malformed('predicate is missing', { field: 'predicate' });
  const p = predicateSchema.safeParse(s.predicate);
  if (!p.success) throw malformed(zodMessage(p.error, 'predicate'));
  const ser = p.data.serialization;
  if (!isSupportedHash(ser.hash_type)) {
    throw new AegisError('HASH_UNSUPPORTED', `hash type ${JSON.stringify(ser.hash_type)} is not supported`, {
      hint: 'Aegis verifies sha256 and blake2b manifests; re-sign the model with sha256.',
    });
  }
  if (ser.method === 'shards' && ser.shard_size === undefined) throw malformed('shards serialization without shard_size');
  const seen = new Set<string>();
  const resources: Resource[] = p.data.resources.map((r) => {
    if (!isSupportedHash(r.algorithm)) {
      throw new AegisError('HASH_UNSUPPORTED', `resource ${r.name} uses unsupported algorithm ${r.algorithm}`, {
        hint: 'Re-sign the model with sha256.',
      });
    }
    assertSafeResourceName(resourcePath(r.name, ser.method).path);
    if (seen.has(r.name)) {
      throw new AegisError('RESOURCE_DUPLICATE', `bundle lists resource ${JSON.stringify(r.name)} twice`, {
        hint: 'The bundle was crafted or corrupted; do not trust this model.',
        details: { name: r.name },
      });
    }
    seen.add(r.name);
    return { name: r.name, algorithm: r.algorithm, digest: r.digest };
  });
  const subject = s.subject[0]!;
  const computed = rootDigest(resources);
  if (computed !== subject.digest.sha256) {
    throw new AegisError(
      'ROOT_DIGEST_MISMATCH',
      `statement is inconsistent: subject digest ${subject.digest.sha256} but the listed resources hash to ${computed}`,
      { hint: 'The resource list was altered after the digest was computed; do not trust this model.' },
    );
  }
  return {
    modelName: subject.name,
    rootDigest: computed,
    serialization: {
      method: ser.method,
      hashType: ser.hash_type,
      allowSymlinks: ser.allow_symlinks,
      ...(ser.shard_size !== undefined ? { shardSize: ser.shard_size } : {}),
      ignorePaths: ser.ignore_paths ?? [],
    },
    resources,
    predicateType: PREDICATE_TYPE,
  };
}

function parseLegacy(subjects: z.infer<typeof subjectSchema>[]): SignedManifest {
  if (subjects.length === 0) throw malformed('subject is empty', { field: 'subject' });
  const seen = new Set<string>();
  const resources: Resource[] = subjects.map((s) => {
    assertSafeResourceName(s.name);
    if (seen.has(s.name)) {
      throw new AegisError('RESOURCE_DUPLICATE', `bundle lists resource ${JSON.stringify(s.name)} twice`, {
        hint: 'The bundle was crafted or corrupted; do not trust this model.',
      });
    }
    seen.add(s.name);
    return { name: s.name, algorithm: 'sha256', digest: s.digest.sha256 };
  });
  return {
    modelName: '',
    rootDigest: rootDigest(resources),
    serialization: { method: 'files', hashType: 'sha256', allowSymlinks: false, ignorePaths: [] },
    resources,
    predicateType: LEGACY_PREDICATE_TYPE,
  };
}
