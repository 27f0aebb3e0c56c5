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

export interface Stats {
  count: number;
  mean: number;
  std: number;
  min: number;
  max: number;
  quantiles: number[];
  histogram: { edges: number[]; counts: number[] };
}

export interface FeatureStats extends Stats {
  index: number;
  name: string;
}

export interface InputProfile {
  name: string;
  dtype: 'float32';
  shape: number[];
  summary: Stats;
  features: FeatureStats[];
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
      features.push({ index: j, name: elementName(f, j), ...computeStats(column) });
    }
    return { name: f.name, dtype: f.dtype, shape: [-1, ...f.shape], summary: computeStats(data), features };
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
