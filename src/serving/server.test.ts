/**
 * The model server in-process (fastify inject, no sockets): every OIP v2
 * endpoint and error path, bad input never reaching the runtime, metrics,
 * hot swap (including under concurrent requests and refusals), shutdown.
 * Uses the real example ONNX model, packaged and signed in a temp folder.
 */
import { cp, readFile, writeFile, appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXAMPLE_MODEL } from '../training/example.js';
import { generateKeyPair, parsePrivateKey, parsePublicKey } from '../signing/keys.js';
import { packageModel } from '../signing/package.js';
import { PemKeySigner } from '../signing/pem/index.js';
import type { TrustAnchor } from '../signing/trust.js';
import { tempDir } from '../test-support/fs.js';
import { fetchAndVerifyModel } from './fetch.js';
import { OnnxRuntime } from './runtime/onnx/index.js';
import type { LoadedModel, ModelRuntime } from './runtime/types.js';
import { ModelServer } from './server.js';

const pair = generateKeyPair('p256');
const signer = new PemKeySigner(parsePrivateKey(pair.privateKeyPem, 'test'));
const trust: TrustAnchor = { kind: 'publicKey', key: parsePublicKey(pair.publicKeyPem, 'test'), source: 'test key' };
let work: Awaited<ReturnType<typeof tempDir>>;
let v01: string;
let v02: string;

/** Counts runtime calls, to prove bad requests never reach it. */
class CountingRuntime implements ModelRuntime {
  readonly platform = 'onnxruntime_onnx';
  runs = 0;
  readonly inner = new OnnxRuntime();
  async load(dir: string, manifest: Parameters<ModelRuntime['load']>[1]): Promise<LoadedModel> {
    const m = await this.inner.load(dir, manifest);
    return {
      run: (inputs, outs) => {
        this.runs++;
        return m.run(inputs, outs);
      },
      close: () => m.close(),
    };
  }
}

async function packageVersion(version: string): Promise<string> {
  const dir = join(work.path, `model-${version}`);
  await cp(EXAMPLE_MODEL, dir, { recursive: true });
  const manifest = await readFile(join(dir, 'aegis.yaml'), 'utf8');
  await writeFile(join(dir, 'aegis.yaml'), manifest.replace(/^version: .*$/m, `version: "${version}"`));
  return (await packageModel({ modelDir: dir, signer, outDir: join(work.path, `dist-${version}`) })).archive;
}

beforeAll(async () => {
  work = await tempDir('aegis-server-');
  v01 = await packageVersion('0.1');
  v02 = await packageVersion('0.2');
});
afterAll(async () => work.cleanup());

function makeServer(runtime: ModelRuntime = new CountingRuntime(), bodyLimit?: number, repositoryLoad?: { token: string } | false) {
  return new ModelServer({
    runtime,
    source: (uri, expect) => fetchAndVerifyModel({ uri, trust, cacheDir: join(work.path, 'cache'), ...(expect ? { expect } : {}) }),
    ...(bodyLimit ? { bodyLimit } : {}),
    ...(repositoryLoad !== undefined ? { repositoryLoad } : {}),
  });
}

const image = (v = 0.5) => Array.from({ length: 64 }, (_, i) => ((i % 7) / 7) * v);
const text = () => [0, 1, 0, 2, 0, 0, 1, 0, 0, 0, 3, 0, 0, 1, 0, 0];
const oip = (over: Record<string, unknown> = {}) => ({
  id: 'req-1',
  inputs: [
    { name: 'image', shape: [1, 1, 8, 8], datatype: 'FP32', data: image() },
    { name: 'text', shape: [1, 16], datatype: 'FP32', data: text() },
  ],
  ...over,
});

