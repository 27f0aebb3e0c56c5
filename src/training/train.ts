/**
 * `aegis train`: trains the multimodal classifier on a dataset directory and
 * writes a model directory Aegis can package:
 *
 *   model.onnx    Flatten(image) ⊕ text → Gemm → Relu → Gemm → Softmax (ONNX IR 8, opset 17)
 *   profile.json  reference profile of the training inputs (see profile.ts)
 *   aegis.yaml    the model manifest, with held-out metrics and dataset lineage
 *
 * Same dataset, options and seed → the same three files, byte for byte.
 */
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Document, isMap, isSeq } from 'yaml';
import { MANIFEST_FILE, manifestSchema, parseManifest, type ModelManifest } from '../artifact/manifest.js';
import { AegisError } from '../errors.js';
import { featureSize, readDataset, type Dataset, type FeatureSpec } from './dataset.js';
import { concatFeatures, fit, predict, type EpochStats, type FitOptions, type MlpParams } from './mlp.js';
import { encodeOnnxModel, ONNX_IR_VERSION, ONNX_OPSET, type OnnxNode } from './onnx.js';
import { buildProfile, formatProfile, PROFILE_FILE } from './profile.js';

export const MODEL_FILE = 'model.onnx';
export const OUTPUT_NAME = 'probabilities';
/** Recorded in the manifest's labels; bump when the trainer's output changes for the same inputs. */
export const TRAINER = 'aegis-train/1';

export const TRAIN_DEFAULTS = {
  name: 'example_multimodal',
  version: '0.1',
  seed: 7,
  epochs: 15,
  hidden: 32,
  batchSize: 64,
  learningRate: 0.003,
  weightDecay: 1e-4,
} as const;

export interface TrainOptions {
  /** Dataset directory: a local path or file:// URI. */
  dataset: string;
  /** Model directory to write into (created if missing; other files in it are left alone). */
  out: string;
  /** Recorded as dataset.uri in aegis.yaml; defaults to `dataset` exactly as given. */
  datasetUri?: string;
  name?: string;
  version?: string;
  /** Lineage: the version this one was derived from. */
  parent?: string;
  seed?: number;
  epochs?: number;
  hidden?: number;
  batchSize?: number;
  learningRate?: number;
  onEpoch?: (s: EpochStats) => void;
}

export interface ClassMetrics {
  class: string;
  precision: number;
  recall: number;
  f1: number;
  support: number;
}

export interface Evaluation {
  accuracy: number;
  macroF1: number;
  logLoss: number;
  perClass: ClassMetrics[];
  /** confusion[true][predicted] */
  confusion: number[][];
}

export interface TrainResult {
  dir: string;
  manifest: ModelManifest;
  evaluation: Evaluation;
  /** The trained weights (exactly those in model.onnx). */
  params: MlpParams;
  history: EpochStats[];
  trainRows: number;
  testRows: number;
  options: Required<Omit<TrainOptions, 'onEpoch' | 'parent'>> & { parent?: string };
  files: { model: string; profile: string; manifest: string };
  modelBytes: number;
}

const r4 = (x: number) => Math.round(x * 10_000) / 10_000;

/** Held-out metrics of predicted probabilities (rows × classes). */
export function evaluate(probs: Float32Array, labels: Uint8Array, classes: string[]): Evaluation {
  const k = classes.length;
  const rows = labels.length;
  const confusion = classes.map(() => new Array<number>(k).fill(0));
  let loss = 0;
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let c = 1; c < k; c++) if (probs[r * k + c]! > probs[r * k + best]!) best = c;
    const y = labels[r]!;
    confusion[y]![best]!++;
    loss -= Math.log(Math.max(probs[r * k + y]!, 1e-12));
  }
  let correct = 0;
  const perClass = classes.map((name, c) => {
    const tp = confusion[c]![c]!;
    correct += tp;
    const support = confusion[c]!.reduce((a, b) => a + b, 0);
    const predicted = confusion.reduce((a, row) => a + row[c]!, 0);
    const precision = predicted ? tp / predicted : 0;
    const recall = support ? tp / support : 0;
    const f1 = precision + recall ? (2 * precision * recall) / (precision + recall) : 0;
    return { class: name, precision: r4(precision), recall: r4(recall), f1: r4(f1), support };
  });
  const macroF1 = perClass.reduce((a, c) => a + c.f1, 0) / k;
  return { accuracy: r4(correct / rows), macroF1: r4(macroF1), logLoss: r4(loss / rows), perClass, confusion };
}

