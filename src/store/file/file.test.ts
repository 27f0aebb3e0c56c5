import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isAegisError } from '../../errors.js';
import { tempDir } from '../../test-support/fs.js';
import { bytes } from '../../test-support/models.js';
import { digest, generatedStream, progressWatch, pushAndKill, readAll, sha256Of } from '../../test-support/store.js';
import type { ObjectInfo } from '../types.js';
import { FileStore } from './index.js';

let work: Awaited<ReturnType<typeof tempDir>>;
let store: FileStore;

beforeEach(async () => {
  work = await tempDir('aegis-filestore-');
  store = new FileStore(join(work.path, 'artifacts'));
});
afterEach(async () => work.cleanup());

async function listAll(s: FileStore, prefix = ''): Promise<ObjectInfo[]> {
  const out: ObjectInfo[] = [];
  for await (const o of s.list(prefix)) out.push(o);
  return out;
}

async function expectCode(p: Promise<unknown> | (() => unknown), code: string): Promise<Error> {
  let caught: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    caught = err;
  }
  expect(caught, `expected AegisError ${code}`).toBeDefined();
  expect(isAegisError(caught) ? caught.code : String(caught)).toBe(code);
  return caught as Error;
}

const tempFiles = async () => readdir(join(store.root, '.tmp')).catch(() => [] as string[]);

