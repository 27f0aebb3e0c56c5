/**
 * Drift verdicts: which test each feature gets, with which threshold, and the
 * dataset-level verdict. The defaults follow Evidently's DataDriftPreset
 * (docs.evidentlyai.com "data drift: how it works"; evidently
 * calculations/stattests/registry.py `_get_default_stattest`, release
 * v0.1.50.dev0 "Automatic Stattest Selection"), keyed on the size of the
 * reference (the profile's training rows):
 *
 *   reference ≤ 1000 rows   numeric      two-sample Kolmogorov–Smirnov, drift when p < 0.05
 *                           categorical  chi-square goodness of fit, p < 0.05 (two categories: z-test, p < 0.05)
 *   reference > 1000 rows   numeric      Wasserstein distance normed by the reference std, drift when ≥ 0.1
 *                           categorical  Jensen–Shannon distance, ≥ 0.1
 *   offered                 PSI (≥ 0.1, Evidently's default) for either kind
 *   dataset drift           when at least 0.5 of the features drift (Evidently's drift_share, `>=`)
 *
 * Differences from Evidently, because the reference is a profile rather than
 * raw rows: numeric features are compared with a 101-point quantile sketch
 * (CDF error ≤ 0.01); KS p-values use Smirnov's asymptotic distribution; PSI
 * bins are the reference deciles (Evidently bins the union of both samples);
 * the two-category rule counts the reference's categories only.
 *
 * The multivariate check for embedding-like inputs (mean/covariance in the
 * profile) is ours: the Mahalanobis distance between the window's mean and the
 * reference mean, in units of the reference covariance. It drifts when the
 * shift is both significant (Hotelling-type χ²(d) test of n_eff·D², p < 0.001)
 * and material (D ≥ 0.2 — Evidently's embedding "distance" method defaults to
 * a threshold of 0.2 on raw euclidean distance; here it is scale-free).
 * A drift of the model then is: dataset drift, or any multivariate check.
 */
import { KnotCdf, chiSquare, compareCdf, jensenShannon, ksPValue, mahalanobis, psi, chi2Sf, zTest } from './stats.js';
import type { CategoricalReference, FeatureReference, MultivariateReference, NumericReference, PredictionReference, Reference } from './reference.js';
import type { RowWindow } from './window.js';

export const NUMERIC_METHODS = ['ks', 'wasserstein', 'psi'] as const;
export const CATEGORICAL_METHODS = ['chisquare', 'z', 'jensenshannon', 'psi'] as const;
export type Method = 'ks' | 'wasserstein' | 'psi' | 'chisquare' | 'z' | 'jensenshannon';

/** p-value methods drift when the score is below the threshold; distances when at or above it. */
export const P_VALUE_METHODS: ReadonlySet<Method> = new Set(['ks', 'chisquare', 'z']);

export const DEFAULT_THRESHOLDS: Readonly<Record<Method, number>> = { ks: 0.05, chisquare: 0.05, z: 0.05, wasserstein: 0.1, jensenshannon: 0.1, psi: 0.1 };

/** Reference sizes up to this use the p-value tests (Evidently). */
export const SMALL_REFERENCE_ROWS = 1000;

export interface DetectSettings {
  /** Fewer rows in the window than this: no verdict. */
  minRows: number;
  /** Share of features that must drift for dataset drift. */
  driftShare: number;
  /** 'auto' (Evidently's rule) or one method for every numeric feature. */
  numericMethod: 'auto' | (typeof NUMERIC_METHODS)[number];
  categoricalMethod: 'auto' | (typeof CATEGORICAL_METHODS)[number];
  /** Threshold per method (defaults: DEFAULT_THRESHOLDS). */
  thresholds: Partial<Record<Method, number>>;
  /** Per-feature overrides by feature name, e.g. {"image[0,0,0]": {method: "psi", threshold: 0.2}}. */
  features: Record<string, { method?: Method; threshold?: number }>;
  multivariate: { alpha: number; threshold: number };
}

