/**
 * The statistics behind the drift tests, written here by hand:
 *
 * - the special functions (log-gamma, the regularized upper incomplete gamma
 *   function Q for chi-square p-values and erfc, the Kolmogorov distribution's
 *   survival function) are a few dozen lines of textbook numerics; the
 *   maintained npm equivalent (@stdlib/math-base-special-gammainc) would be a
 *   new dependency for two functions, and no maintained npm package has the
 *   Kolmogorov distribution or a two-sample KS test;
 * - the tests themselves compare a live window with a *reference profile*
 *   (a quantile sketch or a frequency table shipped in the model), not with a
 *   second raw sample, which is what every library implementation expects.
 *
 * Every function is checked against SciPy in stats.test.ts (expected values
 * computed with SciPy and hardcoded there with their provenance).
 */

// ---------------------------------------------------------------------------
// Special functions
// ---------------------------------------------------------------------------

/** Lanczos approximation (g = 7, n = 9): |relative error| < 1e-14 for x > 0. */
const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905, -0.13857109526572012,
  9.9843695780195716e-6, 1.5056327351493116e-7,
];

/** ln Γ(x) for x > 0. */
export function logGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - logGamma(1 - x);
  const z = x - 1;
  let a = LANCZOS[0]!;
  const t = z + 7.5;
  for (let i = 1; i < 9; i++) a += LANCZOS[i]! / (z + i);
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(a);
}

const EPS = 1e-15;
const TINY = 1e-300;

/**
 * Regularized upper incomplete gamma function Q(a, x) = Γ(a, x) / Γ(a)
 * (SciPy's gammaincc): the series for P when x < a + 1, otherwise the
 * continued fraction for Q (modified Lentz), as in Numerical Recipes §6.2.
 */
export function gammaincc(a: number, x: number): number {
  if (!(a > 0) || Number.isNaN(x)) return NaN;
  if (x <= 0) return 1;
  if (x === Infinity) return 0;
  const lnPrefix = a * Math.log(x) - x - logGamma(a);
  if (x < a + 1) {
    let sum = 1 / a;
    let term = sum;
    for (let n = 1; n < 10_000; n++) {
      term *= x / (a + n);
      sum += term;
      if (Math.abs(term) < Math.abs(sum) * EPS) break;
    }
    return Math.max(0, 1 - sum * Math.exp(lnPrefix));
  }
  let b = x + 1 - a;
  let c = 1 / TINY;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 10_000; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < TINY) d = TINY;
    c = b + an / c;
    if (Math.abs(c) < TINY) c = TINY;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < EPS) break;
  }
  return Math.exp(lnPrefix) * h;
}

/** P(X ≥ x) for X ~ χ²(df) (SciPy: chi2.sf). df = 0: a point mass at 0. */
export function chi2Sf(x: number, df: number): number {
  if (df <= 0) return x > 0 ? 0 : 1;
  return gammaincc(df / 2, x / 2);
}

/** The complementary error function (SciPy: erfc), via Q(1/2, x²). */
export function erfc(x: number): number {
  return x >= 0 ? gammaincc(0.5, x * x) : 2 - gammaincc(0.5, x * x);
}

/**
 * Survival function of the Kolmogorov distribution, P(K > λ) (SciPy:
 * kstwobign.sf): the limit law of √n·D. Two series, each fast where the
 * other is slow (Numerical Recipes §14.3.3).
 */
export function kolmogorovSf(lambda: number): number {
  if (!(lambda > 0)) return 1;
  if (lambda < 1.18) {
    const y = Math.exp((-Math.PI * Math.PI) / (8 * lambda * lambda));
    // P(K ≤ λ) = √(2π)/λ · Σ_{j≥1} y^((2j-1)²)
    let sum = 0;
    for (let j = 1; j < 100; j++) {
      const term = Math.pow(y, (2 * j - 1) ** 2);
      sum += term;
      if (term < 1e-17 * sum) break;
    }
    return Math.min(1, Math.max(0, 1 - (Math.sqrt(2 * Math.PI) / lambda) * sum));
  }
  // P(K > λ) = 2 Σ_{j≥1} (-1)^(j-1) exp(-2 j² λ²)
  let sum = 0;
  for (let j = 1; j < 100; j++) {
    const term = Math.exp(-2 * j * j * lambda * lambda);
    sum += j % 2 === 1 ? term : -term;
    if (term < 1e-17) break;
  }
  return Math.min(1, Math.max(0, 2 * sum));
}

