/**
 * The backup alert rules (deploy/prometheus/backup-rules.yaml) pass
 * `promtool check rules` and their unit tests (`promtool test rules`).
 * promtool comes with Debian's prometheus package (scripts/services.sh).
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const DIR = fileURLToPath(new URL('../../deploy/prometheus/', import.meta.url));
const PROMTOOL = process.env.AEGIS_PROMTOOL_BIN ?? 'promtool';

function promtool(...args: string[]): { status: number | null; out: string } {
  const r = spawnSync(PROMTOOL, args, { cwd: DIR, encoding: 'utf8' });
  if (r.error) {
    throw new Error(`cannot run ${PROMTOOL} (${r.error.message}): install it with scripts/services.sh (Debian package prometheus) or set AEGIS_PROMTOOL_BIN`);
  }
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('backup alert rules', () => {
  it('pass promtool check rules', () => {
    const r = promtool('check', 'rules', 'backup-rules.yaml');
    expect(r.status, r.out).toBe(0);
    expect(r.out).toMatch(/SUCCESS: 2 rules found/);
  });

  it('pass their promtool unit tests', () => {
    const r = promtool('test', 'rules', 'backup-rules.test.yaml');
    expect(r.status, r.out).toBe(0);
    expect(r.out).toMatch(/SUCCESS/);
  });
});
