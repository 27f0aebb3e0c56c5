import { randomBytes } from 'node:crypto';
import type { Dirent } from 'node:fs';
import { mkdir, open, readdir, rename, rmdir, stat, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { AegisError } from '../../errors.js';
import { childLogger } from '../../log.js';
import { compareKeys, TEMP_DIR, validateKey, validatePrefix } from '../keys.js';
import type { ArtifactStore, ObjectInfo, PutOptions } from '../types.js';

/**
 * ArtifactStore on a local folder (file://). A put streams into
 * `<root>/.tmp/<random>`, fsyncs, and renames into place, so a reader sees
 * the old object or the new one, never part of one; a writer that dies
 * leaves only a temp file, which list/get/head never show and `sweepTemp`
 * removes. Objects are plain files at `<root>/<key>`.
 */
export class FileStore implements ArtifactStore {
  readonly uri: string;
  /** Absolute path of the store's folder. */
  readonly root: string;

  constructor(root: string) {
    this.root = resolve(root);
    this.uri = pathToFileURL(this.root).href;
  }

  async put(key: string, body: Readable | Buffer, options: PutOptions = {}): Promise<ObjectInfo> {
    const target = this.pathOf(key);
    const tmpDir = join(this.root, TEMP_DIR);
    const tmp = join(tmpDir, `${process.pid}-${randomBytes(8).toString('hex')}`);
    let fh: FileHandle | undefined;
    let size = 0;
    let phase: 'disk' | 'source' = 'disk';
    // Until the loop below reads it, a failing source would have no 'error' listener and crash
    // the process; its error still surfaces through the loop's iterator.
    const ignore = (): void => undefined;
    if (!Buffer.isBuffer(body)) body.on('error', ignore);
    try {
      await mkdir(tmpDir, { recursive: true });
      fh = await open(tmp, 'wx', 0o644);
      if (Buffer.isBuffer(body)) {
        await writeAll(fh, body);
        size = body.length;
        options.onProgress?.(size);
      } else {
        phase = 'source';
        for await (const chunk of body as AsyncIterable<unknown>) {
          phase = 'disk';
          const buf = toBuffer(chunk);
          await writeAll(fh, buf);
          size += buf.length;
          options.onProgress?.(size);
          phase = 'source';
        }
        phase = 'disk';
      }
      if (options.contentLength !== undefined && size !== options.contentLength) {
        throw new AegisError('STORE_WRITE_FAILED', `not stored ${this.uriOf(key)}: expected ${options.contentLength} bytes, got ${size}`, {
          hint: 'The source ended early or was longer than announced; nothing was stored. Retry once the source is complete.',
          details: { key, expected: options.contentLength, actual: size },
        });
      }
      await fh.sync();
      await fh.close();
      fh = undefined;
      await moveIntoPlace(tmp, target);
    } catch (err) {
      await fh?.close().catch(() => undefined);
      await unlink(tmp).catch(() => undefined);
      if (!Buffer.isBuffer(body) && !body.destroyed) body.destroy();
      throw writeError(err, this, key, phase);
    } finally {
      if (!Buffer.isBuffer(body)) body.off('error', ignore);
    }
    childLogger('store').debug({ event: 'store_put', uri: this.uriOf(key), bytes: size }, 'object stored');
    return { key, size };
  }

  async get(key: string): Promise<Readable> {
    const path = this.pathOf(key);
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (err) {
      if (isMissing(err)) throw notFound(this, key);
      throw readError(err, this, key);
    }
    // The open handle keeps this version readable even if a put replaces it meanwhile.
    const st = await fh.stat().catch(async (err: unknown) => {
      await fh.close();
      throw readError(err, this, key);
    });
    if (!st.isFile()) {
      await fh.close();
      throw notFound(this, key);
    }
    return fh.createReadStream();
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    const path = this.pathOf(key);
    try {
      const st = await stat(path);
      return st.isFile() ? { key, size: st.size } : undefined;
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw readError(err, this, key);
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    validatePrefix(prefix);
    const slash = prefix.lastIndexOf('/');
    const start = slash < 0 ? '' : prefix.slice(0, slash);
    if (start.split('/')[0] === TEMP_DIR) return; // in-flight writes are not objects
    yield* this.walk(start, prefix);
  }

  async delete(key: string): Promise<void> {
    const path = this.pathOf(key);
    try {
      await unlink(path);
    } catch (err) {
      if (isMissing(err)) return;
      const st = await stat(path).catch(() => undefined);
      if (st && !st.isFile()) return; // the key names a folder of other keys, not an object
      throw writeError(err, this, key, 'disk');
    }
    // Remove folders the delete left empty, up to (not including) the root.
    for (let dir = dirname(path); dir !== this.root && dir.startsWith(this.root); dir = dirname(dir)) {
      try {
        await rmdir(dir);
      } catch {
        break; // not empty (or in use by a concurrent put): leave it
      }
    }
  }

  uriOf(key: string): string {
    return pathToFileURL(this.pathOf(key)).href;
  }

  localPath(key: string): string {
    return this.pathOf(key);
  }

  /**
   * Removes temp files of writes that died (crash, kill -9) and were last
   * written more than `olderThanMs` ago. Returns how many were removed.
   * Choose an age longer than any stall of a live writer.
   */
  async sweepTemp(olderThanMs: number): Promise<number> {
    const dir = join(this.root, TEMP_DIR);
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (err) {
      if (isMissing(err)) return 0;
      throw readError(err, this, TEMP_DIR);
    }
    const cutoff = Date.now() - olderThanMs;
    let removed = 0;
    for (const name of names) {
      const path = join(dir, name);
      const st = await stat(path).catch(() => undefined);
      if (!st?.isFile() || st.mtimeMs > cutoff) continue;
      try {
        await unlink(path);
        removed++;
      } catch (err) {
        if (!isMissing(err)) throw writeError(err, this, `${TEMP_DIR}/${name}`, 'disk');
      }
    }
    if (removed) childLogger('store').info({ event: 'store_temp_swept', uri: this.uri, removed }, 'removed temp files of interrupted writes');
    return removed;
  }

  private pathOf(key: string): string {
    return join(this.root, validateKey(key)); // a valid key has no empty, `.` or `..` segment: joining it whole is joining its segments
  }

  /** Depth-first walk in key order: a folder `d` sorts as `d/`, which is where its keys fall. */
  private async *walk(dirKey: string, prefix: string): AsyncGenerator<ObjectInfo> {
    const dir = dirKey ? join(this.root, ...dirKey.split('/')) : this.root;
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      if (isMissing(err)) return;
      throw readError(err, this, dirKey || '.');
    }
    const items = entries
      .filter((e) => (e.isFile() || e.isDirectory()) && !(dirKey === '' && e.name === TEMP_DIR) && isKeySegment(e.name))
      .map((e) => ({ name: e.name, folder: e.isDirectory(), order: e.isDirectory() ? `${e.name}/` : e.name }))
      .sort((a, b) => compareKeys(a.order, b.order));
    for (const item of items) {
      const key = dirKey ? `${dirKey}/${item.name}` : item.name;
      if (item.folder) {
        const folder = `${key}/`;
        if (folder.startsWith(prefix) || prefix.startsWith(folder)) yield* this.walk(key, prefix);
      } else if (key.startsWith(prefix)) {
        const st = await stat(join(dir, item.name)).catch(() => undefined);
        if (st?.isFile()) yield { key, size: st.size }; // gone meanwhile: skip
      }
    }
  }
}

async function writeAll(fh: FileHandle, buf: Buffer): Promise<void> {
  let off = 0;
  while (off < buf.length) {
    const { bytesWritten } = await fh.write(buf, off, buf.length - off);
    off += bytesWritten;
  }
}

function toBuffer(chunk: unknown): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (typeof chunk === 'string') return Buffer.from(chunk, 'utf8');
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  throw new TypeError(`stream chunk must be bytes or a string, got ${typeof chunk}`);
}

