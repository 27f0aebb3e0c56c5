/**
 * `npm run bench -- rollout [--runs=N] [--qps=200] [--interval=5]`: how fast a
 * bad canary is rolled back. The local platform as `aegis up` runs it (control
 * plane in this process, model servers as child processes behind the gateway),
 * open-loop traffic at 200 rps on the gateway, and a canary of a new version
 * that fails 10% of its requests (--inject-fault error-rate=0.1) started with
 * a spec whose background analysis measures the embedded error rate every
 * `interval` (failureLimit 0: the first Failed measurement aborts).
 *
 * Reported per run: seconds from the first 5xx a user got to the moment the
 * gateway's canary weight was 0, and how many user requests failed. The
 * baseline is the bound, 2 intervals + 1 s; the ratio is measured / bound.
 */
import { mkdir, readFile, rm, stat } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../src/config/index.js';
import { CliContext } from '../src/cli/context.js';
import { ensureExampleModel } from '../src/cli/up.js';
import { startControlPlane } from '../src/control/index.js';
import { registerArchive } from '../src/control/register.js';
import { runLoad, type RequestResult } from '../src/loadgen/index.js';
import { validateRolloutSpec } from '../src/rollout/spec.js';
import { packageExampleVersion } from '../src/test-support/example-model.js';
import { archiveKey } from '../src/store/types.js';
import { EXAMPLE_REQUEST } from '../src/training/example.js';
import { table } from './lib.js';

const arg = (name: string, dflt: number) => Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? dflt);

export async function main(): Promise<void> {
  const runs = arg('runs', 3);
  const qps = arg('qps', 200);
  const intervalS = arg('interval', 5);
  const dir = join(process.env.AEGIS_BENCH_DIR ?? '/tmp/aegis-bench', 'rollout');
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  process.env.AEGIS_DRIFT_ENABLED ??= 'false';
  const config = loadConfig({ env: { ...process.env, AEGIS_HOME: join(dir, 'home'), AEGIS_LOG_LEVEL: 'error' } });
  const ctx = new CliContext(config);
  const model = await ensureExampleModel(ctx, () => undefined);
  const registry = await ctx.registry();
  const trust = await ctx.trust({});
  const store = ctx.store();

  // The candidate versions: the example model repackaged as 1.<n>, signed with the dev key.
  async function publish(version: string): Promise<void> {
    const archive = await packageExampleVersion(dir, model.keyPath, version);
    const key = archiveKey(model.name, version);
    await store.put(key, createReadStream(archive), { contentLength: (await stat(archive)).size });
    await store.put(`${key}.sig`, createReadStream(`${archive}.sig`));
    await registerArchive(registry, { uri: store.uriOf(key), trust, cacheDir: ctx.paths.cache, actor: 'bench' });
  }

  const plane = await startControlPlane({
    config,
    db: await ctx.db(),
    registry,
    trustPath: ctx.paths.trust,
    trust,
    cacheDir: ctx.paths.cache,
    token: 'bench-token-0123456789',
    store,
    actor: 'bench',
    serve: [{ model: model.name, port: 0 }],
    port: 0,
  });
  const spec = validateRolloutSpec({
    apiVersion: 'aegis.dev/v1',
    kind: 'Rollout',
    strategy: { canary: { steps: [{ setWeight: 20 }, { pause: {} }], analysis: { templates: [{ templateName: 'health' }] } } },
    analysisTemplates: [
      {
        name: 'health',
        metrics: [
          {
            name: 'error-rate',
            interval: `${intervalS}s`,
            initialDelay: `${intervalS}s`,
            failureLimit: 0,
            successCondition: 'result < 0.05',
            provider: { embedded: { metric: 'error-rate', window: `${2 * intervalS}s`, minSamples: 20 } },
          },
        ],
      },
    ],
  });
  const rows: (string | number)[][] = [['run', 'first 5xx → weight 0 (s)', 'bound (s)', 'ratio', 'failed requests', 'of sent', 'timeouts/network']];
  try {
    const payload = await readFile(EXAMPLE_REQUEST);
    const gateway = plane.gateways[model.name]!;
    for (let i = 1; i <= runs; i++) {
      const version = `1.${i}`;
      await publish(version);
      let firstBad: number | undefined;
      const stop = new AbortController();
      const traffic = runLoad({
        url: `${gateway}/infer`,
        qps,
        durationMs: 60_000,
        payload,
        seed: i,
        signal: stop.signal,
        onResult: (r: RequestResult) => {
          if (r.status !== undefined && r.status >= 500 && firstBad === undefined) firstBad = performance.timeOrigin + r.intendedAt + r.latencyMs;
        },
      });
      await new Promise((r) => setTimeout(r, 1000));
      await plane.controller.start({ model: model.name, version, spec, actor: 'bench', injectFault: 'error-rate=0.1' });
      let zeroAt: number | undefined;
      let sawWeight = false;
      const deadline = Date.now() + 45_000;
      while (Date.now() < deadline) {
        const w = plane.deployment.describe()[0]!.weight;
        if (w > 0) sawWeight = true;
        if (sawWeight && w === 0) {
          zeroAt = Date.now();
          break;
        }
        await new Promise((r) => setTimeout(r, 5));
      }
      await new Promise((r) => setTimeout(r, 1000));
      stop.abort();
      const report = await traffic;
      const status = await plane.controller.status(model.name);
      if (zeroAt === undefined || firstBad === undefined || status.phase !== 'Degraded') {
        throw new Error(`run ${i}: the canary was not rolled back (phase ${status.phase}, ${status.message ?? ''})`);
      }
      const seconds = (zeroAt - firstBad) / 1000;
      const bound = 2 * intervalS + 1;
      const failed = report.outcomes.serverErrors + report.outcomes.networkErrors + report.outcomes.timeouts + report.outcomes.dropped + report.outcomes.unexpected;
      rows.push([i, seconds.toFixed(2), bound, (seconds / bound).toFixed(2) + 'x', failed, report.sent, report.outcomes.timeouts + report.outcomes.networkErrors]);
      process.stderr.write(`run ${i}: ${seconds.toFixed(2)} s, ${failed} failed of ${report.sent}\n`);
    }
  } finally {
    await plane.close();
    await ctx.close();
  }
  process.stdout.write(`rollout benchmark: canary failing 10% at ${qps} rps through the gateway (20% weight), embedded error-rate analysis every ${intervalS} s\n`);
  process.stdout.write(table(rows) + '\n');
  process.stdout.write(`target: <= 2 intervals + 1 s = ${2 * intervalS + 1} s (ratio <= 1.00x)\n`);
}
