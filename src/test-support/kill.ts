import { spawn } from 'node:child_process';
import { expect } from 'vitest';

/**
 * Runs a TypeScript child script (`node --import tsx SCRIPT ARGS`) until it
 * prints `stalled` (it has reached the point the test wants to crash at), then
 * kills it with SIGKILL and checks it died of that, not of something else.
 */
export async function killWhenStalled(script: string, args: string[], env: NodeJS.ProcessEnv, what: string): Promise<void> {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], { env: { ...env, AEGIS_LOG_LEVEL: 'error' }, stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on('exit', (code, signal) => r({ code, signal })));
  const stalled = await new Promise<boolean>((resolve) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('stalled\n')) resolve(true);
    });
    void exited.then(() => resolve(false));
  });
  expect(stalled, `the child exited before stalling ${what}:\n${stderr}`).toBe(true);
  child.kill('SIGKILL');
  expect(await exited).toEqual({ code: null, signal: 'SIGKILL' });
}
