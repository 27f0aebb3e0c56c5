/**
 * `npm run bench -- fetch`: time of fetch_and_verify_model for a 1 GiB model
 * (read from the file store, hash, check the archive signature, extract with
 * every safety check while hashing each file, verify the OMS bundle, publish
 * into the cache) as a ratio to plain `tar xzf` of the same archive, in the
 * same run. Target <= 1.3x: one pass over the bytes, no second read.
 *
 * The model: 4 files of 256 MiB of float32 weights (noisy, so they compress
 * a little, as real weights do). It is packaged once and kept under
 * $AEGIS_BENCH_DIR (default /tmp/aegis-bench/fetch).
 */
import { existsSync } from 'node:fs';
import { mkdir, open, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateKeyPair, parsePrivateKey, parsePublicKey } from '../src/signing/keys.js';
import { packageModel } from '../src/signing/package.js';
import { PemKeySigner } from '../src/signing/pem/index.js';
import { fetchAndVerifyModel } from '../src/serving/fetch.js';
import { exec, median, table } from './lib.js';

const MiB = 2 ** 20;

async function weights(path: string, bytes: number, seed: number): Promise<void> {
  const fh = await open(path, 'w');
  const block = new Float32Array((16 * MiB) / 4);
  let x = seed;
  for (let off = 0; off < bytes; off += block.byteLength) {
    for (let i = 0; i < block.length; i++) {
      x = (x * 1103515245 + 12345) >>> 0;
      block[i] = Math.sin(i * 0.001 + off) * 0.02 + (x / 2 ** 32 - 0.5) * 0.01;
    }
    await fh.write(Buffer.from(block.buffer), 0, Math.min(block.byteLength, bytes - off), off);
  }
  await fh.close();
}

export async function main(args: string[]): Promise<void> {
  const runs = Number(args.find((a) => a.startsWith('--runs='))?.slice(7) ?? 3);
  const totalMiB = Number(args.find((a) => a.startsWith('--mib='))?.slice(6) ?? 1024);
  const dir = join(process.env.AEGIS_BENCH_DIR ?? '/tmp/aegis-bench', `fetch-${totalMiB}`);
  const model = join(dir, 'model');
  const store = join(dir, 'store');
  const archive = join(store, 'model.tar.gz');
  await mkdir(model, { recursive: true });
  await mkdir(store, { recursive: true });
  const pair = generateKeyPair('p256');
  if (!existsSync(join(dir, 'key.pem')) || !existsSync(archive)) {
    process.stderr.write(`generating a ${totalMiB} MiB model and packaging it (once) in ${dir} …\n`);
    const files = 4;
    for (let i = 0; i < files; i++) await weights(join(model, `weights-${i}.bin`), (totalMiB * MiB) / files, i + 1);
    await writeFile(
      join(model, 'aegis.yaml'),
      'apiVersion: aegis.dev/v1\nkind: Model\nname: bench\nversion: "1.0"\nframework: other\nruntime: { name: bench }\ninputs: [{ name: x, dtype: float32, shape: [-1, 4] }]\noutputs: [{ name: y, dtype: float32, shape: [-1, 1] }]\n',
    );
    await writeFile(join(dir, 'key.pem'), pair.privateKeyPem);
    await writeFile(join(dir, 'key.pub.pem'), pair.publicKeyPem);
    const t = performance.now();
    const r = await packageModel({ modelDir: model, signer: new PemKeySigner(parsePrivateKey(pair.privateKeyPem, 'bench')), outDir: store });
    process.stderr.write(`packaged ${(r.size / MiB).toFixed(0)} MiB archive in ${((performance.now() - t) / 1000).toFixed(1)} s\n`);
  }
  const { readFile } = await import('node:fs/promises');
  const trust = { kind: 'publicKey' as const, key: parsePublicKey(await readFile(join(dir, 'key.pub.pem'), 'utf8'), 'bench'), source: 'bench' };
  await exec('sh', ['-c', `cat "${archive}" > /dev/null`]); // page cache, for both contenders

  const tarDest = join(dir, 'tar-out');
  const cache = join(dir, 'cache');
  const tTar = await median(runs, async () => {
    await rm(tarDest, { recursive: true, force: true });
    await mkdir(tarDest);
    await exec('tar', ['xzf', archive, '-C', tarDest]);
  });
  const tFetch = await median(runs, async () => {
    await rm(cache, { recursive: true, force: true });
    await fetchAndVerifyModel({ uri: archive, trust, cacheDir: cache });
  });
  const tCached = await median(runs, () => fetchAndVerifyModel({ uri: archive, trust, cacheDir: cache }));
  await rm(tarDest, { recursive: true, force: true });
  process.stdout.write(`fetch benchmark: ${totalMiB} MiB model, median of ${runs} runs, archive in page cache\n`);
  process.stdout.write(
    table([
      ['operation', 'seconds', 'ratio to tar xzf'],
      ['tar xzf (baseline)', tTar.toFixed(2), '1.00x'],
      ['aegis fetch (verify + extract)', tFetch.toFixed(2), `${(tFetch / tTar).toFixed(2)}x`],
      ['aegis fetch, cached (re-verify)', tCached.toFixed(2), `${(tCached / tTar).toFixed(2)}x`],
    ]) + '\n',
  );
  process.stdout.write('target: aegis fetch <= 1.30x tar xzf\n');
}