describe('FileStore', () => {
  it('round-trips a buffer and a stream, with head, localPath, uriOf and progress', async () => {
    const small = Buffer.from('hello, store\n');
    expect(await store.put('docs/hello.txt', small)).toEqual({ key: 'docs/hello.txt', size: small.length });
    expect(await readAll(await store.get('docs/hello.txt'))).toEqual(small);
    expect(await store.head('docs/hello.txt')).toEqual({ key: 'docs/hello.txt', size: small.length });

    const { stream, digest } = generatedStream('file-rt', 5 * 1024 * 1024 + 123);
    const progress: number[] = [];
    const info = await store.put('model-archives/m/1/model.tar.gz', stream, { onProgress: (n) => progress.push(n) });
    expect(info.size).toBe(5 * 1024 * 1024 + 123);
    expect(progress.length).toBeGreaterThan(1);
    expect(progress.at(-1)).toBe(info.size);
    expect([...progress].sort((a, b) => a - b)).toEqual(progress);
    expect(await sha256Of(await store.get('model-archives/m/1/model.tar.gz'))).toBe(digest());

    const path = store.localPath('model-archives/m/1/model.tar.gz');
    expect(path).toBe(join(store.root, 'model-archives', 'm', '1', 'model.tar.gz'));
    expect((await stat(path)).size).toBe(info.size);
    expect(store.uriOf('docs/hello.txt')).toBe(pathToFileURL(join(store.root, 'docs', 'hello.txt')).href);
    expect(store.uri).toBe(pathToFileURL(store.root).href);
    expect(await tempFiles()).toEqual([]);
  });

  it('stores an empty object and strings from a text stream', async () => {
    expect(await store.put('empty', Buffer.alloc(0))).toEqual({ key: 'empty', size: 0 });
    expect((await readAll(await store.get('empty'))).length).toBe(0);
    await store.put('text', Readable.from(['ab', 'ç']));
    expect((await readAll(await store.get('text'))).toString('utf8')).toBe('abç');
  });

  it('never shows an object while it is being written', async () => {
    const body = new PassThrough();
    const watch = progressWatch();
    const put = store.put('a/b/new.bin', body, { onProgress: watch.onProgress });
    body.write(bytes('part1', 100_000));
    await watch.reached(100_000, put);

    expect(await store.head('a/b/new.bin')).toBeUndefined();
    await expectCode(store.get('a/b/new.bin'), 'STORE_NOT_FOUND');
    expect(await listAll(store)).toEqual([]);
    expect(await tempFiles()).toHaveLength(1);

    body.end(bytes('part2', 50_000));
    expect(await put).toEqual({ key: 'a/b/new.bin', size: 150_000 });
    expect(digest(await readAll(await store.get('a/b/new.bin')))).toBe(digest(Buffer.concat([bytes('part1', 100_000), bytes('part2', 50_000)])));
    expect(await listAll(store)).toEqual([{ key: 'a/b/new.bin', size: 150_000 }]);
    expect(await tempFiles()).toEqual([]);
  });

  it('replaces an object atomically: readers see the old version whole until the new one is complete', async () => {
    const v1 = bytes('v1', 300_000);
    const v2 = bytes('v2', 200_000);
    await store.put('model.bin', v1);

    const body = new PassThrough();
    const watch = progressWatch();
    const put = store.put('model.bin', body, { onProgress: watch.onProgress });
    body.write(v2.subarray(0, 100_000));
    await watch.reached(100_000, put);

    expect(digest(await readAll(await store.get('model.bin')))).toBe(digest(v1));
    expect(await store.head('model.bin')).toEqual({ key: 'model.bin', size: v1.length });
    const openedBefore = await store.get('model.bin'); // opened before the swap, read after it

    body.end(v2.subarray(100_000));
    await put;
    expect(digest(await readAll(openedBefore))).toBe(digest(v1));
    expect(digest(await readAll(await store.get('model.bin')))).toBe(digest(v2));
    expect(await store.head('model.bin')).toEqual({ key: 'model.bin', size: v2.length });
  });

  it('leaves nothing visible, and no temp file, when the source stream fails', async () => {
    await store.put('keep/other.bin', Buffer.from('other'));
    const body = new PassThrough();
    const watch = progressWatch();
    const put = store.put('keep/broken.bin', body, { onProgress: watch.onProgress });
    body.write(bytes('partial', 64_000));
    await watch.reached(64_000, put);
    body.destroy(new Error('upstream connection reset'));

    const err = await expectCode(put, 'STORE_WRITE_FAILED');
    expect(err.message).toContain('upstream connection reset');
    expect((err as { hint?: string }).hint).toMatch(/nothing was stored/);
    expect(await store.head('keep/broken.bin')).toBeUndefined();
    expect(await listAll(store)).toEqual([{ key: 'keep/other.bin', size: 5 }]);
    expect(await tempFiles()).toEqual([]);
  });

  it('fails a stream that errors before any byte, and one whose length differs from contentLength', async () => {
    // A source that fails before put reads from it (put is still creating folders) must not
    // crash the process with an unheard 'error' event: put listens from the moment it is called.
    const early = new PassThrough();
    const put = store.put('early.bin', early);
    expect(early.listenerCount('error')).toBeGreaterThan(0);
    early.destroy(new Error('no data for you'));
    expect((await expectCode(put, 'STORE_WRITE_FAILED')).message).toContain('no data for you');

    const short = Readable.from([bytes('short', 1000)]);
    const err = await expectCode(store.put('short.bin', short, { contentLength: 2000 }), 'STORE_WRITE_FAILED');
    expect(err.message).toMatch(/expected 2000 bytes, got 1000/);
    expect(await listAll(store)).toEqual([]);
    expect(await tempFiles()).toEqual([]);
  });

  it.each([
    ['', 'empty'],
    ['/etc/passwd', 'absolute'],
    ['../outside', '..'],
    ['a/../../outside', '..'],
    ['a/./b', '.'],
    ['a//b', 'empty segment'],
    ['a/b/', 'empty segment'],
    ['a\\b', 'backslash'],
    ['a\0b', 'NUL'],
    ['.tmp/123', 'reserved'],
    ['.tmp', 'reserved'],
  ])('rejects the key %j (%s) everywhere', async (key) => {
    await expectCode(store.put(key, Buffer.from('x')), 'STORE_KEY_INVALID');
    await expectCode(store.get(key), 'STORE_KEY_INVALID');
    await expectCode(store.head(key), 'STORE_KEY_INVALID');
    await expectCode(store.delete(key), 'STORE_KEY_INVALID');
    await expectCode(() => store.localPath(key), 'STORE_KEY_INVALID');
    await expectCode(() => store.uriOf(key), 'STORE_KEY_INVALID');
    expect(existsSync(join(work.path, 'outside'))).toBe(false);
    expect(existsSync(store.root) ? await listAll(store) : []).toEqual([]);
  });

  it.each(['/abs', 'a//b', '../x', 'a/../b', 'a\\b'])('rejects the list prefix %j', async (prefix) => {
    await expectCode(listAll(store, prefix), 'STORE_KEY_INVALID');
  });

  it('reports missing objects: get → STORE_NOT_FOUND with a hint, head → undefined, delete → no error', async () => {
    const err = await expectCode(store.get('no/such/object'), 'STORE_NOT_FOUND');
    expect(err.message).toContain('no/such/object');
    expect((err as { hint?: string }).hint).toBeTruthy();
    expect(await store.head('no/such/object')).toBeUndefined();
    await store.delete('no/such/object');
    expect(await listAll(store)).toEqual([]); // the root does not even exist yet

    await store.put('dir/file', Buffer.from('x'));
    await expectCode(store.get('dir'), 'STORE_NOT_FOUND'); // a folder of keys is not an object
    expect(await store.head('dir')).toBeUndefined();
    await expectCode(store.get('dir/file/deeper'), 'STORE_NOT_FOUND');
    await store.delete('dir');
    expect(await store.head('dir/file')).toEqual({ key: 'dir/file', size: 1 });
  });

  it('lists in byte order of keys, by prefix, never the temp area', async () => {
    const keys = ['b', 'a/b', 'a-c', 'a/a/z', 'ab', 'z/ü', 'z/z', 'model-archives/x/1/model.tar.gz', 'model-archives/xy/1/model.tar.gz'];
    for (const [i, key] of keys.entries()) await store.put(key, bytes(key, i + 1));
    await mkdir(join(store.root, '.tmp'), { recursive: true });
    await writeFile(join(store.root, '.tmp', 'leftover'), 'half an object');
    await mkdir(join(store.root, 'empty-folder'), { recursive: true });

    const sizeOf = (k: string) => keys.indexOf(k) + 1;
    const expected = ['a-c', 'a/a/z', 'a/b', 'ab', 'b', 'model-archives/x/1/model.tar.gz', 'model-archives/xy/1/model.tar.gz', 'z/z', 'z/ü'];
    expect(await listAll(store)).toEqual(expected.map((key) => ({ key, size: sizeOf(key) })));
    expect((await listAll(store, 'a/')).map((o) => o.key)).toEqual(['a/a/z', 'a/b']);
    expect((await listAll(store, 'a')).map((o) => o.key)).toEqual(['a-c', 'a/a/z', 'a/b', 'ab']);
    expect((await listAll(store, 'model-archives/x')).map((o) => o.key)).toEqual(['model-archives/x/1/model.tar.gz', 'model-archives/xy/1/model.tar.gz']);
    expect((await listAll(store, 'model-archives/x/')).map((o) => o.key)).toEqual(['model-archives/x/1/model.tar.gz']);
    expect(await listAll(store, 'nothing/here/')).toEqual([]);
    expect(await listAll(store, '.tmp/')).toEqual([]);
    expect(await listAll(store, '.tm')).toEqual([]);
  });

  it('deletes an object and the folders it leaves empty, but not the root or folders still in use', async () => {
    await store.put('a/b/c/one', Buffer.from('1'));
    await store.put('a/two', Buffer.from('2'));
    await store.delete('a/b/c/one');
    expect(await store.head('a/b/c/one')).toBeUndefined();
    expect(existsSync(join(store.root, 'a', 'b'))).toBe(false);
    expect(existsSync(join(store.root, 'a', 'two'))).toBe(true);
    await store.delete('a/two');
    expect(existsSync(join(store.root, 'a'))).toBe(false);
    expect(existsSync(store.root)).toBe(true);
    await store.put('a/b/again', Buffer.from('3')); // folders come back on the next put
    expect(await store.head('a/b/again')).toEqual({ key: 'a/b/again', size: 1 });
  });

  it('refuses a key that collides with a folder of other keys, with a hint', async () => {
    await store.put('x/y', Buffer.from('1'));
    const asFolder = await expectCode(store.put('x', Buffer.from('2')), 'STORE_WRITE_FAILED');
    expect((asFolder as { hint?: string }).hint).toMatch(/cannot hold both/);
    const underFile = await expectCode(store.put('x/y/z', Buffer.from('3')), 'STORE_WRITE_FAILED');
    expect((underFile as { hint?: string }).hint).toMatch(/cannot hold both/);
    expect(await listAll(store)).toEqual([{ key: 'x/y', size: 1 }]);
    expect(await tempFiles()).toEqual([]);
  });

  it('keeps concurrent writers of one key whole: the last rename wins, never a mix', async () => {
    const versions = [bytes('c1', 400_000), bytes('c2', 400_000), bytes('c3', 400_000)];
    await Promise.all(versions.map((v) => store.put('race.bin', Readable.from([v.subarray(0, 200_000), v.subarray(200_000)]))));
    const got = await readAll(await store.get('race.bin'));
    expect(versions.some((v) => v.equals(got))).toBe(true);
    expect(await tempFiles()).toEqual([]);
  });

  it('sweepTemp removes temp files older than the given age and keeps fresh ones', async () => {
    const tmp = join(store.root, '.tmp');
    await mkdir(tmp, { recursive: true });
    await writeFile(join(tmp, 'old'), 'x');
    await writeFile(join(tmp, 'fresh'), 'y');
    const hourAgo = new Date(Date.now() - 3600_000);
    await utimes(join(tmp, 'old'), hourAgo, hourAgo);
    expect(await store.sweepTemp(600_000)).toBe(1);
    expect(await readdir(tmp)).toEqual(['fresh']);
    expect(await new FileStore(join(work.path, 'never-created')).sweepTemp(0)).toBe(0);
  });

  it('a writer killed with SIGKILL mid-put leaves no visible object, only a temp file that sweepTemp removes', async () => {
    await store.put('model-archives/m/1/other', Buffer.from('unrelated'));
    const { progress, signal, stderr } = await pushAndKill({
      storeUri: store.uri,
      key: 'model-archives/m/1/model.tar.gz',
      stallBytes: 3 * 1024 * 1024,
      killAfterBytes: 2 * 1024 * 1024,
    });
    expect(signal, stderr).toBe('SIGKILL');
    expect(progress).toBeGreaterThanOrEqual(2 * 1024 * 1024);

    expect(await store.head('model-archives/m/1/model.tar.gz')).toBeUndefined();
    await expectCode(store.get('model-archives/m/1/model.tar.gz'), 'STORE_NOT_FOUND');
    expect((await listAll(store)).map((o) => o.key)).toEqual(['model-archives/m/1/other']);
    const leftovers = await tempFiles();
    expect(leftovers).toHaveLength(1);
    const leftover = join(store.root, '.tmp', leftovers[0]!);
    expect((await stat(leftover)).size).toBeGreaterThanOrEqual(2 * 1024 * 1024);
    expect((await readFile(leftover)).subarray(0, 16)).toEqual(bytes('push-child:0', 16));

    const hourAgo = new Date(Date.now() - 3600_000);
    await utimes(leftover, hourAgo, hourAgo);
    expect(await store.sweepTemp(600_000)).toBe(1);
    expect(await tempFiles()).toEqual([]);
  });
});
