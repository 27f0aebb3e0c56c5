import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { bytes } from './models.js';

/** Reads a stream to the end. */
export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}

/** SHA-256 of bytes: compare large buffers by digest (a failing toEqual on MiBs of bytes takes minutes to diff). */
export function digest(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export async function sha256Of(stream: Readable): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of stream) h.update(chunk as Buffer);
  return h.digest('hex');
}

/**
 * A deterministic stream of `total` bytes made 1 MiB at a time (never held
 * whole), with the SHA-256 of what it produced once it has ended.
 */
export function generatedStream(seed: string, total: number): { stream: Readable; digest: () => string } {
  const h = createHash('sha256');
  let produced = 0;
  const stream = new Readable({
    read() {
      if (produced >= total) {
        this.push(null);
        return;
      }
      const chunk = bytes(`${seed}:${produced}`, Math.min(1024 * 1024, total - produced));
      produced += chunk.length;
      h.update(chunk);
      this.push(chunk);
    },
  });
  return { stream, digest: () => h.digest('hex') };
}

/** onProgress for a put, plus a promise for "at least N bytes reported" (rejects if the put fails first). */
export function progressWatch(): { onProgress: (n: number) => void; reached: (n: number, put: Promise<unknown>) => Promise<void>; last: () => number } {
  let latest = 0;
  const waiters: { n: number; resolve: () => void }[] = [];
  return {
    onProgress(n) {
      latest = n;
      for (const w of waiters.filter((w) => latest >= w.n)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    },
    reached(n, put) {
      if (latest >= n) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        waiters.push({ n, resolve });
        put.then(
          () => reject(new Error(`put finished before reporting ${n} bytes (last ${latest})`)),
          (err: unknown) => reject(err instanceof Error ? err : new Error(String(err))),
        );
      });
    },
    last: () => latest,
  };
}

export const PUSH_CHILD = fileURLToPath(new URL('./store-push-child.ts', import.meta.url));

/**
 * Runs store-push-child.ts in a separate Node process, waits until it reports
 * at least `killAfterBytes` stored, then SIGKILLs it (no cleanup can run).
 * Resolves with the child's output once it is dead.
 */
export async function pushAndKill(opts: {
  storeUri: string;
  key: string;
  stallBytes: number;
  killAfterBytes: number;
  partSize?: number;
  env?: NodeJS.ProcessEnv;
}): Promise<{ progress: number; signal: NodeJS.Signals | null; stderr: string }> {
  const args = ['--import', 'tsx', PUSH_CHILD, opts.storeUri, opts.key, String(opts.stallBytes), ...(opts.partSize ? [String(opts.partSize)] : [])];
  const child = spawn(process.execPath, args, { env: { ...process.env, ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  let progress = 0;
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  await new Promise<void>((resolve, reject) => {
    let buffered = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      buffered += d;
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        const m = /^progress (\d+)$/.exec(line);
        if (m) progress = Number(m[1]);
        if (progress >= opts.killAfterBytes) resolve();
      }
    });
    void exited.then(({ code, signal }) =>
      reject(new Error(`push child exited (code ${code}, signal ${signal}) after ${progress} bytes, before it was killed:\n${stderr}`)),
    );
  });
  child.kill('SIGKILL');
  const { signal } = await exited;
  return { progress, signal, stderr };
}
