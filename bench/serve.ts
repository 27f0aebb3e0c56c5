/**
 * `npm run bench -- serve`: `aegis serve` against (a) a minimal node:http
 * server calling the same ONNX session (the practical ceiling) and (b) the
 * KServe Python model server with an ONNX Runtime predictor on the same ONNX
 * file (when installed: `scripts/services.sh kserve`), all driven by the same
 * open-loop load generator (src/loadgen) in the same run, over OIP v2
 * `POST /v2/models/example_multimodal/infer`:
 *   - saturation: the generator asks for far more than any server can do; the
 *     achieved rate is the server's throughput;
 *   - a fixed rate every server sustains: p50/p99;
 *   - half of aegis's saturation: aegis p99 (target < 2 ms).
 * Targets: aegis >= 0.85x the minimal server's throughput and >= 2x KServe's.
 * The machine has 2 cores shared by the server under test and the generator.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runLoad, type LoadReport } from '../src/loadgen/index.js';
import { generateKeyPair, parsePrivateKey } from '../src/signing/keys.js';
import { packageModel } from '../src/signing/package.js';
import { PemKeySigner } from '../src/signing/pem/index.js';
import { EXAMPLE_MODEL, EXAMPLE_OIP_REQUEST } from '../src/training/example.js';
import { table } from './lib.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));

function start(cmd: string, args: string[], readyUrl: string): Promise<ChildProcess> {
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, AEGIS_LOG_LEVEL: 'error' } });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + 60_000;
    const poll = async () => {
      if (child.exitCode !== null) return reject(new Error(`${cmd} exited: ${err.slice(-500)}`));
      try {
        const r = await fetch(readyUrl);
        if (r.status === 200) return resolve(child);
      } catch {
        // not yet
      }
      if (Date.now() > deadline) return reject(new Error(`${cmd} not ready after 60 s: ${err.slice(-500)}`));
      setTimeout(poll, 200);
    };
    void poll();
  });
}

async function stop(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
  if (child.exitCode === null) child.kill('SIGKILL');
}

async function load(url: string, payload: string, qps: number, seconds: number): Promise<LoadReport> {
  return runLoad({ url, qps, durationMs: seconds * 1000, payload, connections: 32, maxInFlight: 512, timeoutMs: 5000 });
}

export async function main(args: string[]): Promise<void> {
  const seconds = Number(args.find((a) => a.startsWith('--seconds='))?.slice(10) ?? 6);
  const dir = join(process.env.AEGIS_BENCH_DIR ?? '/tmp/aegis-bench', 'serve');
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const pair = generateKeyPair('p256');
  const { writeFile } = await import('node:fs/promises');
  await writeFile(join(dir, 'key.pub.pem'), pair.publicKeyPem);
  const pkg = await packageModel({ modelDir: EXAMPLE_MODEL, signer: new PemKeySigner(parsePrivateKey(pair.privateKeyPem, 'bench')), outDir: join(dir, 'dist') });
  const payload = await readFile(EXAMPLE_OIP_REQUEST, 'utf8');
  const onnx = join(EXAMPLE_MODEL, 'model.onnx');
  const kservePython = join(REPO, '.services', 'kserve-venv', 'bin', 'python');

  const servers: { name: string; start: () => Promise<ChildProcess>; base: string }[] = [
    {
      name: 'aegis serve',
      base: 'http://127.0.0.1:18101',
      start: () =>
        start(process.execPath, [join(REPO, 'bin', 'aegis.js'), 'serve', '--model', pkg.archive, '--public-key', join(dir, 'key.pub.pem'), '--port', '18101'], 'http://127.0.0.1:18101/readyz'),
    },
    { name: 'minimal node:http + ORT', base: 'http://127.0.0.1:18102', start: () => start(process.execPath, [join(REPO, 'bench', 'minimal-server.mjs'), onnx, '18102'], 'http://127.0.0.1:18102/') },
  ];
  if (existsSync(kservePython)) {
    servers.push({
      name: 'KServe (Python, ORT)',
      base: 'http://127.0.0.1:18103',
      start: () => start(kservePython, [join(REPO, 'bench', 'kserve_server.py'), onnx, '18103', '18104'], 'http://127.0.0.1:18103/v2/health/ready'),
    });
  } else {
    process.stderr.write('KServe not installed (scripts/services.sh kserve): its column is n/a\n');
  }

  const results: Record<string, { sat: LoadReport; fixed?: LoadReport; half?: LoadReport }> = {};
  for (const s of servers) {
    process.stderr.write(`${s.name}: saturation …\n`);
    const child = await s.start();
    try {
      const url = `${s.base}/v2/models/example_multimodal/infer`;
      await load(url, payload, 200, 1); // warm-up
      results[s.name] = { sat: await load(url, payload, 30_000, seconds) };
    } finally {
      await stop(child);
    }
  }
  const aegisSat = results['aegis serve']!.sat.achieved.rps;
  const fixedRate = Math.max(100, Math.floor(Math.min(...Object.values(results).map((r) => r.sat.achieved.rps)) * 0.5));
  const halfAegis = Math.floor(aegisSat / 2);
  for (const s of servers) {
    process.stderr.write(`${s.name}: ${fixedRate} rps fixed …\n`);
    const child = await s.start();
    try {
      const url = `${s.base}/v2/models/example_multimodal/infer`;
      await load(url, payload, 200, 1);
      results[s.name]!.fixed = await load(url, payload, fixedRate, seconds);
      if (s.name === 'aegis serve') results[s.name]!.half = await load(url, payload, halfAegis, seconds);
    } finally {
      await stop(child);
    }
  }

  const minimal = results['minimal node:http + ORT']!.sat.achieved.rps;
  const kserve = results['KServe (Python, ORT)']?.sat.achieved.rps;
  const rows: (string | number)[][] = [['server', 'saturation rps', 'errors', `p50 @${fixedRate} rps (ms)`, `p99 @${fixedRate} rps (ms)`]];
  for (const [name, r] of Object.entries(results)) {
    const errs = r.sat.outcomes.serverErrors + r.sat.outcomes.networkErrors + r.sat.outcomes.timeouts;
    rows.push([name, r.sat.achieved.rps.toFixed(0), errs, r.fixed!.latencyMs.p50.toFixed(2), r.fixed!.latencyMs.p99.toFixed(2)]);
  }
  process.stdout.write(`serve benchmark: OIP v2 infer on the example model, open-loop generator in the same run, ${seconds} s per measurement\n`);
  process.stdout.write(table(rows) + '\n');
  process.stdout.write(`aegis / minimal throughput: ${(aegisSat / minimal).toFixed(2)}x (target >= 0.85x)\n`);
  process.stdout.write(`aegis / KServe throughput:  ${kserve ? `${(aegisSat / kserve).toFixed(2)}x` : 'n/a'} (target >= 2x)\n`);
  const half = results['aegis serve']!.half!;
  process.stdout.write(`aegis p99 at half of saturation (${halfAegis} rps): ${half.latencyMs.p99.toFixed(2)} ms (target < 2 ms), p50 ${half.latencyMs.p50.toFixed(2)} ms, achieved ${half.achieved.rps.toFixed(0)} rps\n`);
}
