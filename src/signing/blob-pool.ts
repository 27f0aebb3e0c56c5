import type { KeyObject } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { childLogger } from '../log.js';
import { blobKeys } from './blob.js';
import {
  batchVerifier,
  firstVerifyingKey,
  readSignatureFiles,
  unpackReads,
  type PackedReads,
  WORKER_TAG,
  type DigestSignature,
  type LocalSignature,
  type SignatureRead,
  type VerifyWorkerData,
  type WorkerReply,
  type WorkerRequest,
} from './digest-verify.js';
import type { TrustAnchor } from './trust.js';
import { spkiOf } from './verified-cache.js';

export type { DigestSignature, LocalSignature, SignatureRead };

/** Signatures per message to a worker: ~25 ms of work at ~0.1 ms each, so messaging costs nothing next to it (and one modular inversion serves the batch). */
const BATCH = 256;
/** Signature files per message: ~1 ms of system calls. */
const READ_BATCH = 128;

/**
 * Checks many blob signatures against one trust anchor, spread over worker
 * threads: an ECDSA verification over a digest costs ~0.1 ms of CPU (see
 * digest-verify.ts), so a registry-wide check (the restore smoke check) is
 * CPU-bound and scales with cores. `matches` gives, per signature, the index
 * of the first key of `blobKeys(trust)` that verifies it (-1: none), the same
 * search `verifyBlobSignature` does; `blobSigner` turns it into the outcome
 * (signer, or why not). With `threads: 0`, or if every worker fails, it
 * verifies on the calling thread: a worker failure never changes a result.
 */
export class BlobVerifierPool {
  private readonly keys: KeyObject[];
  private readonly workers: VerifyWorker[] = [];
  private toStart: number;

  /** `threads`: worker threads, default one per core, started by the first call with signatures to verify; 0 verifies on the calling thread. */
  constructor(trust: TrustAnchor, options: { threads?: number } = {}) {
    this.keys = trust.kind === 'certificates' ? [] : blobKeys(trust); // a CA chain checks no blob signature: blobSigner says so
    this.toStart = this.keys.length === 0 ? 0 : Math.max(0, options.threads ?? availableParallelism());
  }

  /** Worker threads in use (0: verifying on the calling thread, or none needed yet). */
  get threads(): number {
    return this.workers.length;
  }

  async matches(items: DigestSignature[]): Promise<Int32Array> {
    const out = new Int32Array(items.length);
    await this.spread(
      items,
      BATCH,
      async (w, batch, offset) => {
        const reply = await w.request({ id: 0, digests: batch.map((i) => i.digest), signatures: batch.map((i) => i.signature) });
        if (!('matches' in reply)) throw new Error('verification worker answered another request');
        out.set(reply.matches, offset);
      },
      (batch, offset) => {
        const verifiers = this.keys.map((k) => batchVerifier(k));
        out.set(firstVerifyingKey(verifiers, batch), offset);
      },
    );
    return out;
  }

  /**
   * Reads signature files on a local disk (readSignatureFile), spread over
   * the same worker threads: on 2 cores, two threads of system calls halve a
   * 100k-archive check's reading time, which is most of it once the
   * signatures are cached (signing/verified-cache.ts).
   */
  async readLocal(files: LocalSignature[], max: number, options: { cacheIds?: boolean } = {}): Promise<SignatureRead[]> {
    const cacheIds = options.cacheIds === true;
    const out: SignatureRead[] = new Array<SignatureRead>(files.length);
    const put = (reads: PackedReads, offset: number) => unpackReads(reads).forEach((r, i) => (out[offset + i] = r));
    await this.spread(
      files,
      READ_BATCH,
      async (w, batch, offset) => {
        const reply = await w.request({ id: 0, read: batch, max, cacheIds });
        if (!('reads' in reply)) throw new Error('verification worker answered another request');
        put(reply.reads, offset);
      },
      (batch, offset) => put(readSignatureFiles(batch, max, cacheIds ? this.keys.map(spki) : undefined), offset),
    );
    return out;
  }

