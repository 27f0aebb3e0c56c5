// Hashing worker. Self-contained on purpose (node: imports only): it is loaded
// by path as a worker thread, both from dist/ (compiled) and from src/ under
// Node's type stripping in tests, so it must not import project modules.
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { parentPort } from 'node:worker_threads';

export interface HashTask {
  id: number;
  path: string;
  start: number;
  /** Exclusive end offset. */
  end: number;
  /** Node hash name: sha256 | blake2b512 */
  algorithm: string;
  chunkBytes: number;
}

export type HashReply =
  | { kind: 'done'; id: number; digest: string }
  | { kind: 'progress'; bytes: number }
  | { kind: 'error'; id: number; message: string; code?: string };

const PROGRESS_EVERY = 64 * 1024 * 1024;

/**
 * Hashes bytes [start, end) of a file. Reads are double-buffered: the next
 * chunk is read by the thread pool while this thread hashes the current one,
 * so I/O and hashing overlap. Fails if the file is shorter than expected
 * (changed while being hashed).
 */
export async function hashRange(
  task: Omit<HashTask, 'id'>,
  onBytes?: (n: number) => void,
): Promise<string> {
  const hash = createHash(task.algorithm);
  const fh = await open(task.path, 'r');
  try {
    const size = task.end - task.start;
    const chunk = Math.max(1, Math.min(task.chunkBytes, size || 1));
    const bufs = [Buffer.allocUnsafe(chunk), Buffer.allocUnsafe(chunk)];
    let pos = task.start;
    let which = 0;
    const readAt = (b: Buffer, at: number) => fh.read(b, 0, Math.min(chunk, task.end - at), at);
    let pending = pos < task.end ? readAt(bufs[0]!, pos) : null;
    let unreported = 0;
    while (pending) {
      const { bytesRead, buffer } = await pending;
      if (bytesRead === 0) {
        const err = new Error(`file ${task.path} ended at byte ${pos}, expected ${task.end}: it changed while being hashed`);
        (err as NodeJS.ErrnoException).code = 'ESHORT';
        throw err;
      }
      pos += bytesRead;
      which ^= 1;
      pending = pos < task.end ? readAt(bufs[which]!, pos) : null;
      hash.update(bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead));
      unreported += bytesRead;
      if (onBytes && unreported >= PROGRESS_EVERY) {
        onBytes(unreported);
        unreported = 0;
      }
    }
    if (onBytes && unreported > 0) onBytes(unreported);
    return hash.digest('hex');
  } finally {
    await fh.close();
  }
}

if (parentPort) {
  const port = parentPort;
  port.on('message', (task: HashTask) => {
    hashRange(task, (bytes) => port.postMessage({ kind: 'progress', bytes } satisfies HashReply)).then(
      (digest) => port.postMessage({ kind: 'done', id: task.id, digest } satisfies HashReply),
      (err: unknown) => {
        const e = err as NodeJS.ErrnoException;
        port.postMessage({ kind: 'error', id: task.id, message: e.message, code: e.code } satisfies HashReply);
      },
    );
  });
}
