import type { ModelManifest } from '../../artifact/manifest.js';

/** Element types a tensor can have (manifest dtypes). */
export type Dtype = ModelManifest['inputs'][number]['dtype'];

export type TensorData = Float32Array | Float64Array | Int8Array | Int16Array | Int32Array | BigInt64Array | Uint8Array | Uint16Array | Uint32Array | BigUint64Array | string[] | boolean[];

export interface Tensor {
  dtype: Dtype;
  dims: number[];
  data: TensorData;
}

/** A model loaded by a runtime, ready to run. One per loaded version. */
export interface LoadedModel {
  run(inputs: Record<string, Tensor>, outputNames?: readonly string[]): Promise<Record<string, Tensor>>;
  close(): Promise<void>;
}

/**
 * Runtime role: turns a verified model folder into a LoadedModel. One
 * implementation per folder (runtime/onnx).
 */
export interface ModelRuntime {
  /** OIP platform name, e.g. onnxruntime_onnx. */
  readonly platform: string;
  load(dir: string, manifest: ModelManifest): Promise<LoadedModel>;
}
