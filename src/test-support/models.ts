import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { createHash } from 'node:crypto';

/** Deterministic pseudo-random bytes (SHA-256 in counter mode) for test models. */
export function bytes(seed: string, length: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  let off = 0;
  for (let i = 0; off < length; i++) {
    const block = createHash('sha256').update(`${seed}:${i}`).digest();
    off += block.copy(out, off);
  }
  return out;
}

/** Writes a model directory from a map of relative path → content or size. */
export async function writeModel(root: string, files: Record<string, string | number | Buffer>): Promise<string> {
  for (const [rel, content] of Object.entries(files)) {
    const path = join(root, rel);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, typeof content === 'number' ? bytes(rel, content) : content);
  }
  return root;
}

/** A multi-file model with subfolders, unicode and spaces in names. */
export const TRICKY_MODEL: Record<string, string | number> = {
  'config.json': '{"arch":"tiny"}\n',
  'weights/layer 1.bin': 70_000,
  'weights/layer-2.bin': 1000,
  'tokenizer/词表.txt': 'hello\nworld\n',
  'tokenizer/ünïcödé name.json': '{}',
  'nested/a/b/c/deep file.bin': 3,
  'empty.bin': '',
};
