import { hostname } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { AegisError, isAegisError, type ErrorCode } from '../errors.js';
import { childLogger } from '../log.js';
import type { FinalRunStatus, Tracker } from '../tracking/types.js';
import type { StepContext } from './context.js';
import { DbTracker } from './db-tracker.js';
import type { PipelineDeps } from './deps.js';
import { STEPS } from './steps/index.js';
import { appendLogs, finishRun, getRun, listSteps, renewLease, setTrackingRun, stepFailed, stepStarted, stepSucceeded, type Finish } from './store.js';
import type { JsonObject, PipelineRun, StepName } from './types.js';

const log = () => childLogger('pipeline');

/** Why a step was asked to stop. */
export type StopReason = 'cancel' | 'shutdown' | 'lease-lost';

export type StepOutcome =
  | { kind: 'succeeded'; outputs: JsonObject }
  | { kind: 'rejected'; error: AegisError }
  | { kind: 'failed'; error: AegisError; retryable: boolean }
  | { kind: 'interrupted'; reason: StopReason };

/** Failures a retry cannot fix (bad input, refused by policy): the run fails at once. */
const PERMANENT = new Set<ErrorCode>([
  'USAGE',
  'CONFIG_INVALID',
  'DATASET_INVALID',
  'MANIFEST_INVALID',
  'MANIFEST_MISSING',
  'MODEL_EMPTY',
  'ONNX_INVALID',
  'PIPELINE_INPUT_INVALID',
  'PIPELINE_REJECTED',
  'REGISTRY_INPUT_INVALID',
  'VERSION_IMMUTABLE',
  'VERSION_RETIRED',
  'KEY_INVALID',
  'KEY_UNSUPPORTED',
  'KEY_UNTRUSTED',
  'KEY_REVOKED',
  'KEY_EXPIRED',
  'ROLLOUT_NOT_ALLOWED',
  'ROLLOUT_SPEC_INVALID',
  'TRACKING_INPUT_INVALID',
  'TRACKING_AUTH_FAILED',
  'CONTROL_UNAUTHORIZED',
]);

export function isRetryable(e: AegisError): boolean {
  if (e.details.retryable === false) return false;
  if (e.details.retryable === true) return true;
  return !PERMANENT.has(e.code);
}

export function asAegisError(err: unknown): AegisError {
  if (isAegisError(err)) return err;
  return new AegisError('PIPELINE_STEP_FAILED', (err as Error)?.message ?? String(err), {
    cause: err,
    hint: 'An unexpected error; the step log and the control-plane log have details.',
  });
}

