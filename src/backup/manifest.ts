import { z } from 'zod';
import { AegisError } from '../errors.js';
import { BACKUP_FORMATS, type BackupManifest } from './types.js';

/** Backup ids: the UTC start time to the second, `-N` added when that second was already taken. */
const ID = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z(?:-(\d+))?$/;

export function backupIdAt(date: Date, suffix = 0): string {
  const base = date.toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/[-:]/g, '');
  return suffix > 0 ? `${base}-${suffix}` : base;
}

export function isBackupId(id: string): boolean {
  return ID.test(id);
}

/** The time a backup id names; undefined for a string that is not an id. */
export function backupIdTime(id: string): Date | undefined {
  const m = ID.exec(id);
  if (!m) return undefined;
  const d = new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!));
  return Number.isNaN(d.getTime()) ? undefined : d;
}

const iso = z.string().refine((s) => !Number.isNaN(Date.parse(s)), 'must be an ISO 8601 time');

const manifestSchema = z
  .object({
    apiVersion: z.literal('aegis.dev/v1'),
    kind: z.literal('DatabaseBackup'),
    id: z.string().regex(ID, 'must be a backup id like 20261122T223000Z'),
    format: z.enum(BACKUP_FORMATS),
    engine: z.enum(['pglite', 'postgres']),
    serverVersion: z.string().min(1),
    tool: z.string().min(1),
    schemaVersion: z.number().int().min(1),
    tables: z.record(z.string(), z.number().int().min(0)),
    dump: z.object({ name: z.string().regex(/^dump\.[a-z.]+$/), sha256: z.string().regex(/^[0-9a-f]{64}$/), size: z.number().int().min(0) }).strict(),
    startedAt: iso,
    finishedAt: iso,
  })
  .strict();

export function serializeManifest(m: BackupManifest): Buffer {
  return Buffer.from(JSON.stringify(m, null, 2) + '\n', 'utf8');
}

/** Parses and validates manifest.json; BACKUP_MANIFEST_INVALID names the first problem. */
export function parseManifest(bytes: Buffer, where: string): BackupManifest {
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw invalid(where, `it is not JSON (${(err as Error).message})`, err);
  }
  const r = manifestSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw invalid(where, `${issue.path.join('.') || '(root)'} ${issue.message}`);
  }
  return r.data as BackupManifest;
}

function invalid(where: string, why: string, cause?: unknown): AegisError {
  return new AegisError('BACKUP_MANIFEST_INVALID', `the backup manifest ${where} is invalid: ${why}`, {
    ...(cause === undefined ? {} : { cause }),
    hint: 'The manifest was damaged or written by something else; this backup cannot be trusted. Restore another one (`aegis db backups`).',
    details: { manifest: where },
  });
}
