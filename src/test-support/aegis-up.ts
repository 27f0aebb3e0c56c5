import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../bin/aegis.js', import.meta.url));

export interface AegisUp {
  child: ChildProcess;
  /** The gateway (where inference requests go). */
  url: string;
  /** The control-plane API. */
  control: string;
  /** Everything `aegis up --json` printed when ready. */
  ready: Record<string, unknown>;
}

/** Starts `aegis up ARGS --json` and resolves with its ready line; rejects with its stderr if it exits first. */
export function startAegisUp(args: string[], env: NodeJS.ProcessEnv): Promise<AegisUp> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'up', ...args, '--json'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.startsWith('{') && l.endsWith('}'));
      if (line) {
        const ready = JSON.parse(line) as Record<string, unknown>;
        resolve({ child, url: String(ready.url), control: String(ready.control), ready });
      }
    });
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('exit', (code) => reject(new Error(`aegis up exited (${code}) before it was ready: ${err.trim()}`)));
  });
}

/** Sends `signal` (SIGTERM: graceful) and resolves when the process has exited. */
export async function stopProcess(child: ChildProcess | undefined, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill(signal);
  await exited;
}

/** Polls `fn` every `intervalMs` until it returns something other than undefined; fails after `timeoutMs` naming `what`. */
export async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs: number, intervalMs = 1000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
