/**
 * `npm run bench -- loadgen [--seconds=5] [--rates=1000,5000,10000] [--wrk-connections=64]`:
 * the rate the Aegis load generator achieves (responses per second during
 * the run, open loop) at 1k, 5k and 10k requests per second, as a ratio to
 * the asked rate, beside `wrk` run in the same invocation against the same
 * server. Target: within 1 % of the asked rate up to the server's capacity.
 *
 * Debian ships wrk, not wrk2, so wrk cannot hold a rate (`-R`): it runs
 * closed loop at saturation and its throughput is reported as the server's
 * capacity, the reference for "up to the server's capacity".
 *
 * The server is a minimal node:http process on 127.0.0.1 answering every
 * POST with 200 and a small JSON body; both contenders POST the example
 * model's /infer body. The machine's cores are shared by the server, the
 * generator and wrk, so the figures are for this machine only.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { cpus } from 'node:os';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultPayloadPath, runLoad, type LoadReport } from '../src/loadgen/index.js';
import { exec, table } from './lib.js';

const SERVER = `
import { createServer } from 'node:http';
const body = Buffer.from('{"model_name":"bench","outputs":{"probabilities":[[0.2,0.3,0.5]]}}');
const server = createServer((req, res) => {
  req.on('data', () => {});
  req.on('end', () => res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length }).end(body));
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => process.stdout.write(server.address().port + '\\n'));
`;

async function startServer(): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`bench server exited (${code})`)));
    child.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
  });
  return { url: `http://127.0.0.1:${port}/infer`, child };
}

async function wrk(url: string, seconds: number, connections: number, script: string): Promise<number> {
  const { stdout } = await exec('wrk', ['-t1', `-c${connections}`, `-d${seconds}s`, '-s', script, url]);
  const m = /Requests\/sec:\s+([\d.]+)/.exec(stdout);
  const errors = /Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)/.exec(stdout);
  if (errors) process.stderr.write(`wrk: ${errors[0]}\n`);
  if (!m) throw new Error(`cannot read wrk's output:\n${stdout}`);
  return Number(m[1]);
}

function arg(args: string[], name: string, fallback: string): string {
  return args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
}

export async function main(args: string[]): Promise<void> {
  const seconds = Number(arg(args, 'seconds', '5'));
  const rates = arg(args, 'rates', '1000,5000,10000').split(',').map(Number);
  const wrkConnections = Number(arg(args, 'wrk-connections', '64'));
  try {
    await exec('wrk', ['--version']).catch((e: { stdout?: string }) => {
      if (!e.stdout?.includes('wrk')) throw e; // `wrk --version` exits 1 after printing
    });
  } catch {
    process.stderr.write('wrk is not installed: run scripts/services.sh (or apt-get install wrk)\n');
    process.exitCode = 1;
    return;
  }
  const payload = await readFile(defaultPayloadPath());
  const dir = await mkdtemp(join(tmpdir(), 'aegis-bench-loadgen-'));
  const script = join(dir, 'post.lua');
  await writeFile(script, `wrk.method = "POST"\nwrk.body = ${JSON.stringify(payload.toString('utf8'))}\nwrk.headers["Content-Type"] = "application/json"\n`);
  const { url, child } = await startServer();
  try {
    process.stderr.write(`server ${url}; warming up …\n`);
    await runLoad({ url, qps: 2000, durationMs: 1500, payload });
    await wrk(url, 1, wrkConnections, script);

    const capacityBefore = await wrk(url, seconds, wrkConnections, script);
    process.stderr.write(`wrk saturation: ${capacityBefore.toFixed(0)} rps\n`);
    const runs: { rate: number; r: LoadReport; cpu: number }[] = [];
    for (const rate of rates) {
      const cpu0 = process.cpuUsage();
      const r = await runLoad({ url, qps: rate, durationMs: seconds * 1000, payload });
      const used = process.cpuUsage(cpu0);
      runs.push({ rate, r, cpu: (used.user + used.system) / 1e6 / seconds }); // share of one core over the run window
      process.stderr.write(`aegis ${rate} rps: achieved ${r.achieved.rps.toFixed(0)} rps\n`);
    }
    const capacityAfter = await wrk(url, seconds, wrkConnections, script);
    const capacity = Math.max(capacityBefore, capacityAfter);

    process.stdout.write(`loadgen benchmark: ${seconds} s per rate, POST ${payload.length}-byte JSON to a node:http server on 127.0.0.1, ${cpus().length} CPU cores shared by server, generator and wrk\n`);
    process.stdout.write(`wrk ${'(closed loop, -t1 -c' + wrkConnections + ')'} saturation throughput: ${capacityBefore.toFixed(0)} rps before, ${capacityAfter.toFixed(0)} rps after the aegis runs\n\n`);
    const rows: (string | number)[][] = [['target rps', 'aegis achieved', 'achieved/target', 'sent/target', 'expected (min of target, wrk)', 'achieved/expected', 'target/wrk', 'p50 ms', 'p99 ms', 'non-2xx/errors/dropped', 'generator CPU']];
    for (const { rate, r, cpu } of runs) {
      const expected = Math.min(rate, capacity);
      const o = r.outcomes;
      rows.push([
        rate,
        r.achieved.rps.toFixed(0),
        (r.achieved.rps / rate).toFixed(4),
        (r.achieved.sentRps / rate).toFixed(4),
        expected.toFixed(0),
        `${(r.achieved.rps / expected).toFixed(4)}${r.achieved.rps >= 0.99 * expected ? '' : '  (< 0.99)'}`,
        (rate / capacity).toFixed(2),
        r.latencyMs.p50.toFixed(2),
        r.latencyMs.p99.toFixed(2),
        `${o.serverErrors + o.unexpected}/${o.networkErrors + o.timeouts}/${o.dropped}`,
        `${(cpu * 100).toFixed(0)}%`,
      ]);
    }
    process.stdout.write(table(rows) + '\n');
    process.stdout.write('\nachieved = responses received during the run window per second (open loop, latency from each intended start); the target is met when achieved/expected >= 0.99.\n');
  } finally {
    child.kill();
    await rm(dir, { recursive: true, force: true });
  }
}
