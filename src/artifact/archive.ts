import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, realpath, symlink } from 'node:fs/promises';
import { dirname, join, posix, resolve, sep } from 'node:path';
import { Transform, Writable, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, crc32 } from 'node:zlib';
import { Gzip } from 'fflate';
import tar from 'tar-stream';
import { AegisError } from '../errors.js';

/**
 * Deterministic model archives (`model.tar.gz`) and their safe extraction.
 *
 * Determinism: entries sorted by UTF-8 bytes, regular files only, mode 0644,
 * mtime 0, uid/gid 0, no user/group names (ustar, pax only for long or
 * non-ASCII names), gzip by fflate (pure JS, so the compressed bytes do not
 * depend on the platform's zlib build) at a fixed level with mtime 0 and no
 * file name. The same files give the same bytes on any machine.
 */
export const GZIP_LEVEL = 6;

export interface ArchiveEntry {
  /** POSIX path inside the archive. */
  name: string;
  /** File to read. */
  path: string;
  size: number;
}

export interface ArchiveResult {
  sha256: Buffer;
  size: number;
}

/** Deflate with fflate as a stream transform (synchronous per chunk; zlib-compatible output). */
class GzipTransform extends Transform {
  private readonly gz: Gzip;
  constructor(level: number) {
    super();
    this.gz = new Gzip({ level: level as 6, mtime: 0 }, (chunk) => {
      this.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    });
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.gz.push(chunk);
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }
  override _flush(cb: TransformCallback): void {
    try {
      this.gz.push(new Uint8Array(0), true);
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }
}

/** Passes bytes through while hashing and counting them. */
export class HashTap extends Transform {
  readonly hash: Hash = createHash('sha256');
  bytes = 0;
  private readonly onBytes: ((n: number) => void) | undefined;
  constructor(onBytes?: (n: number) => void) {
    super();
    this.onBytes = onBytes;
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    this.onBytes?.(this.bytes);
    cb(null, chunk);
  }
}

/** Reads a stream to its end, returning the SHA-256 and byte count of what it carried. */
export async function hashStream(source: NodeJS.ReadableStream, onBytes?: (n: number) => void): Promise<{ sha256: Buffer; size: number }> {
  const tap = new HashTap(onBytes);
  await pipeline(source, tap, new Writable({ write: (_c, _e, cb) => cb() }));
  return { sha256: tap.hash.digest(), size: tap.bytes };
}

export function sortEntries<T extends { name: string }>(entries: readonly T[]): T[] {
  return [...entries].sort((a, b) => Buffer.compare(Buffer.from(a.name, 'utf8'), Buffer.from(b.name, 'utf8')));
}

/** Writes a deterministic tar.gz of `entries` to `out`; returns the SHA-256 and size of the bytes written. */
export async function writeArchive(
  entries: readonly ArchiveEntry[],
  out: NodeJS.WritableStream,
  onProgress?: (archiveBytes: number) => void,
): Promise<ArchiveResult> {
  const pack = tar.pack();
  const tap = new HashTap(onProgress);
  const done = pipeline(pack, new GzipTransform(GZIP_LEVEL), tap, out);
  const feed = async () => {
    for (const e of sortEntries(entries)) {
      const sink = pack.entry({
        name: e.name,
        size: e.size,
        mode: 0o644,
        mtime: new Date(0),
        uid: 0,
        gid: 0,
        uname: '',
        gname: '',
        type: 'file',
      });
      await pipeline(createReadStream(e.path), sink).catch((err: unknown) => {
        throw new AegisError('FILE_UNREADABLE', `cannot add ${e.name} to the archive: ${(err as Error).message}`, {
          cause: err,
          hint: 'Make sure the model is not being modified while it is packaged.',
          details: { name: e.name },
        });
      });
    }
    pack.finalize();
  };
  try {
    await Promise.all([feed().catch((err: unknown) => {
      pack.destroy(err as Error);
      throw err;
    }), done]);
  } catch (err) {
    if (err instanceof AegisError) throw err;
    throw new AegisError('INTERNAL', `writing the archive failed: ${(err as Error).message}`, { cause: err });
  }
  return { sha256: tap.hash.digest(), size: tap.bytes };
}

export interface ExtractLimits {
  /** Most entries accepted (files + directories). */
  maxEntries: number;
  /** Most uncompressed bytes accepted, in total. */
  maxBytes: number;
  /** Accept symlinks whose target stays inside the destination (default: refuse every link). */
  allowSymlinks?: boolean;
}

export const DEFAULT_EXTRACT_LIMITS: ExtractLimits = { maxEntries: 100_000, maxBytes: 256 * 2 ** 30 };

export interface ExtractedFile {
  name: string;
  size: number;
  /** hex SHA-256 of the content, computed while writing (no second read). */
  sha256: string;
}

function unsafe(name: string, why: string): AegisError {
  return new AegisError('ARCHIVE_UNSAFE_ENTRY', `archive entry ${JSON.stringify(name)} is refused: ${why}`, {
    hint: 'The archive was crafted or corrupted; nothing was extracted outside the destination. Do not use it.',
    details: { entry: name, reason: why },
  });
}

/** Validates an entry name and returns its normalized relative POSIX form. */
export function safeEntryName(raw: string): string {
  if (raw.includes('\0')) throw unsafe(raw, 'NUL byte in name');
  if (raw.includes('\\')) throw unsafe(raw, 'backslash in name');
  if (raw.startsWith('/') || /^[A-Za-z]:/.test(raw)) throw unsafe(raw, 'absolute path');
  const parts = raw.split('/').filter((p, i, all) => !(p === '' && i === all.length - 1) && !(p === '.' && i === 0));
  if (parts.length === 0) throw unsafe(raw, 'empty name');
  for (const p of parts) {
    if (p === '..') throw unsafe(raw, 'contains ".."');
    if (p === '' || p === '.') throw unsafe(raw, 'empty or "." path segment');
  }
  return parts.join('/');
}

/**
 * Extracts a tar.gz stream into `dest` (an existing, empty directory), refusing:
 * absolute paths, `..`, links (unless allowed, and then only inside `dest`),
 * device/FIFO entries, duplicate entries and names equal after Unicode
 * normalization, more than `maxEntries` entries or `maxBytes` bytes, and
 * truncated or trailing-garbage archives. Each file is hashed as it is
 * written. On error the caller discards `dest`.
 *
 * The checks are the product's own value (invariant 1), so they are written
 * here on top of tar-stream's parser rather than delegated to an extractor.
 */
export async function extractArchive(input: Readable, dest: string, limits: ExtractLimits = DEFAULT_EXTRACT_LIMITS): Promise<ExtractedFile[]> {
  const root = resolve(dest);
  const seen = new Map<string, string>(); // NFC name → first raw name
  const files: ExtractedFile[] = [];
  const links: { name: string; target: string }[] = [];
  let entries = 0;
  let total = 0;
  let crc = 0;
  let tarBytes = 0;
  let tail = Buffer.alloc(0);

  // Keep the last 8 compressed bytes (gzip trailer: CRC32 and size of the data).
  const tailTap = new Transform({
    transform(chunk: Buffer, _e, cb) {
      tail = Buffer.concat([tail, chunk]).subarray(-8);
      cb(null, chunk);
    },
  });
  const crcTap = new Transform({
    transform(chunk: Buffer, _e, cb) {
      crc = crc32(chunk, crc);
      tarBytes += chunk.length;
      cb(null, chunk);
    },
  });
  const extract = tar.extract();

  const handle = async () => {
    for await (const entry of extract) {
      const h = entry.header;
      if (h.type === 'directory' && (h.name === '.' || h.name === './')) {
        entry.resume(); // the root itself, as `tar -C dir .` writes it
        continue;
      }
      const name = safeEntryName(h.name);
      if (++entries > limits.maxEntries) {
        throw new AegisError('ARCHIVE_TOO_LARGE', `archive has more than ${limits.maxEntries} entries`, {
          hint: 'Refused as a possible decompression bomb; raise the entry limit only for a trusted source.',
        });
      }
      const key = name.normalize('NFC');
      const prev = seen.get(key);
      if (prev !== undefined) {
        throw unsafe(h.name, prev === name ? 'duplicate entry' : `same name as ${JSON.stringify(prev)} after Unicode normalization`);
      }
      seen.set(key, name);
      const target = join(root, ...name.split('/'));
      if (target !== root && !target.startsWith(root + sep)) throw unsafe(h.name, 'resolves outside the destination');

      if (h.type === 'directory') {
        await mkdir(target, { recursive: true, mode: 0o755 });
        entry.resume();
        continue;
      }
      if (h.type === 'symlink' || h.type === 'link') {
        const linkname = h.linkname ?? '';
        if (!limits.allowSymlinks || h.type === 'link') throw unsafe(h.name, `${h.type === 'link' ? 'hard link' : 'symlink'} to ${JSON.stringify(linkname)} (links are not allowed)`);
        if (linkname.startsWith('/')) throw unsafe(h.name, 'symlink to an absolute path');
        const resolved = posix.normalize(posix.join(posix.dirname(name), linkname));
        if (resolved === '..' || resolved.startsWith('../')) throw unsafe(h.name, `symlink to ${JSON.stringify(linkname)} leaves the destination`);
        links.push({ name, target: linkname });
        entry.resume();
        continue;
      }
      if (h.type !== 'file' && h.type !== 'contiguous-file') throw unsafe(h.name, `${h.type} entries are not allowed`);

      const size = h.size ?? 0;
      total += size;
      if (total > limits.maxBytes) {
        throw new AegisError('ARCHIVE_TOO_LARGE', `archive expands to more than ${limits.maxBytes} bytes`, {
          hint: 'Refused as a possible decompression bomb; raise the size limit only for a trusted source.',
        });
      }
      await mkdir(dirname(target), { recursive: true, mode: 0o755 }).catch((err: unknown) => {
        throw unsafe(h.name, `its folder conflicts with a file entry (${(err as NodeJS.ErrnoException).code})`);
      });
      // 'wx': never follow or overwrite something already there.
      const fh = await open(target, 'wx', 0o644).catch((err: unknown) => {
        throw unsafe(h.name, `cannot create it (${(err as NodeJS.ErrnoException).code})`);
      });
      const hash = createHash('sha256');
      let written = 0;
      try {
        for await (const chunk of entry as AsyncIterable<Buffer>) {
          hash.update(chunk);
          written += chunk.length;
          await fh.write(chunk);
        }
      } finally {
        await fh.close();
      }
      if (written !== size) throw truncated(`entry ${name} has ${written} of ${size} bytes`);
      files.push({ name, size, sha256: hash.digest('hex') });
    }
  };

  const source = input.pipe(tailTap);
  // Large output chunks: far fewer hops between the zlib thread, the tar parser and the file writes.
  const gunzip = createGunzip({ chunkSize: 1024 * 1024 });
  const unzipDone = pipeline(source, gunzip, crcTap, extract).catch((err: unknown) => {
    throw mapStreamError(err);
  });
  try {
    await Promise.all([handle(), unzipDone]);
  } catch (err) {
    input.destroy();
    extract.destroy();
    throw err instanceof AegisError ? err : mapStreamError(err);
  }
  // A trailing-garbage or multi-part gzip does not end with this data's CRC32 and size.
  if (tail.length < 8 || tail.readUInt32LE(0) !== crc >>> 0 || tail.readUInt32LE(4) !== tarBytes % 2 ** 32) {
    throw new AegisError('ARCHIVE_CORRUPT', 'archive has data after the end of the compressed stream', {
      hint: 'The archive was altered or concatenated with other data; fetch it again.',
    });
  }
  // Links last, so no file is ever written through one; each must resolve inside the root
  // (checked on the real paths, since a link may sit under another link).
  const inside = (p: string) => p === root || p.startsWith(root + sep);
  for (const l of links) {
    const at = join(root, ...l.name.split('/'));
    await mkdir(dirname(at), { recursive: true, mode: 0o755 });
    if (!inside(await realpath(dirname(at)))) throw unsafe(l.name, 'its folder resolves outside the destination');
    await symlink(l.target, at).catch((err: unknown) => {
      throw unsafe(l.name, `cannot create the symlink (${(err as NodeJS.ErrnoException).code}): it conflicts with another entry`);
    });
  }
  for (const l of links) {
    const real = await realpath(join(root, ...l.name.split('/'))).catch(() => undefined);
    if (!real || !inside(real)) throw unsafe(l.name, `symlink to ${JSON.stringify(l.target)} is dangling or leaves the destination`);
  }
  return files;
}

function truncated(detail: string): AegisError {
  return new AegisError('ARCHIVE_TRUNCATED', `archive is truncated: ${detail}`, {
    hint: 'The download or upload was cut short; fetch the archive again.',
  });
}

function mapStreamError(err: unknown): AegisError {
  if (err instanceof AegisError) return err;
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'Z_BUF_ERROR' || /unexpected end/i.test(e.message)) return truncated(e.message);
  if (e.code?.startsWith('Z_')) {
    return new AegisError('ARCHIVE_CORRUPT', `archive is not valid gzip data: ${e.message}`, {
      cause: err,
      hint: 'The file is corrupted or not a .tar.gz; fetch it again.',
    });
  }
  return new AegisError('ARCHIVE_CORRUPT', `archive is not a valid tar: ${e.message}`, {
    cause: err,
    hint: 'The file is corrupted or not a .tar.gz; fetch it again.',
  });
}

