/**
 * The archive + registry workflow through the CLI, on the embedded defaults
 * (PGlite and a file store under a temporary AEGIS_HOME): package → push →
 * register → list/show → promote → fetch, with the refusals users meet.
 */
import { existsSync } from 'node:fs';
import { appendFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { okCli, runCli } from '../test-support/cli.js';
import { tempDir } from '../test-support/fs.js';
import { writeModel } from '../test-support/models.js';

const manifest = (version: string, extra = '') => `apiVersion: aegis.dev/v1
kind: Model
name: churn
version: "${version}"
framework: onnx
runtime: { name: onnxruntime }
inputs: [{ name: features, dtype: float32, shape: [-1, 8] }]
outputs: [{ name: score, dtype: float32, shape: [-1, 1] }]
metrics: { auc: 0.91 }
dataset: { uri: s3://data/churn/v3 }
${extra}`;

let work: Awaited<ReturnType<typeof tempDir>>;
const saved = process.env.AEGIS_HOME;
let home: string;
let key: string;

beforeAll(async () => {
  work = await tempDir('aegis-reg-cli-');
  home = join(work.path, 'home');
  process.env.AEGIS_HOME = home;
  await okCli('keys', 'rotate', '--trust', join(home, 'trust.yaml'), '--out-dir', join(home, 'keys', 'k1'));
  key = join(home, 'keys', 'k1', 'signing-key.pem');
});
afterAll(async () => {
  if (saved === undefined) delete process.env.AEGIS_HOME;
  else process.env.AEGIS_HOME = saved;
  await work.cleanup();
});

async function model(version: string, weights: number | string = 10_000, extra = '') {
  return writeModel(join(work.path, `m-${version}-${Math.random().toString(36).slice(2)}`), { 'aegis.yaml': manifest(version, extra), 'model.onnx': weights });
}

describe('model package / push / register / promote / fetch', () => {
  it('runs the whole flow and records lineage and history', async () => {
    const dir = await model('1.0');
    const out = join(work.path, 'dist-1.0');
    await okCli('model', 'package', dir, '--key', key, '--out', out);
    expect((await okCli('model', 'verify-archive', join(out, 'model.tar.gz'))).stdout).toBe('verified\n');
    const pushed = JSON.parse((await okCli('model', 'push', join(out, 'model.tar.gz'), '--json')).stdout);
    expect(pushed.uri).toBe(`file://${join(home, 'artifacts', 'model-archives', 'churn', '1.0', 'model.tar.gz')}`);
    const reg = JSON.parse((await okCli('model', 'register', pushed.uri, '--json')).stdout);
    expect(reg.created).toBe(true);
    expect(reg.version).toMatchObject({ name: 'churn', version: '1.0', stage: 'none', archiveUri: pushed.uri });
    expect(reg.version.lineage).toMatchObject({ datasetUri: 's3://data/churn/v3' });

    // idempotent
    expect(JSON.parse((await okCli('model', 'register', pushed.uri, '--json')).stdout).created).toBe(false);

    await okCli('model', 'promote', 'churn@1.0', '--stage', 'production');
    const shown = JSON.parse((await okCli('model', 'show', 'churn@production', '--json')).stdout);
    expect(shown).toMatchObject({ version: '1.0', stage: 'production' });
    expect(shown.history.map((h: { action: string }) => h.action)).toEqual(expect.arrayContaining(['version.register', 'version.promote']));

    const fetched = JSON.parse((await okCli('model', 'fetch', 'churn@production', '--json')).stdout);
    expect(fetched).toMatchObject({ name: 'churn', version: '1.0' });
    expect(existsSync(join(fetched.dir, 'model.onnx'))).toBe(true);

    const listed = JSON.parse((await okCli('model', 'list', '--json')).stdout);
    expect(listed.models).toEqual([expect.objectContaining({ name: 'churn', productionVersion: '1.0', latestVersion: '1.0' })]);
  });

  it('refuses to push or register a different archive under an existing version', async () => {
    const first = await model('2.0', 'aaaa');
    await okCli('model', 'push', first, '--key', key);
    const second = await model('2.0', 'bbbb');
    const r = await runCli('model', 'push', second, '--key', key);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('VERSION_IMMUTABLE');
  });

  it('refuses to package a model without a valid manifest, naming the field', async () => {
    const dir = await writeModel(join(work.path, 'bad'), { 'aegis.yaml': manifest('3.0').replace('dtype: float32, shape: [-1, 8]', 'dtype: float33, shape: [-1, 8]'), 'model.onnx': 10 });
    const r = await runCli('model', 'package', dir, '--key', key, '--out', join(work.path, 'never'));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/MANIFEST_INVALID.*inputs\.0\.dtype/);
    expect(existsSync(join(work.path, 'never', 'model.tar.gz'))).toBe(false);
    const none = await writeModel(join(work.path, 'none'), { 'model.onnx': 10 });
    expect((await runCli('model', 'package', none, '--key', key, '--out', join(work.path, 'never'))).stderr).toContain('MANIFEST_MISSING');
  });

  it('refuses to register a tampered archive (nothing recorded)', async () => {
    const dir = await model('4.0');
    const out = join(work.path, 'dist-4.0');
    await okCli('model', 'package', dir, '--key', key, '--out', out);
    await appendFile(join(out, 'model.tar.gz'), 'x');
    const r = await runCli('model', 'register', join(out, 'model.tar.gz'));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('ARCHIVE_SIGNATURE_INVALID');
    expect((await runCli('model', 'show', 'churn@4.0')).stderr).toContain('REGISTRY_NOT_FOUND');
  });

  it('pulls an archive and its signature by registry ref', async () => {
    const out = join(work.path, 'pulled');
    await okCli('model', 'pull', 'churn@1.0', '--out', out);
    expect((await okCli('model', 'verify-archive', join(out, 'model.tar.gz'))).stdout).toBe('verified\n');
  });

  it('verify-archive --json reports the failure reason', async () => {
    const dir = await model('5.0');
    const out = join(work.path, 'dist-5.0');
    await okCli('model', 'package', dir, '--key', key, '--out', out);
    await writeFile(join(out, 'model.tar.gz.sig'), 'MEUCIQDfakefakefakefake\n');
    const r = await runCli('model', 'verify-archive', join(out, 'model.tar.gz'), '--json');
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ verified: false, error: { code: 'ARCHIVE_SIGNATURE_INVALID' } });
  });
});
