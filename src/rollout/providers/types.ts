import type { ProviderResult } from '../analysis/judge.js';
import type { ResolvedMetric, ResolvedProvider } from '../spec.js';

/** What a provider measured: a value, or a phase it decided itself (Error, or Inconclusive below minSamples) with a message. */
export type ProviderMeasurement = ProviderResult;

export interface MeasureContext {
  /** The time of the measurement, epoch milliseconds (the controller's clock). */
  now: number;
  /** Aborts the measurement (the controller is stopping); providers also apply their own timeout. */
  signal?: AbortSignal;
}

/**
 * A metric source (Argo's metricproviders). `measure` never throws for a
 * failure of the source (unreachable, timed out, bad query, unsupported
 * result): it returns `{ value: null, phase: 'Error', message }`, which the
 * judge counts against consecutiveErrorLimit, as Argo's MarkMeasurementError does.
 */
export interface MetricProvider {
  readonly kind: ResolvedProvider['kind'];
  measure(metric: ResolvedMetric, context: MeasureContext): Promise<ProviderMeasurement>;
}

export function providerError(message: string): ProviderMeasurement {
  return { value: null, phase: 'Error', message };
}
