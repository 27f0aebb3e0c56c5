/**
 * The verdict rules, table by table, as Argo Rollouts' code decides them
 * (utils/evaluate/evaluate.go, analysis/analysis.go), plus the two places
 * Aegis departs from it on purpose (the missing-data guard, and Error runs
 * pausing rather than aborting). Time is always passed in.
 */
import { describe, expect, it } from 'vitest';
import type { ResultValue } from './condition.js';
import {
  applyMeasurements,
  argoVerdict,
  assessRun,
  dueMetrics,
  effectiveCount,
  ERROR_RETRY_INTERVAL_MS,
  formatValue,
  HISTORY_LIMIT,
  judge,
  judgeMeasurement,
  metricPhases,
  newAnalysisRun,
  nextMeasurementAt,
  recordMeasurement,
  rolloutAction,
  terminateRun,
  type AnalysisMetric,
  type AnalysisRunState,
  type Measurement,
  type MeasurementPhase,
} from './judge.js';

type Conds = Pick<AnalysisMetric, 'successCondition' | 'failureCondition'>;

describe('one measurement: Argo’s EvaluateResult', () => {
  const S = (successCondition: string): Conds => ({ successCondition });
  const F = (failureCondition: string): Conds => ({ failureCondition });
  const SF = (successCondition: string, failureCondition: string): Conds => ({ successCondition, failureCondition });
  const table: Array<[string, Conds, ResultValue, MeasurementPhase]> = [
    // neither condition: always Successful (the code; the docs say Inconclusive)
    ['neither condition set', {}, 0.5, 'Successful'],
    ['neither condition set, NaN', {}, NaN, 'Successful'],
    ['neither condition set, empty vector', {}, [], 'Successful'],
    // success only: not successful means Failed
    ['success only, true', S('result < 0.05'), 0.01, 'Successful'],
    ['success only, false → Failed', S('result < 0.05'), 0.2, 'Failed'],
    // failure only: not failed means Successful
    ['failure only, true', F('result > 0.05'), 0.2, 'Failed'],
    ['failure only, false → Successful', F('result > 0.05'), 0.01, 'Successful'],
    // both
    ['both, success true', SF('result < 0.05', 'result > 0.1'), 0.01, 'Successful'],
    ['both, failure true', SF('result < 0.05', 'result > 0.1'), 0.5, 'Failed'],
    ['both, neither true → Inconclusive', SF('result < 0.05', 'result > 0.1'), 0.07, 'Inconclusive'],
    ['both true → failure wins', SF('result > 0', 'result > 0'), 1, 'Failed'],
    // NaN and Inf (docs/features/analysis.md "NaN and Infinity", which the code agrees with)
    ['NaN, success only → Failed', S('result >= 0.95'), NaN, 'Failed'],
    ['NaN, both → Inconclusive', SF('result >= 0.95', 'result < 0.95'), NaN, 'Inconclusive'],
    ['NaN, failure only → Successful', F('result < 0.95'), NaN, 'Successful'],
    ['NaN accepted explicitly', S('isNaN(result) || result >= 0.95'), NaN, 'Successful'],
    ['+Inf, success only', S('result >= 0.95'), Infinity, 'Successful'],
    ['+Inf refused explicitly', F('isInf(result)'), Infinity, 'Failed'],
    // empty vector (docs "Empty array / Prometheus")
    ['empty, len guard accepts', S('len(result) == 0 || result[0] >= 0.95'), [], 'Successful'],
    ['empty, len guard refuses', S('len(result) > 0 && result[0] >= 0.95'), [], 'Failed'],
    ['empty, indexed → Error', S('result[0] >= 0.95'), [], 'Error'],
    ['empty, all() is vacuously true', S('all(result, {# < 0.05})'), [], 'Successful'],
    // vectors
    ['vector indexed', S('result[0] < 0.05'), [0.01], 'Successful'],
    ['vector not indexed → Error', S('result < 0.05'), [0.01], 'Error'],
    // evaluation errors
    ['success condition errors (evaluated first, so it wins over a true failure)', SF('result[0] < 1', 'true'), 1, 'Error'],
    ['failure condition errors', SF('true', 'result[0] > 1'), 1, 'Error'],
    ['non-bool condition → Error', S('result + 1'), 1, 'Error'],
    // nil (Datadog's empty answer; default() looks at the value itself)
    ['nil, default() supplies a value', S('default(result, 0) < 0.05'), null, 'Successful'],
    ['nil, compared → Error', S('result < 0.05'), null, 'Error'],
  ];
  it.each(table)('%s', (_name, conds, value, phase) => {
    expect(argoVerdict(value, conds).phase).toBe(phase);
  });

  it('makes a condition that does not parse an Error measurement, as Argo does with a compile error', () => {
    expect(argoVerdict(1, { successCondition: 'result <' })).toMatchObject({ phase: 'Error', message: expect.stringMatching(/^successCondition: .*unexpected end of expression/) });
    expect(judge({ name: 'm', successCondition: 'result <' }, { value: NaN }).phase).toBe('Inconclusive');
  });

  it('says which condition could not be evaluated', () => {
    expect(argoVerdict([], { successCondition: 'result[0] < 1' })).toEqual({ phase: 'Error', message: 'successCondition: index out of range: 0 (vector length 0)' });
    expect(argoVerdict(1, { successCondition: 'true', failureCondition: 'result[0] > 1' }).message).toMatch(/^failureCondition: cannot index number/);
  });
});

