/**
 * The drift monitor inside the model server (in-process, fastify inject):
 * the real example model, packaged and signed, fed rows of the example
 * datasets over OIP v2; GET /v2/models/{name}/drift, the aegis_model_drift_*
 * gauges, hot swap, and models without (or with a broken) profile.
 */
import { cp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPair, parsePrivateKey, parsePublicKey } from '../signing/keys.js';
import { packageModel } from '../signing/package.js';
import { PemKeySigner } from '../signing/pem/index.js';
import type { TrustAnchor } from '../signing/trust.js';
import { fetchAndVerifyModel } from '../serving/fetch.js';
import { OnnxRuntime } from '../serving/runtime/onnx/index.js';
import { ModelServer } from '../serving/server.js';
import { tempDir } from '../test-support/fs.js';
import { EXAMPLE_MODEL } from '../training/example.js';
import { readDataset, type Split } from '../training/dataset.js';
import type { DriftReport, DriftSettings } from './index.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const pair = generateKeyPair('p256');
const signer = new PemKeySigner(parsePrivateKey(pair.privateKeyPem, 'test'));
const trust: TrustAnchor = { kind: 'publicKey', key: parsePublicKey(pair.publicKeyPem, 'test'), source: 'test key' };
let work: Awaited<ReturnType<typeof tempDir>>;
let v01: string;
let v02: string;
let noProfile: string;
let badProfile: string;
let v1: Split;
let v2: Split;

/** Packages the example model as `version`, after `edit` changes its copy. */
async function packageVariant(version: string, edit: (dir: string) => Promise<void> = async () => {}): Promise<string> {
  const dir = join(work.path, `model-${version}`);
  await cp(EXAMPLE_MODEL, dir, { recursive: true });
  const manifest = await readFile(join(dir, 'aegis.yaml'), 'utf8');
  await writeFile(join(dir, 'aegis.yaml'), manifest.replace(/^version: .*$/m, `version: "${version}"`));
  await edit(dir);
  return (await packageModel({ modelDir: dir, signer, outDir: join(work.path, `dist-${version}`) })).archive;
}

beforeAll(async () => {
  work = await tempDir('aegis-drift-server-');
  v01 = await packageVariant('0.1');
  v02 = await packageVariant('0.2');
  noProfile = await packageVariant('0.3', async (dir) => {
    const m = await readFile(join(dir, 'aegis.yaml'), 'utf8');
    await writeFile(join(dir, 'aegis.yaml'), m.replace(/^ {2}profile: .*\n/m, ''));
  });
  badProfile = await packageVariant('0.4', async (dir) => writeFile(join(dir, 'profile.json'), '{"apiVersion": "aegis.dev/v1", "kind": "ReferenceProfile"'));
  [v1, v2] = [(await readDataset(join(REPO, 'examples/datasets/example_multimodal/v1'))).test, (await readDataset(join(REPO, 'examples/datasets/example_multimodal/v2'))).test];
});
afterAll(async () => work.cleanup());

function makeServer(drift?: Partial<DriftSettings> | false) {
  return new ModelServer({
    runtime: new OnnxRuntime(),
    source: (uri, expect) => fetchAndVerifyModel({ uri, trust, cacheDir: join(work.path, 'cache'), ...(expect ? { expect } : {}) }),
    ...(drift === undefined ? {} : { drift }),
  });
}

/** Sends rows [from, from + rows) of a split as OIP v2 requests of `batch` rows. */
async function send(server: ModelServer, split: Split, rows: number, batch = 10, from = 0): Promise<void> {
  for (let r = from; r < from + rows; r += batch) {
    const res = await server.app.inject({
      method: 'POST',
      url: '/v2/models/example_multimodal/infer',
      payload: {
        inputs: [
          { name: 'image', shape: [batch, 1, 8, 8], datatype: 'FP32', data: Array.from(split.features[0]!.subarray(r * 64, (r + batch) * 64)) },
          { name: 'text', shape: [batch, 16], datatype: 'FP32', data: Array.from(split.features[1]!.subarray(r * 16, (r + batch) * 16)) },
        ],
      },
    });
    expect(res.statusCode, res.body).toBe(200);
  }
}

const metrics = async (server: ModelServer) => (await server.app.inject({ url: '/metrics' })).body;
const report = async (server: ModelServer, url = '/v2/models/example_multimodal/drift') => {
  const r = await server.app.inject({ url });
  return { status: r.statusCode, body: r.json() as DriftReport & { error?: string; code?: string; hint?: string } };
};

