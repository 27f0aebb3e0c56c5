import type { Command } from 'commander';
import type { AegisConfig } from '../config/index.js';
import { AegisError } from '../errors.js';
import type { RolloutView } from '../rollout/controller/describe.js';
import { CliContext } from './context.js';
import { EXIT_FAILED, printJson, reportError } from './output.js';

interface CommonOptions {
  controlUrl?: string;
  token?: string;
  json?: boolean;
}

async function client(config: AegisConfig, o: CommonOptions) {
  const { connectControl } = await import('../control/connect.js');
  return connectControl(config, new CliContext(config).actor(), { ...(o.controlUrl ? { url: o.controlUrl } : {}), ...(o.token ? { token: o.token } : {}) });
}

function splitRef(ref: string): { model: string; version: string } {
  const at = ref.lastIndexOf('@');
  if (at <= 0 || at === ref.length - 1) throw new AegisError('USAGE', `expected NAME@VERSION, got ${JSON.stringify(ref)}`, { hint: 'For example: aegis rollout start example_multimodal@0.2' });
  return { model: ref.slice(0, at), version: ref.slice(at + 1) };
}

function common(cmd: Command): Command {
  return cmd
    .option('--control-url <url>', 'control plane URL (default: control.url, or http://127.0.0.1:8079)')
    .option('--token <token>', 'control-plane token (default: AEGIS_CONTROL_TOKEN, or <home>/control.token)')
    .option('--json', 'print JSON');
}

const TERMINAL = new Set(['Healthy', 'Degraded']);

async function show(view: RolloutView, o: CommonOptions): Promise<void> {
  if (o.json) printJson(view);
  else {
    const { formatRollout } = await import('../rollout/controller/describe.js');
    process.stdout.write(formatRollout(view) + '\n');
  }
}

/** Follows a rollout until it is Healthy or Degraded (or Paused, with --until-paused semantics of `status --watch`). */
async function watch(get: () => Promise<RolloutView>, o: CommonOptions & { timeout?: string }): Promise<RolloutView> {
  const deadline = o.timeout ? Date.now() + Number(o.timeout) * 1000 : Infinity;
  let last = '';
  for (;;) {
    const v = await get();
    const line = `${new Date().toISOString()}  ${v.phase.padEnd(11)} weight ${String(v.weight).padStart(3)}%  step ${v.step}/${v.steps.length}${v.message ? `  ${v.message}` : ''}`;
    if (!o.json && line.slice(25) !== last) process.stderr.write(line + '\n');
    last = line.slice(25);
    if (TERMINAL.has(v.phase) || v.phase === 'Paused') return v;
    if (Date.now() > deadline) throw new AegisError('ROLLOUT_NOT_ALLOWED', `the rollout of ${v.model} is still ${v.phase} after ${o.timeout}s`, { hint: '`aegis rollout status` shows where it is.' });
    await new Promise((r) => setTimeout(r, 1000));
  }
}

