/**
 * Drift verdicts on the real example: the committed reference profile of
 * examples/model_registry/example_multimodal/0.1 (trained on dataset v1)
 * against the v1 held-out split (no alarm) and the covariate-shifted v2
 * (alarm); the minimum window; Evidently's choice of test by reference size;
 * old (format-1) profiles; bad profiles and settings; the sliding window.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseManifest, type ModelManifest } from '../artifact/manifest.js';
import { isAegisError } from '../errors.js';
import { generateExampleDataset, readDataset, type Dataset, type Split } from '../training/dataset.js';
import { tempDir } from '../test-support/fs.js';
import { buildProfile, formatProfile } from '../training/profile.js';
import { DETECT_DEFAULTS, detect, methodFor, type DetectSettings, type Verdicts } from './detect.js';
import { DriftMonitor } from './monitor.js';
import { compileReference, loadReference, type Reference } from './reference.js';
import { KnotCdf, compareCdf } from './stats.js';
import { RowWindow } from './window.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const MODEL = join(REPO, 'examples/model_registry/example_multimodal/0.1');
let manifest: ModelManifest;
let ref: Reference;
let profileText: string;
let v1: Dataset;
let v2: Dataset;

beforeAll(async () => {
  manifest = parseManifest(await readFile(join(MODEL, 'aegis.yaml'), 'utf8'), 'aegis.yaml');
  profileText = await readFile(join(MODEL, 'profile.json'), 'utf8');
  ref = (await loadReference(MODEL, manifest))!;
  [v1, v2] = [await readDataset(join(REPO, 'examples/datasets/example_multimodal/v1')), await readDataset(join(REPO, 'examples/datasets/example_multimodal/v2'))];
});

/** Windows holding rows [from, from + rows) of a split. */
function windowsOf(r: Reference, split: Split, rows: number, from = 0): RowWindow[] {
  return r.inputs.map((input, k) => {
    const w = new RowWindow(rows, input.size);
    w.push(split.features[k]!.subarray(from * input.size, (from + rows) * input.size), rows);
    return w;
  });
}

const verdicts = async (r: Reference, split: Split, rows: number, s: Partial<DetectSettings> = {}): Promise<Verdicts> => (await detect(r, windowsOf(r, split, rows), { ...DETECT_DEFAULTS, ...s }))!;