describe('one measurement: the missing-data guard and the provider’s own phase', () => {
  const metric = (conds: Conds): AnalysisMetric => ({ name: 'm', ...conds });
  const table: Array<[string, Conds, ResultValue, MeasurementPhase, MeasurementPhase]> = [
    // name, conditions, value, Argo's verdict, Aegis' verdict
    ['NaN, success only (Argo rolls back)', { successCondition: 'result < 0.05' }, NaN, 'Failed', 'Inconclusive'],
    ['NaN, failure only (Argo promotes)', { failureCondition: 'result > 0.05' }, NaN, 'Successful', 'Inconclusive'],
    ['no conditions, NaN (Argo promotes)', {}, NaN, 'Successful', 'Inconclusive'],
    ['nil, no conditions', {}, null, 'Successful', 'Inconclusive'],
    ['empty vector indexed (Argo errors)', { successCondition: 'result[0] < 0.05' }, [], 'Error', 'Inconclusive'],
    ['empty vector, all() (Argo promotes)', { successCondition: 'all(result, {# < 0.5})' }, [], 'Successful', 'Inconclusive'],
    ['vector of NaN', { successCondition: 'result[0] < 0.05' }, [NaN], 'Failed', 'Inconclusive'],
    ['both conditions, NaN: already Inconclusive', { successCondition: 'result < 0.05', failureCondition: 'result > 0.1' }, NaN, 'Inconclusive', 'Inconclusive'],
    // explicit handling is respected
    ['isNaN accepts NaN', { successCondition: 'isNaN(result) || result < 0.05' }, NaN, 'Successful', 'Successful'],
    ['isNaN refuses NaN', { failureCondition: 'isNaN(result) || result > 0.05' }, NaN, 'Failed', 'Failed'],
    ['len accepts empty', { successCondition: 'len(result) == 0 || result[0] < 0.05' }, [], 'Successful', 'Successful'],
    ['len refuses empty', { successCondition: 'len(result) > 0 && result[0] < 0.05' }, [], 'Failed', 'Failed'],
    ['default() fills nil', { successCondition: 'default(result, 0) < 0.05' }, null, 'Successful', 'Successful'],
    // data present: untouched
    ['a value', { successCondition: 'result < 0.05' }, 0.2, 'Failed', 'Failed'],
    ['+Inf is data, not missing', { successCondition: 'result < 0.05' }, Infinity, 'Failed', 'Failed'],
    ['a vector with one NaN among values', { successCondition: 'result[1] < 0.05' }, [NaN, 0.01], 'Successful', 'Successful'],
  ];
  it.each(table)('%s: Argo %s, Aegis %s', (_name, conds, value, argo, aegis) => {
    expect(judge(metric(conds), { value }, { guardMissingData: false }).phase).toBe(argo);
    expect(judge(metric(conds), { value }).phase).toBe(aegis);
  });

  it('explains a guarded verdict', () => {
    const v = judge(metric({ failureCondition: 'result > 0.05' }), { value: NaN });
    expect(v.message).toMatch(/no data \(value NaN\): Argo Rollouts would count this measurement Successful; Aegis pauses instead/);
  });

  it('takes the provider’s own phase: Error as is, and the min-sample Inconclusive is never turned into Failed', () => {
    const strict = metric({ successCondition: 'result < 0.05' });
    expect(judge(strict, { value: null, phase: 'Error', message: 'connection refused' })).toEqual({ phase: 'Error', message: 'connection refused' });
    expect(judge(strict, { value: 0.5, phase: 'Inconclusive', message: '3 requests' })).toEqual({ phase: 'Inconclusive', message: '3 requests' });
  });

  it('stores values as text, as Argo does, so the run state is JSON', () => {
    expect([formatValue(0.02), formatValue(NaN), formatValue(Infinity), formatValue(-Infinity), formatValue([0.1, NaN]), formatValue([]), formatValue(null)]).toEqual([
      '0.02',
      'NaN',
      '+Inf',
      '-Inf',
      '[0.1,NaN]',
      '[]',
      '',
    ]);
    const m = judgeMeasurement(metric({ successCondition: 'result < 1' }), { value: 0.5, message: 'ok' }, { startedAt: 1, finishedAt: 2 });
    expect(m).toEqual({ phase: 'Successful', value: '0.5', message: 'ok', startedAt: 1, finishedAt: 2 });
  });
});

