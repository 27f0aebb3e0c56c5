/**
 * Child process for the "kill -9 during a backup" tests. Run as
 *   node --import tsx backup-kill-child.ts DATABASE_URL STORE_URI dump|manifest
 * It runs a real backup (pg_dump into the store) through a store that stalls
 * at the chosen point: `dump` passes the dump's first chunk on and then
 * stops (the upload stays in flight), `manifest` lets the dump be stored
 * completely and never writes the manifest. It prints `stalled` and waits to
 * be killed. S3 settings come from the environment (AEGIS_S3_ENDPOINT, AWS_*).
 */
import type { Readable } from 'node:stream';
import { Readable as NodeReadable } from 'node:stream';
import { runBackup } from '../backup/backup.js';
import { openDb } from '../db/index.js';
import { openStore } from '../store/index.js';
import type { ArtifactStore, PutOptions } from '../store/types.js';

const [url, storeUri, point] = process.argv.slice(2);
if (!url || !storeUri || (point !== 'dump' && point !== 'manifest')) {
  process.stderr.write('usage: backup-kill-child.ts DATABASE_URL STORE_URI dump|manifest\n');
  process.exit(2);
}
const stall = () => new Promise<never>(() => process.stdout.write('stalled\n'));

async function* firstChunkThenStall(body: Readable): AsyncGenerator<Buffer> {
  for await (const chunk of body as AsyncIterable<Buffer>) {
    yield chunk;
    break;
  }
  await stall();
}

const real = openStore(storeUri);
const store: ArtifactStore = {
  uri: real.uri,
  get: (k) => real.get(k),
  head: (k) => real.head(k),
  list: (p) => real.list(p),
  delete: (k) => real.delete(k),
  uriOf: (k) => real.uriOf(k),
  put(key: string, body: Readable | Buffer, options?: PutOptions) {
    if (point === 'manifest' && key.endsWith('/manifest.json')) return stall();
    if (point === 'dump' && /\/dump\.[a-z.]+$/.test(key) && !Buffer.isBuffer(body)) return real.put(key, NodeReadable.from(firstChunkThenStall(body)), options);
    return real.put(key, body, options);
  },
};

// stdin (a pipe from the parent) keeps this process alive while stalled, and ends it if the parent goes away.
process.stdin.resume();
process.stdin.on('end', () => process.exit(5));
const db = await openDb({ url });
await runBackup({ source: { db, url }, store });
process.stderr.write('backup finished, which a stalled store should never allow\n');
process.exit(3);
