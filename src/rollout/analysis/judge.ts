import { AegisError } from '../../errors.js';
import { condition, conditionSyntaxError, evaluateCondition, type ResultValue } from './condition.js';

/**
 * The analysis run state machine, rule for rule as Argo Rollouts' analysis
 * controller decides it, as pure functions over explicit inputs (the time is
 * passed in), so a controller can keep the state in its database, crash,
 * and carry on. References are to argoproj/argo-rollouts:
 *   - utils/evaluate/evaluate.go            EvaluateResult, EvalCondition
 *   - analysis/analysis.go                  generateMetricTasks, runMeasurements,
 *                                           assessRunStatus, assessMetricStatus,
 *                                           assessMetricFailureInconclusiveOrError,
 *                                           calculateNextReconcileTime
 *   - utils/analysis/helpers.go             IsWorse (analysisStatusOrder), IsTerminating
 *   - pkg/apis/rollouts/v1alpha1/analysis_types.go  Metric.EffectiveCount, field docs
 *   - utils/defaults/defaults.go            DefaultConsecutiveErrorLimit = 4
 *   - metricproviders/prometheus/prometheus.go  processResponse (vectors, empty results)
 * Where Aegis departs from Argo it says so here and in docs/rollouts.md
 * ("Where Aegis differs"): the missing-data guard, and how a run's Error
 * phase moves a rollout (rolloutAction).
 */

/** The phase of one measurement. */
export type MeasurementPhase = 'Successful' | 'Failed' | 'Inconclusive' | 'Error';
/** The phase of a metric (Pending: nothing measured yet). */
export type MetricPhase = 'Pending' | 'Running' | MeasurementPhase;
/** The phase of a whole analysis run. */
export type RunPhase = 'Running' | MeasurementPhase;

/** What the judge needs of a metric: the spec's metric with durations in milliseconds. */
export interface AnalysisMetric {
  name: string;
  /** Time between measurements; unset: no repetition (see `count`). */
  intervalMs?: number;
  /** Wait this long after the run starts before the first measurement. */
  initialDelayMs?: number;
  /** Number of measurements; 0 or unset: 1 without an interval, unbounded with one (Argo's EffectiveCount). */
  count?: number;
  /** Failed measurements tolerated; one more fails the metric. Default 0. */
  failureLimit?: number;
  /** Inconclusive measurements tolerated; one more makes the metric Inconclusive. Default 0. */
  inconclusiveLimit?: number;
  /** Consecutive Error measurements tolerated; one more errors the metric. Default 4. */
  consecutiveErrorLimit?: number;
  successCondition?: string;
  failureCondition?: string;
  /** Measured and reported, but never decides the run (Argo's dryRun). */
  dryRun?: boolean;
}

/** What a provider returned (see providers/types.ts). */
export interface ProviderResult {
  value: ResultValue;
  /** Set when the provider itself decided: Error (query failed) or Inconclusive (too few samples). */
  phase?: 'Error' | 'Inconclusive';
  message?: string;
}

/** One measurement as kept in the run state: JSON-safe (the value is text, as Argo keeps it: "0.02", "[0.1,NaN]", "NaN", "[]"). */
export interface Measurement {
  phase: MeasurementPhase;
  value: string;
  message?: string;
  startedAt: number;
  finishedAt: number;
}

export interface MetricResult {
  name: string;
  phase: MetricPhase;
  message?: string;
  dryRun: boolean;
  /** Successful + Failed + Inconclusive measurements (Error ones are not counted, as in Argo). */
  count: number;
  successful: number;
  failed: number;
  inconclusive: number;
  error: number;
  consecutiveError: number;
  /** The latest measurements (at most HISTORY_LIMIT); the counters above cover all of them. */
  measurements: Measurement[];
}

export interface AnalysisRunState {
  startedAt: number;
  phase: RunPhase;
  message?: string;
  /** Set by terminateRun (e.g. the rollout finished its steps): no further measurements. */
  terminate: boolean;
  /** One entry per metric that has been measured at least once, in spec order. */
  metrics: MetricResult[];
}