describe('model server', () => {
  let server: ModelServer;
  let runtime: CountingRuntime;
  beforeAll(async () => {
    runtime = new CountingRuntime();
    server = makeServer(runtime, 64 * 1024);
    const ready = await server.app.inject({ method: 'GET', url: '/v2/health/ready' });
    expect(ready.statusCode).toBe(503); // nothing loaded yet
    await server.load(v01);
  });
  afterAll(async () => server.close());

  const post = (url: string, body: unknown) => server.app.inject({ method: 'POST', url, payload: body as Record<string, unknown> });

  it('answers the health, server and model metadata endpoints', async () => {
    for (const url of ['/v2/health/live', '/v2/health/ready', '/healthz', '/readyz']) expect((await server.app.inject({ url })).statusCode).toBe(200);
    expect((await server.app.inject({ url: '/v2' })).json()).toMatchObject({ name: 'aegis', extensions: ['model_repository'] });
    const meta = (await server.app.inject({ url: '/v2/models/example_multimodal' })).json();
    expect(meta).toMatchObject({
      name: 'example_multimodal',
      versions: ['0.1'],
      platform: 'onnxruntime_onnx',
      inputs: [
        { name: 'image', datatype: 'FP32', shape: [-1, 1, 8, 8] },
        { name: 'text', datatype: 'FP32', shape: [-1, 16] },
      ],
      outputs: [{ name: 'probabilities', datatype: 'FP32', shape: [-1, 3] }],
    });
    expect((await server.app.inject({ url: '/v2/models/example_multimodal/versions/0.1' })).statusCode).toBe(200);
    expect((await server.app.inject({ url: '/v2/models/example_multimodal/ready' })).json()).toMatchObject({ ready: true, version: '0.1' });
    expect((await server.app.inject({ url: '/v2/models/example_multimodal/versions/0.1/ready' })).statusCode).toBe(200);
  });

  it('404s unknown models, versions and routes with an error body', async () => {
    for (const url of ['/v2/models/nope', '/v2/models/example_multimodal/versions/9.9', '/v2/models/nope/ready', '/nope']) {
      const r = await server.app.inject({ url });
      expect(r.statusCode, url).toBe(404);
      expect(typeof r.json().error).toBe('string');
    }
    expect((await post('/v2/models/nope/infer', oip())).statusCode).toBe(404);
    expect((await post('/v2/models/example_multimodal/versions/9.9/infer', oip())).statusCode).toBe(404);
  });

  it('infers over OIP v2: class probabilities, id echoed, version path, flat or nested data', async () => {
    for (const url of ['/v2/models/example_multimodal/infer', '/v2/models/example_multimodal/versions/0.1/infer']) {
      const r = await post(url, oip());
      expect(r.statusCode, r.body).toBe(200);
      const body = r.json();
      expect(body).toMatchObject({ model_name: 'example_multimodal', model_version: '0.1', id: 'req-1' });
      const [out] = body.outputs;
      expect(out).toMatchObject({ name: 'probabilities', datatype: 'FP32', shape: [1, 3] });
      expect(out.data.reduce((a: number, b: number) => a + b, 0)).toBeCloseTo(1, 5);
    }
    const nestedData = oip({
      inputs: [
        { name: 'image', shape: [1, 1, 8, 8], datatype: 'FP32', data: [[[Array.from({ length: 8 }, () => 0.1), ...Array.from({ length: 7 }, () => Array(8).fill(0.2))]]] },
        { name: 'text', shape: [1, 16], datatype: 'FP32', data: [text()] },
      ],
    });
    expect((await post('/v2/models/example_multimodal/infer', nestedData)).statusCode).toBe(200);
    const batch = oip({
      inputs: [
        { name: 'image', shape: [3, 1, 8, 8], datatype: 'FP32', data: [...image(), ...image(0.1), ...image(0.9)] },
        { name: 'text', shape: [3, 16], datatype: 'FP32', data: [...text(), ...text(), ...text()] },
      ],
      outputs: [{ name: 'probabilities' }],
      parameters: { trace: 'abc' },
    });
    const r = await post('/v2/models/example_multimodal/infer', batch);
    expect(r.json().outputs[0].shape).toEqual([3, 3]);
    expect(r.json().parameters).toEqual({ trace: 'abc' });
  });

  it('infers over the runbook form POST /infer with nested arrays', async () => {
    const body = JSON.parse(await readFile(new URL('../../examples/requests/example_multimodal.json', import.meta.url), 'utf8'));
    const r = await post('/infer', body);
    expect(r.statusCode, r.body).toBe(200);
    const out = r.json().outputs.probabilities;
    expect(out).toHaveLength(1);
    expect(out[0]).toHaveLength(3);
  });

  it('refuses bad input with 400 naming the input and what was expected, before the runtime', async () => {
    const before = runtime.runs;
    const cases: [unknown, RegExp][] = [
      [{}, /"inputs" must be a non-empty array/],
      [oip({ inputs: [oip().inputs[0]] }), /missing input text/],
      [oip({ inputs: [...oip().inputs, { name: 'extra', shape: [1], datatype: 'FP32', data: [1] }] }), /unknown input "extra"; the model takes image, text/],
      [oip({ inputs: [{ ...oip().inputs[0], datatype: 'INT64' }, oip().inputs[1]] }), /input image: datatype INT64, expected FP32/],
      [oip({ inputs: [{ ...oip().inputs[0], datatype: 'FLOAT' }, oip().inputs[1]] }), /not an OIP datatype/],
      [oip({ inputs: [{ ...oip().inputs[0], shape: [1, 8, 8] }, oip().inputs[1]] }), /input image: shape \[1, 8, 8\] has 3 dimensions, expected 4/],
      [oip({ inputs: [{ ...oip().inputs[0], shape: [1, 1, 8, 9] }, oip().inputs[1]] }), /input image: dimension 3 is 9, expected 8/],
      [oip({ inputs: [{ ...oip().inputs[0], data: image().slice(1) }, oip().inputs[1]] }), /input image: 63 data elements for shape \[1, 1, 8, 8\] \(64 expected\)/],
      [oip({ inputs: [{ ...oip().inputs[0], data: [...image().slice(1), 'x'] }, oip().inputs[1]] }), /element 63 is "x", expected a number/],
      [oip({ inputs: [{ ...oip().inputs[0], shape: [2, 1, 8, 8], data: [...image(), ...image()] }, oip().inputs[1]] }), /disagree on the batch size/],
      [oip({ outputs: [{ name: 'logits' }] }), /unknown output "logits"/],
    ];
    for (const [body, message] of cases) {
      const r = await post('/v2/models/example_multimodal/infer', body);
      expect(r.statusCode, JSON.stringify(body).slice(0, 80)).toBe(400);
      expect(r.json().error).toMatch(message);
    }
    const simple: [unknown, RegExp][] = [
      [{ inputs: [1, 2] }, /must be an object mapping each input name/],
      [{ inputs: { image: [[[[1, 2], [3]]]], text: [text()] } }, /ragged/],
      [{ inputs: { image: [[image()]], text: [text()] } }, /input image: shape \[1, 1, 64\]/],
    ];
    for (const [body, message] of simple) {
      const r = await post('/infer', body);
      expect(r.statusCode).toBe(400);
      expect(r.json().error).toMatch(message);
    }
    const garbage = await server.app.inject({ method: 'POST', url: '/infer', headers: { 'content-type': 'application/json' }, payload: '{"inputs": ' });
    expect(garbage.statusCode).toBe(400);
    expect(runtime.runs).toBe(before);
  });

  it('answers 413 for a body over the limit', async () => {
    const big = oip({ pad: 'x'.repeat(100 * 1024) });
    const r = await post('/v2/models/example_multimodal/infer', big);
    expect(r.statusCode).toBe(413);
    expect(r.json().error).toMatch(/larger than the 65536-byte limit/);
  });

  it('exports Prometheus metrics that change as requests arrive', async () => {
    const count = async (code: string) => {
      const text = (await server.app.inject({ url: '/metrics' })).body;
      const m = new RegExp(`aegis_inference_requests_total\\{model="example_multimodal",version="0.1",track="stable",code="${code}"\\} (\\d+)`).exec(text);
      return m ? Number(m[1]) : 0;
    };
    const ok0 = await count('200');
    const bad0 = await count('400');
    await post('/v2/models/example_multimodal/infer', oip());
    await post('/v2/models/example_multimodal/infer', {});
    expect(await count('200')).toBe(ok0 + 1);
    expect(await count('400')).toBe(bad0 + 1);
    const text = (await server.app.inject({ url: '/metrics' })).body;
    expect(text).toMatch(/aegis_model_info\{model="example_multimodal",version="0.1",digest="[0-9a-f]{64}",signer="[0-9a-f]{64}"\} 1/);
    expect(text).toMatch(/aegis_model_load_total\{outcome="success"\} 1/);
    expect(text).toMatch(/aegis_inference_request_duration_seconds_bucket\{le="0.00025",model="example_multimodal",version="0.1",track="stable"\}/);
    expect(text).toContain('process_cpu_user_seconds_total');
  });

  it('counts requests under the track it is set to from then on (a pod Argo promoted: canary → stable)', async () => {
    const count = async (track: string) => {
      const text = (await server.app.inject({ url: '/metrics' })).body;
      const m = new RegExp(`aegis_inference_requests_total\\{model="example_multimodal",version="0.1",track="${track}",code="200"\\} (\\d+)`).exec(text);
      return m ? Number(m[1]) : 0;
    };
    const [stable0, canary0] = [await count('stable'), await count('canary')];
    try {
      server.setTrack('canary');
      expect(server.track).toBe('canary');
      await post('/v2/models/example_multimodal/infer', oip());
      expect([await count('stable'), await count('canary')]).toEqual([stable0, canary0 + 1]);
    } finally {
      server.setTrack('stable');
    }
    await post('/v2/models/example_multimodal/infer', oip());
    expect([await count('stable'), await count('canary')]).toEqual([stable0 + 1, canary0 + 1]);
  });
});

