/**
 * Datasets for the trainer: the seeded generator of the example multimodal
 * dataset (v1, and v2 with covariate shift), and the reader of the on-disk
 * format.
 *
 * On disk a dataset is a directory with
 *   dataset.yaml   schema, splits (file, rows, sha256), generator name/version/seed/params
 *   train.jsonl    one JSON object per line: {"label":1,"image":[64 numbers],"text":[16 numbers]}
 *   test.jsonl     the held-out split, same format
 * Each feature is stored flattened in row-major order (image [1,8,8] → 64
 * values); `label` is the class index into `label.classes`. The generator
 * rounds pixels to 3 decimals and text features are integer word counts, so the
 * files are small (≈1.4 MB per version) and regenerate to identical bytes.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Document, isScalar, parse as parseYaml, visit } from 'yaml';
import { z } from 'zod';
import { AegisError, fsError } from '../errors.js';
import { Prng } from './prng.js';

export const DATASET_FILE = 'dataset.yaml';

/** The generator of the example dataset; bump `version` whenever its output changes. */
export const GENERATOR_NAME = 'aegis-example-multimodal';
export const GENERATOR_VERSION = 1;
export const DEFAULT_DATASET_SEED = 1;

export const EXAMPLE_CLASSES = ['top_left', 'top_right', 'bottom'] as const;
/** The 16 words of the text feature: 4 per class, then 4 common words. */
export const EXAMPLE_VOCABULARY = ['sun', 'sky', 'bird', 'kite', 'moon', 'star', 'owl', 'night', 'sea', 'boat', 'fish', 'wave', 'the', 'a', 'is', 'of'] as const;

const featureSchema = z
  .object({
    name: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'letters, digits and _'),
    dtype: z.literal('float32'),
    /** Per-example shape (without the batch dimension). */
    shape: z.array(z.number().int().min(1)).min(1).max(8),
    description: z.string().optional(),
    /** Optional names of the (flattened) elements, e.g. the vocabulary of a bag of words. */
    elementNames: z.array(z.string()).optional(),
  })
  .strict();

const splitSchema = z
  .object({
    path: z.string().min(1),
    rows: z.number().int().min(1),
    /** Hex SHA-256 of the file; checked on read when present. */
    sha256: z.string().regex(/^[0-9a-f]{64}$/).optional(),
  })
  .strict();

export const datasetSchema = z
  .object({
    apiVersion: z.literal('aegis.dev/v1'),
    kind: z.literal('Dataset'),
    name: z.string().min(1),
    version: z.string().min(1),
    description: z.string().optional(),
    task: z.literal('classification'),
    label: z.object({ name: z.string().min(1), classes: z.array(z.string().min(1)).min(2) }).strict(),
    features: z.array(featureSchema).min(1),
    splits: z.object({ train: splitSchema, test: splitSchema }).strict(),
    generator: z
      .object({ name: z.string(), version: z.number().int(), seed: z.number().int(), params: z.record(z.string(), z.unknown()).optional() })
      .strict()
      .optional(),
  })
  .strict();

export type DatasetSpec = z.infer<typeof datasetSchema>;
export type FeatureSpec = z.infer<typeof featureSchema>;

/** One split in memory: features[f] holds rows × size(f) values, row-major. */
export interface Split {
  rows: number;
  features: Float32Array[];
  labels: Uint8Array;
}

export interface Dataset {
  dir: string;
  spec: DatasetSpec;
  /** "sha256:<hex>" of dataset.yaml, which pins the split files by their sha256. */
  digest: string;
  train: Split;
  test: Split;
}

export const featureSize = (f: { shape: number[] }) => f.shape.reduce((a, b) => a * b, 1);

function invalid(where: string, message: string, hint = 'Regenerate it with `aegis dataset generate`, or fix the file; see src/training/dataset.ts for the format.'): AegisError {
  return new AegisError('DATASET_INVALID', `dataset ${where} is invalid: ${message}`, { hint, details: { path: where } });
}

/** A local path or file:// URI → a directory path. */
export function datasetPath(uri: string): string {
  if (uri.startsWith('file://')) return fileURLToPath(uri);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(uri)) {
    throw new AegisError('USAGE', `cannot read dataset ${uri}: only local paths and file:// URIs are supported`, {
      hint: 'Download the dataset to a local directory first and pass its path.',
    });
  }
  return isAbsolute(uri) ? uri : resolve(uri);
}

