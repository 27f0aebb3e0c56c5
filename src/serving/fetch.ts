import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { DEFAULT_EXTRACT_LIMITS, HashTap, extractArchive, hashStream, type ExtractLimits } from '../artifact/archive.js';
import { readManifest, type ModelManifest } from '../artifact/manifest.js';
import { AegisError, isAegisError } from '../errors.js';
import { childLogger } from '../log.js';
import { decodeBlobSignature, verifyBlobSignature, type BlobSigner } from '../signing/blob.js';
import { ARCHIVE_BUNDLE } from '../signing/package.js';
import type { TrustAnchor } from '../signing/trust.js';
import { verifyModel, type VerificationReport } from '../signing/verify.js';
import { splitObjectUri } from '../store/index.js';
import type { ArtifactStore } from '../store/types.js';
import { acquireFileLock } from '../util/lock.js';

export interface FetchOptions {
  /** Archive URI: s3://…/model.tar.gz, file:///…/model.tar.gz or a path. Its signature is `<uri>.sig`. */
  uri: string;
  trust: TrustAnchor;
  /** Content-addressed cache root; the model lands in `<cacheDir>/<sha256>/`. */
  cacheDir: string;
  /** The manifest must name exactly this model (no swap, no downgrade). */
  expect?: { name?: string; version?: string };
  limits?: ExtractLimits;
  /** Resolves a URI to a store and key (tests and callers with configured stores). */
  open?: (uri: string) => { store: ArtifactStore; key: string };
  now?: Date;
  onProgress?: (phase: 'download' | 'extract', done: number, total: number) => void;
}

export interface FetchedModel {
  /** Folder holding the verified model files. */
  dir: string;
  archiveSha256: string;
  archiveSize: number;
  manifest: ModelManifest;
  /** Who signed the archive (detached signature). */
  archiveSigner: BlobSigner;
  /** Who signed the model files (OMS bundle inside). */
  verification: VerificationReport;
  fromCache: boolean;
}

const log = () => childLogger('serving');
const inflight = new Map<string, Promise<FetchedModel>>();

/**
 * fetch_and_verify_model: the only way a server gets model bytes.
 *
 * 1. download the archive once, hashing it (local stores are read in place);
 * 2. check the detached signature over that SHA-256 against the trust anchor
 *    before a single entry is extracted;
 * 3. extract into a temporary folder with every archive safety check, hashing
 *    each file as it is written;
 * 4. verify the OMS bundle inside against the trust anchor and those digests
 *    (no second read), and that aegis.yaml names the model that was asked for;
 * 5. rename into `<cacheDir>/<sha256>/`.
 * A cached model is re-verified (files re-hashed) before it is served.
 * Concurrent fetches of one URI share one download (in-process) and a lock
 * file (across processes).
 */
export async function fetchAndVerifyModel(o: FetchOptions): Promise<FetchedModel> {
  const cacheDir = resolve(o.cacheDir);
  const key = `${cacheDir}\n${o.uri}`;
  const running = inflight.get(key);
  if (running) return running;
  const p = (async () => {
    const started = Date.now();
    const release = await acquireFileLock(join(cacheDir, '.locks', `${sha(o.uri)}.lock`));
    try {
      const result = await fetchLocked(o, cacheDir);
      log().info(
        { event: 'fetch_and_verify_model', outcome: 'verified', uri: o.uri, sha256: result.archiveSha256, name: result.manifest.name, version: result.manifest.version, fromCache: result.fromCache, ms: Date.now() - started },
        'fetch_and_verify_model verified',
      );
      return result;
    } catch (err) {
      log().warn(
        { event: 'fetch_and_verify_model', outcome: 'refused', uri: o.uri, code: isAegisError(err) ? err.code : 'INTERNAL', reason: (err as Error).message },
        'fetch_and_verify_model refused',
      );
      throw err;
    } finally {
      await release();
    }
  })();
  inflight.set(key, p);
  try {
    return await p;
  } finally {
    inflight.delete(key);
  }
}

