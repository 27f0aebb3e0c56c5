/**
 * A small ONNX model ENCODER: writes the protobuf wire format of the ONNX IR
 * (https://onnx.ai/onnx/repo-docs/IR.html, messages of onnx.proto) field by
 * field with protobufjs' low-level Writer. No .proto file or generated code:
 * the field numbers below are the public ones of the ONNX IR spec.
 *
 * The output is deterministic: fields are written in a fixed order, metadata
 * keys sorted, tensors as little-endian raw_data, so the same graph and
 * weights always give the same bytes.
 */
import protobuf from 'protobufjs/minimal.js';
import { AegisError } from '../errors.js';

/** The IR version and default-domain opset the encoder targets. */
export const ONNX_IR_VERSION = 8;
export const ONNX_OPSET = 17;
export const ONNX_PRODUCER = 'aegis';

/** TensorProto.DataType values. */
export const ONNX_DTYPE = { float32: 1, uint8: 2, int8: 3, int32: 6, int64: 7, bool: 9, float64: 11 } as const;
export type OnnxDtype = keyof typeof ONNX_DTYPE;

/** AttributeProto.AttributeType values. */
const ATTR_TYPE = { float: 1, int: 2, string: 3, tensor: 4, floats: 6, ints: 7, strings: 8 } as const;

export interface OnnxTensor {
  name: string;
  dtype: 'float32' | 'int64';
  dims: number[];
  /** float32: Float32Array or numbers; int64: integers (safe range). */
  data: Float32Array | readonly number[];
}

export type OnnxAttribute =
  | { name: string; type: 'float'; value: number }
  | { name: string; type: 'int'; value: number }
  | { name: string; type: 'string'; value: string }
  | { name: string; type: 'tensor'; value: OnnxTensor }
  | { name: string; type: 'floats'; value: readonly number[] }
  | { name: string; type: 'ints'; value: readonly number[] }
  | { name: string; type: 'strings'; value: readonly string[] };

export interface OnnxNode {
  opType: string;
  inputs: string[];
  outputs: string[];
  name?: string;
  /** Operator domain; '' (the default ONNX domain) when absent. */
  domain?: string;
  attributes?: OnnxAttribute[];
}

export interface OnnxValueInfo {
  name: string;
  dtype: OnnxDtype;
  /** A number is a fixed size (dim_value), a string a symbolic one (dim_param), e.g. 'N'. */
  shape: (number | string)[];
  docString?: string;
}

export interface OnnxGraph {
  name: string;
  nodes: OnnxNode[];
  initializers: OnnxTensor[];
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
  valueInfo?: OnnxValueInfo[];
  docString?: string;
}

export interface OnnxModel {
  graph: OnnxGraph;
  irVersion?: number;
  /** Defaults to [{ domain: '', version: 17 }]. */
  opsetImports?: { domain: string; version: number }[];
  producerName?: string;
  producerVersion?: string;
  docString?: string;
  /** ModelProto.metadata_props; written sorted by key. */
  metadata?: Record<string, string>;
}

// Wire types.
const VARINT = 0;
const FIXED32 = 5;
const LEN = 2;
const tag = (field: number, wire: number) => (field << 3) | wire;

type Writer = protobuf.Writer;

function invalid(message: string): AegisError {
  return new AegisError('ONNX_INVALID', `cannot encode ONNX model: ${message}`, {
    hint: 'This is a bug in the code building the graph: check tensor shapes and names.',
  });
}

function int64(w: Writer, field: number, v: number): void {
  if (!Number.isSafeInteger(v)) throw invalid(`${v} is not an integer`);
  w.uint32(tag(field, VARINT)).int64(v);
}

function str(w: Writer, field: number, s: string): void {
  w.uint32(tag(field, LEN)).string(s);
}

function message(w: Writer, field: number, body: (w: Writer) => void): void {
  w.uint32(tag(field, LEN)).fork();
  body(w);
  w.ldelim();
}

// OperatorSetIdProto: domain = 1, version = 2.
function opsetId(w: Writer, o: { domain: string; version: number }): void {
  str(w, 1, o.domain);
  int64(w, 2, o.version);
}

// TensorProto: dims = 1 (repeated int64), data_type = 2, name = 8, raw_data = 9.
function tensor(w: Writer, t: OnnxTensor): void {
  const count = t.dims.reduce((a, b) => a * b, 1);
  if (t.dims.some((d) => !Number.isSafeInteger(d) || d < 0)) throw invalid(`tensor ${t.name} has invalid dims [${t.dims.join(', ')}]`);
  if (t.data.length !== count) throw invalid(`tensor ${t.name} has ${t.data.length} values for dims [${t.dims.join(', ')}] (${count})`);
  for (const d of t.dims) int64(w, 1, d);
  w.uint32(tag(2, VARINT)).int32(ONNX_DTYPE[t.dtype]);
  str(w, 8, t.name);
  const raw = new Uint8Array(count * (t.dtype === 'float32' ? 4 : 8));
  const view = new DataView(raw.buffer);
  for (let i = 0; i < count; i++) {
    const v = t.data[i]!;
    if (t.dtype === 'float32') view.setFloat32(i * 4, v, true);
    else {
      if (!Number.isSafeInteger(v)) throw invalid(`tensor ${t.name} holds a non-integer int64 value ${v}`);
      view.setBigInt64(i * 8, BigInt(v), true);
    }
  }
  w.uint32(tag(9, LEN)).bytes(raw);
}