/**
 * Reads one small entry (e.g. aegis.yaml) from a tar.gz stream without
 * extracting anything; stops reading once it is found. Not a verification:
 * callers use it to learn a model's name and version before uploading.
 */
export async function readArchiveEntry(input: Readable, name: string, maxBytes = 1024 * 1024): Promise<Buffer | undefined> {
  const extract = tar.extract();
  const gunzip = createGunzip();
  input.pipe(gunzip).pipe(extract);
  const stop = () => {
    input.destroy();
    gunzip.destroy();
    extract.destroy();
  };
  try {
    for await (const entry of extract) {
      let entryName: string;
      try {
        entryName = safeEntryName(entry.header.name);
      } catch {
        entry.resume();
        continue;
      }
      if (entryName !== name || entry.header.type !== 'file') {
        entry.resume();
        continue;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const c of entry as AsyncIterable<Buffer>) {
        size += c.length;
        if (size > maxBytes) throw new AegisError('ARCHIVE_TOO_LARGE', `${name} in the archive is larger than ${maxBytes} bytes`, { hint: 'The archive is not a model archive made by Aegis.' });
        chunks.push(c);
      }
      return Buffer.concat(chunks);
    }
    return undefined;
  } catch (err) {
    throw mapStreamError(err);
  } finally {
    stop();
  }
}
