import { randomUUID } from 'node:crypto';
import type { RetrainRequest, RetrainTrigger } from '../alerts/index.js';
import { childLogger } from '../log.js';
import type { PipelineDeps } from './deps.js';
import { attemptStep, endRun, finishTracking, holdLease, newOwner, type StopReason } from './execute.js';
import { claimNext, createRun, getRun, listSteps, releaseRun, requestCancel, retryRun } from './store.js';
import { FINAL_STATES, type PipelineRun, type RunRequest } from './types.js';

const log = () => childLogger('pipeline');

/** Longest wait between two tries of a step. */
export const MAX_BACKOFF_MS = 5 * 60_000;

/** The wait before try `attempt + 1` after `attempt` failed: backoffMs, doubled per try, at most MAX_BACKOFF_MS. */
export function backoffDelay(backoffMs: number, failedAttempt: number): number {
  return Math.min(MAX_BACKOFF_MS, backoffMs * 2 ** (failedAttempt - 1));
}

export interface PipelineRunnerOptions extends PipelineDeps {
  /** How often to look for runs queued by other processes (`aegis pipeline retry` on PostgreSQL), ms; default 5000, 0: never. */
  pollMs?: number;
  /** Waits between tries; default a timer. Tests record the delays instead of waiting them. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

export interface SubmitInput {
  datasetUri?: string;
  model?: string;
  /** Idempotency key; default a new one (every call a new run). */
  requestId?: string;
  actor?: string;
  /** `external`: the run is left to `aegis pipeline step` commands (an Argo Workflow) instead of this runner. */
  executor?: 'local' | 'external';
}

function defaultSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

interface Active {
  controller: AbortController;
  done: Promise<void>;
}

/**
 * The in-process pipeline runner (the control plane's, `aegis up`). Runs are
 * rows: `start` (the alert receiver's RetrainTrigger) records one and returns;
 * the runner executes queued runs, at most `maxConcurrentRuns` at once, each
 * step after the other, a failing step retried with exponential backoff.
 * Every step's outcome is in the database before the next begins, so after a
 * crash `resumeAll` carries each unfinished run on from its first unfinished
 * step (a step found `running` is run again: steps are idempotent).
 */
export class PipelineRunner implements RetrainTrigger {
  readonly #deps: PipelineRunnerOptions;
  readonly #owner = newOwner('runner');
  readonly #active = new Map<number, Active>();
  readonly #sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  #kicking = false;
  #again = false;
  #closed = false;
  #poll: NodeJS.Timeout | undefined;

  constructor(options: PipelineRunnerOptions) {
    this.#deps = options;
    this.#sleep = options.sleep ?? defaultSleep;
  }

  /** The id this runner holds runs under. */
  get owner(): string {
    return this.#owner;
  }

  /** RetrainTrigger: records a queued run for the alert (the one already recorded for this requestId, if any) and schedules it. */
  async start(request: RetrainRequest): Promise<{ runId: string }> {
    const req: RunRequest = {
      ...(request.model ? { model: request.model } : {}),
      ...(request.version ? { version: request.version } : {}),
      ...(request.datasetUri ? { datasetUri: request.datasetUri } : {}),
      alert: request.alert,
      triggerId: request.triggerId,
    };
    const { run, created } = await createRun(this.#deps.db, { requestId: request.requestId, source: 'alert', request: req, createdBy: this.#deps.actor });
    if (created) log().info({ event: 'pipeline_run_queued', run: run.id, requestId: request.requestId, model: request.model, alert: request.alert.id }, 'retrain run queued');
    this.#kick();
    return { runId: String(run.id) };
  }

  /** A run asked for by hand (`aegis pipeline run`). */
  async submit(input: SubmitInput): Promise<PipelineRun> {
    const req: RunRequest = { ...(input.model ? { model: input.model } : {}), ...(input.datasetUri ? { datasetUri: input.datasetUri } : {}) };
    const { run } = await createRun(this.#deps.db, {
      requestId: input.requestId ?? `manual-${randomUUID()}`,
      source: 'manual',
      executor: input.executor ?? 'local',
      request: req,
      createdBy: input.actor ?? this.#deps.actor,
    });
    this.#kick();
    return run;
  }

