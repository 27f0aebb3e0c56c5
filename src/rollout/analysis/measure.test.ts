/**
 * Whole analysis runs of the default spec on the embedded counters, driven by
 * a clock passed in, the way the controller will drive them: a healthy canary
 * keeps running and ends Successful when the rollout finishes, a bad one is
 * aborted, and a canary without traffic or without a readable metric is
 * paused — never promoted (Architecture invariant 4).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { MetricProviders, SlidingWindowStats } from '../providers/index.js';
import { DEFAULT_ROLLOUT_SPEC, resolveAnalysis, validateRolloutSpec, type ResolvedMetric } from '../spec.js';
import { newAnalysisRun, rolloutAction, terminateRun, type AnalysisRunState } from './judge.js';
import { runAnalysisStep, takeMeasurement } from './measure.js';

const T0 = 1_700_000_000_000;

function setup() {
  const clock = { t: T0 };
  const stats = new SlidingWindowStats({ now: () => clock.t });
  const providers = new MetricProviders({ trafficStats: stats });
  const metrics = resolveAnalysis(DEFAULT_ROLLOUT_SPEC, DEFAULT_ROLLOUT_SPEC.strategy.canary.analysis!);
  /** `n` canary requests spread over the last second, `errors` of them 5xx. */
  const traffic = (n: number, errors = 0, latencyMs = 20) => {
    for (let i = 0; i < n; i++) stats.record('canary', i < errors ? 503 : 200, latencyMs);
  };
  /** Advances the clock second by second to `until`, sending `perSecond` requests each second. */
  const advance = (until: number, perSecond: number, errorsPerSecond = 0, latencyMs = 20) => {
    while (clock.t < until) {
      clock.t = Math.min(until, clock.t + 1000);
      traffic(perSecond, errorsPerSecond, latencyMs);
    }
  };
  return { clock, stats, providers, metrics, traffic, advance };
}

/** Runs passes at each nextAt until the run completes or `until`, calling `during` to generate traffic up to each pass. */
async function drive(
  s: ReturnType<typeof setup>,
  state: AnalysisRunState,
  until: number,
  during: (to: number) => void,
): Promise<{ state: AnalysisRunState; passes: number }> {
  let passes = 0;
  let next: number | undefined = s.clock.t;
  while (next !== undefined && next <= until && state.phase === 'Running') {
    during(next);
    s.clock.t = next;
    const r = await runAnalysisStep(state, s.metrics, s.providers, { now: () => s.clock.t });
    state = r.state;
    next = r.nextAt;
    passes++;
  }
  return { state, passes };
}