/** analysis_types.go: "ConsecutiveErrorLimit … (default: 4)"; defaults.go DefaultConsecutiveErrorLimit = 4. */
export const DEFAULT_CONSECUTIVE_ERROR_LIMIT = 4;
/** analysis.go DefaultErrorRetryInterval: after an Error measurement the next one is 10 s later, whatever the interval. */
export const ERROR_RETRY_INTERVAL_MS = 10_000;
/** analysis.go DefaultMeasurementHistoryLimit: measurements kept per metric. */
export const HISTORY_LIMIT = 10;

const COMPLETED: ReadonlySet<MetricPhase> = new Set(['Successful', 'Failed', 'Inconclusive', 'Error']);
export function isCompleted(phase: MetricPhase | RunPhase): phase is MeasurementPhase {
  return COMPLETED.has(phase);
}

/** helpers.go analysisStatusOrder, best to worst: Successful, Running, Pending, Inconclusive, Error, Failed. */
const ORDER: readonly MetricPhase[] = ['Successful', 'Running', 'Pending', 'Inconclusive', 'Error', 'Failed'];
function isWorse(current: MetricPhase, candidate: MetricPhase): boolean {
  return ORDER.indexOf(candidate) > ORDER.indexOf(current);
}

// ---------------------------------------------------------------------------
// One measurement

export interface Verdict {
  phase: MeasurementPhase;
  message?: string;
}

/**
 * Argo's verdict on a value (evaluate.go EvaluateResult), exactly:
 *  1. successCondition is evaluated, then failureCondition; an evaluation error in
 *     either (type mismatch, index out of range on an empty vector, non-bool value)
 *     makes the measurement Error.
 *  2. Neither condition set: Successful ("Always return success unless there is an
 *     error"). Argo's docs say Inconclusive here; the code wins.
 *  3. Only successCondition: failed = !success. Only failureCondition: success = !failed.
 *  4. failed → Failed (so with both set and both true, Failed wins);
 *     neither true → Inconclusive; otherwise Successful.
 * NaN compares false with everything, so `result >= 0.95` alone makes NaN Failed,
 * `result < 0.05` (failure) alone makes it Successful, and both make it Inconclusive,
 * as the "NaN and Infinity" examples of docs/features/analysis.md show.
 */
export function argoVerdict(value: ResultValue, metric: Pick<AnalysisMetric, 'successCondition' | 'failureCondition'>): Verdict {
  const hasSuccess = !!metric.successCondition;
  const hasFailure = !!metric.failureCondition;
  let success = false;
  let failure = false;
  if (hasSuccess) {
    const out = evaluateCondition(metric.successCondition!, value);
    if (!out.ok) return { phase: 'Error', message: `successCondition: ${out.error}` };
    success = out.value;
  }
  if (hasFailure) {
    const out = evaluateCondition(metric.failureCondition!, value);
    if (!out.ok) return { phase: 'Error', message: `failureCondition: ${out.error}` };
    failure = out.value;
  }
  if (!hasSuccess && !hasFailure) return { phase: 'Successful' };
  if (hasSuccess && !hasFailure) failure = !success;
  if (!hasSuccess && hasFailure) success = !failure;
  if (failure) return { phase: 'Failed' };
  if (!success) return { phase: 'Inconclusive' };
  return { phase: 'Successful' };
}

/**
 * No data: nil, NaN, an empty vector (Prometheus answers `[]` when no series
 * match: prometheus.go passes the empty slice to the conditions, it is not an
 * error there), or a vector of NaNs (0/0 when nothing was served).
 */
export function isMissing(value: ResultValue): boolean {
  if (value === null) return true;
  if (typeof value === 'number') return Number.isNaN(value);
  return value.length === 0 || value.every((v) => Number.isNaN(v));
}