describe('drift verdicts on the example model', () => {
  it('the committed profile has a sketch or frequency table for every feature and a multivariate summary of text', () => {
    expect(ref.exact).toBe(true);
    expect(ref.features).toHaveLength(80);
    expect(ref.features.filter((f) => f.kind === 'numeric').map((f) => f.input)).toEqual(Array(64).fill('image'));
    expect(ref.features.filter((f) => f.kind === 'categorical').map((f) => f.name)).toContain('text[kite]');
    expect(ref.multivariate.map((m) => [m.input, m.dims])).toEqual([['text', 16]]);
    expect(ref.prediction?.classes).toEqual(['top_left', 'top_right', 'bottom']);
  });

  it('raises no alarm on the v1 held-out split (1000 rows, same distribution as training)', async () => {
    const v = await verdicts(ref, v1.test, 1000);
    expect(v.rows).toBe(1000);
    expect(v.drift).toBe(false);
    expect(v.datasetDrift).toBe(false);
    expect(v.share.drifted).toBe(0);
    expect(v.multivariate[0]).toMatchObject({ input: 'text', drifted: false });
    // every image pixel gets the normed Wasserstein distance, every word count Jensen-Shannon (4000 reference rows > 1000)
    expect(new Set(v.features.filter((f) => f.kind === 'numeric').map((f) => f.method))).toEqual(new Set(['wasserstein']));
    expect(new Set(v.features.filter((f) => f.kind === 'categorical').map((f) => f.method))).toEqual(new Set(['jensenshannon']));
    for (const f of v.features) expect(f.score, f.name).toBeLessThan(0.1);
  });

  it('detects the shift of v2: brighter side-lit images and trending words', async () => {
    const v = await verdicts(ref, v2.test, 1000);
    expect(v.drift).toBe(true);
    expect(v.datasetDrift).toBe(true);
    expect(v.share.value).toBeGreaterThanOrEqual(0.5);
    const byName = new Map(v.features.map((f) => [f.name, f]));
    // every pixel is brighter by at least 0.15 (std ≈ 0.14)
    for (const f of v.features.filter((x) => x.input === 'image')) expect(f.drifted, f.name).toBe(true);
    expect(byName.get('text[kite]')).toMatchObject({ drifted: true });
    expect(byName.get('text[owl]')).toMatchObject({ drifted: true });
    expect(v.multivariate[0]).toMatchObject({ input: 'text', drifted: true });
    expect(v.multivariate[0]!.score).toBeGreaterThan(1);
  });

  it('raises no alarm on any of 10 windows of fresh v1 data (another seed, 1000 rows each)', async () => {
    const dir = await tempDir('aegis-drift-v1-');
    try {
      await generateExampleDataset({ out: dir.path, version: 'v1', seed: 2, trainRows: 10_000, testRows: 1 });
      const fresh = (await readDataset(dir.path)).train;
      let featureAlarms = 0;
      for (let w = 0; w < 10; w++) {
        const v = (await detect(ref, windowsOf(ref, fresh, 1000, w * 1000), DETECT_DEFAULTS))!;
        expect(v.drift, `window ${w}`).toBe(false);
        featureAlarms += v.share.drifted;
      }
      expect(featureAlarms).toBeLessThan(16); // < 2% of the 800 feature tests
    } finally {
      await dir.cleanup();
    }
  });

  it('catches a shift of the text input alone with the multivariate check, though most features are unchanged', async () => {
    // v1 images with v2 texts: 2 of 80 features drift (far below the 0.5 share), the embedding mean moves
    const mixed: Split = { rows: 1000, labels: v1.test.labels, features: [v1.test.features[0]!, v2.test.features[1]!] };
    const v = await verdicts(ref, mixed, 1000);
    expect(v.datasetDrift).toBe(false);
    expect(v.share.drifted).toBeLessThan(10);
    expect(v.multivariate[0]!.drifted).toBe(true);
    expect(v.drift).toBe(true);
  });

  it('gives no verdict below the minimum window (default 1000 rows), one at it', async () => {
    expect(DETECT_DEFAULTS.minRows).toBe(1000);
    expect(await detect(ref, windowsOf(ref, v2.test, 999), DETECT_DEFAULTS)).toBeUndefined();
    expect(await detect(ref, windowsOf(ref, v2.test, 1000), DETECT_DEFAULTS)).toMatchObject({ drift: true });
    expect(await detect(ref, windowsOf(ref, v2.test, 200), { ...DETECT_DEFAULTS, minRows: 200 })).toMatchObject({ drift: true });
  });

  it('offers PSI and KS for numeric features and chi-square for categorical ones, with their thresholds', async () => {
    const s: Partial<DetectSettings> = { numericMethod: 'psi', categoricalMethod: 'chisquare' };
    const quiet = await verdicts(ref, v1.test, 1000, s);
    const shifted = await verdicts(ref, v2.test, 1000, s);
    expect(new Set(quiet.features.map((f) => f.method))).toEqual(new Set(['psi', 'chisquare']));
    expect(quiet.datasetDrift).toBe(false);
    expect(shifted.datasetDrift).toBe(true);
    const ks = await verdicts(ref, v2.test, 1000, { numericMethod: 'ks', features: { 'text[kite]': { method: 'jensenshannon', threshold: 0.5 } } });
    const kite = ks.features.find((f) => f.name === 'text[kite]')!;
    expect(kite).toMatchObject({ method: 'jensenshannon', threshold: 0.5 });
    expect(kite.score).toBeLessThan(0.5); // so the raised threshold keeps it quiet
    expect(kite.drifted).toBe(false);
    const pixel = ks.features.find((f) => f.input === 'image')!;
    expect(pixel).toMatchObject({ method: 'ks', threshold: 0.05, drifted: true });
    expect(pixel.score).toBeLessThan(1e-10);
  });

  it('the 101-point sketch gives the exact test results within 0.01 on the real data', () => {
    let worstW = 0;
    let worstKs = 0;
    for (const split of [v1.test, v2.test]) {
      for (const f of ref.features.filter((x) => x.kind === 'numeric')) {
        if (f.kind !== 'numeric') continue;
        const column = (s: Split) => Float64Array.from({ length: s.rows }, (_, r) => s.features[0]![r * 64 + f.index]!);
        const exact = KnotCdf.fromSample(column(v1.train));
        const cur = column(split).sort();
        const a = compareCdf(f.cdf, cur);
        const b = compareCdf(exact, cur);
        worstW = Math.max(worstW, Math.abs(a.wasserstein - b.wasserstein) / f.std);
        worstKs = Math.max(worstKs, Math.abs(a.ks - b.ks));
      }
    }
    expect(worstW).toBeLessThan(0.01);
    expect(worstKs).toBeLessThan(0.01);
  });
});

