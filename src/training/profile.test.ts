/**
 * What profile format 2 adds for the drift monitor: a feature's kind with its
 * quantile sketch or frequency table, and the mean/covariance of
 * embedding-like 1-D inputs (expected values by hand and NumPy:
 * np.quantile(x, i/100) with the default "linear" method, np.cov(x, bias=True)).
 */
import { describe, expect, it } from 'vitest';
import { buildProfile, describeDistribution, meanCovariance, MAX_CATEGORIES, SKETCH_INTERVALS } from './profile.js';

describe('profile format 2', () => {
  it('a feature with at most 20 distinct values is categorical, with its exact frequencies', () => {
    const d = describeDistribution(Float64Array.from([0, 0, 0, 1, 1, 3]));
    expect(d).toEqual({ kind: 'categorical', categories: { values: [0, 1, 3], counts: [3, 2, 1] } });
    const twenty = describeDistribution(Float64Array.from({ length: 100 }, (_, i) => i % MAX_CATEGORIES).sort());
    expect(twenty.kind).toBe('categorical');
    expect(twenty.categories!.counts).toEqual(Array(20).fill(5));
  });

  it('a feature with more distinct values is numeric, with quantiles at levels 0, 0.01, …, 1 (numpy linear)', () => {
    const values = Float64Array.from({ length: 201 }, (_, i) => i / 2); // 0, 0.5, …, 100
    const d = describeDistribution(values);
    expect(d.kind).toBe('numeric');
    expect(d.sketch).toHaveLength(SKETCH_INTERVALS + 1);
    // np.quantile(np.arange(201) / 2, [0, 0.01, 0.5, 1]) = [0, 1, 50, 100]
    expect([d.sketch![0], d.sketch![1], d.sketch![50], d.sketch![100]]).toEqual([0, 1, 50, 100]);
    const four = describeDistribution(Float64Array.from({ length: 21 }, (_, i) => i * i));
    // np.quantile(np.arange(21) ** 2, 0.33) = 43.800000000000004 (position 6.6 between 36 and 49)
    expect(four.sketch![33]).toBeCloseTo(43.8, 10);
  });

  it('mean and population covariance of a 1-D input (np.cov(x, rowvar=False, bias=True))', () => {
    // rows (1, 2), (3, 6), (5, 7): mean (3, 5); cov [[8/3, 10/3], [10/3, 14/3]]
    const r = meanCovariance(Float32Array.from([1, 2, 3, 6, 5, 7]), 3, 2);
    expect(r.mean).toEqual([3, 5]);
    expect(r.covariance).toEqual([
      [2.66667, 3.33333],
      [3.33333, 4.66667],
    ]);
  });

  it('buildProfile adds kind and sketch or categories to every feature, multivariate to 1-D inputs of 2–64 elements only', () => {
    const rows = 50;
    const p = buildProfile({
      model: { name: 'm', version: '1' },
      dataset: { uri: 'd', split: 'train' },
      features: [
        { name: 'img', dtype: 'float32', shape: [1, 2] },
        { name: 'vec', dtype: 'float32', shape: [2] },
        { name: 'big', dtype: 'float32', shape: [65] },
      ],
      data: [Float32Array.from({ length: rows * 2 }, (_, i) => i / 7), Float32Array.from({ length: rows * 2 }, (_, i) => i % 3), new Float32Array(rows * 65)],
      rows,
    });
    expect(p.inputs.map((i) => i.multivariate !== undefined)).toEqual([false, true, false]);
    expect(p.inputs[0]!.features.map((f) => f.kind)).toEqual(['numeric', 'numeric']);
    expect(p.inputs[1]!.features.map((f) => f.kind)).toEqual(['categorical', 'categorical']);
    expect(p.inputs[2]!.features[0]).toMatchObject({ kind: 'categorical', categories: { values: [0], counts: [50] } });
    // the format-1 statistics are still there
    expect(p.inputs[0]!.features[0]).toMatchObject({ count: 50, quantiles: expect.any(Array), histogram: { edges: expect.any(Array) } });
  });
});
