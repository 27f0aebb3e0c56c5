/**
 * S3Store against moto's S3 server (started by scripts/services.sh on
 * $AEGIS_TEST_S3_ENDPOINT, default http://127.0.0.1:5077): round trips,
 * multipart streaming, pagination, errors, and that failed or killed uploads
 * leave no object and (when the process survives) no incomplete upload.
 */
import { CreateBucketCommand, HeadObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { PassThrough } from 'node:stream';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { isAegisError } from '../../errors.js';
import { bytes } from '../../test-support/models.js';
import { generatedStream, progressWatch, pushAndKill, readAll, sha256Of } from '../../test-support/store.js';
import { openStore, splitObjectUri } from '../index.js';
import type { ObjectInfo } from '../types.js';
import { S3Store, type S3StoreOptions } from './index.js';

const ENDPOINT = process.env.AEGIS_TEST_S3_ENDPOINT ?? 'http://127.0.0.1:5077';
const CREDENTIALS = { accessKeyId: process.env.AWS_ACCESS_KEY_ID ?? 'test', secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY ?? 'test' };
const CHILD_ENV = { AEGIS_S3_ENDPOINT: ENDPOINT, AWS_ACCESS_KEY_ID: CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: CREDENTIALS.secretAccessKey, AWS_EC2_METADATA_DISABLED: 'true' };
const BUCKET = `aegis-itest-${randomBytes(4).toString('hex')}`;
const MiB = 1024 * 1024;

let n = 0;
/** A store under a fresh prefix of the test bucket. */
function freshStore(options: Partial<S3StoreOptions> = {}): S3Store {
  return new S3Store({ bucket: BUCKET, prefix: `t${n++}/data`, endpoint: ENDPOINT, credentials: CREDENTIALS, ...options });
}

async function listAll(store: S3Store, prefix = ''): Promise<ObjectInfo[]> {
  const out: ObjectInfo[] = [];
  for await (const o of store.list(prefix)) out.push(o);
  return out;
}

async function incompleteUploads(store: S3Store, key: string): Promise<string[]> {
  const res = await store.client.send(new ListMultipartUploadsCommand({ Bucket: store.bucket, Prefix: store.base + key }));
  return (res.Uploads ?? []).filter((u) => u.Key === store.base + key).map((u) => u.UploadId!);
}

async function codeOf(p: Promise<unknown>): Promise<{ code: string; hint?: string; message: string }> {
  try {
    await p;
  } catch (err) {
    if (isAegisError(err)) return { code: err.code, message: err.message, ...(err.hint ? { hint: err.hint } : {}) };
    return { code: `not an AegisError: ${String(err)}`, message: String(err) };
  }
  return { code: 'no error', message: '' };
}

beforeAll(async () => {
  const answer = await fetch(ENDPOINT, { signal: AbortSignal.timeout(5000) }).then(
    (r) => `HTTP ${r.status}`,
    (err: unknown) => `no answer (${(err as Error).message})`,
  );
  expect(answer, `the S3 test server at ${ENDPOINT} (moto) does not answer: run scripts/services.sh`).toMatch(/^HTTP 200/);
  await freshStore().client.send(new CreateBucketCommand({ Bucket: BUCKET }));
});

describe('S3Store on moto', () => {
  it('round-trips a small object in one PUT, with head, uriOf and progress', async () => {
    const store = freshStore();
    const body = Buffer.from('hello, s3\n');
    const progress: number[] = [];
    expect(await store.put('docs/hello.txt', body, { contentType: 'text/plain', onProgress: (b) => progress.push(b) })).toEqual({ key: 'docs/hello.txt', size: body.length });
    expect(progress.at(-1)).toBe(body.length);
    expect(await readAll(await store.get('docs/hello.txt'))).toEqual(body);
    expect(await store.head('docs/hello.txt')).toEqual({ key: 'docs/hello.txt', size: body.length });
    expect(store.uriOf('docs/hello.txt')).toBe(`s3://${BUCKET}/${store.base}docs/hello.txt`);
    const raw = await store.client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: `${store.base}docs/hello.txt` }));
    expect(raw.ContentType).toBe('text/plain');
    expect(raw.ETag).not.toMatch(/-\d+"?$/); // a single PUT, not a multipart upload
  });

  it('streams 40 MiB up as a multipart upload and back down, byte for byte', async () => {
    const store = freshStore();
    const total = 40 * MiB + 12_345;
    const { stream, digest } = generatedStream('s3-large', total);
    const progress: number[] = [];
    const info = await store.put('model-archives/big/1/model.tar.gz', stream, { onProgress: (b) => progress.push(b) });
    expect(info).toEqual({ key: 'model-archives/big/1/model.tar.gz', size: total });
    expect(progress.length).toBeGreaterThanOrEqual(3);
    expect(progress.at(-1)).toBe(total);
    const raw = await store.client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: `${store.base}model-archives/big/1/model.tar.gz` }));
    expect(raw.ETag).toMatch(/-3"?$/); // 16 MiB parts: 3 of them
    expect(await store.head('model-archives/big/1/model.tar.gz')).toEqual({ key: 'model-archives/big/1/model.tar.gz', size: total });
    expect(await sha256Of(await store.get('model-archives/big/1/model.tar.gz'))).toBe(digest());
    expect(await incompleteUploads(store, 'model-archives/big/1/model.tar.gz')).toEqual([]);
  });

  it('lists by prefix in key order across pages', async () => {
    const store = freshStore({ pageSize: 2 });
    const keys = ['m/b', 'm/a/2', 'm/a/1', 'm-x', 'm/c', 'other', 'm/ü'];
    for (const key of keys) await store.put(key, Buffer.from(key));
    const send = vi.spyOn(store.client, 'send');
    const listed = await listAll(store, 'm/');
    const pages = send.mock.calls.filter(([cmd]) => cmd instanceof ListObjectsV2Command).length;
    send.mockRestore();
    expect(listed).toEqual(['m/a/1', 'm/a/2', 'm/b', 'm/c', 'm/ü'].map((key) => ({ key, size: Buffer.byteLength(key) })));
    expect(pages).toBe(3);
    expect((await listAll(store)).map((o) => o.key)).toEqual(['m-x', 'm/a/1', 'm/a/2', 'm/b', 'm/c', 'm/ü', 'other']);
    expect(await listAll(store, 'nothing/')).toEqual([]);
    // Objects outside the store's prefix (same bucket) are not the store's.
    expect(await listAll(freshStore())).toEqual([]);
  });

  it('reports missing keys: get → STORE_NOT_FOUND, head → undefined, delete → no error', async () => {
    const store = freshStore();
    const err = await codeOf(store.get('no/such/key'));
    expect(err.code).toBe('STORE_NOT_FOUND');
    expect(err.message).toContain(`s3://${BUCKET}/${store.base}no/such/key`);
    expect(err.hint).toBeTruthy();
    expect(await store.head('no/such/key')).toBeUndefined();
    await store.delete('no/such/key');
    await store.put('gone', Buffer.from('x'));
    await store.delete('gone');
    expect(await store.head('gone')).toBeUndefined();
  });

  it('a missing bucket is STORE_UNREACHABLE naming the bucket', async () => {
    const store = new S3Store({ bucket: `${BUCKET}-missing`, endpoint: ENDPOINT, credentials: CREDENTIALS });
    const err = await codeOf(store.get('k'));
    expect(err.code).toBe('STORE_UNREACHABLE');
    expect(err.hint).toContain(`${BUCKET}-missing`);
    expect((await codeOf(listAll(store))).code).toBe('STORE_UNREACHABLE');
  });

  it('an endpoint that does not answer is STORE_UNREACHABLE at once, with a hint naming it', { timeout: 20_000 }, async () => {
    const port = await new Promise<number>((resolve) => {
      const srv = createServer().listen(0, '127.0.0.1', () => {
        const { port } = srv.address() as { port: number };
        srv.close(() => resolve(port));
      });
    });
    const endpoint = `http://127.0.0.1:${port}`;
    const store = new S3Store({ bucket: BUCKET, endpoint, credentials: CREDENTIALS, maxAttempts: 1, connectionTimeoutMs: 2000 });
    for (const op of [() => store.get('k'), () => store.head('k'), () => store.put('k', Buffer.from('x')), () => listAll(store), () => store.delete('k')]) {
      const err = await codeOf(op());
      expect(err.code).toBe('STORE_UNREACHABLE');
      expect(err.hint).toContain(endpoint);
      expect(err.hint).toContain(BUCKET);
    }
  });

  it('opens through openStore with AEGIS_S3_* settings, and splitObjectUri reads an object URI', async () => {
    const store = openStore(`s3://${BUCKET}/t${n++}/via-env`, { env: { AEGIS_S3_ENDPOINT: ENDPOINT }, s3: { credentials: CREDENTIALS } });
    await store.put('model-archives/x/1/model.tar.gz', Buffer.from('archive'));
    const { store: parent, key } = splitObjectUri(store.uriOf('model-archives/x/1/model.tar.gz'), { env: { AEGIS_S3_ENDPOINT: ENDPOINT }, s3: { credentials: CREDENTIALS } });
    expect(key).toBe('model.tar.gz');
    expect((await readAll(await parent.get(key))).toString()).toBe('archive');
  });

  it('replaces an object atomically: during a multipart overwrite readers get the old version whole', async () => {
    const store = freshStore({ partSize: 5 * MiB, queueSize: 2 });
    const v1 = bytes('v1', 1000);
    await store.put('model.bin', v1);
    const body = new PassThrough();
    const watch = progressWatch();
    const put = store.put('model.bin', body, { onProgress: watch.onProgress });
    body.write(bytes('v2a', 6 * MiB));
    await watch.reached(5 * MiB, put); // part 1 is uploaded: the multipart upload exists
    expect(await incompleteUploads(store, 'model.bin')).toHaveLength(1);
    expect(await readAll(await store.get('model.bin'))).toEqual(v1);
    expect(await store.head('model.bin')).toEqual({ key: 'model.bin', size: 1000 });
    body.end(bytes('v2b', 1000));
    expect(await put).toEqual({ key: 'model.bin', size: 6 * MiB + 1000 });
    const v2 = createHash('sha256').update(bytes('v2a', 6 * MiB)).update(bytes('v2b', 1000)).digest('hex');
    expect(await sha256Of(await store.get('model.bin'))).toBe(v2); // (toEqual on MiBs of bytes is slow)
    expect(await incompleteUploads(store, 'model.bin')).toEqual([]);
  });

  it('a source stream failing mid-upload leaves no object and aborts the multipart upload', async () => {
    const store = freshStore({ partSize: 5 * MiB, queueSize: 2 });
    const body = new PassThrough();
    const watch = progressWatch();
    const put = store.put('broken/model.tar.gz', body, { onProgress: watch.onProgress });
    body.write(bytes('broken', 11 * MiB));
    await watch.reached(5 * MiB, put);
    expect(await incompleteUploads(store, 'broken/model.tar.gz')).toHaveLength(1); // the check below can see one
    body.destroy(new Error('upstream connection reset'));

    const err = await codeOf(put);
    expect(err.code).toBe('STORE_WRITE_FAILED');
    expect(err.message).toContain('upstream connection reset');
    expect(await store.head('broken/model.tar.gz')).toBeUndefined();
    expect(await listAll(store)).toEqual([]);
    expect(await incompleteUploads(store, 'broken/model.tar.gz')).toEqual([]);
  });

  it('a source failing before the upload reads it is STORE_WRITE_FAILED, not a crash', async () => {
    const store = freshStore();
    const early = new PassThrough();
    const put = store.put('early.bin', early);
    expect(early.listenerCount('error')).toBeGreaterThan(0);
    early.destroy(new Error('no data for you'));
    const err = await codeOf(put);
    expect(err.code).toBe('STORE_WRITE_FAILED');
    expect(err.message).toContain('no data for you');
    expect(await store.head('early.bin')).toBeUndefined();
  });

  it('a stream shorter than contentLength is not stored', async () => {
    const store = freshStore();
    const { stream } = generatedStream('short', 1000);
    const err = await codeOf(store.put('short.bin', stream, { contentLength: 5000 }));
    expect(err.code).toBe('STORE_WRITE_FAILED');
    expect(err.message).toMatch(/expected 5000 bytes, got 1000/);
    expect(await store.head('short.bin')).toBeUndefined();
  });

  it('a process killed with SIGKILL mid-push leaves no visible object; sweepIncompleteUploads clears its upload', async () => {
    const store = freshStore();
    const key = 'model-archives/killed/1/model.tar.gz';
    const { progress, signal, stderr } = await pushAndKill({
      storeUri: store.uri,
      key,
      stallBytes: 12 * MiB,
      killAfterBytes: 5 * MiB,
      partSize: 5 * MiB,
      env: CHILD_ENV,
    });
    expect(signal, stderr).toBe('SIGKILL');
    expect(progress).toBeGreaterThanOrEqual(5 * MiB);

    expect(await store.head(key)).toBeUndefined();
    expect((await codeOf(store.get(key))).code).toBe('STORE_NOT_FOUND');
    expect(await listAll(store)).toEqual([]);
    // Nothing could abort it: the upload is left incomplete, and invisible.
    expect(await incompleteUploads(store, key)).toHaveLength(1);
    // moto reports a fixed Initiated date (2010), so the age filter is unit-tested (s3.test.ts);
    // a negative age sweeps every upload under the prefix, whatever the clocks say.
    expect(await store.sweepIncompleteUploads(-3600_000)).toBe(1);
    expect(await incompleteUploads(store, key)).toEqual([]);
    expect(await store.head(key)).toBeUndefined();
  });
});