describe("the choice of test follows Evidently's rule on the reference size", () => {
  const small = (rows: number) => {
    // x: continuous; c[0] (even positions): 3 categories; c[1] (odd positions): 2 categories
    const data = [Float32Array.from({ length: rows }, (_, i) => ((i * 7919) % 1000) / 1000), Float32Array.from({ length: rows * 2 }, (_, i) => (i % 2 === 0 ? (i >> 1) % 3 : (i >> 1) % 2))];
    const p = buildProfile({
      model: { name: 'm', version: '1' },
      dataset: { uri: 'd', split: 'train' },
      features: [
        { name: 'x', dtype: 'float32', shape: [1] },
        { name: 'c', dtype: 'float32', shape: [2] },
      ],
      data,
      rows,
    });
    return compileReference(formatProfile(p), 'small', {
      inputs: [
        { name: 'x', dtype: 'float32', shape: [-1, 1] },
        { name: 'c', dtype: 'float32', shape: [-1, 2] },
      ],
      outputs: [{ name: 'y', dtype: 'float32', shape: [-1, 1] }],
    });
  };

  it('≤ 1000 reference rows: KS for numeric, chi-square (z for two categories); more: Wasserstein and Jensen–Shannon', () => {
    const r = small(1000);
    const kinds = r.features.map((f) => [f.name, f.kind, f.kind === 'categorical' ? f.values.length : 0, methodFor(f, DETECT_DEFAULTS)]);
    expect(kinds).toEqual([
      ['x[0]', 'numeric', 0, 'ks'],
      ['c[0]', 'categorical', 3, 'chisquare'],
      ['c[1]', 'categorical', 2, 'z'],
    ]);
    expect(small(1001).features.map((f) => methodFor(f, DETECT_DEFAULTS))).toEqual(['wasserstein', 'jensenshannon', 'jensenshannon']);
  });
});

