/**
 * The AnalysisTemplate `aegis rollout render-argo` writes for the spec's
 * embedded metrics, measured against a real Prometheus (scripts/services.sh)
 * scraping the model server's own metric definitions (createServerMetrics,
 * fed synthetic traffic), and judged by Argo's rules (argoVerdict: no Aegis
 * missing-data guard, as an Argo controller would judge). The four canaries:
 * healthy, failing 20 %, too little traffic, and never a 5xx. What cannot run
 * here is the Argo controller itself; its verdict rules are judge.ts's, tested
 * against Argo's own cases in judge.test.ts.
 */
import { createServer, type Server } from 'node:http';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { argoVerdict, type MeasurementPhase } from '../src/rollout/analysis/judge.js';
import { renderArgoRollout } from '../src/rollout/argo.js';
import { PrometheusProvider } from '../src/rollout/providers/prometheus/index.js';
import type { ResolvedMetric } from '../src/rollout/spec.js';
import { parseRolloutSpec, validateRolloutSpec, type RolloutSpec } from '../src/rollout/spec.js';
import { createServerMetrics } from '../src/serving/metrics.js';
import { FILE_SD_DIR, PROMETHEUS_URL, requirePrometheus, writeTargets } from '../src/test-support/prometheus.js';

const run = Date.now().toString(36);
const model = (name: string) => `argo_it_${run}_${name}`;
const CANARIES = {
  healthy: { perTick: 5, errorEvery: 100, seconds: 0.01 }, // 1 % errors, 10 ms
  faulty: { perTick: 5, errorEvery: 5, seconds: 0.01 }, // 20 % errors
  slow: { perTick: 5, errorEvery: 0, seconds: 0.8 }, // no errors, 800 ms
  quiet: { perTick: 0, errorEvery: 0, seconds: 0.01 }, // one request every 3 s: below minSamples (20 in 20 s)
} as const;
type Canary = keyof typeof CANARIES;

const spec = validateRolloutSpec({
  apiVersion: 'aegis.dev/v1',
  kind: 'Rollout',
  metadata: { name: 'argo-itest' },
  strategy: { canary: { steps: [{ setWeight: 50 }], analysis: { templates: [{ templateName: 'health' }] } } },
  analysisTemplates: [
    {
      name: 'health',
      metrics: [
        { name: 'error-rate', interval: '5s', successCondition: 'result < 0.05', provider: { embedded: { metric: 'error-rate', window: '20s', minSamples: 20 } } },
        { name: 'latency-p99', interval: '5s', successCondition: 'result < 0.5', provider: { embedded: { metric: 'latency-p99', window: '20s', minSamples: 20 } } },
        { name: 'request-rate', interval: '5s', successCondition: 'result >= 0', provider: { embedded: { metric: 'request-rate', window: '20s' } } },
      ],
    },
  ],
});

let metricsServer: Server;
let targetsFile = '';
let ticker: NodeJS.Timeout | undefined;
let trafficStart = 0;

beforeAll(async () => {
  await requirePrometheus();
  const m = createServerMetrics({ defaultMetrics: false });
  metricsServer = createServer((_req, res) => {
    void m.registry.metrics().then((text) => res.writeHead(200, { 'content-type': m.registry.contentType }).end(text));
  });
  await new Promise<void>((r) => metricsServer.listen(0, '127.0.0.1', () => r()));
  const port = (metricsServer.address() as { port: number }).port;
  // Synthetic traffic on the canary version 2 of each model, every 100 ms.
  let tick = 0;
  trafficStart = Date.now();
  const served = new Map<string, number>();
  ticker = setInterval(() => {
    tick++;
    for (const [name, c] of Object.entries(CANARIES)) {
      const n = c.perTick || (tick % 30 === 0 ? 1 : 0); // quiet: one request every 3 s, about 7 in the window
      for (let i = 0; i < n; i++) {
        const seq = (served.get(name) ?? 0) + 1;
        served.set(name, seq);
        const code = c.errorEvery && seq % c.errorEvery === 0 ? '500' : '200';
        const labels = { model: model(name), version: '2', track: 'canary' };
        m.requests.inc({ ...labels, code });
        m.duration.observe(labels, c.seconds);
      }
    }
  }, 100);
  targetsFile = join(FILE_SD_DIR!, `argo-analysis-itest-${run}.json`);
  await writeTargets(targetsFile, 'aegis-argo-itest', { server: `http://127.0.0.1:${port}` });
});

afterAll(async () => {
  if (ticker) clearInterval(ticker);
  if (targetsFile) await rm(targetsFile, { force: true });
  await new Promise<void>((r) => (metricsServer ? metricsServer.close(() => r()) : r()));
});