export const DETECT_DEFAULTS: DetectSettings = {
  // Measured on the example model (docs/drift.md): with 500-row windows of
  // unshifted v1 data ~4.6% of the features cross Evidently's 0.1 thresholds,
  // with 1000 rows 0.3%, with 2000 none.
  minRows: 1000,
  driftShare: 0.5,
  numericMethod: 'auto',
  categoricalMethod: 'auto',
  thresholds: {},
  features: {},
  // α = 0.001, not the usual 0.05: the check reruns every interval on a
  // sliding window, and for d ≳ 30 dimensions at the minimum window the 0.2
  // floor no longer keeps noise out, so α alone bounds the false alarms.
  multivariate: { alpha: 0.001, threshold: 0.2 },
};

export interface FeatureVerdict {
  name: string;
  input: string;
  kind: 'numeric' | 'categorical';
  method: Method;
  /** p-value (ks, chisquare, z) or distance (wasserstein, jensenshannon, psi). */
  score: number;
  threshold: number;
  drifted: boolean;
}

export interface MultivariateVerdict {
  input: string;
  method: 'mahalanobis';
  dims: number;
  /** Mahalanobis distance of the window mean from the reference mean. */
  score: number;
  pValue: number;
  threshold: number;
  alpha: number;
  drifted: boolean;
}

export interface PredictionVerdict extends Omit<FeatureVerdict, 'input'> {
  output: string;
  /** Predicted class shares in the window vs training label shares. */
  shares: { class: string; reference: number; window: number }[];
}

export interface Verdicts {
  rows: number;
  drift: boolean;
  datasetDrift: boolean;
  share: { drifted: number; total: number; value: number; threshold: number };
  features: FeatureVerdict[];
  multivariate: MultivariateVerdict[];
  prediction?: PredictionVerdict;
}

/** The method a feature gets: its override, the configured one for its kind, or Evidently's rule. */
export function methodFor(f: FeatureReference, s: Pick<DetectSettings, 'numericMethod' | 'categoricalMethod' | 'features'>): Method {
  const override = s.features[f.name]?.method;
  if (override) return override;
  if (f.kind === 'categorical') {
    if (s.categoricalMethod !== 'auto') return s.categoricalMethod;
    if (f.count <= SMALL_REFERENCE_ROWS) return f.values.length <= 2 ? 'z' : 'chisquare';
    return 'jensenshannon';
  }
  if (s.numericMethod !== 'auto') return s.numericMethod;
  return f.count <= SMALL_REFERENCE_ROWS ? 'ks' : 'wasserstein';
}

/** Checks that every override names a test that fits its feature; returns the problems. */
export function checkSettings(ref: Reference, s: DetectSettings): string[] {
  const problems: string[] = [];
  const names = new Set(ref.features.map((f) => f.name));
  for (const name of Object.keys(s.features)) {
    if (!names.has(name)) problems.push(`drift.features: no feature ${JSON.stringify(name)} in the profile (e.g. ${ref.features[0]?.name ?? 'none'})`);
  }
  for (const f of ref.features) {
    const m = methodFor(f, s);
    if (f.kind === 'numeric' && !(NUMERIC_METHODS as readonly string[]).includes(m)) problems.push(`feature ${f.name} is numeric; ${m} is for categorical features (use ${NUMERIC_METHODS.join(', ')})`);
  }
  if (!(s.driftShare > 0 && s.driftShare <= 1)) problems.push(`drift share must be in (0, 1] (got ${s.driftShare})`);
  if (!(Number.isInteger(s.minRows) && s.minRows >= 1)) problems.push(`minimum window rows must be a positive integer (got ${s.minRows})`);
  return problems;
}

function thresholdFor(name: string, method: Method, s: DetectSettings): number {
  return s.features[name]?.threshold ?? s.thresholds[method] ?? DEFAULT_THRESHOLDS[method];
}

function isDrift(method: Method, score: number, threshold: number): boolean {
  if (Number.isNaN(score)) return false;
  return P_VALUE_METHODS.has(method) ? score < threshold : score >= threshold;
}

