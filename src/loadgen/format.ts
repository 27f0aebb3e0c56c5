import type { LatencySummary } from './histogram.js';
import type { LoadProgress, LoadReport } from './run.js';

const n = (x: number) => x.toLocaleString('en-US');
const ms = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

function latencyLine(l: LatencySummary): string {
  return l.count ? `p50 ${ms(l.p50)}  p90 ${ms(l.p90)}  p99 ${ms(l.p99)}  p99.9 ${ms(l.p999)}  max ${ms(l.max)} ms` : 'no samples';
}

/** The live progress line (no newline; the caller redraws it with \r). */
export function formatProgress(p: LoadProgress): string {
  const t = `${Math.min(p.elapsedMs, p.durationMs) / 1000 | 0}s/${(p.durationMs / 1000).toFixed(0)}s`;
  return `${t}  ${n(p.rps)} rps  sent ${n(p.sent)}  ok ${n(p.ok)}  expected-4xx ${n(p.expected4xx)}  errors ${n(p.errors)}  in-flight ${n(p.inFlight)}  p99 ${ms(p.p99Ms)} ms`;
}

/** The final report as a small table for a person. */
export function formatReport(r: LoadReport): string {
  const o = r.outcomes;
  const rows: [string, string][] = [
    ['target', `${n(r.target.qps)} rps for ${r.target.durationS} s = ${n(r.target.requests)} requests (open loop)`],
    ['achieved', `${n(r.achieved.rps)} rps responses (${pct(r.achieved.ratio)} of target), ${n(r.achieved.sentRps)} rps sent`],
    ['requests', `${n(r.sent)} sent, ${n(r.completed)} answered, ${n(o.dropped)} dropped at the in-flight cap (${n(r.settings.maxInFlight)}), elapsed ${r.elapsedS} s`],
    ['outcomes', `ok ${n(o.ok)}  expected-4xx ${n(o.expected4xx)}  server-errors ${n(o.serverErrors)}  unexpected ${n(o.unexpected)}  network-errors ${n(o.networkErrors)}  timeouts ${n(o.timeouts)}`],
    ['status', Object.entries(r.statusCounts).map(([code, c]) => `${code}: ${n(c)}`).join('  ') || 'none'],
  ];
  if (o.networkErrors) rows.push(['net errors', Object.entries(r.networkErrorCodes).map(([code, c]) => `${code}: ${n(c)}`).join('  ')]);
  rows.push(['latency', `${latencyLine(r.latencyMs)}  (valid requests, from intended start)`]);
  if (r.malformed.errorRate > 0) {
    const kinds = Object.entries(r.malformed.kinds).map(([k, c]) => `${k} ${n(c)}`).join(', ');
    rows.push(['malformed', `${n(r.malformed.sent)} sent (${pct(r.sent ? r.malformed.sent / r.sent : 0)}; ${kinds}), ${n(r.malformed.expected4xx)} got the expected 4xx, ${n(r.malformed.unexpected)} did not`]);
    rows.push(['', `latency ${latencyLine(r.malformed.latencyMs)}`]);
  }
  rows.push(['gen. lag', `p50 ${ms(r.scheduleLagMs.p50)}  p99 ${ms(r.scheduleLagMs.p99)}  max ${ms(r.scheduleLagMs.max)} ms after the intended start (included in latency)`]);
  if (r.stoppedEarly) rows.push(['stopped', r.stoppedEarly === 'interrupted' ? 'early: interrupted' : 'early: nothing could connect']);
  const w = Math.max(...rows.map(([k]) => k.length));
  return `load ${r.method} ${r.url}\n` + rows.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`).join('\n') + '\n';
}
