/**
 * The gateway's sliding-window counters (expiry driven by a clock passed in)
 * and the embedded provider over them, with its minimum-sample guard.
 */
import { describe, expect, it } from 'vitest';
import { isAegisError } from '../../../errors.js';
import { judge } from '../../analysis/judge.js';
import type { EmbeddedMetricName, ResolvedMetric, Track } from '../../spec.js';
import { MetricProviders } from '../index.js';
import { EmbeddedProvider, SlidingWindowStats } from './index.js';

const T0 = 1_700_000_000_000;

function statsAt(start = T0, capacitySeconds?: number) {
  const clock = { t: start };
  const stats = new SlidingWindowStats({ now: () => clock.t, ...(capacitySeconds ? { capacitySeconds } : {}) });
  return { clock, stats };
}

describe('SlidingWindowStats', () => {
  it('counts requests and 5xx per track', () => {
    const { stats } = statsAt();
    for (const status of [200, 201, 404, 429, 500, 503, 599, 600]) stats.record('canary', status, 5);
    stats.record('stable', 500, 5);
    const w = stats.window('canary', 60_000);
    expect([w.requests, w.errors5xx, w.seconds]).toEqual([8, 3, 60]);
    expect([stats.window('stable', 60_000).requests, stats.window('stable', 60_000).errors5xx]).toEqual([1, 1]);
  });

  it('forgets what falls out of the window as the clock moves', () => {
    const { clock, stats } = statsAt(T0 + 999); // late in a second: the window is whole seconds
    stats.record('canary', 500, 1);
    clock.t += 1;
    stats.record('canary', 200, 1); // next second
    expect(stats.window('canary', 60_000).requests).toBe(2);
    clock.t = T0 + 59_999; // 59 s later: both seconds still in the last 60
    expect(stats.window('canary', 60_000).requests).toBe(2);
    clock.t = T0 + 60_000; // the first second has left the window
    expect(stats.window('canary', 60_000)).toMatchObject({ requests: 1, errors5xx: 0 });
    clock.t = T0 + 61_000;
    expect(stats.window('canary', 60_000).requests).toBe(0);
    expect(stats.window('canary', 120_000).requests).toBe(2); // still kept for longer windows
  });

  it('reuses the ring: old seconds are overwritten, never double counted', () => {
    const { clock, stats } = statsAt(T0, 10);
    for (let s = 0; s < 25; s++) {
      stats.record('canary', s % 2 ? 500 : 200, 1);
      stats.record('canary', 200, 1);
      clock.t += 1000;
    }
    clock.t -= 1000; // at the last second recorded
    const w = stats.window('canary', 10_000);
    expect(w.requests).toBe(20); // seconds 15…24, two requests each
    expect(w.errors5xx).toBe(5);
    expect(stats.window('canary', 3_000).requests).toBe(6);
  });

  it('estimates latency quantiles within a few percent', () => {
    const { stats } = statsAt();
    for (let ms = 1; ms <= 1000; ms++) stats.record('canary', 200, ms);
    const w = stats.window('canary', 60_000);
    expect(w.latencySamples).toBe(1000);
    expect(w.latencyMs(0.5)).toBeGreaterThan(500 * 0.98);
    expect(w.latencyMs(0.5)).toBeLessThan(500 * 1.02);
    expect(w.latencyMs(0.9)).toBeGreaterThan(900 * 0.98);
    expect(w.latencyMs(0.9)).toBeLessThan(900 * 1.02);
    expect(w.latencyMs(0.99)).toBeGreaterThan(990 * 0.98);
    expect(w.latencyMs(0.99)).toBeLessThanOrEqual(1000);
    expect(w.latencyMs(1)).toBe(1000);
    expect(w.latencyMs(0)).toBe(1);
  });

  it('gives the sample itself when there is one, and NaN when there is none', () => {
    const { stats } = statsAt();
    stats.record('canary', 200, 12.5);
    expect(stats.window('canary', 60_000).latencyMs(0.99)).toBe(12.5);
    stats.record('stable', 200); // a request without a latency
    const w = stats.window('stable', 60_000);
    expect([w.requests, w.latencySamples]).toEqual([1, 0]);
    expect(w.latencyMs(0.5)).toBeNaN();
  });

  it('merges the seconds of a window into one distribution', () => {
    const { clock, stats } = statsAt();
    for (let i = 0; i < 99; i++) stats.record('canary', 200, 10);
    clock.t += 5_000;
    stats.record('canary', 200, 2000);
    const w = stats.window('canary', 60_000);
    expect(w.latencyMs(0.5)).toBeCloseTo(10, 0);
    expect(w.latencyMs(1)).toBe(2000);
  });

  it('refuses a window longer than it keeps, a bad quantile and a bad capacity', () => {
    const { stats } = statsAt(T0, 60);
    expect(() => stats.window('canary', 61_000)).toThrow(/longer than the 60s of traffic these counters keep/);
    expect(() => stats.window('canary', 1000).latencyMs(99)).toThrow(/between 0 and 1/);
    try {
      new SlidingWindowStats({ capacitySeconds: 0 });
      expect.unreachable();
    } catch (err) {
      expect(isAegisError(err, 'USAGE')).toBe(true);
    }
  });
});

