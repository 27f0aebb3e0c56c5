import { build, type Histogram } from 'hdr-histogram-js';

/** Latency percentiles in milliseconds (from an HDR histogram kept in microseconds). */
export interface LatencySummary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

/**
 * An HDR histogram of latencies recorded in whole microseconds: 3 significant
 * digits (0.1 % resolution) for run totals, 2 (1 %, packed counts: about
 * 3.5 KiB each) for the per-second ones. It resizes itself, so no value is
 * ever clamped.
 */
export class LatencyHistogram {
  readonly #h: Histogram;

  constructor(digits: 2 | 3 = 3) {
    this.#h = build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: digits, autoResize: true, bitBucketSize: digits === 2 ? 'packed' : 32 });
  }

  recordMs(ms: number): void {
    this.#h.recordValue(Math.max(1, Math.round(ms * 1000)));
  }

  get count(): number {
    return this.#h.totalCount;
  }

  percentileMs(p: number): number {
    return this.#h.totalCount ? round3(this.#h.getValueAtPercentile(p) / 1000) : 0;
  }

  summary(): LatencySummary {
    const h = this.#h;
    if (!h.totalCount) return { count: 0, p50: 0, p90: 0, p99: 0, p999: 0, max: 0, mean: 0 };
    const at = (p: number) => round3(h.getValueAtPercentile(p) / 1000);
    return { count: h.totalCount, p50: at(50), p90: at(90), p99: at(99), p999: at(99.9), max: round3(h.maxValue / 1000), mean: round3(h.mean / 1000) };
  }
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}
