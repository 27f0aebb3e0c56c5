import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AegisError } from '../errors.js';
import { FileStore } from './file/index.js';
import { validateKey } from './keys.js';
import { parseS3Uri, s3OptionsFromEnv, S3Store, type S3StoreOptions } from './s3/index.js';
import type { ArtifactStore } from './types.js';

export { FileStore } from './file/index.js';
export { S3Store, type S3StoreOptions } from './s3/index.js';
export { compareKeys, validateKey, validatePrefix } from './keys.js';
export { archiveKey, type ArtifactStore, type ObjectInfo, type PutOptions } from './types.js';

export interface OpenStoreOptions {
  /** Resolves plain relative paths; default process.cwd(). */
  cwd?: string;
  /** Read for AEGIS_S3_* settings; default process.env. */
  env?: NodeJS.ProcessEnv;
  /** S3 settings that win over the environment (endpoint, credentials, part size, …). */
  s3?: Omit<S3StoreOptions, 'bucket' | 'prefix'>;
}

/** The embedded default: `<home>/artifacts`, i.e. ./.aegis/artifacts. */
export function defaultStoreRoot(home = './.aegis'): string {
  return join(home, 'artifacts');
}

const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//;
const USAGE_HINT = 'Use a folder path (./.aegis/artifacts), a file:// URI (file:///var/lib/aegis/artifacts) or s3://BUCKET/PREFIX.';

/**
 * Opens the store rooted at `uri`: `s3://bucket/prefix`, `file:///abs/dir`,
 * or a plain filesystem path (treated as file://).
 */
export function openStore(uri: string, options: OpenStoreOptions = {}): ArtifactStore {
  const target = classify(uri, options);
  if (target.kind === 'file') return new FileStore(target.path);
  return new S3Store({ ...s3OptionsFromEnv(options.env), ...options.s3, bucket: target.bucket, prefix: target.prefix });
}

/**
 * Splits the URI of one object (`s3://bucket/prefix/dir/model.tar.gz`,
 * `file:///abs/dir/model.tar.gz`, `/abs/dir/model.tar.gz`) into a store
 * rooted at its parent and the object's key (its last path segment), so
 * callers can read an arbitrary object URI through the ArtifactStore interface.
 */
export function splitObjectUri(uri: string, options: OpenStoreOptions = {}): { store: ArtifactStore; key: string } {
  const target = classify(uri, options);
  const noObject = () =>
    new AegisError('USAGE', `${JSON.stringify(uri)} does not name an object`, {
      hint: 'Give the URI of a file, e.g. s3://bucket/models/model.tar.gz or /data/model.tar.gz (not a bucket or a folder ending in `/`).',
    });
  if (target.kind === 'file') {
    if (/[/\\]$/.test(uri) || resolve(target.path) === dirname(resolve(target.path))) throw noObject();
    const key = basename(target.path);
    validateObjectName(uri, key);
    return { store: new FileStore(dirname(target.path)), key };
  }
  if (!target.prefix || /\/$/.test(uri)) throw noObject();
  const slash = target.prefix.lastIndexOf('/');
  const key = target.prefix.slice(slash + 1);
  validateObjectName(uri, key);
  const prefix = slash < 0 ? '' : target.prefix.slice(0, slash);
  return { store: new S3Store({ ...s3OptionsFromEnv(options.env), ...options.s3, bucket: target.bucket, prefix }), key };
}

type Target = { kind: 'file'; path: string } | { kind: 's3'; bucket: string; prefix: string };

function classify(uri: string, options: OpenStoreOptions): Target {
  if (typeof uri !== 'string' || uri.trim() === '') {
    throw new AegisError('USAGE', 'no store location given', { hint: USAGE_HINT });
  }
  const scheme = SCHEME.exec(uri)?.[1]?.toLowerCase();
  if (scheme === undefined) return { kind: 'file', path: resolve(options.cwd ?? process.cwd(), uri) };
  if (scheme === 's3') return { kind: 's3', ...parseS3Uri(uri) };
  if (scheme === 'file') {
    try {
      return { kind: 'file', path: fileURLToPath(uri) };
    } catch (err) {
      throw new AegisError('USAGE', `not a local file URI: ${uri}`, {
        cause: err,
        hint: 'Write file:///absolute/path (three slashes; no host name), or give a plain folder path.',
      });
    }
  }
  throw new AegisError('USAGE', `unsupported store scheme ${scheme}:// in ${uri}`, {
    hint: `${USAGE_HINT} Other schemes (gs://, https://, …) are not supported.`,
    details: { uri, scheme },
  });
}

function validateObjectName(uri: string, key: string): void {
  try {
    validateKey(key);
  } catch (err) {
    throw new AegisError('USAGE', `${JSON.stringify(uri)} does not name a valid object`, {
      cause: err,
      hint: 'The last path segment must be a file name (not `.`, `..` or `.tmp`).',
    });
  }
}
