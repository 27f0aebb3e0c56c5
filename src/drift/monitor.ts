/**
 * The drift monitor of one served model version: folds each accepted
 * request's inputs (and predicted classes) into sliding windows on the
 * request path — a typed-array copy per input, no allocation — and tests the
 * windows against the model's reference profile every `intervalMs` and on
 * demand, one feature at a time with the event loop free in between.
 */
import { AegisError } from '../errors.js';
import { childLogger } from '../log.js';
import { DETECT_DEFAULTS, checkSettings, detect, type DetectSettings, type FeatureVerdict, type MultivariateVerdict, type PredictionVerdict } from './detect.js';
import type { Reference } from './reference.js';
import { RowWindow, type NumericData } from './window.js';

export interface DriftSettings extends DetectSettings {
  /** Rows each sliding window keeps (the newest). */
  windowRows: number;
  /** How often the tests rerun (when new rows arrived), milliseconds. */
  intervalMs: number;
  /** Share of requests folded into the windows (1: all; e.g. 0.1 under heavy traffic). */
  sampleRate: number;
  /** Where data for retraining is published (the ModelDrift alert's dataset_uri); default: the profile's dataset. */
  datasetUri?: string;
}

export const DRIFT_DEFAULTS: DriftSettings = { ...DETECT_DEFAULTS, windowRows: 10_000, intervalMs: 10_000, sampleRate: 1 };

/** A tensor as the model server holds it (decoded request input or model output). */
export interface TensorLike {
  dims: readonly number[];
  data: NumericData | string[] | boolean[];
}

export interface DriftReport {
  model: string;
  version: string;
  /** insufficient_data: fewer rows than minRows, no verdict yet. */
  status: 'ok' | 'insufficient_data';
  /** The model's verdict: dataset drift or a multivariate check; null without a verdict. */
  drift: boolean | null;
  evaluatedAt: string;
  window: { rows: number; capacity: number; minRows: number; folded: number; sampleRate: number };
  reference: { datasetUri: string; datasetDigest?: string; rows: number; sketches: boolean };
  /** Data to retrain on (settings.datasetUri, else the reference dataset). */
  datasetUri: string;
  datasetDrift?: boolean;
  share?: { drifted: number; total: number; value: number; threshold: number };
  features: FeatureVerdict[];
  multivariate: MultivariateVerdict[];
  prediction?: PredictionVerdict;
}

const log = () => childLogger('drift');
const nextTick = () => new Promise<void>((r) => setImmediate(r));

