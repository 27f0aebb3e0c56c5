import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { listRetrainTriggers } from '../alerts/index.js';
import { payload, receiverApp, TEST_TOKEN } from '../alerts/test-support.js';
import { MEMORY, openDb } from '../db/index.js';
import type { Db } from '../db/types.js';
import { AegisError } from '../errors.js';
import { verifyArchiveFile } from '../signing/package.js';
import { archiveKey, type ArtifactStore, type PutOptions } from '../store/types.js';
import { tempDir } from '../test-support/fs.js';
import { DATASET_V2, MODEL, pipelineDeps, pipelineEnv, RecordingCanary, seedProduction, type DepsOptions, type PipelineEnv } from '../test-support/pipeline.js';
import { DbTracker } from './db-tracker.js';
import { getRun, listSteps } from './store.js';
import { PipelineRunner } from './runner.js';
import { STEP_NAMES } from './types.js';

let work: Awaited<ReturnType<typeof tempDir>>;
let shared: PipelineEnv;
const runners: PipelineRunner[] = [];

// One database, store and key for the file (PGlite's start-up is most of a test's time otherwise);
// every test makes its own runs, whose versions (<parent>-retrain.<run>) never collide.
beforeAll(async () => {
  work = await tempDir('aegis-pipeline-');
  const db = await openDb({ url: MEMORY });
  shared = await pipelineEnv(work.path, db);
  await seedProduction(shared);
});
afterEach(async () => {
  for (const r of runners.splice(0)) await r.close();
});
afterAll(async () => {
  await shared?.db.close();
  await work.cleanup();
});

/** The shared database and store, with example_multimodal@0.1 (trained on v1) in production. */
async function setup(): Promise<PipelineEnv> {
  return shared;
}

function runnerFor(env: PipelineEnv, o: DepsOptions = {}): PipelineRunner {
  const runner = new PipelineRunner(pipelineDeps(env, o));
  runners.push(runner);
  return runner;
}

let alerts = 0;
/** Posts a ModelDrift alert through the real Alertmanager receiver wired to `runner`; returns the run id it started. */
async function alertRun(env: PipelineEnv, runner: PipelineRunner, annotations: Record<string, string> = { dataset_uri: DATASET_V2 }): Promise<{ runId: number; alertId: number }> {
  const { app } = await receiverApp(env.db, { cooldownSeconds: 0 }, runner as never);
  try {
    const res = await app.inject({
      method: 'POST',
      url: '/alertmanager',
      headers: { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'application/json' },
      payload: payload([{ labels: { model: MODEL, version: '0.1' }, annotations, startsAt: `2025-01-01T00:00:${String(++alerts).padStart(2, '0')}Z` }]),
    });
    expect(res.statusCode, res.body).toBe(200);
    const body = res.json<{ triggers: Array<{ state: string; runId: string }>; alerts: Array<{ id?: number }> }>();
    expect(body.triggers).toHaveLength(1);
    expect(body.triggers[0]!.state).toBe('started');
    const trigger = (await listRetrainTriggers(env.db))[0]!;
    return { runId: Number(body.triggers[0]!.runId), alertId: trigger.alertId };
  } finally {
    await app.close();
  }
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function stepStates(db: Db, runId: number): Promise<Record<string, string>> {
  return Object.fromEntries((await listSteps(db, runId)).map((s) => [s.name, s.state]));
}

async function objects(store: ArtifactStore, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const o of store.list(prefix)) keys.push(o.key);
  return keys;
}