  /** Control-plane start: picks up queued runs and the running ones a dead process left, and keeps polling. */
  async resumeAll(): Promise<void> {
    if (this.#closed) return;
    const poll = this.#deps.pollMs ?? 5000;
    if (poll > 0 && !this.#poll) {
      this.#poll = setInterval(() => this.#kick(), poll);
      this.#poll.unref();
    }
    await this.#kickNow();
  }

  /** Stops a run: a queued one at once; a running one's step is aborted (a step that finishes anyway is recorded). */
  async cancel(id: number): Promise<PipelineRun> {
    const active = this.#active.get(id);
    if (active) {
      await this.#deps.db.query(`UPDATE pipeline_runs SET cancel_requested = true, updated_at = now() WHERE id = $1`, [id]);
      active.controller.abort('cancel');
      await active.done;
      return getRun(this.#deps.db, id);
    }
    const { run, immediate } = await requestCancel(this.#deps.db, id, this.#deps.db.engine === 'pglite');
    if (immediate) {
      await finishTracking(this.#deps, run, { state: 'cancelled', error: 'cancelled' });
      log().info({ event: 'pipeline_run_finished', run: id, state: 'cancelled' }, 'pipeline run cancelled');
    }
    return run;
  }

  /** Queues a failed, rejected or cancelled run again, from its first step that had not succeeded. */
  async retry(id: number): Promise<PipelineRun> {
    const run = await retryRun(this.#deps.db, id);
    log().info({ event: 'pipeline_run_retried', run: id, attempt: run.attempts }, 'pipeline run queued again');
    this.#kick();
    return run;
  }

  /** Resolves with the run once it has ended (or once this runner is closed and no longer executing it). */
  async wait(id: number, o: { pollMs?: number; signal?: AbortSignal } = {}): Promise<PipelineRun> {
    for (;;) {
      const run = await getRun(this.#deps.db, id);
      if (FINAL_STATES.includes(run.state)) return run;
      const active = this.#active.get(id);
      if (active) await active.done;
      else await new Promise((r) => setTimeout(r, o.pollMs ?? 200));
      o.signal?.throwIfAborted();
      if (this.#closed && !this.#active.has(id)) return getRun(this.#deps.db, id);
    }
  }

  /** Ids of the runs this runner is executing now. */
  activeRuns(): number[] {
    return [...this.#active.keys()];
  }

  /** Stops taking runs; a running step is interrupted and its run left to resume at the next start. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#poll) clearInterval(this.#poll);
    for (const a of this.#active.values()) a.controller.abort('shutdown');
    await Promise.all([...this.#active.values()].map((a) => a.done));
  }

  #kick(): void {
    this.#kickNow().catch((err: unknown) => log().error({ event: 'pipeline_schedule_failed', err: (err as Error).message }, 'could not look for pipeline runs to execute'));
  }

  async #kickNow(): Promise<void> {
    if (this.#closed) return;
    if (this.#kicking) {
      this.#again = true;
      return;
    }
    this.#kicking = true;
    try {
      do {
        this.#again = false;
        while (!this.#closed && this.#active.size < this.#deps.settings.maxConcurrentRuns) {
          const run = await claimNext(this.#deps.db, this.#owner, this.#deps.settings.leaseSeconds, this.#deps.db.engine === 'pglite', [...this.#active.keys()]);
          if (!run) break;
          this.#launch(run);
        }
      } while (this.#again && !this.#closed);
    } finally {
      this.#kicking = false;
    }
  }

  #launch(run: PipelineRun): void {
    const controller = new AbortController();
    const entry: Active = { controller, done: Promise.resolve() };
    entry.done = this.#execute(run, controller)
      .catch((err: unknown) => log().error({ event: 'pipeline_run_crashed', run: run.id, err: (err as Error).stack ?? String(err) }, 'pipeline run stopped on an unexpected error; it resumes at the next start'))
      .finally(() => {
        this.#active.delete(run.id);
        this.#kick();
      });
    this.#active.set(run.id, entry);
  }

  async #execute(claimed: PipelineRun, controller: AbortController): Promise<void> {
    const deps = this.#deps;
    const id = claimed.id;
    const owner = this.#owner;
    const { signal } = controller;
    const lease = holdLease(deps, id, owner, controller);
    const tries = new Map<string, number>();
    const stop = async (reason: StopReason) => {
      if (reason === 'cancel') await endRun(deps, id, owner, { state: 'cancelled', error: 'cancelled', errorCode: 'PIPELINE_CANCELLED' });
      else if (reason === 'shutdown') await releaseRun(deps.db, id, owner);
      // lease-lost: another process has it now; write nothing.
    };
    log().info({ event: 'pipeline_run_executing', run: id, resumed: claimed.startedAt !== null && claimed.state === 'running' }, 'executing pipeline run');
    try {
      for (;;) {
        if (signal.aborted) return await stop(signal.reason as StopReason);
        const run = await getRun(deps.db, id);
        if (run.owner !== owner) return;
        if (run.cancelRequested) return await stop('cancel');
        const steps = await listSteps(deps.db, id);
        const next = steps.find((s) => s.state !== 'succeeded' && s.state !== 'skipped');
        if (!next) {
          await endRun(deps, id, owner, { state: 'succeeded' });
          return;
        }
        const outcome = await attemptStep(deps, id, next.name, owner, signal);
        if (outcome.kind === 'succeeded') continue;
        if (outcome.kind === 'interrupted') return await stop(outcome.reason);
        if (outcome.kind === 'rejected') {
          await endRun(deps, id, owner, { state: 'rejected', error: outcome.error.message, errorCode: outcome.error.code });
          return;
        }
        const n = (tries.get(next.name) ?? 0) + 1;
        tries.set(next.name, n);
        if (!outcome.retryable || n >= deps.settings.attempts) {
          const why = outcome.retryable ? `after ${n} ${n === 1 ? 'try' : 'tries'}` : '(not retried: a retry cannot fix it)';
          await endRun(deps, id, owner, { state: 'failed', error: `step ${next.name} failed ${why}: ${outcome.error.message}`, errorCode: outcome.error.code });
          return;
        }
        const delay = backoffDelay(deps.settings.backoffMs, n);
        log().info({ event: 'pipeline_step_retry', run: id, step: next.name, attempt: n, delayMs: delay }, `retrying step ${next.name} in ${delay} ms`);
        await this.#sleep(delay, signal);
      }
    } finally {
      lease.stop();
    }
  }
}
