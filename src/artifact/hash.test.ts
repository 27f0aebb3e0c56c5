import { createHash } from 'node:crypto';
import { truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bytes } from '../test-support/models.js';
import { tempDir } from '../test-support/fs.js';
import { hashFiles } from './hash.js';
import type { ModelFile } from './scan.js';

const MiB = 2 ** 20;
let dir: Awaited<ReturnType<typeof tempDir>>;
const files: ModelFile[] = [];
const contents: Buffer[] = [];

beforeAll(async () => {
  dir = await tempDir('aegis-hash-');
  // 3 × 13 MiB: over the inline limit, so the worker pool is used.
  for (const [i, size] of [13 * MiB, 13 * MiB + 7, 13 * MiB - 1].entries()) {
    const data = bytes(`f${i}`, size);
    const path = join(dir.path, `f${i}.bin`);
    await writeFile(path, data);
    files.push({ name: `f${i}.bin`, path, size });
    contents.push(data);
  }
});
afterAll(async () => dir.cleanup());

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('hashFiles', () => {
  it('gives each file its SHA-256, in input order, on the worker pool', async () => {
    const r = await hashFiles(files, { workers: 2, chunkBytes: MiB });
    expect(r.map((x) => x.name)).toEqual(['f0.bin', 'f1.bin', 'f2.bin']);
    expect(r.map((x) => x.digest)).toEqual(contents.map(sha));
  });

  it('gives the same digests inline (one worker) and with small read chunks', async () => {
    const a = await hashFiles(files, { workers: 1, chunkBytes: 64 * 1024 });
    expect(a.map((x) => x.digest)).toEqual(contents.map(sha));
  });

  it('names shards path:start:end with a short last shard, and hashes each range', async () => {
    const shard = 5 * MiB;
    const r = await hashFiles(files.slice(1, 2), { shardSize: shard, workers: 2 });
    const size = files[1]!.size;
    expect(r.map((x) => x.name)).toEqual([`f1.bin:0:${shard}`, `f1.bin:${shard}:${2 * shard}`, `f1.bin:${2 * shard}:${size}`]);
    expect(r[2]!.digest).toBe(sha(contents[1]!.subarray(2 * shard)));
  });

  it('supports blake2b', async () => {
    const r = await hashFiles(files.slice(0, 1), { algorithm: 'blake2b' });
    expect(r[0]!.digest).toBe(createHash('blake2b512').update(contents[0]!).digest('hex'));
    expect(r[0]!.algorithm).toBe('blake2b');
  });

  it('reports progress up to the total', async () => {
    const seen: number[] = [];
    let total = 0;
    await hashFiles(files, { workers: 2, onProgress: (d, t) => (seen.push(d), (total = t)) });
    expect(total).toBe(files.reduce((n, f) => n + f.size, 0));
    expect(seen.at(-1)).toBe(total);
  });

  it('fails with FILE_UNREADABLE naming the file when it shrinks while being hashed', async () => {
    const victim = join(dir.path, 'shrinks.bin');
    await writeFile(victim, Buffer.alloc(40 * MiB, 7));
    const entry = { name: 'shrinks.bin', path: victim, size: 40 * MiB };
    await truncate(victim, 10 * MiB);
    await expect(hashFiles([entry, ...files], { workers: 2 })).rejects.toMatchObject({
      code: 'FILE_UNREADABLE',
      message: expect.stringContaining('shrinks.bin'),
    });
  });

  it('fails with FILE_UNREADABLE for a missing file', async () => {
    await expect(hashFiles([{ name: 'gone.bin', path: join(dir.path, 'gone.bin'), size: 1 }])).rejects.toMatchObject({ code: 'FILE_UNREADABLE' });
  });
});
