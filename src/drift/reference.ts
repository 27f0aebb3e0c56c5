/**
 * The reference a drift monitor compares live traffic with: the model's
 * profile.json (written at training time by src/training/profile.ts and signed
 * with the model), read tolerantly (unknown fields ignored; format-1 profiles
 * without sketches still work, with a coarser CDF) and compiled into the
 * structures the tests need.
 */
import { readFile } from 'node:fs/promises';
import { isAbsolute, join, normalize } from 'node:path';
import { z } from 'zod';
import { AegisError } from '../errors.js';
import { KnotCdf, cholesky } from './stats.js';

const num = z.number().finite();
const statsSchema = z.object({
  count: z.number().int().min(1),
  mean: num,
  std: num.min(0),
  min: num,
  max: num,
  quantiles: z.array(num),
  kind: z.enum(['numeric', 'categorical']).optional(),
  sketch: z.array(num).min(2).optional(),
  categories: z.object({ values: z.array(num).min(1), counts: z.array(z.number().int().min(0)).min(1) }).optional(),
});
const profileSchema = z.object({
  apiVersion: z.literal('aegis.dev/v1'),
  kind: z.literal('ReferenceProfile'),
  model: z.object({ name: z.string(), version: z.string() }),
  dataset: z.object({ uri: z.string(), digest: z.string().optional(), split: z.string().optional() }),
  rows: z.number().int().min(1),
  quantiles: z.array(z.number().min(0).max(1)),
  inputs: z
    .array(
      z.object({
        name: z.string().min(1),
        dtype: z.string(),
        shape: z.array(z.number().int()),
        features: z.array(statsSchema.extend({ index: z.number().int().min(0), name: z.string().min(1) })),
        multivariate: z.object({ mean: z.array(num), covariance: z.array(z.array(num)) }).optional(),
      }),
    )
    .min(1),
  labels: z.object({ classes: z.array(z.string()).min(1), counts: z.array(z.number().int().min(0)) }).optional(),
});
export type ProfileDocument = z.infer<typeof profileSchema>;

export interface NumericReference {
  kind: 'numeric';
  cdf: KnotCdf;
  /** Reference standard deviation (normalizes the Wasserstein distance). */
  std: number;
  /** PSI bin edges: the reference deciles (distinct). */
  deciles: number[];
}

export interface CategoricalReference {
  kind: 'categorical';
  /** Ascending category values and their training counts. */
  values: Float64Array;
  counts: Float64Array;
}

export type FeatureReference = (NumericReference | CategoricalReference) & {
  /** Name as in the profile, e.g. image[0,0,3] or text[kite]. */
  name: string;
  input: string;
  /** Position of the input among the monitored inputs, and of the element in its flattened example. */
  inputIndex: number;
  index: number;
  /** Training rows behind it. */
  count: number;
};

export interface MultivariateReference {
  input: string;
  inputIndex: number;
  dims: number;
  mean: Float64Array;
  /** Cholesky factor of the reference covariance (row-major). */
  chol: Float64Array;
  count: number;
}

export interface PredictionReference {
  /** The model output whose per-row argmax is the predicted class. */
  output: string;
  classes: string[];
  values: Float64Array;
  counts: Float64Array;
  count: number;
}

export interface Reference {
  model: { name: string; version: string };
  dataset: { uri: string; digest?: string };
  rows: number;
  /** Monitored inputs, in profile order, with the elements per example. */
  inputs: { name: string; size: number }[];
  features: FeatureReference[];
  multivariate: MultivariateReference[];
  prediction?: PredictionReference;
  /** Whether every feature had a sketch or frequency table (format 2); false: coarse CDFs from the 7 quantiles. */
  exact: boolean;
}

/** The tensors of the model as the manifest declares them. */
export interface TensorDecl {
  name: string;
  dtype: string;
  shape: number[];
}

function invalid(source: string, message: string): AegisError {
  return new AegisError('DRIFT_PROFILE_INVALID', `reference profile ${source} is invalid: ${message}`, {
    hint: 'Regenerate it with `aegis train` (it writes profile.json next to model.onnx), then package and sign the model again; see docs/drift.md.',
    details: { source },
  });
}

const sizeOf = (shape: number[]) => shape.slice(1).reduce((a, b) => a * b, 1);

/**
 * Parses a profile.json text and compiles it against the model's declared
 * inputs (names and per-example sizes must agree) and outputs (a single
 * [-1, classes] output is watched as predictions when the profile has the
 * training label distribution).
 */
