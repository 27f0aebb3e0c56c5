import { AegisError } from '../errors.js';

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * A duration for `--duration`: `180s`, `3m`, `500ms`, `1h`, `1.5s`, or a plain
 * number of seconds (`180`, as the runbook passes it). Returns milliseconds.
 */
export function parseDuration(text: string, option = '--duration'): number {
  const m = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h)?\s*$/i.exec(text);
  const ms = m ? Number(m[1]) * UNITS[(m[2] ?? 's').toLowerCase()]! : NaN;
  if (!Number.isFinite(ms) || ms <= 0) {
    throw new AegisError('USAGE', `${option} must be a positive duration, got ${JSON.stringify(text)}`, {
      hint: `Use e.g. ${option} 180s, ${option} 3m, ${option} 500ms or a plain number of seconds (${option} 180).`,
    });
  }
  return Math.round(ms);
}

/** `180000` → `3m`, `2500` → `2.5s`, `500` → `500ms` (for messages). */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  return `${+(ms / 1000).toFixed(3)}s`;
}