describe('hot swap', () => {
  it('switches to a new version with zero failed requests while requests keep arriving', async () => {
    const server = makeServer();
    await server.load(v01);
    let stop = false;
    const codes: number[] = [];
    const versions = new Set<string>();
    const traffic = (async () => {
      while (!stop) {
        const batch = await Promise.all(
          Array.from({ length: 8 }, () => server.app.inject({ method: 'POST', url: '/v2/models/example_multimodal/infer', payload: oip() })),
        );
        for (const r of batch) {
          codes.push(r.statusCode);
          if (r.statusCode === 200) versions.add(r.json().model_version);
        }
      }
    })();
    await new Promise((r) => setTimeout(r, 50));
    const r = await server.app.inject({ method: 'POST', url: '/v2/repository/models/example_multimodal/load', payload: { uri: v02 } });
    expect(r.statusCode, r.body).toBe(200);
    expect(r.json()).toMatchObject({ loaded: true, version: '0.2', previous: { version: '0.1' } });
    await new Promise((r) => setTimeout(r, 50));
    stop = true;
    await traffic;
    expect(codes.length).toBeGreaterThan(16);
    expect(codes.filter((c) => c !== 200)).toEqual([]);
    expect([...versions].sort()).toEqual(['0.1', '0.2']);
    const metrics = (await server.app.inject({ url: '/metrics' })).body;
    expect(metrics).toMatch(/aegis_model_info\{model="example_multimodal",version="0.2"/);
    expect(metrics).not.toMatch(/aegis_model_info\{model="example_multimodal",version="0.1"/);
    await server.close();
  });

  it('keeps the old version serving when the new archive is tampered, and says why', async () => {
    const server = makeServer();
    await server.load(v01);
    const tampered = join(work.path, 'tampered.tar.gz');
    await cp(v02, tampered);
    await cp(`${v02}.sig`, `${tampered}.sig`);
    await appendFile(tampered, 'x');
    const r = await server.app.inject({ method: 'POST', url: '/v2/repository/models/example_multimodal/load', payload: { uri: tampered } });
    expect(r.statusCode).toBe(422);
    expect(r.json()).toMatchObject({ loaded: false, code: 'ARCHIVE_SIGNATURE_INVALID', serving: { version: '0.1' } });
    const after = await server.app.inject({ method: 'POST', url: '/v2/models/example_multimodal/infer', payload: oip() });
    expect(after.json().model_version).toBe('0.1');
    expect((await server.app.inject({ url: '/metrics' })).body).toMatch(/aegis_model_load_total\{outcome="failure"\} 1/);
    await server.close();
  });

  it('refuses a version that is not the one asked for (downgrade/swap)', async () => {
    const server = makeServer();
    await server.load(v02);
    const r = await server.app.inject({ method: 'POST', url: '/v2/repository/models/example_multimodal/load', payload: { uri: v01, version: '0.3' } });
    expect(r.json()).toMatchObject({ loaded: false, code: 'MODEL_IDENTITY_MISMATCH' });
    await server.close();
  });

  it('refuses to start on a tampered archive', async () => {
    const tampered = join(work.path, 'tampered-start.tar.gz');
    await cp(v01, tampered);
    await cp(`${v01}.sig`, `${tampered}.sig`);
    await appendFile(tampered, 'x');
    const server = makeServer();
    await expect(server.load(tampered)).rejects.toMatchObject({ code: 'ARCHIVE_SIGNATURE_INVALID' });
    expect(server.ready).toBe(false);
    await server.close();
  });

  it('hot swap needs the admin token when one is set (401, nothing loaded), and is refused when turned off (403)', async () => {
    const guarded = makeServer(new CountingRuntime(), undefined, { token: 'admin-token-0123456789' });
    await guarded.load(v01);
    const load = (headers: Record<string, string> = {}) => guarded.app.inject({ method: 'POST', url: '/v2/repository/models/example_multimodal/load', headers, payload: { uri: v02 } });
    const none = await load();
    expect(none.statusCode).toBe(401);
    expect(none.headers['www-authenticate']).toMatch(/^Bearer/);
    expect((await load({ authorization: 'Bearer wrong-token-0123456789' })).statusCode).toBe(401);
    expect(guarded.current).toMatchObject({ version: '0.1' });
    const ok = await load({ authorization: 'Bearer admin-token-0123456789' });
    expect(ok.json()).toMatchObject({ loaded: true, version: '0.2' });
    await guarded.close();

    const managed = makeServer(new CountingRuntime(), undefined, false);
    await managed.load(v01);
    const off = await managed.app.inject({ method: 'POST', url: '/v2/repository/models/example_multimodal/load', payload: { uri: v02 } });
    expect(off.statusCode).toBe(403);
    expect(off.json().hint).toMatch(/aegis rollout start/);
    expect(managed.current).toMatchObject({ version: '0.1' });
    await managed.close();
  });

  it('refuses a load request without a uri', async () => {
    const server = makeServer();
    await server.load(v01);
    const r = await server.app.inject({ method: 'POST', url: '/v2/repository/models/example_multimodal/load', payload: {} });
    expect(r.statusCode).toBe(400);
    await server.close();
  });
});

describe('shutdown', () => {
  it('lets a request in flight finish, then stops being ready', async () => {
    const server = new ModelServer({
      runtime: new OnnxRuntime(),
      source: (uri, expect) => fetchAndVerifyModel({ uri, trust, cacheDir: join(work.path, 'cache'), ...(expect ? { expect } : {}) }),
      faults: { errorRate: 0, latencyMs: 300 }, // keeps the request inside the handler while we close
    });
    await server.load(v01);
    const inflight = server.app.inject({ method: 'POST', url: '/v2/models/example_multimodal/infer', payload: oip() });
    await new Promise((r) => setTimeout(r, 100));
    const closing = server.close();
    const r = await inflight;
    await closing;
    expect(r.statusCode).toBe(200);
    expect(server.ready).toBe(false);
  });
});