/**
 * The verdict on one provider result: the provider's own phase if it set one
 * (Error: the query failed; Inconclusive: fewer samples than minSamples), else
 * Argo's verdict, then the missing-data guard.
 *
 * Missing-data guard (Aegis, not Argo; Architecture invariant 4, "a missing
 * metric pauses a rollout, never promotes it"): when the value is missing and
 * neither condition says what missing means (no isNaN / isNil / default / len
 * in them), Argo's verdict is an accident of NaN comparisons or of indexing an
 * empty vector: Successful for a failureCondition-only metric or one without
 * conditions (promotes on no data), Failed for a successCondition-only one
 * (rolls back on no data), Error for `result[0]` on `[]`. The guard makes all
 * of them Inconclusive, which pauses the rollout. A condition that handles
 * missing data explicitly (`isNaN(result) || result >= 0.95`) is judged
 * exactly as Argo judges it. `guardMissingData: false` gives Argo's verdict alone.
 */
export function judge(metric: AnalysisMetric, result: ProviderResult, options: { guardMissingData?: boolean } = {}): Verdict {
  if (result.phase) return { phase: result.phase, ...(result.message ? { message: result.message } : {}) };
  const verdict = argoVerdict(result.value, metric);
  if (options.guardMissingData === false || verdict.phase === 'Inconclusive' || !isMissing(result.value)) return withMessage(verdict, result.message);
  if (conditionsHandleMissingData(metric)) return withMessage(verdict, result.message);
  return {
    phase: 'Inconclusive',
    message:
      `no data (value ${formatValue(result.value)}): Argo Rollouts would count this measurement ${verdict.phase}` +
      `${verdict.message ? ` (${verdict.message})` : ''}; Aegis pauses instead. ` +
      'Say what no data means in the condition (e.g. `isNaN(result) || …`, `len(result) > 0 && …`) to judge it.',
  };
}

/** Whether a metric's conditions say what no data means (isNaN, isNil, default, len): then Argo's verdict stands. */
export function conditionsHandleMissingData(metric: Pick<AnalysisMetric, 'successCondition' | 'failureCondition'>): boolean {
  return [metric.successCondition, metric.failureCondition].some((c) => c !== undefined && conditionSyntaxError(c) === undefined && condition(c).handlesMissingData);
}

function withMessage(verdict: Verdict, providerMessage: string | undefined): Verdict {
  if (!providerMessage || verdict.message) return verdict;
  return { ...verdict, message: providerMessage };
}

/** Builds the stored measurement from a provider result and the times it started and finished. */
export function judgeMeasurement(
  metric: AnalysisMetric,
  result: ProviderResult,
  times: { startedAt: number; finishedAt: number },
  options: { guardMissingData?: boolean } = {},
): Measurement {
  const verdict = judge(metric, result, options);
  return {
    phase: verdict.phase,
    value: formatValue(result.value),
    ...(verdict.message ? { message: verdict.message } : {}),
    startedAt: times.startedAt,
    finishedAt: times.finishedAt,
  };
}

/** A value as Argo stores it: `0.02`, `NaN`, `+Inf`, `[0.1,NaN]`, `[]`; nil as the empty string. */
export function formatValue(value: ResultValue): string {
  const one = (v: number) => (Number.isNaN(v) ? 'NaN' : v === Infinity ? '+Inf' : v === -Infinity ? '-Inf' : String(v));
  if (value === null) return '';
  if (typeof value === 'number') return one(value);
  return `[${value.map(one).join(',')}]`;
}

// ---------------------------------------------------------------------------
// The run

/** A new run that starts at `now` (Argo sets status.startedAt on the first reconcile). */
export function newAnalysisRun(now: number): AnalysisRunState {
  return { startedAt: now, phase: 'Running', terminate: false, metrics: [] };
}

function resultOf(state: AnalysisRunState, name: string): MetricResult | undefined {
  return state.metrics.find((m) => m.name === name);
}

/**
 * Argo's EffectiveCount (analysis_types.go): count if set and non-zero; else 1
 * without an interval (a single measurement); else none (measure until the run
 * is terminated or a limit is crossed).
 */
export function effectiveCount(metric: AnalysisMetric): number | undefined {
  if (!metric.count) return metric.intervalMs ? undefined : 1;
  return metric.count;
}

