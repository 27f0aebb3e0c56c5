/**
 * The classifier: a one-hidden-layer perceptron over the concatenated,
 * flattened input features, trained with mini-batch Adam on cross-entropy.
 * Plain TypeScript on typed arrays: weights are float32 (what the ONNX file
 * holds), arithmetic is done in float64, and every random choice comes from a
 * seeded Prng, so the same data, options and seed give the same weights.
 *
 *   x (rows × inputSize) → Gemm(W1, b1) → Relu → Gemm(W2, b2) → Softmax
 *
 * W1 is [hidden, inputSize] and W2 [classes, hidden] (ONNX Gemm with transB = 1).
 */
import { AegisError } from '../errors.js';
import { Prng } from './prng.js';

export interface MlpParams {
  inputSize: number;
  hidden: number;
  classes: number;
  w1: Float32Array;
  b1: Float32Array;
  w2: Float32Array;
  b2: Float32Array;
}

export interface FitOptions {
  hidden: number;
  epochs: number;
  batchSize: number;
  learningRate: number;
  /** L2 penalty on the weights (not the biases). */
  weightDecay: number;
  seed: number;
}

export interface EpochStats {
  epoch: number;
  /** Mean training cross-entropy over the epoch (while the weights moved). */
  loss: number;
  /** Training accuracy over the epoch. */
  accuracy: number;
}

/** Concatenates per-feature row-major arrays into one rows × Σsize matrix. */
export function concatFeatures(features: Float32Array[], rows: number): Float32Array {
  const sizes = features.map((f) => f.length / rows);
  const width = sizes.reduce((a, b) => a + b, 0);
  const x = new Float32Array(rows * width);
  for (let r = 0; r < rows; r++) {
    let off = r * width;
    features.forEach((f, k) => {
      const s = sizes[k]!;
      x.set(f.subarray(r * s, (r + 1) * s), off);
      off += s;
    });
  }
  return x;
}

/** He-uniform first layer (ReLU), Glorot-uniform output layer, zero biases. */
export function initParams(inputSize: number, hidden: number, classes: number, rng: Prng): MlpParams {
  const w1 = new Float32Array(hidden * inputSize);
  const a1 = Math.sqrt(6 / inputSize);
  for (let i = 0; i < w1.length; i++) w1[i] = rng.range(-a1, a1);
  const w2 = new Float32Array(classes * hidden);
  const a2 = Math.sqrt(6 / (hidden + classes));
  for (let i = 0; i < w2.length; i++) w2[i] = rng.range(-a2, a2);
  return { inputSize, hidden, classes, w1, b1: new Float32Array(hidden), w2, b2: new Float32Array(classes) };
}

/** Softmax of z[0..n) in place (max-subtracted). */
function softmax(z: Float64Array, n: number): void {
  let max = -Infinity;
  for (let k = 0; k < n; k++) if (z[k]! > max) max = z[k]!;
  let sum = 0;
  for (let k = 0; k < n; k++) {
    const e = Math.exp(z[k]! - max);
    z[k] = e;
    sum += e;
  }
  for (let k = 0; k < n; k++) z[k] = z[k]! / sum;
}

/** Forward pass of one row: fills z1 (pre-activation), h (ReLU) and p (probabilities). */
function forwardRow(p: MlpParams, x: Float32Array, off: number, z1: Float64Array, h: Float64Array, out: Float64Array): void {
  const { inputSize: n, hidden, classes, w1, b1, w2, b2 } = p;
  for (let j = 0; j < hidden; j++) {
    let s = b1[j]!;
    const w = j * n;
    for (let i = 0; i < n; i++) s += w1[w + i]! * x[off + i]!;
    z1[j] = s;
    h[j] = s > 0 ? s : 0;
  }
  for (let k = 0; k < classes; k++) {
    let s = b2[k]!;
    const w = k * hidden;
    for (let j = 0; j < hidden; j++) s += w2[w + j]! * h[j]!;
    out[k] = s;
  }
  softmax(out, classes);
}

/** Class probabilities for `rows` rows of x (rows × inputSize), as float32 like the ONNX model. */
export function predict(p: MlpParams, x: Float32Array, rows: number): Float32Array {
  if (x.length !== rows * p.inputSize) {
    throw new AegisError('TRAINING_FAILED', `input has ${x.length} values, expected ${rows} rows × ${p.inputSize}`, { hint: 'The data does not match the model: check the feature shapes.' });
  }
  const z1 = new Float64Array(p.hidden);
  const h = new Float64Array(p.hidden);
  const out = new Float64Array(p.classes);
  const probs = new Float32Array(rows * p.classes);
  for (let r = 0; r < rows; r++) {
    forwardRow(p, x, r * p.inputSize, z1, h, out);
    for (let k = 0; k < p.classes; k++) probs[r * p.classes + k] = out[k]!;
  }
  return probs;
}

