import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { AegisConfig } from '../config/index.js';
import { platformPaths } from '../config/index.js';
import { AegisError } from '../errors.js';
import type { PipelineDeps } from '../pipeline/deps.js';
import { FINAL_STATES, type CanaryStarter, type PipelineRun, type PipelineStep, type RunState, type VersionRegistrar } from '../pipeline/types.js';
import type { ControlClient } from '../control/client.js';
import type { PipelineRunner } from '../pipeline/runner.js';
import type { RolloutView } from '../rollout/controller/describe.js';
import { CliContext } from './context.js';
import { reviveDates, withControlFallback } from './control-fallback.js';
import { EXIT_FAILED, printJson, reportError } from './output.js';

/** Exit code of `aegis pipeline step|run|retry` when trying again cannot help (rejected, cancelled, a permanent error). */
const EXIT_FINAL = 3;

interface Opened {
  ctx: CliContext;
  deps: PipelineDeps;
  close(): Promise<void>;
}

/** The control plane's rollout API as the canary step's CanaryStarter (the CLI cannot drive rollouts itself). */
async function apiCanary(config: AegisConfig, actor: string): Promise<CanaryStarter> {
  const { connectControl } = await import('../control/connect.js');
  let client: Awaited<ReturnType<typeof connectControl>> | undefined;
  const get = async () => (client ??= await connectControl(config, actor));
  return {
    async start(model, version) {
      const v = await (await get()).request<RolloutView>('POST', '/api/v1/rollouts', { model, version });
      return { rolloutId: v.id };
    },
    async find(model, version) {
      const r = await (await get()).request<{ rollouts: RolloutView[] }>('GET', `/api/v1/rollouts?model=${encodeURIComponent(model)}&limit=50`);
      const hit = r.rollouts.find((x) => x.version === version);
      return hit ? { rolloutId: hit.id } : undefined;
    },
  };
}

/** The pipeline's dependencies from the configuration, for commands that run steps in this process. */
async function open(config: AegisConfig): Promise<Opened> {
  const ctx = new CliContext(config);
  const [{ verifyingRegistrar }, { openTracker }, { PemKeySigner }] = await Promise.all([
    import('../pipeline/registrar.js'),
    import('../tracking/index.js'),
    import('../signing/pem/index.js'),
  ]);
  const db = await ctx.db();
  const registry = await ctx.registry();
  const actor = ctx.actor();
  const tracker = openTracker(config.tracking, { defaultUser: actor });
  const paths = platformPaths(config);
  let registrar: VersionRegistrar | undefined;
  const keyPath = resolve(config.pipeline.signingKey ?? join(paths.keys, 'dev', 'signing-key.pem'));
  const deps: PipelineDeps = {
    db,
    registry,
    store: ctx.store(),
    async signer() {
      if (!existsSync(keyPath)) {
        throw new AegisError('PIPELINE_INPUT_INVALID', `no signing key at ${keyPath}`, {
          hint: 'Set pipeline.signingKey (AEGIS_PIPELINE_SIGNING_KEY) to a PEM private key the trust policy trusts, or run `aegis up` once to make the dev key.',
          details: { path: keyPath, retryable: false },
        });
      }
      return PemKeySigner.fromFile(keyPath);
    },
    // The trust policy is read when a version is registered, so commands that never get there do not need it.
    registrar: {
      async register(input) {
        registrar ??= verifyingRegistrar({ registry, trust: await ctx.trust({}), cacheDir: paths.cache, limits: { maxEntries: config.fetch.maxEntries, maxBytes: config.fetch.maxBytes } });
        return registrar.register(input);
      },
    },
    canary: await apiCanary(config, actor),
    ...(tracker ? { tracker } : {}),
    settings: config.pipeline,
    workDir: resolve(config.pipeline.workDir ?? join(config.home, 'pipeline')),
    actor,
  };
  return {
    ctx,
    deps,
    async close() {
      await tracker?.close();
      await ctx.close();
    },
  };
}

