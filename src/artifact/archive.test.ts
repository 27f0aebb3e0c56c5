import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, readFile, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { gunzipSync, gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../test-support/fs.js';
import { bytes, writeModel } from '../test-support/models.js';
import { extractArchive, safeEntryName, sortEntries, writeArchive, type ArchiveEntry } from './archive.js';
import { scanModel } from './scan.js';

let work: Awaited<ReturnType<typeof tempDir>>;
let n = 0;
const dir = async (name = 'd') => {
  const p = join(work.path, `${name}${n++}`);
  await mkdir(p, { recursive: true });
  return p;
};

beforeAll(async () => {
  work = await tempDir('aegis-archive-');
});
afterAll(async () => work.cleanup());

async function archiveOf(model: string, out: string) {
  const scan = await scanModel(model);
  const entries: ArchiveEntry[] = scan.files.map((f) => ({ name: f.name, path: f.path, size: f.size }));
  return writeArchive(entries, createWriteStream(out));
}

interface RawEntry {
  name: string;
  type?: 'file' | 'directory' | 'symlink' | 'link' | 'fifo' | 'character-device' | 'block-device';
  content?: Buffer | string;
  linkname?: string;
  pax?: Record<string, string>;
  size?: number;
}

/** Builds a .tar (not gzipped) with tar-stream, for crafting hostile archives. */
async function rawTar(entries: RawEntry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = new Promise<void>((res, rej) => {
    pack.on('data', (c) => chunks.push(c as Buffer));
    pack.on('end', () => res());
    pack.on('error', rej);
  });
  for (const e of entries) {
    const content = e.content === undefined ? undefined : Buffer.from(e.content);
    const header = {
      name: e.name,
      type: e.type ?? 'file',
      ...(e.linkname ? { linkname: e.linkname } : {}),
      ...(e.pax ? { pax: e.pax } : {}),
      ...(content ? { size: content.length } : {}),
    };
    await new Promise<void>((res, rej) => {
      if (content) pack.entry(header, content, (err) => (err ? rej(err) : res()));
      else pack.entry(header, (err) => (err ? rej(err) : res()));
    });
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

async function extractBuffer(buf: Buffer, limits?: Parameters<typeof extractArchive>[2]) {
  const parent = await dir('x');
  const dest = join(parent, 'dest');
  await mkdir(dest);
  const run = extractArchive(Readable.from([buf]), dest, limits);
  return { parent, dest, run };
}

async function expectRefused(buf: Buffer, code: string, reason: RegExp, limits?: Parameters<typeof extractArchive>[2]) {
  const { parent, dest, run } = await extractBuffer(buf, limits);
  await expect(run).rejects.toMatchObject({ code, message: expect.stringMatching(reason) });
  // nothing was written outside the destination
  expect(await readdir(parent)).toEqual(['dest']);
  return dest;
}

describe('writeArchive: deterministic model.tar.gz', () => {
  it('gives byte-identical archives for the same files, whatever the file times or modes', async () => {
    const files = { 'b.bin': 5000, 'a/x.json': '{}', 'z y/ü.txt': 'unicode\n' };
    const m1 = await writeModel(await dir('m'), files);
    await new Promise((r) => setTimeout(r, 20));
    const m2 = await writeModel(await dir('m'), files);
    const { chmod, utimes } = await import('node:fs/promises');
    await chmod(join(m2, 'b.bin'), 0o600);
    await utimes(join(m2, 'b.bin'), new Date('2001-01-01'), new Date('2001-01-01'));
    const out = await dir('o');
    const a = await archiveOf(m1, join(out, 'a.tar.gz'));
    const b = await archiveOf(m2, join(out, 'b.tar.gz'));
    expect(a.sha256.equals(b.sha256)).toBe(true);
    expect((await readFile(join(out, 'a.tar.gz'))).equals(await readFile(join(out, 'b.tar.gz')))).toBe(true);
    // reported digest and size are those of the bytes on disk
    const onDisk = await readFile(join(out, 'a.tar.gz'));
    expect(a.size).toBe(onDisk.length);
    expect(createHash('sha256').update(onDisk).digest().equals(a.sha256)).toBe(true);
  });

  it('writes portable headers: sorted entries, mode 0644, mtime 0, uid/gid 0, no owner names, gzip mtime 0', async () => {
    const m = await writeModel(await dir('m'), { 'b.bin': 10, 'a.bin': 10, 'c/d.bin': 10 });
    const out = join(await dir('o'), 'm.tar.gz');
    await archiveOf(m, out);
    const gz = await readFile(out);
    expect(gz.readUInt32LE(4)).toBe(0); // gzip MTIME
    expect(gz[3]! & 0x08).toBe(0); // no FNAME
    const headers: tar.Header[] = [];
    const ex = tar.extract();
    ex.on('entry', (h, s, next) => {
      headers.push(h);
      s.resume();
      s.on('end', next);
    });
    await pipeline(Readable.from([gunzipSync(gz)]), ex);
    expect(headers.map((h) => h.name)).toEqual(['a.bin', 'b.bin', 'c/d.bin']);
    for (const h of headers) {
      expect(h).toMatchObject({ mode: 0o644, uid: 0, gid: 0, uname: '', gname: '', type: 'file' });
      expect(h.mtime?.getTime()).toBe(0);
    }
  });

  it('sorts by UTF-8 bytes', () => {
    expect(sortEntries([{ name: 'é' }, { name: 'z' }, { name: 'a/b' }, { name: 'a-b' }]).map((e) => e.name)).toEqual(['a-b', 'a/b', 'z', 'é']);
  });

  it('round-trips through extraction with per-file SHA-256', async () => {
    const files = { 'w.bin': 300_000, 'nested/deep/cfg.json': '{"a":1}', 'empty.bin': '', ['long/'.repeat(30) + 'name.bin']: 3 };
    const m = await writeModel(await dir('m'), files);
    const out = join(await dir('o'), 'm.tar.gz');
    await archiveOf(m, out);
    const dest = await dir('e');
    const extracted = await extractArchive(createReadStream(out), dest);
    expect(extracted.map((f) => f.name).sort()).toEqual(Object.keys(files).sort());
    for (const f of extracted) {
      const content = await readFile(join(dest, f.name));
      expect(f.sha256).toBe(createHash('sha256').update(content).digest('hex'));
      expect(content.equals(await readFile(join(m, f.name)))).toBe(true);
    }
  });

  it('is readable by GNU tar (standard gzip + ustar/pax)', async () => {
    const { execFileSync } = await import('node:child_process');
    const m = await writeModel(await dir('m'), { 'a.bin': bytes('a', 1000), 'ü/b.txt': 'x' });
    const out = join(await dir('o'), 'm.tar.gz');
    await archiveOf(m, out);
    const list = execFileSync('tar', ['tzf', out], { encoding: 'utf8' });
    expect(list.trim().split('\n')).toEqual(['a.bin', 'ü/b.txt']);
  });
});

describe('extractArchive refuses hostile archives, writing nothing outside the destination', () => {
  const ok = { name: 'ok.bin', content: 'fine' };

  it.each([
    ['../evil.txt', /"\.\."/],
    ['a/../../evil.txt', /"\.\."/],
    ['/etc/evil.txt', /absolute/],
    ['a\\..\\evil.txt', /backslash/],
  ])('refuses the name %s', async (name, reason) => {
    await expectRefused(gzipSync(await rawTar([ok, { name, content: 'x' }])), 'ARCHIVE_UNSAFE_ENTRY', reason);
  });

  it('refuses a pax header that renames an entry to ../evil', async () => {
    await expectRefused(gzipSync(await rawTar([{ name: 'innocent.txt', content: 'x', pax: { path: '../evil.txt' } }])), 'ARCHIVE_UNSAFE_ENTRY', /"\.\."/);
  });

  it('refuses symlinks by default, even inside the destination', async () => {
    await expectRefused(gzipSync(await rawTar([ok, { name: 'link', type: 'symlink', linkname: 'ok.bin' }])), 'ARCHIVE_UNSAFE_ENTRY', /symlink.*not allowed/);
  });

  it('refuses a symlink leaving the destination even when links are allowed', async () => {
    await expectRefused(gzipSync(await rawTar([{ name: 'a/link', type: 'symlink', linkname: '../../outside' }])), 'ARCHIVE_UNSAFE_ENTRY', /leaves the destination/, {
      maxEntries: 10,
      maxBytes: 1e6,
      allowSymlinks: true,
    });
    await expectRefused(gzipSync(await rawTar([{ name: 'abs', type: 'symlink', linkname: '/etc/passwd' }])), 'ARCHIVE_UNSAFE_ENTRY', /absolute/, {
      maxEntries: 10,
      maxBytes: 1e6,
      allowSymlinks: true,
    });
  });

  it('creates an allowed inside symlink after the files, so nothing is written through it', async () => {
    const { dest, run } = await extractBuffer(gzipSync(await rawTar([ok, { name: 'sub/link', type: 'symlink', linkname: '../ok.bin' }])), {
      maxEntries: 10,
      maxBytes: 1e6,
      allowSymlinks: true,
    });
    await run;
    expect(await readlink(join(dest, 'sub/link'))).toBe('../ok.bin');
  });

  it('refuses a symlink that escapes through another symlink', async () => {
    const limits = { maxEntries: 10, maxBytes: 1e6, allowSymlinks: true };
    // lexically x/y -> .. stays inside, but x is the root itself, so y would point above it
    await expectRefused(gzipSync(await rawTar([ok, { name: 'x', type: 'symlink', linkname: '.' }, { name: 'x/y', type: 'symlink', linkname: '..' }])), 'ARCHIVE_UNSAFE_ENTRY', /leaves the destination/, limits);
  });

  it('refuses a symlink then a file written through it', async () => {
    await expectRefused(
      gzipSync(await rawTar([{ name: 'dir', type: 'symlink', linkname: '/tmp' }, { name: 'dir/evil.txt', content: 'x' }])),
      'ARCHIVE_UNSAFE_ENTRY',
      /symlink/,
    );
  });

  it('refuses hard links', async () => {
    await expectRefused(gzipSync(await rawTar([ok, { name: 'hard', type: 'link', linkname: 'ok.bin' }])), 'ARCHIVE_UNSAFE_ENTRY', /hard link/);
    await expectRefused(gzipSync(await rawTar([{ name: 'hard', type: 'link', linkname: '/etc/passwd' }])), 'ARCHIVE_UNSAFE_ENTRY', /hard link/, {
      maxEntries: 10,
      maxBytes: 1e6,
      allowSymlinks: true,
    });
  });

  it.each(['fifo', 'character-device', 'block-device'] as const)('refuses %s entries', async (type) => {
    await expectRefused(gzipSync(await rawTar([ok, { name: 'dev', type }])), 'ARCHIVE_UNSAFE_ENTRY', new RegExp(`${type} entries are not allowed`));
  });

  it('refuses duplicate entries (a second copy must not replace the first)', async () => {
    await expectRefused(gzipSync(await rawTar([ok, { name: 'ok.bin', content: 'evil' }])), 'ARCHIVE_UNSAFE_ENTRY', /duplicate/);
    await expectRefused(gzipSync(await rawTar([ok, { name: './ok.bin', content: 'evil' }])), 'ARCHIVE_UNSAFE_ENTRY', /duplicate/);
  });

  it('refuses names that differ only by Unicode normalization (NFC vs NFD)', async () => {
    const nfc = 'caf\u00e9.bin';
    const nfd = 'cafe\u0301.bin';
    await expectRefused(gzipSync(await rawTar([{ name: nfc, content: 'a' }, { name: nfd, content: 'b' }])), 'ARCHIVE_UNSAFE_ENTRY', /Unicode normalization/);
  });

  it('refuses an entry whose folder is already a file', async () => {
    await expectRefused(gzipSync(await rawTar([{ name: 'a', content: 'x' }, { name: 'a/b', content: 'y' }])), 'ARCHIVE_UNSAFE_ENTRY', /conflicts/);
  });

  it('refuses more entries than the limit', async () => {
    const entries = Array.from({ length: 6 }, (_, i) => ({ name: `f${i}`, content: 'x' }));
    await expectRefused(gzipSync(await rawTar(entries)), 'ARCHIVE_TOO_LARGE', /more than 5 entries/, { maxEntries: 5, maxBytes: 1e9 });
  });

  it('refuses a decompression bomb before writing past the byte limit', async () => {
    const bomb = gzipSync(await rawTar([{ name: 'zeros.bin', content: Buffer.alloc(8 * 2 ** 20) }]));
    expect(bomb.length).toBeLessThan(64 * 1024);
    const dest = await expectRefused(bomb, 'ARCHIVE_TOO_LARGE', /expands to more than/, { maxEntries: 10, maxBytes: 2 ** 20 });
    expect(await readdir(dest)).toEqual([]);
  });

  it('refuses a truncated gzip stream', async () => {
    const gz = gzipSync(await rawTar([{ name: 'a.bin', content: bytes('t', 100_000) }]));
    await expectRefused(gz.subarray(0, Math.floor(gz.length / 2)), 'ARCHIVE_TRUNCATED', /truncated/);
  });

  it('refuses a truncated tar inside a complete gzip stream', async () => {
    const t = await rawTar([{ name: 'a.bin', content: bytes('t', 100_000) }]);
    await expectRefused(gzipSync(t.subarray(0, 50_000)), 'ARCHIVE_TRUNCATED', /truncated|Unexpected end/i);
  });

  it('refuses trailing garbage after the gzip stream, including zeros', async () => {
    const gz = gzipSync(await rawTar([ok]));
    await expectRefused(Buffer.concat([gz, Buffer.from('GARBAGE')]), 'ARCHIVE_CORRUPT', /gzip|after the end/);
    await expectRefused(Buffer.concat([gz, Buffer.alloc(512)]), 'ARCHIVE_CORRUPT', /after the end/);
  });

  it('refuses data that is not gzip at all', async () => {
    await expectRefused(Buffer.from('this is not an archive'), 'ARCHIVE_CORRUPT', /gzip/);
  });

  it('accepts the plain good archive (the refusals above are not everything-fails)', async () => {
    const { dest, run } = await extractBuffer(gzipSync(await rawTar([ok, { name: 'dir', type: 'directory' }, { name: 'dir/x', content: 'y' }])));
    const files = await run;
    expect(files.map((f) => f.name)).toEqual(['ok.bin', 'dir/x']);
    expect(await readFile(join(dest, 'dir/x'), 'utf8')).toBe('y');
  });
});

describe('safeEntryName', () => {
  it('normalizes ./ prefixes and trailing slashes', () => {
    expect(safeEntryName('./a/b')).toBe('a/b');
    expect(safeEntryName('dir/')).toBe('dir');
  });
  it.each(['', '.', 'a//b', 'a/./b', 'C:evil'])('refuses %j', (name) => {
    expect(() => safeEntryName(name)).toThrow(expect.objectContaining({ code: 'ARCHIVE_UNSAFE_ENTRY' }));
  });
});

void writeFile;