// AttributeProto: name = 1, f = 2, i = 3, s = 4, t = 5, floats = 7, ints = 8, strings = 9, type = 20.
function attribute(w: Writer, a: OnnxAttribute): void {
  str(w, 1, a.name);
  switch (a.type) {
    case 'float':
      w.uint32(tag(2, FIXED32)).float(a.value);
      break;
    case 'int':
      int64(w, 3, a.value);
      break;
    case 'string':
      w.uint32(tag(4, LEN)).bytes(Buffer.from(a.value, 'utf8'));
      break;
    case 'tensor':
      message(w, 5, (m) => tensor(m, a.value));
      break;
    case 'floats':
      for (const v of a.value) w.uint32(tag(7, FIXED32)).float(v);
      break;
    case 'ints':
      for (const v of a.value) int64(w, 8, v);
      break;
    case 'strings':
      for (const v of a.value) w.uint32(tag(9, LEN)).bytes(Buffer.from(v, 'utf8'));
      break;
  }
  w.uint32(tag(20, VARINT)).int32(ATTR_TYPE[a.type]);
}

// NodeProto: input = 1, output = 2, name = 3, op_type = 4, attribute = 5, domain = 7.
function node(w: Writer, n: OnnxNode): void {
  for (const i of n.inputs) str(w, 1, i);
  for (const o of n.outputs) str(w, 2, o);
  if (n.name) str(w, 3, n.name);
  str(w, 4, n.opType);
  for (const a of n.attributes ?? []) message(w, 5, (m) => attribute(m, a));
  if (n.domain) str(w, 7, n.domain);
}

// ValueInfoProto: name = 1, type = 2, doc_string = 3.
// TypeProto: tensor_type = 1; TypeProto.Tensor: elem_type = 1, shape = 2;
// TensorShapeProto: dim = 1; Dimension: dim_value = 1, dim_param = 2.
function valueInfo(w: Writer, v: OnnxValueInfo): void {
  str(w, 1, v.name);
  message(w, 2, (type) =>
    message(type, 1, (tt) => {
      tt.uint32(tag(1, VARINT)).int32(ONNX_DTYPE[v.dtype]);
      message(tt, 2, (shape) => {
        for (const d of v.shape) {
          message(shape, 1, (dim) => {
            if (typeof d === 'string') str(dim, 2, d);
            else if (Number.isSafeInteger(d) && d >= 0) int64(dim, 1, d);
            else throw invalid(`value ${v.name} has an invalid dimension ${d} (use a string such as "N" for a dynamic one)`);
          });
        }
      });
    }),
  );
  if (v.docString) str(w, 3, v.docString);
}

// GraphProto: node = 1, name = 2, initializer = 5, doc_string = 10, input = 11, output = 12, value_info = 13.
function graph(w: Writer, g: OnnxGraph): void {
  for (const n of g.nodes) message(w, 1, (m) => node(m, n));
  str(w, 2, g.name);
  for (const t of g.initializers) message(w, 5, (m) => tensor(m, t));
  if (g.docString) str(w, 10, g.docString);
  for (const v of g.inputs) message(w, 11, (m) => valueInfo(m, v));
  for (const v of g.outputs) message(w, 12, (m) => valueInfo(m, v));
  for (const v of g.valueInfo ?? []) message(w, 13, (m) => valueInfo(m, v));
}

/** Checks that every node input is a graph input, an initializer or an earlier node's output. */
function checkGraph(g: OnnxGraph): void {
  const known = new Set<string>();
  const define = (name: string, what: string) => {
    if (!name) throw invalid(`${what} has an empty name`);
    if (known.has(name)) throw invalid(`${name} is defined twice`);
    known.add(name);
  };
  for (const v of g.inputs) define(v.name, 'a graph input');
  for (const t of g.initializers) define(t.name, 'an initializer');
  for (const n of g.nodes) {
    for (const i of n.inputs) if (i !== '' && !known.has(i)) throw invalid(`node ${n.name ?? n.opType} reads ${i}, which nothing defines before it`);
    for (const o of n.outputs) define(o, `an output of ${n.opType}`);
  }
  for (const o of g.outputs) if (!known.has(o.name)) throw invalid(`graph output ${o.name} is not produced by any node`);
}

/**
 * Encodes a ModelProto: ir_version = 1, producer_name = 2, producer_version = 3,
 * doc_string = 6, graph = 7, opset_import = 8, metadata_props = 14
 * (StringStringEntryProto: key = 1, value = 2).
 */
export function encodeOnnxModel(m: OnnxModel): Uint8Array {
  checkGraph(m.graph);
  const w = protobuf.Writer.create();
  int64(w, 1, m.irVersion ?? ONNX_IR_VERSION);
  str(w, 2, m.producerName ?? ONNX_PRODUCER);
  if (m.producerVersion) str(w, 3, m.producerVersion);
  if (m.docString) str(w, 6, m.docString);
  message(w, 7, (g) => graph(g, m.graph));
  for (const o of m.opsetImports ?? [{ domain: '', version: ONNX_OPSET }]) message(w, 8, (s) => opsetId(s, o));
  for (const key of Object.keys(m.metadata ?? {}).sort()) {
    message(w, 14, (e) => {
      str(e, 1, key);
      str(e, 2, m.metadata![key]!);
    });
  }
  return w.finish();
}