/** Runs `fn` with a runner in this process (the database opened here), then reads the run's steps. */
async function locally(
  config: AegisConfig,
  fn: (opened: Opened, runner: PipelineRunner) => Promise<PipelineRun>,
  withSteps = true,
): Promise<{ run: PipelineRun; steps: PipelineStep[] }> {
  const opened = await open(config);
  try {
    const { PipelineRunner } = await import('../pipeline/runner.js');
    const runner = new PipelineRunner({ ...opened.deps, pollMs: 0 });
    let run: PipelineRun;
    try {
      run = await fn(opened, runner);
    } finally {
      await runner.close();
    }
    const { listSteps } = await import('../pipeline/store.js');
    return { run, steps: withSteps ? await listSteps(opened.deps.db, run.id) : [] };
  } finally {
    await opened.close();
  }
}

/** A run the control plane executes, with its steps; with `follow`, once it has ended (polled every second). */
async function remoteRun(client: ControlClient, id: number, follow: boolean): Promise<{ run: PipelineRun; steps: PipelineStep[] }> {
  for (;;) {
    const shown = reviveDates(await client.request<{ run: PipelineRun; steps: PipelineStep[] }>('GET', `/api/v1/pipeline/runs/${id}`));
    if (!follow || FINAL_STATES.includes(shown.run.state)) return shown;
    await new Promise((r) => setTimeout(r, 1000));
  }
}

function runId(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1) {
    throw new AegisError('USAGE', `${JSON.stringify(value)} is not a pipeline run id`, { hint: 'Run ids are the numbers `aegis pipeline list` shows.' });
  }
  return n;
}

function duration(s: { startedAt: Date | null; finishedAt: Date | null }): string {
  if (!s.startedAt || !s.finishedAt) return '';
  return `${((s.finishedAt.getTime() - s.startedAt.getTime()) / 1000).toFixed(1)}s`;
}

function viewRun(run: PipelineRun, steps?: PipelineStep[], logs = false) {
  return {
    id: run.id,
    state: run.state,
    model: run.model ?? run.request.model ?? null,
    version: run.version,
    parentVersion: run.parentVersion,
    datasetUri: run.datasetUri ?? run.request.datasetUri ?? null,
    source: run.source,
    executor: run.executor,
    alert: run.request.alert ? { id: run.request.alert.id, alertname: run.request.alert.alertname, fingerprint: run.request.alert.fingerprint } : null,
    attempts: run.attempts,
    error: run.error,
    errorCode: run.errorCode,
    outputs: run.outputs,
    tracking: run.trackingRunId ? { kind: run.trackingKind, runId: run.trackingRunId } : null,
    cancelRequested: run.cancelRequested,
    createdBy: run.createdBy,
    createdAt: run.createdAt.toISOString(),
    finishedAt: run.finishedAt?.toISOString() ?? null,
    ...(steps
      ? {
          steps: steps.map((s) => ({
            name: s.name,
            state: s.state,
            attempts: s.attempts,
            startedAt: s.startedAt?.toISOString() ?? null,
            finishedAt: s.finishedAt?.toISOString() ?? null,
            error: s.error,
            errorCode: s.errorCode,
            outputs: s.outputs,
            ...(logs ? { logs: s.logs } : {}),
          })),
        }
      : {}),
  };
}