// ---------------------------------------------------------------------------
// Reference distributions
// ---------------------------------------------------------------------------

/**
 * A cumulative distribution function given by knots (x, F(x)), linear between
 * knots, right-continuous; equal consecutive x values are a jump (a point
 * mass). 0 below the first knot, 1 from the last one on.
 *
 * A quantile sketch (values at levels 0, 1/K, …, 1) is such a CDF whose
 * error is at most 1/K; an exact sample is one too (every value a jump of
 * 1/n), so the same test code runs on both (and the tests check it against
 * SciPy's two-sample functions on exact samples).
 */
export class KnotCdf {
  readonly xs: Float64Array;
  readonly ps: Float64Array;

  constructor(xs: ArrayLike<number>, ps: ArrayLike<number>) {
    if (xs.length !== ps.length || xs.length === 0) throw new Error('KnotCdf needs as many levels as values, at least one');
    this.xs = Float64Array.from(xs);
    this.ps = Float64Array.from(ps);
    for (let i = 1; i < this.xs.length; i++) {
      if (!(this.xs[i]! >= this.xs[i - 1]!) || !(this.ps[i]! >= this.ps[i - 1]!)) throw new Error('KnotCdf knots must be non-decreasing');
    }
    // The last knot closes the distribution.
    this.ps[this.ps.length - 1] = 1;
  }

  /** From quantiles at the evenly spaced levels 0, 1/K, …, 1 (a quantile sketch). */
  static fromSketch(values: ArrayLike<number>): KnotCdf {
    const k = values.length - 1;
    return new KnotCdf(values, Array.from({ length: values.length }, (_, i) => (k === 0 ? 1 : i / k)));
  }

  /** From quantiles at arbitrary levels (must include 0 and 1 via min/max). */
  static fromQuantiles(levels: number[], values: number[]): KnotCdf {
    return new KnotCdf(values, levels);
  }

  /** The exact empirical CDF of a sample (a jump of 1/n at every value). */
  static fromSample(sample: ArrayLike<number>): KnotCdf {
    const s = Float64Array.from(sample).sort();
    const xs: number[] = [];
    const ps: number[] = [];
    const n = s.length;
    for (let i = 0; i < n; ) {
      let j = i;
      while (j < n && s[j] === s[i]) j++;
      xs.push(s[i]!, s[i]!);
      ps.push(i / n, j / n);
      i = j;
    }
    return new KnotCdf(xs, ps);
  }

  /** A discrete distribution: `values` (ascending) with `counts`. */
  static fromCounts(values: ArrayLike<number>, counts: ArrayLike<number>): KnotCdf {
    let total = 0;
    for (let i = 0; i < counts.length; i++) total += counts[i]!;
    const xs: number[] = [];
    const ps: number[] = [];
    let cum = 0;
    for (let i = 0; i < values.length; i++) {
      xs.push(values[i]!, values[i]!);
      ps.push(cum / total, (cum + counts[i]!) / total);
      cum += counts[i]!;
    }
    return new KnotCdf(xs, ps);
  }

  /** F(x), right-continuous. */
  at(x: number): number {
    const { xs, ps } = this;
    const n = xs.length;
    if (x < xs[0]!) return 0;
    if (x >= xs[n - 1]!) return 1;
    // last i with xs[i] <= x
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (xs[mid]! <= x) lo = mid;
      else hi = mid - 1;
    }
    if (xs[lo] === x) return ps[lo]!;
    return ps[lo]! + ((ps[lo + 1]! - ps[lo]!) * (x - xs[lo]!)) / (xs[lo + 1]! - xs[lo]!);
  }
}

// ---------------------------------------------------------------------------
// Numeric tests: a reference CDF against a sorted window
// ---------------------------------------------------------------------------

/** ∫ |L(x) − g| dx over [a, b] with L linear from f0 (at a) to f1 (at b). */
function segment(width: number, f0: number, f1: number, g: number): number {
  const d0 = f0 - g;
  const d1 = f1 - g;
  if ((d0 >= 0 && d1 >= 0) || (d0 <= 0 && d1 <= 0)) return (width * Math.abs(d0 + d1)) / 2;
  // L crosses g inside: two triangles
  const t = d0 / (d0 - d1);
  return (width * (t * Math.abs(d0) + (1 - t) * Math.abs(d1))) / 2;
}

