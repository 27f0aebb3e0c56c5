import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { AegisError } from '../errors.js';

export interface CommandOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  signal: AbortSignal;
  /** Every line of stdout and stderr, as it arrives. */
  onLine: (line: string, stream: 'stdout' | 'stderr') => void;
  /** What the command is, for messages ("the trainer"). */
  what: string;
}

/** Lines of stderr kept for the error message of a failed command. */
const TAIL_LINES = 20;

/**
 * Runs a command to its end, streaming its output line by line. Aborting the
 * signal stops it (SIGTERM, then SIGKILL 10 s later). A non-zero exit is a
 * PIPELINE_STEP_FAILED naming the exit code and the last lines of stderr.
 */
export async function runCommand(argv: readonly string[], o: CommandOptions): Promise<void> {
  const [file, ...args] = argv;
  if (!file) throw new AegisError('PIPELINE_INPUT_INVALID', `${o.what} command is empty`, { hint: 'Set pipeline.trainCommand to an argv list, e.g. ["python", "train.py", "{dataset}", "{out}"].' });
  const tail: string[] = [];
  await new Promise<void>((resolve, reject) => {
    let settled = false;
    const child = spawn(file, args, { cwd: o.cwd, env: o.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let killTimer: NodeJS.Timeout | undefined;
    const onAbort = () => {
      child.kill('SIGTERM');
      killTimer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      killTimer.unref();
    };
    o.signal.addEventListener('abort', onAbort, { once: true });
    const lines = (stream: NodeJS.ReadableStream, name: 'stdout' | 'stderr') => {
      const rl = createInterface({ input: stream, crlfDelay: Infinity });
      rl.on('line', (line) => {
        if (name === 'stderr') {
          tail.push(line);
          if (tail.length > TAIL_LINES) tail.shift();
        }
        o.onLine(line, name);
      });
      return new Promise<void>((r) => rl.once('close', () => r()));
    };
    const drained = Promise.all([lines(child.stdout, 'stdout'), lines(child.stderr, 'stderr')]);
    const done = (err?: Error) => {
      if (settled) return;
      settled = true;
      o.signal.removeEventListener('abort', onAbort);
      if (killTimer) clearTimeout(killTimer);
      if (err) reject(err);
      else resolve();
    };
    child.once('error', (err) => {
      done(
        new AegisError('PIPELINE_STEP_FAILED', `cannot run ${o.what} (${file}): ${err.message}`, {
          cause: err,
          hint: 'Check that the program exists and is executable (pipeline.trainCommand).',
          details: { command: argv, retryable: false },
        }),
      );
    });
    child.once('close', (code, signal) => {
      void drained.then(() => {
        if (o.signal.aborted) return done(new AegisError('PIPELINE_CANCELLED', `${o.what} was stopped`, { details: { command: argv } }));
        if (code === 0) return done();
        done(
          new AegisError('PIPELINE_STEP_FAILED', `${o.what} exited with ${signal ? `signal ${signal}` : `code ${code}`}${tail.length ? `: ${tail.slice(-3).join(' | ')}` : ''}`, {
            hint: 'The step log (`aegis pipeline show RUN`) has its output.',
            details: { command: argv, exitCode: code, signal, stderr: tail.join('\n') },
          }),
        );
      });
    });
  });
}
