import { AegisError } from '../../../errors.js';
import type { Track } from '../../spec.js';
import type { TrafficStats, TrafficWindow } from './index.js';

/**
 * Latency buckets: log-linear over microseconds, 8 per power of two (each
 * about 9 % wide), from 1 µs to 2^30 µs (about 18 minutes; longer is
 * clamped), plus one for < 1 µs: 242 counters. A quantile is interpolated
 * linearly inside its bucket and clamped to the window's min and max, so the
 * error is well under the bucket width.
 */
const SUB_BUCKETS = 8;
const MAX_EXPONENT = 30;
const BUCKETS = MAX_EXPONENT * SUB_BUCKETS + 2;

function bucketOf(us: number): number {
  if (us < 1) return 0;
  return Math.min(BUCKETS - 1, Math.floor(Math.log2(us) * SUB_BUCKETS) + 1);
}

function bucketBounds(i: number): [number, number] {
  if (i === 0) return [0, 1];
  return [2 ** ((i - 1) / SUB_BUCKETS), 2 ** (i / SUB_BUCKETS)];
}

interface Slot {
  /** The whole second (epoch) this slot holds; another value means the slot is stale. */
  sec: number;
  requests: number;
  errors5xx: number;
  samples: number;
  minUs: number;
  maxUs: number;
  /** Allocated on the first latency sample of the second. */
  hist: Uint32Array | null;
}

export interface SlidingWindowOptions {
  /** Epoch milliseconds; default Date.now. Tests pass a clock to expire windows. */
  now?: () => number;
  /** Seconds of history kept per track (the longest window that can be asked for); default 900 (15 minutes). */
  capacitySeconds?: number;
}

/**
 * The gateway's own traffic counters, per track, over a sliding window: a
 * ring buffer of one-second buckets, each with request and 5xx counts and a
 * fixed-bucket latency histogram. `record` is O(1) and allocation-free after
 * the first request of a second; `window` sums the buckets of the last
 * ⌈ms/1000⌉ seconds, the current (partial) second included.
 */
export class SlidingWindowStats implements TrafficStats {
  readonly capacitySeconds: number;
  readonly #now: () => number;
  readonly #rings: Record<Track, Slot[]>;

  constructor(options: SlidingWindowOptions = {}) {
    const capacity = options.capacitySeconds ?? 900;
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > 86_400) {
      throw new AegisError('USAGE', `capacitySeconds must be a whole number of seconds from 1 to 86400, got ${capacity}`, {
        hint: 'Keep at least as many seconds as the longest embedded window in your rollout specs (900 covers every valid one).',
      });
    }
    this.capacitySeconds = capacity;
    this.#now = options.now ?? Date.now;
    const ring = () => Array.from({ length: capacity }, (): Slot => ({ sec: -1, requests: 0, errors5xx: 0, samples: 0, minUs: Infinity, maxUs: -Infinity, hist: null }));
    this.#rings = { canary: ring(), stable: ring() };
  }

  /** Counts one finished request: its HTTP status (5xx counts as an error) and latency in milliseconds (omit if unknown). */
  record(track: Track, status: number, latencyMs?: number): void {
    const sec = Math.floor(this.#now() / 1000);
    const ring = this.#rings[track];
    const slot = ring[sec % this.capacitySeconds]!;
    if (slot.sec !== sec) {
      slot.sec = sec;
      slot.requests = 0;
      slot.errors5xx = 0;
      slot.samples = 0;
      slot.minUs = Infinity;
      slot.maxUs = -Infinity;
      slot.hist?.fill(0);
    }
    slot.requests++;
    if (status >= 500 && status <= 599) slot.errors5xx++;
    if (latencyMs !== undefined && Number.isFinite(latencyMs)) {
      const us = Math.max(0, latencyMs * 1000);
      slot.hist ??= new Uint32Array(BUCKETS);
      slot.hist[bucketOf(us)]!++;
      slot.samples++;
      if (us < slot.minUs) slot.minUs = us;
      if (us > slot.maxUs) slot.maxUs = us;
    }
  }

  window(track: Track, ms: number): TrafficWindow {
    const seconds = Math.max(1, Math.ceil(ms / 1000));
    if (seconds > this.capacitySeconds) {
      throw new AegisError('USAGE', `a window of ${seconds}s is longer than the ${this.capacitySeconds}s of traffic these counters keep`, {
        hint: 'Use a shorter provider.embedded.window, or give the gateway a larger capacitySeconds.',
      });
    }
    const nowSec = Math.floor(this.#now() / 1000);
    let requests = 0;
    let errors5xx = 0;
    let samples = 0;
    let minUs = Infinity;
    let maxUs = -Infinity;
    const hist = new Float64Array(BUCKETS);
    for (const slot of this.#rings[track]) {
      if (slot.sec > nowSec || slot.sec <= nowSec - seconds) continue;
      requests += slot.requests;
      errors5xx += slot.errors5xx;
      if (slot.hist && slot.samples) {
        samples += slot.samples;
        if (slot.minUs < minUs) minUs = slot.minUs;
        if (slot.maxUs > maxUs) maxUs = slot.maxUs;
        for (let i = 0; i < BUCKETS; i++) hist[i]! += slot.hist[i]!;
      }
    }
    return {
      seconds,
      requests,
      errors5xx,
      latencySamples: samples,
      latencyMs: (q: number) => quantileUs(hist, samples, minUs, maxUs, q) / 1000,
    };
  }
}

/** Nearest-rank quantile (q in [0, 1]) from the histogram, interpolated within its bucket; NaN without samples. */
function quantileUs(hist: Float64Array, total: number, minUs: number, maxUs: number, q: number): number {
  if (!(q >= 0 && q <= 1)) throw new AegisError('USAGE', `a quantile must be between 0 and 1, got ${q}`, { hint: 'Ask for e.g. 0.99 for p99.' });
  if (total === 0) return NaN;
  const rank = Math.max(1, Math.ceil(q * total));
  if (rank === 1) return minUs;
  if (rank === total) return maxUs;
  let seen = 0;
  for (let i = 0; i < BUCKETS; i++) {
    const n = hist[i]!;
    if (n === 0) continue;
    if (seen + n >= rank) {
      // Interpolate at the rank's midpoint within the bucket, narrowed to the observed min and max.
      const [b0, b1] = bucketBounds(i);
      const lo = Math.max(b0, minUs);
      const hi = Math.min(b1, maxUs);
      return lo + ((hi - lo) * (rank - seen - 0.5)) / n;
    }
    seen += n;
  }
  return maxUs;
}
