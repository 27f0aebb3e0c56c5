import type { Readable } from 'node:stream';
import type { Queryable } from '../db/types.js';
import { AegisError, isAegisError } from '../errors.js';
import { blobKeys, blobSigner, decodeBlobSignature, notABlobSignature } from '../signing/blob.js';
import { VerifiedSignatureCache } from '../signing/verified-cache.js';
import { BlobVerifierPool, type LocalSignature } from '../signing/blob-pool.js';
import type { TrustAnchor } from '../signing/trust.js';
import { splitObjectUri } from '../store/index.js';
import type { ArtifactStore } from '../store/types.js';
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
  /** Store reads in flight at once; default 32. */
  concurrency?: number;
  /** Threads verifying signatures; default one per core, 0 = on this thread. A registry of fewer than 64 archives is always checked on this thread. */
  verifyThreads?: number;
  /**
   * File of signatures verified by earlier checks (signing/verified-cache.ts):
   * those are not verified again, and new ones are added. Default: none.
   * The CLI uses `<home>/cache/verified-signatures`.
   */
  signatureCache?: string;
}

export interface VersionRow {
  name: string;
  version: string;
  archive_uri: string;
  archive_sha256: string;
}

/** One distinct (archive, digest) of the registry and the versions that name it, in registry order. */
interface Archive {
  order: number;
  uri: string;
  sha256: string;
  rows: VersionRow[];
  store?: ArtifactStore;
  key?: string;
}

/** Archives read, then verified, per round; the next round's reads overlap this round's verification. */
const ROUND = 1024;
/** Below this many archives, starting verification threads costs more than it saves. */
const MIN_ARCHIVES_FOR_THREADS = 64;
/** A listing replaces per-object requests on a remote store when at least this many archives share a folder. */
const MIN_ARCHIVES_TO_LIST = 2;

/**
 * Every registered model version's archive still exists in the store, and
 * its detached signature (`<archive>.sig`) verifies against the trust anchor
 * over the SHA-256 the registry recorded. Identical (archive, digest) pairs
 * are checked once.
 *
 * What it checks, and why: existence (a store lookup) plus the signature over
 * the recorded digest. The archive's bytes are not re-hashed: that would read
 * every archive in full (model sizes, times 100k versions), and it is what
 * fetch_and_verify_model does before any server loads one. The signature over
 * the recorded digest is what ties the restored registry row to what the
 * signer signed. Cost per archive (100k versions, 2-core machine, CPU): the
 * ECDSA verification (~0.11 ms, spread over worker threads: BlobVerifierPool,
 * digest-verify.ts) dominates; reads come next (~7 µs, on this thread,
 * overlapping the previous round's verification). Reads: on a local
 * store, a stat of the archive and a read of the .sig through its path, as
 * plain system calls; on a remote one (S3), one listing
 * per model folder (1000 keys a request) instead of a HEAD per archive and
 * per signature, then a GET per signature present.
 */
export async function checkModelArchives(q: Queryable, o: ArchiveCheckOptions | { skip: string }): Promise<CheckResult> {
  if ('skip' in o) return { name: 'model-archives', status: 'skipped', detail: o.skip };
  const present = await q.query<{ ok: boolean }>("SELECT to_regclass('model_versions') IS NOT NULL AND to_regclass('models') IS NOT NULL AS ok");
  if (!present.rows[0]?.ok) return { name: 'model-archives', status: 'failed', detail: 'the restored database has no model registry tables' };
  // The worker threads start (~0.1 s) while the registry is read, when it is large enough to use them.
  const count = await q.query<{ n: number | bigint }>('SELECT count(*) AS n FROM model_versions');
  return withVerifierPool(Number(count.rows[0]!.n), o, async (pool) => checkRows(await registryRows(q), o, pool));
}

/** The registry's archives in registry order: what the check reads from a restored database. */
const REGISTRY_ROWS = 'SELECT m.name, v.version, v.archive_uri, v.archive_sha256 FROM model_versions v JOIN models m ON m.id = v.model_id ORDER BY v.id';

