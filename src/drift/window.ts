/**
 * A sliding window over the last `capacity` rows of one tensor: a ring buffer
 * of float32 rows (row-major), allocated once. Folding a batch is one or two
 * typed-array copies (no allocation on the request path); the tests read a
 * column at a time when they run.
 */
export type NumericData = ArrayLike<number> | BigInt64Array | BigUint64Array;

export class RowWindow {
  readonly capacity: number;
  readonly width: number;
  readonly data: Float32Array;
  /** Rows folded since creation (including those since overwritten). */
  total = 0;
  #next = 0;
  #rows = 0;

  constructor(capacity: number, width: number) {
    if (!(Number.isSafeInteger(capacity) && capacity >= 1)) throw new RangeError(`window capacity must be a positive integer (got ${capacity})`);
    if (!(Number.isSafeInteger(width) && width >= 1)) throw new RangeError(`window width must be a positive integer (got ${width})`);
    this.capacity = capacity;
    this.width = width;
    this.data = new Float32Array(capacity * width);
  }

  /** Rows currently held (at most capacity). */
  get rows(): number {
    return this.#rows;
  }

  /** Folds `rows` rows of `src` (row-major, `width` values each); only the last `capacity` are kept. */
  push(src: NumericData, rows: number): void {
    const w = this.width;
    let from = 0;
    let n = rows;
    if (n > this.capacity) {
      from = n - this.capacity;
      n = this.capacity;
    }
    this.total += rows;
    const first = Math.min(n, this.capacity - this.#next);
    this.#copy(src, from * w, this.#next * w, first * w);
    if (n > first) this.#copy(src, (from + first) * w, 0, (n - first) * w);
    this.#next = (this.#next + n) % this.capacity;
    this.#rows = Math.min(this.capacity, this.#rows + n);
  }

  #copy(src: NumericData, srcOffset: number, dstOffset: number, length: number): void {
    if (length <= 0) return;
    if (src instanceof BigInt64Array || src instanceof BigUint64Array) {
      for (let i = 0; i < length; i++) this.data[dstOffset + i] = Number(src[srcOffset + i]!);
    } else if (ArrayBuffer.isView(src) && (length >= 64 || (srcOffset === 0 && (src as unknown as Float32Array).length === length))) {
      // one memcpy-like copy; a subarray view costs an allocation, so short runs take the loop below
      const view = src as unknown as Float32Array;
      this.data.set(srcOffset === 0 && view.length === length ? view : view.subarray(srcOffset, srcOffset + length), dstOffset);
    } else {
      for (let i = 0; i < length; i++) this.data[dstOffset + i] = Number(src[srcOffset + i]);
    }
  }

  /** Copies column `j` of the rows held into `out` (in storage order); returns the number of rows. */
  column(j: number, out: Float32Array): number {
    const n = this.#rows;
    const w = this.width;
    const d = this.data;
    for (let r = 0, p = j; r < n; r++, p += w) out[r] = d[p]!;
    return n;
  }

  /** Forgets every row. */
  clear(): void {
    this.#next = 0;
    this.#rows = 0;
  }
}