/** The rendered template's metrics for one model, as Argo resolves them: the ref's args, then the template's defaults, substituted. */
function renderedMetrics(name: string, from: RolloutSpec = spec, overrides: Record<string, string> = {}): ResolvedMetric[] {
  const text = renderArgoRollout(from, { model: model(name), version: '2', archiveUri: 's3://models/x/model.tar.gz', image: 'aegis', prometheusAddress: PROMETHEUS_URL! });
  const docs = YAML.parseAllDocuments(text).map((d) => d.toJS() as { kind: string; spec: Record<string, unknown> });
  const rollout = docs.find((d) => d.kind === 'Rollout')!;
  const canary = (rollout.spec as { strategy: { canary: { analysis: { args?: { name: string; value: string }[] } } } }).strategy.canary;
  const template = docs.find((d) => d.kind === 'AnalysisTemplate')!;
  const args = new Map([
    ...((template.spec.args ?? []) as { name: string; value?: string }[]).filter((a) => a.value !== undefined).map((a) => [a.name, a.value!] as const),
    ...(canary.analysis.args ?? []).map((a) => [a.name, a.value] as const),
    ...Object.entries(overrides),
  ]);
  const sub = (text: string) => text.replace(/\{\{args\.([a-z-]+)\}\}/g, (_x, a: string) => args.get(a)!);
  const metrics = template.spec.metrics as { name: string; successCondition: string; failureCondition: string; provider: { prometheus: { address: string; query: string } } }[];
  return metrics.map((mt) => ({
    name: mt.name,
    template: 'health',
    failureLimit: 0,
    inconclusiveLimit: 0,
    consecutiveErrorLimit: 4,
    successCondition: mt.successCondition,
    failureCondition: mt.failureCondition,
    dryRun: false,
    provider: { kind: 'prometheus', address: sub(mt.provider.prometheus.address), query: sub(mt.provider.prometheus.query), timeoutMs: 10_000 },
  }));
}

async function verdicts(name: Canary, from: RolloutSpec = spec, overrides: Record<string, string> = {}): Promise<Record<string, { phase: MeasurementPhase; value: unknown }>> {
  const provider = new PrometheusProvider();
  const out: Record<string, { phase: MeasurementPhase; value: unknown }> = {};
  for (const m of renderedMetrics(name, from, overrides)) {
    const r = await provider.measure(m, { now: Date.now() });
    out[m.name] = { phase: r.phase ?? argoVerdict(r.value, m).phase, value: r.value };
  }
  return out;
}

describe('embedded metrics rendered for Argo, measured by a real Prometheus, judged by Argo\'s rules', () => {
  it('healthy Successful, 20 % errors Failed, 800 ms p99 Failed, too little traffic Inconclusive', async () => {
    // Prometheus scrapes every second; a 20 s window has a rate once two scrapes are in.
    const deadline = Date.now() + 50_000;
    let seen: Record<Canary, Record<string, { phase: MeasurementPhase; value: unknown }>> | undefined;
    const expected = {
      healthy: { 'error-rate': 'Successful', 'latency-p99': 'Successful', 'request-rate': 'Successful' },
      faulty: { 'error-rate': 'Failed', 'latency-p99': 'Successful', 'request-rate': 'Successful' },
      slow: { 'error-rate': 'Successful', 'latency-p99': 'Failed', 'request-rate': 'Successful' },
      quiet: { 'error-rate': 'Inconclusive', 'latency-p99': 'Inconclusive', 'request-rate': 'Successful' },
    };
    const phases = (v: typeof seen) => v && Object.fromEntries(Object.entries(v).map(([k, ms]) => [k, Object.fromEntries(Object.entries(ms).map(([n, x]) => [n, x.phase]))]));
    while (Date.now() < deadline) {
      seen = { healthy: await verdicts('healthy'), faulty: await verdicts('faulty'), slow: await verdicts('slow'), quiet: await verdicts('quiet') };
      // Until the 20 s window holds traffic from end to end (before, rate() sees part of it) and the verdicts are right.
      if (Date.now() - trafficStart > 23_000 && JSON.stringify(phases(seen)) === JSON.stringify(expected)) break;
      await new Promise((r) => setTimeout(r, 1000));
    }
    expect(phases(seen), JSON.stringify(seen)).toEqual(expected);
    // The values are what the embedded provider would have measured.
    expect(Math.abs((seen!.healthy['error-rate']!.value as number) - 0.01)).toBeLessThan(0.004);
    expect(Math.abs((seen!.faulty['error-rate']!.value as number) - 0.2)).toBeLessThan(0.02);
    expect(seen!.healthy['request-rate']!.value as number).toBeGreaterThan(30);
    expect(Number.isNaN(seen!.quiet['error-rate']!.value)).toBe(true);
    // slow never answered 5xx: its error rate is 0, not "no data" (no 5xx series exists).
    expect(seen!.slow['error-rate']!.value).toBe(0);

    // The Prometheus example spec, copied as written into the AnalysisTemplate, judges them the same way.
    const example = parseRolloutSpec(await readFile(new URL('../examples/rollouts/canary-prometheus.yaml', import.meta.url), 'utf8'));
    // (The example names its model in its refs; each canary here is its own model.)
    const judged = async (c: Canary) => phases({ [c]: await verdicts(c, example, { prometheus: PROMETHEUS_URL!, model: model(c) }) } as never)![c];
    expect(await judged('slow')).toEqual({ 'error-rate': 'Successful', 'latency-p99': 'Failed' });
    expect(await judged('healthy')).toEqual({ 'error-rate': 'Successful', 'latency-p99': 'Successful' });
    expect(await judged('faulty')).toEqual({ 'error-rate': 'Failed', 'latency-p99': 'Successful' });
  }, 75_000);
});
