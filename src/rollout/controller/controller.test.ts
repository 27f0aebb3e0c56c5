import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { MEMORY, openDb } from '../../db/index.js';
import type { Db } from '../../db/types.js';
import { isAegisError } from '../../errors.js';
import type { ProviderResult } from '../analysis/judge.js';
import type { Measurer } from '../analysis/measure.js';
import { SlidingWindowStats } from '../providers/embedded/index.js';
import { validateRolloutSpec, type ResolvedMetric, type RolloutSpec } from '../spec.js';
import { DbRolloutStore } from '../store/index.js';
import { RolloutController, type RolloutRecord, type RolloutTarget, type StageRecorder, type VersionCheck } from './index.js';

/**
 * The controller against the real rollouts table (PGlite) with a recording
 * target: it stands in for the child model servers + gateway (those are
 * exercised for real in test/rollout.itest.ts), and records every weight the
 * controller sets so the order of operations can be asserted.
 */
class RecordingTarget implements RolloutTarget {
  weights: number[] = [];
  weight = 0;
  deployed: string[] = [];
  promoted = 0;
  removed = 0;
  failDeploy: string | undefined;
  stats = new SlidingWindowStats();
  async deployCanary(model: string, version: string, options: { injectFault?: string }): Promise<void> {
    if (this.failDeploy) throw new Error(this.failDeploy);
    this.deployed.push(`${model}@${version}${options.injectFault ? ` ${options.injectFault}` : ''}`);
  }
  async setWeight(_model: string, weight: number): Promise<void> {
    this.weight = weight;
    this.weights.push(weight);
  }
  async promoteCanary(): Promise<void> {
    this.promoted++;
    this.weight = 0;
  }
  async removeCanary(): Promise<void> {
    this.removed++;
    this.weight = 0;
  }
  trafficStats() {
    return this.stats;
  }
}

class TestStages implements StageRecorder, VersionCheck {
  prod = new Map<string, string>([['m', '1.0']]);
  canaries = new Map<string, string>();
  audits: string[] = [];
  async productionOf(model: string): Promise<string | null> {
    return this.prod.get(model) ?? null;
  }
  async canary(model: string, version: string): Promise<void> {
    this.canaries.set(model, version);
  }
  async production(model: string, version: string): Promise<void> {
    this.prod.set(model, version);
  }
  async audit(_actor: string, action: string): Promise<void> {
    this.audits.push(action);
  }
}

/** A measurer that answers from a script per metric name (the last answer repeats). */
class ScriptedMeasurer implements Measurer {
  calls = 0;
  readonly script: Record<string, ProviderResult[]>;
  constructor(script: Record<string, ProviderResult[]>) {
    this.script = script;
  }
  async measure(metric: ResolvedMetric): Promise<ProviderResult> {
    this.calls++;
    const answers = this.script[metric.name] ?? [{ value: 0 }];
    return answers.length > 1 ? answers.shift()! : answers[0]!;
  }
}

function spec(steps: unknown[], metric?: Record<string, unknown>, background = true): RolloutSpec {
  return validateRolloutSpec({
    apiVersion: 'aegis.dev/v1',
    kind: 'Rollout',
    strategy: { canary: { steps, ...(background && metric ? { analysis: { templates: [{ templateName: 't' }] } } : {}) } },
    analysisTemplates: metric
      ? [{ name: 't', metrics: [{ name: 'error-rate', successCondition: 'result < 0.05', provider: { embedded: { metric: 'error-rate', window: '10s', minSamples: 20 } }, ...metric }] }]
      : [],
  });
}

