/**
 * The hand-written statistics against SciPy. Every expected number was
 * computed with SciPy 1.17.1 / NumPy 2.4.6 (Python 3.11) by
 * src/drift/expected-values.py and is hardcoded here, so the tests need no
 * Python. Samples come from the MINSTD generator
 * (x ← 48271·x mod 2³¹−1, u = x / (2³¹−1)), which gives the same numbers in
 * both languages.
 */
import { describe, expect, it } from 'vitest';
import { KnotCdf, chi2Sf, chiSquare, compareCdf, erfc, gammaincc, jensenShannon, kolmogorovSf, ksPValue, logGamma, mahalanobis, cholesky, psi, zTest } from './stats.js';

function minstd(seed: number, n: number): number[] {
  let x = seed;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    x = (48271 * x) % 2147483647;
    out.push(x / 2147483647);
  }
  return out;
}
const sorted = (a: number[]) => Float64Array.from(a).sort();

describe('special functions (scipy.special / scipy.stats)', () => {
  it('log-gamma matches gammaln', () => {
    for (const [x, want] of [[0.5, 0.5723649429247], [1, 0], [4.5, 2.4537365708424423], [50, 144.56574394634487], [1000.5, 5908.674175848678]] as const) {
      expect(logGamma(x)).toBeCloseTo(want, 10);
    }
  });

  it('the upper regularized incomplete gamma matches gammaincc (series and continued-fraction branches)', () => {
    const cases: [number, number, number][] = [
      [0.5, 0.1, 0.6547208460185768],
      [0.5, 2.0, 0.04550026389635857],
      [3, 1.5, 0.8088468305380582],
      [10, 25, 0.0002214766382487835],
      [8, 8, 0.4529608094869946],
      [100, 90, 0.84177901081357],
      [0.5, 30, 9.485737571073857e-15],
      [2.5, 0.01, 0.999997012398468],
    ];
    for (const [a, x, want] of cases) expect(Math.abs(gammaincc(a, x) - want) / want, `Q(${a}, ${x})`).toBeLessThan(1e-9);
    expect(gammaincc(2, 0)).toBe(1);
    expect(gammaincc(2, Infinity)).toBe(0);
  });

  it('chi-square survival function matches chi2.sf, erfc matches special.erfc', () => {
    const cases: [number, number, number][] = [
      [3.84, 1, 0.05004352124870519],
      [26.3, 16, 0.04995047140203531],
      [32.0, 16, 0.00999978095310478],
      [1000, 900, 0.010994608942135844],
      [5.0, 2, 0.0820849986238988],
    ];
    for (const [x, df, want] of cases) expect(Math.abs(chi2Sf(x, df) - want) / want, `chi2.sf(${x}, ${df})`).toBeLessThan(1e-9);
    for (const [x, want] of [[1.2, 0.08968602177036462], [-0.5, 1.5204998778130465], [3.0, 2.2090496998585445e-5], [0, 1]] as const) {
      expect(Math.abs(erfc(x) - want) / want, `erfc(${x})`).toBeLessThan(1e-9);
    }
  });

  it('the Kolmogorov survival function matches kstwobign.sf on both sides of the series switch', () => {
    const cases: [number, number][] = [
      [0.3, 0.9999906941986655],
      [0.8, 0.5441424115741981],
      [1.0, 0.26999967167735456],
      [1.18, 0.1234538094297657],
      [1.36, 0.049485876755377876],
      [2.0, 0.0006709252557796953],
      [3.0, 3.045995948942526e-8],
    ];
    for (const [l, want] of cases) expect(Math.abs(kolmogorovSf(l) - want) / want, `kstwobign.sf(${l})`).toBeLessThan(1e-9);
    expect(kolmogorovSf(0)).toBe(1);
  });
});

