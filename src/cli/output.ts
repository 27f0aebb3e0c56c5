import { SingleBar, Presets } from 'cli-progress';
import { AegisError } from '../errors.js';

export interface OutputOptions {
  json?: boolean;
}

/** Exit codes: 0 success, 1 the operation failed (e.g. verification), 2 bad usage or input. */
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

export function errorExitCode(err: AegisError): number {
  return err.code === 'USAGE' || err.code === 'CONFIG_INVALID' ? EXIT_USAGE : EXIT_FAILED;
}

/** Renders an error for a person (stderr) or a script (--json on stdout); returns the exit code. */
export function reportError(err: unknown, opts: OutputOptions, prefix = 'error'): number {
  const e =
    err instanceof AegisError
      ? err
      : new AegisError('INTERNAL', `unexpected error: ${(err as Error)?.stack ?? String(err)}`, {
          cause: err,
          hint: 'This is a bug in Aegis; please report it with the command you ran.',
        });
  if (opts.json) {
    printJson({ ok: false, error: e.toJSON() });
  } else {
    process.stderr.write(`${prefix} [${e.code}]: ${e.message}\n`);
    if (e.hint) process.stderr.write(`  hint: ${e.hint}\n`);
  }
  return errorExitCode(e);
}

/**
 * A progress bar on stderr for long operations, only on a terminal and not in
 * --json mode; a no-op otherwise. Shown once the work exceeds `minBytes`.
 */
export function byteProgress(label: string, opts: OutputOptions, minBytes = 256 * 1024 * 1024): {
  update: (done: number, total: number) => void;
  stop: () => void;
} {
  if (opts.json || !process.stderr.isTTY) return { update: () => {}, stop: () => {} };
  let bar: SingleBar | undefined;
  return {
    update(done, total) {
      if (!bar) {
        if (total < minBytes) return;
        bar = new SingleBar(
          {
            format: `${label} [{bar}] {percentage}% | {doneMiB}/{totalMiB} MiB | {speed} MiB/s | eta {eta}s`,
            stream: process.stderr,
            hideCursor: true,
            clearOnComplete: true,
          },
          Presets.shades_classic,
        );
        bar.start(total, 0, { doneMiB: 0, totalMiB: (total / 2 ** 20).toFixed(0), speed: '0' });
        (bar as unknown as { startedAt: number }).startedAt = Date.now();
      }
      const secs = (Date.now() - (bar as unknown as { startedAt: number }).startedAt) / 1000;
      bar.update(done, {
        doneMiB: (done / 2 ** 20).toFixed(0),
        totalMiB: (total / 2 ** 20).toFixed(0),
        speed: secs > 0 ? (done / 2 ** 20 / secs).toFixed(0) : '0',
      });
    },
    stop() {
      bar?.stop();
    },
  };
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}
