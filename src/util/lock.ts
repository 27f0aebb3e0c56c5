import { link, mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { AegisError } from '../errors.js';

/**
 * Cross-process lock files holding the owner's pid, created atomically
 * complete (written to a temp file, then hard-linked into place, which fails
 * if it exists). A lock left by a process that no longer runs (kill -9) is
 * stale and taken over.
 */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export type LockAttempt = { release: () => Promise<void> } | { heldBy: number };

/** One attempt to take the lock (taking over stale locks); fs errors other than EEXIST are thrown. */
export async function tryLockFile(path: string): Promise<LockAttempt> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const tmp = `${path}.${process.pid}.tmp`;
    try {
      await writeFile(tmp, `${process.pid}\n`, { mode: 0o644 });
      await link(tmp, path);
      let released = false;
      return {
        async release() {
          if (released) return;
          released = true;
          await unlink(path).catch(() => undefined);
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    } finally {
      await unlink(tmp).catch(() => undefined);
    }
    const owner = Number.parseInt(await readFile(path, 'utf8').catch(() => ''), 10);
    if (Number.isInteger(owner) && owner > 0 && pidAlive(owner)) return { heldBy: owner };
    // Stale (its owner is gone): remove it and try again. Two processes taking
    // over the same stale lock at the same instant can still race here.
    await unlink(path).catch(() => undefined);
  }
  return { heldBy: -1 };
}

/** Waits for the lock (up to `timeoutMs`); returns its release function. */
export async function acquireFileLock(path: string, timeoutMs = 10 * 60_000): Promise<() => Promise<void>> {
  await mkdir(dirname(path), { recursive: true });
  const deadline = Date.now() + timeoutMs;
  for (let wait = 20; ; wait = Math.min(wait * 2, 500)) {
    const r = await tryLockFile(path);
    if ('release' in r) return r.release;
    if (Date.now() > deadline) {
      throw new AegisError('INTERNAL', `timed out waiting for lock ${path} held by pid ${r.heldBy}`, {
        hint: 'Another Aegis process is fetching the same model; wait for it, or remove the lock file if that process is gone.',
      });
    }
    await sleep(wait);
  }
}
