import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { AegisError } from '../errors.js';

const BIN = fileURLToPath(new URL('../../bin/aegis.js', import.meta.url));

export interface StartedServer {
  child: ChildProcess;
  /** The `--json` ready line: url, name, version, track, … */
  ready: Record<string, unknown>;
}

/**
 * Starts `aegis serve ARGS --json` as a child process (the model server role:
 * one verified model per process, so a canary cannot take the stable down)
 * and resolves when it reports ready; rejects with SERVER_START_FAILED and the
 * server's first error line if it exits first (e.g. the archive does not verify).
 */
export function startServer(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<StartedServer> {
  return new Promise((resolve, reject) => {
    // stdin is a pipe the server watches (AEGIS_EXIT_WITH_PARENT): if this process dies, even by kill -9, the pipe
    // closes and the server drains and exits instead of living on as an orphan holding its port.
    const child = spawn(process.execPath, [BIN, 'serve', ...args, '--json'], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...env, AEGIS_EXIT_WITH_PARENT: '1' } });
    let out = '';
    let err = '';
    let ready = false;
    child.stdout!.on('data', (d: Buffer) => {
      if (ready) return;
      out += d.toString();
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (line) {
        try {
          const parsed = JSON.parse(line) as Record<string, unknown>;
          ready = true;
          resolve({ child, ready: parsed });
        } catch {
          // partial line
        }
      }
    });
    child.stderr!.on('data', (d: Buffer) => {
      if (err.length < 64 * 1024) err += d.toString();
      process.stderr.write(d);
    });
    child.on('exit', (code) => {
      if (ready) return;
      const reason = err.trim().split('\n').find((l) => l && !l.startsWith('{')) ?? err.trim().split('\n')[0];
      reject(new AegisError('SERVER_START_FAILED', `the model server exited (${code}) before it was ready${reason ? `: ${reason}` : ''}`, { hint: 'See the message above.' }));
    });
  });
}

/** SIGTERM (the server drains in-flight requests), SIGKILL after `graceMs`; resolves when it has exited. */
export async function stopServer(child: ChildProcess, graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}