describe('a drift alert starts a run: train → evaluate → package → sign → push → register → canary', () => {
  it('retrains on the alert\'s dataset, and the new version is signed, pushed, registered with its lineage and canaried', async () => {
    const env = await setup();
    const canary = new RecordingCanary();
    const runner = runnerFor(env, { canary });
    const { runId, alertId } = await alertRun(env, runner);
    const run = await runner.wait(runId);
    expect(run.state, run.error ?? '').toBe('succeeded');
    const version = `0.1-retrain.${runId}`;
    expect(run).toMatchObject({ model: MODEL, version, parentVersion: '0.1', datasetUri: DATASET_V2, alertId, source: 'alert' });

    const steps = await listSteps(env.db, runId);
    expect(steps.map((s) => [s.name, s.state, s.attempts])).toEqual(STEP_NAMES.map((s) => [s, 'succeeded', 1]));
    expect(steps.find((s) => s.name === 'train')!.logs).toMatch(/epoch 15: loss/);
    expect(steps.find((s) => s.name === 'evaluate')!.logs).toMatch(/pass: accuracy 0\.894 >= 0\.85 \(minimum\)/);

    // Signed and pushed: the archive in the store verifies against the key, and is the one registered.
    const key = archiveKey(MODEL, version);
    expect(await objects(env.store, `model-archives/${MODEL}/${version}/`)).toEqual([key, `${key}.sig`]);
    const local = env.store.localPath!(key)!;
    const verified = await verifyArchiveFile(local, `${local}.sig`, env.trust);
    const registered = await env.registry.getVersion(MODEL, version);
    expect(registered.archiveSha256).toBe(verified.sha256);
    expect(registered.archiveUri).toBe(env.store.uriOf(key));
    expect(registered.manifest).toMatchObject({ name: MODEL, version, parent: { version: '0.1' }, dataset: { uri: DATASET_V2 }, labels: { 'aegis.pipeline_run': String(runId), 'aegis.alert_id': String(alertId) } });
    expect(registered.lineage).toMatchObject({ parentVersion: '0.1', datasetUri: DATASET_V2, alertId, alertname: 'ModelDrift', pipelineRunId: runId, runId: run.uid, tracker: 'db' });

    expect(canary.started).toEqual([{ model: MODEL, version, actor: 'aegis-pipeline-test', rolloutId: 100 }]);
    expect(run.outputs).toMatchObject({ version, rolloutId: 100, registered: `${MODEL}@${version}`, archiveSha256: verified.sha256 });

    // The trigger's slot is free again.
    expect((await listRetrainTriggers(env.db))[0]).toMatchObject({ runId: String(runId), state: 'succeeded' });

    // No MLflow configured: the run is tracked in the database.
    expect(run.trackingKind).toBe('db');
    expect(run.tracking).toMatchObject({
      status: 'FINISHED',
      params: { model: MODEL, parent_version: '0.1', dataset_uri: DATASET_V2, epochs: '15', seed: '7', trainer: 'aegis-train/1' },
      tags: { 'aegis.gate': 'passed', 'aegis.outcome': 'succeeded', 'aegis.rollout_id': '100', 'aegis.alert_id': String(alertId) },
      artifacts: { 'model/model.tar.gz': { bytes: verified.size }, 'model/model.tar.gz.sig': {} },
      modelVersion: { name: MODEL, version },
      aliases: { candidate: version },
    });
    const metrics = await DbTracker.metrics(env.db, runId);
    expect(metrics.filter((m) => m.key === 'train_loss').map((m) => m.step)).toEqual(Array.from({ length: 15 }, (_, i) => i + 1));
    expect(metrics.find((m) => m.key === 'accuracy')?.value).toBe(0.894);
    expect(metrics.find((m) => m.key === 'production_accuracy')?.value).toBe(0.918);
  });

  it('start is idempotent on the request id: the same run, not a second one', async () => {
    const env = await setup();
    const runner = runnerFor(env, { canary: new RecordingCanary(), settings: { evaluate: { minAccuracy: 0.99, maxRegression: 0.05 } } });
    const request = {
      requestId: 'alert-trigger-77',
      triggerId: 77,
      model: MODEL,
      datasetUri: DATASET_V2,
      alert: { id: 1, alertname: 'ModelDrift', fingerprint: 'f', startsAt: '2025-01-01T00:00:00Z', labels: {}, annotations: {} },
    };
    const [a, b] = await Promise.all([runner.start(request), runner.start(request)]);
    const c = await runner.start(request);
    expect(b.runId).toBe(a.runId);
    expect(c.runId).toBe(a.runId);
    const count = await env.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM pipeline_runs WHERE request_id = 'alert-trigger-77'`);
    expect(count.rows[0]!.n).toBe(1);
    await runner.wait(Number(a.runId));
  });
});

describe('the evaluation gate', () => {
  it('rejects a candidate below minAccuracy: the run ends rejected with the reason, nothing is packaged, pushed or registered', async () => {
    const env = await setup();
    const canary = new RecordingCanary();
    const runner = runnerFor(env, { canary, settings: { evaluate: { minAccuracy: 0.99, maxRegression: 0.05 } } });
    const { runId } = await alertRun(env, runner);
    const run = await runner.wait(runId);
    expect(run.state).toBe('rejected');
    expect(run.errorCode).toBe('PIPELINE_REJECTED');
    expect(run.error).toContain('accuracy 0.894 < 0.99 (minimum)');
    expect(await stepStates(env.db, runId)).toEqual({ train: 'succeeded', evaluate: 'failed', package: 'skipped', sign: 'skipped', push: 'skipped', register: 'skipped', canary: 'skipped' });
    const evaluate = (await listSteps(env.db, runId)).find((s) => s.name === 'evaluate')!;
    expect(evaluate).toMatchObject({ errorCode: 'PIPELINE_REJECTED', attempts: 1 });
    expect(evaluate.outputs.checks).toContainEqual({ metric: 'accuracy', op: '>=', value: 0.894, threshold: 0.99, rule: 'minimum', passed: false });
    expect(await objects(env.store, `model-archives/${MODEL}/${run.version}/`)).toEqual([]);
    expect((await env.registry.listVersions(MODEL)).map((v) => v.version)).not.toContain(run.version);
    expect(await readdir(join(env.work, 'pipeline', String(runId)))).not.toContain('dist');
    expect(canary.started).toEqual([]);
    expect((await listRetrainTriggers(env.db))[0]).toMatchObject({ runId: String(runId), state: 'failed' });
    expect(run.tracking).toMatchObject({ status: 'FINISHED', tags: { 'aegis.gate': 'rejected', 'aegis.outcome': 'rejected' } });
  });

  it('rejects a candidate that regresses from production by more than maxRegression', async () => {
    const env = await setup();
    const runner = runnerFor(env, { canary: new RecordingCanary(), settings: { evaluate: { minAccuracy: 0.5, maxRegression: 0.01 } } });
    const run = await runner.wait((await runner.submit({ datasetUri: DATASET_V2, model: MODEL })).id);
    expect(run.state).toBe('rejected');
    expect(run.error).toContain('accuracy 0.894 < 0.908 (production 0.1 (0.918) - maxRegression 0.01)');
    expect(run.error).toContain('macro_f1 0.8941 < 0.9079 (production 0.1 (0.9179) - maxRegression 0.01)');
  });
});

/** An artifact store whose uploads of model archives fail `failures` times (a fake outage: a real store cannot be made to fail on cue). */
class FlakyStore implements ArtifactStore {
  readonly inner: ArtifactStore;
  failures: number;
  puts = 0;
  constructor(inner: ArtifactStore, failures: number) {
    this.inner = inner;
    this.failures = failures;
  }
  get uri() {
    return this.inner.uri;
  }
  async put(key: string, body: Readable | Buffer, options?: PutOptions) {
    if (key.endsWith('model.tar.gz') && this.failures > 0) {
      this.failures--;
      if (!Buffer.isBuffer(body)) body.destroy();
      throw new AegisError('STORE_UNREACHABLE', 'connection reset by peer (injected)');
    }
    this.puts++;
    return this.inner.put(key, body, options);
  }
  get(key: string) {
    return this.inner.get(key);
  }
  head(key: string) {
    return this.inner.head(key);
  }
  list(prefix: string) {
    return this.inner.list(prefix);
  }
  delete(key: string) {
    return this.inner.delete(key);
  }
  uriOf(key: string) {
    return this.inner.uriOf(key);
  }
  localPath(key: string) {
    return this.inner.localPath?.(key);
  }
}

describe('retries', () => {
  it('retries a step that fails twice (fake store outage) with exponential backoff, then succeeds', async () => {
    const env = await setup();
    const delays: number[] = [];
    const store = new FlakyStore(env.store, 2);
    const runner = runnerFor(env, { canary: new RecordingCanary(), store, settings: { attempts: 3, backoffMs: 250 }, sleep: async (ms) => void delays.push(ms) });
    const run = await runner.wait((await runner.submit({ datasetUri: DATASET_V2, model: MODEL })).id);
    expect(run.state, run.error ?? '').toBe('succeeded');
    expect(delays).toEqual([250, 500]);
    const push = (await listSteps(env.db, run.id)).find((s) => s.name === 'push')!;
    expect(push).toMatchObject({ state: 'succeeded', attempts: 3 });
    expect(push.logs.match(/failed: \[STORE_UNREACHABLE\] connection reset by peer/g)).toHaveLength(2);
    expect(push.outputs).toMatchObject({ uploaded: { archive: true, signature: true } });
  });

  it('fails the run after the last try, and `retry` resumes at the failed step without redoing the ones before', async () => {
    const env = await setup();
    const store = new FlakyStore(env.store, 1000);
    const runner = runnerFor(env, { canary: new RecordingCanary(), store, settings: { attempts: 2 } });
    const { runId } = await alertRun(env, runner);
    const failed = await runner.wait(runId);
    expect(failed.state).toBe('failed');
    expect(failed.errorCode).toBe('STORE_UNREACHABLE');
    expect(failed.error).toBe('step push failed after 2 tries: connection reset by peer (injected)');
    expect(await stepStates(env.db, runId)).toMatchObject({ sign: 'succeeded', push: 'failed', register: 'pending', canary: 'pending' });
    expect((await listRetrainTriggers(env.db))[0]).toMatchObject({ state: 'failed' });
    const signedBefore = (await listSteps(env.db, runId)).find((s) => s.name === 'sign')!;

    store.failures = 0;
    await runner.retry(runId);
    const done = await runner.wait(runId);
    expect(done.state, done.error ?? '').toBe('succeeded');
    expect(done.attempts).toBe(2);
    const steps = await listSteps(env.db, runId);
    expect(steps.map((s) => [s.name, s.attempts])).toEqual([['train', 1], ['evaluate', 1], ['package', 1], ['sign', 1], ['push', 1], ['register', 1], ['canary', 1]]);
    expect(steps.find((s) => s.name === 'sign')!.finishedAt).toEqual(signedBefore.finishedAt);
  });

  it('does not retry what a retry cannot fix: a dataset that is not there fails the run at once', async () => {
    const env = await setup();
    const runner = runnerFor(env, { canary: new RecordingCanary(), settings: { attempts: 3 } });
    const run = await runner.wait((await runner.submit({ datasetUri: join(env.work, 'no-such-dataset'), model: MODEL })).id);
    expect(run.state).toBe('failed');
    expect(run.error).toMatch(/^step train failed \(not retried: a retry cannot fix it\)/);
    expect((await listSteps(env.db, run.id)).find((s) => s.name === 'train')!.attempts).toBe(1);
  });
});

describe('cancel', () => {
  it('stops a running step (its trainer process is killed), ends the run cancelled; a queued run is cancelled at once', async () => {
    const env = await setup();
    const pidFile = join(env.work, 'trainer.pid');
    const trainCommand = [process.execPath, '-e', `require('fs').writeFileSync(${JSON.stringify(pidFile)}, String(process.pid)); console.log('training started'); setInterval(() => {}, 1000)`];
    const runner = runnerFor(env, { canary: new RecordingCanary(), settings: { trainCommand, maxConcurrentRuns: 1 } });
    const { runId } = await alertRun(env, runner);
    const queued = await runner.submit({ datasetUri: DATASET_V2, model: MODEL });
    await until('the trainer to start', async () => ((await listSteps(env.db, runId))[0]!.logs.includes('training started') ? true : undefined));
    const pid = Number(await readFile(pidFile, 'utf8'));
    expect((await getRun(env.db, queued.id)).state).toBe('queued');

    const cancelledQueued = await runner.cancel(queued.id);
    expect(cancelledQueued.state).toBe('cancelled');
    expect(Object.values(await stepStates(env.db, queued.id))).toEqual(STEP_NAMES.map(() => 'pending'));

    const cancelled = await runner.cancel(runId);
    expect(cancelled).toMatchObject({ state: 'cancelled', errorCode: 'PIPELINE_CANCELLED' });
    expect((await listSteps(env.db, runId))[0]).toMatchObject({ name: 'train', state: 'failed', error: 'cancelled' });
    expect(await stepStates(env.db, runId)).toMatchObject({ evaluate: 'pending', canary: 'pending' });
    await until('the trainer process to be gone', async () => {
      try {
        process.kill(pid, 0);
        return undefined;
      } catch {
        return true;
      }
    });
    expect((await listRetrainTriggers(env.db))[0]).toMatchObject({ runId: String(runId), state: 'failed' });
    expect(cancelled.tracking).toMatchObject({ status: 'KILLED' });
  });
});

describe('shutdown', () => {
  it('stopping the runner interrupts the running step and leaves the run to the next runner, which finishes it', async () => {
    const env = await setup();
    const trainCommand = [process.execPath, '-e', `console.log('training started'); setInterval(() => {}, 1000)`];
    const first = runnerFor(env, { canary: new RecordingCanary(), settings: { trainCommand } });
    const { id } = await first.submit({ datasetUri: DATASET_V2, model: MODEL });
    await until('the trainer to start', async () => ((await listSteps(env.db, id))[0]!.logs.includes('training started') ? true : undefined));
    await first.close();
    const left = await getRun(env.db, id);
    expect(left).toMatchObject({ state: 'running', owner: null });
    expect((await listSteps(env.db, id))[0]).toMatchObject({ state: 'pending', attempts: 1, error: 'interrupted: the process is shutting down' });

    const second = runnerFor(env, { canary: new RecordingCanary() });
    await second.resumeAll();
    const done = await second.wait(id);
    expect(done.state, done.error ?? '').toBe('succeeded');
    expect((await listSteps(env.db, id))[0]).toMatchObject({ state: 'succeeded', attempts: 2 });
  });
});
