import type { ResolvedMetric } from '../spec.js';
import { EmbeddedProvider, type TrafficStats } from './embedded/index.js';
import { PrometheusProvider } from './prometheus/index.js';
import { providerError, type MeasureContext, type MetricProvider, type ProviderMeasurement } from './types.js';

export { EmbeddedProvider, SlidingWindowStats, type SlidingWindowOptions, type TrafficStats, type TrafficWindow } from './embedded/index.js';
export { PrometheusProvider } from './prometheus/index.js';
export { providerError, type MeasureContext, type MetricProvider, type ProviderMeasurement } from './types.js';

export interface MetricProvidersOptions {
  /** The gateway's counters; without them an `embedded` metric measures as Error (e.g. in a cluster, where Prometheus is the source). */
  trafficStats?: TrafficStats;
}

/** Picks the provider for each metric (Argo's newProvider). */
export class MetricProviders {
  readonly #prometheus = new PrometheusProvider();
  readonly #embedded: EmbeddedProvider | undefined;

  constructor(options: MetricProvidersOptions = {}) {
    this.#embedded = options.trafficStats ? new EmbeddedProvider(options.trafficStats) : undefined;
  }

  /**
   * Measures one metric. Never throws: a missing provider or a provider that
   * throws (a bug) gives an Error measurement, as Argo's runMeasurements does
   * when newProvider fails.
   */
  async measure(metric: ResolvedMetric, context: MeasureContext): Promise<ProviderMeasurement> {
    let provider: MetricProvider | undefined;
    if (metric.provider.kind === 'prometheus') provider = this.#prometheus;
    else provider = this.#embedded;
    if (!provider) {
      return providerError(
        `metric ${metric.name} uses the embedded provider, but no gateway traffic counters are attached here; use the prometheus provider where no Aegis gateway routes the traffic`,
      );
    }
    try {
      return await provider.measure(metric, context);
    } catch (err) {
      return providerError(`the ${provider.kind} provider failed: ${(err as Error)?.message ?? String(err)}`);
    }
  }
}
