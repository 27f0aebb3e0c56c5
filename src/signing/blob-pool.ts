import { createPublicKey, type KeyObject } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { childLogger } from '../log.js';
import { blobKeys } from './blob.js';
import { BULK_WINDOW, DEFAULT_WINDOW, digestVerifier, firstVerifyingKey, WORKER_TAG, type VerifyBatch, type VerifyReply, type VerifyWorkerData } from './digest-verify.js';
import type { TrustAnchor } from './trust.js';

export interface DigestSignature {
  digest: Uint8Array;
  signature: Uint8Array;
}

/** Signatures per thread from which the wider tables (~0.4 s more to build per thread, 0.14 ms less per signature) pay off. */
const BULK_PER_THREAD = 4000;

/** Signatures per message to a worker: ~0.1 s of work at ~0.5 ms each, so messaging costs nothing next to it. */
const BATCH = 256;

/**
 * Checks many blob signatures against one trust anchor, spread over worker
 * threads: a pure-JavaScript ECDSA verification costs ~0.5 ms of CPU (see
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

  /**
   * `threads`: worker threads, default one per core; 0 verifies on the
   * calling thread. `expected`: about how many signatures will be checked;
   * from BULK_PER_THREAD per thread on, workers build wider tables (slower
   * to build, faster per signature).
   */
  constructor(trust: TrustAnchor, options: { threads?: number; expected?: number } = {}) {
    this.keys = trust.kind === 'certificates' ? [] : blobKeys(trust); // a CA chain checks no blob signature: blobSigner says so
    const threads = options.threads ?? availableParallelism();
    if (threads <= 0 || this.keys.length === 0) return;
    const window = (options.expected ?? 0) / threads >= BULK_PER_THREAD ? BULK_WINDOW : DEFAULT_WINDOW;
    const data: VerifyWorkerData = { tag: WORKER_TAG, keys: this.keys.map(spki), window };
    try {
      for (let i = 0; i < threads; i++) this.workers.push(new VerifyWorker(data));
    } catch (err) {
      childLogger('signing').warn({ event: 'verify_worker_failed', err: (err as Error).message, started: this.workers.length }, 'could not start a signature verification worker');
    }
  }

  /** Worker threads in use (0: verifying on the calling thread). */
  get threads(): number {
    return this.workers.length;
  }

  async matches(items: DigestSignature[]): Promise<Int32Array> {
    const out = new Int32Array(items.length);
    const queue: { offset: number; items: DigestSignature[] }[] = [];
    for (let i = 0; i < items.length; i += BATCH) queue.push({ offset: i, items: items.slice(i, i + BATCH) });
    const drain = async (w: VerifyWorker): Promise<void> => {
      for (let b = queue.shift(); b; b = queue.shift()) {
        try {
          out.set(await w.verify(b.items), b.offset);
        } catch (err) {
          queue.unshift(b);
          this.drop(w, err);
          return;
        }
      }
    };
    await Promise.all([...this.workers].map(drain));
    if (queue.length > 0) {
      const verifiers = this.keys.map((k) => digestVerifier(k));
      for (const b of queue) b.items.forEach((it, i) => (out[b.offset + i] = firstVerifyingKey(verifiers, it.digest, it.signature)));
    }
    return out;
  }

  async close(): Promise<void> {
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
  private readonly pending = new Map<number, { resolve: (m: Int32Array) => void; reject: (e: Error) => void }>();
  private failure: Error | undefined;
  private nextId = 0;

  constructor(data: VerifyWorkerData) {
    this.worker = new Worker(workerUrl(), { workerData: data });
    this.worker.unref(); // never holds the process open; close() ends it
    this.worker.on('message', (reply: VerifyReply) => {
      const p = this.pending.get(reply.id);
      if (!p) return;
      this.pending.delete(reply.id);
      if ('error' in reply) p.reject(new Error(reply.error));
      else p.resolve(reply.matches);
    });
    this.worker.on('error', (err) => this.fail(err));
    this.worker.on('exit', (code) => this.fail(new Error(`verification worker exited with code ${code}`)));
  }

  verify(items: DigestSignature[]): Promise<Int32Array> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    const batch: VerifyBatch = { id, digests: items.map((i) => i.digest), signatures: items.map((i) => i.signature) };
    return new Promise<Int32Array>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage(batch);
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

function spki(key: KeyObject): Uint8Array {
  try {
    return new Uint8Array((key.type === 'private' ? createPublicKey(key) : key).export({ type: 'spki', format: 'der' }));
  } catch {
    return new Uint8Array(0); // not a public key: the worker's verifier for it accepts nothing, as digestVerifier does here
  }
}

function workerUrl(): URL {
  // Under tests the sources run as .ts (Node type stripping); the build emits .js.
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  return new URL(`./digest-verify${ext}`, import.meta.url);
}
