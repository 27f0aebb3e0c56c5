import type { Dtype, Tensor, TensorData } from './runtime/types.js';

/**
 * Open Inference Protocol v2 tensors: parsing and checking requests against
 * the model's declared inputs before the runtime sees them, and encoding
 * outputs. Written here because this validation is the server's contract.
 */
export const OIP_DATATYPE: Record<Dtype, string> = {
  bool: 'BOOL',
  uint8: 'UINT8',
  uint16: 'UINT16',
  uint32: 'UINT32',
  uint64: 'UINT64',
  int8: 'INT8',
  int16: 'INT16',
  int32: 'INT32',
  int64: 'INT64',
  float16: 'FP16',
  float32: 'FP32',
  float64: 'FP64',
  string: 'BYTES',
};
const FROM_OIP: Record<string, Dtype> = Object.fromEntries(Object.entries(OIP_DATATYPE).map(([k, v]) => [v, k as Dtype]));

export interface TensorSpec {
  name: string;
  dtype: Dtype;
  shape: number[];
}

/** A request the client got wrong: becomes HTTP 400 with this message. */
export class BadRequest extends Error {
  readonly status: number;
  constructor(message: string, status = 400) {
    super(message);
    this.status = status;
  }
}

const INT_RANGE: Partial<Record<Dtype, [number, number]>> = {
  int8: [-128, 127],
  int16: [-32768, 32767],
  int32: [-2147483648, 2147483647],
  uint8: [0, 255],
  uint16: [0, 65535],
  uint32: [0, 4294967295],
};

function flatten(value: unknown, out: unknown[], depth = 0): void {
  if (Array.isArray(value)) {
    if (depth > 32) throw new BadRequest('data is nested too deeply');
    for (const v of value) flatten(v, out, depth + 1);
  } else out.push(value);
}

/** Shape of a rectangular nested array; throws on ragged arrays. */
export function nestedShape(value: unknown, name: string): number[] {
  const shape: number[] = [];
  let level: unknown = value;
  while (Array.isArray(level)) {
    shape.push(level.length);
    level = level[0];
  }
  const check = (v: unknown, depth: number) => {
    if (depth === shape.length) {
      if (Array.isArray(v)) throw new BadRequest(`input ${name}: ragged nested array (deeper than the first element)`);
      return;
    }
    if (!Array.isArray(v) || v.length !== shape[depth]) throw new BadRequest(`input ${name}: ragged nested array (every row must have ${shape[depth]} elements at depth ${depth})`);
    for (const x of v) check(x, depth + 1);
  };
  check(value, 0);
  return shape;
}

function toTypedArray(values: unknown[], dtype: Dtype, name: string): TensorData {
  const bad = (i: number, want: string) => new BadRequest(`input ${name}: element ${i} is ${JSON.stringify(values[i])}, expected ${want}`);
  switch (dtype) {
    case 'float32':
    case 'float64':
    case 'float16': {
      const arr = dtype === 'float64' ? new Float64Array(values.length) : new Float32Array(values.length);
      for (let i = 0; i < values.length; i++) {
        const v = values[i];
        if (typeof v !== 'number') throw bad(i, 'a number');
        arr[i] = v;
      }
      if (dtype === 'float16') throw new BadRequest(`input ${name}: FP16 inputs are not supported by this server`);
      return arr;
    }
    case 'int64':
    case 'uint64': {
      const arr = dtype === 'int64' ? new BigInt64Array(values.length) : new BigUint64Array(values.length);
      for (let i = 0; i < values.length; i++) {
        const v = values[i];
        if (typeof v !== 'number' || !Number.isInteger(v) || (dtype === 'uint64' && v < 0)) throw bad(i, dtype === 'int64' ? 'an integer' : 'a non-negative integer');
        arr[i] = BigInt(v);
      }
      return arr;
    }
    case 'bool': {
      const arr: boolean[] = new Array<boolean>(values.length);
      for (let i = 0; i < values.length; i++) {
        const v = values[i];
        if (typeof v !== 'boolean') throw bad(i, 'true or false');
        arr[i] = v;
      }
      return arr;
    }
    case 'string': {
      const arr: string[] = new Array<string>(values.length);
      for (let i = 0; i < values.length; i++) {
        const v = values[i];
        if (typeof v !== 'string') throw bad(i, 'a string');
        arr[i] = v;
      }
      return arr;
    }
    default: {
      const [lo, hi] = INT_RANGE[dtype]!;
      const Ctor = { int8: Int8Array, int16: Int16Array, int32: Int32Array, uint8: Uint8Array, uint16: Uint16Array, uint32: Uint32Array }[dtype as 'int8'];
      const arr = new Ctor(values.length);
      for (let i = 0; i < values.length; i++) {
        const v = values[i];
        if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) throw bad(i, `an integer in [${lo}, ${hi}]`);
        arr[i] = v;
      }
      return arr;
    }
  }
}

/** Checks a shape against the declared one (-1: any size; dim 0 is the batch). */
function checkShape(spec: TensorSpec, shape: number[]): void {
  const want = `[${spec.shape.join(', ')}]`;
  if (shape.length !== spec.shape.length) {
    throw new BadRequest(`input ${spec.name}: shape [${shape.join(', ')}] has ${shape.length} dimensions, expected ${spec.shape.length} (${want}, -1 = any size)`);
  }
  spec.shape.forEach((d, i) => {
    const got = shape[i]!;
    if (!Number.isInteger(got) || got < 0) throw new BadRequest(`input ${spec.name}: dimension ${i} is ${got}, expected a size >= 0`);
    if (d !== -1 && d !== got) throw new BadRequest(`input ${spec.name}: dimension ${i} is ${got}, expected ${d} (shape ${want})`);
  });
}