export function registerRolloutCommands(program: Command, config: () => AegisConfig): void {
  const rollout = program
    .command('rollout')
    .description('canary rollouts: start, follow, promote, abort, pause, resume (through the control plane `aegis up` runs)')
    .addHelpText(
      'after',
      `
A rollout sends a growing share of inference traffic to a new version (the
canary) following a spec in Argo Rollouts' vocabulary (docs/rollouts.md), judges
it with analysis (error rate, latency; embedded counters or Prometheus), and
promotes it or rolls it back on its own. Without --spec the default canary runs
(10% → 25% → 50% → 100%, 30 s each, background analysis on error rate and p99).

Example:
  $ aegis rollout start example_multimodal@0.2 --spec examples/rollouts/canary.yaml
  $ aegis rollout status example_multimodal --watch`,
    );

  common(
    rollout
      .command('start <name@version>')
      .description('start a canary of a registered version against the production one')
      .option('--spec <file>', 'rollout spec (YAML); default: the built-in canary')
      .option('--inject-fault <spec>', 'DRILLS ONLY: the canary server fails or slows a share of requests, e.g. error-rate=0.1')
      .option('--wait', 'follow it until it is Healthy, Degraded or Paused; exit 1 unless Healthy')
      .option('--timeout <seconds>', 'with --wait: give up after this long')
      .addHelpText(
        'after',
        `
Example:
  $ aegis rollout start example_multimodal@0.2 --spec examples/rollouts/canary.yaml --wait`,
      ),
  ).action(async (ref: string, o: CommonOptions & { spec?: string; injectFault?: string; wait?: boolean; timeout?: string }) => {
    try {
      const { model, version } = splitRef(ref);
      let spec: string | undefined;
      if (o.spec) {
        const { readFile } = await import('node:fs/promises');
        const { fsError } = await import('../errors.js');
        const { parseRolloutSpec } = await import('../rollout/spec.js');
        spec = await readFile(o.spec, 'utf8').catch((err: unknown) => {
          throw fsError(err, o.spec!, 'rollout spec');
        });
        parseRolloutSpec(spec, o.spec); // the same errors locally, naming the file
      }
      const c = await client(config(), o);
      const started = await c.request<RolloutView>('POST', '/api/v1/rollouts', { model, version, ...(spec ? { spec } : {}), ...(o.injectFault ? { injectFault: o.injectFault } : {}) });
      if (!o.wait) return await show(started, o);
      if (!o.json) process.stderr.write(`rollout #${started.id} started: ${model} ${started.stableVersion} → ${version}\n`);
      const end = await watch(() => c.request<RolloutView>('GET', `/api/v1/rollouts/${encodeURIComponent(model)}`), o);
      await show(end, o);
      if (end.phase !== 'Healthy') process.exitCode = EXIT_FAILED;
    } catch (err) {
      process.exitCode = reportError(err, o);
    }
  });

  common(
    rollout
      .command('status <name>')
      .description("the model's current (or latest) rollout: steps, weight, every measurement with its value and verdict")
      .option('--watch', 'follow it until it is Healthy, Degraded or Paused')
      .addHelpText('after', '\nExample:\n  $ aegis rollout status example_multimodal --json'),
  ).action(async (name: string, o: CommonOptions & { watch?: boolean }) => {
    try {
      const c = await client(config(), o);
      const get = () => c.request<RolloutView>('GET', `/api/v1/rollouts/${encodeURIComponent(name)}`);
      await show(o.watch ? await watch(get, o) : await get(), o);
    } catch (err) {
      process.exitCode = reportError(err, o);
    }
  });

  common(
    rollout
      .command('list')
      .description('recent rollouts, newest first')
      .option('--model <name>', 'only this model')
      .option('--limit <n>', 'at most this many', '20')
      .addHelpText('after', '\nExample:\n  $ aegis rollout list --model example_multimodal'),
  ).action(async (o: CommonOptions & { model?: string; limit: string }) => {
    try {
      const c = await client(config(), o);
      const q = new URLSearchParams({ limit: o.limit, ...(o.model ? { model: o.model } : {}) });
      const r = await c.request<{ rollouts: RolloutView[] }>('GET', `/api/v1/rollouts?${q}`);
      if (o.json) return printJson(r);
      if (r.rollouts.length === 0) return void process.stdout.write('no rollouts\n');
      for (const v of r.rollouts) {
        process.stdout.write(`#${String(v.id).padEnd(5)} ${v.model}  ${v.stableVersion ?? '?'} → ${v.version}  ${v.phase.padEnd(11)} weight ${String(v.weight).padStart(3)}%  ${v.createdAt}${v.message ? `  ${v.message}` : ''}\n`);
      }
    } catch (err) {
      process.exitCode = reportError(err, o);
    }
  });

  const action = (verb: 'promote' | 'abort' | 'pause' | 'resume', description: string, example: string, extra?: (c: Command) => Command) => {
    let cmd = rollout.command(`${verb} <name>`).description(description);
    if (extra) cmd = extra(cmd);
    common(cmd.addHelpText('after', `\nExample:\n  $ ${example}`)).action(async (name: string, o: CommonOptions & { full?: boolean; reason?: string }) => {
      try {
        const c = await client(config(), o);
        const body = verb === 'promote' ? (o.full ? { full: true } : {}) : verb === 'abort' ? (o.reason ? { reason: o.reason } : {}) : {};
        await show(await c.request<RolloutView>('POST', `/api/v1/rollouts/${encodeURIComponent(name)}/${verb}`, body), o);
      } catch (err) {
        process.exitCode = reportError(err, o);
      }
    });
  };
  action('promote', 'move past the current pause (or, with --full, skip every remaining step and make the canary the stable now)', 'aegis rollout promote example_multimodal --full', (c) =>
    c.option('--full', 'skip the remaining steps and analysis'),
  );
  action('abort', 'send the canary weight to 0 at once and stop it; the registry stages stay as they are', 'aegis rollout abort example_multimodal --reason "p99 regression"', (c) =>
    c.option('--reason <text>', 'why (recorded in the rollout and the audit log)'),
  );
  action('pause', 'hold the rollout at its current step (background analysis keeps judging and can still abort)', 'aegis rollout pause example_multimodal');
  action('resume', 'continue a paused rollout (after an inconclusive analysis, a new analysis run starts)', 'aegis rollout resume example_multimodal');

  rollout
    .command('render-argo <name@version>')
    .description('print the rollout of a version as an Argo Rollout + Service + AnalysisTemplates (the same spec, for a cluster)')
    .option('--spec <file>', 'rollout spec (YAML); default: the built-in canary')
    .requiredOption('--image <image>', 'the Aegis container image the model server pods run')
    .option('--archive <uri>', "the version's signed archive (s3://…) the pods fetch and verify; default: the registry's record of NAME@VERSION")
    .option('--stable-version <version>', 'the version in production now (needed when a metric reads the stable track)')
    .option('--namespace <ns>', 'namespace of the objects')
    .option('--replicas <n>', 'model server pods (without a traffic router Argo splits traffic by pods: 10 % needs 10)', '4')
    .option('--prometheus <url>', 'Prometheus that the spec\'s embedded metrics are read from in the cluster', 'http://prometheus-operated.monitoring:9090')
    .option('--service-account <name>', 'service account of the model server pods (IRSA: read the model archives)')
    .addHelpText(
      'after',
      `
Embedded metrics (the gateway's own counters, which do not exist in a cluster)
become Prometheus queries over the model servers' counters of the canary's
version, NaN below minSamples requests, with conditions that Argo then judges
Inconclusive for NaN, as Aegis does. Prometheus metrics are copied as written.

Example:
  $ aegis rollout render-argo example_multimodal@0.2 --image ghcr.io/acme/aegis:0.1.0 --namespace aegis --replicas 10 | kubectl apply -f -`,
    )
    .action(async (ref: string, o: { spec?: string; image: string; archive?: string; stableVersion?: string; namespace?: string; replicas: string; prometheus: string; serviceAccount?: string }) => {
      const ctx = new CliContext(config());
      try {
        const { model, version } = splitRef(ref);
        const { DEFAULT_ROLLOUT_SPEC, readRolloutSpec } = await import('../rollout/spec.js');
        const { renderArgoRollout } = await import('../rollout/argo.js');
        const replicas = Number(o.replicas);
        if (!Number.isInteger(replicas) || replicas < 1) throw new AegisError('USAGE', `--replicas must be a positive integer (got ${o.replicas})`, { hint: 'Pass e.g. --replicas 10.' });
        const spec = o.spec ? await readRolloutSpec(o.spec) : DEFAULT_ROLLOUT_SPEC;
        // The pods serve the archive by URI, so they need the store and the trust policy but no database.
        const { resolveArchiveUri } = await import('./archive-commands.js');
        const archiveUri = o.archive ?? (await resolveArchiveUri(ctx, `${model}@${version}`)).uri;
        process.stdout.write(
          renderArgoRollout(spec, {
            model,
            version,
            archiveUri,
            image: o.image,
            replicas,
            prometheusAddress: o.prometheus,
            ...(o.stableVersion ? { stableVersion: o.stableVersion } : {}),
            ...(o.namespace ? { namespace: o.namespace } : {}),
            ...(o.serviceAccount ? { serviceAccount: o.serviceAccount } : {}),
          }),
        );
      } catch (err) {
        process.exitCode = reportError(err, {});
      } finally {
        await ctx.close();
      }
    });
}
