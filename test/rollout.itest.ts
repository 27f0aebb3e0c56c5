/**
 * Canary rollouts end to end, with real processes and a real Prometheus and
 * Alertmanager (scripts/services.sh): `aegis up` (control plane + gateway +
 * model server children) on a fresh home, versions pushed and registered
 * while it runs (the registration goes through its API), `aegis rollout …`
 * commands, `aegis load`-style open-loop traffic (runLoad) on the gateway.
 *
 *  1. A healthy canary, judged by the prometheus provider on the recorded
 *     error ratio, walks its steps and becomes production; the old one is
 *     archived; no request fails.
 *  2. A canary failing 10% of its requests (`--inject-fault error-rate=0.1`)
 *     makes AegisCanaryErrorRateHigh fire; the rollout's prometheus analysis
 *     watches that alert (ALERTS{alertstate="firing"}) and its error-ratio
 *     metric, and aborts: weight 0, stable unchanged, Alertmanager notified,
 *     and no request dropped (the only failures are the canary's injected 5xx).
 *  3. The control plane is killed with SIGKILL in the middle of a rollout; a
 *     new `aegis up` resumes it at its step and weight and finishes it.
 */
import { spawn } from 'node:child_process';
import { readFile, rm, writeFile, cp } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runLoad, type LoadReport } from '../src/loadgen/index.js';
import type { RolloutView } from '../src/rollout/controller/describe.js';
import { startAegisUp, stopProcess, until, type AegisUp } from '../src/test-support/aegis-up.js';
import { tempDir } from '../src/test-support/fs.js';
import { FILE_SD_DIR, PROMETHEUS_URL, WEBHOOK_URL, requirePrometheus, webhookReceiver, writeTargets, type WebhookPayload } from '../src/test-support/prometheus.js';
import { EXAMPLE_MODEL } from '../src/training/example.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(REPO, 'bin', 'aegis.js');
const PAYLOAD = join(REPO, 'examples', 'requests', 'example_multimodal.json');
const MODEL = 'example_multimodal';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