function product(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export interface OipInput {
  name?: unknown;
  shape?: unknown;
  datatype?: unknown;
  data?: unknown;
}

const MAX_ELEMENTS = 64 * 1024 * 1024;

/** Validates OIP `inputs` against the model's inputs; returns runtime tensors. */
export function parseOipInputs(inputs: unknown, specs: readonly TensorSpec[]): Record<string, Tensor> {
  if (!Array.isArray(inputs) || inputs.length === 0) throw new BadRequest('"inputs" must be a non-empty array of {name, shape, datatype, data}');
  const out: Record<string, Tensor> = {};
  for (const [i, raw] of inputs.entries()) {
    if (!raw || typeof raw !== 'object') throw new BadRequest(`inputs[${i}] must be an object with name, shape, datatype and data`);
    const inp = raw as OipInput;
    if (typeof inp.name !== 'string') throw new BadRequest(`inputs[${i}].name must be a string`);
    const spec = specs.find((s) => s.name === inp.name);
    if (!spec) throw new BadRequest(`unknown input ${JSON.stringify(inp.name)}; the model takes ${specs.map((s) => s.name).join(', ')}`);
    if (out[spec.name]) throw new BadRequest(`input ${spec.name} is given twice`);
    if (!Array.isArray(inp.shape) || !inp.shape.every((d) => typeof d === 'number')) throw new BadRequest(`input ${spec.name}: "shape" must be an array of integers`);
    const shape = inp.shape as number[];
    if (typeof inp.datatype !== 'string' || !(inp.datatype in FROM_OIP)) {
      throw new BadRequest(`input ${spec.name}: datatype ${JSON.stringify(inp.datatype)} is not an OIP datatype (e.g. ${OIP_DATATYPE[spec.dtype]})`);
    }
    const dtype = FROM_OIP[inp.datatype]!;
    if (dtype !== spec.dtype) throw new BadRequest(`input ${spec.name}: datatype ${inp.datatype}, expected ${OIP_DATATYPE[spec.dtype]}`);
    checkShape(spec, shape);
    const n = product(shape);
    if (n > MAX_ELEMENTS) throw new BadRequest(`input ${spec.name}: ${n} elements is over the limit of ${MAX_ELEMENTS}`, 413);
    const values: unknown[] = [];
    flatten(inp.data, values);
    if (values.length !== n) throw new BadRequest(`input ${spec.name}: ${values.length} data elements for shape [${shape.join(', ')}] (${n} expected)`);
    out[spec.name] = { dtype, dims: shape, data: toTypedArray(values, dtype, spec.name) };
  }
  requireAllAndSameBatch(out, specs);
  return out;
}

/** The simple runbook form: {"inputs": {name: nested array}}; shapes come from the nesting. */
export function parseSimpleInputs(inputs: unknown, specs: readonly TensorSpec[]): Record<string, Tensor> {
  if (!inputs || typeof inputs !== 'object' || Array.isArray(inputs)) {
    throw new BadRequest('"inputs" must be an object mapping each input name to a nested array, e.g. {"inputs": {"x": [[1, 2, 3]]}}');
  }
  const out: Record<string, Tensor> = {};
  for (const [name, value] of Object.entries(inputs as Record<string, unknown>)) {
    const spec = specs.find((s) => s.name === name);
    if (!spec) throw new BadRequest(`unknown input ${JSON.stringify(name)}; the model takes ${specs.map((s) => s.name).join(', ')}`);
    if (!Array.isArray(value)) throw new BadRequest(`input ${name}: expected a nested array of shape [${spec.shape.join(', ')}]`);
    const shape = nestedShape(value, name);
    checkShape(spec, shape);
    const n = product(shape);
    if (n > MAX_ELEMENTS) throw new BadRequest(`input ${name}: ${n} elements is over the limit of ${MAX_ELEMENTS}`, 413);
    const values: unknown[] = [];
    flatten(value, values);
    out[name] = { dtype: spec.dtype, dims: shape, data: toTypedArray(values, spec.dtype, name) };
  }
  requireAllAndSameBatch(out, specs);
  return out;
}

function requireAllAndSameBatch(out: Record<string, Tensor>, specs: readonly TensorSpec[]): void {
  const missing = specs.filter((s) => !out[s.name]).map((s) => s.name);
  if (missing.length) throw new BadRequest(`missing input${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`);
  const batched = specs.filter((s) => s.shape[0] === -1);
  const sizes = new Set(batched.map((s) => out[s.name]!.dims[0]));
  if (sizes.size > 1) throw new BadRequest(`inputs ${batched.map((s) => `${s.name} (${out[s.name]!.dims[0]})`).join(', ')} disagree on the batch size`);
  if (batched.length && [...sizes][0] === 0) throw new BadRequest('batch size is 0');
}

function plain(data: TensorData): unknown[] {
  if (data instanceof BigInt64Array || data instanceof BigUint64Array) return Array.from(data, (v) => Number(v));
  return Array.from(data as ArrayLike<unknown>);
}

export function encodeOipOutput(name: string, t: Tensor): { name: string; datatype: string; shape: number[]; data: unknown[] } {
  return { name, datatype: OIP_DATATYPE[t.dtype], shape: t.dims, data: plain(t.data) };
}

/** Nested array form of a tensor (the simple /infer response). */
export function nested(t: Tensor): unknown {
  const flat = plain(t.data);
  if (t.dims.length === 0) return flat[0];
  let idx = 0;
  const build = (d: number): unknown[] => {
    const n = t.dims[d]!;
    const row: unknown[] = new Array<unknown>(n);
    for (let i = 0; i < n; i++) row[i] = d === t.dims.length - 1 ? flat[idx++] : build(d + 1);
    return row;
  };
  return build(0);
}