describe('numeric tests against scipy.stats two-sample functions', () => {
  const ref = minstd(1, 300).map((u) => u * 10);
  const cur = minstd(2, 200).map((u) => u * 10 + 0.5);

  it('KS statistic equals ks_2samp, p-value equals kstwobign.sf(√(nm/(n+m))·D)', () => {
    const { ks } = compareCdf(KnotCdf.fromSample(ref), sorted(cur));
    expect(ks).toBeCloseTo(0.056666666666666664, 12);
    expect(ksPValue(ks, 300, 200)).toBeCloseTo(0.83567074870136, 9);
    // SciPy's own asymptotic two-sample p-value (finite-n kstwo) is close: 0.8145870265335413
    expect(Math.abs(ksPValue(ks, 300, 200) - 0.8145870265335413)).toBeLessThan(0.03);
    const same = compareCdf(KnotCdf.fromSample(ref), sorted(minstd(5, 200).map((u) => u * 10)));
    expect(same.ks).toBeCloseTo(0.08833333333333333, 12);
    expect(ksPValue(same.ks, 300, 200)).toBeCloseTo(0.30630998028646794, 9);
    expect(same.wasserstein).toBeCloseTo(0.35597460929893016, 10);
  });

  it('terminates and ignores what is not in the sample: a count past its end (rows added while testing) and NaNs', () => {
    const exact = compareCdf(KnotCdf.fromSample(ref), sorted(cur));
    // A count larger than the sample used to make the merge spin forever in the model server.
    expect(compareCdf(KnotCdf.fromSample(ref), sorted(cur), cur.length + 5)).toEqual(exact);
    const withNaN = Float64Array.from([...cur, NaN, NaN]).sort();
    expect(compareCdf(KnotCdf.fromSample(ref), withNaN)).toEqual(exact);
  });

  it('Wasserstein distance equals wasserstein_distance (and normed by np.std of the reference as Evidently)', () => {
    const { wasserstein } = compareCdf(KnotCdf.fromSample(ref), sorted(cur));
    expect(wasserstein).toBeCloseTo(0.23611005528881693, 10);
    const mean = ref.reduce((a, b) => a + b, 0) / ref.length;
    const std = Math.sqrt(ref.reduce((a, b) => a + (b - mean) ** 2, 0) / ref.length);
    expect(wasserstein / std).toBeCloseTo(0.08080696616723232, 10);
  });

  it('handles ties (discrete values) exactly like SciPy', () => {
    const refd = minstd(3, 400).map((u) => Math.floor(u * 6));
    const curd = minstd(4, 250).map((u) => Math.floor(u * 5));
    const r = compareCdf(KnotCdf.fromSample(refd), sorted(curd));
    expect(r.ks).toBeCloseTo(0.203, 12);
    expect(r.wasserstein).toBeCloseTo(0.7245, 12);
    // the same reference given as a frequency table
    const values = [0, 1, 2, 3, 4, 5];
    const counts = values.map((v) => refd.filter((x) => x === v).length);
    const t = compareCdf(KnotCdf.fromCounts(values, counts), sorted(curd));
    expect(t.ks).toBeCloseTo(0.203, 12);
    expect(t.wasserstein).toBeCloseTo(0.7245, 12);
  });

  it('a quantile sketch is a piecewise-linear CDF: exact at its knots, linear between, 0 below and 1 above', () => {
    const cdf = KnotCdf.fromSketch([0, 1, 1, 3, 4]); // levels 0, .25, .5, .75, 1: a jump of .25 at 1
    expect([cdf.at(-1), cdf.at(0), cdf.at(0.5), cdf.at(1), cdf.at(2), cdf.at(3), cdf.at(4), cdf.at(9)]).toEqual([0, 0, 0.125, 0.5, 0.625, 0.75, 1, 1]);
    // identical distributions: zero distance; a window of the knots themselves is within 1/K
    const self = compareCdf(cdf, Float64Array.from([0, 1, 1, 3, 4]));
    expect(self.ks).toBeLessThanOrEqual(0.25 + 1e-12);
    expect(compareCdf(KnotCdf.fromSample([1, 2, 3]), Float64Array.from([1, 2, 3]))).toEqual({ ks: 0, wasserstein: 0 });
  });

  it('refuses knots that go down', () => {
    expect(() => new KnotCdf([0, 2, 1], [0, 0.5, 1])).toThrow(/non-decreasing/);
    expect(() => new KnotCdf([0, 1], [0.5, 0.2])).toThrow(/non-decreasing/);
  });
});

