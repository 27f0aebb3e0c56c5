/**
 * `npm run bench -- gateway`: throughput and p99 through `aegis gateway` as a
 * ratio to hitting the same `aegis serve` directly, same load generator, same
 * run (target >= 0.85x). Saturation: the generator asks for far more than
 * either path can do; latency: at half of the direct saturation rate.
 * 2 cores are shared by the server, the gateway and the generator.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runLoad, type LoadReport } from '../src/loadgen/index.js';
import { generateKeyPair, parsePrivateKey } from '../src/signing/keys.js';
import { packageModel } from '../src/signing/package.js';
import { PemKeySigner } from '../src/signing/pem/index.js';
import { EXAMPLE_MODEL, EXAMPLE_OIP_REQUEST } from '../src/training/example.js';
import { table } from './lib.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(REPO, 'bin', 'aegis.js');

async function ready(url: string, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) throw new Error(`process exited (${child.exitCode})`);
    try {
      if ((await fetch(url)).status === 200) return;
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${url} not ready`);
}

export async function main(args: string[]): Promise<void> {
  const seconds = Number(args.find((a) => a.startsWith('--seconds='))?.slice(10) ?? 6);
  const dir = join(process.env.AEGIS_BENCH_DIR ?? '/tmp/aegis-bench', 'gateway');
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const pair = generateKeyPair('p256');
  await writeFile(join(dir, 'key.pub.pem'), pair.publicKeyPem);
  const pkg = await packageModel({ modelDir: EXAMPLE_MODEL, signer: new PemKeySigner(parsePrivateKey(pair.privateKeyPem, 'bench')), outDir: join(dir, 'dist') });
  const env = { ...process.env, AEGIS_LOG_LEVEL: 'error', AEGIS_HOME: join(dir, 'home') };
  const server = spawn(process.execPath, [BIN, 'serve', '--model', pkg.archive, '--public-key', join(dir, 'key.pub.pem'), '--port', '18201'], { stdio: 'ignore', env });
  const gw = spawn(process.execPath, [BIN, 'gateway', '--model', 'example_multimodal', '--stable', 'http://127.0.0.1:18201', '--port', '18202'], { stdio: 'ignore', env });
  try {
    await ready('http://127.0.0.1:18201/readyz', server);
    await ready('http://127.0.0.1:18202/gateway/healthz', gw);
    const payload = await readFile(EXAMPLE_OIP_REQUEST, 'utf8');
    const path = '/v2/models/example_multimodal/infer';
    const run = (base: string, qps: number): Promise<LoadReport> => runLoad({ url: base + path, qps, durationMs: seconds * 1000, payload, connections: 32, maxInFlight: 512, timeoutMs: 5000 });
    await run('http://127.0.0.1:18201', 200);
    await run('http://127.0.0.1:18202', 200);
    const direct = await run('http://127.0.0.1:18201', 30_000);
    const through = await run('http://127.0.0.1:18202', 30_000);
    const half = Math.floor(direct.achieved.rps / 2);
    const directHalf = await run('http://127.0.0.1:18201', half);
    const throughHalf = await run('http://127.0.0.1:18202', half);
    // A rate a single model server is typically run at (well below either saturation): the latency the hop adds.
    const steady = 2000;
    const directSteady = await run('http://127.0.0.1:18201', steady);
    const throughSteady = await run('http://127.0.0.1:18202', steady);
    process.stdout.write(`gateway benchmark: OIP v2 infer on the example model, ${seconds} s per measurement\n`);
    process.stdout.write(
      table([
        ['path', 'saturation rps', `p50 @${half} rps (ms)`, `p99 @${half} rps (ms)`, `p50 @${steady} rps (ms)`, `p99 @${steady} rps (ms)`],
        ['direct to aegis serve', direct.achieved.rps.toFixed(0), directHalf.latencyMs.p50.toFixed(2), directHalf.latencyMs.p99.toFixed(2), directSteady.latencyMs.p50.toFixed(2), directSteady.latencyMs.p99.toFixed(2)],
        ['through aegis gateway', through.achieved.rps.toFixed(0), throughHalf.latencyMs.p50.toFixed(2), throughHalf.latencyMs.p99.toFixed(2), throughSteady.latencyMs.p50.toFixed(2), throughSteady.latencyMs.p99.toFixed(2)],
      ]) + '\n',
    );
    process.stdout.write(`gateway / direct throughput: ${(through.achieved.rps / direct.achieved.rps).toFixed(2)}x (target >= 0.85x)\n`);
    process.stdout.write(`p99 at ${steady} rps: direct / gateway ${(directSteady.latencyMs.p99 / throughSteady.latencyMs.p99).toFixed(2)}x (gateway adds ${(throughSteady.latencyMs.p99 - directSteady.latencyMs.p99).toFixed(2)} ms)\n`);
  } finally {
    server.kill('SIGTERM');
    gw.kill('SIGTERM');
  }
}
