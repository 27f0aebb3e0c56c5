/**
 * The trainer end to end on the committed example dataset: the ONNX file runs
 * in ONNX Runtime and matches the TypeScript forward pass, training is
 * deterministic, the held-out metrics are good (and drop under the v2 shift),
 * the committed example model is what the documented command produces, and
 * profile.json / aegis.yaml are consistent with the data.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readManifest } from '../artifact/manifest.js';
import { isAegisError } from '../errors.js';
import { tempDir } from '../test-support/fs.js';
import { readDataset, type Dataset } from './dataset.js';
import { concatFeatures, predict } from './mlp.js';
import { computeStats, quantile, type ReferenceProfile } from './profile.js';
import { evaluate, trainModel, type TrainResult } from './train.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const V1 = 'examples/datasets/example_multimodal/v1';
const V2 = 'examples/datasets/example_multimodal/v2';
const EXAMPLE_MODEL = join(REPO, 'examples/model_registry/example_multimodal/0.1');
const FILES = ['model.onnx', 'profile.json', 'aegis.yaml'];

let root: string;
let cleanup: () => Promise<void>;
let trained: TrainResult;
let v1: Dataset;
let v2: Dataset;

beforeAll(async () => {
  ({ path: root, cleanup } = await tempDir('aegis-train-test-'));
  // Exactly the documented command (dataset URI as given, relative to the repository root).
  trained = await trainModel({ dataset: join(REPO, V1), datasetUri: V1, out: join(root, 'a') });
  [v1, v2] = [await readDataset(join(REPO, V1)), await readDataset(join(REPO, V2))];
});
afterAll(() => cleanup());

/** Runs model.onnx from `dir` on a split. */
async function runOnnx(dir: string, d: Dataset['test']): Promise<{ data: Float32Array; dims: readonly number[] }> {
  const session = await ort.InferenceSession.create(await readFile(join(dir, 'model.onnx')));
  try {
    const out = await session.run({
      image: new ort.Tensor('float32', d.features[0]!, [d.rows, 1, 8, 8]),
      text: new ort.Tensor('float32', d.features[1]!, [d.rows, 16]),
    });
    const p = out.probabilities!;
    return { data: p.data as Float32Array, dims: p.dims };
  } finally {
    await session.release();
  }
}

const same = async (a: string, b: string, f: string) => (await readFile(join(a, f))).equals(await readFile(join(b, f)));

