import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import type { ModelManifest } from '../../../artifact/manifest.js';
import { AegisError } from '../../../errors.js';
import type { Dtype, LoadedModel, ModelRuntime, Tensor, TensorData } from '../types.js';

const ORT_TYPE: Record<Dtype, ort.Tensor.Type> = {
  float16: 'float16',
  float32: 'float32',
  float64: 'float64',
  int8: 'int8',
  int16: 'int16',
  int32: 'int32',
  int64: 'int64',
  uint8: 'uint8',
  uint16: 'uint16',
  uint32: 'uint32',
  uint64: 'uint64',
  bool: 'bool',
  string: 'string',
};

const FROM_ORT: Record<string, Dtype> = Object.fromEntries(Object.entries(ORT_TYPE).map(([k, v]) => [v, k as Dtype]));

export interface OnnxRuntimeOptions {
  /** Threads inside one operator (default 1: a server scales with concurrent requests, not per request). */
  intraOpThreads?: number;
  interOpThreads?: number;
}

/** ONNX Runtime (onnxruntime-node, CPU): one InferenceSession per loaded version. */
export class OnnxRuntime implements ModelRuntime {
  readonly platform = 'onnxruntime_onnx';
  readonly #options: OnnxRuntimeOptions;

  constructor(options: OnnxRuntimeOptions = {}) {
    this.#options = options;
  }

  async load(dir: string, manifest: ModelManifest): Promise<LoadedModel> {
    const file = join(dir, manifest.entrypoint ?? 'model.onnx');
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(file, {
        intraOpNumThreads: this.#options.intraOpThreads ?? 1,
        interOpNumThreads: this.#options.interOpThreads ?? 1,
        executionProviders: ['cpu'],
        graphOptimizationLevel: 'all',
      });
    } catch (err) {
      throw new AegisError('MODEL_LOAD_FAILED', `ONNX Runtime cannot load ${file}: ${(err as Error).message}`, {
        cause: err,
        hint: 'Check that the entrypoint in aegis.yaml is a valid ONNX model for this runtime version.',
      });
    }
    const missing = manifest.inputs.map((i) => i.name).filter((n) => !session.inputNames.includes(n));
    const missingOut = manifest.outputs.map((o) => o.name).filter((n) => !session.outputNames.includes(n));
    if (missing.length || missingOut.length) {
      await session.release();
      throw new AegisError('MODEL_LOAD_FAILED', `aegis.yaml does not match the ONNX graph: ${[...missing, ...missingOut].join(', ')} not in the model`, {
        hint: `The graph has inputs ${session.inputNames.join(', ')} and outputs ${session.outputNames.join(', ')}; fix aegis.yaml.`,
      });
    }
    return {
      async run(inputs, outputNames) {
        const feeds: Record<string, ort.Tensor> = {};
        for (const [name, t] of Object.entries(inputs)) feeds[name] = new ort.Tensor(ORT_TYPE[t.dtype], t.data as never, t.dims);
        const out = outputNames ? await session.run(feeds, [...outputNames]) : await session.run(feeds);
        const result: Record<string, Tensor> = {};
        for (const [name, t] of Object.entries(out)) {
          result[name] = { dtype: FROM_ORT[t.type] ?? 'float32', dims: [...t.dims], data: t.data as TensorData };
        }
        return result;
      },
      async close() {
        await session.release();
      },
    };
  }
}
