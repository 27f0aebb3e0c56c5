import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import type { AegisConfig } from '../config/index.js';
import { AegisError } from '../errors.js';
import type { LoadProgress } from '../loadgen/index.js';
import { collect, printJson, reportError } from './output.js';

function number(option: string, text: string, { integer = false, min = 0, example }: { integer?: boolean; min?: number; example: string }): number {
  const v = Number(text);
  if (text.trim() === '' || !Number.isFinite(v) || (integer && !Number.isInteger(v)) || v < min) {
    throw new AegisError('USAGE', `${option} must be ${integer ? 'a whole number' : 'a number'} >= ${min}, got ${JSON.stringify(text)}`, { hint: `e.g. ${option} ${example}` });
  }
  return v;
}

function parseHeaders(values: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const h of values) {
    const i = h.indexOf(':');
    if (i <= 0) throw new AegisError('USAGE', `--header ${JSON.stringify(h)} is not "Name: value"`, { hint: 'e.g. --header "authorization: Bearer $TOKEN"' });
    out[h.slice(0, i).trim().toLowerCase()] = h.slice(i + 1).trim();
  }
  return out;
}

async function readPayload(path: string, explicit: boolean): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    throw new AegisError('USAGE', `${explicit ? '--payload' : 'the default payload'} ${path} ${missing ? 'does not exist' : `cannot be read: ${(err as Error).message}`}`, {
      cause: err,
      hint: explicit ? 'Pass a JSON request body file, e.g. --payload examples/requests/example_multimodal.json' : 'Pass the request body with --payload FILE.',
    });
  }
}

/** `aegis load` (alias `aegis loadgen`): the canary load simulator. */
export function registerLoadCommand(program: Command, _config: () => AegisConfig): void {
  program
    .command('load')
    .alias('loadgen')
    .description('send open-loop, constant-rate load (with deliberately malformed requests) and report latency and errors')
    .requiredOption('--url <url>', 'where to send requests, e.g. http://127.0.0.1:8080/infer')
    .requiredOption('--qps <n>', 'requests per second (the arrival rate, kept whatever the responses do)')
    .requiredOption('--duration <duration>', 'how long: 180s, 3m, 500ms or a plain number of seconds')
    .option('--error-rate <share>', 'share of requests replaced by malformed ones (invalid JSON, wrong input name, wrong shape), 0..1', '0')
    .option('--payload <file>', 'request body, sent verbatim as application/json (default: the example model\'s /infer request)')
    .option('--seed <n>', 'seed of the PRNG that picks the malformed requests', '1')
    .option('--timeout <duration>', 'give up on a request after this long', '10s')
    .option('--max-in-flight <n>', 'most requests waiting at once; more are dropped and counted (default: qps × timeout, 64..10000)')
    .option('--connections <n>', 'most TCP connections', '100')
    .option('-H, --header <name: value>', 'extra request header (repeatable)', collect, [])
    .option('--json', 'print the report, with a per-second series, as JSON')
    .addHelpText(
      'after',
      `
Requests start on schedule (request i at i/qps seconds) whether or not earlier
ones were answered, and latency is measured from that intended start, so a
stalled server shows up in the percentiles instead of slowing the load down.
Latency percentiles cover valid requests; malformed ones are reported apart.
Outcomes: ok, expected-4xx (malformed and refused, as it should be),
server-errors (5xx on a valid request), unexpected (valid got 4xx, malformed
got 2xx/5xx), network-errors, timeouts, dropped (in-flight cap reached).
A live progress line shows on a terminal. Exit status 0 whatever the server
answered; 2 for bad usage; 1 if nothing could connect.

Example:
  $ aegis load --url http://127.0.0.1:8080/infer --qps 20 --duration 180 --error-rate 0.02
  $ aegis load --url http://127.0.0.1:8080/infer --qps 500 --duration 30s --json > report.json`,
    )
    .action(async (o) => {
      const controller = new AbortController();
      const onSigint = () => controller.abort();
      let progressShown = false;
      try {
        // The HTTP client and histogram load only for this command.
        const { defaultPayloadPath, formatProgress, formatReport, parseDuration, runLoad } = await import('../loadgen/index.js');
        const qps = number('--qps', o.qps, { example: '20' }); // runLoad checks the ranges
        const durationMs = parseDuration(o.duration);
        const errorRate = number('--error-rate', o.errorRate, { example: '0.02' });
        const payloadPath: string = o.payload ?? defaultPayloadPath();
        const payload = await readPayload(payloadPath, o.payload !== undefined);
        const showProgress = !o.json && Boolean(process.stderr.isTTY);
        process.once('SIGINT', onSigint);
        const report = await runLoad({
          url: o.url,
          qps,
          durationMs,
          errorRate,
          seed: number('--seed', o.seed, { integer: true, example: '1' }),
          payload,
          headers: parseHeaders(o.header as string[]),
          timeoutMs: parseDuration(o.timeout, '--timeout'),
          ...(o.maxInFlight !== undefined ? { maxInFlight: number('--max-in-flight', o.maxInFlight, { integer: true, min: 1, example: '1000' }) } : {}),
          connections: number('--connections', o.connections, { integer: true, min: 1, example: '100' }),
          signal: controller.signal,
          ...(showProgress
            ? {
                onTick: (p: LoadProgress) => {
                  progressShown = true;
                  process.stderr.write(`\r\x1b[K${formatProgress(p)}`);
                },
              }
            : {}),
        });
        if (progressShown) process.stderr.write('\r\x1b[K');
        if (o.json) printJson({ ok: true, payload: payloadPath, ...report });
        else process.stdout.write(formatReport(report));
      } catch (err) {
        if (progressShown) process.stderr.write('\r\x1b[K');
        process.exitCode = reportError(err, o);
      } finally {
        process.off('SIGINT', onSigint);
      }
    });
}
