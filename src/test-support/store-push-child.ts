/**
 * Child process for the "killed mid-push" store tests. Run as
 *   node --import tsx store-push-child.ts STORE_URI KEY STALL_BYTES [PART_SIZE_BYTES]
 * It puts an endless stream into the store: deterministic bytes up to
 * STALL_BYTES, then nothing more (the stream never ends), so the put stays in
 * flight until the parent kills this process. Each onProgress call is printed
 * as `progress N` on stdout. S3 settings come from the environment
 * (AEGIS_S3_ENDPOINT, AWS_ACCESS_KEY_ID, …).
 */
import { Readable } from 'node:stream';
import { openStore } from '../store/index.js';
import { bytes } from './models.js';

const [uri, key, stallArg, partSizeArg] = process.argv.slice(2);
if (!uri || !key || !stallArg) {
  process.stderr.write('usage: store-push-child.ts STORE_URI KEY STALL_BYTES [PART_SIZE_BYTES]\n');
  process.exit(2);
}
const stallAt = Number(stallArg);
const CHUNK = 1024 * 1024;
let produced = 0;
const body = new Readable({
  read() {
    if (produced >= stallAt) return; // stall: never push again, never end
    const chunk = bytes(`push-child:${produced}`, Math.min(CHUNK, stallAt - produced));
    produced += chunk.length;
    this.push(chunk);
  },
});
// A stalled stream holds no handle open: stdin (a pipe from the parent) keeps this process alive
// until it is killed, and ends it if the parent goes away.
process.stdin.resume();
process.stdin.on('end', () => process.exit(5));
const store = openStore(uri, partSizeArg ? { s3: { partSize: Number(partSizeArg) } } : {});
process.stdout.write('started\n');
store
  .put(key, body, { onProgress: (n) => process.stdout.write(`progress ${n}\n`) })
  .then(() => {
    process.stderr.write('put finished, which a stalled stream should never allow\n');
    process.exit(3);
  })
  .catch((err: unknown) => {
    process.stderr.write(`put failed: ${(err as Error).message}\n`);
    process.exit(4);
  });
