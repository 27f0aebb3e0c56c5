/**
 * The ONNX encoder on its own: wire-level fields (decoded independently with
 * protobufjs' Reader), determinism, graph checks, and small graphs run by
 * ONNX Runtime (float32 and int64 initializers, symbolic batch dimension).
 */
import * as ort from 'onnxruntime-node';
import protobuf from 'protobufjs/minimal.js';
import { describe, expect, it } from 'vitest';
import { isAegisError } from '../errors.js';
import { encodeOnnxModel, type OnnxModel } from './onnx.js';

/** Top-level fields of a protobuf message: field number → raw values (numbers for varints, bytes for LEN). */
function fields(bytes: Uint8Array): Map<number, (number | Uint8Array)[]> {
  const r = protobuf.Reader.create(bytes);
  const out = new Map<number, (number | Uint8Array)[]>();
  while (r.pos < r.len) {
    const t = r.uint32();
    const field = t >>> 3;
    const wire = t & 7;
    let v: number | Uint8Array;
    if (wire === 0) v = Number(r.int64());
    else if (wire === 2) v = r.bytes();
    else if (wire === 5) v = r.float();
    else throw new Error(`unexpected wire type ${wire}`);
    out.set(field, [...(out.get(field) ?? []), v]);
  }
  return out;
}

const text = (v: number | Uint8Array | undefined) => Buffer.from(v as Uint8Array).toString('utf8');

/** y = x + bias, x float32 [N, 3]. */
function addModel(bias: number[]): OnnxModel {
  return {
    graph: {
      name: 'add',
      nodes: [{ opType: 'Add', name: 'add', inputs: ['x', 'bias'], outputs: ['y'] }],
      initializers: [{ name: 'bias', dtype: 'float32', dims: [3], data: Float32Array.from(bias) }],
      inputs: [{ name: 'x', dtype: 'float32', shape: ['N', 3] }],
      outputs: [{ name: 'y', dtype: 'float32', shape: ['N', 3] }],
    },
  };
}