describe('reference profiles', () => {
  it('still reads a format-1 profile (no kind, sketch or multivariate) with a coarser CDF, and still tells v1 from v2', async () => {
    const doc = JSON.parse(profileText) as { inputs: { features: Record<string, unknown>[]; multivariate?: unknown }[] };
    for (const input of doc.inputs) {
      delete input.multivariate;
      for (const f of input.features) {
        delete f.kind;
        delete f.sketch;
        delete f.categories;
      }
    }
    const old = compileReference(JSON.stringify(doc), 'old profile.json', manifest);
    expect(old.exact).toBe(false);
    expect(old.features.every((f) => f.kind === 'numeric')).toBe(true);
    expect(old.multivariate).toEqual([]);
    expect((await verdicts(old, v1.test, 1000)).drift).toBe(false);
    expect((await verdicts(old, v2.test, 1000)).drift).toBe(true);
  });

  it('refuses a profile that does not fit the model, or is not a profile, naming the problem', () => {
    const bad = (text: string, pattern: RegExp) => {
      let err: unknown;
      try {
        compileReference(text, 'profile.json', manifest);
      } catch (e) {
        err = e;
      }
      expect(isAegisError(err, 'DRIFT_PROFILE_INVALID'), String(err)).toBe(true);
      expect((err as Error).message).toMatch(pattern);
    };
    bad('{"apiVersion": ', /not JSON/);
    bad('{"kind": "Model"}', /apiVersion/);
    bad(profileText.replace('"name": "image"', '"name": "picture"'), /input picture is not an input of the model/);
    const doc = JSON.parse(profileText);
    doc.inputs[1].features.pop();
    bad(JSON.stringify(doc), /input text has 15 features, the model's input has 16 elements/);
    const dec = JSON.parse(profileText);
    dec.inputs[0].features[0].sketch[5] = -1;
    bad(JSON.stringify(dec), /non-decreasing/);
  });

  it('has no reference when the manifest names no profile, and refuses a profile path outside the model', async () => {
    expect(await loadReference(MODEL, { ...manifest, labels: {} })).toBeUndefined();
    await expect(loadReference(MODEL, { ...manifest, labels: { profile: '../../../etc/passwd' } })).rejects.toMatchObject({ code: 'DRIFT_PROFILE_INVALID' });
    await expect(loadReference(MODEL, { ...manifest, labels: { profile: 'missing.json' } })).rejects.toMatchObject({ code: 'DRIFT_PROFILE_INVALID' });
  });
});

describe('sliding window', () => {
  it('keeps exactly the newest rows across wrap-around, from typed arrays, plain arrays and int64', () => {
    const w = new RowWindow(3, 2);
    w.push(Float32Array.from([1, 1, 2, 2]), 2);
    w.push([3, 3, 4, 4], 2);
    w.push(BigInt64Array.from([5n, 5n]), 1);
    expect(w.rows).toBe(3);
    expect(w.total).toBe(5);
    const col = new Float32Array(3);
    w.column(0, col);
    expect([...col].sort()).toEqual([3, 4, 5]);
    // a batch larger than the window keeps its last rows
    w.push(Float32Array.from([6, 6, 7, 7, 8, 8, 9, 9]), 4);
    w.column(1, col);
    expect([...col].sort()).toEqual([7, 8, 9]);
    expect(() => new RowWindow(0, 2)).toThrow(/capacity/);
    // wide rows (the typed-array copy path), wrapping in the middle of a batch
    const wide = new RowWindow(3, 64);
    const rows = (first: number, n: number) => Float32Array.from({ length: n * 64 }, (_, i) => first + Math.floor(i / 64));
    wide.push(rows(1, 2), 2);
    wide.push(rows(3, 2), 2);
    const c = new Float32Array(3);
    for (const j of [0, 63]) {
      wide.column(j, c);
      expect([...c].sort(), `column ${j}`).toEqual([2, 3, 4]);
    }
  });
});

describe('drift monitor', () => {
  const feed = (m: DriftMonitor, split: Split, rows: number, batch = 10) => {
    for (let r = 0; r < rows; r += batch) {
      m.observe({
        image: { dims: [batch, 1, 8, 8], data: split.features[0]!.subarray(r * 64, (r + batch) * 64) },
        text: { dims: [batch, 16], data: split.features[1]!.subarray(r * 16, (r + batch) * 16) },
      });
    }
  };

  it('reports insufficient data below the minimum window, then the verdict', async () => {
    const m = new DriftMonitor({ reference: ref, model: { name: 'example_multimodal', version: '0.1' }, settings: { windowRows: 2000 } });
    feed(m, v2.test, 500);
    const early = await m.evaluate();
    expect(early).toMatchObject({ status: 'insufficient_data', drift: null, features: [], window: { rows: 500, minRows: 1000, capacity: 2000 } });
    feed(m, v2.test, 1000);
    const late = await m.evaluate();
    expect(late).toMatchObject({ status: 'ok', drift: true, datasetDrift: true, window: { rows: 1500, folded: 1500 }, datasetUri: 'examples/datasets/example_multimodal/v1' });
    expect(late.reference).toMatchObject({ rows: 4000, sketches: true, datasetUri: 'examples/datasets/example_multimodal/v1' });
    // cached while no new rows arrive
    expect(await m.evaluate()).toBe(late);
  });

  it('folds only the sampled share of requests, and ignores requests whose inputs disagree on the batch', async () => {
    let i = 0;
    const m = new DriftMonitor({ reference: ref, model: { name: 'm', version: '1' }, settings: { sampleRate: 0.25, datasetUri: 's3://bucket/datasets/v2/' }, random: () => [0.1, 0.5, 0.9, 0.3][i++ % 4]! });
    feed(m, v1.test, 400, 1);
    expect(m.folded).toBe(100);
    m.observe({ image: { dims: [2, 1, 8, 8], data: new Float32Array(128) }, text: { dims: [1, 16], data: new Float32Array(16) } });
    m.observe({ image: { dims: [1, 1, 8, 8], data: new Float32Array(64) } });
    i = 0;
    expect(m.folded).toBe(100);
    expect((await m.evaluate()).datasetUri).toBe('s3://bucket/datasets/v2/');
  });

  it('watches the predicted classes against the training label distribution', async () => {
    const m = new DriftMonitor({ reference: ref, model: { name: 'm', version: '1' }, settings: { minRows: 100 } });
    // predictions always "bottom": far from the balanced training labels
    for (let r = 0; r < 200; r++) {
      m.observe(
        { image: { dims: [1, 1, 8, 8], data: v1.test.features[0]!.subarray(r * 64, r * 64 + 64) }, text: { dims: [1, 16], data: v1.test.features[1]!.subarray(r * 16, r * 16 + 16) } },
        { probabilities: { dims: [1, 3], data: Float32Array.from([0.1, 0.2, 0.7]) } },
      );
    }
    const r = await m.evaluate();
    expect(r.prediction).toMatchObject({ name: 'probabilities[argmax]', method: 'jensenshannon', drifted: true });
    expect(r.prediction!.shares.find((s) => s.class === 'bottom')!.window).toBe(1);
  });

  it('refuses settings that do not fit the profile, naming them', () => {
    const make = (settings: ConstructorParameters<typeof DriftMonitor>[0]['settings']) => () => new DriftMonitor({ reference: ref, model: { name: 'm', version: '1' }, settings });
    expect(make({ features: { 'image[0,0,0]': { method: 'chisquare' } } })).toThrow(/image\[0,0,0\] is numeric; chisquare is for categorical features/);
    expect(make({ features: { nope: { threshold: 0.2 } } })).toThrow(/no feature "nope"/);
    expect(make({ windowRows: 100 })).toThrow(/smaller than the minimum/);
    expect(make({ sampleRate: 0 })).toThrow(/sample rate/);
  });
});
