/**
 * Durations as Argo Rollouts writes them: Go's time.ParseDuration syntax
 * (`30s`, `5m`, `1h30m`, `500ms`, `1.5s`, `0`), which is what
 * `interval`, `initialDelay` (DurationString) and `pause.duration` accept.
 */

const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, μs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const GO_DURATION = /^(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$/;
const PART = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/g;

/** Milliseconds for a Go duration string (non-negative), or undefined when it is not one. */
export function parseGoDuration(text: string): number | undefined {
  const t = text.trim();
  if (t === '0') return 0;
  if (!GO_DURATION.test(t)) return undefined;
  let ms = 0;
  for (const m of t.matchAll(PART)) ms += Number(m[1]) * UNIT_MS[m[2]!]!;
  return Number.isFinite(ms) ? ms : undefined;
}

/**
 * A pause duration: a Go duration string, or a number of seconds (YAML `30`
 * or `"30"`), as Argo's pause.duration (an int-or-string) takes it.
 */
export function parsePauseDuration(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isInteger(value) && value >= 0 ? value * 1000 : undefined;
  if (/^\s*\d+\s*$/.test(value)) return Number(value) * 1000;
  return parseGoDuration(value);
}

/** `30000` → `30s`, `90000` → `1m30s`, `1500` → `1.5s`, `250` → `250ms` (Go's style, for messages). */
export function formatGoDuration(ms: number): string {
  if (ms === 0) return '0s';
  if (ms < 1000) return `${+ms.toFixed(3)}ms`;
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const s = +((ms % 60_000) / 1000).toFixed(3);
  return `${h ? `${h}h` : ''}${h || m ? `${m}m` : ''}${s || (!h && !m) ? `${s}s` : ''}`;
}
