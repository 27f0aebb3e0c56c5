/**
 * `npm run bench -- verify [--signatures=20000] [--runs=3]`: ECDSA P-256
 * verification over a recorded SHA-256 digest (src/signing/digest-verify.ts,
 * what the restore's archive check and the registry do per archive) against
 * OpenSSL's own verification of the same signatures over their messages
 * (`crypto.verify`, which hashes the message itself: the baseline an
 * implementation with a native "verify digest" call would reach), in one
 * process, CPU time per signature (median of --runs).
 */
import { createHash, generateKeyPairSync, sign, verify } from 'node:crypto';
import { batchVerifier } from '../src/signing/digest-verify.js';
import { medianOf, numberArg, table } from './lib.js';

function cpuMicros(fn: () => void): number {
  const t = process.cpuUsage();
  fn();
  const u = process.cpuUsage(t);
  return u.user + u.system;
}

export async function main(args: string[]): Promise<void> {
  const n = numberArg(args, 'signatures', 20_000);
  const runs = numberArg(args, 'runs', 3);
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  process.stderr.write(`signing ${n} messages …\n`);
  const items = Array.from({ length: n }, (_, i) => {
    const message = Buffer.from(`archive ${i}`);
    return { message, digest: createHash('sha256').update(message).digest(), signature: sign('sha256', message, privateKey) };
  });
  const batch = batchVerifier(publicKey);
  const native: number[] = [];
  const ours: number[] = [];
  for (let r = 0; r < runs + 1; r++) {
    let bad = 0;
    const a = cpuMicros(() => {
      for (const it of items) if (!verify('sha256', it.message, publicKey, it.signature)) bad++;
    });
    const b = cpuMicros(() => {
      for (let i = 0; i < n; i += 1024) bad += batch(items.slice(i, i + 1024)).filter((ok) => !ok).length;
    });
    if (bad) throw new Error(`${bad} signatures did not verify`);
    if (r === 0) continue; // warm-up
    native.push(a / n);
    ours.push(b / n);
  }
  const base = medianOf(native);
  const mine = medianOf(ours);
  process.stdout.write(
    `\nverify bench: ${n} P-256 signatures, CPU µs per signature, median of ${runs} runs (Node ${process.version})\n\n` +
      table([
        ['what', 'µs / signature', 'ratio'],
        ['OpenSSL crypto.verify over the message (baseline)', base.toFixed(1), '1.00x'],
        ['aegis: over the recorded digest, batches of 1024', mine.toFixed(1), `${(mine / base).toFixed(2)}x`],
      ]) +
      '\n',
  );
}