/** Counts window values per reference category (values matched within float32/6-digit rounding); the rest are unseen. */
export function countCategories(values: Float64Array, column: Float32Array, n: number): { counts: Float64Array; unseen: number } {
  const counts = new Float64Array(values.length);
  let unseen = 0;
  const last = values.length - 1;
  for (let r = 0; r < n; r++) {
    const v = column[r]!;
    let lo = 0;
    let hi = last;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (values[mid]! < v) lo = mid + 1;
      else hi = mid;
    }
    // nearest of values[lo - 1], values[lo]
    let best = lo;
    if (lo > 0 && Math.abs(values[lo - 1]! - v) < Math.abs(values[lo]! - v)) best = lo - 1;
    const ref = values[best]!;
    if (ref === v || Math.abs(ref - v) <= 1e-5 * Math.abs(ref)) counts[best]!++;
    else unseen++;
  }
  return { counts, unseen };
}

/** Share of rows at or below each edge, from a sorted window. */
function upperBound(sorted: Float32Array, n: number, x: number): number {
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid]! <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Tests one numeric feature; `sorted` holds the window's values ascending (the first n). */
export function testNumeric(f: NumericReference & { count: number }, method: Method, sorted: Float32Array, n: number): number {
  if (method === 'psi') {
    const edges = f.deciles;
    const ref: number[] = [];
    const cur: number[] = [];
    let prevF = 0;
    let prevC = 0;
    for (const e of edges) {
      const F = f.cdf.at(e);
      const c = upperBound(sorted, n, e);
      ref.push(F - prevF);
      cur.push((c - prevC) / n);
      prevF = F;
      prevC = c;
    }
    ref.push(1 - prevF);
    cur.push((n - prevC) / n);
    return psi(ref, cur);
  }
  const { ks, wasserstein } = compareCdf(f.cdf, sorted, n);
  if (method === 'ks') return ksPValue(ks, f.count, n);
  // Evidently: wasserstein_distance / max(std(reference), 0.001)
  return wasserstein / Math.max(f.std, 0.001);
}

/** Tests one categorical feature (or the predictions) on its category counts. */
export function testCategorical(f: Pick<CategoricalReference, 'values' | 'counts'> & { count: number }, method: Method, counts: Float64Array, unseen: number, n: number): number {
  switch (method) {
    case 'chisquare':
      return chiSquare(f.counts, counts, unseen).pValue;
    case 'jensenshannon':
      return jensenShannon(f.counts, counts, unseen);
    case 'psi': {
      const ref = [...Array.from(f.counts, (c) => c / f.count), 0];
      const cur = [...Array.from(counts, (c) => c / n), unseen / n];
      return psi(ref, cur);
    }
    case 'z': {
      // share of rows that are not the smallest category
      return zTest(f.count - f.counts[0]!, f.count, n - counts[0]!, n).pValue;
    }
    default: {
      // a numeric test on a discrete feature: compare the exact CDFs
      const cdf = KnotCdf.fromCounts(f.values, f.counts);
      const curCdf = new Float32Array(n);
      let p = 0;
      for (let i = 0; i < f.values.length; i++) for (let k = 0; k < counts[i]!; k++) curCdf[p++] = f.values[i]!;
      if (unseen > 0) return method === 'ks' ? 0 : Infinity;
      const { ks, wasserstein } = compareCdf(cdf, curCdf, n);
      if (method === 'ks') return ksPValue(ks, f.count, n);
      let mean = 0;
      for (let i = 0; i < f.values.length; i++) mean += (f.values[i]! * f.counts[i]!) / f.count;
      let v = 0;
      for (let i = 0; i < f.values.length; i++) v += ((f.values[i]! - mean) ** 2 * f.counts[i]!) / f.count;
      return wasserstein / Math.max(Math.sqrt(v), 0.001);
    }
  }
}