function embedded(metric: EmbeddedMetricName, options: { minSamples?: number; track?: Track; windowMs?: number; successCondition?: string } = {}): ResolvedMetric {
  return {
    name: metric,
    template: 't',
    successCondition: options.successCondition ?? 'result < 0.05',
    provider: { kind: 'embedded', metric, track: options.track ?? 'canary', windowMs: options.windowMs ?? 60_000, minSamples: options.minSamples ?? 20 },
  };
}

describe('EmbeddedProvider', () => {
  const ctx = { now: T0 };

  it('measures error rate, request rate and latency quantiles (in seconds) per track', async () => {
    const { stats } = statsAt();
    for (let i = 0; i < 100; i++) stats.record('canary', i < 3 ? 502 : 200, 40);
    for (let i = 0; i < 30; i++) stats.record('stable', 200, 10);
    const p = new EmbeddedProvider(stats);
    expect(await p.measure(embedded('error-rate'), ctx)).toEqual({ value: 0.03 });
    expect(await p.measure(embedded('error-rate', { track: 'stable' }), ctx)).toEqual({ value: 0 });
    expect(await p.measure(embedded('request-rate'), ctx)).toEqual({ value: 100 / 60 });
    expect(await p.measure(embedded('request-rate', { windowMs: 10_000 }), ctx)).toEqual({ value: 10 });
    expect((await p.measure(embedded('latency-p99'), ctx)).value).toBeCloseTo(0.04, 6);
    expect((await p.measure(embedded('latency-p50', { track: 'stable' }), ctx)).value).toBeCloseTo(0.01, 6);
    expect((await p.measure(embedded('latency-p90'), ctx)).value).toBeCloseTo(0.04, 6);
  });

  it('min-sample guard: below minSamples a terrible error rate is Inconclusive, never Failed', async () => {
    const { stats } = statsAt();
    for (let i = 0; i < 19; i++) stats.record('canary', 500, 5);
    const p = new EmbeddedProvider(stats);
    const m = embedded('error-rate');
    const r = await p.measure(m, ctx);
    expect(r).toEqual({
      value: 1,
      phase: 'Inconclusive',
      message: '19 request(s) on canary in the last 1m, fewer than minSamples (20): too little traffic to judge error-rate',
    });
    expect(judge(m, r).phase).toBe('Inconclusive');
    expect(judge(m, r, { guardMissingData: false }).phase).toBe('Inconclusive');
    stats.record('canary', 500, 5); // the 20th request: now it is judged
    const judged = await p.measure(m, ctx);
    expect(judged).toEqual({ value: 1 });
    expect(judge(m, judged).phase).toBe('Failed');
  });

  it('guards latency the same way, and a good value below minSamples is not Successful either', async () => {
    const { stats } = statsAt();
    stats.record('canary', 200, 1);
    const r = await new EmbeddedProvider(stats).measure(embedded('latency-p99', { successCondition: 'result < 0.5' }), ctx);
    expect(r.phase).toBe('Inconclusive');
  });

  it('does not guard request-rate: a low rate is the measurement', async () => {
    const { stats } = statsAt();
    stats.record('canary', 200, 1);
    const m = embedded('request-rate', { successCondition: 'result >= 1' });
    const r = await new EmbeddedProvider(stats).measure(m, ctx);
    expect(r).toEqual({ value: 1 / 60 });
    expect(judge(m, r).phase).toBe('Failed');
  });

  it('with minSamples 0 and no traffic the value is NaN, which the judge pauses on', async () => {
    const { stats } = statsAt();
    const m = embedded('error-rate', { minSamples: 0 });
    const r = await new EmbeddedProvider(stats).measure(m, ctx);
    expect(r.value).toBeNaN();
    expect(judge(m, r, { guardMissingData: false }).phase).toBe('Failed'); // Argo: NaN < 0.05 is false
    expect(judge(m, r).phase).toBe('Inconclusive');
    expect((await new EmbeddedProvider(stats).measure(embedded('latency-p99', { minSamples: 0 }), ctx)).value).toBeNaN();
  });

  it('reports a window the counters do not keep as an Error measurement', async () => {
    const { stats } = statsAt(T0, 30);
    const r = await new EmbeddedProvider(stats).measure(embedded('error-rate', { windowMs: 60_000 }), ctx);
    expect(r).toMatchObject({ value: null, phase: 'Error' });
    expect(r.message).toMatch(/cannot read the gateway's canary counters: a window of 60s is longer than the 30s/);
  });
});

describe('MetricProviders', () => {
  it('gives an Error measurement for an embedded metric when no counters are attached', async () => {
    const r = await new MetricProviders().measure(embedded('error-rate'), { now: T0 });
    expect(r).toMatchObject({ value: null, phase: 'Error' });
    expect(r.message).toMatch(/no gateway traffic counters are attached here; use the prometheus provider/);
  });

  it('turns a provider that throws into an Error measurement', async () => {
    const broken = {
      window(): never {
        throw new TypeError('boom');
      },
    };
    const r = await new MetricProviders({ trafficStats: broken }).measure(embedded('error-rate'), { now: T0 });
    expect(r).toMatchObject({ phase: 'Error', message: expect.stringMatching(/boom/) });
  });

  it('routes embedded metrics to the counters', async () => {
    const { stats } = statsAt();
    for (let i = 0; i < 20; i++) stats.record('canary', 200, 1);
    expect(await new MetricProviders({ trafficStats: stats }).measure(embedded('error-rate'), { now: T0 })).toEqual({ value: 0 });
  });
});
