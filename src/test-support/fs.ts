import { chmod, cp, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The shared fixtures folder that sits beside the repository (../shared). */
export const SHARED_DIR = process.env.AEGIS_SHARED_DIR ?? fileURLToPath(new URL('../../../shared', import.meta.url));

export async function tempDir(prefix = 'aegis-test-'): Promise<{ path: string; cleanup: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, cleanup: () => rm(path, { recursive: true, force: true }) };
}

/** Copies a tree and makes it writable (the shared fixtures are read-only). */
export async function copyWritable(src: string, dest: string): Promise<void> {
  await cp(src, dest, { recursive: true });
  const fix = async (p: string) => {
    const st = await stat(p);
    await chmod(p, st.isDirectory() ? 0o755 : 0o644);
    if (st.isDirectory()) for (const e of await readdir(p)) await fix(join(p, e));
  };
  await fix(dest);
}
