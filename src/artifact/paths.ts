import { isAbsolute, relative, resolve, sep } from 'node:path';
import { AegisError } from '../errors.js';

/** Paths the OMS reference tools leave out of a signature by default. */
export const DEFAULT_GIT_IGNORES = ['.git', '.gitattributes', '.github', '.gitignore'] as const;

/**
 * Validates a resource name from a bundle: a relative POSIX path that stays
 * inside the model root. The reference verifier joins names to the model path
 * without this check; we refuse absolute names, `..`, empty segments and
 * backslashes so a crafted bundle cannot point the verifier outside the model.
 */
export function assertSafeResourceName(name: string): void {
  const bad = (why: string) =>
    new AegisError('RESOURCE_NAME_UNSAFE', `bundle lists an unsafe resource name ${JSON.stringify(name)}: ${why}`, {
      hint: 'The bundle was crafted or corrupted; do not trust this model. Re-sign it with `aegis model sign`.',
      details: { name },
    });
  if (name.length === 0) throw bad('empty name');
  if (name === '.') return; // legacy single-file form
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name)) throw bad('absolute path');
  if (name.includes('\\')) throw bad('backslash in path');
  if (name.includes('\0')) throw bad('NUL byte in path');
  for (const part of name.split('/')) {
    if (part === '..') throw bad('contains ".."');
    if (part === '' || part === '.') throw bad('empty or "." path segment');
  }
}

/** Converts a platform relative path to the POSIX form used in manifests. */
export function toPosix(rel: string): string {
  return sep === '/' ? rel : rel.split(sep).join('/');
}

/**
 * Normalizes user-given ignore paths (relative to the model root, or absolute
 * inside it) to POSIX paths relative to the root. Absolute paths outside the
 * model are dropped, as the reference tools do.
 */
export function normalizeIgnorePaths(modelRoot: string, paths: readonly string[]): string[] {
  const out = new Set<string>();
  for (const p of paths) {
    if (p.trim() === '') {
      throw new AegisError('IGNORE_PATH_INVALID', 'an empty --ignore path was given', {
        hint: 'Pass a path relative to the model root, e.g. --ignore README.md',
      });
    }
    const abs = isAbsolute(p) ? p : resolve(modelRoot, p);
    const rel = relative(modelRoot, abs);
    if (rel === '' || rel === '..' || rel.startsWith('..' + sep) || isAbsolute(rel)) continue;
    out.add(toPosix(rel));
  }
  return [...out];
}

export function isIgnored(relPosix: string, ignores: readonly string[]): boolean {
  for (const ig of ignores) {
    if (relPosix === ig || relPosix.startsWith(ig + '/')) return true;
  }
  return false;
}

/** Sorts by path components, code point by code point (the order the reference tools use). */
export function comparePaths(a: string, b: string): number {
  const pa = a.split('/');
  const pb = b.split('/');
  const n = Math.min(pa.length, pb.length);
  for (let i = 0; i < n; i++) {
    const c = compareCodePoints(pa[i]!, pb[i]!);
    if (c !== 0) return c;
  }
  return pa.length - pb.length;
}

function compareCodePoints(a: string, b: string): number {
  if (a === b) return 0;
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  for (;;) {
    const x = ia.next();
    const y = ib.next();
    if (x.done) return y.done ? 0 : -1;
    if (y.done) return 1;
    const d = x.value.codePointAt(0)! - y.value.codePointAt(0)!;
    if (d !== 0) return d;
  }
}