// ---------------------------------------------------------------------------
// The run

const T0 = 1_700_000_000_000;
let clock = T0;
function meas(phase: MeasurementPhase, at = (clock += 1000)): Measurement {
  return { phase, value: '0', startedAt: at, finishedAt: at };
}

/** Feeds one measurement per call (as one Argo reconcile takes one per metric) and returns the final state. */
function feed(metrics: AnalysisMetric[], sequence: Array<[string, MeasurementPhase]>, state = newAnalysisRun(T0)): AnalysisRunState {
  let s = state;
  for (const [name, phase] of sequence) s = applyMeasurements(s, metrics, [{ metric: name, measurement: meas(phase) }]);
  return s;
}

function phasesAfter(metric: AnalysisMetric, phases: MeasurementPhase[]): string[] {
  const out: string[] = [];
  let s = newAnalysisRun(T0);
  for (const p of phases) {
    s = applyMeasurements(s, [metric], [{ metric: metric.name, measurement: meas(p) }]);
    out.push(s.phase);
  }
  return out;
}

describe('limits (assessMetricFailureInconclusiveOrError: strict >)', () => {
  const table: Array<[string, AnalysisMetric, MeasurementPhase[], string[]]> = [
    ['failureLimit 0: the first failure fails', { name: 'm', intervalMs: 1000 }, ['Failed'], ['Failed']],
    ['failureLimit 2: the third failure fails', { name: 'm', intervalMs: 1000, failureLimit: 2 }, ['Failed', 'Successful', 'Failed', 'Failed'], ['Running', 'Running', 'Running', 'Failed']],
    ['failures need not be consecutive', { name: 'm', intervalMs: 1000, failureLimit: 1 }, ['Failed', 'Successful', 'Successful', 'Failed'], ['Running', 'Running', 'Running', 'Failed']],
    ['inconclusiveLimit 0: the first inconclusive', { name: 'm', intervalMs: 1000 }, ['Successful', 'Inconclusive'], ['Running', 'Inconclusive']],
    ['inconclusiveLimit 1: the second inconclusive', { name: 'm', intervalMs: 1000, inconclusiveLimit: 1 }, ['Inconclusive', 'Inconclusive'], ['Running', 'Inconclusive']],
    [
      'consecutiveErrorLimit default 4: the fifth error in a row',
      { name: 'm', intervalMs: 1000 },
      ['Error', 'Error', 'Error', 'Error', 'Error'],
      ['Running', 'Running', 'Running', 'Running', 'Error'],
    ],
    [
      'a non-error measurement resets the error streak',
      { name: 'm', intervalMs: 1000 },
      ['Error', 'Error', 'Error', 'Error', 'Successful', 'Error', 'Error'],
      ['Running', 'Running', 'Running', 'Running', 'Running', 'Running', 'Running'],
    ],
    ['an inconclusive one resets it too', { name: 'm', intervalMs: 1000, consecutiveErrorLimit: 1, inconclusiveLimit: 5 }, ['Error', 'Inconclusive', 'Error', 'Error'], ['Running', 'Running', 'Running', 'Error']],
    ['consecutiveErrorLimit 0: the first error', { name: 'm', intervalMs: 1000, consecutiveErrorLimit: 0 }, ['Error'], ['Error']],
  ];
  it.each(table)('%s', (_name, metric, phases, runPhases) => {
    expect(phasesAfter(metric, phases)).toEqual(runPhases);
  });
});

