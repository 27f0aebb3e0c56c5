import type { MeasureContext } from '../providers/types.js';
import type { ResolvedMetric } from '../spec.js';
import { applyMeasurements, dueMetrics, judgeMeasurement, nextMeasurementAt, type AnalysisRunState, type Measurement, type ProviderResult } from './judge.js';

/** Anything that measures a metric (MetricProviders, or a stand-in in tests). */
export interface Measurer {
  measure(metric: ResolvedMetric, context: MeasureContext): Promise<ProviderResult>;
}

export interface MeasureOptions {
  /** Epoch milliseconds; read when the measurement starts and when it finishes. */
  now: () => number;
  signal?: AbortSignal;
  /** false: Argo's verdict alone, without the missing-data guard (judge.ts). */
  guardMissingData?: boolean;
}

/** Takes one measurement and judges it. */
export async function takeMeasurement(measurer: Measurer, metric: ResolvedMetric, options: MeasureOptions): Promise<Measurement> {
  const startedAt = options.now();
  const result = await measurer.measure(metric, { now: startedAt, ...(options.signal ? { signal: options.signal } : {}) });
  const finishedAt = Math.max(startedAt, options.now());
  return judgeMeasurement(metric, result, { startedAt, finishedAt }, options.guardMissingData === undefined ? {} : { guardMissingData: options.guardMissingData });
}

/**
 * One pass of an analysis run, as one Argo reconcile: measures every metric
 * that is due at `now()` (in parallel), records and judges the measurements,
 * reassesses the run, and says when the next pass is due (undefined: the run
 * is complete or needs no more measurements). The caller persists `state`.
 */
export async function runAnalysisStep(
  state: AnalysisRunState,
  metrics: readonly ResolvedMetric[],
  measurer: Measurer,
  options: MeasureOptions,
): Promise<{ state: AnalysisRunState; nextAt: number | undefined; measured: string[] }> {
  const due = dueMetrics(state, metrics, options.now()) as ResolvedMetric[];
  const taken = await Promise.all(due.map(async (metric) => ({ metric: metric.name, measurement: await takeMeasurement(measurer, metric, options) })));
  const next = applyMeasurements(state, metrics, taken);
  return { state: next, nextAt: nextMeasurementAt(next, metrics), measured: due.map((m) => m.name) };
}
