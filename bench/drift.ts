/**
 * `npm run bench -- drift`: the drift monitor's cost, each figure against a
 * baseline measured in the same run on the same data.
 *
 *  1. Folding rows into the sliding windows (the request-path cost):
 *     DriftMonitor.observe on the example model's inputs (image 64 + text 16
 *     floats per row) one row per request and 100-row batches, and on a
 *     50-feature input; baseline: a plain loop summing the same floats.
 *  2. Testing a full 100k-row × 50-feature window (normed Wasserstein, KS,
 *     PSI; and 50 categorical features with Jensen–Shannon); baseline:
 *     sorting the same 50 columns (what any quantile-based test must do).
 *  3. The model server in-process (fastify inject, OIP v2, the example model):
 *     requests/s with the drift monitor on vs off.
 * Options: --rows=N (window rows, default 100000), --features=N (default 50).
 */
import { join } from 'node:path';
import { DETECT_DEFAULTS, detect, type DetectSettings } from '../src/drift/detect.js';
import { DriftMonitor } from '../src/drift/monitor.js';
import { compileReference, type Reference } from '../src/drift/reference.js';
import { RowWindow } from '../src/drift/window.js';
import { fetchAndVerifyModel } from '../src/serving/fetch.js';
import { OnnxRuntime } from '../src/serving/runtime/onnx/index.js';
import { ModelServer } from '../src/serving/server.js';
import { generateKeyPair, parsePrivateKey, parsePublicKey } from '../src/signing/keys.js';
import { packageModel } from '../src/signing/package.js';
import { PemKeySigner } from '../src/signing/pem/index.js';
import { EXAMPLE_MODEL } from '../src/training/example.js';
import { buildProfile, formatProfile } from '../src/training/profile.js';
import { readManifest } from '../src/artifact/manifest.js';
import { loadReference } from '../src/drift/reference.js';
import { tempDir } from '../src/test-support/fs.js';
import { median, table } from './lib.js';

/** Deterministic floats (xorshift32), some features shifted and scaled so every test has work. */
function synthetic(rows: number, features: number, seed: number, shift = 0): Float32Array {
  const out = new Float32Array(rows * features);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < out.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const u = (x >>> 0) / 4294967296;
    const j = i % features;
    out[i] = (u + ((x >>> 3) % 1000) / 1000) * (1 + j / features) + (j % 2 === 0 ? shift : 0);
  }
  return out;
}

function syntheticReference(features: number, categorical: boolean): Reference {
  const rows = 5000;
  const data = synthetic(rows, features, 7);
  if (categorical) for (let i = 0; i < data.length; i++) data[i] = Math.floor(data[i]! * 4) % 12;
  const profile = buildProfile({ model: { name: 'bench', version: '1' }, dataset: { uri: 'bench', split: 'train' }, features: [{ name: 'x', dtype: 'float32', shape: [features] }], data: [data], rows });
  return compileReference(formatProfile(profile), 'bench profile', { inputs: [{ name: 'x', dtype: 'float32', shape: [-1, features] }], outputs: [{ name: 'y', dtype: 'float32', shape: [-1, 1] }] });
}

function rate(rows: number, seconds: number): string {
  return rows / seconds >= 1e6 ? `${(rows / seconds / 1e6).toFixed(2)} M rows/s` : `${(rows / seconds / 1e3).toFixed(1)} k rows/s`;
}

async function foldBench(): Promise<(string | number)[][]> {
  const manifest = await readManifest(EXAMPLE_MODEL);
  const ref = (await loadReference(EXAMPLE_MODEL, manifest))!;
  const rows = 200_000;
  const image = synthetic(rows, 64, 1);
  const text = synthetic(rows, 16, 2);
  const out: (string | number)[][] = [['fold', 'drift monitor', 'baseline: sum the floats', 'ratio (monitor / baseline time)']];
  for (const batch of [1, 100]) {
    const monitor = new DriftMonitor({ reference: ref, model: { name: 'b', version: '1' } });
    // the requests' tensors exist before the fold, as in the server
    const reqs = Array.from({ length: rows / batch }, (_, i) => ({
      image: { dims: [batch, 1, 8, 8], data: image.subarray(i * batch * 64, (i + 1) * batch * 64) },
      text: { dims: [batch, 16], data: text.subarray(i * batch * 16, (i + 1) * batch * 16) },
    }));
    const probs = Array.from({ length: rows / batch }, () => ({ probabilities: { dims: [batch, 3], data: new Float32Array(batch * 3).fill(1 / 3) } }));
    const t = await median(5, async () => {
      for (let i = 0; i < reqs.length; i++) monitor.observe(reqs[i]!, probs[i]!);
    });
    let sink = 0;
    const b = await median(5, async () => {
      let s = 0;
      for (const r of reqs) {
        const a = r.image.data;
        for (let i = 0; i < a.length; i++) s += a[i]!;
        const c = r.text.data;
        for (let i = 0; i < c.length; i++) s += c[i]!;
      }
      sink += s;
    });
    if (sink === 42) process.stdout.write('');
    out.push([`example model, ${batch} row${batch > 1 ? 's' : ''}/request (80 floats/row + prediction)`, `${rate(rows, t)} (${((t / reqs.length) * 1e9).toFixed(0)} ns/request)`, rate(rows, b), `${(t / b).toFixed(2)}x`]);
  }
  return out;
}