function sha(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

interface IndexEntry {
  sha256: string;
  size: number;
}

async function readIndex(cacheDir: string, uri: string): Promise<IndexEntry | undefined> {
  try {
    return JSON.parse(await readFile(join(cacheDir, '.index', `${sha(uri)}.json`), 'utf8')) as IndexEntry;
  } catch {
    return undefined;
  }
}

async function writeIndex(cacheDir: string, uri: string, entry: IndexEntry): Promise<void> {
  await mkdir(join(cacheDir, '.index'), { recursive: true });
  const path = join(cacheDir, '.index', `${sha(uri)}.json`);
  await writeFile(`${path}.tmp`, JSON.stringify({ uri, ...entry }));
  await rename(`${path}.tmp`, path);
}

function checkIdentity(manifest: ModelManifest, expect: FetchOptions['expect'], uri: string): void {
  const bad = (field: 'name' | 'version', want: string, got: string) =>
    new AegisError('MODEL_IDENTITY_MISMATCH', `${uri} holds ${manifest.name}@${manifest.version}, but ${field} ${want} was asked for`, {
      hint: 'The archive at this location is another model or version (a swap or downgrade); check the URI or the registry record.',
      details: { field, expected: want, actual: got },
    });
  if (expect?.name !== undefined && manifest.name !== expect.name) throw bad('name', expect.name, manifest.name);
  if (expect?.version !== undefined && manifest.version !== expect.version) throw bad('version', expect.version, manifest.version);
}

async function recheck(dir: string, o: FetchOptions, archive: { sha256: string; size: number }, signer: BlobSigner | undefined): Promise<FetchedModel> {
  const verification = await verifyModel({ modelPath: dir, bundlePath: join(dir, ARCHIVE_BUNDLE), trust: o.trust, ...(o.now ? { now: o.now } : {}) });
  const manifest = await readManifest(dir);
  checkIdentity(manifest, o.expect, o.uri);
  return {
    dir,
    archiveSha256: archive.sha256,
    archiveSize: archive.size,
    manifest,
    archiveSigner: signer ?? { keyHint: verification.signer.keyHint, ...(verification.signer.trustedId ? { trustedId: verification.signer.trustedId } : {}) },
    verification,
    fromCache: true,
  };
}

async function fetchLocked(o: FetchOptions, cacheDir: string): Promise<FetchedModel> {
  const { store, key } = (o.open ?? splitObjectUri)(o.uri);
  const now = o.now ?? new Date();
  const head = await store.head(key);
  if (!head) {
    throw new AegisError('STORE_NOT_FOUND', `no archive at ${o.uri}`, { hint: 'Check the URI (aegis model list shows registered archives).' });
  }

  // Served from the cache when this URI was fetched before and the object still has the same size;
  // the cached files are re-verified against their signed bundle either way.
  const known = await readIndex(cacheDir, o.uri);
  if (known && known.size === head.size && existsSync(join(cacheDir, known.sha256, ARCHIVE_BUNDLE))) {
    try {
      return await recheck(join(cacheDir, known.sha256), o, known, undefined);
    } catch (err) {
      log().warn({ event: 'cache_recheck_failed', dir: join(cacheDir, known.sha256), code: isAegisError(err) ? err.code : undefined, reason: (err as Error).message }, 'cached model failed re-verification; fetching again');
      if (isAegisError(err) && (err.code === 'KEY_REVOKED' || err.code === 'KEY_EXPIRED' || err.code === 'KEY_UNTRUSTED' || err.code === 'MODEL_IDENTITY_MISMATCH')) throw err;
      await rm(join(cacheDir, known.sha256), { recursive: true, force: true });
    }
  }

  const sigStream = await store.get(`${key}.sig`).catch((err: unknown) => {
    if (isAegisError(err) && err.code === 'STORE_NOT_FOUND') {
      throw new AegisError('ARCHIVE_SIGNATURE_INVALID', `no signature at ${o.uri}.sig`, {
        cause: err,
        hint: 'Every archive needs its detached signature next to it (aegis model package writes both; aegis model push uploads both).',
      });
    }
    throw err;
  });
  const sigChunks: Buffer[] = [];
  for await (const c of sigStream) sigChunks.push(c as Buffer);
  const signature = decodeBlobSignature(Buffer.concat(sigChunks), `${o.uri}.sig`);

  const work = join(cacheDir, '.tmp', `${Date.now()}-${randomBytes(6).toString('hex')}`);
  await mkdir(work, { recursive: true });
  try {
    // 1. one pass over the archive bytes: hash (and copy, when the store is remote)
    let archivePath = store.localPath?.(key);
    const onBytes = (n: number) => o.onProgress?.('download', n, head.size);
    let digest: Buffer;
    let size: number;
    if (archivePath) {
      ({ sha256: digest, size } = await hashStream(createReadStream(archivePath), onBytes));
    } else {
      archivePath = join(work, 'model.tar.gz');
      const tap = new HashTap(onBytes);
      await pipeline(await store.get(key), tap, createWriteStream(archivePath));
      digest = tap.hash.digest();
      size = tap.bytes;
    }
    const archive = { sha256: digest.toString('hex'), size };

    // 2. signature before extraction
    const signer = verifyBlobSignature(digest, signature, o.trust, now, o.uri);

    const final = join(cacheDir, archive.sha256);
    if (existsSync(join(final, ARCHIVE_BUNDLE))) {
      try {
        const r = await recheck(final, o, archive, signer);
        await writeIndex(cacheDir, o.uri, archive);
        return r;
      } catch (err) {
        if (isAegisError(err) && err.code === 'MODEL_IDENTITY_MISMATCH') throw err;
        await rm(final, { recursive: true, force: true });
      }
    }

    // 3. extract with safety checks, hashing each file as written
    const root = join(work, 'root');
    await mkdir(root);
    let extracted = 0;
    const files = await extractArchive(
      createReadStream(archivePath, { highWaterMark: 1024 * 1024 }).on('data', (c) => o.onProgress?.('extract', (extracted += (c as Buffer).length), archive.size)),
      root,
      o.limits ?? DEFAULT_EXTRACT_LIMITS,
    );
    // If the bytes changed between hashing and extraction (a local store being rewritten), the
    // files no longer match the signed bundle below, and nothing is published.

    // 4. OMS bundle inside, against the digests computed while extracting
    const verification = await verifyModel({
      modelPath: root,
      bundlePath: join(root, ARCHIVE_BUNDLE),
      trust: o.trust,
      now,
      precomputedSha256: new Map(files.map((f) => [f.name, f.sha256])),
    });
    const manifest = await readManifest(root);
    checkIdentity(manifest, o.expect, o.uri);

    // 5. publish
    try {
      await rename(root, final);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
      // Another process published the same digest first; it was verified the same way.
    }
    await writeIndex(cacheDir, o.uri, archive);
    return { dir: final, archiveSha256: archive.sha256, archiveSize: archive.size, manifest, archiveSigner: signer, verification, fromCache: false };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