describe('encodeOnnxModel', () => {
  it('writes ir_version 8, producer "aegis", the graph and opset 17 of the default domain', () => {
    const top = fields(encodeOnnxModel({ ...addModel([1, 2, 3]), metadata: { b: '2', a: '1' } }));
    expect(top.get(1)).toEqual([8]); // ir_version
    expect(text(top.get(2)?.[0])).toBe('aegis'); // producer_name
    const opsets = top.get(8)!.map((o) => fields(o as Uint8Array));
    expect(opsets).toHaveLength(1);
    expect(text(opsets[0]!.get(1)?.[0])).toBe(''); // domain
    expect(opsets[0]!.get(2)).toEqual([17]); // version
    // metadata_props sorted by key
    expect(top.get(14)!.map((e) => text(fields(e as Uint8Array).get(1)?.[0]))).toEqual(['a', 'b']);

    const graph = fields(top.get(7)![0] as Uint8Array);
    expect(text(graph.get(2)?.[0])).toBe('add');
    const init = fields(graph.get(5)![0] as Uint8Array);
    expect(init.get(1)).toEqual([3]); // dims
    expect(init.get(2)).toEqual([1]); // FLOAT
    expect(text(init.get(8)?.[0])).toBe('bias');
    const raw = Buffer.from(init.get(9)![0] as Uint8Array);
    expect([raw.readFloatLE(0), raw.readFloatLE(4), raw.readFloatLE(8)]).toEqual([1, 2, 3]); // little-endian raw_data

    // input x: TypeProto.tensor_type { elem_type FLOAT, shape { dim { dim_param "N" } dim { dim_value 3 } } }
    const input = fields(graph.get(11)![0] as Uint8Array);
    expect(text(input.get(1)?.[0])).toBe('x');
    const tensorType = fields(fields(input.get(2)![0] as Uint8Array).get(1)![0] as Uint8Array);
    expect(tensorType.get(1)).toEqual([1]);
    const dims = fields(tensorType.get(2)![0] as Uint8Array).get(1)!.map((d) => fields(d as Uint8Array));
    expect(text(dims[0]!.get(2)?.[0])).toBe('N');
    expect(dims[1]!.get(1)).toEqual([3]);
  });

  it('is deterministic: the same model gives the same bytes, other weights other bytes', () => {
    const a = encodeOnnxModel(addModel([0.5, -1, 2]));
    expect(Buffer.from(encodeOnnxModel(addModel([0.5, -1, 2]))).equals(Buffer.from(a))).toBe(true);
    expect(Buffer.from(encodeOnnxModel(addModel([0.5, -1, 2.0001]))).equals(Buffer.from(a))).toBe(false);
  });

  it('runs in ONNX Runtime with a dynamic batch', async () => {
    const session = await ort.InferenceSession.create(encodeOnnxModel(addModel([1, 2, 3])));
    try {
      const out = await session.run({ x: new ort.Tensor('float32', Float32Array.from([0, 0, 0, 10, 20, 30]), [2, 3]) });
      expect(out.y!.dims).toEqual([2, 3]);
      expect(Array.from(out.y!.data as Float32Array)).toEqual([1, 2, 3, 11, 22, 33]);
    } finally {
      await session.release();
    }
  });

  it('encodes int64 initializers and int/ints attributes that ONNX Runtime accepts', async () => {
    // Reshape x [N, 6] to [N, 2, 3] with an int64 shape tensor, then Transpose perm [0, 2, 1].
    const model: OnnxModel = {
      graph: {
        name: 'reshape',
        nodes: [
          { opType: 'Reshape', inputs: ['x', 'shape'], outputs: ['r'], attributes: [{ name: 'allowzero', type: 'int', value: 0 }] },
          { opType: 'Transpose', inputs: ['r'], outputs: ['y'], attributes: [{ name: 'perm', type: 'ints', value: [0, 2, 1] }] },
        ],
        initializers: [{ name: 'shape', dtype: 'int64', dims: [3], data: [-1, 2, 3] }],
        inputs: [{ name: 'x', dtype: 'float32', shape: ['N', 6] }],
        outputs: [{ name: 'y', dtype: 'float32', shape: ['N', 3, 2] }],
      },
    };
    const session = await ort.InferenceSession.create(encodeOnnxModel(model));
    try {
      const out = await session.run({ x: new ort.Tensor('float32', Float32Array.from([1, 2, 3, 4, 5, 6]), [1, 6]) });
      expect(out.y!.dims).toEqual([1, 3, 2]);
      expect(Array.from(out.y!.data as Float32Array)).toEqual([1, 4, 2, 5, 3, 6]);
    } finally {
      await session.release();
    }
  });

  it('refuses inconsistent graphs with ONNX_INVALID', () => {
    const refuses = (m: OnnxModel, text: string) => {
      let err: unknown;
      try {
        encodeOnnxModel(m);
      } catch (e) {
        err = e;
      }
      expect(isAegisError(err, 'ONNX_INVALID'), String(err)).toBe(true);
      expect((err as Error).message).toContain(text);
    };
    const base = addModel([1, 2, 3]);
    refuses({ graph: { ...base.graph, initializers: [{ name: 'bias', dtype: 'float32', dims: [4], data: new Float32Array(3) }] } }, '3 values for dims [4]');
    refuses({ graph: { ...base.graph, nodes: [{ opType: 'Add', inputs: ['x', 'nope'], outputs: ['y'] }] } }, 'reads nope');
    refuses({ graph: { ...base.graph, outputs: [{ name: 'z', dtype: 'float32', shape: ['N', 3] }] } }, 'graph output z');
    refuses({ graph: { ...base.graph, inputs: [{ name: 'x', dtype: 'float32', shape: [-1, 3] }] } }, 'invalid dimension -1');
    refuses({ graph: { ...base.graph, inputs: [...base.graph.inputs, { name: 'bias', dtype: 'float32', shape: [3] }] } }, 'bias is defined twice');
  });
});
