/**
 * The example datasets: regeneration gives the committed bytes, v2 is shifted
 * from v1 while v1's own splits are not, and the reader refuses damaged files.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAegisError } from '../errors.js';
import { tempDir } from '../test-support/fs.js';
import { DATASET_FILE, EXAMPLE_VOCABULARY, generateExampleDataset, readDataset, type Dataset, type Split } from './dataset.js';

const EXAMPLES = fileURLToPath(new URL('../../examples/datasets/example_multimodal', import.meta.url));
const FILES = [DATASET_FILE, 'train.jsonl', 'test.jsonl'];

let root: string;
let cleanup: () => Promise<void>;
let v1: Dataset;
let v2: Dataset;

beforeAll(async () => {
  ({ path: root, cleanup } = await tempDir('aegis-dataset-test-'));
  [v1, v2] = [await readDataset(join(EXAMPLES, 'v1')), await readDataset(join(EXAMPLES, 'v2'))];
});
afterAll(() => cleanup());

function mean(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]!;
  return s / a.length;
}

function std(a: ArrayLike<number>): number {
  const m = mean(a);
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i]! - m) ** 2;
  return Math.sqrt(s / a.length);
}

/** Per-example mean pixel (the image's brightness). */
function brightness(s: Split): Float64Array {
  const img = s.features[0]!;
  const out = new Float64Array(s.rows);
  for (let r = 0; r < s.rows; r++) out[r] = mean(img.subarray(r * 64, (r + 1) * 64));
  return out;
}

/** Per-example count of one word. */
function wordCounts(s: Split, word: string): Float64Array {
  const k = EXAMPLE_VOCABULARY.indexOf(word as (typeof EXAMPLE_VOCABULARY)[number]);
  const text = s.features[1]!;
  return Float64Array.from({ length: s.rows }, (_, r) => text[r * 16 + k]!);
}

/** Standardised difference of means: |m1 − m2| / pooled std. */
function effect(a: ArrayLike<number>, b: ArrayLike<number>): number {
  return Math.abs(mean(a) - mean(b)) / Math.sqrt((std(a) ** 2 + std(b) ** 2) / 2);
}

describe('example datasets', () => {
  it.each(['v1', 'v2'] as const)('regenerating %s gives the committed bytes', async (version) => {
    const out = join(root, `regen-${version}`);
    await generateExampleDataset({ out, version });
    for (const f of FILES) {
      const [fresh, committed] = [await readFile(join(out, f)), await readFile(join(EXAMPLES, version, f))];
      expect(fresh.equals(committed), `${version}/${f} differs from a regeneration: run examples/training/train-example.sh`).toBe(true);
    }
  });

  it('are compact and hold the declared schema', () => {
    for (const d of [v1, v2]) {
      expect(d.spec.label.classes).toEqual(['top_left', 'top_right', 'bottom']);
      expect(d.spec.features.map((f) => [f.name, f.shape])).toEqual([
        ['image', [1, 8, 8]],
        ['text', [16]],
      ]);
      expect([d.train.rows, d.test.rows]).toEqual([4000, 1000]);
      expect(d.train.features[0]!.length).toBe(4000 * 64);
      // every class present, none dominant
      const counts = [0, 1, 2].map((c) => d.train.labels.filter((y) => y === c).length);
      for (const c of counts) expect(c).toBeGreaterThan(1000);
      // pixels in [0, 1], word counts non-negative integers
      expect(d.train.features[0]!.every((v) => v >= 0 && v <= 1)).toBe(true);
      expect(d.train.features[1]!.every((v) => Number.isInteger(v) && v >= 0)).toBe(true);
    }
  });

  it('v2 is shifted from v1 (brighter, right-lit images; trending words) while v1 train and test are not', () => {
    // Brightness: v2's images are > 1 pooled std brighter; v1's splits agree within 0.1 std.
    expect(effect(brightness(v1.train), brightness(v2.train))).toBeGreaterThan(1);
    expect(effect(brightness(v1.train), brightness(v1.test))).toBeLessThan(0.1);
    // Side lighting: the right column gained more than the left one.
    const column = (s: Split, c: number) => mean(Float64Array.from({ length: s.rows * 8 }, (_, i) => s.features[0]![Math.floor(i / 8) * 64 + (i % 8) * 8 + c]!));
    const gain = (c: number) => column(v2.train, c) - column(v1.train, c);
    expect(gain(7) - gain(0)).toBeGreaterThan(0.2);
    // Text: "kite" and "owl" trend in v2.
    for (const w of ['kite', 'owl']) {
      expect(effect(wordCounts(v1.train, w), wordCounts(v2.train, w))).toBeGreaterThan(0.5);
      expect(effect(wordCounts(v1.train, w), wordCounts(v1.test, w))).toBeLessThan(0.1);
    }
    // Same labelling: class priors agree.
    for (const c of [0, 1, 2]) {
      const share = (s: Split) => s.labels.filter((y) => y === c).length / s.rows;
      expect(Math.abs(share(v1.train) - share(v2.train))).toBeLessThan(0.03);
    }
  });

  it('another seed gives other data; the test split does not depend on the training rows', async () => {
    const a = join(root, 'seed-2');
    const b = join(root, 'seed-2-small');
    await generateExampleDataset({ out: a, version: 'v1', seed: 2, trainRows: 50, testRows: 20 });
    await generateExampleDataset({ out: b, version: 'v1', seed: 2, trainRows: 10, testRows: 20 });
    const firstRow = async (path: string) => (await readFile(path, 'utf8')).split('\n')[0];
    expect(await firstRow(join(a, 'train.jsonl'))).not.toBe(await firstRow(join(EXAMPLES, 'v1', 'train.jsonl')));
    expect((await readFile(join(a, 'test.jsonl'))).equals(await readFile(join(b, 'test.jsonl')))).toBe(true);
    const d = await readDataset(`file://${a}`);
    expect([d.train.rows, d.test.rows, d.spec.generator?.seed]).toEqual([50, 20, 2]);
  });
});

