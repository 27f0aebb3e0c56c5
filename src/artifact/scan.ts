import { lstat, readdir, realpath, stat } from 'node:fs/promises';
import { basename, join, relative } from 'node:path';
import { AegisError, fsError } from '../errors.js';
import { DEFAULT_GIT_IGNORES, comparePaths, isIgnored, normalizeIgnorePaths, toPosix } from './paths.js';

export interface ModelFile {
  /** Resource name: POSIX path relative to the model root (the file name for a single-file model). */
  name: string;
  /** Absolute path to read. */
  path: string;
  size: number;
}

export interface ScanOptions {
  /** Paths to leave out, relative to the model root (or absolute inside it). */
  ignorePaths?: readonly string[];
  /** Leave out .git, .gitattributes, .github, .gitignore (default true). */
  ignoreGitPaths?: boolean;
  /** Follow symlinks that stay inside the model root (default false: any symlink is an error). */
  allowSymlinks?: boolean;
}

export interface ModelScan {
  root: string;
  singleFile: boolean;
  /** Sorted by name. */
  files: ModelFile[];
  /** Ignore paths as recorded in the signature (relative POSIX). */
  ignorePaths: string[];
  totalBytes: number;
}

/**
 * Enumerates a model per the OMS `files` serialization: every regular file
 * under the root except ignored paths, symlinks refused unless allowed (and
 * then only inside the root, without loops), special files refused, and at
 * least one file required.
 */
export async function scanModel(modelPath: string, options: ScanOptions = {}): Promise<ModelScan> {
  const allowSymlinks = options.allowSymlinks ?? false;
  let st;
  try {
    st = await lstat(modelPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new AegisError('MODEL_NOT_FOUND', `model path not found: ${modelPath}`, {
        cause: err,
        hint: 'Pass the model directory or single model file.',
        details: { path: modelPath },
      });
    }
    throw fsError(err, modelPath, 'model');
  }
  if (st.isSymbolicLink()) {
    if (!allowSymlinks) throw symlinkRejected(modelPath);
    st = await stat(modelPath).catch((err: unknown) => {
      throw new AegisError('SYMLINK_BROKEN', `model path ${modelPath} is a broken symlink`, { cause: err });
    });
  }
  if (st.isFile()) {
    // A single file is a valid model; ignore paths do not apply to it.
    return {
      root: modelPath,
      singleFile: true,
      files: [{ name: basename(modelPath), path: modelPath, size: st.size }],
      ignorePaths: [],
      totalBytes: st.size,
    };
  }
  if (!st.isDirectory()) throw unsupported(modelPath);

  const ignorePaths = normalizeIgnorePaths(modelPath, [
    ...(options.ignoreGitPaths === false ? [] : DEFAULT_GIT_IGNORES),
    ...(options.ignorePaths ?? []),
  ]);
  const rootReal = await realpath(modelPath);
  const files: ModelFile[] = [];
  const seenDirs = new Set<string>([rootReal]);

  const walk = async (dir: string, dirReal: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      throw fsError(err, dir, 'model directory');
    }
    for (const entry of entries) {
      const abs = join(dir, entry.name);
      const rel = toPosix(relative(modelPath, abs));
      if (isIgnored(rel, ignorePaths)) continue;
      if (entry.isSymbolicLink()) {
        if (!allowSymlinks) throw symlinkRejected(abs);
        let target: string;
        try {
          target = await realpath(abs);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ELOOP') {
            throw new AegisError('SYMLINK_LOOP', `symlink ${rel} is part of a cycle of links`, {
              cause: err,
              hint: 'Remove the link; a model must be a finite tree of files.',
              details: { path: rel },
            });
          }
          throw new AegisError('SYMLINK_BROKEN', `symlink ${rel} points to a missing target`, {
            cause: err,
            hint: 'Remove the dangling link or restore its target.',
            details: { path: rel },
          });
        }
        if (target !== rootReal && !target.startsWith(rootReal + '/')) {
          throw new AegisError('SYMLINK_ESCAPES_ROOT', `symlink ${rel} points outside the model root (${target})`, {
            hint: 'Copy the target into the model directory instead of linking to it.',
            details: { path: rel, target },
          });
        }
        const tst = await stat(abs);
        if (tst.isDirectory()) {
          if (seenDirs.has(target) || dirReal === target || dirReal.startsWith(target + '/')) {
            throw new AegisError('SYMLINK_LOOP', `symlink ${rel} creates a directory loop`, {
              hint: 'Remove the link; a model must be a finite tree of files.',
              details: { path: rel, target },
            });
          }
          seenDirs.add(target);
          await walk(abs, target);
        } else if (tst.isFile()) {
          files.push({ name: rel, path: abs, size: tst.size });
        } else {
          throw unsupported(abs);
        }
        continue;
      }
      if (entry.isDirectory()) {
        await walk(abs, join(dirReal, entry.name));
      } else if (entry.isFile()) {
        const fst = await stat(abs);
        files.push({ name: rel, path: abs, size: fst.size });
      } else {
        throw unsupported(abs);
      }
    }
  };
  await walk(modelPath, rootReal);

  if (files.length === 0) {
    throw new AegisError('MODEL_EMPTY', `model ${modelPath} contains no files to sign`, {
      hint: 'A model must contain at least one file (check --ignore paths).',
      details: { path: modelPath },
    });
  }
  files.sort((a, b) => comparePaths(a.name, b.name));
  return { root: modelPath, singleFile: false, files, ignorePaths, totalBytes: files.reduce((n, f) => n + f.size, 0) };
}

function symlinkRejected(path: string): AegisError {
  return new AegisError('SYMLINK_REJECTED', `model contains a symlink: ${path}`, {
    hint: 'Replace the link with the file it points to, or pass --allow-symlinks (links must stay inside the model).',
    details: { path },
  });
}

function unsupported(path: string): AegisError {
  return new AegisError('UNSUPPORTED_FILE_TYPE', `model contains a special file (device, FIFO or socket): ${path}`, {
    hint: 'Remove it from the model directory or add it to --ignore.',
    details: { path },
  });
}