/** Trains on x (rows × inputSize) with labels in [0, classes). */
export function fit(
  x: Float32Array,
  labels: Uint8Array,
  rows: number,
  inputSize: number,
  classes: number,
  o: FitOptions,
  onEpoch?: (s: EpochStats) => void,
): { params: MlpParams; history: EpochStats[] } {
  const rng = new Prng(`aegis-train/${o.seed}`);
  const p = initParams(inputSize, o.hidden, classes, rng);
  const tensors = [p.w1, p.b1, p.w2, p.b2];
  const decay = [o.weightDecay, 0, o.weightDecay, 0];
  const grads = tensors.map((t) => new Float64Array(t.length));
  const m = tensors.map((t) => new Float64Array(t.length));
  const v = tensors.map((t) => new Float64Array(t.length));
  const [gW1, gB1, gW2, gB2] = grads as [Float64Array, Float64Array, Float64Array, Float64Array];
  const beta1 = 0.9;
  const beta2 = 0.999;
  const eps = 1e-8;
  const H = o.hidden;
  const z1 = new Float64Array(H);
  const h = new Float64Array(H);
  const out = new Float64Array(classes);
  const dz1 = new Float64Array(H);
  const order = new Uint32Array(rows);
  for (let i = 0; i < rows; i++) order[i] = i;
  const history: EpochStats[] = [];
  // beta^step as running products: plain multiplications are exact IEEE everywhere.
  let beta1t = 1;
  let beta2t = 1;
  for (let epoch = 1; epoch <= o.epochs; epoch++) {
    rng.shuffle(order);
    let lossSum = 0;
    let correct = 0;
    for (let start = 0; start < rows; start += o.batchSize) {
      const end = Math.min(rows, start + o.batchSize);
      const scale = 1 / (end - start);
      for (const g of grads) g.fill(0);
      for (let b = start; b < end; b++) {
        const r = order[b]!;
        const off = r * inputSize;
        const y = labels[r]!;
        forwardRow(p, x, off, z1, h, out);
        lossSum -= Math.log(Math.max(out[y]!, 1e-12));
        let best = 0;
        for (let k = 1; k < classes; k++) if (out[k]! > out[best]!) best = k;
        if (best === y) correct++;
        // dL/dz2 = p − onehot(y), averaged over the batch.
        dz1.fill(0);
        for (let k = 0; k < classes; k++) {
          const d = (out[k]! - (k === y ? 1 : 0)) * scale;
          gB2[k] = gB2[k]! + d;
          const w = k * H;
          for (let j = 0; j < H; j++) {
            gW2[w + j] = gW2[w + j]! + d * h[j]!;
            dz1[j] = dz1[j]! + d * p.w2[w + j]!;
          }
        }
        for (let j = 0; j < H; j++) {
          if (z1[j]! <= 0) continue;
          const d = dz1[j]!;
          gB1[j] = gB1[j]! + d;
          const w = j * inputSize;
          for (let i = 0; i < inputSize; i++) gW1[w + i] = gW1[w + i]! + d * x[off + i]!;
        }
      }
      // Adam.
      beta1t *= beta1;
      beta2t *= beta2;
      const c1 = 1 - beta1t;
      const c2 = 1 - beta2t;
      tensors.forEach((t, ti) => {
        const g = grads[ti]!;
        const mt = m[ti]!;
        const vt = v[ti]!;
        const wd = decay[ti]!;
        for (let i = 0; i < t.length; i++) {
          const gi = g[i]! + wd * t[i]!;
          mt[i] = beta1 * mt[i]! + (1 - beta1) * gi;
          vt[i] = beta2 * vt[i]! + (1 - beta2) * gi * gi;
          t[i] = t[i]! - (o.learningRate * (mt[i]! / c1)) / (Math.sqrt(vt[i]! / c2) + eps);
        }
      });
    }
    const stats = { epoch, loss: lossSum / rows, accuracy: correct / rows };
    if (!Number.isFinite(stats.loss)) {
      throw new AegisError('TRAINING_FAILED', `training diverged at epoch ${epoch} (loss ${stats.loss})`, {
        hint: 'Lower --learning-rate, or check the dataset for extreme values.',
        details: { epoch },
      });
    }
    history.push(stats);
    onEpoch?.(stats);
  }
  return { params: p, history };
}