/**
 * Records a finished measurement (analysis.go runMeasurements): Successful,
 * Failed and Inconclusive each add to their counter and to `count` and reset
 * consecutiveError; Error adds to `error` and `consecutiveError` but NOT to
 * `count`, so an errored measurement is retried and never uses up `count`.
 * Measurements of a metric that has already completed are ignored.
 */
export function recordMeasurement(state: AnalysisRunState, metric: AnalysisMetric, measurement: Measurement): AnalysisRunState {
  const prev = resultOf(state, metric.name);
  if (prev && isCompleted(prev.phase)) return state;
  const r: MetricResult = prev
    ? { ...prev, measurements: [...prev.measurements] }
    : { name: metric.name, phase: 'Running', dryRun: !!metric.dryRun, count: 0, successful: 0, failed: 0, inconclusive: 0, error: 0, consecutiveError: 0, measurements: [] };
  switch (measurement.phase) {
    case 'Successful':
      r.successful++;
      r.count++;
      r.consecutiveError = 0;
      break;
    case 'Failed':
      r.failed++;
      r.count++;
      r.consecutiveError = 0;
      break;
    case 'Inconclusive':
      r.inconclusive++;
      r.count++;
      r.consecutiveError = 0;
      break;
    case 'Error':
      r.error++;
      r.consecutiveError++;
      break;
  }
  r.measurements.push(measurement);
  if (r.measurements.length > HISTORY_LIMIT) r.measurements.splice(0, r.measurements.length - HISTORY_LIMIT);
  const metrics = prev ? state.metrics.map((m) => (m === prev ? r : m)) : [...state.metrics, r];
  return { ...state, metrics };
}

/**
 * A metric's limits (analysis.go assessMetricFailureInconclusiveOrError). All
 * comparisons are strict: a limit is the number of such measurements
 * tolerated, so failureLimit 0 fails on the first Failed measurement,
 * failureLimit 2 on the third; consecutiveErrorLimit 4 (the default) errors
 * the metric on the fifth Error in a row. The checks run in this order and a
 * later one overrides an earlier one, so if several limits are crossed at
 * once the phase is Error over Inconclusive over Failed (the code does this;
 * it only matters when more than one measurement is recorded between assessments).
 */
export function limitCrossed(metric: AnalysisMetric, r: MetricResult): { phase: 'Failed' | 'Inconclusive' | 'Error'; message: string } | undefined {
  let crossed: { phase: 'Failed' | 'Inconclusive' | 'Error'; message: string } | undefined;
  const failureLimit = metric.failureLimit ?? 0;
  if (r.failed > failureLimit) crossed = { phase: 'Failed', message: `failed (${r.failed}) > failureLimit (${failureLimit})` };
  const inconclusiveLimit = metric.inconclusiveLimit ?? 0;
  if (r.inconclusive > inconclusiveLimit) crossed = { phase: 'Inconclusive', message: `inconclusive (${r.inconclusive}) > inconclusiveLimit (${inconclusiveLimit})` };
  const errorLimit = metric.consecutiveErrorLimit ?? DEFAULT_CONSECUTIVE_ERROR_LIMIT;
  if (r.consecutiveError > errorLimit) crossed = { phase: 'Error', message: `consecutiveErrors (${r.consecutiveError}) > consecutiveErrorLimit (${errorLimit})` };
  return crossed;
}

/**
 * A metric's phase (analysis.go assessMetricStatus):
 *  - a completed phase sticks;
 *  - no measurement yet: Successful if the run is terminating, else Pending;
 *  - a crossed limit (limitCrossed) gives Failed / Inconclusive / Error;
 *  - count reached: Successful — whatever the Failed/Inconclusive/Error counters say,
 *    since those within their limits are tolerated;
 *  - no count (interval only) and the run terminating: Successful;
 *  - otherwise Running.
 */
export function assessMetric(metric: AnalysisMetric, r: MetricResult | undefined, terminating: boolean): { phase: MetricPhase; message?: string } {
  if (r && isCompleted(r.phase)) return { phase: r.phase, ...(r.message ? { message: r.message } : {}) };
  if (!r || r.measurements.length === 0) return { phase: terminating ? 'Successful' : 'Pending' };
  const crossed = limitCrossed(metric, r);
  if (crossed) return crossed;
  const count = effectiveCount(metric);
  if (count !== undefined && r.count >= count) return { phase: 'Successful', message: `count (${count}) reached` };
  if (terminating) return { phase: 'Successful', message: 'run terminated' };
  return { phase: 'Running' };
}

