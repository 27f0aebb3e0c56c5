import { AegisError } from '../errors.js';

/**
 * The folder at a file store's root that holds in-flight writes. Reserved on
 * every store, so a key valid on one store is valid on all of them.
 */
export const TEMP_DIR = '.tmp';

const KEY_HINT = 'Keys are relative paths with `/` between non-empty segments, e.g. model-archives/name/1/model.tar.gz (no leading `/`, no `.` or `..`, no backslash, no NUL).';

function invalid(key: string, why: string): AegisError {
  return new AegisError('STORE_KEY_INVALID', `invalid store key ${JSON.stringify(key)}: ${why}`, {
    hint: KEY_HINT,
    details: { key },
  });
}

/** Checks an object key; throws AegisError STORE_KEY_INVALID. */
export function validateKey(key: string): string {
  if (typeof key !== 'string' || key === '') throw invalid(String(key), 'it is empty');
  if (key.includes('\0')) throw invalid(key, 'it contains a NUL character');
  if (key.includes('\\')) throw invalid(key, 'it contains a backslash');
  if (key.startsWith('/')) throw invalid(key, 'it is absolute');
  for (const segment of key.split('/')) {
    if (segment === '') throw invalid(key, 'it has an empty segment (`//` or a trailing `/`)');
    if (segment === '.' || segment === '..') throw invalid(key, `it has a \`${segment}\` segment`);
  }
  if (key === TEMP_DIR || key.startsWith(`${TEMP_DIR}/`)) throw invalid(key, `\`${TEMP_DIR}/\` is reserved for in-flight writes`);
  return key;
}

/**
 * Checks a list prefix: '' (everything) or a key prefix, which may end in `/`
 * and may stop mid-segment (`model-archives/na` matches `model-archives/name/…`).
 */
export function validatePrefix(prefix: string): string {
  if (typeof prefix !== 'string') throw invalid(String(prefix), 'it is not a string');
  if (prefix.includes('\0')) throw invalid(prefix, 'it contains a NUL character');
  if (prefix.includes('\\')) throw invalid(prefix, 'it contains a backslash');
  const complete = prefix.split('/').slice(0, -1); // the last piece may be a partial name
  for (const segment of complete) {
    if (segment === '') throw invalid(prefix, prefix.startsWith('/') ? 'it is absolute' : 'it has an empty segment (`//`)');
    if (segment === '.' || segment === '..') throw invalid(prefix, `it has a \`${segment}\` segment`);
  }
  return prefix;
}

/** Byte-wise (UTF-8) key order, the order S3 lists in. */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}
