/**
 * Retrain on drift, end to end, with real processes and services
 * (scripts/services.sh): `aegis up` serves the example model (trained on the
 * v1 dataset) with its control plane listening where the services'
 * Alertmanager sends its webhooks (with its bearer token); Prometheus scrapes
 * the gateway and the model server; open-loop traffic (runLoad, as
 * `aegis load`) sends rows of the shifted v2 dataset. Then, with nothing else
 * done by the test:
 *   the drift monitor flags the inputs → ModelDrift fires in Prometheus →
 *   Alertmanager posts it to Aegis → one pipeline run trains on v2, evaluates,
 *   packages, signs, pushes and registers a new version → the MLflow run has
 *   its params, metrics and the signed archive → the new version's canary
 *   rollout starts.
 * Posting the seed runbook's sample payload by hand starts exactly one more
 * run; posting it 100 times more starts none.
 *
 * The committed ModelDrift rule waits `for: 10m`; this test loads the same rule
 * with `for: 2s` from a test rule file (AEGIS_PROM_RULES_DIR), everything else unchanged.
 */
import { spawn } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { runLoad } from '../src/loadgen/index.js';
import { startAegisUp, stopProcess, until, type AegisUp } from '../src/test-support/aegis-up.js';
import { tempDir } from '../src/test-support/fs.js';
import { FILE_SD_DIR, PROMETHEUS_URL, SERVICES_HINT, WEBHOOK_URL, requirePrometheus, writeTargets } from '../src/test-support/prometheus.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(REPO, 'bin', 'aegis.js');
const MODEL = 'example_multimodal';
const V2 = join(REPO, 'examples', 'datasets', 'example_multimodal', 'v2');
const SEED = join(REPO, 'src', 'alerts', 'fixtures', 'seed-test-alert.json');
const RULES_DIR = process.env.AEGIS_PROM_RULES_DIR;
const MLFLOW_URL = process.env.AEGIS_TEST_MLFLOW_URL;
const WEBHOOK_TOKEN = process.env.AEGIS_ALERTMANAGER_WEBHOOK_TOKEN;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Run {
  id: number;
  state: string;
  source: string;
  model: string | null;
  version: string | null;
  parentVersion: string | null;
  datasetUri: string | null;
  alertId: number | null;
  trackingKind: string | null;
  trackingRunId: string | null;
  error: string | null;
}