describe('count (EffectiveCount, count reached → Successful)', () => {
  it('is 1 without count or interval, unbounded with an interval only, else count', () => {
    expect(effectiveCount({ name: 'm' })).toBe(1);
    expect(effectiveCount({ name: 'm', count: 0 })).toBe(1);
    expect(effectiveCount({ name: 'm', intervalMs: 1000 })).toBeUndefined();
    expect(effectiveCount({ name: 'm', intervalMs: 1000, count: 3 })).toBe(3);
  });

  const table: Array<[string, AnalysisMetric, MeasurementPhase[], string[]]> = [
    ['a single measurement by default', { name: 'm', successCondition: 'true' }, ['Successful'], ['Successful']],
    ['count 3', { name: 'm', intervalMs: 1000, count: 3 }, ['Successful', 'Successful', 'Successful'], ['Running', 'Running', 'Successful']],
    ['count reached with failures within failureLimit', { name: 'm', intervalMs: 1000, count: 3, failureLimit: 1 }, ['Failed', 'Successful', 'Successful'], ['Running', 'Running', 'Successful']],
    ['count reached with inconclusives within inconclusiveLimit', { name: 'm', intervalMs: 1000, count: 2, inconclusiveLimit: 1 }, ['Inconclusive', 'Successful'], ['Running', 'Successful']],
    ['a failure on the last count still fails (limits are checked first)', { name: 'm', intervalMs: 1000, count: 2 }, ['Successful', 'Failed'], ['Running', 'Failed']],
    ['errors do not use up the count', { name: 'm', intervalMs: 1000, count: 2 }, ['Successful', 'Error', 'Error', 'Successful'], ['Running', 'Running', 'Running', 'Successful']],
    ['a single measurement is retried after an error', { name: 'm' }, ['Error', 'Successful'], ['Running', 'Successful']],
  ];
  it.each(table)('%s', (_name, metric, phases, runPhases) => {
    expect(phasesAfter(metric, phases)).toEqual(runPhases);
  });

  it('keeps counting past the history it keeps', () => {
    const metric: AnalysisMetric = { name: 'm', intervalMs: 1000 };
    const s = feed([metric], Array.from({ length: 25 }, () => ['m', 'Successful'] as [string, MeasurementPhase]));
    expect(s.metrics[0]!.measurements).toHaveLength(HISTORY_LIMIT);
    expect(s.metrics[0]!.count).toBe(25);
    expect(s.metrics[0]!.successful).toBe(25);
  });
});

