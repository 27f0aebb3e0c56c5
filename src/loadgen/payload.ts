/**
 * Deliberately malformed requests for `--error-rate`, derived from the valid
 * payload so they reach the same code paths a real client's mistakes do.
 */

export type MalformedKind = 'invalid-json' | 'wrong-input-name' | 'wrong-shape' | 'not-an-object';

export interface MalformedBody {
  kind: MalformedKind;
  body: Buffer;
}

/** mulberry32: a small, fast, seeded PRNG; the same seed gives the same sequence on every machine. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Wraps the innermost value in one more array level: a valid tensor gains a dimension. */
function addDimension(v: unknown): unknown {
  return [v];
}

/**
 * The malformed variants of `payload`. Any payload gets invalid JSON (it is
 * cut short) and a JSON value that is not an object; a payload with inputs in
 * the simple `/infer` form (`{"inputs": {"name": [[…]]}}`) or the Open
 * Inference Protocol form (`{"inputs": [{"name", "shape", "datatype", "data"}]}`)
 * also gets its first input renamed and its first input given one more
 * dimension than the model takes.
 */
export function malformedBodies(payload: Buffer | undefined): MalformedBody[] {
  const text = payload?.toString('utf8') ?? '';
  const cut = text.length > 2 ? text.slice(0, Math.max(1, Math.floor(text.length / 2))) : '{"inputs": ';
  const out: MalformedBody[] = [
    { kind: 'invalid-json', body: Buffer.from(cut) },
    { kind: 'not-an-object', body: Buffer.from('["aegis-loadgen: deliberately malformed"]') },
  ];
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return out;
  }
  const inputs = (doc as { inputs?: unknown } | null)?.inputs;
  const json = (v: unknown) => Buffer.from(JSON.stringify(v));
  if (inputs && typeof inputs === 'object' && !Array.isArray(inputs)) {
    const entries = Object.entries(inputs as Record<string, unknown>);
    const first = entries[0];
    if (first) {
      const renamed = Object.fromEntries(entries.map(([k, v], i) => [i === 0 ? `${k}__aegis_no_such_input` : k, v]));
      out.push({ kind: 'wrong-input-name', body: json({ ...(doc as object), inputs: renamed }) });
      const reshaped = Object.fromEntries(entries.map(([k, v], i) => [k, i === 0 ? addDimension(v) : v]));
      out.push({ kind: 'wrong-shape', body: json({ ...(doc as object), inputs: reshaped }) });
    }
  } else if (Array.isArray(inputs) && inputs.length > 0 && inputs[0] && typeof inputs[0] === 'object') {
    const first = inputs[0] as { name?: unknown; shape?: unknown };
    const rest = inputs.slice(1);
    out.push({ kind: 'wrong-input-name', body: json({ ...(doc as object), inputs: [{ ...first, name: `${String(first.name)}__aegis_no_such_input` }, ...rest] }) });
    if (Array.isArray(first.shape)) {
      out.push({ kind: 'wrong-shape', body: json({ ...(doc as object), inputs: [{ ...first, shape: [...first.shape, 1] }, ...rest] }) });
    }
  }
  return out;
}