/** A unique id for a process executing runs: host, pid and a random part. */
export function newOwner(role: string): string {
  return `${role}:${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
}

/** The tracker runs go to: MLflow when configured, else the database. */
export function trackerOf(deps: PipelineDeps): Tracker {
  return deps.tracker ?? new DbTracker(deps.db);
}

/** Buffers a step's log lines and writes them to its row every second, and at the end. */
class StepLog {
  #pending = '';
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> = Promise.resolve();
  readonly #flushTo: (text: string) => Promise<void>;

  constructor(flushTo: (text: string) => Promise<void>) {
    this.#flushTo = flushTo;
  }

  line(text: string): void {
    this.#pending += `${new Date().toISOString()} ${text}\n`;
    if (!this.#timer) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        const text = this.take();
        this.#flushing = this.#flushing.then(() => this.#flushTo(text)).catch(() => undefined);
      }, 1000);
      this.#timer.unref();
    }
  }

  /** What is not written yet (the final write carries it with the step's outcome). */
  take(): string {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    const t = this.#pending;
    this.#pending = '';
    return t;
  }

  async settled(): Promise<string> {
    await this.#flushing;
    return this.take();
  }
}

/** Keeps `owner`'s lease on a run alive; aborts `controller` when a cancel is asked for or the lease is lost. */
export function holdLease(deps: PipelineDeps, runId: number, owner: string, controller: AbortController): { stop: () => void } {
  const seconds = deps.settings.leaseSeconds;
  const timer = setInterval(() => {
    renewLease(deps.db, runId, owner, seconds).then(
      (r) => {
        if (!r.held) controller.abort('lease-lost');
        else if (r.cancelRequested) controller.abort('cancel');
      },
      (err: unknown) => log().warn({ event: 'pipeline_lease_renew_failed', run: runId, err: (err as Error).message }, 'could not renew the lease on a pipeline run'),
    );
  }, (seconds * 1000) / 3);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}

/**
 * One attempt at one step of a run `owner` holds: marks it running, runs it,
 * records the outcome (outputs or error, and its log) in the database.
 */
export async function attemptStep(deps: PipelineDeps, runId: number, name: StepName, owner: string, signal: AbortSignal): Promise<StepOutcome> {
  const run = await getRun(deps.db, runId);
  const attempt = await stepStarted(deps.db, runId, name, owner);
  const steps = await listSteps(deps.db, runId);
  const logs = new StepLog((text) => appendLogs(deps.db, runId, name, owner, text));
  const runDir = join(deps.workDir, String(runId));
  await mkdir(runDir, { recursive: true });
  const tracker = trackerOf(deps);
  let current = run;
  const ctx: StepContext = {
    deps,
    run,
    name,
    attempt,
    signal,
    runDir,
    owner,
    log: (line) => logs.line(line),
    output<T>(step: StepName): T {
      const s = steps.find((x) => x.name === step);
      if (s?.state !== 'succeeded') {
        throw new AegisError('PIPELINE_STATE_INVALID', `step ${name} of run ${runId} needs the outputs of step ${step}, which has not succeeded`, {
          hint: `Run step ${step} first (\`aegis pipeline step ${step} --run ${runId}\`).`,
          details: { run: runId, step, retryable: false },
        });
      }
      return s.outputs as T;
    },
    async refresh() {
      current = await getRun(deps.db, runId);
      return current;
    },
    async tracking() {
      if (current.trackingRunId && current.trackingKind === tracker.kind) return { tracker, runId: current.trackingRunId };
      current = await getRun(deps.db, runId);
      if (current.trackingRunId && current.trackingKind === tracker.kind) return { tracker, runId: current.trackingRunId };
      const alert = current.request.alert;
      const started = await tracker.startRun({
        pipelineRunId: current.uid,
        ...(current.model ? { model: current.model } : {}),
        user: deps.actor,
        sourceName: 'aegis pipeline',
        description: alert
          ? `Retrain of ${current.model ?? '?'} started by alert ${alert.alertname} (#${alert.id}); Aegis pipeline run ${current.id}`
          : `Retrain of ${current.model ?? '?'} (Aegis pipeline run ${current.id}, started by ${current.createdBy})`,
        tags: {
          'aegis.pipeline_run': String(current.id),
          ...(current.datasetUri ? { 'aegis.dataset_uri': current.datasetUri } : {}),
          ...(current.parentVersion ? { 'aegis.parent_version': current.parentVersion } : {}),
          ...(current.version ? { 'aegis.version': current.version } : {}),
          ...(alert ? { 'aegis.alert_id': String(alert.id), 'aegis.alertname': alert.alertname } : {}),
        },
        startTime: current.createdAt.getTime(),
      });
      await setTrackingRun(deps.db, runId, tracker.kind, started.runId);
      current = { ...current, trackingKind: tracker.kind, trackingRunId: started.runId };
      logs.line(`tracking run ${started.runId} (${tracker.kind}${started.resumed ? ', resumed' : ''})${started.url ? ` ${started.url}` : ''}`);
      return { tracker, runId: started.runId };
    },
  };
  logs.line(`attempt ${attempt} of step ${name} (${owner})`);
  log().info({ event: 'pipeline_step_started', run: runId, step: name, attempt }, 'pipeline step started');
  let result;
  try {
    signal.throwIfAborted();
    result = await STEPS[name](ctx);
  } catch (err) {
    const reason = signal.aborted ? (signal.reason as StopReason) : undefined;
    if (reason === 'lease-lost') return { kind: 'interrupted', reason };
    const e = reason ? new AegisError('PIPELINE_CANCELLED', reason === 'cancel' ? 'cancelled' : 'interrupted: the process is shutting down', { cause: err }) : asAegisError(err);
    logs.line(`${reason === 'shutdown' ? 'interrupted' : 'failed'}: [${e.code}] ${e.message}`);
    await stepFailed(deps.db, runId, name, owner, {
      error: e.message,
      code: e.code,
      logs: await logs.settled(),
      state: reason === 'shutdown' ? 'pending' : 'failed',
      ...(e.code === 'PIPELINE_REJECTED' ? { outputs: e.details } : {}),
    });
    log().warn({ event: 'pipeline_step_failed', run: runId, step: name, attempt, code: e.code, err: e.message }, 'pipeline step failed');
    if (reason) return { kind: 'interrupted', reason };
    if (e.code === 'PIPELINE_REJECTED') return { kind: 'rejected', error: e };
    return { kind: 'failed', error: e, retryable: isRetryable(e) };
  }
  await deps.hooks?.beforeRecord?.(run, name);
  logs.line(`step ${name} succeeded`);
  await stepSucceeded(deps.db, runId, name, owner, result.outputs, result.summary ?? {}, await logs.settled());
  log().info({ event: 'pipeline_step_succeeded', run: runId, step: name, attempt }, 'pipeline step succeeded');
  await deps.hooks?.afterStep?.(run, name);
  return { kind: 'succeeded', outputs: result.outputs };
}

const TRACKER_STATUS: Record<Finish['state'], FinalRunStatus> = { succeeded: 'FINISHED', rejected: 'FINISHED', failed: 'FAILED', cancelled: 'KILLED' };

/** Ends the run's tracking run (before the DB row, so a crash in between ends it again on resume). Never throws. */
export async function finishTracking(deps: PipelineDeps, run: PipelineRun, f: Finish): Promise<void> {
  const tracker = trackerOf(deps);
  if (!run.trackingRunId || run.trackingKind !== tracker.kind) return;
  try {
    await tracker.setTags(run.trackingRunId, { 'aegis.outcome': f.state, ...(f.error ? { 'aegis.error': f.error.slice(0, 5000) } : {}) });
    await tracker.finish(run.trackingRunId, TRACKER_STATUS[f.state]);
  } catch (err) {
    log().warn({ event: 'pipeline_tracking_finish_failed', run: run.id, err: (err as Error).message }, 'could not end the tracking run; the pipeline run ends anyway');
  }
}

/** Ends a run `owner` holds: the tracker first, then the row (and the alert trigger) in one transaction. */
export async function endRun(deps: PipelineDeps, runId: number, owner: string | undefined, f: Finish): Promise<PipelineRun | undefined> {
  await finishTracking(deps, await getRun(deps.db, runId), f);
  const ended = await finishRun(deps.db, runId, owner, f);
  if (ended) log().info({ event: 'pipeline_run_finished', run: runId, state: f.state, code: f.errorCode, error: f.error }, `pipeline run ${f.state}`);
  return ended;
}