/**
 * One merged pass over the reference knots and the sorted window: the KS
 * statistic sup|F − G| and the first Wasserstein distance ∫|F − G| dx, both
 * exact for the piecewise-linear F and the window's step function G.
 * O(window + knots).
 */
export function compareCdf(ref: KnotCdf, sorted: ArrayLike<number>, count = sorted.length): { ks: number; wasserstein: number } {
  const { xs, ps } = ref;
  const K = xs.length;
  // Never read past the sample, and leave NaNs (sorted last) out: either would stop the merge below from advancing.
  let m = Math.min(count, sorted.length);
  while (m > 0 && Number.isNaN(sorted[m - 1])) m--;
  if (m === 0) return { ks: NaN, wasserstein: NaN };
  let i = 0;
  let k = 0;
  let ks = 0;
  let w = 0;
  let prevX = -Infinity;
  let prevF = 0;
  while (i < m || k < K) {
    const wx = i < m ? sorted[i]! : Infinity;
    const kx = k < K ? xs[k]! : Infinity;
    const x = wx < kx ? wx : kx;
    // left limits at x
    const gLeft = i / m;
    let fLeft: number;
    if (k === 0) fLeft = 0;
    else if (k === K) fLeft = 1;
    else fLeft = x === xs[k] ? ps[k]! : ps[k - 1]! + ((ps[k]! - ps[k - 1]!) * (x - xs[k - 1]!)) / (xs[k]! - xs[k - 1]!);
    if (prevX !== -Infinity) w += segment(x - prevX, prevF, fLeft, gLeft);
    const dl = Math.abs(fLeft - gLeft);
    if (dl > ks) ks = dl;
    while (i < m && sorted[i] === x) i++;
    while (k < K && xs[k] === x) k++;
    // right values at x
    const g = i / m;
    let f: number;
    if (k === 0) f = 0;
    else if (xs[k - 1] === x) f = ps[k - 1]!;
    else if (k === K) f = 1;
    else f = ps[k - 1]! + ((ps[k]! - ps[k - 1]!) * (x - xs[k - 1]!)) / (xs[k]! - xs[k - 1]!);
    const dr = Math.abs(f - g);
    if (dr > ks) ks = dr;
    prevX = x;
    prevF = f;
  }
  return { ks, wasserstein: w };
}

/**
 * Two-sample Kolmogorov–Smirnov p-value from the statistic, Smirnov's
 * asymptotic law: P(K > √(n·m/(n+m))·D) (SciPy: kstwobign.sf; SciPy's
 * ks_2samp(method="asymp") uses the finite-n kstwo instead, which differs
 * slightly for small samples).
 */
export function ksPValue(d: number, nRef: number, nCur: number): number {
  const en = (nRef * nCur) / (nRef + nCur);
  return kolmogorovSf(Math.sqrt(en) * d);
}

// ---------------------------------------------------------------------------
// Categorical tests: reference counts against window counts
// ---------------------------------------------------------------------------

/**
 * Pearson's chi-square goodness-of-fit of the window's counts against the
 * reference frequencies scaled to the window's size (SciPy:
 * chisquare(f_obs, f_exp), as Evidently calls it). `unseen` counts window
 * values the reference never had: their expected count is 0, so the
 * statistic is infinite and the p-value 0.
 */
export function chiSquare(refCounts: ArrayLike<number>, curCounts: ArrayLike<number>, unseen = 0): { statistic: number; pValue: number; df: number } {
  let nRef = 0;
  let nCur = unseen;
  for (let i = 0; i < refCounts.length; i++) nRef += refCounts[i]!;
  for (let i = 0; i < curCounts.length; i++) nCur += curCounts[i]!;
  const df = refCounts.length - 1 + (unseen > 0 ? 1 : 0);
  if (unseen > 0) return { statistic: Infinity, pValue: 0, df };
  let stat = 0;
  for (let i = 0; i < refCounts.length; i++) {
    const e = (refCounts[i]! * nCur) / nRef;
    const o = curCounts[i]!;
    if (e === 0) {
      if (o > 0) return { statistic: Infinity, pValue: 0, df };
      continue;
    }
    stat += ((o - e) * (o - e)) / e;
  }
  return { statistic: stat, pValue: chi2Sf(stat, df), df };
}