/** Mahalanobis mean-shift check of one embedding-like input. */
export function testMultivariate(m: MultivariateReference, window: RowWindow, s: DetectSettings): MultivariateVerdict {
  const d = m.dims;
  const n = window.rows;
  const sum = new Float64Array(d);
  const data = window.data;
  for (let r = 0, p = 0; r < n; r++) for (let j = 0; j < d; j++, p++) sum[j]! += data[p]!;
  const delta = new Float64Array(d);
  for (let j = 0; j < d; j++) delta[j] = sum[j]! / n - m.mean[j]!;
  const D = mahalanobis(delta, m.chol, d);
  const en = (n * m.count) / (n + m.count);
  const pValue = chi2Sf(en * D * D, d);
  const { alpha, threshold } = s.multivariate;
  return { input: m.input, method: 'mahalanobis', dims: d, score: D, pValue, threshold, alpha, drifted: pValue < alpha && D >= threshold };
}

/** Hands control back to the event loop (between features, so a large window does not stall requests). */
export type Yield = () => Promise<void>;

/**
 * Tests every feature of `ref` on the windows (one per monitored input, and
 * one of predicted classes when the reference has predictions). Returns
 * undefined when the windows hold fewer than `minRows` rows.
 */
export async function detect(ref: Reference, windows: RowWindow[], s: DetectSettings, o: { predictions?: RowWindow; yield?: Yield } = {}): Promise<Verdicts | undefined> {
  const rows = Math.min(...windows.map((w) => w.rows));
  if (!(rows >= s.minRows)) return undefined;
  // Sized for full windows: requests keep arriving (and rows keep being added) while detect yields between features.
  const capacity = Math.max(...windows.map((w) => w.capacity));
  const column = new Float32Array(capacity);
  const features: FeatureVerdict[] = [];
  for (const f of ref.features) {
    const w = windows[f.inputIndex]!;
    const n = Math.min(w.column(f.index, column), column.length);
    const method = methodFor(f, s);
    const threshold = thresholdFor(f.name, method, s);
    let score: number;
    if (f.kind === 'numeric') {
      const sorted = column.subarray(0, n).sort();
      score = testNumeric(f, method, sorted, n);
    } else {
      const { counts, unseen } = countCategories(f.values, column, n);
      score = testCategorical(f, method, counts, unseen, n);
    }
    features.push({ name: f.name, input: f.input, kind: f.kind, method, score, threshold, drifted: isDrift(method, score, threshold) });
    if (o.yield) await o.yield();
  }
  const multivariate = ref.multivariate.map((m) => testMultivariate(m, windows[m.inputIndex]!, s));
  const drifted = features.filter((f) => f.drifted).length;
  const total = features.length;
  const share = total ? drifted / total : 0;
  const datasetDrift = total > 0 && share >= s.driftShare;
  const verdicts: Verdicts = {
    rows,
    drift: datasetDrift || multivariate.some((m) => m.drifted),
    datasetDrift,
    share: { drifted, total, value: share, threshold: s.driftShare },
    features,
    multivariate,
  };
  if (ref.prediction && o.predictions && o.predictions.rows >= s.minRows) verdicts.prediction = testPrediction(ref.prediction, o.predictions, s, column);
  return verdicts;
}

function testPrediction(p: PredictionReference, w: RowWindow, s: DetectSettings, scratch: Float32Array): PredictionVerdict {
  const col = scratch.length >= w.rows ? scratch : new Float32Array(w.rows);
  const n = w.column(0, col);
  const { counts, unseen } = countCategories(p.values, col, n);
  const ref = { values: p.values, counts: p.counts, count: p.count, kind: 'categorical' as const, name: `${p.output}[argmax]`, input: p.output, inputIndex: -1, index: 0 };
  const method = s.categoricalMethod !== 'auto' ? s.categoricalMethod : p.count <= SMALL_REFERENCE_ROWS ? (p.values.length <= 2 ? 'z' : 'chisquare') : 'jensenshannon';
  const threshold = thresholdFor(ref.name, method, s);
  const score = testCategorical(ref, method, counts, unseen, n);
  return {
    name: ref.name,
    output: p.output,
    kind: 'categorical',
    method,
    score,
    threshold,
    drifted: isDrift(method, score, threshold),
    shares: p.classes.map((c, i) => ({ class: c, reference: p.counts[i]! / p.count, window: counts[i]! / n })),
  };
}
