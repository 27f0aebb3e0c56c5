/**
 * The canary alert rules (deploy/prometheus/alert-rules.yaml):
 *  - promtool: the generated PrometheusRule's rules check (the rule file and its
 *    unit tests: test/promtool.itest.ts);
 *  - with a real Prometheus and Alertmanager (scripts/services.sh): two models,
 *    each served by a real stable and canary `aegis serve` behind an `aegis gateway`
 *    sending the canary 20% of the traffic, under open-loop load (runLoad, as
 *    `aegis load`) on the gateway; Prometheus scrapes the gateways and the servers
 *    through a file_sd file. The canary that fails 10% of its requests
 *    (`--inject-fault error-rate=0.1`) makes AegisCanaryErrorRateHigh go firing and
 *    reach Alertmanager and its webhook receiver; the healthy canary (whose
 *    traffic includes 10% malformed requests: 4xx, client errors) raises no alert
 *    at all, not even pending, over the same period.
 *
 * It uses the committed rules unchanged (for: 1m): the services' Prometheus
 * scrapes and evaluates every second, so the alert fires about 65 s after the
 * load starts; the wait is bounded at 150 s. The rules read the model servers'
 * own metrics; the gateways' metrics are checked for the split only.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { startServer } from '../src/serving/process.js';
import { runLoad, type LoadReport } from '../src/loadgen/index.js';
import { packageExampleVersion } from '../src/test-support/example-model.js';
import { tempDir } from '../src/test-support/fs.js';
import { promtool } from '../src/test-support/promtool.js';
import { ALERTMANAGER_URL, FILE_SD_DIR, PROMETHEUS_URL, WEBHOOK_URL, getJson, promQuery, requirePrometheus, webhookReceiver, writeTargets, type PromAlert } from '../src/test-support/prometheus.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const RULES_DIR = join(REPO, 'deploy', 'prometheus');
const BIN = join(REPO, 'bin', 'aegis.js');
const PAYLOAD = join(REPO, 'examples', 'requests', 'example_multimodal.json');

const FIRE_WITHIN_MS = 150_000;
/** Requests per second offered to each gateway, and the canary's share. */
const QPS = 100;
const CANARY_WEIGHT = 20;