describe('the run (assessRunStatus)', () => {
  const a: AnalysisMetric = { name: 'a', intervalMs: 10_000 };
  const b: AnalysisMetric = { name: 'b', intervalMs: 10_000, count: 1 };

  it('is Running while a metric has not been measured or is still running', () => {
    expect(assessRun(newAnalysisRun(T0), [a, b]).phase).toBe('Running');
    const s = feed([a, b], [['b', 'Successful']]);
    expect(s.phase).toBe('Running');
    expect(metricPhases(s, [a, b])).toEqual({ a: 'Pending', b: 'Successful' });
  });

  it('takes the worst completed phase: Failed over Error over Inconclusive over Successful', () => {
    const m = (name: string): AnalysisMetric => ({ name, count: 1 });
    const worst = (phases: MeasurementPhase[]) => {
      const metrics = phases.map((_, i) => m(`m${i}`));
      return feed(metrics, phases.map((p, i) => [`m${i}`, p] as [string, MeasurementPhase])).phase;
    };
    // (a metric completes at once: count 1, or a limit of 0 crossed; the run ends as soon as one ends badly)
    expect(worst(['Successful', 'Successful'])).toBe('Successful');
    const s = applyMeasurements(newAnalysisRun(T0), [m('x'), m('y'), m('z')], [
      { metric: 'x', measurement: meas('Inconclusive') },
      { metric: 'y', measurement: meas('Failed') },
      { metric: 'z', measurement: meas('Successful') },
    ]);
    expect(s.phase).toBe('Failed');
    const e = applyMeasurements(newAnalysisRun(T0), [{ name: 'x', count: 1 }, { name: 'y', consecutiveErrorLimit: 0 }], [
      { metric: 'x', measurement: meas('Inconclusive') },
      { metric: 'y', measurement: meas('Error') },
    ]);
    expect(e.phase).toBe('Error');
  });

  it('ends at once when one metric fails: the others are terminated Successful', () => {
    const s = feed([a, b], [
      ['a', 'Successful'],
      ['b', 'Failed'],
    ]);
    expect(s.phase).toBe('Failed');
    expect(metricPhases(s, [a, b])).toEqual({ a: 'Successful', b: 'Failed' });
    expect(s.message).toBe('Metric "b" assessed Failed due to failed (1) > failureLimit (0)');
    expect(nextMeasurementAt(s, [a, b])).toBeUndefined();
  });

  it('ends Inconclusive when a metric crosses inconclusiveLimit, which pauses the rollout', () => {
    const s = feed([a], [['a', 'Inconclusive']]);
    expect(s.phase).toBe('Inconclusive');
    expect(rolloutAction(s.phase)).toBe('pause');
  });

  it('runs a metric with an interval and no count until terminated, then it is Successful', () => {
    let s = feed([a], [
      ['a', 'Successful'],
      ['a', 'Successful'],
    ]);
    expect(s.phase).toBe('Running');
    s = terminateRun(s, [a]);
    expect(s.phase).toBe('Successful');
    expect(s.message).toBe('Run Terminated');
    expect(dueMetrics(s, [a], Number.MAX_SAFE_INTEGER)).toEqual([]);
  });

  it('is Successful when terminated before anything was measured', () => {
    expect(terminateRun(newAnalysisRun(T0), [a, b]).phase).toBe('Successful');
  });

  it('keeps the worst phase when terminated after a tolerated failure', () => {
    const s = terminateRun(feed([{ ...a, failureLimit: 1 }], [['a', 'Failed']]), [{ ...a, failureLimit: 1 }]);
    expect(s.phase).toBe('Successful');
  });

  it('ignores dry-run metrics for the verdict (they are measured and reported)', () => {
    const dry: AnalysisMetric = { name: 'dry', count: 1, dryRun: true };
    const s = feed([dry, b], [
      ['dry', 'Failed'],
      ['b', 'Successful'],
    ]);
    expect(metricPhases(s, [dry, b])).toEqual({ dry: 'Failed', b: 'Successful' });
    expect(s.phase).toBe('Successful');
    // a failing dry-run metric does not terminate the others
    const t = feed([dry, a], [['dry', 'Failed']]);
    expect(t.phase).toBe('Running');
    expect(dueMetrics(t, [dry, a], T0)).toEqual([a]);
    // only dry-run metrics: Successful once they complete
    expect(feed([dry], [['dry', 'Failed']]).phase).toBe('Successful');
  });

  it('keeps a completed metric and a completed run as they are', () => {
    const failed = feed([b], [['b', 'Failed']]);
    const again = recordMeasurement(failed, b, meas('Successful'));
    expect(again).toBe(failed);
    expect(assessRun(failed, [b])).toBe(failed);
    expect(terminateRun(failed, [b])).toBe(failed);
  });

  it('when several limits are crossed at once, Error wins over Inconclusive over Failed (the code’s order)', () => {
    const m: AnalysisMetric = { name: 'm', intervalMs: 1000, consecutiveErrorLimit: 0 };
    const both = applyMeasurements(newAnalysisRun(T0), [m], [
      { metric: 'm', measurement: meas('Failed') },
      { metric: 'm', measurement: meas('Inconclusive') },
    ]);
    expect(both.phase).toBe('Inconclusive');
    const all = applyMeasurements(newAnalysisRun(T0), [m], [
      { metric: 'm', measurement: meas('Failed') },
      { metric: 'm', measurement: meas('Inconclusive') },
      { metric: 'm', measurement: meas('Error') },
    ]);
    expect(all.phase).toBe('Error');
  });

  it('is plain JSON, so a controller can store it and resume', () => {
    const metrics: AnalysisMetric[] = [a, { name: 'n', intervalMs: 5000, failureLimit: 3, inconclusiveLimit: 1, successCondition: 'result[0] < 1' }];
    let s = newAnalysisRun(T0);
    s = applyMeasurements(s, metrics, [
      { metric: 'a', measurement: meas('Successful') },
      { metric: 'n', measurement: judgeMeasurement(metrics[1]!, { value: [NaN] }, { startedAt: T0, finishedAt: T0 + 5 }) },
    ]);
    const restored = JSON.parse(JSON.stringify(s)) as AnalysisRunState;
    expect(restored).toEqual(s);
    expect(restored.metrics[1]!.measurements[0]).toMatchObject({ phase: 'Inconclusive', value: '[NaN]' });
    const next = applyMeasurements(restored, metrics, [{ metric: 'n', measurement: meas('Failed') }]);
    expect(next.metrics.find((r) => r.name === 'n')!.failed).toBe(1);
  });

  it('maps run phases to what the rollout does (Aegis pauses on Error; Argo aborts)', () => {
    expect(rolloutAction('Successful')).toBe('continue');
    expect(rolloutAction('Running')).toBe('wait');
    expect(rolloutAction('Inconclusive')).toBe('pause');
    expect(rolloutAction('Error')).toBe('pause');
    expect(rolloutAction('Failed')).toBe('abort');
  });

  it('refuses a measurement of a metric that is not in the run', () => {
    expect(() => applyMeasurements(newAnalysisRun(T0), [a], [{ metric: 'zz', measurement: meas('Successful') }])).toThrow(/no metric named "zz"/);
  });
});