// ---------------------------------------------------------------------------
// Generator
// ---------------------------------------------------------------------------

/** Parameters of the generator; v2 shifts the inputs (not the labelling). */
export interface GeneratorParams {
  /** Added to every pixel (after contrast), then clipped to [0, 1]. */
  brightness: number;
  /** Pixels are multiplied by this before the brightness offset. */
  contrast: number;
  /** Extra brightness rising linearly from 0 at the left column to this at the right one (side lighting). */
  gradient: number;
  /** Background level and noise standard deviation of the image. */
  background: number;
  noise: number;
  /** Words per text, uniform in [min, max]. */
  textLength: [number, number];
  /** Relative frequency of the 4 common words (class words: 3 for the own class, 1 otherwise). */
  commonWeight: number;
  /** Probability that an example's blob sits where another class puts it. */
  confusion: number;
  /** Words that became popular in every class: their relative frequency, whatever the class. */
  trending: Record<string, number>;
}

export const DATASET_VERSIONS: Record<'v1' | 'v2', { description: string; params: GeneratorParams }> = {
  v1: {
    description: 'Example multimodal dataset: 8x8 images with a blob whose position depends on the class, and bag-of-words counts over 16 words.',
    params: { brightness: 0, contrast: 1, background: 0.1, noise: 0.12, textLength: [6, 14], commonWeight: 2, confusion: 0.12, gradient: 0, trending: {} },
  },
  v2: {
    description: 'v1 under covariate shift: brighter images lit from the right (brightness rising left to right) and the words kite and owl trending in every class; same classes, same labelling.',
    params: { brightness: 0.15, contrast: 1, background: 0.1, noise: 0.12, textLength: [6, 14], commonWeight: 2, confusion: 0.12, gradient: 0.35, trending: { kite: 6, owl: 4 } },
  },
};

/** Blob centres (row, column) per class. */
const CENTRES: [number, number][] = [
  [1.8, 1.8],
  [1.8, 5.2],
  [5.4, 3.5],
];

const round3 = (v: number) => Math.round(v * 1000) / 1000;

/** One example; pure arithmetic on the PRNG stream (no transcendental functions), so it is identical everywhere. */
function generateExample(rng: Prng, p: GeneratorParams): { label: number; image: number[]; text: number[] } {
  const label = rng.int(0, 2);
  let centre = label;
  if (rng.uniform() < p.confusion) centre = (label + rng.int(1, 2)) % 3;
  const cy = CENTRES[centre]![0] + rng.range(-1.2, 1.2);
  const cx = CENTRES[centre]![1] + rng.range(-1.2, 1.2);
  const amplitude = rng.range(0.35, 0.75);
  const width2 = rng.range(1.0, 2.2);
  const image: number[] = [];
  for (let r = 0; r < 8; r++) {
    for (let c = 0; c < 8; c++) {
      const d2 = (r - cy) * (r - cy) + (c - cx) * (c - cx);
      let v = p.background + amplitude / (1 + d2 / width2) + p.noise * rng.normal();
      v = v * p.contrast + p.brightness + (p.gradient * c) / 7;
      image.push(round3(Math.min(1, Math.max(0, v))));
    }
  }
  const weights = EXAMPLE_VOCABULARY.map((w, i) => p.trending[w] ?? (i >= 12 ? p.commonWeight : Math.floor(i / 4) === label ? 3 : 1));
  const total = weights.reduce((a, b) => a + b, 0);
  const text = new Array<number>(EXAMPLE_VOCABULARY.length).fill(0);
  const words = rng.int(p.textLength[0], p.textLength[1]);
  for (let i = 0; i < words; i++) {
    const w = rng.categorical(weights, total);
    text[w] = text[w]! + 1;
  }
  return { label, image, text };
}

function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export interface GenerateOptions {
  out: string;
  version: 'v1' | 'v2';
  seed?: number;
  trainRows?: number;
  testRows?: number;
}

export interface GenerateResult {
  dir: string;
  spec: DatasetSpec;
  files: { path: string; bytes: number; sha256: string }[];
}

