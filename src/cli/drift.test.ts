/**
 * `aegis drift report` against a real model server listening on a local port
 * (started in-process with the signed example model, fed shifted v2 rows),
 * plus its usage and connection errors.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPair, parsePrivateKey, parsePublicKey } from '../signing/keys.js';
import { packageModel } from '../signing/package.js';
import { PemKeySigner } from '../signing/pem/index.js';
import { fetchAndVerifyModel } from '../serving/fetch.js';
import { OnnxRuntime } from '../serving/runtime/onnx/index.js';
import { ModelServer } from '../serving/server.js';
import { okCli, runCli } from '../test-support/cli.js';
import { tempDir } from '../test-support/fs.js';
import { readDataset } from '../training/dataset.js';
import { EXAMPLE_MODEL } from '../training/example.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
let work: Awaited<ReturnType<typeof tempDir>>;
let server: ModelServer;
let url: string;

beforeAll(async () => {
  work = await tempDir('aegis-drift-cli-');
  const pair = generateKeyPair('p256');
  const pkg = await packageModel({ modelDir: EXAMPLE_MODEL, signer: new PemKeySigner(parsePrivateKey(pair.privateKeyPem, 'test')), outDir: join(work.path, 'dist') });
  server = new ModelServer({
    runtime: new OnnxRuntime(),
    source: (uri, expect) => fetchAndVerifyModel({ uri, trust: { kind: 'publicKey', key: parsePublicKey(pair.publicKeyPem, 'test'), source: 'test key' }, cacheDir: join(work.path, 'cache'), ...(expect ? { expect } : {}) }),
    drift: { minRows: 200, windowRows: 1000 },
  });
  await server.load(pkg.archive);
  url = await server.listen(0);
});
afterAll(async () => {
  await server.close();
  await work.cleanup();
});

/** Sends `rows` rows of the shifted v2 test split over HTTP, 20 per request. */
async function sendShifted(rows: number): Promise<void> {
  const v2 = (await readDataset(join(REPO, 'examples/datasets/example_multimodal/v2'))).test;
  for (let r = 0; r < rows; r += 20) {
    const res = await fetch(`${url}/v2/models/example_multimodal/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        inputs: [
          { name: 'image', shape: [20, 1, 8, 8], datatype: 'FP32', data: Array.from(v2.features[0]!.subarray(r * 64, (r + 20) * 64)) },
          { name: 'text', shape: [20, 16], datatype: 'FP32', data: Array.from(v2.features[1]!.subarray(r * 16, (r + 20) * 16)) },
        ],
      }),
    });
    expect(res.status).toBe(200);
  }
}

describe('aegis drift report', () => {
  it('says there is no verdict yet while the window is below the minimum', async () => {
    const r = await okCli('drift', 'report', 'example_multimodal@0.1', '--url', url);
    expect(r.stdout).toMatch(/^example_multimodal@0\.1: no verdict yet — the window holds 0 of the 200 rows a verdict needs/);
  });

  it('prints the verdict per feature, the multivariate check and the predictions', async () => {
    await sendShifted(400);
    const r = await okCli('drift', 'report', 'example_multimodal@0.1', '--url', url);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toMatch(/^example_multimodal@0\.1: DRIFT — \d+ of 80 features drifted \(\d+\.\d%; dataset drift at 50\.0%\); multivariate: text drifted$/);
    expect(r.stdout).toMatch(/window: 400 rows \(minimum 200, capacity 1000, sample rate 1\)/);
    expect(r.stdout).toMatch(/reference: examples\/datasets\/example_multimodal\/v1 \(4000 rows\); retrain data: examples\/datasets\/example_multimodal\/v1/);
    expect(r.stdout).toMatch(/^FEATURE\s+KIND\s+TEST\s+SCORE\s+DRIFT WHEN\s+DRIFT$/m);
    expect(r.stdout).toMatch(/^image\[0,0,0\]\s+numeric\s+wasserstein\s+\d+\.\d{4}\s+>= 0\.1\s+yes$/m);
    expect(r.stdout).toMatch(/^text\[kite\]\s+categorical\s+jensenshannon\s+\d\.\d{4}\s+>= 0\.1\s+yes$/m);
    expect(r.stdout).toMatch(/^text\s+16\s+mahalanobis\s+\d+\.\d{4}\s+\S+\s+>= 0\.2 and p < 0\.001\s+yes$/m);
    expect(r.stdout).toMatch(/predictions \(probabilities\[argmax\], not counted in the share\): jensenshannon/);
    // --drifted lists only the drifted features; the name alone (no version) works too
    const only = await okCli('drift', 'report', 'example_multimodal', '--url', url, '--drifted');
    const rows = only.stdout.split('\n').filter((l) => /^(image|text)\[/.test(l));
    expect(rows.length).toBeGreaterThan(40);
    expect(rows.every((l) => l.endsWith('yes'))).toBe(true);
  });

  it('prints the server report as JSON with --json', async () => {
    const r = await okCli('drift', 'report', 'example_multimodal@0.1', '--url', url, '--json');
    const body = JSON.parse(r.stdout);
    expect(body).toMatchObject({ model: 'example_multimodal', version: '0.1', status: 'ok', drift: true, window: { rows: 400 } });
    expect(body.features.find((f: { name: string }) => f.name === 'text[owl]')).toMatchObject({ kind: 'categorical', method: 'jensenshannon', drifted: true });
  });

  it('fails with the reason for a version the server does not serve, an unreachable server, or a malformed reference', async () => {
    const wrong = await runCli('drift', 'report', 'example_multimodal@9.9', '--url', url);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/error \[DRIFT_UNAVAILABLE\]: .* answered 404: model example_multimodal version "9.9" is not loaded; serving 0.1/);
    const down = await runCli('drift', 'report', 'example_multimodal', '--url', 'http://127.0.0.1:1', '--json');
    expect(down.code).toBe(1);
    expect(JSON.parse(down.stdout)).toMatchObject({ ok: false, error: { code: 'DRIFT_UNAVAILABLE', hint: expect.stringMatching(/aegis up/) } });
    const bad = await runCli('drift', 'report', 'example_multimodal@', '--url', url);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/is not NAME or NAME@VERSION/);
  });
});
