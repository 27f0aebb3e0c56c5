import { createRequire } from 'node:module';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { readManifest } from '../../artifact/manifest.js';
import { AegisError, isAegisError, type ErrorCode } from '../../errors.js';
import type { Registry } from '../../registry/index.js';
import type { ModelVersion } from '../../registry/types.js';
import type { MetricPoint, ParamValue } from '../../tracking/types.js';
import { TRAIN_DEFAULTS, TRAINER } from '../../training/train.js';
import { runCommand } from '../command.js';
import type { StepContext, StepResult } from '../context.js';
import { localDataset } from '../dataset.js';
import { resolveRun } from '../store.js';
import type { PipelineRun } from '../types.js';
import { retrainVersion } from '../version.js';

export interface TrainOutputs {
  model: string;
  version: string;
  parentVersion: string | null;
  datasetUri: string;
  datasetDir: string;
  datasetDigest: string | null;
  /** The trained model directory (aegis.yaml with held-out metrics). */
  modelDir: string;
  metrics: Record<string, number>;
  trainer: 'builtin' | 'command';
  history: Array<{ epoch: number; loss: number; accuracy?: number }>;
  trackingRunId: string;
  [key: string]: unknown;
}

/** The trainer's JSON lines (train-child.ts; custom trainers may print epoch lines too). */
type TrainerLine =
  | { event: 'epoch'; epoch: number; loss: number; accuracy?: number }
  | { event: 'done'; trainRows?: number; testRows?: number }
  | { event: 'error'; code: string; message: string; hint?: string };

/** The run's model, parent (the production version now) and dataset, decided once and kept on the run row. */
async function resolveInputs(ctx: StepContext): Promise<PipelineRun & { model: string; version: string; datasetUri: string }> {
  let run = ctx.run;
  if (!run.version) {
    const { registry, settings } = ctx.deps;
    const model = run.request.model ?? settings.model ?? (await soleModel(registry));
    const production = await productionOf(registry, model);
    const datasetUri = run.request.datasetUri ?? datasetOf(production);
    if (!datasetUri) {
      throw new AegisError('PIPELINE_INPUT_INVALID', `run ${run.id} has no dataset to train ${model} on`, {
        hint: 'Give the ModelDrift alert a dataset_uri annotation (or `aegis pipeline run --dataset URI`); the production version records none either.',
        details: { run: run.id, model, retryable: false },
      });
    }
    const parent = production?.version ?? null;
    run = await resolveRun(ctx.deps.db, run.id, ctx.owner, { model, version: retrainVersion(parent, run.id), parentVersion: parent, datasetUri });
    ctx.log(`retraining ${model}: parent ${parent ?? '(none in production)'}, new version ${run.version}, dataset ${run.datasetUri}`);
  }
  return run as PipelineRun & { model: string; version: string; datasetUri: string };
}

async function soleModel(registry: Registry): Promise<string> {
  const models = await registry.listModels();
  if (models.length === 1) return models[0]!.name;
  throw new AegisError('PIPELINE_INPUT_INVALID', `the retrain request names no model, and the registry holds ${models.length} models`, {
    hint: 'Label the alert with the model (alerts.modelLabel, default `model`), pass --model, or set pipeline.model (AEGIS_PIPELINE_MODEL).',
    details: { models: models.map((m) => m.name), retryable: false },
  });
}

async function productionOf(registry: Registry, model: string): Promise<ModelVersion | undefined> {
  try {
    return await registry.resolve(`${model}@production`);
  } catch (err) {
    if (isAegisError(err, 'REGISTRY_NOT_FOUND')) return undefined;
    throw err;
  }
}

function datasetOf(v: ModelVersion | undefined): string | undefined {
  const d = v?.manifest.dataset as { uri?: unknown } | undefined;
  return typeof d?.uri === 'string' ? d.uri : undefined;
}

/** `node [--import tsx] train-child.(js|ts)`: under the tests the sources run as TypeScript. */
function builtinTrainer(): string[] {
  const here = import.meta.url;
  const ts = here.endsWith('.ts');
  const child = fileURLToPath(new URL(`../train-child${ts ? '.ts' : '.js'}`, here));
  if (!ts) return [process.execPath, child];
  const tsx = pathToFileURL(createRequire(here).resolve('tsx')).href;
  return [process.execPath, '--import', tsx, child];
}

function substitute(arg: string, vars: Record<string, string>): string {
  return arg.replace(/\{(dataset|out|model|version|parent|run|dataset_uri)\}/g, (_, k: string) => vars[k] ?? '');
}

/**
 * train: resolves what to retrain, makes the dataset local, runs the
 * trainer (built-in: `aegis train`'s code in a child process; or
 * pipeline.trainCommand) into <run>/model, and logs params and metrics
 * (per-epoch training loss as steps) to the tracker.
 */