describe('scheduling (generateMetricTasks / calculateNextReconcileTime)', () => {
  it('measures at once without initialDelay, after it with one', () => {
    const now: AnalysisMetric = { name: 'now', intervalMs: 30_000 };
    const later: AnalysisMetric = { name: 'later', intervalMs: 30_000, initialDelayMs: 60_000 };
    const s = newAnalysisRun(T0);
    expect(dueMetrics(s, [now, later], T0).map((m) => m.name)).toEqual(['now']);
    expect(dueMetrics(s, [now, later], T0 + 59_999).map((m) => m.name)).toEqual(['now']);
    expect(dueMetrics(s, [now, later], T0 + 60_000).map((m) => m.name)).toEqual(['now', 'later']);
    expect(nextMeasurementAt(s, [later])).toBe(T0 + 60_000);
    expect(nextMeasurementAt(s, [now, later])).toBe(T0);
  });

  it('measures every interval after the last one finished', () => {
    const m: AnalysisMetric = { name: 'm', intervalMs: 30_000 };
    const s = applyMeasurements(newAnalysisRun(T0), [m], [{ metric: 'm', measurement: { phase: 'Successful', value: '0', startedAt: T0, finishedAt: T0 + 200 } }]);
    expect(nextMeasurementAt(s, [m])).toBe(T0 + 30_200);
    expect(dueMetrics(s, [m], T0 + 30_199)).toEqual([]);
    expect(dueMetrics(s, [m], T0 + 30_200)).toEqual([m]);
  });

  it('retries 10 s after an Error, whatever the interval', () => {
    const m: AnalysisMetric = { name: 'm', intervalMs: 300_000 };
    const s = applyMeasurements(newAnalysisRun(T0), [m], [{ metric: 'm', measurement: { phase: 'Error', value: '', startedAt: T0, finishedAt: T0 } }]);
    expect(nextMeasurementAt(s, [m])).toBe(T0 + ERROR_RETRY_INTERVAL_MS);
  });

  it('stops once the count is reached, or when the metric has no interval', () => {
    const counted: AnalysisMetric = { name: 'c', intervalMs: 1000, count: 2 };
    const once: AnalysisMetric = { name: 'o' };
    let s = feed([counted, once], [
      ['c', 'Successful'],
      ['o', 'Successful'],
    ]);
    expect(metricPhases(s, [counted, once])).toEqual({ c: 'Running', o: 'Successful' });
    expect(dueMetrics(s, [counted, once], Number.MAX_SAFE_INTEGER).map((m) => m.name)).toEqual(['c']);
    s = feed([counted, once], [['c', 'Successful']], s);
    expect(s.phase).toBe('Successful');
    expect(nextMeasurementAt(s, [counted, once])).toBeUndefined();
  });

  it('takes the earliest of the metrics', () => {
    const fast: AnalysisMetric = { name: 'fast', intervalMs: 5_000 };
    const slow: AnalysisMetric = { name: 'slow', intervalMs: 60_000 };
    const s = applyMeasurements(newAnalysisRun(T0), [fast, slow], [
      { metric: 'fast', measurement: { phase: 'Successful', value: '0', startedAt: T0, finishedAt: T0 } },
      { metric: 'slow', measurement: { phase: 'Successful', value: '0', startedAt: T0, finishedAt: T0 } },
    ]);
    expect(nextMeasurementAt(s, [fast, slow])).toBe(T0 + 5_000);
  });
});