describe('trainModel', () => {
  it('writes an ONNX model whose ONNX Runtime outputs equal the TypeScript forward pass within 1e-5', async () => {
    const onnx = await runOnnx(trained.dir, v1.test);
    expect(onnx.dims).toEqual([1000, 3]);
    const ts = predict(trained.params, concatFeatures(v1.test.features, v1.test.rows), v1.test.rows);
    let worst = 0;
    for (let i = 0; i < ts.length; i++) worst = Math.max(worst, Math.abs(ts[i]! - onnx.data[i]!));
    expect(worst).toBeLessThan(1e-5);
    // and the model is not trivial: the outputs vary across examples
    expect(new Set(Array.from(onnx.data.subarray(0, 300), (v) => v.toFixed(3))).size).toBeGreaterThan(50);
  });

  it('outputs probabilities: in [0, 1], each row summing to 1', async () => {
    const { data } = await runOnnx(trained.dir, v1.test);
    for (let r = 0; r < 1000; r++) {
      const row = data.subarray(r * 3, r * 3 + 3);
      for (const p of row) expect(p >= 0 && p <= 1).toBe(true);
      expect(Math.abs(row[0]! + row[1]! + row[2]! - 1)).toBeLessThan(1e-5);
    }
  });

  it('reaches a held-out accuracy well above chance but below 100%, the same that ONNX Runtime gives', async () => {
    const m = trained.manifest.metrics;
    expect(m.accuracy).toBeGreaterThan(0.88);
    expect(m.accuracy).toBeLessThan(0.99);
    expect(m.macro_f1).toBeGreaterThan(0.88);
    expect(m.log_loss).toBeLessThan(0.4);
    const viaOrt = evaluate((await runOnnx(trained.dir, v1.test)).data, v1.test.labels, v1.spec.label.classes);
    expect(viaOrt.accuracy).toBe(m.accuracy);
    expect(trained.evaluation.confusion.flat().reduce((a, b) => a + b, 0)).toBe(1000);
    expect(trained.history[0]!.loss).toBeGreaterThan(trained.history.at(-1)!.loss);
  });

  it('does measurably worse on the shifted v2 data (what drift detection and retraining are for)', async () => {
    const onV2 = evaluate((await runOnnx(trained.dir, v2.test)).data, v2.test.labels, v2.spec.label.classes);
    expect(onV2.accuracy).toBeLessThan(trained.evaluation.accuracy - 0.08);
  });

  it('is deterministic: the same seed gives the same bytes, another seed another model', async () => {
    const again = await trainModel({ dataset: join(REPO, V1), datasetUri: V1, out: join(root, 'b') });
    for (const f of FILES) expect(await same(trained.dir, again.dir, f), f).toBe(true);
    const other = await trainModel({ dataset: join(REPO, V1), datasetUri: V1, out: join(root, 'c'), seed: 8, epochs: 2 });
    expect(await same(trained.dir, other.dir, 'model.onnx')).toBe(false);
  });

  it('reproduces the committed example model byte for byte (examples/model_registry/example_multimodal/0.1)', async () => {
    for (const f of FILES) {
      expect(await same(trained.dir, EXAMPLE_MODEL, f), `${f} of the example model differs from a fresh training run: run examples/training/train-example.sh`).toBe(true);
    }
  });

  it('writes an aegis.yaml that readManifest accepts, with tensors, metrics and lineage', async () => {
    const m = await readManifest(trained.dir);
    expect(m).toMatchObject({
      name: 'example_multimodal',
      version: '0.1',
      framework: 'onnx',
      runtime: { name: 'onnxruntime' },
      entrypoint: 'model.onnx',
      inputs: [
        { name: 'image', dtype: 'float32', shape: [-1, 1, 8, 8] },
        { name: 'text', dtype: 'float32', shape: [-1, 16] },
      ],
      outputs: [{ name: 'probabilities', dtype: 'float32', shape: [-1, 3] }],
      dataset: { uri: V1, digest: v1.digest },
      labels: { task: 'classification', classes: 'top_left,top_right,bottom' },
    });
    expect(m.parent).toBeUndefined();
    expect(m.metrics).toEqual(trained.manifest.metrics);

    const child = await trainModel({ dataset: `file://${join(REPO, V2)}`, out: join(root, 'child'), version: '0.2', parent: '0.1', epochs: 2 });
    const cm = await readManifest(child.dir);
    expect([cm.version, cm.parent?.version, cm.dataset?.uri]).toEqual(['0.2', '0.1', `file://${join(REPO, V2)}`]);
  });

  it('writes profile.json with statistics that match the training data', async () => {
    const p = JSON.parse(await readFile(join(trained.dir, 'profile.json'), 'utf8')) as ReferenceProfile;
    expect(p).toMatchObject({ kind: 'ReferenceProfile', rows: 4000, model: { name: 'example_multimodal', version: '0.1' }, dataset: { uri: V1, split: 'train' } });
    expect(p.inputs.map((i) => [i.name, i.shape, i.features.length])).toEqual([
      ['image', [-1, 1, 8, 8], 64],
      ['text', [-1, 16], 16],
    ]);
    const img = v1.train.features[0]!;
    let sum = 0;
    for (const v of img) sum += v;
    expect(p.inputs[0]!.summary.mean).toBeCloseTo(sum / img.length, 5);
    // text[kite] (element 3): its own column
    const kite = Float64Array.from({ length: 4000 }, (_, r) => v1.train.features[1]![r * 16 + 3]!);
    const f = p.inputs[1]!.features[3]!;
    expect(f.name).toBe('text[kite]');
    expect(f.max).toBe(Math.max(...kite));
    expect(f.quantiles[3]).toBe(quantile(Float64Array.from(kite).sort(), 0.5));
    for (const input of p.inputs) {
      for (const feat of input.features) {
        expect(feat.histogram.counts.reduce((a, b) => a + b, 0)).toBe(4000);
        expect(feat.histogram.edges).toHaveLength(11);
        expect([...feat.quantiles].sort((a, b) => a - b)).toEqual(feat.quantiles);
      }
    }
    expect(p.labels!.counts.reduce((a, b) => a + b, 0)).toBe(4000);
  });

  it('refuses bad options before training', async () => {
    const refuses = async (o: Partial<Parameters<typeof trainModel>[0]>, text: string) => {
      let err: unknown;
      try {
        await trainModel({ dataset: join(REPO, V1), out: join(root, 'bad'), ...o });
      } catch (e) {
        err = e;
      }
      expect(isAegisError(err, 'USAGE'), String(err)).toBe(true);
      expect((err as Error).message).toContain(text);
    };
    await refuses({ epochs: 0 }, 'epochs must be an integer from 1');
    await refuses({ name: 'Bad Name' }, '--name Bad Name is not valid');
    await refuses({ parent: '../x' }, '--parent ../x is not valid');
    await refuses({ learningRate: -1 }, 'learning rate');
    await refuses({ dataset: 's3://bucket/data' }, 'only local paths');
  });
});

describe('profile statistics', () => {
  it('quantiles interpolate linearly; histograms cover [min, max]; constants land in one bin', () => {
    expect(quantile([1, 2, 3, 4], 0.5)).toBe(2.5);
    expect(quantile([1, 2, 3, 4], 0.25)).toBe(1.75);
    const s = computeStats([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(s).toMatchObject({ count: 11, mean: 5, min: 0, max: 10, std: 3.16228 });
    expect(s.histogram.edges).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(s.histogram.counts).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 1, 2]);
    const c = computeStats([3, 3, 3]);
    expect(c.histogram.counts).toEqual([3, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect(c.std).toBe(0);
  });
});