/** Renames the finished temp file to its key, creating folders; durable once it returns. */
async function moveIntoPlace(tmp: string, target: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    await mkdir(dirname(target), { recursive: true });
    try {
      await rename(tmp, target);
      break;
    } catch (err) {
      // A concurrent delete may have removed the (then empty) parent folder: make it again.
      if (errnoOf(err) !== 'ENOENT' || attempt >= 3) throw err;
    }
  }
  await fsyncDir(dirname(target));
}

async function fsyncDir(dir: string): Promise<void> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch {
    // Some filesystems do not support syncing a folder; the rename itself already happened.
  } finally {
    await fh?.close().catch(() => undefined);
  }
}

function isKeySegment(name: string): boolean {
  return name !== '' && name !== '.' && name !== '..' && !name.includes('\\') && !name.includes('\0');
}

function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

function isMissing(err: unknown): boolean {
  const code = errnoOf(err);
  return code === 'ENOENT' || code === 'ENOTDIR';
}

function notFound(store: FileStore, key: string): AegisError {
  return new AegisError('STORE_NOT_FOUND', `no object ${store.uriOf(key)}`, {
    hint: `Check the key and the store (${store.uri}); list what is there with the store's list command.`,
    details: { store: store.uri, key },
  });
}

function readError(err: unknown, store: FileStore, key: string): AegisError {
  return new AegisError('STORE_UNREACHABLE', `cannot read ${key} in ${store.uri}: ${(err as Error).message}`, {
    cause: err,
    hint: `Check that the folder ${store.root} exists and that you have permission to read it.`,
    details: { store: store.uri, key, errno: errnoOf(err) },
  });
}

function writeError(err: unknown, store: FileStore, key: string, phase: 'disk' | 'source'): AegisError {
  if (err instanceof AegisError) return err;
  const code = errnoOf(err);
  const message = (err as Error | undefined)?.message ?? String(err);
  let hint: string;
  if (phase === 'source') hint = 'Reading the data to store failed, so nothing was stored; fix the source and retry.';
  else if (code === 'ENOSPC' || code === 'EDQUOT') hint = `The disk holding ${store.root} is full: free space (and run sweepTemp to drop leftovers of interrupted writes), then retry.`;
  else if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') hint = `Check that the folder ${store.root} is writable by this user.`;
  else if (code === 'EISDIR' || code === 'ENOTDIR' || code === 'EEXIST')
    hint = 'A file store cannot hold both `a` and `a/…`: another key uses this path as a folder or a file. Choose a different key.';
  else hint = `Check the folder ${store.root} and retry.`;
  return new AegisError('STORE_WRITE_FAILED', `cannot store ${key} in ${store.uri}: ${message}`, {
    cause: err,
    hint,
    details: { store: store.uri, key, ...(code ? { errno: code } : {}) },
  });
}
