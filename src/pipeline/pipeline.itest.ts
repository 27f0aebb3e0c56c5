/**
 * The pipeline on real services (scripts/services.sh): PostgreSQL
 * (AEGIS_TEST_DATABASE_URL, a fresh database per run) and an MLflow tracking
 * server (AEGIS_TEST_MLFLOW_URL, a fresh experiment per run). A retrain shows
 * up in MLflow with its params, metrics, the signed archive and its
 * signature as artifacts, and a registered model version with the
 * `candidate` alias; the Aegis registry's lineage names the MLflow run.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDb } from '../db/index.js';
import type { Db } from '../db/types.js';
import { tempDir } from '../test-support/fs.js';
import { DATASET_V2, MODEL, pipelineDeps, pipelineEnv, RecordingCanary, seedProduction, type PipelineEnv } from '../test-support/pipeline.js';
import { MlflowTracker } from '../tracking/index.js';
import { PipelineRunner } from './runner.js';
import { claimRun, createRun, getRun, listSteps } from './store.js';

const ADMIN_URL = process.env.AEGIS_TEST_DATABASE_URL;
const MLFLOW_URL = process.env.AEGIS_TEST_MLFLOW_URL ?? 'http://127.0.0.1:25000';
const RUN = randomBytes(4).toString('hex');
let admin: pg.Client | undefined;
let database: string | undefined;
let db: Db;
let env: PipelineEnv;
let work: Awaited<ReturnType<typeof tempDir>>;
const closers: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  if (!ADMIN_URL) throw new Error('AEGIS_TEST_DATABASE_URL is not set: run scripts/services.sh before the integration tests');
  const health = await fetch(`${MLFLOW_URL}/health`).catch((err: unknown) => {
    throw new Error(`no MLflow tracking server at ${MLFLOW_URL} (run scripts/services.sh): ${(err as Error).message}`);
  });
  expect(health.status).toBe(200);
  admin = new pg.Client({ connectionString: ADMIN_URL, connectionTimeoutMillis: 10_000 });
  await admin.connect();
  database = `aegis_pipeline_${RUN}`;
  await admin.query(`CREATE DATABASE ${database}`);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${database}`;
  db = await openDb({ url: url.toString() });
  work = await tempDir('aegis-pipeline-it-');
  env = await pipelineEnv(work.path, db);
  await seedProduction(env);
});

afterAll(async () => {
  for (const c of closers.reverse()) await c().catch(() => undefined);
  await db?.close();
  if (admin && database) await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
  await admin?.end();
  await work?.cleanup();
});

function metricHistory(t: MlflowTracker, runId: string, key: string) {
  return t.http
    .call<{ metrics?: Array<{ key: string; value: number; step: number }> }>('GET', '/api/2.0/mlflow/metrics/get-history', { idempotent: true, query: { run_id: runId, metric_key: key } })
    .then((r) => r.metrics ?? []);
}

describe('the retraining pipeline on PostgreSQL with MLflow tracking', () => {
  it('records the run in MLflow: params, metrics per epoch, signed archive + signature, model version with the candidate alias', async () => {
    const tracker = new MlflowTracker({ baseUrl: MLFLOW_URL, experiment: `aegis-pipeline-itest-${RUN}`, minDelayMs: 10, maxDelayMs: 50 });
    closers.push(() => tracker.close());
    const canary = new RecordingCanary();
    const runner = new PipelineRunner(pipelineDeps(env, { canary, tracker }));
    closers.push(() => runner.close());
    const submitted = await runner.submit({ datasetUri: DATASET_V2, model: MODEL });
    const run = await runner.wait(submitted.id);
    expect(run.state, run.error ?? '').toBe('succeeded');
    const version = `0.1-retrain.${run.id}`;
    expect(run.trackingKind).toBe('mlflow');
    const mlflowRunId = run.trackingRunId!;

    const mr = await tracker.getRun(mlflowRunId);
    expect(mr.info.status).toBe('FINISHED');
    const params = Object.fromEntries((mr.data.params ?? []).map((p) => [p.key, p.value]));
    expect(params).toMatchObject({ model: MODEL, parent_version: '0.1', dataset_uri: DATASET_V2, epochs: '15', trainer: 'aegis-train/1' });
    expect(params.dataset_digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    const tags = Object.fromEntries((mr.data.tags ?? []).map((t) => [t.key, t.value]));
    expect(tags).toMatchObject({ 'aegis.pipeline_run_id': run.uid, 'aegis.pipeline_run': String(run.id), 'aegis.gate': 'passed', 'aegis.outcome': 'succeeded', 'aegis.rollout_id': '100' });
    const latest = Object.fromEntries((mr.data.metrics ?? []).map((m) => [m.key, Number(m.value)]));
    expect(latest).toMatchObject({ accuracy: 0.894, macro_f1: 0.8941, production_accuracy: 0.918 });
    const loss = await metricHistory(tracker, mlflowRunId, 'train_loss');
    expect(loss.map((m) => m.step).sort((a, b) => a - b)).toEqual(Array.from({ length: 15 }, (_, i) => i + 1));

    const artifacts = await tracker.listArtifacts(mlflowRunId, 'model');
    const signed = (await listSteps(db, run.id)).find((s) => s.name === 'sign')!.outputs as { size: number };
    expect(artifacts.map((a) => [a.path, a.file_size])).toEqual(
      expect.arrayContaining([
        ['model/model.tar.gz', signed.size],
        ['model/model.tar.gz.sig', expect.any(Number)],
      ]),
    );

    const mv = await tracker.getModelVersionByAlias(MODEL, 'candidate');
    expect(mv.run_id).toBe(mlflowRunId);
    expect(Object.fromEntries((mv.tags ?? []).map((t) => [t.key, t.value]))).toMatchObject({ 'aegis.version': version });

    const registered = await env.registry.getVersion(MODEL, version);
    expect(registered.lineage).toMatchObject({ parentVersion: '0.1', datasetUri: DATASET_V2, runId: mlflowRunId, mlflowRunId, mlflowModelVersion: mv.version, tracker: 'mlflow', pipelineRunId: run.id });
    expect(canary.started.map((s) => s.version)).toEqual([version]);
  });

  it('takes over a run whose process stopped renewing its lease (several processes share PostgreSQL)', async () => {
    const { run } = await createRun(db, { requestId: `lease-${RUN}`, source: 'manual', request: { model: MODEL, datasetUri: DATASET_V2 }, createdBy: 'test' });
    expect(await claimRun(db, run.id, 'a-process-that-died', 300, false)).toBeDefined();
    const runner = new PipelineRunner(pipelineDeps(env, { canary: new RecordingCanary(), settings: { evaluate: { minAccuracy: 0.99, maxRegression: 0.05 } } }));
    closers.push(() => runner.close());
    await runner.resumeAll();
    // Its lease is live: another process must not take it.
    expect(runner.activeRuns()).not.toContain(run.id);
    expect((await getRun(db, run.id)).owner).toBe('a-process-that-died');
    // The lease lapses (the process never renewed it): the next look takes it over and runs it to its end.
    await db.query(`UPDATE pipeline_runs SET lease_until = now() - interval '1 second' WHERE id = $1`, [run.id]);
    await runner.resumeAll();
    const done = await runner.wait(run.id);
    expect(done.state).toBe('rejected');
    expect(done.owner).toBeNull();
  });
});