/**
 * Jensen–Shannon distance (the square root of the divergence, natural log;
 * SciPy: scipy.spatial.distance.jensenshannon, as Evidently calls it) between
 * two count vectors over the same categories; `unseen` is an extra category
 * the reference lacks (several unseen categories give the same value pooled).
 */
export function jensenShannon(refCounts: ArrayLike<number>, curCounts: ArrayLike<number>, unseen = 0): number {
  let nRef = 0;
  let nCur = unseen;
  for (let i = 0; i < refCounts.length; i++) nRef += refCounts[i]!;
  for (let i = 0; i < curCounts.length; i++) nCur += curCounts[i]!;
  if (nRef === 0 || nCur === 0) return NaN;
  const kl = (p: number, m: number) => (p > 0 ? p * Math.log(p / m) : 0);
  let js = 0;
  for (let i = 0; i < refCounts.length; i++) {
    const p = refCounts[i]! / nRef;
    const q = curCounts[i]! / nCur;
    const m = (p + q) / 2;
    js += kl(p, m) + kl(q, m);
  }
  if (unseen > 0) {
    const q = unseen / nCur;
    js += kl(q, q / 2);
  }
  return Math.sqrt(Math.max(0, js / 2));
}

/**
 * Population Stability Index Σ (r − c)·ln(r / c) over bins of reference and
 * current proportions, with Evidently's zero fill: an empty bin counts as
 * min(non-zero share)/10⁶ when that minimum is ≤ 0.0001, else as 0.0001.
 */
export function psi(refShares: ArrayLike<number>, curShares: ArrayLike<number>): number {
  const fill = (v: ArrayLike<number>): number[] => {
    const a = Array.from(v);
    const nonZero = a.filter((x) => x > 0);
    if (nonZero.length === 0) return a;
    const min = Math.min(...nonZero);
    const f = min <= 0.0001 ? min / 1e6 : 0.0001;
    return a.map((x) => (x === 0 ? f : x));
  };
  const r = fill(refShares);
  const c = fill(curShares);
  let s = 0;
  for (let i = 0; i < r.length; i++) s += (r[i]! - c[i]!) * Math.log(r[i]! / c[i]!);
  return s;
}

/**
 * Two-proportion z-test (two-sided) on a binary feature, as Evidently's "z":
 * the share of rows not equal to the smallest category, reference vs window.
 */
export function zTest(refOther: number, nRef: number, curOther: number, nCur: number): { statistic: number; pValue: number } {
  const p1 = refOther / nRef;
  const p2 = curOther / nCur;
  const pooled = (refOther + curOther) / (nRef + nCur);
  const v = pooled * (1 - pooled) * (1 / nRef + 1 / nCur);
  if (!(v > 0)) return { statistic: 0, pValue: 1 };
  const z = (p1 - p2) / Math.sqrt(v);
  return { statistic: z, pValue: erfc(Math.abs(z) / Math.SQRT2) };
}

// ---------------------------------------------------------------------------
// Multivariate: mean shift in units of the reference covariance
// ---------------------------------------------------------------------------

/**
 * Cholesky factor L (row-major, lower) of a symmetric positive semi-definite
 * d×d matrix plus a ridge of 1e-9·(trace/d), so a singular reference
 * covariance (a constant or collinear component) still factors.
 */
export function cholesky(cov: ArrayLike<number>, d: number): Float64Array {
  let trace = 0;
  for (let i = 0; i < d; i++) trace += cov[i * d + i]!;
  const ridge = Math.max(1e-12, (1e-9 * trace) / d);
  const L = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j <= i; j++) {
      let s = cov[i * d + j]! + (i === j ? ridge : 0);
      for (let k = 0; k < j; k++) s -= L[i * d + k]! * L[j * d + k]!;
      if (i === j) L[i * d + i] = Math.sqrt(Math.max(s, ridge));
      else L[i * d + j] = s / L[j * d + j]!;
    }
  }
  return L;
}

/** √(δᵀ Σ⁻¹ δ) given the Cholesky factor L of Σ (forward substitution). */
export function mahalanobis(delta: ArrayLike<number>, L: Float64Array, d: number): number {
  const y = new Float64Array(d);
  let s2 = 0;
  for (let i = 0; i < d; i++) {
    let s = delta[i]!;
    for (let k = 0; k < i; k++) s -= L[i * d + k]! * y[k]!;
    y[i] = s / L[i * d + i]!;
    s2 += y[i]! * y[i]!;
  }
  return Math.sqrt(s2);
}