async function until(what: string, fn: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('rollout controller', () => {
  let db: Db;
  let store: DbRolloutStore;
  let target: RecordingTarget;
  let stages: TestStages;
  let clock: number;
  const controllers: RolloutController[] = [];
  const make = (measurer?: Measurer) => {
    const c = new RolloutController({ store, target, stages, now: () => clock, maxSleepMs: 5, ...(measurer ? { measurer: () => measurer } : {}) });
    controllers.push(c);
    return c;
  };
  const phase = async (id: number) => (await store.get(id))!.phase;

  beforeAll(async () => {
    db = await openDb({ url: MEMORY });
    store = new DbRolloutStore(db);
  });
  afterAll(async () => {
    await db.close();
  });
  beforeEach(async () => {
    await db.query('DELETE FROM rollouts');
    target = new RecordingTarget();
    stages = new TestStages();
    clock = 1_000_000;
  });
  afterEach(async () => {
    for (const c of controllers.splice(0)) await c.close();
  });

  it('walks the steps: weights in order, a timed pause counts, an indefinite pause waits for promote, then the canary becomes production', async () => {
    const c = make();
    const r = await c.start({ model: 'm', version: '2.0', actor: 'alice', spec: spec([{ setWeight: 20 }, { pause: { duration: '10s' } }, { setWeight: 50 }, { pause: {} }, { setWeight: 80 }]) });
    expect(stages.canaries.get('m')).toBe('2.0');
    await until('first weight', () => target.weights.includes(20));
    await new Promise((res) => setTimeout(res, 50));
    expect(target.weights).toEqual([20]); // the 10 s pause holds (the clock has not moved)
    clock += 10_000;
    await until('paused at the indefinite pause', async () => (await phase(r.id)) === 'Paused');
    expect(target.weights).toEqual([20, 50]);
    expect((await store.get(r.id))!.state.pause?.reason).toBe('step');
    await c.promote('m', { actor: 'alice' });
    await until('healthy', async () => (await phase(r.id)) === 'Healthy');
    expect(target.weights).toEqual([20, 50, 80]);
    expect(target.promoted).toBe(1);
    expect(stages.prod.get('m')).toBe('2.0');
    const done = (await store.get(r.id))!;
    expect(done.finishedAt).not.toBeNull();
    expect(done.state.events.map((e) => e.type)).toEqual(['Started', 'WeightSet', 'WeightSet', 'Paused', 'Promoted', 'WeightSet', 'Completed']);
    expect(stages.audits).toEqual(['rollout.start', 'rollout.promote']);
  });

  it('aborts on a Failed background analysis: weight 0, canary removed, production unchanged, the reason recorded', async () => {
    const m = new ScriptedMeasurer({ 'error-rate': [{ value: 0.01 }, { value: 0.3 }] });
    const c = make(m);
    const r = await c.start({ model: 'm', version: '2.0', actor: 'alice', spec: spec([{ setWeight: 30 }, { pause: {} }], { interval: '5s' }) });
    await until('first measurement', () => m.calls >= 1);
    expect(await phase(r.id)).toBe('Paused'); // held at the indefinite pause, analysis still running
    clock += 5_000;
    await until('degraded', async () => (await phase(r.id)) === 'Degraded');
    const done = (await store.get(r.id))!;
    expect(target.weight).toBe(0);
    expect(target.weights.at(-1)).toBe(0);
    expect(target.removed).toBe(1);
    expect(target.promoted).toBe(0);
    expect(stages.prod.get('m')).toBe('1.0');
    expect(done.state.abort?.reason).toMatch(/background analysis Failed/);
    expect(done.message).toMatch(/^aborted: /);
    expect(done.state.background?.phase).toBe('Failed');
    expect(done.state.background?.metrics[0]?.measurements.map((x) => x.value)).toEqual(['0.01', '0.3']);
    expect(stages.audits).toContain('rollout.abort');
  });

  it('aborts from the real embedded counters when the canary answers 10% 5xx (minimum samples first)', async () => {
    const c = make();
    const r = await c.start({ model: 'm', version: '2.0', actor: 'alice', spec: spec([{ setWeight: 50 }, { pause: {} }], { interval: '5s', inconclusiveLimit: 5 }) });
    await until('weight 50', () => target.weight === 50);
    // Too few requests: inconclusive, not failed.
    for (let i = 0; i < 5; i++) target.stats.record('canary', 500, 1);
    clock += 5_000;
    await until('an inconclusive measurement', async () => ((await store.get(r.id))!.state.background?.metrics[0]?.inconclusive ?? 0) >= 1);
    expect(await phase(r.id)).not.toBe('Degraded');
    for (let i = 0; i < 200; i++) target.stats.record('canary', i % 10 === 0 ? 503 : 200, 1);
    clock += 5_000;
    await until('degraded', async () => (await phase(r.id)) === 'Degraded');
    expect(target.weight).toBe(0);
  });

  it('pauses on an Inconclusive analysis and starts a new run on resume', async () => {
    const m = new ScriptedMeasurer({ 'error-rate': [{ value: 0.2, phase: 'Inconclusive', message: 'only 3 requests' }, { value: 0.0 }] });
    const c = make(m);
    const r = await c.start({ model: 'm', version: '2.0', actor: 'alice', spec: spec([{ setWeight: 10 }, { analysis: { templates: [{ templateName: 't' }] } }, { setWeight: 60 }], {}, false) });
    await until('paused by analysis', async () => (await phase(r.id)) === 'Paused');
    const paused = (await store.get(r.id))!;
    expect(paused.state.pause?.reason).toBe('analysis');
    expect(target.weights).toEqual([10]);
    await c.resume('m', { actor: 'bob' });
    await until('healthy', async () => (await phase(r.id)) === 'Healthy');
    expect(target.weights).toEqual([10, 60]);
  });

  it('pauses, never promotes, when a metric cannot be read (Error)', async () => {
    const m = new ScriptedMeasurer({ 'error-rate': [{ value: null, phase: 'Error', message: 'prometheus unreachable' }] });
    const c = make(m);
    const r = await c.start({ model: 'm', version: '2.0', actor: 'alice', spec: spec([{ setWeight: 10 }, { analysis: { templates: [{ templateName: 't' }] } }, { setWeight: 100 }], { consecutiveErrorLimit: 0 }, false) });
    await until('paused', async () => (await phase(r.id)) === 'Paused');
    expect(target.promoted).toBe(0);
    expect(target.weights).toEqual([10]);
  });

  it('resumes after a restart at its step, weight and pause clock', async () => {
    const c1 = make();
    const r = await c1.start({ model: 'm', version: '2.0', actor: 'alice', spec: spec([{ setWeight: 25 }, { pause: { duration: '10s' } }, { setWeight: 75 }, { pause: {} }]) });
    await until('in the pause', async () => (await store.get(r.id))!.state.pauseStartedAt !== undefined);
    clock += 6_000;
    await new Promise((res) => setTimeout(res, 30));
    await c1.close(); // the control plane goes away (the state is in the DB)
    const t2 = new RecordingTarget();
    target = t2;
    const c2 = make();
    const resumed = await c2.resumeAll();
    expect(resumed.map((x) => x.id)).toEqual([r.id]);
    await until('re-deployed at weight 25', () => t2.weights.includes(25));
    expect(t2.deployed).toEqual(['m@2.0']);
    clock += 3_000; // 9 s of the 10 s pause: still holding
    await new Promise((res) => setTimeout(res, 30));
    expect(t2.weights).toEqual([25]);
    clock += 1_000;
    await until('next step', () => t2.weights.includes(75));
    expect((await store.get(r.id))!.state.events.some((e) => e.type === 'Resumed')).toBe(true);
  });

  it('abort sends the weight to 0 at once, even while a measurement is in flight', async () => {
    let release!: () => void;
    const hang: Measurer = { measure: () => new Promise<ProviderResult>((res) => (release = () => res({ value: 0 }))) };
    const c = make(hang);
    const r = await c.start({ model: 'm', version: '2.0', actor: 'alice', spec: spec([{ setWeight: 40 }, { pause: {} }], { interval: '5s' }) });
    await until('measuring', () => release !== undefined);
    const aborted = c.abort('m', { actor: 'bob', reason: 'looks wrong' });
    await until('weight 0', () => target.weight === 0);
    release();
    await aborted;
    const done = (await store.get(r.id))!;
    expect(done.phase).toBe('Degraded');
    expect(done.state.abort).toMatchObject({ by: 'bob', reason: 'looks wrong' });
    expect(target.weights.filter((w) => w > 0)).toEqual([40]); // nothing raised it again
  });

  it('refuses a second active rollout, a version already in production, and a model without production', async () => {
    const c = make();
    await c.start({ model: 'm', version: '2.0', actor: 'a', spec: spec([{ setWeight: 10 }, { pause: {} }]) });
    const second = await c.start({ model: 'm', version: '3.0', actor: 'a' }).catch((e: unknown) => e);
    expect(isAegisError(second, 'ROLLOUT_ACTIVE')).toBe(true);
    const same = await c.start({ model: 'm', version: '1.0', actor: 'a' }).catch((e: unknown) => e);
    expect(isAegisError(same, 'ROLLOUT_NOT_ALLOWED')).toBe(true);
    const none = await c.start({ model: 'other', version: '1.0', actor: 'a' }).catch((e: unknown) => e);
    expect(isAegisError(none, 'ROLLOUT_NOT_ALLOWED')).toBe(true);
    const missing = await c.promote('other', { actor: 'a' }).catch((e: unknown) => e);
    expect(isAegisError(missing, 'ROLLOUT_NOT_FOUND')).toBe(true);
  });

  it('a canary that cannot be started ends Degraded with the reason, and no traffic ever moved', async () => {
    target.failDeploy = 'archive signature does not verify';
    const c = make();
    const r: RolloutRecord = await c.start({ model: 'm', version: '2.0', actor: 'a', spec: spec([{ setWeight: 10 }]) });
    await until('degraded', async () => (await phase(r.id)) === 'Degraded');
    expect((await store.get(r.id))!.message).toMatch(/could not be started: archive signature does not verify/);
    expect(target.weights.filter((w) => w > 0)).toEqual([]);
  });

  it('pause holds the step; promote --full skips the rest', async () => {
    const c = make();
    const r = await c.start({ model: 'm', version: '2.0', actor: 'a', spec: spec([{ setWeight: 10 }, { pause: { duration: '1h' } }, { setWeight: 50 }, { pause: { duration: '1h' } }]) });
    await until('weight 10', () => target.weights.includes(10));
    await c.pause('m', { actor: 'a' });
    expect(await phase(r.id)).toBe('Paused');
    const again = await c.resume('m', { actor: 'a' });
    expect(again.phase).toBe('Progressing');
    await c.promote('m', { actor: 'a', full: true });
    await until('healthy', async () => (await phase(r.id)) === 'Healthy');
    expect(target.weights).toEqual([10]);
    expect(target.promoted).toBe(1);
  });
});
