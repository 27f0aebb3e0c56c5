import { AegisError } from '../../errors.js';
import { childLogger } from '../../log.js';
import { newAnalysisRun, rolloutAction, terminateRun, type AnalysisRunState } from '../analysis/judge.js';
import { runAnalysisStep, type Measurer } from '../analysis/measure.js';
import { MetricProviders } from '../providers/index.js';
import { DEFAULT_ROLLOUT_SPEC, pauseMs, resolveAnalysis, type AnalysisRef, type ResolvedMetric, type RolloutSpec, type RuntimeArgs } from '../spec.js';
import { EVENT_LIMIT, type RolloutRecord, type RolloutState, type RolloutStore, type RolloutTarget, type StageRecorder } from './types.js';

export * from './types.js';

const log = () => childLogger('rollout');

/** The registry facts a rollout needs before it starts. */
export interface VersionCheck {
  /** Throws REGISTRY_NOT_FOUND if `model@version` is not registered; returns the current production version (null if none). */
  productionOf(model: string, version: string): Promise<string | null>;
}

export interface RolloutControllerOptions {
  store: RolloutStore;
  target: RolloutTarget;
  stages: StageRecorder & VersionCheck;
  /** How metrics are measured; default MetricProviders over the target's traffic counters. Tests pass a stand-in. */
  measurer?: (model: string) => Measurer;
  /** Epoch milliseconds; default Date.now. */
  now?: () => number;
  /** Longest wait between two reconciles of a rollout, ms (default 1000). */
  maxSleepMs?: number;
  /** Called after every saved change (metrics, dashboards). */
  onChange?: (record: RolloutRecord) => void;
}

export interface StartRollout {
  model: string;
  version: string;
  spec?: RolloutSpec;
  actor: string;
  /** DRILLS ONLY: passed to the canary server as --inject-fault. */
  injectFault?: string;
}

/** One rollout being driven: its record, a lock serializing reconciles and manual operations, and a wake-up. */
class Runner {
  record: RolloutRecord;
  deployed = false;
  /** Set the moment an abort is asked for: no step may raise the weight after it. */
  aborting = false;
  stopped = false;
  readonly measurements = new AbortController();
  loop: Promise<void> = Promise.resolve();
  #lock: Promise<unknown> = Promise.resolve();
  #wake: (() => void) | undefined;
  readonly metricsCache = new Map<string, ResolvedMetric[]>();

  constructor(record: RolloutRecord) {
    this.record = record;
  }

  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#lock.then(fn, fn);
    this.#lock = next.catch(() => undefined);
    return next;
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = done;
    });
  }

  wake(): void {
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
  }
}

function isActive(r: RolloutRecord): boolean {
  return r.phase === 'Progressing' || r.phase === 'Paused';
}

/**
 * The local canary controller: Argo Rollouts' canary semantics over the
 * Aegis gateway. Each active rollout has a loop that reconciles it — runs the
 * background analysis (from its startingStep), executes steps (setWeight,
 * pause with or without a duration, inline analysis), aborts on a Failed
 * analysis (weight 0 at once, the stage left as it was), pauses on an
 * Inconclusive or Error one (a missing metric never promotes), and at the end
 * makes the canary the new stable (the old production version is archived).
 * Every change is saved to the DB before the loop sleeps, so a control plane
 * restarted after kill -9 resumes each rollout at its step, weight, pause
 * clock and analysis history (resumeAll).
 */
export class RolloutController {
  readonly #o: RolloutControllerOptions;
  readonly #runners = new Map<string, Runner>();
  readonly #now: () => number;
  #closed = false;

  constructor(options: RolloutControllerOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
  }

