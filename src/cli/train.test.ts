/**
 * `aegis train` and `aegis dataset generate`, run in-process: the trained
 * model directory is one `aegis model package` accepts, options reach the
 * subcommands (including --version), and errors have stable codes and exits.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readManifest } from '../artifact/manifest.js';
import { okCli, runCli } from '../test-support/cli.js';
import { tempDir } from '../test-support/fs.js';

const V1 = fileURLToPath(new URL('../../examples/datasets/example_multimodal/v1', import.meta.url));

let root: string;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  ({ path: root, cleanup } = await tempDir('aegis-train-cli-'));
});
afterAll(() => cleanup());

describe('aegis train', () => {
  it('writes model.onnx, profile.json and an aegis.yaml that readManifest and `aegis model package` accept', async () => {
    const out = join(root, 'model');
    const r = await okCli('train', '--dataset', V1, '--out', out, '--json');
    const report = JSON.parse(r.stdout) as { ok: boolean; metrics: Record<string, number>; perClass: { class: string; support: number }[]; testRows: number };
    expect(report.ok).toBe(true);
    expect(report.metrics.accuracy).toBeGreaterThan(0.88);
    expect(report.perClass.map((c) => c.class)).toEqual(['top_left', 'top_right', 'bottom']);
    expect(report.perClass.reduce((a, c) => a + c.support, 0)).toBe(report.testRows);
    for (const f of ['model.onnx', 'profile.json', 'aegis.yaml']) expect(existsSync(join(out, f)), f).toBe(true);

    const m = await readManifest(out);
    expect(m).toMatchObject({ name: 'example_multimodal', version: '0.1', framework: 'onnx', entrypoint: 'model.onnx', dataset: { uri: V1 } });
    expect(m.metrics.accuracy).toBe(report.metrics.accuracy);

    const keys = join(root, 'keys');
    await okCli('keys', 'generate', '--out-dir', keys);
    const pkg = JSON.parse((await okCli('model', 'package', out, '--key', join(keys, 'signing-key.pem'), '--out', join(root, 'dist'), '--json')).stdout) as { archive: string; manifest: { name: string; version: string } };
    expect(pkg.manifest).toMatchObject({ name: 'example_multimodal', version: '0.1' });
    expect(existsSync(pkg.archive)).toBe(true);
    expect((await okCli('model', 'verify-archive', pkg.archive, '--public-key', join(keys, 'signing-key.pub.pem'))).stdout).toBe('verified\n');
  });

  it('passes --name, --version and --parent to aegis.yaml and prints the held-out metrics', async () => {
    const out = join(root, 'retrained');
    const r = await okCli('train', '--dataset', V1, '--out', out, '--name', 'retrained_model', '--version', '0.2', '--parent', '0.1', '--epochs', '3', '--dataset-uri', 's3://data/example/v1/');
    expect(r.stdout).toMatch(/held-out \(1000 rows\): accuracy 0\.\d{4} {2}macro-F1 0\.\d{4}/);
    expect(r.stdout).toContain('top_right');
    expect(r.stdout).toContain('3 epochs');
    const m = await readManifest(out);
    expect([m.name, m.version, m.parent?.version, m.dataset?.uri, m.labels.epochs]).toEqual(['retrained_model', '0.2', '0.1', 's3://data/example/v1/', '3']);
  });

  it('reports a missing dataset (exit 1) and bad options (exit 2) with codes and hints', async () => {
    const missing = await runCli('train', '--dataset', join(root, 'nowhere'), '--out', join(root, 'm2'));
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('[DATASET_INVALID]');
    expect(missing.stderr).toContain('hint:');

    const epochs = await runCli('train', '--dataset', V1, '--out', join(root, 'm3'), '--epochs', 'many', '--json');
    expect(epochs.code).toBe(2);
    expect(JSON.parse(epochs.stdout)).toMatchObject({ ok: false, error: { code: 'USAGE', message: expect.stringContaining('--epochs') } });

    const version = await runCli('train', '--dataset', V1, '--out', join(root, 'm4'), '--version', 'not a version');
    expect(version.code).toBe(2);
    expect(version.stderr).toContain('--version not a version is not valid');
    expect(existsSync(join(root, 'm4'))).toBe(false);

    expect((await runCli('train', '--out', join(root, 'm5'))).code).toBe(2); // --dataset is required
  });
});

describe('aegis dataset generate', () => {
  it('writes a dataset the trainer reads, identical on a second run', async () => {
    const a = join(root, 'ds-a');
    const b = join(root, 'ds-b');
    const r = JSON.parse((await okCli('dataset', 'generate', '--out', a, '--version', 'v2', '--seed', '3', '--train-rows', '60', '--test-rows', '30', '--json')).stdout) as { files: { path: string }[]; splits: { train: { rows: number } } };
    expect(r.files.map((f) => f.path)).toEqual(['train.jsonl', 'test.jsonl', 'dataset.yaml']);
    expect(r.splits.train.rows).toBe(60);
    await okCli('dataset', 'generate', '--out', b, '--version', 'v2', '--seed', '3', '--train-rows', '60', '--test-rows', '30');
    for (const f of ['train.jsonl', 'test.jsonl', 'dataset.yaml']) expect((await readFile(join(a, f))).equals(await readFile(join(b, f))), f).toBe(true);
    expect(await readFile(join(a, 'dataset.yaml'), 'utf8')).toContain('version: v2');
    await okCli('train', '--dataset', a, '--out', join(root, 'small-model'), '--epochs', '1');
  });

  it('refuses an unknown version with exit 2', async () => {
    const r = await runCli('dataset', 'generate', '--out', join(root, 'ds-x'), '--version', 'v3');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('[USAGE]');
    expect(r.stderr).toContain('--version v1 or --version v2');
  });
});
