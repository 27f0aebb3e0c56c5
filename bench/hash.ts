/**
 * Hashing speed of `aegis model sign` / `verify` against one-core
 * `openssl dgst -sha256` (and the reference model_signing, when installed by
 * scripts/services.sh) on the same files in the same run:
 *   - a 2 GiB model of 8 files (target: verify >= 1.7x openssl),
 *   - one 2 GiB file (target >= 0.9x),
 *   - the same file with --shard-size (parallel shards).
 * Files are generated once under $AEGIS_BENCH_DIR (default /tmp/aegis-bench) and
 * read once before timing so every contender reads from the page cache.
 */
import { randomFillSync } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, open, readdir, stat, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PemKeySigner } from '../src/signing/pem/index.js';
import { generateKeyPair, parsePrivateKey, parsePublicKey } from '../src/signing/keys.js';
import { signModel } from '../src/signing/sign.js';
import { verifyModel } from '../src/signing/verify.js';
import { exec, gbps, median, table } from './lib.js';

const GiB = 2 ** 30;

async function ensureFile(path: string, size: number): Promise<void> {
  if (existsSync(path) && (await stat(path)).size === size) return;
  const fh = await open(path, 'w');
  const block = Buffer.allocUnsafe(16 * 2 ** 20);
  randomFillSync(block);
  for (let off = 0; off < size; off += block.length) {
    block.writeUInt32LE(off / block.length, 0); // no two blocks alike
    await fh.write(block, 0, Math.min(block.length, size - off), off);
  }
  await fh.close();
}

async function warm(paths: string[]): Promise<void> {
  await exec('cat', paths, { maxBuffer: 1 }).catch(() => undefined);
  for (const p of paths) await exec('sh', ['-c', `cat "${p}" > /dev/null`]);
}

export async function main(args: string[]): Promise<void> {
  const runs = Number(args.find((a) => a.startsWith('--runs='))?.slice(7) ?? 3);
  const dir = process.env.AEGIS_BENCH_DIR ?? '/tmp/aegis-bench';
  const multi = join(dir, 'multi');
  const single = join(dir, 'single', 'model.bin');
  await mkdir(multi, { recursive: true });
  await mkdir(join(dir, 'single'), { recursive: true });
  process.stderr.write(`preparing 2 GiB of model files in ${dir} …\n`);
  for (let i = 0; i < 8; i++) await ensureFile(join(multi, `shard-${i}.bin`), GiB / 4);
  await ensureFile(single, 2 * GiB);
  const multiFiles = (await readdir(multi)).filter((f) => f.endsWith('.bin')).map((f) => join(multi, f));
  await warm([...multiFiles, single]);

  const pair = generateKeyPair('p256');
  const signer = new PemKeySigner(parsePrivateKey(pair.privateKeyPem, 'bench'));
  const trust = { kind: 'publicKey' as const, key: parsePublicKey(pair.publicKeyPem, 'bench'), source: 'bench' };
  await writeFile(join(dir, 'key.pem'), pair.privateKeyPem);
  await writeFile(join(dir, 'key.pub.pem'), pair.publicKeyPem);

  const reference = process.env.AEGIS_MODEL_SIGNING_BIN ?? fileURLToPath(new URL('../.services/venv/bin/model_signing', import.meta.url));
  const haveRef = existsSync(reference);
  const opensslCmd = existsSync('/usr/bin/taskset') ? ['taskset', ['-c', '0', 'openssl', 'dgst', '-sha256']] : ['openssl', ['dgst', '-sha256']];

  const cases = [
    { name: '8 files, 2 GiB', path: multi, files: multiFiles, shard: undefined as number | undefined },
    { name: '1 file, 2 GiB', path: single, files: [single], shard: undefined },
    { name: '1 file, 2 GiB, --shard-size 256MiB', path: single, files: [single], shard: 256 * 2 ** 20 },
  ];
  const cli = fileURLToPath(new URL('../bin/aegis.js', import.meta.url));
  const rows: (string | number)[][] = [
    ['model', 'openssl 1 core', 'aegis sign', 'aegis verify', 'verify/openssl', 'CLI verify', 'CLI/openssl', 'reference verify', 'aegis CLI/reference'],
  ];
  for (const c of cases) {
    const bytes = 2 * GiB;
    const bundlePath = join(dir, `${c.name.replace(/\W+/g, '_')}.sig`);
    const tOpenssl = await median(runs, () => exec(opensslCmd[0] as string, [...(opensslCmd[1] as string[]), ...c.files]));
    const tSign = await median(runs, async () => {
      const r = await signModel({ modelPath: c.path, signer, ...(c.shard ? { shardSize: c.shard } : {}), bundlePath });
      await writeFile(bundlePath, r.bundleJson);
    });
    const tVerify = await median(runs, () => verifyModel({ modelPath: c.path, bundlePath, trust }));
    // One-shot CLI process: includes Node start-up and hashing-thread start-up.
    const tCli = await median(runs, () => exec(process.execPath, [cli, 'model', 'verify', c.path, '--bundle', bundlePath, '--public-key', join(dir, 'key.pub.pem')]));
    let tRef: number | undefined;
    if (haveRef && !c.shard) {
      const refSig = `${bundlePath}.ref`;
      await exec(reference, ['sign', 'key', '--private_key', join(dir, 'key.pem'), '--signature', refSig, c.path]);
      tRef = await median(runs, () => exec(reference, ['verify', 'key', '--public_key', join(dir, 'key.pub.pem'), '--signature', refSig, c.path]));
    }
    rows.push([
      c.name,
      gbps(bytes, tOpenssl),
      gbps(bytes, tSign),
      gbps(bytes, tVerify),
      `${(tOpenssl / tVerify).toFixed(2)}x`,
      gbps(bytes, tCli),
      `${(tOpenssl / tCli).toFixed(2)}x`,
      tRef ? gbps(bytes, tRef) : 'n/a',
      tRef ? `${(tRef / tCli).toFixed(2)}x` : 'n/a',
    ]);
  }
  process.stdout.write(`hash benchmark: median of ${runs} runs, ${availableParallelism()} cores, files in page cache\n`);
  process.stdout.write(table(rows) + '\n');
  process.stdout.write('aegis sign/verify: in-process library calls (hashing threads reused); CLI verify: a fresh `aegis model verify` process each run\n');
  process.stdout.write('targets: 8 files verify/openssl >= 1.70x; 1 file >= 0.90x; aegis faster than the reference\n');
}