/**
 * The same check over registry rows read elsewhere (from the dump, while it
 * is being loaded: see restore.ts). The caller proves the restored database
 * holds the same rows (registryRows + sameRegistryRows) before it counts the
 * result. `signal` stops it between rounds (the restore failed).
 */
export async function checkArchiveRows(rows: VersionRow[], o: ArchiveCheckOptions, signal?: AbortSignal): Promise<CheckResult> {
  return withVerifierPool(rows.length, o, (pool) => checkRows(rows, o, pool, signal));
}

/** The registry rows the archive check reads, from a database. */
export async function registryRows(q: Queryable): Promise<VersionRow[]> {
  return (await q.query<VersionRow>(REGISTRY_ROWS)).rows;
}

/** The same rows, field for field, in the same order (an exact comparison: no digest to collide). */
export function sameRegistryRows(a: readonly VersionRow[], b: readonly VersionRow[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x.name !== y.name || x.version !== y.version || x.archive_uri !== y.archive_uri || x.archive_sha256 !== y.archive_sha256) return false;
  }
  return true;
}

/** Runs `check` with a started verifier pool sized for `archives` (threads only for a large registry), closed after. */
async function withVerifierPool(archives: number, o: ArchiveCheckOptions, check: (pool: BlobVerifierPool) => Promise<CheckResult>): Promise<CheckResult> {
  const threads = archives < MIN_ARCHIVES_FOR_THREADS ? 0 : o.verifyThreads;
  const pool = new BlobVerifierPool(o.trust, { ...(threads === undefined ? {} : { threads }) });
  try {
    pool.start();
    return await check(pool);
  } finally {
    await pool.close();
  }
}

