import { link, readFile, unlink, writeFile } from 'node:fs/promises';
import { AegisError } from '../../errors.js';

/**
 * An exclusive lock file holding the owner's pid, created atomically complete
 * (written to a temp file, then hard-linked into place, which fails if it exists). A lock
 * left by a process that no longer runs is stale and taken over; one held by
 * a live process (including this one) is refused with DB_LOCKED.
 */
export interface DirLock {
  release(): Promise<void>;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function acquireDirLock(path: string, what: string): Promise<DirLock> {
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
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new AegisError('DB_UNREACHABLE', `cannot create the lock file ${path}: ${(err as Error).message}`, {
          cause: err,
          hint: 'Check that the folder holding the database is writable.',
          details: { lockFile: path },
        });
      }
    } finally {
      await unlink(tmp).catch(() => undefined);
    }
    const owner = Number.parseInt(await readFile(path, 'utf8').catch(() => ''), 10);
    if (Number.isInteger(owner) && owner > 0 && alive(owner)) {
      throw new AegisError('DB_LOCKED', `the embedded database ${what} is in use by process ${owner}`, {
        hint:
          `Only one process can open the embedded database: stop process ${owner} (e.g. \`aegis up\`) or talk to it ` +
          `through its API. If no such process is Aegis, delete ${path}.`,
        details: { lockFile: path, pid: owner },
      });
    }
    // Stale (its owner is gone): remove it and try again. Two processes taking
    // over the same stale lock at the same instant can still race here.
    await unlink(path).catch(() => undefined);
  }
  throw new AegisError('DB_LOCKED', `could not take the lock ${path} for the embedded database ${what}`, {
    hint: `Another process keeps re-creating ${path}; stop it and retry.`,
    details: { lockFile: path },
  });
}