export async function trainStep(ctx: StepContext): Promise<StepResult> {
  const run = await resolveInputs(ctx);
  const { settings } = ctx.deps;
  const { tracker, runId: trackingRunId } = await ctx.tracking();
  const datasetDir = await localDataset(run.datasetUri, join(ctx.runDir, 'dataset'), ctx.signal, ctx.log);
  const out = join(ctx.runDir, 'model');
  await rm(out, { recursive: true, force: true });
  await mkdir(out, { recursive: true });

  const custom = settings.trainCommand;
  const hyper = {
    epochs: settings.train.epochs ?? TRAIN_DEFAULTS.epochs,
    hidden: settings.train.hidden ?? TRAIN_DEFAULTS.hidden,
    batchSize: settings.train.batchSize ?? TRAIN_DEFAULTS.batchSize,
    learningRate: settings.train.learningRate ?? TRAIN_DEFAULTS.learningRate,
    seed: settings.train.seed ?? TRAIN_DEFAULTS.seed,
  };
  const vars: Record<string, string> = {
    dataset: datasetDir,
    dataset_uri: run.datasetUri,
    out,
    model: run.model,
    version: run.version,
    parent: run.parentVersion ?? '',
    run: String(run.id),
  };
  const argv = custom
    ? custom.map((a) => substitute(a, vars))
    : [
        ...builtinTrainer(),
        JSON.stringify({ dataset: datasetDir, out, datasetUri: run.datasetUri, name: run.model, version: run.version, ...(run.parentVersion ? { parent: run.parentVersion } : {}), ...hyper }),
      ];
  const history: TrainOutputs['history'] = [];
  let failure: Extract<TrainerLine, { event: 'error' }> | undefined;
  let done: Extract<TrainerLine, { event: 'done' }> | undefined;
  ctx.log(custom ? `running ${argv.join(' ')}` : `training with the built-in trainer (${TRAINER}): ${JSON.stringify(hyper)}`);
  try {
    await runCommand(argv, {
      what: custom ? 'the training command' : 'the trainer',
      signal: ctx.signal,
      env: {
        ...process.env,
        AEGIS_DATASET_DIR: datasetDir,
        AEGIS_DATASET_URI: run.datasetUri,
        AEGIS_OUTPUT_DIR: out,
        AEGIS_MODEL: run.model,
        AEGIS_VERSION: run.version,
        AEGIS_PARENT_VERSION: run.parentVersion ?? '',
        AEGIS_PIPELINE_RUN: String(run.id),
      },
      onLine: (line, stream) => {
        const event = parseLine(line);
        if (event?.event === 'epoch') {
          history.push({ epoch: event.epoch, loss: event.loss, ...(event.accuracy !== undefined ? { accuracy: event.accuracy } : {}) });
          ctx.log(`epoch ${event.epoch}: loss ${event.loss.toFixed(4)}${event.accuracy !== undefined ? `, accuracy ${event.accuracy.toFixed(4)}` : ''}`);
        } else if (event?.event === 'done') done = event;
        else if (event?.event === 'error') failure = event;
        else ctx.log(stream === 'stderr' ? `stderr: ${line}` : line);
      },
    });
  } catch (err) {
    if (failure) throw new AegisError(failure.code as ErrorCode, failure.message, { cause: err, ...(failure.hint ? { hint: failure.hint } : {}) });
    throw err;
  }
  const manifest = await readManifest(out);
  const metrics = manifest.metrics;
  ctx.log(`held-out metrics: ${Object.entries(metrics).map(([k, v]) => `${k} ${v}`).join(', ') || '(none)'}`);

  const datasetDigest = manifest.dataset?.digest ?? null;
  const params: Record<string, ParamValue> = {
    model: run.model,
    parent_version: run.parentVersion ?? 'none',
    dataset_uri: run.datasetUri,
    trainer: custom ? 'command' : TRAINER,
    ...(datasetDigest ? { dataset_digest: datasetDigest } : {}),
    ...(custom ? { train_command: custom.join(' ') } : { epochs: hyper.epochs, hidden: hyper.hidden, batch_size: hyper.batchSize, learning_rate: hyper.learningRate, seed: hyper.seed }),
    ...(done?.trainRows !== undefined ? { train_rows: done.trainRows } : {}),
    ...(done?.testRows !== undefined ? { test_rows: done.testRows } : {}),
  };
  // Timestamps derived from the run, not the clock: a re-run step resends the same points, which the tracker stores once.
  const base = run.createdAt.getTime();
  const points: MetricPoint[] = [
    ...history.flatMap((h) => [
      { key: 'train_loss', value: h.loss, step: h.epoch, timestamp: base + h.epoch },
      ...(h.accuracy !== undefined ? [{ key: 'train_accuracy', value: h.accuracy, step: h.epoch, timestamp: base + h.epoch }] : []),
    ]),
    ...Object.entries(metrics).map(([key, value]) => ({ key, value, step: 0, timestamp: base + 100_000 })),
  ];
  await tracker.logParams(trackingRunId, params);
  await tracker.logMetrics(trackingRunId, points);

  const outputs: TrainOutputs = {
    model: run.model,
    version: run.version,
    parentVersion: run.parentVersion,
    datasetUri: run.datasetUri,
    datasetDir,
    datasetDigest,
    modelDir: out,
    metrics,
    trainer: custom ? 'command' : 'builtin',
    history,
    trackingRunId,
  };
  return { outputs, summary: { model: run.model, version: run.version, parentVersion: run.parentVersion, metrics } };
}

function parseLine(line: string): TrainerLine | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const o = JSON.parse(line) as Partial<TrainerLine>;
    if (o.event === 'epoch' && typeof o.epoch === 'number' && typeof o.loss === 'number') return o as TrainerLine;
    if (o.event === 'done' || (o.event === 'error' && typeof o.message === 'string')) return o as TrainerLine;
  } catch {
    // not one of ours: logged as it is
  }
  return undefined;
}