async function checkRows(rows: VersionRow[], o: ArchiveCheckOptions, pool: BlobVerifierPool, signal?: AbortSignal): Promise<CheckResult> {
  const byArchive = new Map<string, Archive>();
  for (const row of rows) {
    const k = `${row.archive_uri}\n${row.archive_sha256}`;
    const a = byArchive.get(k);
    if (a) a.rows.push(row);
    else byArchive.set(k, { order: byArchive.size, uri: row.archive_uri, sha256: row.archive_sha256, rows: [row] });
  }
  const archives = [...byArchive.values()];
  const failures: { archive: Archive; problem: string }[] = [];
  const fail = (archive: Archive, err: unknown) =>
    failures.push({ archive, problem: typeof err === 'string' ? err : isAegisError(err) ? `${err.code}: ${err.message}` : `${(err as Error).message}` });

  const stores = new Map<string, ArtifactStore>();
  for (const a of archives) {
    try {
      Object.assign(a, resolveArchive(a.uri, o.store, stores));
    } catch (err) {
      fail(a, err);
    }
  }
  const reader = new SignatureReader(archives);
  const now = o.now ?? new Date();
  const cache = o.signatureCache === undefined ? undefined : await VerifiedSignatureCache.open(o.signatureCache);
  const keys = o.trust.kind === 'certificates' ? [] : blobKeys(o.trust);
  let fromCache = 0;
  const accept = (archive: Archive, match: number) => {
    try {
      blobSigner(o.trust, match, now, archive.uri);
    } catch (err) {
      fail(archive, err);
    }
  };
  let crashed: unknown;
  let verifying: Promise<void> = Promise.resolve();
  /** A round's archives, split by store, with the local ones' reads started (on the pool's threads). */
  const prepare = (from: number) => {
    const remote: Archive[] = [];
    const local: { archive: Archive; files: LocalSignature }[] = [];
    for (const a of archives.slice(from, from + ROUND)) {
      if (!a.store) continue;
      try {
        const path = a.store.localPath?.(a.key!); // checks the key, too
        if (path === undefined) remote.push(a);
        else local.push({ archive: a, files: { archive: path, digest: a.sha256 } });
      } catch (err) {
        fail(a, err);
      }
    }
    const reads = pool.readLocal(
      local.map((l) => l.files),
      MAX_SIGNATURE_BYTES,
      { cacheIds: cache !== undefined },
    );
    reads.catch(() => undefined); // awaited below; never left unhandled if this round is not reached
    return { local, remote, reads };
  };
  // Two rounds' reads in flight: the threads read the next rounds' files while this one is looked up and verified.
  const ahead = [prepare(0), ...(ROUND < archives.length ? [prepare(ROUND)] : [])];
  for (let i = 0; i < archives.length; i += ROUND) {
    signal?.throwIfAborted();
    const { local, remote, reads: reading } = ahead.shift()!;
    const reads = await reading;
    if (i + 2 * ROUND < archives.length) ahead.push(prepare(i + 2 * ROUND));
    const signed: { archive: Archive; digest: Uint8Array; signature: Uint8Array; ids?: (string | undefined)[] | undefined }[] = [];
    local.forEach(({ archive: a, files }, j) => {
      const r = reads[j]!;
      const sigUri = `${a.uri}.sig`;
      if ('signature' in r) signed.push({ archive: a, digest: Buffer.from(files.digest, 'hex'), signature: r.signature, ids: r.cacheIds });
      else if ('missing' in r) fail(a, r.missing === 'archive' ? `archive missing: ${a.uri}` : `signature missing: ${sigUri}`);
      else if ('tooLarge' in r) fail(a, tooLarge(sigUri));
      else if ('notSignature' in r) fail(a, notABlobSignature(sigUri));
      else fail(a, unreadable(r.path === files.archive ? a.uri : sigUri, Object.assign(new Error(r.error), { code: r.errno })));
    });
    await eachBounded(remote, o.concurrency ?? 32, async (a) => {
      try {
        const found = await reader.read(a);
        if (typeof found === 'string') fail(a, found);
        else signed.push({ archive: a, digest: Buffer.from(a.sha256, 'hex'), signature: decodeBlobSignature(found, `${a.uri}.sig`) });
      } catch (err) {
        fail(a, err);
      }
    });
    const toVerify: { archive: Archive; digest: Uint8Array; signature: Uint8Array; ids?: (string | undefined)[] }[] = [];
    for (const s of signed) {
      const ids = cache && (s.ids ?? cache.ids(keys, s.digest, s.signature));
      const cached = ids ? cache!.firstId(ids) : -1;
      if (cached < 0) toVerify.push({ archive: s.archive, digest: s.digest, signature: s.signature, ...(ids ? { ids } : {}) });
      else {
        fromCache++;
        accept(s.archive, cached);
      }
    }
    await verifying;
    verifying = (async () => {
      const matches = await pool.matches(toVerify);
      toVerify.forEach((v, j) => {
        const match = matches[j]!;
        if (match >= 0) cache?.addId(v.ids?.[match]);
        accept(v.archive, match);
      });
    })().catch((err: unknown) => {
      crashed ??= err;
    });
  }
  await verifying;
  if (crashed) throw crashed;
  await cache?.save();

  const versions = rows.length;
  if (failures.length > 0) {
    failures.sort((a, b) => a.archive.order - b.archive.order);
    const problems: string[] = [];
    let failedVersions = 0;
    for (const f of failures) {
      failedVersions += f.archive.rows.length;
      for (const row of f.archive.rows) if (problems.length < MAX_PROBLEMS) problems.push(`${row.name}@${row.version}: ${f.problem}`);
    }
    return { name: 'model-archives', status: 'failed', detail: `${failedVersions} of ${versions} model versions have a missing or unverifiable archive`, problems };
  }
  const cached = fromCache > 0 ? ` (${fromCache} of them verified by an earlier check: ${o.signatureCache})` : '';
  return { name: 'model-archives', status: 'passed', detail: `${versions} model versions (${archives.length} archives): archive present, signature verified${cached}` };
}