/** helpers.go IsTerminating: asked to stop, or a metric that is not dry-run has completed Failed, Error or Inconclusive. */
function isTerminating(state: AnalysisRunState): boolean {
  return state.terminate || state.metrics.some((m) => !m.dryRun && (m.phase === 'Failed' || m.phase === 'Error' || m.phase === 'Inconclusive'));
}

/**
 * Updates every metric's phase and the run's (analysis.go assessRunStatus):
 *  - a metric not measured yet, or still Running, keeps the run Running;
 *  - once all are completed the run takes the worst phase of the metrics that
 *    are not dry-run (Failed worst, then Error, Inconclusive, Successful); dry-run
 *    metrics only ever count as Successful;
 *  - when the run is terminating (terminateRun, or a metric already ended Failed/
 *    Error/Inconclusive) the other metrics end Successful and the run takes the
 *    worst completed phase, or Successful when nothing completed.
 * Argo computes "terminating" before it updates the phases and relies on the
 * immediate re-reconcile that the status change triggers; this function does
 * both passes at once, so a metric that fails ends the run in the same call.
 */
export function assessRun(state: AnalysisRunState, metrics: readonly AnalysisMetric[]): AnalysisRunState {
  if (isCompleted(state.phase)) return state;
  let next = assessOnce(state, metrics);
  if (!isCompleted(next.phase) && !isTerminating(state) && isTerminating(next)) next = assessOnce(next, metrics);
  return next;
}

function assessOnce(state: AnalysisRunState, metrics: readonly AnalysisMetric[]): AnalysisRunState {
  const terminating = isTerminating(state);
  let everythingCompleted = true;
  let worst: MetricPhase | undefined;
  let worstMessage: string | undefined;
  const updated = new Map<string, MetricResult>();
  for (const metric of metrics) {
    const r = resultOf(state, metric.name);
    if (!r) {
      everythingCompleted = false; // "metric hasn't started running"
      continue;
    }
    const assessed = assessMetric(metric, r, terminating);
    let current = r;
    if (assessed.phase !== r.phase) {
      const last = r.measurements[r.measurements.length - 1];
      current = { ...r, phase: assessed.phase };
      const message = last?.message; // analysis.go: result.Message = lastMeasurement.Message
      if (message) current.message = message;
      else delete current.message;
      updated.set(r.name, current);
    }
    if (!isCompleted(assessed.phase)) {
      everythingCompleted = false;
    } else if (!metric.dryRun) {
      if (worst === undefined || isWorse(worst, assessed.phase)) {
        worst = assessed.phase;
        const why = limitCrossed(metric, current);
        worstMessage = why ? `Metric "${metric.name}" assessed ${assessed.phase} due to ${why.message}${current.message ? `: "${current.message}"` : ''}` : undefined;
      }
    } else if (worst === undefined) {
      worst = 'Successful';
    }
  }
  const newMetrics = updated.size ? state.metrics.map((m) => updated.get(m.name) ?? m) : state.metrics;
  let phase: RunPhase;
  let message: string | undefined;
  if (terminating) {
    phase = (worst ?? 'Successful') as RunPhase;
    message = worstMessage ?? (state.terminate ? 'Run Terminated' : undefined);
  } else if (!everythingCompleted || worst === undefined) {
    phase = 'Running';
  } else {
    phase = worst as RunPhase;
    message = worstMessage;
  }
  const out: AnalysisRunState = { ...state, metrics: newMetrics, phase };
  if (message) out.message = message;
  else delete out.message;
  return out;
}

/** Asks the run to stop (Argo's spec.terminate): no new measurements; running metrics end Successful. */
export function terminateRun(state: AnalysisRunState, metrics: readonly AnalysisMetric[]): AnalysisRunState {
  if (isCompleted(state.phase)) return state;
  return assessRun({ ...state, terminate: true }, metrics);
}

