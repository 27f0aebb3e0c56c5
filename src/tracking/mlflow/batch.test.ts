/**
 * Splitting params/tags/metrics into runs/log-batch requests within MLflow's
 * limits, and the checks made before anything is sent. (That the real server
 * enforces these limits and accepts the split requests: mlflow.itest.ts.)
 */
import { describe, expect, it } from 'vitest';
import { AegisError } from '../../errors.js';
import { MLFLOW_LIMITS, planLogBatches, toWireMetrics, toWireParams, toWireTags, type LogBatchBody } from './batch.js';
import { checkArtifactPath } from './index.js';

const RUN = '0123456789abcdef0123456789abcdef';

function withinLimits(bodies: LogBatchBody[]): void {
  for (const b of bodies) {
    expect(b.run_id).toBe(RUN);
    expect(b.metrics.length).toBeLessThanOrEqual(1000);
    expect(b.params.length).toBeLessThanOrEqual(100);
    expect(b.tags.length).toBeLessThanOrEqual(100);
    expect(b.metrics.length + b.params.length + b.tags.length).toBeLessThanOrEqual(1000);
    expect(b.metrics.length + b.params.length + b.tags.length).toBeGreaterThan(0);
    expect(Buffer.byteLength(JSON.stringify(b))).toBeLessThanOrEqual(1_000_000);
  }
}

function thrown(fn: () => unknown): AegisError {
  try {
    fn();
  } catch (err) {
    if (err instanceof AegisError) return err;
    throw err;
  }
  throw new Error('expected an AegisError');
}

const kv = (prefix: string, n: number, value = (i: number) => `v${i}`) => Array.from({ length: n }, (_, i) => ({ key: `${prefix}${i}`, value: value(i) }));

describe('planLogBatches', () => {
  it('splits 250 params into requests of at most 100, keeping their order', () => {
    const params = kv('p', 250);
    const bodies = planLogBatches(RUN, { params });
    expect(bodies.map((b) => b.params.length)).toEqual([100, 100, 50]);
    withinLimits(bodies);
    expect(bodies.flatMap((b) => b.params)).toEqual(params);
  });

  it('splits 2500 metric points into requests of at most 1000, keeping their order', () => {
    const metrics = toWireMetrics(
      Array.from({ length: 2500 }, (_, step) => ({ key: 'loss', value: 1 / (step + 1), step })),
      1_700_000_000_000,
    );
    const bodies = planLogBatches(RUN, { metrics });
    expect(bodies.map((b) => b.metrics.length)).toEqual([1000, 1000, 500]);
    expect(bodies.flatMap((b) => b.metrics)).toEqual(metrics);
  });

  it('keeps the total of params, tags and metrics per request at 1000', () => {
    const metrics = toWireMetrics(Array.from({ length: 950 }, (_, step) => ({ key: 'm', value: step, step })), 1);
    const bodies = planLogBatches(RUN, { params: kv('p', 100), tags: kv('t', 100), metrics });
    withinLimits(bodies);
    expect(bodies[0]).toMatchObject({ params: expect.any(Array), tags: expect.any(Array) });
    expect(bodies[0]!.params.length + bodies[0]!.tags.length + bodies[0]!.metrics.length).toBe(1000);
    expect(bodies.flatMap((b) => b.metrics)).toEqual(metrics);
    expect(bodies.flatMap((b) => b.params)).toHaveLength(100);
    expect(bodies.flatMap((b) => b.tags)).toHaveLength(100);
  });

  it('closes a request before its JSON passes 1 MB, counting UTF-8 bytes', () => {
    // 100 params of 6000 chars + 100 tags of 8000 three-byte chars: far over 1 MB in one request.
    const params = kv('p', 100, () => 'a'.repeat(6000));
    const tags = kv('t', 100, () => '€'.repeat(8000));
    const bodies = planLogBatches(RUN, { params, tags });
    withinLimits(bodies);
    expect(bodies.length).toBeGreaterThanOrEqual(3);
    expect(bodies.flatMap((b) => b.params)).toEqual(params);
    expect(bodies.flatMap((b) => b.tags)).toEqual(tags);
    // Full requests: the next entity would not have fit.
    for (let i = 0; i + 1 < bodies.length; i++) {
      const next = bodies[i + 1]!.params[0] ?? bodies[i + 1]!.tags[0]!;
      expect(Buffer.byteLength(JSON.stringify(bodies[i])) + Buffer.byteLength(JSON.stringify(next))).toBeGreaterThan(1_000_000);
    }
  });

  it('sends nothing for nothing', () => {
    expect(planLogBatches(RUN, {})).toEqual([]);
  });

  it('drops a param repeated with the same value and refuses one repeated with another', () => {
    expect(planLogBatches(RUN, { params: [...kv('p', 3), { key: 'p1', value: 'v1' }] })[0]!.params).toEqual(kv('p', 3));
    const err = thrown(() => planLogBatches(RUN, { params: [...kv('p', 3), { key: 'p1', value: 'other' }] }));
    expect(err.code).toBe('TRACKING_INPUT_INVALID');
    expect(err.message).toContain('p1');
    expect(err.hint).toMatch(/write-once/);
  });

  it('keeps the last value of a repeated tag', () => {
    const bodies = planLogBatches(RUN, { tags: [{ key: 'a', value: '1' }, { key: 'b', value: '2' }, { key: 'a', value: '3' }] });
    expect(bodies[0]!.tags).toEqual([{ key: 'b', value: '2' }, { key: 'a', value: '3' }]);
  });

  it('honours smaller limits (an older server)', () => {
    const bodies = planLogBatches(RUN, { params: kv('p', 30) }, { ...MLFLOW_LIMITS, paramsPerBatch: 10 });
    expect(bodies.map((b) => b.params.length)).toEqual([10, 10, 10]);
  });
});