  /** Runs `items` in batches on the workers; what no worker took (none started, or all failed) runs on this thread. */
  private async spread<T>(items: T[], size: number, onWorker: (w: VerifyWorker, batch: T[], offset: number) => Promise<void>, here: (batch: T[], offset: number) => void): Promise<void> {
    if (items.length > 0) this.start();
    const queue: { offset: number; items: T[] }[] = [];
    for (let i = 0; i < items.length; i += size) queue.push({ offset: i, items: items.slice(i, i + size) });
    const drain = async (w: VerifyWorker): Promise<void> => {
      for (let b = queue.shift(); b; b = queue.shift()) {
        try {
          await onWorker(w, b.items, b.offset);
        } catch (err) {
          queue.unshift(b);
          this.drop(w, err);
          return;
        }
      }
    };
    await Promise.all([...this.workers].map(drain));
    for (const b of queue) here(b.items, b.offset);
  }

  /** Starts the worker threads now (they take ~50 ms each to load) rather than with the first signatures. */
  start(): void {
    if (this.toStart === 0) return;
    const data: VerifyWorkerData = { tag: WORKER_TAG, keys: this.keys.map(spki) };
    try {
      for (; this.toStart > 0; this.toStart--) this.workers.push(new VerifyWorker(data));
    } catch (err) {
      this.toStart = 0;
      childLogger('signing').warn({ event: 'verify_worker_failed', err: (err as Error).message, started: this.workers.length }, 'could not start a signature verification worker');
    }
  }

  async close(): Promise<void> {
    this.toStart = 0;
    await Promise.all(this.workers.splice(0).map((w) => w.terminate()));
  }

  private drop(w: VerifyWorker, err: unknown): void {
    const i = this.workers.indexOf(w);
    if (i >= 0) this.workers.splice(i, 1);
    void w.terminate();
    childLogger('signing').warn(
      { event: 'verify_worker_failed', err: (err as Error)?.message ?? String(err), remaining: this.workers.length },
      'a signature verification worker failed; its signatures are checked elsewhere',
    );
  }
}

/** One worker thread; a request to one that has died (or dies meanwhile) is rejected, never left hanging. */
class VerifyWorker {
  private readonly worker: Worker;
  private readonly pending = new Map<number, { resolve: (m: WorkerReply) => void; reject: (e: Error) => void }>();
  private failure: Error | undefined;
  private nextId = 0;

  constructor(data: VerifyWorkerData) {
    this.worker = new Worker(workerUrl(), { workerData: data });
    this.worker.unref(); // never holds the process open; close() ends it
    this.worker.on('message', (reply: WorkerReply) => {
      const p = this.pending.get(reply.id);
      if (!p) return;
      this.pending.delete(reply.id);
      if ('error' in reply) p.reject(new Error(reply.error));
      else p.resolve(reply);
    });
    this.worker.on('error', (err) => this.fail(err));
    this.worker.on('exit', (code) => this.fail(new Error(`verification worker exited with code ${code}`)));
  }

  /** Sends `req` (its id replaced) and resolves with the reply. */
  request(req: WorkerRequest): Promise<WorkerReply> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise<WorkerReply>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...req, id });
    });
  }

  async terminate(): Promise<void> {
    this.failure ??= new Error('verification worker closed');
    await this.worker.terminate();
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const p of this.pending.values()) p.reject(this.failure);
    this.pending.clear();
  }
}

/** The key's SPKI DER (the same object each time, see spkiOf); empty for what is not a key: the worker's verifier for it accepts nothing, as on this thread. */
function spki(key: KeyObject): Uint8Array {
  return spkiOf(key) ?? new Uint8Array(0);
}

function workerUrl(): URL {
  // Under tests the sources run as .ts (Node type stripping); the build emits .js.
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  return new URL(`./digest-verify${ext}`, import.meta.url);
}
