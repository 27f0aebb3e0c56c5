import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { AegisError } from '../errors.js';
import { hashRange, type HashReply, type HashTask } from './hash-worker.js';
import type { ModelFile } from './scan.js';

export type HashAlgorithm = 'sha256' | 'blake2b';

const NODE_HASH: Record<HashAlgorithm, string> = { sha256: 'sha256', blake2b: 'blake2b512' };

export function isSupportedHash(name: string): name is HashAlgorithm {
  return name === 'sha256' || name === 'blake2b';
}

export interface HashOptions {
  algorithm?: HashAlgorithm;
  /** When set, files are hashed as shards of this many bytes (OMS `shards` serialization). */
  shardSize?: number;
  workers?: number;
  chunkBytes?: number;
  onProgress?: (doneBytes: number, totalBytes: number) => void;
}

export interface Resource {
  /** `path` for files; `path:start:end` for shards. */
  name: string;
  algorithm: HashAlgorithm;
  digest: string;
}

interface Job {
  name: string;
  path: string;
  start: number;
  end: number;
}

/** Below this many bytes in total, worker start-up costs more than it saves. */
const INLINE_LIMIT = 32 * 1024 * 1024;

function jobsFor(files: readonly ModelFile[], shardSize: number | undefined): Job[] {
  const jobs: Job[] = [];
  for (const f of files) {
    if (!shardSize) {
      jobs.push({ name: f.name, path: f.path, start: 0, end: f.size });
      continue;
    }
    // As the reference: an empty file has no shards; the last shard may be short.
    for (let start = 0; start < f.size; start += shardSize) {
      const end = Math.min(start + shardSize, f.size);
      jobs.push({ name: `${f.name}:${start}:${end}`, path: f.path, start, end });
    }
  }
  return jobs;
}

/**
 * Hashes model files (or shards) in parallel on worker threads, largest jobs
 * first so the cores stay busy to the end. Returns resources in the order of
 * `files` (and shard offset).
 */
export async function hashFiles(files: readonly ModelFile[], options: HashOptions = {}): Promise<Resource[]> {
  const algorithm = options.algorithm ?? 'sha256';
  const chunkBytes = options.chunkBytes ?? 2 * 1024 * 1024;
  const jobs = jobsFor(files, options.shardSize);
  const total = jobs.reduce((n, j) => n + (j.end - j.start), 0);
  const digests = new Array<string>(jobs.length);
  let done = 0;
  const progress = (n: number) => {
    done += n;
    options.onProgress?.(done, total);
  };
  const workers = Math.max(1, Math.min(options.workers ?? availableParallelism(), jobs.length));

  if (workers === 1 || total < INLINE_LIMIT) {
    for (const [i, job] of jobs.entries()) {
      digests[i] = await hashRange({ ...job, algorithm: NODE_HASH[algorithm], chunkBytes }, progress).catch(
        (err: unknown) => {
          throw hashError(job, err);
        },
      );
    }
  } else {
    await runPool(jobs, workers, { algorithm: NODE_HASH[algorithm], chunkBytes }, digests, progress);
  }
  return jobs.map((j, i) => ({ name: j.name, algorithm, digest: digests[i]! }));
}

function hashError(job: Job, err: unknown): AegisError {
  const e = err as NodeJS.ErrnoException;
  return new AegisError('FILE_UNREADABLE', `cannot hash ${job.name}: ${e.message}`, {
    cause: err,
    hint: 'Make sure the model files are readable and not being modified while signing or verifying.',
    details: { name: job.name, path: job.path },
  });
}

function workerUrl(): URL {
  // Under tests the sources run as .ts (Node type stripping); the build emits .js.
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  return new URL(`./hash-worker${ext}`, import.meta.url);
}

/**
 * Runs jobs on `size` executors pulling from one queue, largest first: the
 * main thread (async reads + hashing, like a worker) and `size - 1` worker
 * threads. Using the main thread saves one worker start-up, and the others
 * start while it is already hashing.
 */
async function runPool(
  jobs: Job[],
  size: number,
  common: { algorithm: string; chunkBytes: number },
  digests: string[],
  progress: (n: number) => void,
): Promise<void> {
  const order = jobs.map((_, i) => i).sort((a, b) => jobs[b]!.end - jobs[b]!.start - (jobs[a]!.end - jobs[a]!.start));
  let next = 0;
  let failed: AegisError | undefined;
  const take = (): number | undefined => (failed || next >= order.length ? undefined : order[next++]);

  const inline = async () => {
    for (let id = take(); id !== undefined; id = take()) {
      const job = jobs[id]!;
      try {
        digests[id] = await hashRange({ ...job, ...common }, progress);
      } catch (err) {
        failed ??= hashError(job, err);
      }
    }
  };

  const worker = (w: Worker) =>
    new Promise<void>((done) => {
      let current: number | undefined;
      const feed = () => {
        current = take();
        if (current === undefined) return done();
        const job = jobs[current]!;
        w.postMessage({ id: current, path: job.path, start: job.start, end: job.end, ...common } satisfies HashTask);
      };
      w.on('message', (msg: HashReply) => {
        if (msg.kind === 'progress') return progress(msg.bytes);
        if (msg.kind === 'error') {
          failed ??= hashError(jobs[msg.id]!, Object.assign(new Error(msg.message), { code: msg.code }));
          return done();
        }
        digests[msg.id] = msg.digest;
        feed();
      });
      w.on('error', (err) => {
        failed ??= new AegisError('INTERNAL', `hashing worker failed: ${err.message}`, { cause: err });
        done();
      });
      feed();
    });

  const pool = acquireWorkers(size - 1);
  const broken = new Set<Worker>();
  try {
    await Promise.all([
      inline(),
      ...pool.map((w) =>
        worker(w).then(() => {
          if (failed) broken.add(w); // it may still be busy with a job: do not reuse it
        }),
      ),
    ]);
  } finally {
    releaseWorkers(pool, broken);
  }
  if (failed) throw failed;
}

/**
 * Idle hashing workers are kept (unref'd, so they never hold the process
 * open) and reused by the next call: a long-lived process (the control plane,
 * a model server verifying a hot swap) pays the thread start-up once.
 */
const idle: Worker[] = [];

function acquireWorkers(n: number): Worker[] {
  const out = idle.splice(0, n);
  while (out.length < n) out.push(new Worker(workerUrl()));
  for (const w of out) w.ref();
  return out;
}

function releaseWorkers(pool: Worker[], broken: Set<Worker>): void {
  for (const w of pool) {
    w.removeAllListeners('message');
    w.removeAllListeners('error');
    if (broken.has(w)) {
      void w.terminate();
      continue;
    }
    w.unref();
    idle.push(w);
  }
}
