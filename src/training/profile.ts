/**
 * The reference profile of a model's training inputs, written as
 * `profile.json` next to `model.onnx`. Drift detection compares live inputs
 * against it.
 *
 * Format (apiVersion aegis.dev/v1, kind ReferenceProfile):
 *
 * {
 *   "apiVersion": "aegis.dev/v1",
 *   "kind": "ReferenceProfile",
 *   "model": { "name": "example_multimodal", "version": "0.1" },
 *   "dataset": { "uri": "examples/datasets/example_multimodal/v1", "digest": "sha256:…", "split": "train" },
 *   "rows": 4000,                              // examples profiled
 *   "quantiles": [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99],
 *   "inputs": [                                // one per model input, in model order
 *     {
 *       "name": "image", "dtype": "float32",
 *       "shape": [-1, 1, 8, 8],                // as in aegis.yaml (-1: the batch)
 *       "summary": Stats,                      // all elements of the input pooled together
 *       "features": [                          // one per element of the flattened input, row-major
 *         { "index": 0, "name": "image[0,0,0]", ...Stats }
 *       ]
 *     }
 *   ],
 *   "labels": { "classes": ["top_left", …], "counts": [1332, …] }   // training label distribution
 * }
 *
 * Stats = {
 *   "count": n, "mean": m, "std": s,           // population standard deviation
 *   "min": a, "max": b,
 *   "quantiles": [q…],                         // at the top-level "quantiles" levels, linear interpolation (numpy's default)
 *   "histogram": { "edges": [11 numbers], "counts": [10 integers] }
 * }
 *
 * Since profile format 2 (still apiVersion aegis.dev/v1; readers of the
 * first format keep working, they ignore the new fields) each feature also
 * says what the drift monitor (src/drift) needs to test it:
 *   "kind": "numeric" | "categorical",
 *   numeric:     "sketch": [101 numbers]       // quantiles at levels 0, 0.01, …, 1 (min … max): a
 *                                             // piecewise-linear CDF within 0.01 of the training one
 *   categorical: "categories": { "values": [v…], "counts": [c…] }   // exact frequencies, values ascending
 * A feature is categorical when it takes at most 20 distinct values in the
 * training split (bag-of-words counts, flags, codes), numeric otherwise.
 * An input whose per-example shape has one dimension of 2 to 64 elements
 * (an embedding-like vector, e.g. `text`) also gets
 *   "multivariate": { "mean": [d numbers], "covariance": [[d numbers] × d] }   // population covariance
 * for the drift monitor's multivariate check.
 *
 * Histogram bins are equal-width between the training min and max: bin i
 * holds edges[i] ≤ x < edges[i+1], the last bin also holds x = max; live
 * values outside [edges[0], edges[10]] are out of the training range. A
 * constant feature has all edges equal and every value in bin 0. Numbers
 * are rounded to 6 significant digits. A feature's name is the input name
 * plus its index in the per-example shape, or `text[sun]` when the dataset
 * names the elements. Consumers must ignore fields they do not know.
 */
import type { FeatureSpec } from './dataset.js';

export const PROFILE_FILE = 'profile.json';
export const PROFILE_QUANTILES = [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99];
export const HISTOGRAM_BINS = 10;
/** A numeric feature's sketch holds its quantiles at levels i/SKETCH_INTERVALS, i = 0…SKETCH_INTERVALS. */
export const SKETCH_INTERVALS = 100;
/** At most this many distinct training values: the feature is categorical (a frequency table). */
export const MAX_CATEGORIES = 20;
/** 1-D inputs with 2…this many elements get a mean/covariance summary. */
export const MULTIVARIATE_MAX_DIMS = 64;

export interface Stats {
  count: number;
  mean: number;
  std: number;
  min: number;
  max: number;
  quantiles: number[];
  histogram: { edges: number[]; counts: number[] };
}

/** What the drift monitor tests a feature with (absent in format-1 profiles). */
export interface FeatureDistribution {
  kind: 'numeric' | 'categorical';
  /** numeric: quantiles at levels 0, 1/K, …, 1 (K = SKETCH_INTERVALS). */
  sketch?: number[];
  /** categorical: exact frequencies, values ascending. */
  categories?: { values: number[]; counts: number[] };
}

export interface FeatureStats extends Stats, Partial<FeatureDistribution> {
  index: number;
  name: string;
}

export interface InputProfile {
  name: string;
  dtype: 'float32';
  shape: number[];
  summary: Stats;
  features: FeatureStats[];
  /** Embedding-like 1-D inputs: mean and population covariance of the vector. */
  multivariate?: { mean: number[]; covariance: number[][] };
}

export interface ReferenceProfile {
  apiVersion: 'aegis.dev/v1';
  kind: 'ReferenceProfile';
  model: { name: string; version: string };
  dataset: { uri: string; digest?: string; split: string };
  rows: number;
  quantiles: number[];
  inputs: InputProfile[];
  labels?: { classes: string[]; counts: number[] };
}

const sig = (x: number) => (x === 0 ? 0 : Number(x.toPrecision(6)));