  /** Starts a canary of `model@version` against the current production version. */
  async start(input: StartRollout): Promise<RolloutRecord> {
    const spec = input.spec ?? DEFAULT_ROLLOUT_SPEC;
    const stable = await this.#o.stages.productionOf(input.model, input.version);
    if (stable === null) {
      throw new AegisError('ROLLOUT_NOT_ALLOWED', `model ${input.model} has no production version to canary ${input.version} against`, {
        hint: `Promote a first version straight to production (\`aegis model promote ${input.model}@VERSION production\`); canaries compare a new version with it.`,
        details: { model: input.model, version: input.version },
      });
    }
    if (stable === input.version) {
      throw new AegisError('ROLLOUT_NOT_ALLOWED', `${input.model}@${input.version} is already in production`, {
        hint: 'Start a rollout of a newer registered version (`aegis model list` shows them).',
        details: { model: input.model, version: input.version },
      });
    }
    // Resolve every analysis now, so a spec that cannot run is refused before anything moves.
    this.#metricsOf(spec, spec.strategy.canary.analysis, 'strategy.canary.analysis');
    spec.strategy.canary.steps.forEach((s, i) => s.analysis && this.#metricsOf(spec, s.analysis, `strategy.canary.steps[${i}].analysis`));

    const now = this.#now();
    const state: RolloutState = {
      stepIndex: 0,
      weight: 0,
      ...(input.injectFault ? { injectFault: input.injectFault } : {}),
      events: [{ at: now, type: 'Started', message: `canary ${input.version} against stable ${stable}${input.injectFault ? ` [FAULT INJECTION: ${input.injectFault}]` : ''}` }],
    };
    const record = await this.#o.store.create({ model: input.model, version: input.version, stableVersion: stable, spec, state, createdBy: input.actor });
    try {
      await this.#o.stages.canary(input.model, input.version, input.actor, `rollout #${record.id}`);
      await this.#o.stages.audit(input.actor, 'rollout.start', input.model, input.version, { rollout: record.id, stable, ...(input.injectFault ? { injectFault: input.injectFault } : {}) });
    } catch (err) {
      record.phase = 'Degraded';
      record.message = `could not start: ${(err as Error).message}`;
      record.finishedAt = new Date(this.#now());
      await this.#o.store.save(record);
      throw err;
    }
    log().info({ event: 'rollout_started', rollout: record.id, model: input.model, version: input.version, stable }, 'rollout started');
    this.#run(record);
    return record;
  }

  /** Picks up every active rollout from the DB (control plane start-up). */
  async resumeAll(): Promise<RolloutRecord[]> {
    const active = await this.#o.store.active();
    for (const r of active) {
      if (this.#runners.has(r.model)) continue;
      this.#event(r, 'Resumed', `control plane resumed the rollout at step ${r.state.stepIndex}, weight ${r.state.weight}%`);
      log().info({ event: 'rollout_resumed', rollout: r.id, model: r.model, step: r.state.stepIndex, weight: r.state.weight }, 'rollout resumed after restart');
      this.#run(r);
    }
    return active;
  }

  /** The model's newest rollout, as the controller sees it now. */
  async status(model: string): Promise<RolloutRecord> {
    const running = this.#runners.get(model);
    if (running) return running.record;
    const r = await this.#o.store.latest(model);
    if (!r) {
      throw new AegisError('ROLLOUT_NOT_FOUND', `model ${model} has no rollout`, {
        hint: `Start one with \`aegis rollout start ${model}@VERSION\`; \`aegis rollout list\` shows all rollouts.`,
        details: { model },
      });
    }
    return r;
  }

  list(filter: { model?: string; limit?: number } = {}): Promise<RolloutRecord[]> {
    return this.#o.store.list(filter);
  }

  /**
   * Argo's promote: an indefinite pause (or a pause of any kind) is lifted and
   * the rollout moves past the current pause step; with `full`, every
   * remaining step is skipped and the canary becomes the stable now.
   */
  async promote(model: string, options: { full?: boolean; actor: string }): Promise<RolloutRecord> {
    return this.#manual(model, 'promote', async (run) => {
      const r = run.record;
      const st = r.state;
      const step = r.spec.strategy.canary.steps[st.stepIndex];
      if (options.full) st.promoteFull = true;
      else if (step?.pause || (r.phase === 'Paused' && st.pause?.reason === 'step')) {
        st.stepIndex++;
        delete st.pauseStartedAt;
      } else if (step?.analysis && st.pause?.reason === 'analysis') {
        st.stepIndex++;
        delete st.stepAnalysis;
      }
      if (st.pause?.reason === 'analysis' && st.background && st.background.phase !== 'Running') st.background = newAnalysisRun(this.#now());
      this.#unpause(r);
      this.#event(r, 'Promoted', options.full ? `${options.actor}: promote --full (skip the remaining steps)` : `${options.actor}: promote (next step)`);
      await this.#o.stages.audit(options.actor, 'rollout.promote', r.model, r.version, { rollout: r.id, full: !!options.full, step: st.stepIndex });
    });
  }

  /** Holds the rollout at its step (background analysis keeps running and can still abort). */
  async pause(model: string, options: { actor: string }): Promise<RolloutRecord> {
    return this.#manual(model, 'pause', async (run) => {
      const r = run.record;
      if (r.phase === 'Paused') return;
      r.phase = 'Paused';
      r.state.pause = { reason: 'user', since: this.#now(), message: `paused by ${options.actor}` };
      r.message = `paused by ${options.actor}`;
      this.#event(r, 'Paused', `paused by ${options.actor}`);
      await this.#o.stages.audit(options.actor, 'rollout.pause', r.model, r.version, { rollout: r.id, step: r.state.stepIndex });
    });
  }

  /** Lifts a pause: after an Inconclusive/Error analysis, a new analysis run starts; an indefinite pause step is passed. */
  async resume(model: string, options: { actor: string }): Promise<RolloutRecord> {
    return this.#manual(model, 'resume', async (run) => {
      const r = run.record;
      const st = r.state;
      if (r.phase !== 'Paused') {
        throw new AegisError('ROLLOUT_NOT_ALLOWED', `the rollout of ${model} is ${r.phase}, not Paused`, { hint: '`aegis rollout status` shows its state; only a paused rollout resumes.', details: { model, phase: r.phase } });
      }
      if (st.pause?.reason === 'step') {
        st.stepIndex++;
        delete st.pauseStartedAt;
      }
      if (st.pause?.reason === 'analysis') {
        if (st.stepAnalysis && st.stepAnalysis.run.phase !== 'Running') delete st.stepAnalysis;
        if (st.background && st.background.phase !== 'Running') st.background = newAnalysisRun(this.#now());
      }
      this.#unpause(r);
      this.#event(r, 'Resumed', `resumed by ${options.actor}`);
      await this.#o.stages.audit(options.actor, 'rollout.resume', r.model, r.version, { rollout: r.id, step: st.stepIndex });
    });
  }

