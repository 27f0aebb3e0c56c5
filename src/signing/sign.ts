import { mkdir, rename, writeFile } from 'node:fs/promises';
import { basename, dirname, isAbsolute, relative, resolve, sep } from 'node:path';
import { hashFiles, type HashAlgorithm } from '../artifact/hash.js';
import { toPosix } from '../artifact/paths.js';
import { scanModel, type ModelFile } from '../artifact/scan.js';
import { AegisError } from '../errors.js';
import { childLogger } from '../log.js';
import { serializeBundle } from './bundle.js';
import { IN_TOTO_PAYLOAD_TYPE, pae } from './dsse.js';
import type { Signer } from './signer.js';
import { buildStatement, rootDigest, type Serialization } from './statement.js';

export interface SignOptions {
  modelPath: string;
  signer: Signer;
  /** Where the bundle will be written; excluded from the signature when inside the model. */
  bundlePath?: string;
  ignorePaths?: readonly string[];
  ignoreGitPaths?: boolean;
  allowSymlinks?: boolean;
  shardSize?: number;
  hashAlgorithm?: HashAlgorithm;
  workers?: number;
  chunkBytes?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface SignResult {
  bundleJson: string;
  /** The files covered by the signature (what an archive must contain). */
  signedFiles: ModelFile[];
  modelName: string;
  rootDigest: string;
  files: number;
  bytes: number;
  resources: number;
  serialization: Serialization;
}

/** Model name recorded in the statement: the directory (or file) name. */
export function modelNameOf(modelPath: string): string {
  return basename(resolve(modelPath));
}

/** Path of `child` relative to `root` when it is inside it. */
export function insideRoot(root: string, child: string): string | undefined {
  const rel = relative(resolve(root), resolve(child));
  if (rel === '' || rel === '..' || rel.startsWith('..' + sep) || isAbsolute(rel)) return undefined;
  return toPosix(rel);
}

/** Signs a model directory or file, returning an OMS v1.0 Sigstore bundle. */
export async function signModel(o: SignOptions): Promise<SignResult> {
  if (o.shardSize !== undefined && (!Number.isInteger(o.shardSize) || o.shardSize <= 0)) {
    throw new AegisError('USAGE', `--shard-size must be a positive number of bytes, got ${o.shardSize}`, {
      hint: 'For example --shard-size 1073741824 (1 GiB).',
    });
  }
  const ignores = [...(o.ignorePaths ?? [])];
  const bundleRel = o.bundlePath ? insideRoot(o.modelPath, o.bundlePath) : undefined;
  if (bundleRel) ignores.push(bundleRel);
  const scan = await scanModel(o.modelPath, {
    ignorePaths: ignores,
    ignoreGitPaths: o.ignoreGitPaths ?? true,
    allowSymlinks: o.allowSymlinks ?? false,
  });
  const algorithm = o.hashAlgorithm ?? 'sha256';
  const resources = await hashFiles(scan.files, {
    algorithm,
    ...(o.shardSize ? { shardSize: o.shardSize } : {}),
    ...(o.workers ? { workers: o.workers } : {}),
    ...(o.chunkBytes ? { chunkBytes: o.chunkBytes } : {}),
    ...(o.onProgress ? { onProgress: o.onProgress } : {}),
  });
  if (resources.length === 0) {
    throw new AegisError('MODEL_EMPTY', `model ${o.modelPath} has only empty files, which shard serialization leaves out`, {
      hint: 'Sign without --shard-size.',
    });
  }
  const serialization: Serialization = {
    method: o.shardSize ? 'shards' : 'files',
    hashType: algorithm,
    allowSymlinks: o.allowSymlinks ?? false,
    ...(o.shardSize ? { shardSize: o.shardSize } : {}),
    ignorePaths: scan.ignorePaths,
  };
  const modelName = modelNameOf(o.modelPath);
  const statement = buildStatement(modelName, resources, serialization);
  const payload = Buffer.from(JSON.stringify(statement, null, 2), 'utf8');
  const sig = await o.signer.sign(pae(IN_TOTO_PAYLOAD_TYPE, payload));
  childLogger('signing').info(
    { event: 'model_signed', model: o.modelPath, rootDigest: rootDigest(resources), keyHint: o.signer.keyHint, files: scan.files.length, bytes: scan.totalBytes },
    'model signed',
  );
  return {
    bundleJson: serializeBundle(o.signer.verificationMaterial(), payload, sig),
    signedFiles: scan.files,
    modelName,
    rootDigest: rootDigest(resources),
    files: scan.files.length,
    bytes: scan.totalBytes,
    resources: resources.length,
    serialization,
  };
}

/** Writes a file atomically: a reader sees the old content or the new, never half. */
export async function writeFileAtomic(path: string, data: string | Buffer, mode = 0o644): Promise<void> {
  await mkdir(dirname(resolve(path)), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  await writeFile(tmp, data, { mode });
  await rename(tmp, path);
}