/** The store holding an archive URI and its key there: the platform's store when the URI is under it, else one store per folder. */
function resolveArchive(uri: string, store: ArtifactStore | undefined, stores: Map<string, ArtifactStore>): { store: ArtifactStore; key: string } {
  if (store && uri.startsWith(`${store.uri}/`)) return { store, key: uri.slice(store.uri.length + 1) };
  const parent = uri.slice(0, uri.lastIndexOf('/'));
  const cached = stores.get(parent);
  if (cached) return { store: cached, key: uri.slice(parent.length + 1) };
  const split = splitObjectUri(uri);
  stores.set(parent, split.store);
  return split;
}

/** Runs `fn` over `items`, at most `limit` at once. */
async function eachBounded<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const run = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, run));
}

/**
 * Reads each archive's signature, or says what is missing. Local stores: the
 * archive's stat and the signature's file, by path. Remote stores: where
 * several archives share a model folder (`…/<model>/<version>/model.tar.gz`),
 * one listing of that folder answers whether each archive and signature
 * exists (and the signature's size) before the signature is fetched.
 */
class SignatureReader {
  private readonly listed = new Map<string, { store: ArtifactStore; prefix: string; archives: number; sizes?: Promise<Map<string, number>> }>();

  constructor(archives: Archive[]) {
    for (const a of archives) {
      if (!a.store || !a.key || a.store.localPath) continue; // a local store is read by path
      const prefix = listPrefix(a.key);
      if (prefix === undefined) continue;
      const id = `${a.store.uri}\n${prefix}`;
      const entry = this.listed.get(id) ?? { store: a.store, prefix, archives: 0 };
      entry.archives++;
      this.listed.set(id, entry);
    }
  }

  /** On a remote store: the signature file's bytes, or the problem (archive or signature missing). */
  async read(a: Archive): Promise<Buffer | string> {
    const store = a.store!;
    const key = a.key!;
    const sigUri = `${a.uri}.sig`;
    const prefix = listPrefix(key);
    const entry = prefix === undefined ? undefined : this.listed.get(`${store.uri}\n${prefix}`);
    if (entry && entry.archives >= MIN_ARCHIVES_TO_LIST) {
      entry.sizes ??= listSizes(entry.store, entry.prefix);
      const sizes = await entry.sizes;
      if (!sizes.has(key)) return `archive missing: ${a.uri}`;
      const sigSize = sizes.get(`${key}.sig`);
      if (sigSize === undefined) return `signature missing: ${sigUri}`;
      if (sigSize > MAX_SIGNATURE_BYTES) throw tooLarge(sigUri);
    } else if (!(await store.head(key))) {
      return `archive missing: ${a.uri}`;
    }
    try {
      return await readBounded(await store.get(`${key}.sig`), sigUri);
    } catch (err) {
      if (isAegisError(err, 'STORE_NOT_FOUND')) return `signature missing: ${sigUri}`;
      throw err;
    }
  }
}

/** The model folder two levels above an archive key (`model-archives/<model>/`), or undefined for a key too short to have one. */
function listPrefix(key: string): string | undefined {
  const parts = key.split('/');
  return parts.length >= 3 ? `${parts.slice(0, -2).join('/')}/` : undefined;
}

async function listSizes(store: ArtifactStore, prefix: string): Promise<Map<string, number>> {
  const sizes = new Map<string, number>();
  for await (const o of store.list(prefix)) sizes.set(o.key, o.size);
  return sizes;
}

async function readBounded(stream: Readable, uri: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > MAX_SIGNATURE_BYTES) {
      stream.destroy();
      throw tooLarge(uri);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function tooLarge(uri: string): AegisError {
  return new AegisError('ARCHIVE_SIGNATURE_INVALID', `${uri} is larger than ${MAX_SIGNATURE_BYTES} bytes: not a signature`, {
    hint: 'A model.tar.gz.sig holds one base64 DER ECDSA signature (about 100 bytes); replace it with the one `aegis model package` wrote.',
    details: { uri },
  });
}

function unreadable(uri: string, err: unknown): AegisError {
  return new AegisError('STORE_UNREACHABLE', `cannot read ${uri}: ${(err as Error).message}`, {
    cause: err,
    hint: 'Check that the store folder exists and that you have permission to read it.',
    details: { uri, errno: (err as NodeJS.ErrnoException).code },
  });
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