  /** Weight 0 at once, then the canary is stopped; the registry stages stay as they are. */
  async abort(model: string, options: { actor: string; reason?: string }): Promise<RolloutRecord> {
    const run = this.#runners.get(model);
    if (!run) return this.#notActive(model);
    // The weight goes to 0 before waiting for anything else (a measurement may be in flight).
    run.aborting = true;
    run.measurements.abort();
    await this.#o.target.setWeight(model, 0).catch((err: Error) => log().error({ event: 'abort_weight_failed', model, err: err.message }, 'could not set the canary weight to 0'));
    await run.exclusive(async () => {
      if (isActive(run.record)) await this.#abortRun(run, options.reason ?? `aborted by ${options.actor}`, options.actor);
    });
    run.wake();
    return run.record;
  }

  /** Stops the loops (the state stays in the DB; resumeAll picks it up again). */
  async close(): Promise<void> {
    this.#closed = true;
    const runners = [...this.#runners.values()];
    for (const run of runners) {
      run.stopped = true;
      run.measurements.abort();
      run.wake();
    }
    await Promise.all(runners.map((r) => r.loop));
    this.#runners.clear();
  }

  // -------------------------------------------------------------------------

  async #notActive(model: string): Promise<never> {
    const latest = await this.#o.store.latest(model);
    throw new AegisError(latest ? 'ROLLOUT_NOT_ALLOWED' : 'ROLLOUT_NOT_FOUND', latest ? `the latest rollout of ${model} (#${latest.id}, ${latest.version}) is ${latest.phase}: it is no longer running` : `model ${model} has no rollout`, {
      hint: latest ? `Start a new one with \`aegis rollout start ${model}@VERSION\`.` : `Start one with \`aegis rollout start ${model}@VERSION\`.`,
      details: { model, ...(latest ? { rollout: latest.id, phase: latest.phase } : {}) },
    });
  }

