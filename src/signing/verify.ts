import { lstat, readFile, realpath, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { hashFiles } from '../artifact/hash.js';
import { DEFAULT_GIT_IGNORES, comparePaths, isIgnored } from '../artifact/paths.js';
import { scanModel, type ModelFile } from '../artifact/scan.js';
import { AegisError, fsError } from '../errors.js';
import { childLogger } from '../log.js';
import { authenticate, type SignerIdentity } from './authenticate.js';
import { parseBundle } from './bundle.js';
import { insideRoot } from './sign.js';
import { parseStatement, resourcePath, type SignedManifest } from './statement.js';
import type { TrustAnchor } from './trust.js';

export interface VerifyOptions {
  modelPath: string;
  bundlePath: string;
  trust: TrustAnchor;
  /** Extra paths to leave out (relative to the model root), on top of those recorded in the signature. */
  ignorePaths?: readonly string[];
  /** Tolerate files present on disk but not covered by the signature. */
  ignoreUnsignedFiles?: boolean;
  /** Largest bundle file to read, bytes. */
  maxBundleBytes?: number;
  now?: Date;
  workers?: number;
  chunkBytes?: number;
  onProgress?: (done: number, total: number) => void;
  /**
   * SHA-256 of files already computed by the caller from the very bytes on
   * disk (extraction hashes each file as it writes it), so they are not read
   * again. Used only for sha256 `files` manifests that it fully covers.
   */
  precomputedSha256?: ReadonlyMap<string, string>;
}

export interface VerificationReport {
  verified: true;
  model: string;
  bundle: string;
  signer: SignerIdentity;
  modelName: string;
  rootDigest: string;
  method: 'files' | 'shards';
  files: number;
  bytes: number;
  resources: number;
  /** Files on disk outside the signature that were tolerated (--ignore-unsigned-files). */
  unsignedFiles: string[];
  warnings: string[];
}

export async function readBundleFile(path: string, maxBytes: number): Promise<string> {
  let size: number;
  try {
    size = (await stat(path)).size;
  } catch (err) {
    throw fsError(err, path, 'bundle');
  }
  if (size > maxBytes) {
    throw new AegisError('BUNDLE_TOO_LARGE', `bundle ${path} is ${size} bytes, over the ${maxBytes}-byte limit`, {
      hint: 'This is not a model signature (they are kilobytes to a few megabytes). Check the --bundle path.',
      details: { path, size, maxBytes },
    });
  }
  return readFile(path, 'utf8').catch((err: unknown) => {
    throw fsError(err, path, 'bundle');
  });
}

interface ExpectedResource {
  /** Name as listed in the bundle. */
  name: string;
  /** Name the hasher gives the same bytes on disk ("." of a legacy single-file bundle becomes the file name). */
  diskName: string;
  digest: string;
}

interface Expected {
  /** File path → resources of that file (one, or its shards). */
  byFile: Map<string, ExpectedResource[]>;
}

/** Maps the signed resources to files of the model on disk (a legacy single-file bundle names it "."). */
function expectedFiles(m: SignedManifest, singleFileName: string | undefined): Expected {
  const byFile = new Map<string, ExpectedResource[]>();
  for (const r of m.resources) {
    const parsed = resourcePath(r.name, m.serialization.method);
    const path = parsed.path === '.' && singleFileName !== undefined ? singleFileName : parsed.path;
    const diskName = parsed.start === undefined ? path : `${path}:${parsed.start}:${parsed.end}`;
    const list = byFile.get(path) ?? [];
    list.push({ name: r.name, diskName, digest: r.digest });
    byFile.set(path, list);
  }
  return { byFile };
}

/**
 * Verifies a model against an OMS bundle: authenticity first (signature and
 * trust), then the statement, then the files on disk. Throws an AegisError
 * naming the first problem; returns a report when everything matches.
 */
export async function verifyModel(o: VerifyOptions): Promise<VerificationReport> {
  const now = o.now ?? new Date();
  const bundle = parseBundle(await readBundleFile(o.bundlePath, o.maxBundleBytes ?? 64 * 1024 * 1024));
  const signer = authenticate(bundle, o.trust, now);
  const manifest = parseStatement(bundle.payload);
  const warnings: string[] = [];
  if (signer.legacyEncoding) warnings.push('signature uses the pre-1.0 model_signing encoding; re-sign the model');
  if (bundle.material.kind === 'publicKey' && !bundle.material.hint) {
    warnings.push('bundle carries no key hint (older format); re-sign the model');
  }

  let rootStat;
  try {
    rootStat = await stat(o.modelPath);
  } catch (err) {
    throw new AegisError('MODEL_NOT_FOUND', `model path not found: ${o.modelPath}`, { cause: err, hint: 'Pass the model directory or file that was signed.' });
  }
  const singleFile = rootStat.isFile();
  const expected = expectedFiles(manifest, singleFile ? basename(o.modelPath) : undefined);
  const ser = manifest.serialization;

  let files: ModelFile[];
  const unsigned: string[] = [];
  if (singleFile) {
    const scan = await scanModel(o.modelPath, { allowSymlinks: ser.allowSymlinks });
    files = scan.files;
  } else {
    // Git paths are left out unless the signature covers them (signed with --no-ignore-git-paths).
    const signedNames = [...expected.byFile.keys()];
    const gitIgnores = DEFAULT_GIT_IGNORES.filter((g) => !signedNames.some((n) => isIgnored(n, [g])));
    const ignores = [...ser.ignorePaths, ...gitIgnores, ...(o.ignorePaths ?? [])];
    const bundleRel = insideRoot(o.modelPath, o.bundlePath);
    if (bundleRel) ignores.push(bundleRel);
    if (o.ignoreUnsignedFiles) {
      files = await signedFilesOnly(o.modelPath, [...expected.byFile.keys()], ser.allowSymlinks);
      const all = await scanModel(o.modelPath, { ignorePaths: ignores, ignoreGitPaths: false, allowSymlinks: true }).catch(() => undefined);
      for (const f of all?.files ?? []) if (!expected.byFile.has(f.name)) unsigned.push(f.name);
    } else {
      files = (await scanModel(o.modelPath, { ignorePaths: ignores, ignoreGitPaths: false, allowSymlinks: ser.allowSymlinks })).files;
    }
  }

  // Compare the file sets before hashing anything: a missing or extra file is reported at once.
  const onDisk = new Set(files.map((f) => f.name));
  const missing = [...expected.byFile.keys()].filter((n) => !onDisk.has(n)).sort(comparePaths);
  // Shard serialization gives an empty file no resources (as the reference does), so it cannot be listed.
  const extra = files.filter((f) => !expected.byFile.has(f.name) && !(ser.method === 'shards' && f.size === 0)).map((f) => f.name);
  if (missing.length) {
    throw new AegisError('FILE_MISSING', `signed file ${missing[0]} is missing from the model${missing.length > 1 ? ` (and ${missing.length - 1} more)` : ''}`, {
      hint: 'The model on disk is incomplete or was changed after signing; fetch it again.',
      details: { missing, extra },
    });
  }
  if (extra.length) {
    throw new AegisError('FILE_EXTRA', `file ${extra[0]} is not covered by the signature${extra.length > 1 ? ` (and ${extra.length - 1} more)` : ''}`, {
      hint: 'Something was added after signing. Remove it, or pass --ignore PATH / --ignore-unsigned-files if it is expected.',
      details: { extra },
    });
  }

  const pre = o.precomputedSha256;
  const usePre = pre !== undefined && ser.method === 'files' && ser.hashType === 'sha256' && files.every((f) => pre.has(f.name));
  const actual = usePre
    ? files.map((f) => ({ name: f.name, algorithm: 'sha256' as const, digest: pre.get(f.name)! }))
    : await hashFiles(files, {
        algorithm: ser.hashType,
        ...(ser.method === 'shards' ? { shardSize: ser.shardSize! } : {}),
        ...(o.workers ? { workers: o.workers } : {}),
        ...(o.chunkBytes ? { chunkBytes: o.chunkBytes } : {}),
        ...(o.onProgress ? { onProgress: o.onProgress } : {}),
      });
  const actualByName = new Map(actual.map((r) => [r.name, r.digest]));
  const mismatched: { name: string; expected: string; actual: string | undefined }[] = [];
  for (const list of expected.byFile.values()) {
    for (const r of list) {
      const got = actualByName.get(r.diskName);
      if (got !== r.digest) mismatched.push({ name: r.name, expected: r.digest, actual: got });
      actualByName.delete(r.diskName);
    }
  }
  if (mismatched.length) {
    const first = mismatched[0]!;
    throw new AegisError(
      'DIGEST_MISMATCH',
      first.actual === undefined
        ? `signed range ${first.name} does not exist in the file on disk (size changed)`
        : `file ${first.name} differs from what was signed (sha ${first.actual.slice(0, 16)}…, signed ${first.expected.slice(0, 16)}…)`,
      { hint: 'The file was modified after signing: do not load this model.', details: { mismatched } },
    );
  }
  if (actualByName.size) {
    const name = [...actualByName.keys()][0]!;
    throw new AegisError('DIGEST_MISMATCH', `file content ${name} is not covered by the signature (file grew)`, {
      hint: 'The file was modified after signing: do not load this model.',
      details: { unexpected: [...actualByName.keys()] },
    });
  }
  childLogger('signing').info(
    { event: 'model_verified', model: o.modelPath, rootDigest: manifest.rootDigest, keyHint: signer.keyHint, trustedId: signer.trustedId, files: files.length },
    'model verified',
  );
  return {
    verified: true,
    model: o.modelPath,
    bundle: o.bundlePath,
    signer,
    modelName: manifest.modelName,
    rootDigest: manifest.rootDigest,
    method: ser.method,
    files: files.length,
    bytes: files.reduce((n, f) => n + f.size, 0),
    resources: manifest.resources.length,
    unsignedFiles: unsigned.sort(comparePaths),
    warnings,
  };
}

/** With --ignore-unsigned-files: just the signed files, each checked like the scanner does. */
async function signedFilesOnly(root: string, names: string[], allowSymlinks: boolean): Promise<ModelFile[]> {
  const rootReal = await realpath(root);
  const out: ModelFile[] = [];
  for (const name of names) {
    const path = join(root, ...name.split('/'));
    let st;
    try {
      st = await lstat(path);
    } catch {
      continue; // reported as missing
    }
    if (st.isSymbolicLink()) {
      if (!allowSymlinks) {
        throw new AegisError('SYMLINK_REJECTED', `signed file ${name} is a symlink on disk`, {
          hint: 'Replace the link with the real file.',
          details: { path: name },
        });
      }
      const target = await realpath(path).catch(() => undefined);
      if (!target || !(target === rootReal || target.startsWith(rootReal + '/'))) {
        throw new AegisError('SYMLINK_ESCAPES_ROOT', `signed file ${name} links outside the model`, { details: { path: name } });
      }
      st = await stat(path);
    }
    // Every parent directory must be a real directory inside the root too (or, with
    // allowSymlinks, at least resolve inside it), as the scanner requires.
    const real = await realpath(path);
    if (!real.startsWith(rootReal + '/')) {
      throw new AegisError('SYMLINK_ESCAPES_ROOT', `signed file ${name} resolves outside the model`, { details: { path: name } });
    }
    if (!allowSymlinks && real !== join(rootReal, ...name.split('/'))) {
      throw new AegisError('SYMLINK_REJECTED', `signed file ${name} is reached through a symlinked folder`, {
        hint: 'Replace the link with the real folder.',
        details: { path: name },
      });
    }
    if (!st.isFile()) {
      throw new AegisError('UNSUPPORTED_FILE_TYPE', `signed file ${name} is not a regular file on disk`, { details: { path: name } });
    }
    out.push({ name, path, size: st.size });
  }
  return out.sort((a, b) => comparePaths(a.name, b.name));
}
