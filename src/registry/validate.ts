import { AegisError } from '../errors.js';
import { REF_STAGES, STAGES, type Stage } from './types.js';

/**
 * Input checks for registry names, versions, digests, stages and refs. Names
 * and versions become path segments in artifact stores (store/types archiveKey),
 * so they are restricted to a safe alphabet.
 */
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const VERSION_RE = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$/;
const SHA256_RE = /^[0-9a-f]{64}$/;
/** Words a ref uses as selectors, so no version may be called that. */
const RESERVED_VERSIONS = new Set<string>(['latest', ...STAGES]);

const REF_HINT = 'Refer to a version as NAME@VERSION, NAME@production, NAME@canary, NAME@staging, or NAME (the latest version).';

function invalid(message: string, hint: string, details: Record<string, unknown>): AegisError {
  return new AegisError('REGISTRY_INPUT_INVALID', message, { hint, details });
}

export function checkName(name: unknown): string {
  if (typeof name !== 'string' || !NAME_RE.test(name) || name.includes('..')) {
    throw invalid(
      `invalid model name ${JSON.stringify(name)}`,
      'Use 1-128 letters, digits, ".", "_" or "-", starting with a letter or digit (e.g. fraud-detector).',
      { name },
    );
  }
  return name;
}

export function checkVersion(version: unknown): string {
  if (typeof version !== 'string' || !VERSION_RE.test(version) || version.includes('..')) {
    throw invalid(
      `invalid version ${JSON.stringify(version)}`,
      'Use 1-128 letters, digits, ".", "_", "+" or "-", starting with a letter or digit (e.g. 1.4.0).',
      { version },
    );
  }
  if (RESERVED_VERSIONS.has(version.toLowerCase())) {
    throw invalid(`"${version}" cannot be a version: it is a reserved word in refs`, `Pick another version; ${[...RESERVED_VERSIONS].join(', ')} are reserved.`, {
      version,
    });
  }
  return version;
}

export function checkSha256(digest: unknown): string {
  const d = typeof digest === 'string' ? digest.toLowerCase() : '';
  if (!SHA256_RE.test(d)) {
    throw invalid(`invalid archive digest ${JSON.stringify(digest)}`, 'Pass the archive SHA-256 as 64 hex digits.', { archiveSha256: digest });
  }
  return d;
}

export function checkStage(stage: unknown): Stage {
  if (typeof stage !== 'string' || !(STAGES as readonly string[]).includes(stage)) {
    throw new AegisError('STAGE_INVALID', `invalid stage ${JSON.stringify(stage)}`, {
      hint: `Valid stages: ${STAGES.join(', ')}.`,
      details: { stage, valid: [...STAGES] },
    });
  }
  return stage as Stage;
}

export function checkText(value: unknown, field: string, hint: string): string {
  if (typeof value !== 'string' || value.trim() === '') throw invalid(`${field} must be a non-empty string`, hint, { field });
  return value;
}

/** A JSON object (not an array or null) that survives JSON.stringify; returns the JSON text. */
export function checkJsonObject(value: unknown, field: string): string {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalid(`${field} must be a JSON object`, `Pass ${field} as an object, e.g. {}.`, { field });
  }
  try {
    return JSON.stringify(value);
  } catch (err) {
    throw new AegisError('REGISTRY_INPUT_INVALID', `${field} cannot be stored as JSON: ${(err as Error).message}`, {
      cause: err,
      hint: `Pass ${field} as plain JSON data (no BigInt, functions or cycles).`,
      details: { field },
    });
  }
}

export type ParsedRef =
  | { name: string; kind: 'version'; version: string }
  | { name: string; kind: 'stage'; stage: (typeof REF_STAGES)[number] }
  | { name: string; kind: 'latest' };

/** Parses `name`, `name@latest`, `name@production|canary|staging` or `name@version`. */
export function parseRef(ref: unknown): ParsedRef {
  if (typeof ref !== 'string' || ref === '') {
    throw invalid(`invalid model ref ${JSON.stringify(ref)}`, REF_HINT, { ref });
  }
  const at = ref.indexOf('@');
  const name = at < 0 ? ref : ref.slice(0, at);
  const selector = at < 0 ? 'latest' : ref.slice(at + 1);
  try {
    checkName(name);
  } catch (err) {
    throw new AegisError('REGISTRY_INPUT_INVALID', `invalid model ref "${ref}": ${(err as Error).message}`, { cause: err, hint: REF_HINT, details: { ref } });
  }
  const lower = selector.toLowerCase();
  if (lower === 'latest') return { name, kind: 'latest' };
  if ((REF_STAGES as readonly string[]).includes(lower)) return { name, kind: 'stage', stage: lower as (typeof REF_STAGES)[number] };
  if (lower === 'none' || lower === 'archived') {
    throw invalid(`invalid model ref "${ref}": "${selector}" can hold many versions`, `${REF_HINT} List versions with \`aegis model list\`.`, { ref });
  }
  try {
    return { name, kind: 'version', version: checkVersion(selector) };
  } catch (err) {
    throw new AegisError('REGISTRY_INPUT_INVALID', `invalid model ref "${ref}": ${(err as Error).message}`, { cause: err, hint: REF_HINT, details: { ref } });
  }
}