/** The ONNX graph: Flatten each multi-dimensional input, Concat, Gemm, Relu, Gemm, Softmax. */
export function buildOnnx(params: MlpParams, features: FeatureSpec[], name: string, docString?: string): Uint8Array {
  const nodes: OnnxNode[] = [];
  const flat: string[] = [];
  for (const f of features) {
    if (f.shape.length === 1) flat.push(f.name);
    else {
      nodes.push({ opType: 'Flatten', name: `flatten_${f.name}`, inputs: [f.name], outputs: [`${f.name}/flat`], attributes: [{ name: 'axis', type: 'int', value: 1 }] });
      flat.push(`${f.name}/flat`);
    }
  }
  let x = flat[0]!;
  if (flat.length > 1) {
    nodes.push({ opType: 'Concat', name: 'concat', inputs: flat, outputs: ['concat/out'], attributes: [{ name: 'axis', type: 'int', value: 1 }] });
    x = 'concat/out';
  }
  const transB = [{ name: 'transB', type: 'int' as const, value: 1 }];
  nodes.push(
    { opType: 'Gemm', name: 'dense1', inputs: [x, 'dense1.weight', 'dense1.bias'], outputs: ['dense1/out'], attributes: transB },
    { opType: 'Relu', name: 'relu1', inputs: ['dense1/out'], outputs: ['relu1/out'] },
    { opType: 'Gemm', name: 'dense2', inputs: ['relu1/out', 'dense2.weight', 'dense2.bias'], outputs: ['dense2/out'], attributes: transB },
    { opType: 'Softmax', name: 'softmax', inputs: ['dense2/out'], outputs: [OUTPUT_NAME], attributes: [{ name: 'axis', type: 'int', value: 1 }] },
  );
  return encodeOnnxModel({
    docString,
    graph: {
      name,
      nodes,
      initializers: [
        { name: 'dense1.weight', dtype: 'float32', dims: [params.hidden, params.inputSize], data: params.w1 },
        { name: 'dense1.bias', dtype: 'float32', dims: [params.hidden], data: params.b1 },
        { name: 'dense2.weight', dtype: 'float32', dims: [params.classes, params.hidden], data: params.w2 },
        { name: 'dense2.bias', dtype: 'float32', dims: [params.classes], data: params.b2 },
      ],
      inputs: features.map((f) => ({ name: f.name, dtype: 'float32', shape: ['N', ...f.shape] })),
      outputs: [{ name: OUTPUT_NAME, dtype: 'float32', shape: ['N', params.classes] }],
    },
  });
}

function checkInt(name: string, v: number, min: number, max: number): number {
  if (!Number.isSafeInteger(v) || v < min || v > max) {
    throw new AegisError('USAGE', `${name} must be an integer from ${min} to ${max} (got ${v})`, { hint: `Pass a valid --${name}.` });
  }
  return v;
}

/** Renders aegis.yaml (tensors in flow style) and checks it against the manifest schema. */
export function renderManifest(m: ModelManifest, source: string): string {
  const doc = new Document(m);
  // One line per tensor, as in docs/model-manifest.md.
  for (const list of ['inputs', 'outputs'] as const) {
    const seq = doc.get(list, true);
    if (isSeq(seq)) for (const item of seq.items) if (isMap(item)) item.flow = true;
  }
  doc.commentBefore = ` Written by \`aegis train\` (${TRAINER}); metrics are from the dataset's held-out test split.`;
  const text = doc.toString({ lineWidth: 0, flowCollectionPadding: false });
  parseManifest(text, source); // never write a manifest `aegis model package` would refuse
  return text;
}

async function writeAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, data);
  await rename(tmp, path);
}

