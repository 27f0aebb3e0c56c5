import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The repository's Prometheus rule files. */
export const RULES_DIR = fileURLToPath(new URL('../../deploy/prometheus/', import.meta.url));
export const PROMTOOL = process.env.AEGIS_PROMTOOL_BIN ?? 'promtool';

/** Runs promtool (from Debian's prometheus package, installed by scripts/services.sh) in `cwd`. */
export function promtool(args: string[], cwd = RULES_DIR): { status: number | null; out: string } {
  const r = spawnSync(PROMTOOL, args, { cwd, encoding: 'utf8' });
  if (r.error) {
    throw new Error(`cannot run ${PROMTOOL} (${r.error.message}): install it with scripts/services.sh (Debian package prometheus) or set AEGIS_PROMTOOL_BIN`);
  }
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}