export function compileReference(text: string, source: string, model: { inputs: TensorDecl[]; outputs: TensorDecl[] }): Reference {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw invalid(source, `not JSON (${(err as Error).message})`);
  }
  const r = profileSchema.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw invalid(source, `${i.path.map(String).join('.') || '(root)'}: ${i.message}`);
  }
  const p = r.data;
  const features: FeatureReference[] = [];
  const multivariate: MultivariateReference[] = [];
  const inputs: Reference['inputs'] = [];
  let exact = true;
  const coarseLevels = [0, ...p.quantiles, 1];
  for (const input of p.inputs) {
    const decl = model.inputs.find((t) => t.name === input.name);
    if (!decl) throw invalid(source, `input ${input.name} is not an input of the model (it has ${model.inputs.map((t) => t.name).join(', ')})`);
    const size = sizeOf(decl.shape);
    if (decl.shape.slice(1).some((d) => d < 1)) throw invalid(source, `input ${input.name} has a dynamic per-example shape [${decl.shape.join(', ')}]; only the batch dimension may be -1`);
    if (input.features.length !== size) throw invalid(source, `input ${input.name} has ${input.features.length} features, the model's input has ${size} elements per example`);
    const inputIndex = inputs.length;
    inputs.push({ name: input.name, size });
    input.features.forEach((f, pos) => {
      const where = `inputs.${input.name}.features.${pos}`;
      if (f.index !== pos) throw invalid(source, `${where}: index ${f.index}, expected ${pos}`);
      const base = { name: f.name, input: input.name, inputIndex, index: f.index, count: f.count };
      if (f.kind === 'categorical' || (!f.kind && f.categories)) {
        const c = f.categories;
        if (!c || c.values.length !== c.counts.length) throw invalid(source, `${where}: a categorical feature needs categories.values and as many categories.counts`);
        for (let i = 1; i < c.values.length; i++) if (!(c.values[i]! > c.values[i - 1]!)) throw invalid(source, `${where}: categories.values must be strictly ascending`);
        features.push({ ...base, kind: 'categorical', values: Float64Array.from(c.values), counts: Float64Array.from(c.counts) });
        return;
      }
      let cdf: KnotCdf;
      try {
        if (f.sketch) cdf = KnotCdf.fromSketch(f.sketch);
        else {
          exact = false;
          if (f.quantiles.length !== p.quantiles.length) throw new Error(`${f.quantiles.length} quantiles for ${p.quantiles.length} levels`);
          cdf = KnotCdf.fromQuantiles(coarseLevels, [f.min, ...f.quantiles, f.max]);
        }
      } catch (err) {
        throw invalid(source, `${where}: ${(err as Error).message} (sketch and quantiles must be non-decreasing)`);
      }
      const deciles = [...new Set(Array.from({ length: 9 }, (_, i) => quantileOf(cdf, (i + 1) / 10)))];
      features.push({ ...base, kind: 'numeric', cdf, std: f.std, deciles });
    });
    if (input.multivariate) {
      const { mean, covariance } = input.multivariate;
      const d = size;
      if (mean.length !== d || covariance.length !== d || covariance.some((row) => row.length !== d)) {
        throw invalid(source, `inputs.${input.name}.multivariate: needs a mean of ${d} numbers and a ${d}×${d} covariance`);
      }
      multivariate.push({ input: input.name, inputIndex, dims: d, mean: Float64Array.from(mean), chol: cholesky(Float64Array.from(covariance.flat()), d), count: p.rows });
    }
  }
  let prediction: PredictionReference | undefined;
  const out = model.outputs.length === 1 ? model.outputs[0]! : undefined;
  if (p.labels && out && out.shape.length === 2 && out.shape[1] === p.labels.classes.length && p.labels.counts.length === p.labels.classes.length) {
    const count = p.labels.counts.reduce((a, b) => a + b, 0);
    if (count > 0) {
      prediction = {
        output: out.name,
        classes: p.labels.classes,
        values: Float64Array.from(p.labels.classes, (_, i) => i),
        counts: Float64Array.from(p.labels.counts),
        count,
      };
    }
  }
  return { model: p.model, dataset: { uri: p.dataset.uri, ...(p.dataset.digest ? { digest: p.dataset.digest } : {}) }, rows: p.rows, inputs, features, multivariate, ...(prediction ? { prediction } : {}), exact };
}

/** Inverse of a KnotCdf at level q (the smallest x with F(x) ≥ q), for PSI bin edges. */
function quantileOf(cdf: KnotCdf, q: number): number {
  const { xs, ps } = cdf;
  for (let i = 0; i < xs.length; i++) {
    if (ps[i]! >= q) {
      if (i === 0 || ps[i]! === ps[i - 1]!) return xs[i]!;
      return xs[i - 1]! + ((xs[i]! - xs[i - 1]!) * (q - ps[i - 1]!)) / (ps[i]! - ps[i - 1]!);
    }
  }
  return xs[xs.length - 1]!;
}

/**
 * Reads the profile a verified model names in its manifest (`labels.profile`,
 * a path inside the model directory). Undefined when the manifest names none.
 */
export async function loadReference(
  modelDir: string,
  manifest: { labels?: Record<string, string>; inputs: TensorDecl[]; outputs: TensorDecl[] },
): Promise<Reference | undefined> {
  const rel = manifest.labels?.profile;
  if (!rel) return undefined;
  if (isAbsolute(rel) || normalize(rel).split(/[\\/]/).includes('..')) throw invalid(rel, 'labels.profile must be a path inside the model directory');
  const path = join(modelDir, rel);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new AegisError('DRIFT_PROFILE_INVALID', `the model names ${rel} as its reference profile (labels.profile) but it cannot be read: ${(err as Error).message}`, {
      cause: err,
      hint: 'Ship profile.json inside the model directory (aegis train writes it) or remove labels.profile from aegis.yaml, then package and sign again.',
      details: { path },
    });
  }
  return compileReference(text, path, manifest);
}