/** Trains on `dataset` (its train split), evaluates on its test split, writes the model directory. */
export async function trainModel(o: TrainOptions): Promise<TrainResult> {
  const opts = {
    dataset: o.dataset,
    out: resolve(o.out),
    datasetUri: o.datasetUri ?? o.dataset,
    name: o.name ?? TRAIN_DEFAULTS.name,
    version: o.version ?? TRAIN_DEFAULTS.version,
    ...(o.parent ? { parent: o.parent } : {}),
    seed: o.seed ?? TRAIN_DEFAULTS.seed,
    epochs: checkInt('epochs', o.epochs ?? TRAIN_DEFAULTS.epochs, 1, 10_000),
    hidden: checkInt('hidden', o.hidden ?? TRAIN_DEFAULTS.hidden, 1, 4096),
    batchSize: checkInt('batch-size', o.batchSize ?? TRAIN_DEFAULTS.batchSize, 1, 1_000_000),
    learningRate: o.learningRate ?? TRAIN_DEFAULTS.learningRate,
  };
  checkInt('seed', opts.seed, 0, Number.MAX_SAFE_INTEGER);
  for (const [field, value] of [['name', opts.name], ['version', opts.version], ['parent', opts.parent]] as const) {
    if (value === undefined) continue;
    const r = (field === 'name' ? manifestSchema.shape.name : manifestSchema.shape.version).safeParse(value);
    if (!r.success) throw new AegisError('USAGE', `--${field} ${value} is not valid: ${r.error.issues[0]!.message}`, { hint: `Pass a valid --${field} (see docs/model-manifest.md).` });
  }
  if (!(opts.learningRate > 0 && opts.learningRate < 10)) {
    throw new AegisError('USAGE', `learning rate must be between 0 and 10 (got ${opts.learningRate})`, { hint: 'Pass e.g. --learning-rate 0.003.' });
  }
  const ds: Dataset = await readDataset(opts.dataset);
  const { spec } = ds;
  const classes = spec.label.classes;
  if (spec.features.some((f) => f.name === OUTPUT_NAME)) {
    throw new AegisError('DATASET_INVALID', `dataset ${ds.dir} has a feature named ${OUTPUT_NAME}, the model's output`, { hint: 'Rename the feature in dataset.yaml and the split files.' });
  }
  const inputSize = spec.features.reduce((a, f) => a + featureSize(f), 0);
  const fitOptions: FitOptions = { hidden: opts.hidden, epochs: opts.epochs, batchSize: opts.batchSize, learningRate: opts.learningRate, weightDecay: TRAIN_DEFAULTS.weightDecay, seed: opts.seed };
  const xTrain = concatFeatures(ds.train.features, ds.train.rows);
  const { params, history } = fit(xTrain, ds.train.labels, ds.train.rows, inputSize, classes.length, fitOptions, o.onEpoch);
  const evaluation = evaluate(predict(params, concatFeatures(ds.test.features, ds.test.rows), ds.test.rows), ds.test.labels, classes);

  const onnx = buildOnnx(params, spec.features, opts.name, `${opts.name} ${opts.version}: ${spec.features.map((f) => f.name).join(' + ')} → ${classes.length} classes (${TRAINER})`);
  const profile = buildProfile({
    model: { name: opts.name, version: opts.version },
    dataset: { uri: opts.datasetUri, digest: ds.digest, split: 'train' },
    features: spec.features,
    data: ds.train.features,
    rows: ds.train.rows,
    labels: { classes, values: ds.train.labels },
  });
  const manifest: ModelManifest = {
    apiVersion: 'aegis.dev/v1',
    kind: 'Model',
    name: opts.name,
    version: opts.version,
    description: `Multimodal classifier (${spec.features.map((f) => `${f.name} [${f.shape.join('x')}]`).join(' + ')} → ${classes.length} classes), a one-hidden-layer MLP trained by aegis train`,
    framework: 'onnx',
    runtime: { name: 'onnxruntime', version: '>=1.14' },
    entrypoint: MODEL_FILE,
    inputs: spec.features.map((f) => ({ name: f.name, dtype: 'float32' as const, shape: [-1, ...f.shape] })),
    outputs: [{ name: OUTPUT_NAME, dtype: 'float32', shape: [-1, classes.length] }],
    metrics: { accuracy: evaluation.accuracy, macro_f1: evaluation.macroF1, log_loss: evaluation.logLoss },
    dataset: { uri: opts.datasetUri, digest: ds.digest },
    ...(opts.parent ? { parent: { version: opts.parent } } : {}),
    labels: {
      task: 'classification',
      classes: classes.join(','),
      trainer: TRAINER,
      seed: String(opts.seed),
      epochs: String(opts.epochs),
      onnx: `ir${ONNX_IR_VERSION}-opset${ONNX_OPSET}`,
      profile: PROFILE_FILE,
    },
  };
  const files = { model: join(opts.out, MODEL_FILE), profile: join(opts.out, PROFILE_FILE), manifest: join(opts.out, MANIFEST_FILE) };
  const manifestText = renderManifest(manifest, files.manifest);
  await mkdir(opts.out, { recursive: true });
  await writeAtomic(files.model, onnx);
  await writeAtomic(files.profile, formatProfile(profile));
  await writeAtomic(files.manifest, manifestText);
  return {
    dir: opts.out,
    manifest: parseManifest(manifestText, files.manifest),
    evaluation,
    params,
    history,
    trainRows: ds.train.rows,
    testRows: ds.test.rows,
    options: opts,
    files,
    modelBytes: onnx.length,
  };
}
