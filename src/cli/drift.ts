import type { Command } from 'commander';
import type { AegisConfig } from '../config/index.js';
import type { DriftReport } from '../drift/index.js';
import { AegisError } from '../errors.js';
import { printJson, reportError } from './output.js';

export const DEFAULT_SERVER_URL = 'http://127.0.0.1:8080';

/** NAME or NAME@VERSION. */
export function parseModelRef(ref: string): { name: string; version?: string } {
  const at = ref.lastIndexOf('@');
  const name = at === -1 ? ref : ref.slice(0, at);
  const version = at === -1 ? undefined : ref.slice(at + 1);
  if (!name || version === '' || /[/\s]/.test(name)) {
    throw new AegisError('USAGE', `${JSON.stringify(ref)} is not NAME or NAME@VERSION`, { hint: 'e.g. aegis drift report example_multimodal@0.1' });
  }
  return version === undefined ? { name } : { name, version };
}

/** GET /v2/models/{name}[/versions/{v}]/drift from a model server. */
export async function fetchDriftReport(url: string, ref: { name: string; version?: string }, timeoutMs = 30_000): Promise<DriftReport> {
  const base = url.replace(/\/+$/, '');
  const path = `/v2/models/${encodeURIComponent(ref.name)}${ref.version ? `/versions/${encodeURIComponent(ref.version)}` : ''}/drift`;
  let res: Response;
  try {
    res = await fetch(base + path, { signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    throw new AegisError('DRIFT_UNAVAILABLE', `cannot reach the model server at ${base}: ${(err as Error).message}`, {
      cause: err,
      hint: `Is it running (\`aegis up\` or \`aegis serve\`)? Pass its address with --url (default ${DEFAULT_SERVER_URL}).`,
    });
  }
  const text = await res.text();
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new AegisError('DRIFT_UNAVAILABLE', `${base}${path} answered ${res.status} with a body that is not JSON: ${text.slice(0, 120)}`, { hint: 'Check that --url points at an Aegis model server.' });
  }
  if (!res.ok) {
    const hint = typeof body.hint === 'string' ? body.hint : res.status === 404 ? 'Check the model name and version: `curl -s ' + base + '/v2/repository/index -X POST` lists what the server serves.' : 'See the model server log.';
    throw new AegisError('DRIFT_UNAVAILABLE', `${base} answered ${res.status}: ${typeof body.error === 'string' ? body.error : text.slice(0, 200)}`, { hint, details: { status: res.status } });
  }
  return body as unknown as DriftReport;
}

const fmt = (x: number) => (Number.isNaN(x) ? 'n/a' : !Number.isFinite(x) ? String(x) : Math.abs(x) !== 0 && Math.abs(x) < 1e-4 ? x.toExponential(2) : x.toFixed(4));
const P_VALUES = new Set(['ks', 'chisquare', 'z']);
const rule = (method: string, threshold: number) => (P_VALUES.has(method) ? `p < ${threshold}` : `>= ${threshold}`);
const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
}

/** The report for a person. */
export function renderDriftReport(r: DriftReport, o: { onlyDrifted?: boolean } = {}): string {
  const id = `${r.model}@${r.version}`;
  const lines: string[] = [];
  const w = r.window;
  if (r.status !== 'ok' || r.drift === null) {
    lines.push(`${id}: no verdict yet — the window holds ${w.rows} of the ${w.minRows} rows a verdict needs (${w.folded} folded so far, sample rate ${w.sampleRate})`);
    lines.push(`reference: ${r.reference.datasetUri} (${r.reference.rows} rows)`);
    return lines.join('\n') + '\n';
  }
  const s = r.share!;
  const mvDrifted = r.multivariate.filter((m) => m.drifted).map((m) => m.input);
  lines.push(
    `${id}: ${r.drift ? 'DRIFT' : 'no drift'} — ${s.drifted} of ${s.total} features drifted (${pct(s.value)}; dataset drift at ${pct(s.threshold)})` +
      (r.multivariate.length ? `; multivariate: ${mvDrifted.length ? `${mvDrifted.join(', ')} drifted` : 'no drift'}` : ''),
  );
  lines.push(`window: ${w.rows} rows (minimum ${w.minRows}, capacity ${w.capacity}, sample rate ${w.sampleRate}); evaluated ${r.evaluatedAt}`);
  lines.push(`reference: ${r.reference.datasetUri} (${r.reference.rows} rows${r.reference.sketches ? '' : ', format-1 profile: coarse CDFs'}); retrain data: ${r.datasetUri}`);
  const features = o.onlyDrifted ? r.features.filter((f) => f.drifted) : r.features;
  if (features.length) {
    lines.push('');
    lines.push(table([['FEATURE', 'KIND', 'TEST', 'SCORE', 'DRIFT WHEN', 'DRIFT'], ...features.map((f) => [f.name, f.kind, f.method, fmt(f.score), rule(f.method, f.threshold), f.drifted ? 'yes' : 'no'])]));
  }
  if (r.multivariate.length) {
    lines.push('');
    lines.push(table([['INPUT', 'DIMS', 'TEST', 'SCORE', 'P-VALUE', 'DRIFT WHEN', 'DRIFT'], ...r.multivariate.map((m) => [m.input, String(m.dims), m.method, fmt(m.score), fmt(m.pValue), `>= ${m.threshold} and p < ${m.alpha}`, m.drifted ? 'yes' : 'no'])]));
  }
  if (r.prediction) {
    const p = r.prediction;
    lines.push('');
    lines.push(`predictions (${p.name}, not counted in the share): ${p.method} ${fmt(p.score)} (${rule(p.method, p.threshold)}): ${p.drifted ? 'drifted' : 'no drift'}`);
    lines.push('  ' + p.shares.map((c) => `${c.class} ${pct(c.window)} (training ${pct(c.reference)})`).join(', '));
  }
  return lines.join('\n') + '\n';
}

/** `aegis drift report NAME[@VERSION]`. */
export function registerDriftCommands(program: Command, _config: () => AegisConfig): void {
  const drift = program
    .command('drift')
    .description("watch a served model's live inputs for drift from its training data")
    .addHelpText('after', '\nExample:\n  $ aegis drift report example_multimodal@0.1 --url http://127.0.0.1:8080');
  drift
    .command('report')
    .description('show the current drift verdict per feature of a model a server is serving')
    .argument('<model>', 'NAME or NAME@VERSION (the version must be the one served)')
    .option('--url <url>', 'the model server', DEFAULT_SERVER_URL)
    .option('--drifted', 'list only the features that drifted')
    .option('--json', 'print the report as JSON')
    .addHelpText(
      'after',
      `
The model server compares a sliding window of its live inputs with the
reference profile shipped in the signed model (profile.json), per feature
(Evidently's defaults: normed Wasserstein / Jensen-Shannon for large
references, KS / chi-square for small ones) and for embedding-like inputs
(Mahalanobis mean shift); see docs/drift.md. Exit code 0 whatever the verdict.

Examples:
  $ aegis drift report example_multimodal@0.1
  $ aegis drift report example_multimodal --url http://10.0.0.5:8080 --json | jq .drift`,
    )
    .action(async (ref: string, o: { url: string; drifted?: boolean; json?: boolean }) => {
      try {
        const report = await fetchDriftReport(o.url, parseModelRef(ref));
        if (o.json) printJson(report);
        else process.stdout.write(renderDriftReport(report, { onlyDrifted: Boolean(o.drifted) }));
      } catch (err) {
        process.exitCode = reportError(err, o);
      }
    });
}