/**
 * When a metric is next due (analysis.go generateMetricTasks / calculateNextReconcileTime),
 * or undefined when it will not be measured again:
 *  - completed metric, or count reached: never;
 *  - no measurement yet: startedAt + initialDelay (or at once);
 *  - last measurement Error: its finishedAt + 10 s (DefaultErrorRetryInterval, even
 *    when an interval is set, as the current code does);
 *  - otherwise finishedAt + interval; no interval: never.
 */
export function metricDueAt(state: AnalysisRunState, metric: AnalysisMetric): number | undefined {
  if (isCompleted(state.phase) || isTerminating(state)) return undefined;
  const r = resultOf(state, metric.name);
  if (r && isCompleted(r.phase)) return undefined;
  const last = r?.measurements[r.measurements.length - 1];
  if (!last) return state.startedAt + (metric.initialDelayMs ?? 0);
  const count = effectiveCount(metric);
  if (count !== undefined && r!.count >= count) return undefined;
  if (last.phase === 'Error') return last.finishedAt + ERROR_RETRY_INTERVAL_MS;
  if (metric.intervalMs) return last.finishedAt + metric.intervalMs;
  return undefined;
}

/**
 * The metrics to measure at `now`. Argo waits until `now` is strictly after
 * finishedAt + interval; this takes "at or after", so a controller that wakes
 * at exactly nextMeasurementAt() finds the metric due (a millisecond, no verdict changes).
 */
export function dueMetrics(state: AnalysisRunState, metrics: readonly AnalysisMetric[], now: number): AnalysisMetric[] {
  return metrics.filter((m) => {
    const at = metricDueAt(state, m);
    return at !== undefined && at <= now;
  });
}

/** The earliest time any metric is due, or undefined when the run needs no more measurements. */
export function nextMeasurementAt(state: AnalysisRunState, metrics: readonly AnalysisMetric[]): number | undefined {
  let next: number | undefined;
  for (const m of metrics) {
    const at = metricDueAt(state, m);
    if (at !== undefined && (next === undefined || at < next)) next = at;
  }
  return next;
}

/**
 * Records the measurements taken in one pass (at most one per metric, as one
 * Argo reconcile takes) and reassesses the run.
 */
export function applyMeasurements(
  state: AnalysisRunState,
  metrics: readonly AnalysisMetric[],
  measurements: ReadonlyArray<{ metric: string; measurement: Measurement }>,
): AnalysisRunState {
  let next = state;
  for (const { metric: name, measurement } of measurements) {
    const metric = metrics.find((m) => m.name === name);
    if (!metric) {
      throw new AegisError('INTERNAL', `applyMeasurements: no metric named ${JSON.stringify(name)} in this analysis run`, {
        hint: 'Pass the same metrics the run was started with (resolveAnalysis of the same spec and step).',
      });
    }
    next = recordMeasurement(next, metric, measurement);
  }
  return assessRun(next, metrics);
}

/** Each metric's phase, including the ones not measured yet (Pending). */
export function metricPhases(state: AnalysisRunState, metrics: readonly AnalysisMetric[]): Record<string, MetricPhase> {
  const out: Record<string, MetricPhase> = {};
  for (const m of metrics) out[m.name] = resultOf(state, m.name)?.phase ?? 'Pending';
  return out;
}

/**
 * What a rollout does with its analysis run's phase. Argo Rollouts: Successful
 * (inline step) continues, Running waits (inline) or carries on (background),
 * Inconclusive pauses until promoted or aborted, Failed and Error abort.
 * Aegis pauses on Error instead of aborting: an Error run means the metric
 * could not be read (the provider failed consecutiveErrorLimit+1 times), and a
 * missing metric pauses a rollout (Architecture invariant 4). Failed aborts.
 */
export function rolloutAction(phase: RunPhase): 'continue' | 'wait' | 'pause' | 'abort' {
  switch (phase) {
    case 'Successful':
      return 'continue';
    case 'Running':
      return 'wait';
    case 'Inconclusive':
    case 'Error':
      return 'pause';
    case 'Failed':
      return 'abort';
  }
}