/** Linear-interpolation quantile of sorted values (numpy "linear"). */
export function quantile(sorted: Float64Array | number[], q: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  const pos = (n - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.min(n - 1, lo + 1);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

/** Statistics of a set of values (copied and sorted; the input is not modified). */
export function computeStats(values: ArrayLike<number>): Stats {
  const sorted = Float64Array.from(values).sort();
  const n = sorted.length;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += sorted[i]!;
  const mean = n ? sum / n : NaN;
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (sorted[i]! - mean) ** 2;
  const min = n ? sorted[0]! : NaN;
  const max = n ? sorted[n - 1]! : NaN;
  const width = (max - min) / HISTOGRAM_BINS;
  const edges = Array.from({ length: HISTOGRAM_BINS + 1 }, (_, i) => (i === HISTOGRAM_BINS ? max : min + width * i));
  const counts = new Array<number>(HISTOGRAM_BINS).fill(0);
  for (let i = 0; i < n; i++) {
    const b = width > 0 ? Math.min(HISTOGRAM_BINS - 1, Math.floor((sorted[i]! - min) / width)) : 0;
    counts[b]!++;
  }
  return {
    count: n,
    mean: sig(mean),
    std: sig(n ? Math.sqrt(ss / n) : NaN),
    min: sig(min),
    max: sig(max),
    quantiles: PROFILE_QUANTILES.map((q) => sig(quantile(sorted, q))),
    histogram: { edges: edges.map(sig), counts },
  };
}

/**
 * Kind, and the sketch or frequency table, of a feature's values (sorted
 * ascending, as computeStats leaves them in `sorted`).
 */
export function describeDistribution(sorted: Float64Array): FeatureDistribution {
  const n = sorted.length;
  const values: number[] = [];
  const counts: number[] = [];
  for (let i = 0; i < n && values.length <= MAX_CATEGORIES; ) {
    let j = i;
    while (j < n && sorted[j] === sorted[i]) j++;
    values.push(sorted[i]!);
    counts.push(j - i);
    i = j;
  }
  if (n > 0 && values.length <= MAX_CATEGORIES) return { kind: 'categorical', categories: { values: values.map(sig), counts } };
  return { kind: 'numeric', sketch: Array.from({ length: SKETCH_INTERVALS + 1 }, (_, i) => sig(quantile(sorted, i / SKETCH_INTERVALS))) };
}

/** Mean and population covariance of a rows × d block (row-major). */
export function meanCovariance(data: Float32Array, rows: number, d: number): { mean: number[]; covariance: number[][] } {
  const mean = new Float64Array(d);
  for (let r = 0; r < rows; r++) for (let j = 0; j < d; j++) mean[j]! += data[r * d + j]!;
  for (let j = 0; j < d; j++) mean[j]! /= rows;
  const cov = new Float64Array(d * d);
  const x = new Float64Array(d);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < d; j++) x[j] = data[r * d + j]! - mean[j]!;
    for (let a = 0; a < d; a++) for (let b = 0; b <= a; b++) cov[a * d + b]! += x[a]! * x[b]!;
  }
  const covariance = Array.from({ length: d }, (_, a) => Array.from({ length: d }, (_, b) => sig((a >= b ? cov[a * d + b]! : cov[b * d + a]!) / rows)));
  return { mean: Array.from(mean, sig), covariance };
}

function elementName(f: FeatureSpec, index: number): string {
  if (f.elementNames) return `${f.name}[${f.elementNames[index]}]`;
  const idx: number[] = [];
  let rest = index;
  for (let d = f.shape.length - 1; d >= 0; d--) {
    idx.unshift(rest % f.shape[d]!);
    rest = Math.floor(rest / f.shape[d]!);
  }
  return `${f.name}[${idx.join(',')}]`;
}

/** Profiles each feature (rows × size values, row-major) of a split. */
export function buildProfile(o: {
  model: { name: string; version: string };
  dataset: { uri: string; digest?: string; split: string };
  features: FeatureSpec[];
  data: Float32Array[];
  rows: number;
  labels?: { classes: string[]; values: Uint8Array };
}): ReferenceProfile {
  const inputs = o.features.map((f, k): InputProfile => {
    const data = o.data[k]!;
    const size = data.length / o.rows;
    const column = new Float64Array(o.rows);
    const features: FeatureStats[] = [];
    for (let j = 0; j < size; j++) {
      for (let r = 0; r < o.rows; r++) column[r] = data[r * size + j]!;
      const sorted = Float64Array.from(column).sort();
      features.push({ index: j, name: elementName(f, j), ...computeStats(sorted), ...describeDistribution(sorted) });
    }
    const input: InputProfile = { name: f.name, dtype: f.dtype, shape: [-1, ...f.shape], summary: computeStats(data), features };
    if (f.shape.length === 1 && size >= 2 && size <= MULTIVARIATE_MAX_DIMS && o.rows > 1) input.multivariate = meanCovariance(data, o.rows, size);
    return input;
  });
  const profile: ReferenceProfile = {
    apiVersion: 'aegis.dev/v1',
    kind: 'ReferenceProfile',
    model: o.model,
    dataset: o.dataset,
    rows: o.rows,
    quantiles: PROFILE_QUANTILES,
    inputs,
  };
  if (o.labels) {
    const counts = new Array<number>(o.labels.classes.length).fill(0);
    for (const y of o.labels.values) counts[y]!++;
    profile.labels = { classes: o.labels.classes, counts };
  }
  return profile;
}

/** profile.json text: indented JSON with each list of numbers or strings (quantiles, edges, counts) on one line. */
export function formatProfile(p: ReferenceProfile): string {
  const render = (v: unknown, pad: string): string => {
    if (Array.isArray(v)) {
      if (v.every((x) => x === null || typeof x !== 'object')) return `[${v.map((x) => JSON.stringify(x)).join(', ')}]`;
      return `[\n${v.map((x) => pad + ' ' + render(x, pad + ' ')).join(',\n')}\n${pad}]`;
    }
    if (v && typeof v === 'object') {
      const entries = Object.entries(v).filter(([, x]) => x !== undefined);
      return `{\n${entries.map(([k, x]) => `${pad} ${JSON.stringify(k)}: ${render(x, pad + ' ')}`).join(',\n')}\n${pad}}`;
    }
    return JSON.stringify(v);
  };
  return render(p, '') + '\n';
}