describe('canary alert rules: promtool (the rule files themselves: test/promtool.itest.ts)', () => {
  it('the PrometheusRule (deploy/kubernetes/prometheusrule.yaml) holds rules promtool accepts', async () => {
    const pr = YAML.parse(await readFile(join(REPO, 'deploy', 'kubernetes', 'prometheusrule.yaml'), 'utf8')) as { spec: unknown };
    const dir = await mkdtemp(join(tmpdir(), 'aegis-promrule-'));
    try {
      await writeFile(join(dir, 'rules.yaml'), YAML.stringify(pr.spec));
      const r = promtool(['check', 'rules', join(dir, 'rules.yaml')]);
      expect(r.status, r.out).toBe(0);
      expect(r.out).toMatch(/SUCCESS: 9 rules found/); // the 8 canary rules and ModelDrift (drift-rules.yaml)
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

// ---------------------------------------------------------------------------------------------

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('canary alert rules: a real Prometheus and Alertmanager', () => {
  let work: Awaited<ReturnType<typeof tempDir>>;
  let env: NodeJS.ProcessEnv;
  const runId = Date.now().toString(36);
  const targetsFile = FILE_SD_DIR ? join(FILE_SD_DIR, `alerts-itest-${runId}.json`) : '';
  const children: ChildProcess[] = [];

  function run(args: string[]): Promise<{ code: number; stderr: string }> {
    return new Promise((resolve) => {
      const c = spawn(process.execPath, [BIN, ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      c.on('exit', (code) => resolve({ code: code ?? -1, stderr }));
    });
  }

  const packageVersion = (version: string) => packageExampleVersion(work.path, join(work.path, 'keys', 'signing-key.pem'), version);

  async function serve(archive: string, name: string, track: 'stable' | 'canary', fault?: string): Promise<string> {
    const args = ['--model', archive, '--public-key', join(work.path, 'keys', 'signing-key.pub.pem'), '--port', '0', '--name', name, '--track', track];
    if (fault) args.push('--inject-fault', fault);
    const { child, ready } = await startServer(args, env);
    children.push(child);
    return String(ready.url);
  }

  /** `aegis gateway` in front of a stable and a canary server; resolves with its URL once it listens. */
  function gateway(model: string, stable: string, canary: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const args = [BIN, 'gateway', '--model', model, '--stable', stable, '--canary', canary, '--weight', String(CANARY_WEIGHT), '--port', '0', '--json'];
      const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(child);
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const line = out.split('\n').find((l) => l.startsWith('{') && l.endsWith('}'));
        if (line) resolve(String((JSON.parse(line) as { url: string }).url));
      });
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.on('exit', (code) => reject(new Error(`aegis gateway exited (${code}) before it was ready: ${err.trim()}`)));
    });
  }

  beforeAll(async () => {
    // Services up, and this checkout's rule files evaluated as they are now.
    await requirePrometheus();
    const rules = await getJson<{ data: { groups: { name: string; file: string; rules: { name: string; duration?: number }[] }[] } }>(`${PROMETHEUS_URL}/api/v1/rules`);
    const group = rules.data.groups.find((g) => g.name === 'aegis-canary');
    expect(group?.file, `Prometheus must load ${join(RULES_DIR, 'alert-rules.yaml')}; rerun scripts/services.sh`).toBe(join(RULES_DIR, 'alert-rules.yaml'));
    expect(group!.rules.find((r) => r.name === 'AegisCanaryErrorRateHigh')?.duration).toBe(60);

    work = await tempDir('aegis-alerts-it-');
    env = { ...process.env, AEGIS_HOME: join(work.path, 'home'), AEGIS_LOG_LEVEL: 'warn' };
    const keys = await run(['keys', 'generate', '--out-dir', join(work.path, 'keys')]);
    expect(keys.code, keys.stderr).toBe(0);
  });

  afterAll(async () => {
    if (targetsFile) await rm(targetsFile, { force: true });
    await Promise.all(
      children.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            const t = setTimeout(() => {
              c.kill('SIGKILL');
              resolve();
            }, 10_000);
            c.once('exit', () => {
              clearTimeout(t);
              resolve();
            });
            c.kill('SIGTERM');
          }),
      ),
    );
    await work?.cleanup();
  });

  it('AegisCanaryErrorRateHigh fires for a canary failing 10% of requests and stays quiet for a healthy canary', async () => {
    const stableArchive = await packageVersion('1.0');
    const canaryArchive = await packageVersion('1.1');
    const faulty = `alerts_${runId}_faulty`;
    const healthy = `alerts_${runId}_healthy`;
    const [faultyStable, faultyCanary, healthyStable, healthyCanary] = await Promise.all([
      serve(stableArchive, faulty, 'stable'),
      serve(canaryArchive, faulty, 'canary', 'error-rate=0.1'),
      serve(stableArchive, healthy, 'stable'),
      serve(canaryArchive, healthy, 'canary'),
    ]);
    const [faultyGateway, healthyGateway] = await Promise.all([gateway(faulty, faultyStable, faultyCanary), gateway(healthy, healthyStable, healthyCanary)]);
    const urls = { faultyStable, faultyCanary, healthyStable, healthyCanary, faultyGateway, healthyGateway };

    // Register the six /metrics endpoints with Prometheus (file_sd; written atomically).
    await writeTargets(targetsFile, 'aegis-alerts-itest', urls);

    const { server: webhook, payloads } = await webhookReceiver(WEBHOOK_URL!);
    const stop = new AbortController();
    const payload = await readFile(PAYLOAD);
    const loads: Promise<LoadReport>[] = [faultyGateway, healthyGateway].map((url) =>
      runLoad({
        url: `${url}/infer`,
        qps: QPS,
        durationMs: FIRE_WITHIN_MS + 30_000,
        payload,
        // the healthy model also gets malformed requests: 4xx are client errors, not the canary's
        errorRate: url === healthyGateway ? 0.1 : 0,
        seed: 7,
        signal: stop.signal,
      }),
    );

    const started = Date.now();
    const quietViolations: PromAlert[] = [];
    let fired: PromAlert | undefined;
    let pendingAt: number | undefined;
    try {
      // Poll until the faulty canary's alert fires; every poll, nothing may be active for the healthy model,
      // and no latency alert for either.
      while (Date.now() - started < FIRE_WITHIN_MS) {
        const alerts = (await getJson<{ data: { alerts: PromAlert[] } }>(`${PROMETHEUS_URL}/api/v1/alerts`)).data.alerts;
        // Canary alerts only: the drift monitor rightly finds one repeated request unlike the training data (ModelDrift).
        const ours = alerts.filter((a) => (a.labels.model === faulty || a.labels.model === healthy) && a.labels.component === 'canary');
        quietViolations.push(...ours.filter((a) => a.labels.model === healthy || a.labels.alertname !== 'AegisCanaryErrorRateHigh'));
        const target = ours.find((a) => a.labels.model === faulty && a.labels.alertname === 'AegisCanaryErrorRateHigh');
        if (target?.state === 'pending') pendingAt ??= Date.now() - started;
        if (target?.state === 'firing') {
          fired = target;
          break;
        }
        await sleep(2000);
      }
      const elapsed = Date.now() - started;
      expect(fired, `AegisCanaryErrorRateHigh did not fire within ${FIRE_WITHIN_MS / 1000}s (pending after ${pendingAt ?? '-'} ms)`).toBeDefined();
      expect(quietViolations, 'the healthy canary (or a latency alert) became active').toEqual([]);
      // `for: 1m`: it cannot fire sooner than a minute after it went pending
      expect(elapsed).toBeGreaterThanOrEqual(60_000);
      expect(fired!.labels).toMatchObject({ alertname: 'AegisCanaryErrorRateHigh', model: faulty, version: '1.1', track: 'canary', severity: 'critical', component: 'canary' });
      expect(Number(fired!.value)).toBeGreaterThan(0.05);
      expect(Number(fired!.value)).toBeLessThan(0.2);
      expect(fired!.annotations.summary).toMatch(new RegExp(`^Canary ${faulty} 1\\.1 fails \\d+(\\.\\d+)?% of requests$`));
      expect(fired!.annotations.description).toContain('the stable track answered 0% with a 5xx');
      expect(fired!.annotations.runbook_url).toMatch(/docs\/rollouts\.md#automatic-rollback$/);

      // The quiet canary was really scraped and served: recorded request rates near the offered load
      // split 80/20, its error ratio 0 (its 4xx do not count), the faulty one's near 10%.
      const rates = await promQuery(`aegis:inference_requests:rate1m{model=~"${faulty}|${healthy}"}`);
      expect(rates.length, JSON.stringify(rates)).toBe(4);
      for (const r of rates) {
        const share = r.metric.track === 'canary' ? CANARY_WEIGHT / 100 : 1 - CANARY_WEIGHT / 100;
        expect(Number(r.value[1]), JSON.stringify(r.metric)).toBeGreaterThan(QPS * share * 0.7);
      }
      // the gateways were scraped too, and split the traffic by the weight
      const split = await promQuery(`sum by (model, track) (rate(aegis_gateway_requests_total{model=~"${faulty}|${healthy}"}[1m]))`);
      expect(split.length, JSON.stringify(split)).toBe(4);
      for (const model of [faulty, healthy]) {
        const of = (track: string) => Number(split.find((r) => r.metric.model === model && r.metric.track === track)?.value[1]);
        expect(of('canary') / (of('canary') + of('stable'))).toBeCloseTo(CANARY_WEIGHT / 100, 1);
      }
      const ratios = await promQuery(`aegis:inference_error_ratio:rate1m{model=~"${faulty}|${healthy}"}`);
      const ratio = (model: string, track: string) => Number(ratios.find((r) => r.metric.model === model && r.metric.track === track)?.value[1]);
      expect(ratio(healthy, 'canary')).toBe(0);
      expect(ratio(healthy, 'stable')).toBe(0);
      expect(ratio(faulty, 'stable')).toBe(0);
      expect(ratio(faulty, 'canary')).toBeGreaterThan(0.06);
      const fourxx = await promQuery(`sum(rate(aegis_inference_requests_total{model="${healthy}",track="canary",code=~"4.."}[1m]))`);
      expect(Number(fourxx[0]?.value[1])).toBeGreaterThan(QPS * (CANARY_WEIGHT / 100) * 0.05);

      // Prometheus sent it to Alertmanager, which notified its webhook receiver.
      const deadline = Date.now() + 20_000;
      let inAlertmanager = false;
      let notified = false;
      while (Date.now() < deadline && !(inAlertmanager && notified)) {
        const am = await getJson<{ labels: Record<string, string>; status: { state: string } }[]>(
          `${ALERTMANAGER_URL}/api/v2/alerts?filter=${encodeURIComponent(`model="${faulty}"`)}`,
        );
        inAlertmanager = am.some((a) => a.labels.alertname === 'AegisCanaryErrorRateHigh' && a.status.state === 'active');
        notified = payloads.some((p) => p.status === 'firing' && p.alerts.some((a) => a.labels.alertname === 'AegisCanaryErrorRateHigh' && a.labels.model === faulty));
        if (!(inAlertmanager && notified)) await sleep(1000);
      }
      expect(inAlertmanager, 'the alert is not in Alertmanager').toBe(true);
      expect(notified, 'Alertmanager did not notify the webhook receiver').toBe(true);
      expect(payloads.flatMap((p) => p.alerts).filter((a) => a.labels.model === healthy)).toEqual([]);
    } finally {
      stop.abort();
      const reports = await Promise.all(loads);
      await new Promise<void>((r) => webhook.close(() => r()));
      await rm(targetsFile, { force: true });
      // the load itself went as planned: no network errors or timeouts against any server
      for (const r of reports) expect(r.outcomes.networkErrors + r.outcomes.timeouts + r.outcomes.dropped, r.url).toBe(0);
    }
  }, 240_000);
});
