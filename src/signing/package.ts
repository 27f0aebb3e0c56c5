import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { hashStream, writeArchive, type ArchiveEntry } from '../artifact/archive.js';
import { MANIFEST_FILE, readManifest, type ModelManifest } from '../artifact/manifest.js';
import { AegisError, fsError } from '../errors.js';
import { childLogger } from '../log.js';
import { decodeBlobSignature, verifyBlobSignature, type BlobSigner } from './blob.js';
import { signModel, writeFileAtomic } from './sign.js';
import type { Signer } from './signer.js';
import type { TrustAnchor } from './trust.js';
import { readFile } from 'node:fs/promises';

/** Name of the OMS bundle at the root of a model archive. */
export const ARCHIVE_BUNDLE = 'model.sig';
export const ARCHIVE_NAME = 'model.tar.gz';

export interface PackageOptions {
  modelDir: string;
  signer: Signer;
  /** Folder to write model.tar.gz and model.tar.gz.sig into. */
  outDir: string;
  ignorePaths?: readonly string[];
  workers?: number;
  onProgress?: (phase: 'hash' | 'archive', done: number, total: number) => void;
}

export interface PackageResult {
  archive: string;
  signature: string;
  /** hex SHA-256 of model.tar.gz */
  sha256: string;
  size: number;
  manifest: ModelManifest;
  rootDigest: string;
  keyHint: string;
  files: number;
}

/**
 * `aegis model package`: validate the manifest, sign the model (OMS bundle
 * `model.sig` at the archive root, next to the model's files), write a
 * deterministic `model.tar.gz`, and sign its SHA-256 (`model.tar.gz.sig`,
 * cosign-compatible). Both files appear atomically.
 */
export async function packageModel(o: PackageOptions): Promise<PackageResult> {
  const st = await stat(o.modelDir).catch((err: unknown) => {
    throw fsError(err, o.modelDir, 'model directory');
  });
  if (!st.isDirectory()) {
    throw new AegisError('USAGE', `${o.modelDir} is not a directory`, { hint: 'Package a model directory that holds aegis.yaml and the model files.' });
  }
  const manifest = await readManifest(o.modelDir);
  if (manifest.entrypoint) {
    await stat(join(o.modelDir, manifest.entrypoint)).catch(() => {
      throw new AegisError('MANIFEST_INVALID', `entrypoint ${manifest.entrypoint} named in ${MANIFEST_FILE} does not exist`, {
        hint: `Fix "entrypoint" in ${MANIFEST_FILE}, or add the file.`,
        details: { field: 'entrypoint' },
      });
    });
  }
  const signed = await signModel({
    modelPath: o.modelDir,
    signer: o.signer,
    bundlePath: join(o.modelDir, ARCHIVE_BUNDLE), // never written there: only keeps a stale one out
    ...(o.ignorePaths ? { ignorePaths: o.ignorePaths } : {}),
    ...(o.workers ? { workers: o.workers } : {}),
    ...(o.onProgress ? { onProgress: (d: number, t: number) => o.onProgress!('hash', d, t) } : {}),
  });

  await mkdir(o.outDir, { recursive: true });
  const tmp = join(o.outDir, `.aegis-package-${process.pid}-${Date.now()}`);
  await mkdir(tmp);
  try {
    const bundleFile = join(tmp, ARCHIVE_BUNDLE);
    await writeFile(bundleFile, signed.bundleJson);
    const entries: ArchiveEntry[] = [
      ...signed.signedFiles.map((f) => ({ name: f.name, path: f.path, size: f.size })),
      { name: ARCHIVE_BUNDLE, path: bundleFile, size: Buffer.byteLength(signed.bundleJson) },
    ];
    const total = entries.reduce((n, e) => n + e.size, 0);
    const tmpArchive = join(tmp, ARCHIVE_NAME);
    const result = await writeArchive(entries, createWriteStream(tmpArchive), (n) => o.onProgress?.('archive', n, total));
    const sig = await o.signer.signDigest(result.sha256);
    const archive = resolve(o.outDir, ARCHIVE_NAME);
    const signature = `${archive}.sig`;
    // Signature last: a reader that finds a .sig finds its archive too.
    await rename(tmpArchive, archive);
    await writeFileAtomic(signature, sig.toString('base64') + '\n');
    const out: PackageResult = {
      archive,
      signature,
      sha256: result.sha256.toString('hex'),
      size: result.size,
      manifest,
      rootDigest: signed.rootDigest,
      keyHint: o.signer.keyHint,
      files: signed.files,
    };
    childLogger('package').info({ event: 'model_packaged', name: manifest.name, version: manifest.version, sha256: out.sha256, size: out.size }, 'model packaged');
    return out;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** Streams a file once, returning its SHA-256. */
export async function sha256File(path: string, onBytes?: (n: number) => void): Promise<{ sha256: Buffer; size: number }> {
  return hashStream(createReadStream(path), onBytes).catch((err: unknown) => {
    throw fsError(err, path, 'archive');
  });
}

/** `aegis model verify-archive`: the detached signature over the archive's SHA-256. */
export async function verifyArchiveFile(
  archivePath: string,
  signaturePath: string,
  trust: TrustAnchor,
  now = new Date(),
): Promise<{ sha256: string; size: number; signer: BlobSigner }> {
  const sigBytes = await readFile(signaturePath).catch((err: unknown) => {
    throw fsError(err, signaturePath, 'signature');
  });
  const signature = decodeBlobSignature(sigBytes, signaturePath);
  const { sha256, size } = await sha256File(archivePath);
  const signer = verifyBlobSignature(sha256, signature, trust, now, archivePath);
  return { sha256: sha256.toString('hex'), size, signer };
}