describe('values checked before sending', () => {
  it('stringifies params the way they are stored', () => {
    expect(toWireParams({ a: 'x', b: 0.25, c: true, d: false, e: 3 })).toEqual([
      { key: 'a', value: 'x' },
      { key: 'b', value: '0.25' },
      { key: 'c', value: 'true' },
      { key: 'd', value: 'false' },
      { key: 'e', value: '3' },
    ]);
  });

  it('refuses param values over 6000 characters, counting characters not bytes or UTF-16 units', () => {
    expect(toWireParams({ ok: '😀'.repeat(6000) })[0]!.value).toHaveLength(12000); // 6000 code points
    const err = thrown(() => toWireParams({ notes: 'x'.repeat(6001) }));
    expect(err.code).toBe('TRACKING_INPUT_INVALID');
    expect(err.details).toMatchObject({ key: 'notes', length: 6001, limit: 6000 });
  });

  it('refuses tag values over 8000 characters and keys over 250', () => {
    expect(() => toWireTags({ t: 'x'.repeat(8000) })).not.toThrow();
    expect(thrown(() => toWireTags({ t: 'x'.repeat(8001) })).code).toBe('TRACKING_INPUT_INVALID');
    expect(thrown(() => toWireParams({ ['k'.repeat(251)]: 1 })).message).toMatch(/at most 250/);
    expect(thrown(() => toWireParams({ '': 1 })).code).toBe('TRACKING_INPUT_INVALID');
    expect(thrown(() => toWireParams({ a: null as unknown as string })).message).toMatch(/null/);
  });

  it('writes non-finite metric values as proto3 JSON strings and stamps each point once', () => {
    const wire = toWireMetrics(
      [
        { key: 'a', value: Number.NaN },
        { key: 'b', value: Infinity, step: 3 },
        { key: 'c', value: -Infinity, timestamp: 5 },
        { key: 'd', value: 0.5 },
      ],
      1234,
    );
    expect(wire).toEqual([
      { key: 'a', value: 'NaN', timestamp: 1234, step: 0 },
      { key: 'b', value: 'Infinity', timestamp: 1234, step: 3 },
      { key: 'c', value: '-Infinity', timestamp: 5, step: 0 },
      { key: 'd', value: 0.5, timestamp: 1234, step: 0 },
    ]);
  });

  it('refuses metrics that are not numbers or have a fractional step or a bad timestamp', () => {
    expect(thrown(() => toWireMetrics([{ key: 'a', value: '1' as unknown as number }], 1)).message).toMatch(/string value/);
    expect(thrown(() => toWireMetrics([{ key: 'a', value: 1, step: 0.5 }], 1)).message).toMatch(/step 0.5/);
    expect(thrown(() => toWireMetrics([{ key: 'a', value: 1, timestamp: -1 }], 1)).message).toMatch(/timestamp -1/);
  });

  it('accepts only relative artifact paths inside the run', () => {
    expect(checkArtifactPath('model')).toBe('model');
    expect(checkArtifactPath('model/bundle/')).toBe('model/bundle');
    for (const bad of ['', '/abs', '../x', 'a/../b', 'a//b', 'a\\b', './a', 'a\nb']) {
      expect(thrown(() => checkArtifactPath(bad)).code, bad).toBe('TRACKING_INPUT_INVALID');
    }
  });
});