describe('readDataset', () => {
  async function damaged(name: string, edit: (dir: string) => Promise<void>): Promise<string> {
    const dir = join(root, name);
    await generateExampleDataset({ out: dir, version: 'v1', trainRows: 5, testRows: 3 });
    await edit(dir);
    return dir;
  }

  async function refused(dir: string, text: string): Promise<void> {
    let err: unknown;
    try {
      await readDataset(dir);
    } catch (e) {
      err = e;
    }
    expect(isAegisError(err, 'DATASET_INVALID'), String(err)).toBe(true);
    expect((err as Error).message).toContain(text);
    expect((err as { hint?: string }).hint).toBeTruthy();
  }

  it('refuses a split that changed after dataset.yaml pinned it', async () => {
    const dir = await damaged('tampered', async (d) => {
      const text = await readFile(join(d, 'train.jsonl'), 'utf8');
      await writeFile(join(d, 'train.jsonl'), text.replace('"label":', '"label": '));
    });
    await refused(dir, 'differs from the one in dataset.yaml');
  });

  it('names the line of a malformed row (when no sha256 pins the file)', async () => {
    const dir = await damaged('bad-row', async (d) => {
      const spec = (await readFile(join(d, DATASET_FILE), 'utf8')).replace(/\n\s+sha256: [0-9a-f]+/g, '');
      await writeFile(join(d, DATASET_FILE), spec);
      const lines = (await readFile(join(d, 'test.jsonl'), 'utf8')).split('\n');
      const row = JSON.parse(lines[1]!) as { text: number[] };
      row.text.pop();
      lines[1] = JSON.stringify(row);
      await writeFile(join(d, 'test.jsonl'), lines.join('\n'));
    });
    await refused(dir, 'test.jsonl:2 is invalid: text must be an array of 16 numbers');
  });

  it('refuses a wrong row count, a bad label and a directory without dataset.yaml', async () => {
    const unpinned = async (d: string) => writeFile(join(d, DATASET_FILE), (await readFile(join(d, DATASET_FILE), 'utf8')).replace(/\n\s+sha256: [0-9a-f]+/g, ''));
    await refused(
      await damaged('short', async (d) => {
        await unpinned(d);
        const lines = (await readFile(join(d, 'train.jsonl'), 'utf8')).trimEnd().split('\n');
        await writeFile(join(d, 'train.jsonl'), lines.slice(1).join('\n') + '\n');
      }),
      'has 4 rows but dataset.yaml declares 5',
    );
    await refused(
      await damaged('label', async (d) => {
        await unpinned(d);
        const text = await readFile(join(d, 'test.jsonl'), 'utf8');
        await writeFile(join(d, 'test.jsonl'), text.replace(/"label":\d/, '"label":7'));
      }),
      'label must be a class index from 0 to 2',
    );
    await refused(root, 'has no dataset.yaml');
  });
});