describe('categorical tests against SciPy and Evidently', () => {
  const refc = [500, 300, 150, 50];

  it("chi-square goodness of fit equals chisquare(f_obs, f_exp = reference × n/N) as Evidently calls it", () => {
    const r = chiSquare(refc, [90, 70, 30, 10]);
    expect(r.statistic).toBeCloseTo(2.666666666666667, 10);
    expect(r.pValue).toBeCloseTo(0.4459216983631228, 10);
    expect(chiSquare(refc, [110, 55, 27, 8]).pValue).toBeCloseTo(0.5485483490528458, 10);
    // a value the reference never had: impossible under the reference, p = 0
    expect(chiSquare(refc, [90, 70, 30, 10], 3)).toMatchObject({ statistic: Infinity, pValue: 0 });
  });

  it('Jensen–Shannon distance equals scipy.spatial.distance.jensenshannon (natural log), unseen values pooled or not', () => {
    expect(jensenShannon(refc, [90, 70, 30, 10])).toBeCloseTo(0.0402577667903537, 12);
    // reference [500,300,150,50,0] vs [90,70,30,0,10]
    expect(jensenShannon([...refc, 0], [90, 70, 30, 0, 10])).toBeCloseTo(0.19046796794984652, 12);
    expect(jensenShannon(refc, [90, 70, 30, 0], 10)).toBeCloseTo(0.19046796794984652, 12);
    expect(jensenShannon(refc, refc)).toBe(0);
  });

  it("PSI equals Σ(r−c)·ln(r/c) with Evidently's zero fill", () => {
    const r = [500, 300, 150, 50, 0].map((c) => c / 1000);
    const c = [90, 70, 30, 0, 10].map((x) => x / 200);
    expect(psi(r, c)).toBeCloseTo(0.6331934479967889, 10);
    expect(psi([0.5, 0.5], [0.5, 0.5])).toBe(0);
  });

  it("z-test equals Evidently's proportions_diff_z_test (two-sided)", () => {
    const r = zTest(300, 800, 60, 200);
    expect(r.statistic).toBeCloseTo(1.9764235376052375, 10);
    expect(r.pValue).toBeCloseTo(0.04810682788851928, 10);
    expect(zTest(0, 100, 0, 50).pValue).toBe(1); // one category on both sides: no evidence
  });
});

describe('multivariate', () => {
  it('Mahalanobis distance equals scipy.spatial.distance.mahalanobis(x̄, μ, inv(Σ)) and its χ² p-value chi2.sf', () => {
    const cov = [1.0, 0.3, 0.1, 0.3, 2.0, -0.4, 0.1, -0.4, 0.5];
    const d = mahalanobis([0.7 - 0.5, -0.8 + 1.0, 2.1 - 2.0], cholesky(cov, 3), 3);
    expect(d).toBeCloseTo(0.2861657076770956, 8); // the ridge (1e-9·trace/d) moves the 9th digit at most
    expect(chi2Sf(((500 * 4000) / 4500) * d * d, 3) / 6.175457175246687e-8).toBeCloseTo(1, 4);
  });

  it('factors a singular covariance (a constant component) thanks to the ridge', () => {
    const L = cholesky([1, 0, 0, 0], 2);
    expect(Number.isFinite(mahalanobis([0.1, 0], L, 2))).toBe(true);
    expect(mahalanobis([0.1, 0], L, 2)).toBeCloseTo(0.1, 6);
  });
});