  async #manual(model: string, what: string, fn: (run: Runner) => Promise<void>): Promise<RolloutRecord> {
    const run = this.#runners.get(model);
    if (!run) return this.#notActive(model);
    await run.exclusive(async () => {
      if (!isActive(run.record)) await this.#notActive(model);
      await fn(run);
      await this.#save(run.record);
    });
    log().info({ event: `rollout_${what}`, rollout: run.record.id, model }, `rollout ${what}`);
    run.wake();
    return run.record;
  }

  #unpause(r: RolloutRecord): void {
    delete r.state.pause;
    if (r.phase === 'Paused') r.phase = 'Progressing';
    r.message = null;
  }

  #run(record: RolloutRecord): void {
    if (this.#closed) return;
    const run = new Runner(record);
    this.#runners.set(record.model, run);
    run.loop = (async () => {
      while (!run.stopped && isActive(run.record)) {
        let nextAt: number | undefined;
        try {
          nextAt = await run.exclusive(() => this.#reconcile(run));
        } catch (err) {
          // A reconcile that throws (the DB went away, a bug) is retried; the rollout does not advance meanwhile.
          log().error({ event: 'reconcile_failed', rollout: record.id, model: record.model, err: (err as Error).message }, 'rollout reconcile failed; retrying');
          nextAt = this.#now() + 1000;
        }
        if (!isActive(run.record) || run.stopped) break;
        const max = this.#o.maxSleepMs ?? 1000;
        const delay = Math.min(max, Math.max(10, (nextAt ?? Infinity) - this.#now()));
        await run.sleep(delay);
      }
      if (this.#runners.get(record.model) === run) this.#runners.delete(record.model);
    })();
  }

  #metricsOf(spec: RolloutSpec, ref: AnalysisRef | undefined, field: string, cache?: Map<string, ResolvedMetric[]>, runtime?: RuntimeArgs): ResolvedMetric[] {
    if (!ref) return [];
    const hit = cache?.get(field);
    if (hit) return hit;
    const metrics = resolveAnalysis(spec, ref, field, runtime);
    cache?.set(field, metrics);
    return metrics;
  }

  #measurer(model: string): Measurer {
    if (this.#o.measurer) return this.#o.measurer(model);
    const stats = this.#o.target.trafficStats(model);
    return new MetricProviders(stats ? { trafficStats: stats } : {});
  }

  async #analyze(run: Runner, state: AnalysisRunState, metrics: ResolvedMetric[]): Promise<{ state: AnalysisRunState; nextAt: number | undefined }> {
    if (state.phase !== 'Running') return { state, nextAt: undefined };
    const r = await runAnalysisStep(state, metrics, this.#measurer(run.record.model), { now: this.#now, signal: run.measurements.signal });
    for (const name of r.measured) {
      const m = r.state.metrics.find((x) => x.name === name);
      const last = m?.measurements[m.measurements.length - 1];
      if (last) log().info({ event: 'measurement', rollout: run.record.id, metric: name, value: last.value, phase: last.phase }, 'analysis measurement');
    }
    return { state: r.state, nextAt: r.nextAt };
  }

  /** One pass; returns when it next needs to run. Saves the record if anything changed. */
  async #reconcile(run: Runner): Promise<number | undefined> {
    const r = run.record;
    if (!isActive(r) || run.aborting) return undefined;
    const before = JSON.stringify([r.phase, r.state, r.message]);
    const nextAt = await this.#step(run);
    if (JSON.stringify([r.phase, r.state, r.message]) !== before) await this.#save(r);
    return nextAt;
  }

  async #step(run: Runner): Promise<number | undefined> {
    const r = run.record;
    const st = r.state;
    const { target } = this.#o;
    const canary = r.spec.strategy.canary;
    const steps = canary.steps;

    if (!run.deployed) {
      try {
        await target.deployCanary(r.model, r.version, st.injectFault ? { injectFault: st.injectFault } : {});
        run.deployed = true;
        if (st.weight > 0 && !run.aborting) await target.setWeight(r.model, st.weight);
      } catch (err) {
        await this.#abortRun(run, `the canary ${r.model}@${r.version} could not be started: ${(err as Error).message}`, 'controller');
        return undefined;
      }
    }

    // Steps first (a Paused rollout holds its step), then the background analysis, which can still abort or pause it.
    let stepsNext: number | undefined;
    let stepsDone = false;
    if (r.phase !== 'Paused') {
      const s = await this.#steps(run);
      if ('stop' in s) return undefined;
      if ('done' in s) stepsDone = true;
      else stepsNext = s.wait;
    }

    let bgNext: number | undefined;
    const bgMetrics = this.#metricsOf(r.spec, canary.analysis, 'strategy.canary.analysis', run.metricsCache, runtimeArgs(run.record));
    if (canary.analysis && st.stepIndex >= (canary.analysis.startingStep ?? 0) && !st.promoteFull) {
      if (!st.background) {
        st.background = newAnalysisRun(this.#now());
        this.#event(r, 'AnalysisStarted', `background analysis (${bgMetrics.map((m) => m.name).join(', ')})`);
      }
      const res = await this.#analyze(run, st.background, bgMetrics);
      st.background = res.state;
      bgNext = res.nextAt;
      if (run.aborting) return undefined;
      const action = rolloutAction(st.background.phase);
      if (action === 'abort') {
        await this.#abortRun(run, `background analysis Failed: ${st.background.message ?? 'a metric crossed its failure limit'}`, 'analysis');
        return undefined;
      }
      if (action === 'pause' && r.phase !== 'Paused') this.#pauseFor(r, 'analysis', `background analysis ${st.background.phase}: ${st.background.message ?? ''}`.trim());
    }
    if (r.phase === 'Paused' || !stepsDone) return min(stepsNext, bgNext);

    // Every step done (or promote --full): the canary becomes the stable.
    if (st.background) st.background = terminateRun(st.background, bgMetrics);
    if (run.aborting) return undefined;
    await target.promoteCanary(r.model);
    st.stepIndex = steps.length;
    st.weight = 100;
    delete st.promoteFull;
    r.phase = 'Healthy';
    r.message = `${r.version} is the new stable`;
    r.finishedAt = new Date(this.#now());
    this.#event(r, 'Completed', `${r.version} promoted to production; ${r.stableVersion ?? 'the old stable'} archived`);
    await this.#save(r);
    await this.#o.stages.production(r.model, r.version, r.createdBy, `rollout #${r.id} completed`);
    log().info({ event: 'rollout_completed', rollout: r.id, model: r.model, version: r.version }, 'rollout completed: canary promoted');
    return undefined;
  }


  /** Executes steps until one has to wait; `done` once every step is (or promote --full). */
  async #steps(run: Runner): Promise<{ stop: true } | { done: true } | { wait: number | undefined }> {
    const r = run.record;
    const st = r.state;
    const { target } = this.#o;
    const steps = r.spec.strategy.canary.steps;
    while (st.stepIndex < steps.length && !st.promoteFull) {
      const i = st.stepIndex;
      const step = steps[i]!;
      if (step.setWeight !== undefined) {
        if (run.aborting) return { stop: true };
        await target.setWeight(r.model, step.setWeight);
        st.weight = step.setWeight;
        this.#event(r, 'WeightSet', `step ${i}: canary weight ${step.setWeight}%`);
        st.stepIndex++;
        continue;
      }
      if (step.pause) {
        const ms = pauseMs(step);
        if (ms === undefined) {
          this.#pauseFor(r, 'step', `step ${i}: paused until \`aegis rollout promote ${r.model}\``);
          return { wait: undefined };
        }
        const now = this.#now();
        st.pauseStartedAt ??= now;
        if (now < st.pauseStartedAt + ms) return { wait: st.pauseStartedAt + ms };
        delete st.pauseStartedAt;
        st.stepIndex++;
        continue;
      }
      if (step.analysis) {
        const metrics = this.#metricsOf(r.spec, step.analysis, `strategy.canary.steps[${i}].analysis`, run.metricsCache, runtimeArgs(run.record));
        if (!st.stepAnalysis || st.stepAnalysis.step !== i) {
          st.stepAnalysis = { step: i, run: newAnalysisRun(this.#now()) };
          this.#event(r, 'AnalysisStarted', `step ${i}: analysis (${metrics.map((m) => m.name).join(', ')})`);
        }
        const res = await this.#analyze(run, st.stepAnalysis.run, metrics);
        st.stepAnalysis = { step: i, run: res.state };
        if (run.aborting) return { stop: true };
        const action = rolloutAction(res.state.phase);
        if (action === 'abort') {
          await this.#abortRun(run, `step ${i} analysis Failed: ${res.state.message ?? 'a metric crossed its failure limit'}`, 'analysis');
          return { stop: true };
        }
        if (action === 'pause') {
          this.#pauseFor(r, 'analysis', `step ${i} analysis ${res.state.phase}: ${res.state.message ?? ''}`.trim());
          return { wait: undefined };
        }
        if (action === 'wait') return { wait: res.nextAt };
        this.#event(r, 'AnalysisSuccessful', `step ${i}: analysis Successful`);
        delete st.stepAnalysis;
        st.stepIndex++;
        continue;
      }
    }

    return { done: true };
  }

  #pauseFor(r: RolloutRecord, reason: 'step' | 'analysis', message: string): void {
    r.phase = 'Paused';
    r.state.pause = { reason, since: this.#now(), message };
    r.message = message;
    this.#event(r, 'Paused', message);
    log().warn({ event: 'rollout_paused', rollout: r.id, model: r.model, reason, message }, 'rollout paused');
  }

  async #abortRun(run: Runner, reason: string, by: string): Promise<void> {
    const r = run.record;
    const st = r.state;
    run.aborting = true;
    await this.#o.target.setWeight(r.model, 0).catch((err: Error) => log().error({ event: 'abort_weight_failed', model: r.model, err: err.message }, 'could not set the canary weight to 0'));
    st.weight = 0;
    st.abort = { at: this.#now(), by, reason };
    if (st.background && st.background.phase === 'Running') st.background = terminateRun(st.background, this.#metricsOf(r.spec, r.spec.strategy.canary.analysis, 'strategy.canary.analysis', run.metricsCache, runtimeArgs(run.record)));
    delete st.pause;
    r.phase = 'Degraded';
    r.message = `aborted: ${reason}`;
    r.finishedAt = new Date(this.#now());
    this.#event(r, 'Aborted', reason);
    log().warn({ event: 'rollout_aborted', rollout: r.id, model: r.model, version: r.version, by, reason }, 'rollout aborted: canary weight 0');
    await this.#save(r);
    await this.#o.stages.audit(by === 'analysis' || by === 'controller' ? `aegis-controller` : by, 'rollout.abort', r.model, r.version, { rollout: r.id, reason });
    await this.#o.target.removeCanary(r.model).catch((err: Error) => log().error({ event: 'canary_stop_failed', model: r.model, err: err.message }, 'could not stop the aborted canary'));
  }

  #event(r: RolloutRecord, type: string, message: string): void {
    r.state.events.push({ at: this.#now(), type, message });
    if (r.state.events.length > EVENT_LIMIT) r.state.events.splice(0, r.state.events.length - EVENT_LIMIT);
  }

  async #save(r: RolloutRecord): Promise<void> {
    await this.#o.store.save(r);
    this.#o.onChange?.(r);
  }
}

function min(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return Math.min(a, b);
}

/** The values of the runtime arguments (RUNTIME_ARGS) for a rollout. */
function runtimeArgs(r: RolloutRecord): RuntimeArgs {
  return { model: r.model, version: r.version, 'stable-version': r.stableVersion ?? '' };
}
