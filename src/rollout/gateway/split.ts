/**
 * Deterministic weighted split over a stream of requests: with canary weight
 * w%, of every 100 consecutive requests exactly w go to the canary, spread
 * evenly (request i goes to the canary when floor((i+1)·w/100) > floor(i·w/100)).
 * No randomness: small samples carry the exact share, and tests can predict it.
 */
export class WeightedSplit {
  #weight = 0;
  #i = 0;

  get weight(): number {
    return this.#weight;
  }

  /** Canary share in percent, 0..100; takes effect for the next request. */
  setWeight(w: number): void {
    if (!Number.isFinite(w) || w < 0 || w > 100) throw new RangeError(`weight must be 0..100, got ${w}`);
    this.#weight = w;
  }

  next(): 'stable' | 'canary' {
    const i = this.#i++;
    if (this.#i >= 1e12) this.#i = 0;
    const w = this.#weight;
    return Math.floor(((i + 1) * w) / 100) > Math.floor((i * w) / 100) ? 'canary' : 'stable';
  }
}