describe('the default canary analysis, end to end', () => {
  it('waits initialDelay, then measures every 10 s; a healthy canary keeps running and ends Successful with the rollout', async () => {
    const s = setup();
    let state = newAnalysisRun(T0);
    const first = await runAnalysisStep(state, s.metrics, s.providers, { now: () => s.clock.t });
    expect(first.measured).toEqual([]);
    expect(first.nextAt).toBe(T0 + 10_000);
    state = first.state;

    const run = await drive(s, state, T0 + 120_000, (to) => s.advance(to, 10, 0));
    state = run.state;
    expect(state.phase).toBe('Running');
    const errorRate = state.metrics.find((m) => m.name === 'error-rate')!;
    expect(errorRate.successful).toBeGreaterThanOrEqual(10);
    expect(errorRate.failed + errorRate.inconclusive + errorRate.error).toBe(0);
    expect(errorRate.measurements.at(-1)!.value).toBe('0');
    const latency = state.metrics.find((m) => m.name === 'latency-p99')!;
    expect(Number(latency.measurements.at(-1)!.value)).toBeCloseTo(0.02, 6);

    state = terminateRun(state, s.metrics); // the rollout reached its last step
    expect(state.phase).toBe('Successful');
    expect(rolloutAction(state.phase)).toBe('continue');
  });

  it('aborts a canary whose error rate goes bad: the third failed measurement fails the run', async () => {
    const s = setup();
    const { state } = await drive(s, newAnalysisRun(T0), T0 + 300_000, (to) => s.advance(to, 10, 2)); // 20 % 5xx
    expect(state.phase).toBe('Failed');
    const errorRate = state.metrics.find((m) => m.name === 'error-rate')!;
    expect([errorRate.phase, errorRate.failed]).toEqual(['Failed', 3]);
    expect(state.message).toBe('Metric "error-rate" assessed Failed due to failed (3) > failureLimit (2)');
    expect(errorRate.measurements.at(-1)!.finishedAt).toBe(T0 + 30_000); // at 10 s, 20 s and 30 s
    expect(rolloutAction(state.phase)).toBe('abort');
  });

  it('aborts on latency too', async () => {
    const s = setup();
    const { state } = await drive(s, newAnalysisRun(T0), T0 + 300_000, (to) => s.advance(to, 10, 0, 900));
    expect(state.phase).toBe('Failed');
    expect(state.metrics.find((m) => m.name === 'latency-p99')!.phase).toBe('Failed');
  });

  it('pauses, never promotes, a canary without enough traffic to judge (min-sample guard)', async () => {
    const s = setup();
    const { state } = await drive(s, newAnalysisRun(T0), T0 + 300_000, (to) => s.advance(to, 0)); // no traffic at all
    expect(state.phase).toBe('Inconclusive');
    const errorRate = state.metrics.find((m) => m.name === 'error-rate')!;
    expect(errorRate.inconclusive).toBe(3);
    expect(errorRate.message).toMatch(/0 request\(s\) on canary in the last 1m, fewer than minSamples \(20\)/);
    expect(rolloutAction(state.phase)).toBe('pause');
  });

  it('pauses, never promotes, when low traffic is all errors', async () => {
    const s = setup();
    const { state } = await drive(s, newAnalysisRun(T0), T0 + 300_000, (to) => {
      // one failing request every 10 s: 6 in the window, fewer than minSamples
      s.advance(to, 0);
      s.traffic(1, 1);
    });
    expect(state.phase).toBe('Inconclusive');
    expect(state.metrics.every((m) => m.failed === 0)).toBe(true);
  });

  it('pauses, never promotes, when the metric cannot be read (Prometheus down: Error run → pause)', async () => {
    const free = createServer();
    await new Promise<void>((r) => free.listen(0, '127.0.0.1', r));
    const address = `http://127.0.0.1:${(free.address() as AddressInfo).port}`;
    await new Promise((r) => free.close(r)); // nothing listens there now
    const spec = validateRolloutSpec({
      apiVersion: 'aegis.dev/v1',
      kind: 'Rollout',
      strategy: { canary: { steps: [{ setWeight: 50 }, { analysis: { templates: [{ templateName: 'slo' }] } }] } },
      analysisTemplates: [
        {
          name: 'slo',
          metrics: [{ name: 'error-rate', interval: '30s', successCondition: 'result[0] < 0.05', provider: { prometheus: { address, query: 'up', timeout: 1 } } }],
        },
      ],
    });
    const metrics: ResolvedMetric[] = resolveAnalysis(spec, spec.strategy.canary.steps[1]!.analysis!);
    const providers = new MetricProviders();
    let state = newAnalysisRun(T0);
    let t = T0;
    for (let i = 0; i < 5; i++) {
      const r = await runAnalysisStep(state, metrics, providers, { now: () => t });
      state = r.state;
      expect(r.measured).toEqual(['error-rate']);
      if (i < 4) expect(r.nextAt).toBe(t + 10_000); // errors are retried after 10 s, not the 30 s interval
      t = r.nextAt ?? t;
    }
    expect(state.phase).toBe('Error');
    expect(state.message).toMatch(/consecutiveErrors \(5\) > consecutiveErrorLimit \(4\).*cannot query Prometheus at http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/);
    expect(rolloutAction(state.phase)).toBe('pause');
  });

  it('records start and finish times from the clock it is given', async () => {
    const s = setup();
    s.traffic(50);
    let t = T0;
    const m = await takeMeasurement(s.providers, s.metrics[0]!, { now: () => (t += 7) });
    expect(m).toEqual({ phase: 'Successful', value: '0', startedAt: T0 + 7, finishedAt: T0 + 14 });
  });
});