describe('canary rollouts through aegis up, judged by a real Prometheus', () => {
  let work: Awaited<ReturnType<typeof tempDir>>;
  let env: NodeJS.ProcessEnv;
  let up: AegisUp | undefined;
  const runId = Date.now().toString(36);
  const targetsFile = FILE_SD_DIR ? join(FILE_SD_DIR, `rollout-itest-${runId}.json`) : '';
  const gatewayPort = 18_480 + Math.floor(Math.random() * 400);
  const controlPort = gatewayPort + 1000;

  function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      const c = spawn(process.execPath, [BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      c.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      c.on('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    });
  }

  async function okJson<T>(...args: string[]): Promise<T> {
    const r = await cli(...args, '--json');
    expect(r.code, `aegis ${args.join(' ')}: ${r.stdout}${r.stderr}`).toBe(0);
    return JSON.parse(r.stdout) as T;
  }

  const startUp = () => startAegisUp(['--port', String(gatewayPort), '--control-port', String(controlPort)], env);

  async function stopUp(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const c = up?.child;
    up = undefined;
    await stopProcess(c, signal);
  }

  /** Packages, pushes and registers example_multimodal@version (signed with the dev key `aegis up` made). */
  async function publish(version: string): Promise<void> {
    const dir = join(work.path, `m-${version}`);
    await cp(EXAMPLE_MODEL, dir, { recursive: true });
    const manifest = await readFile(join(dir, 'aegis.yaml'), 'utf8');
    await writeFile(join(dir, 'aegis.yaml'), manifest.replace(/^version: .*$/m, `version: "${version}"`));
    const pushed = await okJson<{ uri: string }>('model', 'push', dir, '--key', join(env.AEGIS_HOME!, 'keys', 'dev', 'signing-key.pem'));
    const registered = await okJson<{ created: boolean; version: { version: string } }>('model', 'register', pushed.uri);
    expect(registered.version.version).toBe(version);
  }

  async function status(): Promise<RolloutView> {
    return okJson<RolloutView>('rollout', 'status', MODEL);
  }



  /** Registers the gateway and both model servers with Prometheus once the canary server runs. */
  async function scrapeDeployment(): Promise<void> {
    const token = (await readFile(join(env.AEGIS_HOME!, 'control.token'), 'utf8')).trim();
    const d = await until(
      'the canary server',
      async () => {
        const r = await fetch(`${up!.control}/api/v1/deployment`, { headers: { authorization: `Bearer ${token}` } });
        const body = (await r.json()) as { models: Array<{ url: string; stable: { url: string }; canary: { url: string } | null }> };
        return body.models[0]?.canary ? body.models[0] : undefined;
      },
      30_000,
    );
    await writeTargets(targetsFile, 'aegis-rollout-itest', { gateway: d.url, stable: d.stable.url, canary: d.canary!.url });
  }

  async function writeSpec(name: string, yaml: string): Promise<string> {
    const path = join(work.path, `${name}.yaml`);
    await writeFile(path, yaml);
    return path;
  }

  function load(durationMs: number, signal: AbortSignal): Promise<LoadReport> {
    return readFile(PAYLOAD).then((payload) => runLoad({ url: `${up!.url}/infer`, qps: 100, durationMs, payload, seed: 11, signal }));
  }

  beforeAll(async () => {
    await requirePrometheus();
    work = await tempDir('aegis-rollout-it-');
    env = { ...process.env, AEGIS_HOME: join(work.path, 'home'), AEGIS_LOG_LEVEL: 'warn', AEGIS_CONTROL_PORT: String(controlPort) };
    up = await startUp();
    for (const v of ['0.2', '0.3', '0.4']) await publish(v);
  });

  afterAll(async () => {
    await stopUp();
    if (targetsFile) await rm(targetsFile, { force: true });
    await work?.cleanup();
  });

  it('promotes a healthy canary judged by the prometheus provider; the old stable is archived and no request fails', async () => {
    const spec = await writeSpec(
      'healthy',
      `apiVersion: aegis.dev/v1
kind: Rollout
strategy:
  canary:
    steps:
      - setWeight: 25
      - pause: {duration: 15s}
      - setWeight: 50
      - pause: {duration: 15s}
    analysis:
      templates: [{templateName: prometheus-error-ratio}]
analysisTemplates:
  - name: prometheus-error-ratio
    args: [{name: version}]   # the canary's, filled in by the controller: other versions' series never count
    metrics:
      - name: error-ratio
        initialDelay: 10s
        interval: 5s
        inconclusiveLimit: 3
        successCondition: result[0] < 0.05
        provider:
          prometheus:
            address: ${PROMETHEUS_URL}
            query: aegis:inference_error_ratio:rate1m{model="${MODEL}",version="{{args.version}}",track="canary"}
`,
    );
    const stop = new AbortController();
    const traffic = load(120_000, stop.signal);
    try {
      const started = await okJson<RolloutView>('rollout', 'start', `${MODEL}@0.2`, '--spec', spec);
      expect(started).toMatchObject({ model: MODEL, version: '0.2', stableVersion: '0.1', phase: 'Progressing' });
      await scrapeDeployment();
      const done = await until('the healthy canary to finish', async () => {
        const s = await status();
        return s.phase === 'Healthy' || s.phase === 'Degraded' ? s : undefined;
      }, 90_000);
      expect(done.phase, JSON.stringify(done, null, 2)).toBe('Healthy');
      const measured = done.analysis.find((a) => a.run === 'background')!.metrics[0]!;
      expect(measured.successful).toBeGreaterThanOrEqual(2);
      expect(measured.failed).toBe(0);
      expect(Number(measured.measurements.find((m) => m.phase === 'Successful')!.value.replace(/[[\]]/g, ''))).toBe(0);
    } finally {
      stop.abort();
    }
    const report = await traffic;
    expect(report.outcomes, JSON.stringify(report.outcomes)).toMatchObject({ serverErrors: 0, networkErrors: 0, timeouts: 0, unexpected: 0, dropped: 0 });
    expect(report.completed).toBeGreaterThan(1000);

    const served = await fetch(`${up!.url}/v2/models/${MODEL}`).then((r) => r.json() as Promise<{ versions?: string[] }>);
    expect(JSON.stringify(served)).toContain('0.2');
    // The registry commands work while `aegis up` holds the embedded database (through its API).
    const list = await okJson<{ model: string; versions: Array<{ version: string; stage: string }> }>('model', 'list', MODEL);
    expect(Object.fromEntries(list.versions.map((v) => [v.version, v.stage]))).toMatchObject({ '0.1': 'archived', '0.2': 'production' });
    const history = await okJson<{ entries: Array<{ action: string; subject: string }> }>('model', 'history', MODEL, '--limit', '20');
    expect(history.entries.map((e) => e.action)).toEqual(expect.arrayContaining(['rollout.start', 'version.promote', 'version.archive']));
  });

  it('aborts a canary failing 10% of requests: the alert fires, the prometheus analysis rolls it back, no request is dropped', async () => {
    const { server: webhook, payloads } = await webhookReceiver(WEBHOOK_URL!);
    const spec = await writeSpec(
      'faulty',
      `apiVersion: aegis.dev/v1
kind: Rollout
strategy:
  canary:
    steps:
      - setWeight: 30
      - pause: {}
    analysis:
      templates: [{templateName: canary-alerts}]
analysisTemplates:
  - name: canary-alerts
    # model and version are filled in by the controller (the canary's); prometheus has a default.
    args: [{name: model}, {name: version}, {name: prometheus, value: "${PROMETHEUS_URL}"}]
    metrics:
      # Roll back when the canary alert fires (deploy/prometheus/alert-rules.yaml, for: 1m).
      - name: canary-alert
        interval: 5s
        successCondition: result[0] == 0
        provider:
          prometheus:
            address: "{{args.prometheus}}"
            query: sum(ALERTS{alertname="AegisCanaryErrorRateHigh",alertstate="firing",model="{{args.model}}",version="{{args.version}}"}) or vector(0)
      # Recorded for the status: the canary's 5xx share as Prometheus sees it.
      - name: error-ratio
        initialDelay: 20s
        interval: 5s
        failureLimit: 1000
        inconclusiveLimit: 1000
        successCondition: result[0] < 0.05
        provider:
          prometheus:
            address: "{{args.prometheus}}"
            query: aegis:inference_error_ratio:rate1m{model="{{args.model}}",version="{{args.version}}",track="canary"}
`,
    );
    const stop = new AbortController();
    const traffic = load(240_000, stop.signal);
    let done: RolloutView;
    try {
      const started = await okJson<RolloutView>('rollout', 'start', `${MODEL}@0.3`, '--spec', spec, '--inject-fault', 'error-rate=0.1');
      expect(started).toMatchObject({ version: '0.3', stableVersion: '0.2', injectFault: 'error-rate=0.1' });
      await scrapeDeployment();
      done = await until('the faulty canary to be aborted', async () => {
        const s = await status();
        return s.phase === 'Degraded' || s.phase === 'Healthy' ? s : undefined;
      }, 180_000);
      // a few more seconds of traffic on the stable alone after the abort
      await sleep(3000);
    } finally {
      stop.abort();
    }
    const report = await traffic;
    webhook.close();

    expect(done.phase, JSON.stringify(done, null, 2)).toBe('Degraded');
    expect(done.weight).toBe(0);
    expect(done.abort?.by).toBe('analysis');
    expect(done.abort?.reason).toMatch(/canary-alert/);
    const bg = done.analysis.find((a) => a.run === 'background')!;
    const alertMetric = bg.metrics.find((m) => m.name === 'canary-alert')!;
    expect(alertMetric.phase).toBe('Failed');
    expect(alertMetric.measurements.at(-1)!.value).toBe('[1]');
    const ratio = bg.metrics.find((m) => m.name === 'error-ratio')!;
    const seen = ratio.measurements.map((m) => Number(m.value.replace(/[[\]]/g, ''))).filter((x) => Number.isFinite(x));
    expect(ratio.measurements.every((m) => !m.value.includes(',')), JSON.stringify(ratio.measurements)).toBe(true);
    expect(Math.max(...seen), JSON.stringify(ratio.measurements)).toBeGreaterThan(0.05);

    // Alertmanager got it and notified its receiver.
    expect(payloads.some((p: WebhookPayload) => p.status === 'firing' && p.alerts.some((a) => a.labels.alertname === 'AegisCanaryErrorRateHigh' && a.labels.model === MODEL))).toBe(true);

    // Nothing was dropped: the only failures are the canary's injected 500s (about 10% of its 30%).
    expect(report.outcomes, JSON.stringify(report.outcomes)).toMatchObject({ networkErrors: 0, timeouts: 0, unexpected: 0, dropped: 0 });
    expect(Object.keys(report.statusCounts).sort()).toEqual(['200', '500']);
    expect(report.outcomes.serverErrors / report.completed).toBeLessThan(0.06);
    // The stable (0.2) still serves everything.
    const after = await fetch(`${up!.url}/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: await readFile(PAYLOAD) });
    expect(after.status).toBe(200);
    expect(after.headers.get('x-aegis-track')).toBe('stable');
  });

  it('resumes a rollout after the control plane is killed with SIGKILL, and finishes it', async () => {
    const spec = await writeSpec(
      'resume',
      `apiVersion: aegis.dev/v1
kind: Rollout
strategy:
  canary:
    steps:
      - setWeight: 30
      - pause: {duration: 20s}
      - setWeight: 60
      - pause: {duration: 2s}
`,
    );
    await okJson<RolloutView>('rollout', 'start', `${MODEL}@0.4`, '--spec', spec);
    const inPause = await until('the canary at 30% in its pause', async () => {
      const s = await status();
      return s.weight === 30 && s.step === 1 ? s : undefined;
    }, 30_000);
    expect(inPause.phase).toBe('Progressing');
    const killedAt = Date.now();
    await stopUp('SIGKILL');
    // Its model servers notice and exit (their stdin closes), freeing the ports.
    await sleep(1500);
    up = await startUp();
    const resumed = await status();
    expect(resumed.step).toBeGreaterThanOrEqual(1);
    const done = await until('the resumed rollout to finish', async () => {
      const s = await status();
      return s.phase === 'Healthy' || s.phase === 'Degraded' ? s : undefined;
    }, 60_000);
    expect(done.phase, JSON.stringify(done, null, 2)).toBe('Healthy');
    expect(done.events.map((e) => e.type)).toContain('Resumed');
    // The pause kept counting across the restart: it ended 20 s after it began, not 20 s after the restart.
    const completedAt = Date.parse(done.finishedAt!);
    expect(completedAt - killedAt).toBeLessThan(20_000 + 15_000);
    await stopUp();
    const list = await okJson<{ versions: Array<{ version: string; stage: string }> }>('model', 'list', MODEL);
    const stage = Object.fromEntries(list.versions.map((v) => [v.version, v.stage]));
    // 0.3 kept its canary stage when aborted, until the next rollout's canary (0.4) displaced it.
    expect(stage).toEqual({ '0.1': 'archived', '0.2': 'archived', '0.3': 'none', '0.4': 'production' });
    up = await startUp();
    const served = await fetch(`${up.url}/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: await readFile(PAYLOAD) });
    expect(served.status).toBe(200);
  });
});
