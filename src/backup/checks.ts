import type { Queryable } from '../db/types.js';
import { isAegisError } from '../errors.js';
import { decodeBlobSignature, verifyBlobSignature } from '../signing/blob.js';
import type { TrustAnchor } from '../signing/trust.js';
import { splitObjectUri } from '../store/index.js';
import type { ArtifactStore } from '../store/types.js';
import { readSmall } from './catalog.js';
import type { CheckResult } from './types.js';

/**
 * Smoke checks after a restore. Each returns passed, failed, or skipped
 * with the reason; a skipped check never counts as passed.
 */
const MAX_PROBLEMS = 20;
const MAX_SIGNATURE_BYTES = 64 * 1024;

export async function checkRowCounts(q: Queryable, expected: Record<string, number>): Promise<CheckResult> {
  const problems: string[] = [];
  for (const [table, rows] of Object.entries(expected)) {
    const present = await q.query<{ ok: boolean }>('SELECT to_regclass($1) IS NOT NULL AS ok', [table]);
    if (!present.rows[0]?.ok) {
      problems.push(`${table}: missing (the manifest records ${rows} rows)`);
      continue;
    }
    const r = await q.query<{ n: number | bigint }>(`SELECT count(*) AS n FROM ${table}`);
    const n = Number(r.rows[0]!.n);
    if (n !== rows) problems.push(`${table}: ${n} rows, the manifest records ${rows}`);
  }
  const tables = Object.keys(expected).length;
  const total = Object.values(expected).reduce((a, b) => a + b, 0);
  return problems.length
    ? { name: 'row-counts', status: 'failed', detail: `${problems.length} of ${tables} tables differ from the manifest`, problems: problems.slice(0, MAX_PROBLEMS) }
    : { name: 'row-counts', status: 'passed', detail: `${tables} tables, ${total} rows, as in the manifest` };
}

export interface ArchiveCheckOptions {
  trust: TrustAnchor;
  /** The platform's artifact store: archives under its URI are read through it (one client for all). */
  store?: ArtifactStore;
  now?: Date;
  /** Objects checked at once; default 16. */
  concurrency?: number;
}

interface VersionRow {
  name: string;
  version: string;
  archive_uri: string;
  archive_sha256: string;
}

/**
 * Every registered model version's archive still exists in the store, and
 * its detached signature (`<archive>.sig`) verifies against the trust anchor
 * over the SHA-256 the registry recorded. Identical (archive, digest) pairs
 * are checked once. The archive's bytes are not re-hashed here: that is what
 * fetch_and_verify_model does before any server loads it.
 */
export async function checkModelArchives(q: Queryable, o: ArchiveCheckOptions | { skip: string }): Promise<CheckResult> {
  if ('skip' in o) return { name: 'model-archives', status: 'skipped', detail: o.skip };
  const present = await q.query<{ ok: boolean }>("SELECT to_regclass('model_versions') IS NOT NULL AND to_regclass('models') IS NOT NULL AS ok");
  if (!present.rows[0]?.ok) return { name: 'model-archives', status: 'failed', detail: 'the restored database has no model registry tables' };
  const r = await q.query<VersionRow>(
    'SELECT m.name, v.version, v.archive_uri, v.archive_sha256 FROM model_versions v JOIN models m ON m.id = v.model_id ORDER BY v.id',
  );
  const byArchive = new Map<string, VersionRow[]>();
  for (const row of r.rows) {
    const k = `${row.archive_uri}\n${row.archive_sha256}`;
    byArchive.set(k, [...(byArchive.get(k) ?? []), row]);
  }
  const stores = new Map<string, ArtifactStore>();
  const resolve = (uri: string): { store: ArtifactStore; key: string } => {
    if (o.store && uri.startsWith(`${o.store.uri}/`)) return { store: o.store, key: uri.slice(o.store.uri.length + 1) };
    const parent = uri.slice(0, uri.lastIndexOf('/'));
    const cached = stores.get(parent);
    if (cached) return { store: cached, key: uri.slice(parent.length + 1) };
    const split = splitObjectUri(uri);
    stores.set(parent, split.store);
    return split;
  };
  const now = o.now ?? new Date();
  const problems: string[] = [];
  let failedVersions = 0;
  const checkOne = async (rows: VersionRow[]): Promise<void> => {
    const { archive_uri: uri, archive_sha256: sha } = rows[0]!;
    const problem = await archiveProblem(uri, sha, resolve, o.trust, now);
    if (!problem) return;
    failedVersions += rows.length;
    for (const row of rows) if (problems.length < MAX_PROBLEMS) problems.push(`${row.name}@${row.version}: ${problem}`);
  };
  const queue = [...byArchive.values()];
  const workers = Array.from({ length: Math.min(o.concurrency ?? 16, queue.length) }, async () => {
    for (let next = queue.shift(); next; next = queue.shift()) await checkOne(next);
  });
  await Promise.all(workers);
  const versions = r.rows.length;
  if (failedVersions > 0) {
    return { name: 'model-archives', status: 'failed', detail: `${failedVersions} of ${versions} model versions have a missing or unverifiable archive`, problems };
  }
  return { name: 'model-archives', status: 'passed', detail: `${versions} model versions (${byArchive.size} archives): archive present, signature verified` };
}

async function archiveProblem(
  uri: string,
  sha: string,
  resolve: (uri: string) => { store: ArtifactStore; key: string },
  trust: TrustAnchor,
  now: Date,
): Promise<string | undefined> {
  try {
    const { store, key } = resolve(uri);
    const head = await store.head(key);
    if (!head) return `archive missing: ${uri}`;
    let sigBytes: Buffer;
    try {
      sigBytes = await readSmall(await store.get(`${key}.sig`), MAX_SIGNATURE_BYTES, `${uri}.sig`);
    } catch (err) {
      if (isAegisError(err, 'STORE_NOT_FOUND')) return `signature missing: ${uri}.sig`;
      throw err;
    }
    const signature = decodeBlobSignature(sigBytes, `${uri}.sig`);
    verifyBlobSignature(Buffer.from(sha, 'hex'), signature, trust, now, uri);
    return undefined;
  } catch (err) {
    return isAegisError(err) ? `${err.code}: ${err.message}` : `${(err as Error).message}`;
  }
}

/** GETs the control plane's health URL: 2xx passes. No URL: skipped (there is nothing to ask), never passed. */
export async function checkHealth(url: string | undefined, timeoutMs = 5000): Promise<CheckResult> {
  if (!url) {
    return {
      name: 'control-plane-health',
      status: 'skipped',
      detail: 'no control-plane health URL configured (backup.healthUrl, AEGIS_BACKUP_HEALTH_URL or --health-url)',
    };
  }
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    await res.body?.cancel();
    if (res.ok) return { name: 'control-plane-health', status: 'passed', detail: `${url} answered HTTP ${res.status}` };
    return { name: 'control-plane-health', status: 'failed', detail: `${url} answered HTTP ${res.status}` };
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    return { name: 'control-plane-health', status: 'failed', detail: `${url} did not answer: ${cause?.code ?? cause?.message ?? (err as Error).message}` };
  }
}
