/**
 * MlflowTracker against a real MLflow tracking server (`mlflow server` from
 * PyPI, sqlite backend, proxied artifacts; started by scripts/services.sh on
 * $AEGIS_TEST_MLFLOW_URL). Every name is fresh per test run, so reruns
 * against the same server do not see each other's experiments and models.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAegisError } from '../../errors.js';
import { packageExampleVersion } from '../../test-support/example-model.js';
import { tempDir } from '../../test-support/fs.js';
import { MlflowTracker, TAGS, type MlflowRun, type MlflowTrackerOptions } from './index.js';
import { failure } from '../../test-support/errors.js';

const URL_ = process.env.AEGIS_TEST_MLFLOW_URL ?? 'http://127.0.0.1:25000';
const RUN = randomBytes(4).toString('hex');
const trackers: MlflowTracker[] = [];
let work: { path: string; cleanup: () => Promise<void> };

function tracker(options: Partial<MlflowTrackerOptions> = {}): MlflowTracker {
  const t = new MlflowTracker({ baseUrl: URL_, experiment: `aegis-itest-${RUN}`, minDelayMs: 10, maxDelayMs: 50, ...options });
  trackers.push(t);
  return t;
}

const tagsOf = (run: MlflowRun) => Object.fromEntries((run.data.tags ?? []).map((t) => [t.key, t.value]));
const paramsOf = (run: MlflowRun) => Object.fromEntries((run.data.params ?? []).map((t) => [t.key, t.value]));

async function metricHistory(t: MlflowTracker, runId: string, key: string) {
  const res = await t.http.call<{ metrics?: Array<{ key: string; value: number | string; step: number; timestamp: number }> }>('GET', '/api/2.0/mlflow/metrics/get-history', {
    idempotent: true,
    query: { run_id: runId, metric_key: key, max_results: 25000 },
  });
  return res.metrics ?? [];
}

beforeAll(async () => {
  work = await tempDir('aegis-mlflow-it-');
  const res = await fetch(`${URL_}/health`).catch((err: unknown) => {
    throw new Error(`no MLflow tracking server at ${URL_} (run scripts/services.sh): ${(err as Error).message}`);
  });
  expect(res.status).toBe(200);
});

afterAll(async () => {
  for (const t of trackers.splice(0)) await t.close();
  await work?.cleanup();
});

describe('MlflowTracker against a real MLflow server', () => {
  it('gets or creates the experiment exactly once, also when two trackers race', async () => {
    const name = `aegis-itest-exp-${RUN}`;
    const [a, b] = await Promise.all([tracker({ experiment: name }).ensureExperiment(), tracker({ experiment: name }).ensureExperiment()]);
    expect(a).toBe(b);
    expect(await tracker({ experiment: name }).ensureExperiment()).toBe(a);
    const found = await tracker().getExperimentByName(name);
    expect(found).toMatchObject({ experiment_id: a, name, lifecycle_stage: 'active' });
    expect(found!.artifact_location).toMatch(/^mlflow-artifacts:/);
  });

  it('starts a run with the standard mlflow.* tags, and a retried start with the same pipeline id resumes it', async () => {
    const t = tracker();
    const pipelineRunId = `pr-${RUN}-1`;
    const first = await t.startRun({ pipelineRunId, model: 'example-multimodal', user: 'ci-bot', sourceName: 'aegis pipeline retrain', description: 'drift on age', tags: { 'aegis.trigger': 'ModelDrift' } });
    expect(first).toMatchObject({ resumed: false, status: 'RUNNING' });
    expect(first.url).toBe(`${URL_}/#/experiments/${await t.ensureExperiment()}/runs/${first.runId}`);

    // The same step again, in this process and in a new one (a fresh tracker): the same run.
    expect(await t.startRun({ pipelineRunId, model: 'example-multimodal' })).toMatchObject({ runId: first.runId, resumed: true });
    const again = await tracker().startRun({ pipelineRunId, model: 'example-multimodal' });
    expect(again).toMatchObject({ runId: first.runId, resumed: true });

    const run = await t.getRun(first.runId);
    expect(run.info).toMatchObject({ run_name: `example-multimodal-${pipelineRunId}`, user_id: 'ci-bot', status: 'RUNNING', lifecycle_stage: 'active' });
    expect(tagsOf(run)).toMatchObject({
      [TAGS.user]: 'ci-bot',
      [TAGS.sourceName]: 'aegis pipeline retrain',
      [TAGS.sourceType]: 'JOB',
      [TAGS.runName]: `example-multimodal-${pipelineRunId}`,
      [TAGS.note]: 'drift on age',
      [TAGS.pipelineRunId]: pipelineRunId,
      [TAGS.model]: 'example-multimodal',
      'aegis.trigger': 'ModelDrift',
    });
    const search = await t.http.call<{ runs?: MlflowRun[] }>('POST', '/api/2.0/mlflow/runs/search', {
      idempotent: true,
      body: { experiment_ids: [await t.ensureExperiment()], filter: `tags.\`aegis.pipeline_run_id\` = '${pipelineRunId}'` },
    });
    expect(search.runs).toHaveLength(1);
  });

  it('logs more params and metric points than one request may hold, in order, and a resend stores nothing twice', async () => {
    const t = tracker();
    const { runId } = await t.startRun({ pipelineRunId: `pr-${RUN}-batch` });
    const params: Record<string, string | number | boolean> = {};
    for (let i = 0; i < 250; i++) params[`p${String(i).padStart(3, '0')}`] = i % 3 === 0 ? `v${i}` : i % 3 === 1 ? i / 10 : i % 2 === 0;
    params['long'] = 'x'.repeat(6000);
    await t.logParams(runId, params);
    await t.logParams(runId, { p000: 'v0', p001: 0.1 }); // the same values again: accepted

    const base = 1_700_000_000_000;
    const loss = Array.from({ length: 2500 }, (_, step) => ({ key: 'loss', value: 1 / (step + 1), step, timestamp: base + step }));
    const odd = [
      { key: 'odd', value: Number.NaN, step: 0, timestamp: base },
      { key: 'odd', value: Number.POSITIVE_INFINITY, step: 1, timestamp: base },
      { key: 'odd', value: -0.5, step: 2, timestamp: base },
    ];
    await t.logMetrics(runId, [...loss, ...odd]);
    await t.logMetrics(runId, loss.slice(0, 1200)); // a retried step resends: same points
    await t.setTags(runId, { 'aegis.phase': 'train' });
    await t.setTags(runId, { 'aegis.phase': 'evaluate' });

    const run = await t.getRun(runId);
    const stored = paramsOf(run);
    expect(Object.keys(stored).filter((k) => k.startsWith('p'))).toHaveLength(250);
    expect(stored['p003']).toBe('v3');
    expect(stored['p004']).toBe('0.4');
    expect(stored['p002']).toBe('true');
    expect(stored['p005']).toBe('false');
    expect(stored['long']).toHaveLength(6000);
    expect(tagsOf(run)['aegis.phase']).toBe('evaluate');

    const history = await metricHistory(t, runId, 'loss');
    expect(history).toHaveLength(2500);
    expect(history.map((m) => m.step).sort((a, b) => a - b)).toEqual(loss.map((m) => m.step));
    expect(history.find((m) => m.step === 1999)).toMatchObject({ value: 1 / 2000, timestamp: base + 1999 });
    const oddHistory = await metricHistory(t, runId, 'odd');
    expect(oddHistory.map((m) => [m.step, m.value]).sort()).toEqual([
      [0, 'NaN'],
      [1, 1.7976931348623157e308], // MLflow stores +Infinity as the largest double
      [2, -0.5],
    ]);
  });

  it('uses limits the server really enforces: one request with 101 params is refused', async () => {
    const t = tracker();
    const { runId } = await t.startRun({ pipelineRunId: `pr-${RUN}-limit` });
    const params = Array.from({ length: 101 }, (_, i) => ({ key: `k${i}`, value: 'v' }));
    const err = await failure(t.http.call('POST', '/api/2.0/mlflow/runs/log-batch', { idempotent: true, body: { run_id: runId, params } }));
    expect(err.code).toBe('TRACKING_REJECTED');
    expect(err.details).toMatchObject({ endpoint: '/api/2.0/mlflow/runs/log-batch', status: 400, errorCode: 'INVALID_PARAMETER_VALUE' });
    expect(err.message).toMatch(/at most 100 params/);
    // The tracker splits the same params and they are stored.
    await t.logParams(runId, Object.fromEntries(params.map((p) => [p.key, p.value])));
    expect(Object.keys(paramsOf(await t.getRun(runId)))).toHaveLength(101);
  });

  it('refuses to change a logged param, naming MLflow’s error, and refuses too-long values before sending', async () => {
    const t = tracker();
    const { runId } = await t.startRun({ pipelineRunId: `pr-${RUN}-params` });
    await t.logParams(runId, { lr: 0.01 });
    const changed = await failure(t.logParams(runId, { lr: 0.02 }));
    expect(changed.code).toBe('TRACKING_REJECTED');
    expect(changed.details.errorCode).toBe('INVALID_PARAMETER_VALUE');
    expect(changed.message).toContain('/api/2.0/mlflow/runs/log-batch');

    const long = await failure(t.logParams(runId, { notes: 'y'.repeat(6001) }));
    expect(long.code).toBe('TRACKING_INPUT_INVALID');
    expect(long.hint).toMatch(/artifact/);
    expect(paramsOf(await t.getRun(runId))).toEqual({ lr: '0.01' });
  });

  it('uploads the signed archive and its signature as artifacts and downloads them back byte for byte', async () => {
    const keyPath = join(work.path, 'signing-key.pem');
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    await writeFile(keyPath, privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const archive = await packageExampleVersion(work.path, keyPath, '2.0.0');
    const signature = `${archive}.sig`;

    const t = tracker();
    const { runId } = await t.startRun({ pipelineRunId: `pr-${RUN}-artifacts` });
    const a = await t.logArtifact(runId, archive, 'model');
    const s = await t.logArtifact(runId, signature, 'model');
    expect(a.path).toBe('model/model.tar.gz');
    expect(a.uri).toMatch(new RegExp(`^mlflow-artifacts:/.*/${runId}/artifacts/model/model\\.tar\\.gz$`));
    expect(s.path).toBe('model/model.tar.gz.sig');
    // A retried upload overwrites.
    await t.logArtifact(runId, signature, 'model');

    const listed = await t.listArtifacts(runId, 'model');
    expect(listed.map((f) => f.path).sort()).toEqual(['model/model.tar.gz', 'model/model.tar.gz.sig']);
    for (const [file, path] of [
      [archive, a.path],
      [signature, s.path],
    ] as const) {
      const dest = join(work.path, `down-${path.replace(/\//g, '_')}`);
      const n = await t.downloadArtifact(runId, path, dest);
      const original = await readFile(file);
      expect(n).toBe(original.length);
      expect((await readFile(dest)).equals(original)).toBe(true);
    }

    const missing = await failure(t.logArtifact(runId, join(work.path, 'nope.tar.gz'), 'model'));
    expect(missing.code).toBe('FILE_NOT_FOUND');
    const escape = await failure(t.logArtifact(runId, archive, '../other-run'));
    expect(escape.code).toBe('TRACKING_INPUT_INVALID');
  });

  it('ends runs as FINISHED or FAILED with an end time', async () => {
    const t = tracker();
    const ok = await t.startRun({ pipelineRunId: `pr-${RUN}-ok` });
    const bad = await t.startRun({ pipelineRunId: `pr-${RUN}-bad` });
    await t.finish(ok.runId, 'FINISHED', 1_800_000_000_000);
    await t.finish(bad.runId, 'FAILED');
    await t.finish(bad.runId, 'FAILED'); // a retried step
    expect((await t.getRun(ok.runId)).info).toMatchObject({ status: 'FINISHED', end_time: 1_800_000_000_000 });
    const failed = (await t.getRun(bad.runId)).info;
    expect(failed.status).toBe('FAILED');
    expect(failed.end_time).toBeGreaterThan(0);
    // A resumed start reports the run's state.
    expect(await t.startRun({ pipelineRunId: `pr-${RUN}-bad` })).toMatchObject({ runId: bad.runId, resumed: true, status: 'FAILED' });
  });

  it('registers a model version from the run’s artifacts once, and an alias resolves to it', async () => {
    const t = tracker();
    const name = `aegis-itest-model-${RUN}`;
    const model = join(work.path, 'weights.onnx');
    await writeFile(model, randomBytes(1024));
    const r1 = await t.startRun({ pipelineRunId: `pr-${RUN}-reg1` });
    await t.logArtifact(r1.runId, model, 'model');
    const v1 = await t.registerModelVersion({ runId: r1.runId, name, artifactDir: 'model', tags: { 'aegis.version': '1.0.0' }, description: 'retrained on drift' });
    expect(v1).toMatchObject({ name, version: '1', runId: r1.runId });
    expect(v1.source).toMatch(new RegExp(`^mlflow-artifacts:/.*/${r1.runId}/artifacts/model$`));
    expect(v1.url).toBe(`${URL_}/#/models/${name}/versions/1`);
    // The register step retried (also from a new process): the same version, no second one.
    expect(await tracker().registerModelVersion({ runId: r1.runId, name, artifactDir: 'model', tags: { 'aegis.version': '1.0.0' } })).toMatchObject({ version: '1' });

    await t.setAlias(name, 'candidate', v1.version);
    await t.setAlias(name, 'candidate', v1.version);
    const byAlias = await t.getModelVersionByAlias(name, 'candidate');
    expect(byAlias).toMatchObject({ name, version: '1', run_id: r1.runId, source: v1.source, status: 'READY' });
    expect(byAlias.aliases).toContain('candidate');
    expect(Object.fromEntries((byAlias.tags ?? []).map((x) => [x.key, x.value]))).toMatchObject({ 'aegis.version': '1.0.0' });

    // A later retrain: version 2, and the alias moves.
    const r2 = await t.startRun({ pipelineRunId: `pr-${RUN}-reg2` });
    await t.logArtifact(r2.runId, model, 'model');
    const v2 = await t.registerModelVersion({ runId: r2.runId, name, artifactDir: 'model' });
    expect(v2.version).toBe('2');
    await t.setAlias(name, 'candidate', v2.version);
    expect(await t.getModelVersionByAlias(name, 'candidate')).toMatchObject({ version: '2', run_id: r2.runId });

    const bad = await failure(t.setAlias(name, 'champion', '99'));
    expect(bad.code).toMatch(/^TRACKING_(REJECTED|NOT_FOUND)$/);
    expect(bad.details.endpoint).toBe('/api/2.0/mlflow/registered-models/alias');
  });

  it('refuses an experiment that was deleted, saying how to restore it', async () => {
    const name = `aegis-itest-deleted-${RUN}`;
    const t = tracker({ experiment: name });
    const id = await t.ensureExperiment();
    await t.http.call('POST', '/api/2.0/mlflow/experiments/delete', { idempotent: true, body: { experiment_id: id } });
    const err = await failure(tracker({ experiment: name }).startRun({ pipelineRunId: `pr-${RUN}-del` }));
    expect(err.code).toBe('TRACKING_REJECTED');
    expect(err.message).toContain('deleted');
    expect(err.hint).toContain(`mlflow experiments restore --experiment-id ${id}`);
  });

  it('says when the server does not proxy the experiment’s artifacts', async () => {
    const name = `aegis-itest-fileroot-${RUN}`;
    const t = tracker({ experiment: name });
    await t.http.call('POST', '/api/2.0/mlflow/experiments/create', { idempotent: false, body: { name, artifact_location: `file://${work.path}/elsewhere` } });
    const { runId } = await t.startRun({ pipelineRunId: `pr-${RUN}-fileroot` });
    const file = join(work.path, 'x.txt');
    await writeFile(file, 'x');
    const err = await failure(t.logArtifact(runId, file));
    expect(err.code).toBe('TRACKING_ARTIFACTS_UNSUPPORTED');
    expect(err.hint).toContain('--serve-artifacts');
  });

  it('gives TRACKING_UNREACHABLE with a hint when nothing listens, and TRACKING_REJECTED for a non-MLflow path', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const down = tracker({ baseUrl: `http://127.0.0.1:${port}`, retries: 2 });
    const err = await failure(down.startRun({ pipelineRunId: `pr-${RUN}-down` }));
    expect(err.code).toBe('TRACKING_UNREACHABLE');
    expect(err.message).toContain(`http://127.0.0.1:${port}`);
    expect(err.message).toContain('ECONNREFUSED');
    expect(err.hint).toContain(`curl http://127.0.0.1:${port}/health`);
    expect(err.hint).toContain('AEGIS_MLFLOW_TRACKING_URI');

    const wrongPrefix = await failure(tracker({ baseUrl: `${URL_}/not-mlflow` }).ensureExperiment());
    expect(isAegisError(wrongPrefix)).toBe(true);
    expect(wrongPrefix.code).toBe('TRACKING_REJECTED');
    expect(wrongPrefix.details.status).toBe(404);
    expect(wrongPrefix.hint).toMatch(/Is .* an MLflow tracking server/);
  });
});