function formatRun(run: PipelineRun, steps: PipelineStep[], logs: boolean): string {
  const lines: string[] = [];
  const model = run.model ?? run.request.model ?? '(model not resolved yet)';
  lines.push(`run ${run.id}  ${run.state}${run.cancelRequested ? ' (cancel requested)' : ''}  ${model} ${run.parentVersion ?? '—'} → ${run.version ?? '—'}`);
  const alert = run.request.alert;
  lines.push(`  started by  ${alert ? `alert ${alert.alertname} #${alert.id}` : `${run.createdBy} (manual)`}, ${run.createdAt.toISOString()}${run.attempts > 1 ? `, attempt ${run.attempts}` : ''}`);
  lines.push(`  dataset     ${run.datasetUri ?? run.request.datasetUri ?? '—'}`);
  if (run.trackingRunId) lines.push(`  tracking    ${run.trackingKind} ${run.trackingRunId}`);
  if (run.outputs.archiveUri) lines.push(`  archive     ${String(run.outputs.archiveUri)}`);
  if (run.outputs.rolloutId !== undefined) lines.push(`  canary      rollout #${String(run.outputs.rolloutId)} (\`aegis rollout status ${model}\`)`);
  if (run.error) lines.push(`  error       [${run.errorCode}] ${run.error}`);
  lines.push('  steps:');
  for (const s of steps) {
    const tries = s.attempts === 0 ? '' : `${s.attempts} ${s.attempts === 1 ? 'try' : 'tries'}`;
    lines.push(`    ${String(s.position).padStart(2)} ${s.name.padEnd(9)} ${s.state.padEnd(9)} ${tries.padEnd(8)} ${duration(s).padStart(7)}${s.error ? `  [${s.errorCode}] ${s.error}` : ''}`);
    if (logs && s.logs) lines.push(...s.logs.trimEnd().split('\n').map((l) => `         | ${l}`));
  }
  return lines.join('\n');
}

const FINAL: RunState[] = ['rejected', 'cancelled'];

function exitCodeOf(run: PipelineRun): number {
  if (run.state === 'succeeded') return 0;
  if (FINAL.includes(run.state)) return EXIT_FINAL;
  return EXIT_FAILED;
}

export function registerPipelineCommands(program: Command, config: () => AegisConfig): void {
  const pipeline = program
    .command('pipeline')
    .description('the retraining pipeline a drift alert starts: list, show, retry, cancel runs; run one by hand; run one step (workflow engines)')
    .addHelpText(
      'after',
      `
A run trains a new version on the alert's dataset and takes it through
train → evaluate → package → sign → push → register → canary, each step
recorded in the database (docs/retrain-on-drift.md). The control plane runs
them; these commands open the database directly (for the embedded database,
stop \`aegis up\` first).

Examples:
  $ aegis pipeline list
  $ aegis pipeline show 3 --logs
  $ aegis pipeline run --dataset examples/datasets/example_multimodal/v2 --model example_multimodal`,
    );

  pipeline
    .command('list')
    .description('the newest pipeline runs')
    .option('--state <state>', 'only runs in this state (queued, running, succeeded, failed, rejected, cancelled)')
    .option('--model <name>', 'only runs of this model')
    .option('--limit <n>', 'at most this many', '20')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExample:\n  $ aegis pipeline list --state failed')
    .action(async (o: { state?: string; model?: string; limit: string; json?: boolean }) => {
      const ctx = new CliContext(config());
      try {
        const { listRuns } = await import('../pipeline/store.js');
        const states = ['queued', 'running', 'succeeded', 'failed', 'rejected', 'cancelled'];
        if (o.state && !states.includes(o.state)) throw new AegisError('USAGE', `unknown state ${o.state}`, { hint: `One of: ${states.join(', ')}.` });
        const filter = { ...(o.state ? { state: o.state as RunState } : {}), ...(o.model ? { model: o.model } : {}), limit: Number(o.limit) || 20 };
        const runs = await withControlFallback(
          ctx,
          async () => listRuns(await ctx.db(), filter),
          async (client) => reviveDates((await client.request<{ runs: PipelineRun[] }>('GET', `/api/v1/pipeline/runs?${new URLSearchParams(Object.entries(filter).map(([k, v]): [string, string] => [k, String(v)]))}`)).runs),
        );
        if (o.json) return printJson({ ok: true, runs: runs.map((r) => viewRun(r)) });
        if (runs.length === 0) return void process.stdout.write('no pipeline runs\n');
        process.stdout.write(`${'RUN'.padEnd(5)} ${'STATE'.padEnd(10)} ${'MODEL'.padEnd(20)} ${'VERSION'.padEnd(22)} ${'STARTED BY'.padEnd(22)} CREATED\n`);
        for (const r of runs) {
          const by = r.request.alert ? `alert #${r.request.alert.id}` : r.createdBy;
          process.stdout.write(`${String(r.id).padEnd(5)} ${r.state.padEnd(10)} ${(r.model ?? r.request.model ?? '?').padEnd(20)} ${(r.version ?? '—').padEnd(22)} ${by.padEnd(22)} ${r.createdAt.toISOString()}\n`);
        }
      } catch (err) {
        process.exitCode = reportError(err, o);
      } finally {
        await ctx.close();
      }
    });

  pipeline
    .command('show <run>')
    .description('a run: its state, lineage, outputs and every step (with --logs, their logs)')
    .option('--logs', 'print each step\'s log')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExample:\n  $ aegis pipeline show 3 --logs')
    .action(async (id: string, o: { logs?: boolean; json?: boolean }) => {
      const ctx = new CliContext(config());
      try {
        const { getRun, listSteps } = await import('../pipeline/store.js');
        const { DbTracker } = await import('../pipeline/db-tracker.js');
        const shown = await withControlFallback(
          ctx,
          async () => {
            const db = await ctx.db();
            const run = await getRun(db, runId(id));
            return { run, steps: await listSteps(db, run.id), metrics: run.trackingKind === 'db' ? await DbTracker.metrics(db, run.id) : undefined };
          },
          // While `aegis up` holds the embedded database: the same rows through its API (DB-tracked metrics are not served there).
          async (client) => ({ ...reviveDates(await client.request<{ run: PipelineRun; steps: PipelineStep[] }>('GET', `/api/v1/pipeline/runs/${runId(id)}`)), metrics: undefined }),
        );
        const { run, steps } = shown;
        if (o.json) {
          printJson({ ok: true, run: { ...viewRun(run, steps, true), ...(run.trackingKind === 'db' ? { trackingRecord: run.tracking, ...(shown.metrics ? { metrics: shown.metrics } : {}) } : {}) } });
        } else process.stdout.write(formatRun(run, steps, Boolean(o.logs)) + '\n');
      } catch (err) {
        process.exitCode = reportError(err, o);
      } finally {
        await ctx.close();
      }
    });

  pipeline
    .command('run')
    .description('start a retraining run by hand, and (unless --detach) execute it in this process')
    .requiredOption('--dataset <uri>', 'dataset to train on: a folder, file:// or s3://bucket/prefix/ (dataset.yaml, train.jsonl, test.jsonl)')
    .option('--model <name>', 'model to retrain (default pipeline.model, or the only registered model)')
    .option('--request-id <id>', 'idempotency key: a second call with it returns the same run')
    .option('--detach', 'only record the run (queued) and print it; the control plane, or `aegis pipeline step` commands, execute it')
    .option('--external', 'the run is executed step by step by `aegis pipeline step` (an Argo Workflow), never by a control plane\'s runner')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
Exit code: 0 succeeded, 1 failed (\`aegis pipeline retry\` may help), 3 rejected or cancelled.

Example:
  $ aegis pipeline run --dataset examples/datasets/example_multimodal/v2 --model example_multimodal
  $ aegis pipeline run --dataset s3://data/fraud/v7/ --external --detach --json`,
    )
    .action(async (o: { dataset: string; model?: string; requestId?: string; detach?: boolean; external?: boolean; json?: boolean }) => {
      const ctx = new CliContext(config());
      const follow = !o.detach && !o.external;
      const started = (id: number, where: 'here' | 'control plane') => {
        if (o.json) return;
        process.stderr.write(
          where === 'here'
            ? `run ${id} started; following it (Ctrl-C stops following, the run resumes at the next start)\n`
            : `run ${id} started in the control plane; following it (Ctrl-C stops following, the run goes on there)\n`,
        );
      };
      try {
        const { run, steps } = await withControlFallback(
          ctx,
          () =>
            locally(config(), async (opened, runner) => {
              let run = await runner.submit({
                datasetUri: o.dataset,
                ...(o.model ? { model: o.model } : {}),
                ...(o.requestId ? { requestId: o.requestId } : {}),
                executor: o.external ? 'external' : 'local',
              });
              if (follow) {
                started(run.id, 'here');
                await runner.resumeAll();
                run = await runner.wait(run.id);
              }
              return run;
            }),
          // `aegis up` holds the embedded database: its control plane's runner executes the run; this follows it.
          async (client) => {
            const run = reviveDates(
              await client.request<PipelineRun>('POST', '/api/v1/pipeline/runs', { datasetUri: o.dataset, model: o.model, requestId: o.requestId, executor: o.external ? 'external' : 'local' }),
            );
            if (follow) started(run.id, 'control plane');
            return remoteRun(client, run.id, follow);
          },
        );
        if (o.json) printJson({ ok: run.state === 'succeeded' || !follow, run: viewRun(run, steps) });
        else process.stdout.write(formatRun(run, steps, false) + '\n');
        if (follow) process.exitCode = exitCodeOf(run);
      } catch (err) {
        process.exitCode = reportError(err, o);
      } finally {
        await ctx.close();
      }
    });

  pipeline
    .command('retry <run>')
    .description('run a failed, rejected or cancelled run again from its first step that had not succeeded')
    .option('--detach', 'only queue it; the control plane executes it')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExample:\n  $ aegis pipeline retry 3')
    .action(async (id: string, o: { detach?: boolean; json?: boolean }) => {
      const ctx = new CliContext(config());
      try {
        const { run, steps } = await withControlFallback(
          ctx,
          () =>
            locally(config(), async (_opened, runner) => {
              const run = await runner.retry(runId(id));
              if (o.detach || run.executor !== 'local') return run;
              await runner.resumeAll();
              return runner.wait(run.id);
            }),
          async (client) => {
            const run = reviveDates(await client.request<PipelineRun>('POST', `/api/v1/pipeline/runs/${runId(id)}/retry`, {}));
            return remoteRun(client, run.id, !o.detach && run.executor === 'local');
          },
        );
        if (o.json) printJson({ ok: true, run: viewRun(run, steps) });
        else process.stdout.write(formatRun(run, steps, false) + '\n');
        if (!o.detach && run.executor === 'local') process.exitCode = exitCodeOf(run);
      } catch (err) {
        process.exitCode = reportError(err, o);
      } finally {
        await ctx.close();
      }
    });

  pipeline
    .command('cancel <run>')
    .description('stop a run: a queued one at once, a running one at its current step')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExample:\n  $ aegis pipeline cancel 3')
    .action(async (id: string, o: { json?: boolean }) => {
      const ctx = new CliContext(config());
      try {
        const run = await withControlFallback(
          ctx,
          async () => (await locally(config(), async (_opened, runner) => runner.cancel(runId(id)), false)).run,
          // A running step is stopped before the answer comes: allow it the time a step may take to notice.
          async (client) => reviveDates(await client.request<PipelineRun>('POST', `/api/v1/pipeline/runs/${runId(id)}/cancel`, {}, { timeoutMs: 10 * 60 * 1000 })),
        );
        if (o.json) printJson({ ok: true, run: viewRun(run) });
        else process.stdout.write(run.state === 'cancelled' ? `run ${run.id} cancelled\n` : `run ${run.id}: cancel requested; the process executing it stops it at its current step\n`);
      } catch (err) {
        process.exitCode = reportError(err, o);
      } finally {
        await ctx.close();
      }
    });

  pipeline
    .command('step <name>')
    .description('run one step of a run in this process and record its outcome (a workflow engine runs each step as its own container)')
    .requiredOption('--run <id>', 'the pipeline run')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
Steps, in order: train, evaluate, package, sign, push, register, canary. The
steps before NAME must have succeeded; a step that already succeeded is not
run again (exit 0). Every step shares pipeline.workDir (a volume on a cluster).

Exit code: 0 the step succeeded (or had, or the run ended and it is skipped),
1 it failed and another try may help, 3 rejected / cancelled / failed for good.

Example:
  $ aegis pipeline run --dataset s3://data/fraud/v7/ --external --detach --json   # → run 12
  $ aegis pipeline step train --run 12`,
    )
    .action(async (name: string, o: { run: string; json?: boolean }) => {
      let opened: Opened | undefined;
      try {
        const { checkStepName, runSingleStep } = await import('../pipeline/single-step.js');
        const step = checkStepName(name);
        const id = runId(o.run);
        opened = await open(config());
        const stop = new AbortController();
        const onSignal = () => stop.abort();
        process.once('SIGTERM', onSignal);
        let r;
        try {
          r = await runSingleStep(opened.deps, id, step, stop.signal);
        } finally {
          process.off('SIGTERM', onSignal);
        }
        const outcome = r.outcome;
        const failed = outcome && outcome.kind !== 'succeeded';
        if (o.json) printJson({ ok: !failed, status: r.status, outcome: outcome?.kind ?? null, run: viewRun(r.run, [r.step], true) });
        else {
          const what = r.status === 'done' ? 'had already succeeded' : r.status === 'skipped' ? `skipped (run ${r.run.state})` : r.step.state;
          process.stdout.write(`run ${r.run.id} step ${step}: ${what}${r.step.error && failed ? `: [${r.step.errorCode}] ${r.step.error}` : ''}\n`);
        }
        if (outcome?.kind === 'failed') process.exitCode = outcome.retryable ? EXIT_FAILED : EXIT_FINAL;
        else if (outcome?.kind === 'rejected' || (outcome?.kind === 'interrupted' && outcome.reason === 'cancel')) process.exitCode = EXIT_FINAL;
        else if (outcome?.kind === 'interrupted') process.exitCode = EXIT_FAILED;
      } catch (err) {
        process.exitCode = reportError(err, o);
      } finally {
        await opened?.close();
      }
    });

  pipeline
    .command('render-argo')
    .description('print the pipeline as an Argo WorkflowTemplate (one container per step)')
    .option('--image <image>', 'the Aegis container image (with `aegis` on its PATH)', 'aegis:latest')
    .option('--name <name>', 'WorkflowTemplate name', 'aegis-retrain')
    .option('--namespace <ns>', 'namespace')
    .option('--service-account <name>', 'service account of the step pods')
    .option('--env-secret <name>', 'Secret whose keys become the steps\' environment (AEGIS_DATABASE_URL, AEGIS_STORE_URI, …)')
    .option('--work-volume-size <size>', 'size of the volume the steps share', '10Gi')
    .option('--retries <n>', 'extra tries of a failed step', '2')
    .addHelpText('after', '\nExample:\n  $ aegis pipeline render-argo --image ghcr.io/acme/aegis:1.0 --namespace aegis --env-secret aegis-env | kubectl apply -f -')
    .action(async (o: { image: string; name: string; namespace?: string; serviceAccount?: string; envSecret?: string; workVolumeSize: string; retries: string }) => {
      try {
        const { renderArgoWorkflowTemplate } = await import('../pipeline/argo.js');
        const retries = Number(o.retries);
        if (!Number.isInteger(retries) || retries < 0) throw new AegisError('USAGE', `--retries must be a non-negative integer (got ${o.retries})`, { hint: 'Pass e.g. --retries 2.' });
        process.stdout.write(
          renderArgoWorkflowTemplate({
            image: o.image,
            name: o.name,
            workVolumeSize: o.workVolumeSize,
            retries,
            ...(o.namespace ? { namespace: o.namespace } : {}),
            ...(o.serviceAccount ? { serviceAccount: o.serviceAccount } : {}),
            ...(o.envSecret ? { envSecret: o.envSecret } : {}),
          }),
        );
      } catch (err) {
        process.exitCode = reportError(err, {});
      }
    });
}