async function testBench(rows: number, features: number): Promise<(string | number)[][]> {
  const out: (string | number)[][] = [[`test a ${rows / 1000}k × ${features} window`, 'detect()', 'baseline: sort the columns', 'ratio']];
  const sortOnly = (w: RowWindow) => () => {
    const col = new Float32Array(w.rows);
    for (let j = 0; j < features; j++) {
      w.column(j, col);
      col.sort();
    }
    return Promise.resolve();
  };
  const cases: [string, boolean, Partial<DetectSettings>][] = [
    ['numeric, normed Wasserstein (default)', false, {}],
    ['numeric, KS', false, { numericMethod: 'ks' }],
    ['numeric, PSI', false, { numericMethod: 'psi' }],
    ['categorical (12 values), Jensen-Shannon', true, {}],
  ];
  for (const [name, categorical, s] of cases) {
    const ref = syntheticReference(features, categorical);
    const w = new RowWindow(rows, features);
    const data = synthetic(rows, features, 3, 0.05);
    if (categorical) for (let i = 0; i < data.length; i++) data[i] = Math.floor(data[i]! * 4) % 12;
    w.push(data, rows);
    const settings = { ...DETECT_DEFAULTS, ...s };
    let drifted = 0;
    const t = await median(3, async () => {
      drifted = (await detect(ref, [w], settings))!.share.drifted;
    });
    const b = await median(3, sortOnly(w));
    out.push([`${name} (${drifted} of ${features} drifted)`, `${(t * 1000).toFixed(0)} ms`, `${(b * 1000).toFixed(0)} ms`, `${(t / b).toFixed(2)}x`]);
  }
  return out;
}

export async function serverBench(rounds = 20): Promise<(string | number)[][]> {
  const work = await tempDir('aegis-bench-drift-');
  try {
    const pair = generateKeyPair('p256');
    const pkg = await packageModel({ modelDir: EXAMPLE_MODEL, signer: new PemKeySigner(parsePrivateKey(pair.privateKeyPem, 'bench')), outDir: join(work.path, 'dist') });
    const trust = { kind: 'publicKey' as const, key: parsePublicKey(pair.publicKeyPem, 'bench'), source: 'bench key' };
    const make = async (drift: false | undefined) => {
      const s = new ModelServer({ runtime: new OnnxRuntime(), source: (uri, expect) => fetchAndVerifyModel({ uri, trust, cacheDir: join(work.path, 'cache'), ...(expect ? { expect } : {}) }), ...(drift === false ? { drift } : {}) });
      await s.load(pkg.archive);
      return s;
    };
    const on = await make(undefined);
    const off = await make(false);
    const image = synthetic(1, 64, 5);
    const payload = JSON.stringify({
      inputs: [
        { name: 'image', shape: [1, 1, 8, 8], datatype: 'FP32', data: Array.from(image) },
        { name: 'text', shape: [1, 16], datatype: 'FP32', data: [0, 1, 0, 2, 0, 0, 1, 0, 0, 0, 3, 0, 0, 1, 0, 0] },
      ],
    });
    const n = 2000;
    const run = (s: ModelServer) => async () => {
      for (let i = 0; i < n; i++) await s.app.inject({ method: 'POST', url: '/v2/models/example_multimodal/infer', headers: { 'content-type': 'application/json' }, payload });
    };
    await run(on)();
    await run(off)();
    // Interleaved rounds (order alternating) so both see the same machine load; wall time and this
    // process's CPU time (less sensitive to other processes on the shared cores).
    const wall = { on: [] as number[], off: [] as number[] };
    const cpu = { on: [] as number[], off: [] as number[] };
    const ratios: number[] = [];
    const cpuRatios: number[] = [];
    for (let k = 0; k < rounds; k++) {
      const order = k % 2 === 0 ? (['on', 'off'] as const) : (['off', 'on'] as const);
      for (const name of order) {
        const c = process.cpuUsage();
        const t = performance.now();
        await run(name === 'on' ? on : off)();
        wall[name].push((performance.now() - t) / 1000);
        const used = process.cpuUsage(c);
        cpu[name].push((used.user + used.system) / 1e6);
      }
      ratios.push(wall.off[k]! / wall.on[k]!);
      cpuRatios.push(cpu.on[k]! / cpu.off[k]!);
    }
    const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
    await on.close();
    await off.close();
    return [
      [`model server (inject, OIP v2, 1 row/request, ${rounds} interleaved rounds of ${n})`, 'drift on', 'drift off (baseline)', 'on / off'],
      ['throughput (median round)', `${(n / med(wall.on)).toFixed(0)} req/s`, `${(n / med(wall.off)).toFixed(0)} req/s`, `${med(ratios).toFixed(3)}x (rounds ${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)})`],
      ['CPU per request (median round)', `${((med(cpu.on) / n) * 1e6).toFixed(1)} µs`, `${((med(cpu.off) / n) * 1e6).toFixed(1)} µs`, `${med(cpuRatios).toFixed(3)}x (rounds ${Math.min(...cpuRatios).toFixed(2)}-${Math.max(...cpuRatios).toFixed(2)})`],
    ];
  } finally {
    await work.cleanup();
  }
}

export async function main(args: string[]): Promise<void> {
  const rows = Number(args.find((a) => a.startsWith('--rows='))?.slice(7) ?? 100_000);
  const features = Number(args.find((a) => a.startsWith('--features='))?.slice(11) ?? 50);
  process.stdout.write('drift benchmark (each row against a baseline measured in the same run; medians)\n\n');
  process.stdout.write(table(await foldBench()) + '\n\n');
  process.stdout.write(table(await testBench(rows, features)) + '\n\n');
  process.stdout.write(table(await serverBench()) + '\n');
}