/** Writes the example dataset (dataset.yaml, train.jsonl, test.jsonl) into `out`; same options → same bytes. */
export async function generateExampleDataset(o: GenerateOptions): Promise<GenerateResult> {
  const preset = DATASET_VERSIONS[o.version];
  if (!preset) throw new AegisError('USAGE', `unknown dataset version ${String(o.version)}`, { hint: 'Use --version v1 or --version v2.' });
  const seed = o.seed ?? DEFAULT_DATASET_SEED;
  const rows = { train: o.trainRows ?? 4000, test: o.testRows ?? 1000 };
  for (const [k, n] of Object.entries(rows)) {
    if (!Number.isSafeInteger(n) || n < 1 || n > 1_000_000) throw new AegisError('USAGE', `${k} rows must be an integer from 1 to 1000000 (got ${n})`, { hint: 'Pass e.g. --train-rows 4000.' });
  }
  if (!Number.isSafeInteger(seed)) throw new AegisError('USAGE', `seed must be an integer (got ${seed})`, { hint: 'Pass e.g. --seed 1.' });
  const dir = resolve(o.out);
  await mkdir(dir, { recursive: true });
  const files: GenerateResult['files'] = [];
  const splits = {} as DatasetSpec['splits'];
  for (const split of ['train', 'test'] as const) {
    // Each split has its own stream, so the test split does not depend on the number of training rows.
    const rng = new Prng(`${GENERATOR_NAME}/${GENERATOR_VERSION}/${seed}/${o.version}/${split}`);
    const lines: string[] = [];
    for (let i = 0; i < rows[split]; i++) lines.push(JSON.stringify(generateExample(rng, preset.params)));
    const text = lines.join('\n') + '\n';
    const path = `${split}.jsonl`;
    await writeAtomic(join(dir, path), text);
    const digest = sha256(text);
    splits[split] = { path, rows: rows[split], sha256: digest };
    files.push({ path, bytes: Buffer.byteLength(text), sha256: digest });
  }
  const spec: DatasetSpec = {
    apiVersion: 'aegis.dev/v1',
    kind: 'Dataset',
    name: 'example_multimodal',
    version: o.version,
    description: preset.description,
    task: 'classification',
    label: { name: 'label', classes: [...EXAMPLE_CLASSES] },
    features: [
      { name: 'image', dtype: 'float32', shape: [1, 8, 8], description: 'grayscale 8x8 image in [0, 1], row-major; the blob position depends on the class' },
      { name: 'text', dtype: 'float32', shape: [16], description: 'bag-of-words counts over the vocabulary', elementNames: [...EXAMPLE_VOCABULARY] },
    ],
    splits,
    generator: { name: GENERATOR_NAME, version: GENERATOR_VERSION, seed, params: { ...preset.params } },
  };
  const doc = new Document(spec);
  // Lists of scalars (shapes, classes, vocabulary) on one line.
  visit(doc, {
    Seq(_, node) {
      if (node.items.every((i) => isScalar(i))) node.flow = true;
    },
  });
  doc.commentBefore = ` Generated by \`aegis dataset generate --version ${o.version} --seed ${seed}\`; do not edit (the split files are pinned by sha256).`;
  const yaml = doc.toString({ lineWidth: 0, flowCollectionPadding: false });
  await writeAtomic(join(dir, DATASET_FILE), yaml);
  files.push({ path: DATASET_FILE, bytes: Buffer.byteLength(yaml), sha256: sha256(yaml) });
  return { dir, spec, files };
}

async function writeAtomic(path: string, data: string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, data);
  await rename(tmp, path);
}

// ---------------------------------------------------------------------------
// Reader
// ---------------------------------------------------------------------------

