import { AegisError } from '../errors.js';

const SUFFIX = /-retrain\.\d+$/;
/** The manifest's version rule (artifact/manifest.ts): the stricter of the manifest's and the registry's. */
const VERSION = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/;

/**
 * The version a retraining run produces: `<parent>-retrain.<run id>`, e.g.
 * 0.1 → `0.1-retrain.7`, 1.4.0 → `1.4.0-retrain.12`. A parent that is itself a
 * retrain keeps its base (`0.1-retrain.7` → `0.1-retrain.9`), so versions do
 * not grow along a chain of retrains; the lineage records the real parent.
 * Unique per run (the run id is), readable as "built from <parent>", and
 * free of `+` (which object stores and URLs mangle). Without a parent: `0.0.0-retrain.<run>`.
 */
export function retrainVersion(parent: string | null | undefined, runId: number): string {
  const base = (parent ?? '0.0.0').replace(SUFFIX, '');
  const version = `${base}-retrain.${runId}`;
  if (!VERSION.test(version) || version.includes('..')) {
    throw new AegisError('PIPELINE_INPUT_INVALID', `cannot derive a version for run ${runId} from parent version ${JSON.stringify(parent)} (${version} is not a valid version)`, {
      hint: 'Versions are at most 64 letters, digits, ".", "_", "+" or "-": give the production version a shorter name.',
      details: { parent, runId, retryable: false },
    });
  }
  return version;
}
