import { pino, type Logger } from 'pino';

/**
 * Structured logs (JSON lines) on stderr, so stdout stays for command output
 * (`verified`, `--json` reports). Level: AEGIS_LOG_LEVEL, default `warn` for the CLI.
 */
let root: Logger | undefined;

export function logger(): Logger {
  root ??= pino(
    { name: 'aegis', level: process.env.AEGIS_LOG_LEVEL ?? 'warn', base: { pid: process.pid } },
    pino.destination({ fd: 2, sync: true }),
  );
  return root;
}

export function childLogger(module: string): Logger {
  return logger().child({ module });
}