describe('drift monitor in the model server', () => {
  it('reports no verdict below the minimum window, then drift on shifted traffic, on the endpoint and the gauges', async () => {
    const server = makeServer({ minRows: 200, windowRows: 500 });
    await server.load(v01);
    await send(server, v2, 100);
    const early = await report(server);
    expect(early.status).toBe(200);
    expect(early.body).toMatchObject({ model: 'example_multimodal', version: '0.1', status: 'insufficient_data', drift: null, window: { rows: 100, minRows: 200 } });
    let text = await metrics(server);
    expect(text).not.toMatch(/aegis_model_drift_detected\{/);
    expect(text).toMatch(/aegis_model_drift_window_rows\{model="example_multimodal",version="0.1"\} 100/);

    await send(server, v2, 300, 10, 100);
    const late = await report(server);
    expect(late.body).toMatchObject({ status: 'ok', drift: true, datasetDrift: true, window: { rows: 400, folded: 400 } });
    expect(late.body.features).toHaveLength(80);
    expect(late.body.prediction).toMatchObject({ name: 'probabilities[argmax]' });
    // the version path answers the same
    expect((await report(server, '/v2/models/example_multimodal/versions/0.1/drift')).body.drift).toBe(true);
    text = await metrics(server);
    expect(text).toMatch(/aegis_model_drift_detected\{model="example_multimodal",version="0.1"\} 1/);
    expect(text).toMatch(/aegis_model_drift_share\{model="example_multimodal",version="0.1"\} 0\.[5-9]\d*|aegis_model_drift_share\{model="example_multimodal",version="0.1"\} 1/);
    expect(text).toMatch(/aegis_model_drift_score\{model="example_multimodal",version="0.1",feature="image\[0,0,0\]"\} \d/);
    expect(text).toMatch(/aegis_model_drift_score\{model="example_multimodal",version="0.1",feature="text\[kite\]"\} /);
    expect(text).toMatch(/aegis_model_drift_score\{model="example_multimodal",version="0.1",feature="text"\} /);
    expect(text).toMatch(/aegis_model_drift_dataset_info\{model="example_multimodal",version="0.1",dataset_uri="examples\/datasets\/example_multimodal\/v1",reference_dataset_uri="examples\/datasets\/example_multimodal\/v1"\} 1/);
    await server.close();
  });

  it('raises no alarm on traffic like the training data (v1 held-out rows)', async () => {
    const server = makeServer({ datasetUri: 's3://bucket/datasets/example_multimodal/v2/' });
    await server.load(v01);
    await send(server, v1, 1000, 20);
    const r = await report(server);
    expect(r.body).toMatchObject({ status: 'ok', drift: false, datasetDrift: false, share: { drifted: 0 }, datasetUri: 's3://bucket/datasets/example_multimodal/v2/' });
    const text = await metrics(server);
    expect(text).toMatch(/aegis_model_drift_detected\{model="example_multimodal",version="0.1"\} 0/);
    expect(text).toMatch(/dataset_uri="s3:\/\/bucket\/datasets\/example_multimodal\/v2\/"/);
    await server.close();
  });

  it('re-runs the tests on its interval and publishes them without anyone asking', async () => {
    const server = makeServer({ minRows: 100, windowRows: 200, intervalMs: 100 });
    await server.load(v01);
    await send(server, v2, 100);
    const deadline = Date.now() + 10_000;
    while (!/aegis_model_drift_detected\{[^}]*\} 1/.test(await metrics(server)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(await metrics(server)).toMatch(/aegis_model_drift_detected\{model="example_multimodal",version="0.1"\} 1/);
    await server.close();
  });

  it('starts a fresh window for a hot-swapped version and drops the old version from the gauges', async () => {
    const server = makeServer({ minRows: 100, windowRows: 200 });
    await server.load(v01);
    await send(server, v2, 100);
    expect((await report(server)).body.drift).toBe(true);
    const swap = await server.app.inject({ method: 'POST', url: '/v2/repository/models/example_multimodal/load', payload: { uri: v02 } });
    expect(swap.statusCode, swap.body).toBe(200);
    const fresh = await report(server);
    expect(fresh.body).toMatchObject({ version: '0.2', status: 'insufficient_data', window: { rows: 0 } });
    const text = await metrics(server);
    expect(text).not.toMatch(/aegis_model_drift_[a-z_]+\{[^}]*version="0\.1"/);
    expect((await report(server, '/v2/models/example_multimodal/versions/0.1/drift')).status).toBe(404);
    await server.close();
  });

  it('serves a model without a profile, or with a broken one, and says why drift is not watched', async () => {
    const none = makeServer();
    await none.load(noProfile);
    await send(none, v1, 10);
    const r1 = await report(none);
    expect(r1.status).toBe(404);
    expect(r1.body).toMatchObject({ code: 'DRIFT_UNAVAILABLE' });
    expect(r1.body.error).toMatch(/has no reference profile \(labels.profile/);
    await none.close();

    const broken = makeServer();
    await broken.load(badProfile);
    await send(broken, v1, 10); // it still serves
    const r2 = await report(broken);
    expect(r2.status).toBe(503);
    expect(r2.body.error).toMatch(/drift is not monitored for example_multimodal@0.4: reference profile .*profile.json is invalid: not JSON/);
    await broken.close();

    const off = makeServer(false);
    await off.load(v01);
    const r3 = await report(off);
    expect(r3.status).toBe(404);
    expect(r3.body.error).toMatch(/turned off/);
    expect(await metrics(off)).not.toMatch(/aegis_model_drift_[a-z_]+\{/);
    await off.close();
  });

  it('refuses unknown models and versions on the drift endpoint', async () => {
    const server = makeServer();
    await server.load(v01);
    expect((await report(server, '/v2/models/nope/drift')).status).toBe(404);
    expect((await report(server, '/v2/models/example_multimodal/versions/9.9/drift')).status).toBe(404);
    await server.close();
  });
});