export class DriftMonitor {
  readonly reference: Reference;
  readonly settings: DriftSettings;
  readonly model: { name: string; version: string };
  readonly #windows: RowWindow[];
  readonly #predictions: RowWindow | undefined;
  readonly #classes: number;
  #argmax = new Float32Array(64);
  readonly #random: () => number;
  #last: DriftReport | undefined;
  #lastFolded = -1;
  #running: Promise<DriftReport> | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(o: { reference: Reference; model: { name: string; version: string }; settings?: Partial<DriftSettings>; random?: () => number }) {
    this.reference = o.reference;
    this.model = o.model;
    this.settings = { ...DRIFT_DEFAULTS, ...o.settings, multivariate: { ...DRIFT_DEFAULTS.multivariate, ...o.settings?.multivariate } };
    const s = this.settings;
    const problems = checkSettings(o.reference, s);
    if (!(Number.isSafeInteger(s.windowRows) && s.windowRows >= 1)) problems.push(`window rows must be a positive integer (got ${s.windowRows})`);
    if (s.windowRows < s.minRows) problems.push(`the window (${s.windowRows} rows) is smaller than the minimum for a verdict (${s.minRows})`);
    if (!(s.sampleRate > 0 && s.sampleRate <= 1)) problems.push(`sample rate must be in (0, 1] (got ${s.sampleRate})`);
    if (!(s.intervalMs >= 100)) problems.push(`interval must be at least 100 ms (got ${s.intervalMs})`);
    if (problems.length) {
      throw new AegisError('CONFIG_INVALID', `drift monitor settings for ${o.model.name}@${o.model.version}: ${problems.join('; ')}`, {
        hint: 'Fix the drift section of the configuration (docs/drift.md lists the settings).',
        details: { problems },
      });
    }
    this.#windows = o.reference.inputs.map((i) => new RowWindow(s.windowRows, i.size));
    this.#predictions = o.reference.prediction ? new RowWindow(s.windowRows, 1) : undefined;
    this.#classes = o.reference.prediction?.classes.length ?? 0;
    this.#random = o.random ?? Math.random;
  }

  /** Rows folded so far (before sampling drops any: only those folded). */
  get folded(): number {
    return this.#windows[0]?.total ?? 0;
  }

  get lastReport(): DriftReport | undefined {
    return this.#last;
  }

  /**
   * Folds one accepted request: O(batch × elements), no allocation. Inputs
   * that are missing or not numeric leave the request out entirely, so every
   * window holds the same rows.
   */
  observe(inputs: Readonly<Record<string, TensorLike>>, outputs?: Readonly<Record<string, TensorLike>>): void {
    if (this.settings.sampleRate < 1 && this.#random() >= this.settings.sampleRate) return;
    const ins = this.reference.inputs;
    let batch = -1;
    for (let k = 0; k < ins.length; k++) {
      const t = inputs[ins[k]!.name];
      if (!t || typeof t.data[0] === 'string' || typeof t.data[0] === 'boolean') return;
      const rows = t.dims[0] ?? 1;
      if (t.data.length !== rows * ins[k]!.size || (batch !== -1 && rows !== batch)) return;
      batch = rows;
    }
    if (batch <= 0) return;
    for (let k = 0; k < ins.length; k++) this.#windows[k]!.push(inputs[ins[k]!.name]!.data as NumericData, batch);
    const p = this.reference.prediction;
    const out = p && outputs?.[p.output];
    if (p && out && out.data.length === batch * this.#classes && this.#predictions) {
      if (this.#argmax.length < batch) this.#argmax = new Float32Array(Math.max(batch, this.#argmax.length * 2));
      const data = out.data as ArrayLike<number>;
      const k = this.#classes;
      for (let r = 0; r < batch; r++) {
        let best = 0;
        for (let c = 1; c < k; c++) if (data[r * k + c]! > data[r * k + best]!) best = c;
        this.#argmax[r] = best;
      }
      this.#predictions.push(this.#argmax, batch);
    }
  }

  /** Tests the windows now (or joins the run in progress); cached while no new rows arrived. */
  evaluate(): Promise<DriftReport> {
    if (this.#running) return this.#running;
    if (this.#last && this.#lastFolded === this.folded) return Promise.resolve(this.#last);
    const run = this.#evaluate().finally(() => {
      this.#running = undefined;
    });
    this.#running = run;
    return run;
  }

  async #evaluate(): Promise<DriftReport> {
    const folded = this.folded;
    const s = this.settings;
    const v = await detect(this.reference, this.#windows, s, { ...(this.#predictions ? { predictions: this.#predictions } : {}), yield: nextTick });
    const ref = this.reference;
    const report: DriftReport = {
      model: this.model.name,
      version: this.model.version,
      status: v ? 'ok' : 'insufficient_data',
      drift: v ? v.drift : null,
      evaluatedAt: new Date().toISOString(),
      window: { rows: Math.min(...this.#windows.map((w) => w.rows)), capacity: s.windowRows, minRows: s.minRows, folded, sampleRate: s.sampleRate },
      reference: { datasetUri: ref.dataset.uri, ...(ref.dataset.digest ? { datasetDigest: ref.dataset.digest } : {}), rows: ref.rows, sketches: ref.exact },
      datasetUri: s.datasetUri ?? ref.dataset.uri,
      ...(v ? { datasetDrift: v.datasetDrift, share: v.share } : {}),
      features: v?.features ?? [],
      multivariate: v?.multivariate ?? [],
      ...(v?.prediction ? { prediction: v.prediction } : {}),
    };
    if (report.drift !== null && report.drift !== this.#last?.drift) {
      const entry = { event: 'model_drift', model: report.model, version: report.version, drift: report.drift, share: report.share?.value, rows: report.window.rows };
      if (report.drift) log().warn(entry, 'model drift detected');
      else log().info(entry, 'model drift cleared');
    }
    this.#last = report;
    this.#lastFolded = folded;
    return report;
  }

  /** Reruns the tests every intervalMs while new rows arrive; `onReport` gets each report. */
  start(onReport: (r: DriftReport) => void): void {
    this.stop();
    const tick = () => {
      if (this.folded === this.#lastFolded && this.#last) return;
      this.evaluate().then(onReport, (err: unknown) => log().error({ event: 'drift_evaluation_failed', model: this.model.name, version: this.model.version, err: (err as Error).message }, 'drift evaluation failed'));
    };
    this.#timer = setInterval(tick, this.settings.intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