export function parseDatasetSpec(text: string, source: string): DatasetSpec {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw invalid(source, `not valid YAML (${(err as Error).message.split('\n')[0]})`);
  }
  const r = datasetSchema.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw invalid(source, `${i.path.map(String).join('.') || '(root)'}: ${i.message}`);
  }
  const names = new Set<string>();
  for (const f of r.data.features) {
    if (f.name === r.data.label.name || names.has(f.name)) throw invalid(source, `feature name ${f.name} is used twice`);
    if (f.elementNames && f.elementNames.length !== featureSize(f)) throw invalid(source, `feature ${f.name} has ${f.elementNames.length} elementNames for ${featureSize(f)} values`);
    names.add(f.name);
  }
  if (r.data.label.classes.length > 255) throw invalid(source, 'at most 255 classes are supported');
  for (const s of Object.values(r.data.splits)) {
    if (isAbsolute(s.path) || s.path.split(/[\\/]/).includes('..')) throw invalid(source, `split path ${s.path} must stay inside the dataset directory`);
  }
  return r.data;
}

async function readText(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw fsError(err, path, what);
  }
}

function parseSplit(bytes: Buffer, path: string, spec: DatasetSpec, expectedRows: number): Split {
  const text = bytes.toString('utf8');
  const sizes = spec.features.map(featureSize);
  const features = sizes.map((s) => new Float32Array(expectedRows * s));
  const labels = new Uint8Array(expectedRows);
  const classes = spec.label.classes.length;
  let row = 0;
  let lineNo = 0;
  for (const line of text.split('\n')) {
    lineNo++;
    if (line.trim() === '') continue;
    const where = `${path}:${lineNo}`;
    if (row >= expectedRows) throw invalid(path, `more rows than the ${expectedRows} dataset.yaml declares (line ${lineNo})`);
    let rec: Record<string, unknown>;
    try {
      rec = JSON.parse(line) as Record<string, unknown>;
    } catch (err) {
      throw invalid(where, `not JSON (${(err as Error).message})`);
    }
    if (!rec || typeof rec !== 'object' || Array.isArray(rec)) throw invalid(where, 'not a JSON object');
    const label = rec[spec.label.name];
    if (typeof label !== 'number' || !Number.isInteger(label) || label < 0 || label >= classes) {
      throw invalid(where, `${spec.label.name} must be a class index from 0 to ${classes - 1} (got ${JSON.stringify(label)})`);
    }
    labels[row] = label;
    spec.features.forEach((f, k) => {
      const v = rec[f.name];
      const size = sizes[k]!;
      if (!Array.isArray(v) || v.length !== size) throw invalid(where, `${f.name} must be an array of ${size} numbers (shape [${f.shape.join(', ')}] flattened)`);
      const dst = features[k]!;
      for (let j = 0; j < size; j++) {
        const x = v[j] as unknown;
        if (typeof x !== 'number' || !Number.isFinite(x)) throw invalid(where, `${f.name}[${j}] is not a finite number`);
        dst[row * size + j] = x;
      }
    });
    row++;
  }
  if (row !== expectedRows) throw invalid(path, `has ${row} rows but dataset.yaml declares ${expectedRows}`);
  return { rows: row, features, labels };
}

/** Reads a dataset directory (a path or file:// URI) and checks every row against dataset.yaml. */
export async function readDataset(uri: string): Promise<Dataset> {
  const dir = datasetPath(uri);
  const specPath = join(dir, DATASET_FILE);
  let specBytes: Buffer;
  try {
    specBytes = await readFile(specPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new AegisError('DATASET_INVALID', `${dir} is not a dataset: it has no ${DATASET_FILE}`, {
        hint: 'Pass a directory made by `aegis dataset generate` (e.g. examples/datasets/example_multimodal/v1).',
        details: { path: specPath },
      });
    }
    throw fsError(err, specPath, 'dataset description');
  }
  const spec = parseDatasetSpec(specBytes.toString('utf8'), specPath);
  const load = async (name: 'train' | 'test'): Promise<Split> => {
    const s = spec.splits[name];
    const path = join(dir, s.path);
    const bytes = await readText(path, `${name} split`);
    if (s.sha256 && sha256(bytes) !== s.sha256) {
      throw invalid(path, `its sha256 ${sha256(bytes).slice(0, 16)}… differs from the one in ${DATASET_FILE} (${s.sha256.slice(0, 16)}…)`, 'The file changed after the dataset was written: regenerate it, or update (or remove) its sha256 in dataset.yaml if the change is intended.');
    }
    return parseSplit(bytes, path, spec, s.rows);
  };
  const [train, test] = [await load('train'), await load('test')];
  return { dir, spec, digest: `sha256:${sha256(specBytes)}`, train, test };
}