describe('retrain on drift: drift → ModelDrift → Alertmanager → pipeline → MLflow → signed version → canary', () => {
  let work: Awaited<ReturnType<typeof tempDir>>;
  let env: NodeJS.ProcessEnv;
  let up: AegisUp | undefined;
  let gateway = '';
  let control = '';
  let token = '';
  const runId = Date.now().toString(36);
  const targetsFile = FILE_SD_DIR ? join(FILE_SD_DIR, `retrain-itest-${runId}.json`) : '';
  const ruleFile = RULES_DIR ? join(RULES_DIR, `retrain-itest-${runId}.yaml`) : '';
  const stop = new AbortController();

  async function api<T>(path: string, init: RequestInit = {}): Promise<T> {
    const res = await fetch(control + path, { ...init, headers: { authorization: `Bearer ${token}`, ...(init.headers ?? {}) }, signal: AbortSignal.timeout(10_000) });
    const text = await res.text();
    if (!res.ok) throw new Error(`${init.method ?? 'GET'} ${path}: ${res.status} ${text}`);
    return JSON.parse(text) as T;
  }
  /** `aegis ARGS --json` in its own process, with this test's environment. */
  const cliJson = <T = unknown>(...args: string[]) =>
    new Promise<T>((resolve, reject) => {
      const c = spawn(process.execPath, [BIN, ...args, '--json'], { env, stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      c.stdout.on('data', (d: Buffer) => (out += d.toString()));
      c.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as T) : reject(new Error(`aegis ${args.join(' ')} exited ${code}: ${out}`))));
    });
  const runs = async () => (await api<{ runs: Run[] }>('/api/v1/pipeline/runs?limit=100')).runs;



  beforeAll(async () => {
    await requirePrometheus();
    if (!RULES_DIR || !MLFLOW_URL || !WEBHOOK_TOKEN) throw new Error(`AEGIS_PROM_RULES_DIR, AEGIS_TEST_MLFLOW_URL and AEGIS_ALERTMANAGER_WEBHOOK_TOKEN must be set. ${SERVICES_HINT}`);
    // The committed ModelDrift rule, waiting 2 s instead of 10 minutes.
    const rules = YAML.parse(await readFile(join(REPO, 'deploy', 'prometheus', 'drift-rules.yaml'), 'utf8')) as { groups: Array<{ name: string; rules: Array<Record<string, unknown>> }> };
    for (const g of rules.groups) {
      g.name = `${g.name}-itest-${runId}`;
      for (const r of g.rules) {
        if (r.alert !== 'ModelDrift') continue;
        r.for = '2s';
        // A label of this run's own: Alertmanager remembers what it notified (for repeat_interval, across restarts),
        // and would not notify again an alert with the labels of an earlier run whose resolution it could not deliver.
        r.labels = { ...(r.labels as Record<string, string>), itest_run: runId };
      }
    }
    await writeFile(ruleFile, YAML.stringify(rules));
    const reload = await fetch(`${PROMETHEUS_URL}/-/reload`, { method: 'POST' });
    expect(reload.status).toBe(200);

    work = await tempDir('aegis-retrain-it-');
    const webhook = new URL(WEBHOOK_URL!);
    env = {
      ...process.env,
      AEGIS_HOME: join(work.path, 'home'),
      AEGIS_LOG_LEVEL: 'warn',
      // The control plane listens where Alertmanager sends its webhooks, and takes its token.
      AEGIS_CONTROL_PORT: webhook.port,
      AEGIS_ALERTS_TOKEN: WEBHOOK_TOKEN,
      AEGIS_MLFLOW_TRACKING_URI: MLFLOW_URL,
      AEGIS_MLFLOW_EXPERIMENT: `aegis-retrain-itest-${runId}`,
      // What a retrain should use: the live data's dataset (exported on the drift metrics, so ModelDrift carries it).
      AEGIS_DRIFT_DATASET_URI: V2,
      AEGIS_DRIFT_INTERVAL_SECONDS: '2',
    };
    up = await startAegisUp(['--port', '0'], env);
    gateway = up.url;
    control = up.control;
    token = (await readFile(join(env.AEGIS_HOME!, 'control.token'), 'utf8')).trim();
    const d = await api<{ models: Array<{ url: string; stable: { url: string } }> }>('/api/v1/deployment');
    await writeTargets(targetsFile, 'aegis-retrain-itest', { gateway: d.models[0]!.url, stable: d.models[0]!.stable.url });
  });

  afterAll(async () => {
    stop.abort();
    await stopProcess(up?.child);
    if (targetsFile) await rm(targetsFile, { force: true });
    if (ruleFile) {
      await rm(ruleFile, { force: true });
      await fetch(`${PROMETHEUS_URL}/-/reload`, { method: 'POST' }).catch(() => undefined);
    }
    await work?.cleanup();
  });

  it('drifted traffic ends in one pipeline run, an MLflow run, a signed registered version with lineage, and its canary', async () => {
    // Requests of 50 rows of the shifted dataset each, as a client would batch them.
    const rows = (await readFile(join(V2, 'test.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .slice(0, 50)
      .map((l) => JSON.parse(l) as { image: number[]; text: number[] });
    const payload = JSON.stringify({
      inputs: {
        image: rows.map((r) => [Array.from({ length: 8 }, (_, y) => r.image.slice(y * 8, y * 8 + 8))]),
        text: rows.map((r) => r.text),
      },
    });
    const traffic = runLoad({ url: `${gateway}/infer`, qps: 20, durationMs: 240_000, payload: Buffer.from(payload), signal: stop.signal });

    const run = await until('the pipeline run started by ModelDrift to finish', async () => {
      const all = await runs();
      const r = all.find((x) => x.source === 'alert');
      return r && ['succeeded', 'failed', 'rejected', 'cancelled'].includes(r.state) ? r : undefined;
    }, 180_000);
    expect(run.state, JSON.stringify(run)).toBe('succeeded');
    expect(await runs()).toHaveLength(1); // Alertmanager's repeats and the firing group started nothing else
    expect(run).toMatchObject({ model: MODEL, parentVersion: '0.1', datasetUri: V2, trackingKind: 'mlflow' });
    expect(run.alertId).toBeGreaterThan(0);
    const detail = await api<{ steps: Array<{ name: string; state: string }> }>(`/api/v1/pipeline/runs/${run.id}`);
    expect(detail.steps.map((s) => `${s.name}:${s.state}`)).toEqual(['train', 'evaluate', 'package', 'sign', 'push', 'register', 'canary'].map((s) => `${s}:succeeded`));

    // The CLI reads the run through the control plane while `aegis up` holds the embedded database.
    const cliShow = await cliJson('pipeline', 'show', String(run.id));
    expect(cliShow).toMatchObject({ ok: true, run: { id: run.id, state: 'succeeded', version: run.version } });

    // The canary of the new version is rolling out.
    const rollout = await api<{ version: string; stableVersion: string; phase: string; createdBy: string }>(`/api/v1/rollouts/${MODEL}`);
    expect(rollout).toMatchObject({ version: run.version, stableVersion: '0.1' });
    expect(['Progressing', 'Paused', 'Healthy']).toContain(rollout.phase);

    // MLflow has the run: params, metrics, the signed archive and its signature, a model version with an alias.
    const mlflow = async <T>(path: string, body?: unknown): Promise<T> => {
      const res = await fetch(`${MLFLOW_URL}/api/2.0/mlflow/${path}`, body ? { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) } : {});
      expect(res.status, await res.clone().text()).toBe(200);
      return (await res.json()) as T;
    };
    const got = await mlflow<{ run: { info: { status: string }; data: { metrics?: Array<{ key: string; value: number }>; params?: Array<{ key: string; value: string }>; tags?: Array<{ key: string; value: string }> } } }>(`runs/get?run_id=${run.trackingRunId}`);
    expect(got.run.info.status).toBe('FINISHED');
    const metrics = Object.fromEntries((got.run.data.metrics ?? []).map((m) => [m.key, m.value]));
    expect(metrics.accuracy).toBeGreaterThan(0.8);
    expect(JSON.stringify(got.run.data.params)).toContain(V2);
    const artifacts = await mlflow<{ files?: Array<{ path: string }> }>(`artifacts/list?run_id=${run.trackingRunId}&path=model`).catch(() => ({ files: [] }));
    const allArtifacts = JSON.stringify(artifacts) + JSON.stringify(await mlflow(`artifacts/list?run_id=${run.trackingRunId}`));
    expect(allArtifacts).toMatch(/model\.tar\.gz/);
    expect(allArtifacts).toMatch(/model\.tar\.gz\.sig/);

    // The seed runbook's sample payload by hand: exactly one more run; 100 more posts: none.
    const seed = await readFile(SEED);
    const post = () => fetch(`${control}/alertmanager`, { method: 'POST', headers: { authorization: `Bearer ${WEBHOOK_TOKEN}`, 'content-type': 'application/json' }, body: seed });
    expect((await post()).status).toBe(200);
    await until('the seed run', async () => ((await runs()).length === 2 ? true : undefined), 20_000);
    for (let i = 0; i < 100; i++) expect((await post()).status).toBe(200);
    await sleep(2000);
    expect(await runs()).toHaveLength(2);
    // Without the token Alertmanager was configured with: 401.
    expect((await fetch(`${control}/alertmanager`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: seed })).status).toBe(401);

    // By hand through the CLI while aegis up holds the embedded database: run, cancel and retry go to its control
    // plane. An external run (left to `aegis pipeline step`) stays queued, so cancelling it is not a race.
    type Shown = { ok: boolean; run: { id: number; state: string; source: string; executor: string; attempts: number; createdBy: string } };
    const manual = await cliJson<Shown>('pipeline', 'run', '--dataset', V2, '--model', MODEL, '--external', '--detach');
    expect(manual).toMatchObject({ ok: true, run: { state: 'queued', source: 'manual', executor: 'external' } });
    expect((await cliJson<Shown>('pipeline', 'cancel', String(manual.run.id))).run.state).toBe('cancelled');
    const retried = await cliJson<Shown>('pipeline', 'retry', String(manual.run.id), '--detach');
    expect(retried.run).toMatchObject({ id: manual.run.id, state: 'queued' });
    expect(retried.run.attempts).toBeGreaterThan(manual.run.attempts);
    expect((await cliJson<Shown>('pipeline', 'cancel', String(manual.run.id))).run.state).toBe('cancelled');
    expect(await runs()).toHaveLength(3);

    stop.abort();
    const report = await traffic;
    expect(report.outcomes.serverErrors + report.outcomes.networkErrors + report.outcomes.timeouts).toBe(0);

    // After the control plane stops, the registry shows the new version with its lineage.
    await stopProcess(up!.child);
    const version = await cliJson<{ stage: string; lineage: Record<string, unknown> }>('model', 'show', `${MODEL}@${run.version}`);
    expect(version.lineage).toMatchObject({ parentVersion: '0.1', datasetUri: V2, alertId: run.alertId, mlflowRunId: run.trackingRunId, pipelineRunId: run.id });
    expect(version.stage).toBe('canary');
  });
});
