import { formatGoDuration } from '../../duration.js';
import type { ResolvedMetric, Track } from '../../spec.js';
import { providerError, type MeasureContext, type MetricProvider, type ProviderMeasurement } from '../types.js';

export { SlidingWindowStats, type SlidingWindowOptions } from './sliding-window.js';

/** Traffic of one track over a window. */
export interface TrafficWindow {
  /** The window's length in whole seconds. */
  seconds: number;
  requests: number;
  /** Requests answered with a 5xx status. */
  errors5xx: number;
  /** Requests with a recorded latency. */
  latencySamples: number;
  /** Latency quantile in milliseconds, q in [0, 1]; NaN when there are no samples. */
  latencyMs(q: number): number;
}

/** The gateway's counters, as the embedded provider reads them (SlidingWindowStats is the in-memory one). */
export interface TrafficStats {
  window(track: Track, ms: number): TrafficWindow;
}

/** The quantile each latency metric measures (the Argo rendering asks Prometheus for the same). */
export const QUANTILES = { 'latency-p50': 0.5, 'latency-p90': 0.9, 'latency-p99': 0.99 } as const;

/**
 * Analysis without Prometheus: the gateway's own counters per track.
 *  - `request-rate`: requests per second over the window;
 *  - `error-rate`: 5xx responses / requests, 0…1 (NaN with no requests);
 *  - `latency-p50|p90|p99`: the quantile in seconds (Prometheus' base unit, as
 *    aegis_inference_request_duration_seconds), NaN with no samples.
 * Values are scalars: conditions say `result < 0.05`, not `result[0]`.
 *
 * Minimum-sample guard: with fewer than `minSamples` requests in the window an
 * error rate or a latency quantile says little (one 5xx in 10 requests is
 * "10 %"), and judging it is how low-traffic canaries get rolled back for
 * nothing. Such a measurement is Inconclusive, never Failed (and never
 * Successful): it pauses the rollout once more than inconclusiveLimit of them
 * have been seen. The measured value is kept in the measurement for the record.
 * request-rate is not guarded: a low rate is the measurement itself.
 */
export class EmbeddedProvider implements MetricProvider {
  readonly kind = 'embedded';
  readonly #stats: TrafficStats;

  constructor(stats: TrafficStats) {
    this.#stats = stats;
  }

  async measure(metric: ResolvedMetric, _context: MeasureContext): Promise<ProviderMeasurement> {
    const p = metric.provider;
    if (p.kind !== 'embedded') return providerError(`metric ${metric.name} has no embedded provider`);
    let w: TrafficWindow;
    try {
      w = this.#stats.window(p.track, p.windowMs);
    } catch (err) {
      return providerError(`cannot read the gateway's ${p.track} counters: ${(err as Error).message}`);
    }
    const span = formatGoDuration(w.seconds * 1000);
    if (p.metric === 'request-rate') return { value: w.requests / w.seconds };
    const value = p.metric === 'error-rate' ? w.errors5xx / w.requests : w.latencyMs(QUANTILES[p.metric]) / 1000;
    if (w.requests < p.minSamples) {
      return {
        value,
        phase: 'Inconclusive',
        message: `${w.requests} request(s) on ${p.track} in the last ${span}, fewer than minSamples (${p.minSamples}): too little traffic to judge ${p.metric}`,
      };
    }
    return { value };
  }
}
