import { AegisError } from '../../errors.js';
import { tryLockFile } from '../../util/lock.js';

/** The embedded database's exclusive lock: one process at a time; a live holder is refused with DB_LOCKED. */
export interface DirLock {
  release(): Promise<void>;
}

export async function acquireDirLock(path: string, what: string): Promise<DirLock> {
  let r;
  try {
    r = await tryLockFile(path);
  } catch (err) {
    throw new AegisError('DB_UNREACHABLE', `cannot create the lock file ${path}: ${(err as Error).message}`, {
      cause: err,
      hint: 'Check that the folder holding the database is writable.',
      details: { lockFile: path },
    });
  }
  if ('release' in r) return { release: r.release };
  if (r.heldBy > 0) {
    throw new AegisError('DB_LOCKED', `the embedded database ${what} is in use by process ${r.heldBy}`, {
      hint:
        `Only one process can open the embedded database: stop process ${r.heldBy} (e.g. \`aegis up\`) or talk to it ` +
        `through its API. If no such process is Aegis, delete ${path}.`,
      details: { lockFile: path, pid: r.heldBy },
    });
  }
  throw new AegisError('DB_LOCKED', `could not take the lock ${path} for the embedded database ${what}`, {
    hint: `Another process keeps re-creating ${path}; stop it and retry.`,
    details: { lockFile: path },
  });
}
