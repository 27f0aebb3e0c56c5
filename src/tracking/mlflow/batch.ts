import { AegisError } from '../../errors.js';
import type { MetricPoint, ParamValue } from '../types.js';

/**
 * What one `runs/log-batch` request may hold (MLflow REST API, "Log Batch" →
 * Request Limits; mlflow/utils/validation.py MAX_*): at most 1000 metrics, 100
 * params, 100 tags and 1000 entities in all, in a JSON body of at most 1 MB.
 * Keys are at most 250 characters; values at most 6000 (params, MLflow ≥ 2.x;
 * older servers took 500) and 8000 (tags). A server may truncate longer values
 * silently (MLFLOW_TRUNCATE_LONG_VALUES), so they are refused here instead.
 */
export interface LogBatchLimits {
  metricsPerBatch: number;
  paramsPerBatch: number;
  tagsPerBatch: number;
  entitiesPerBatch: number;
  requestBytes: number;
  keyLength: number;
  paramValueLength: number;
  tagValueLength: number;
}

export const MLFLOW_LIMITS: Readonly<LogBatchLimits> = Object.freeze({
  metricsPerBatch: 1000,
  paramsPerBatch: 100,
  tagsPerBatch: 100,
  entitiesPerBatch: 1000,
  requestBytes: 1_000_000,
  keyLength: 250,
  paramValueLength: 6000,
  tagValueLength: 8000,
});

/** Wire shapes (mlflow/protos/service.proto: Metric, Param, RunTag). */
export interface WireMetric {
  key: string;
  /** proto3 JSON writes non-finite doubles as the strings "NaN", "Infinity", "-Infinity". */
  value: number | 'NaN' | 'Infinity' | '-Infinity';
  timestamp: number;
  step: number;
}
export interface WireKeyValue {
  key: string;
  value: string;
}
export interface LogBatchBody {
  run_id: string;
  metrics: WireMetric[];
  params: WireKeyValue[];
  tags: WireKeyValue[];
}

export interface BatchInput {
  metrics?: readonly WireMetric[];
  params?: readonly WireKeyValue[];
  tags?: readonly WireKeyValue[];
}

/** Characters as Python's len() counts them (code points), which is what MLflow limits. */
function codePoints(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

function invalid(message: string, hint: string, details: Record<string, unknown>): AegisError {
  return new AegisError('TRACKING_INPUT_INVALID', message, { hint, details });
}

function checkKey(kind: string, key: string, limits: LogBatchLimits): void {
  if (typeof key !== 'string' || key.length === 0) {
    throw invalid(`${kind} key must be a non-empty string`, `Give every ${kind} a name.`, { kind });
  }
  if (codePoints(key) > limits.keyLength) {
    throw invalid(
      `${kind} key ${JSON.stringify(key.slice(0, 60))}… is ${codePoints(key)} characters; MLflow takes at most ${limits.keyLength}`,
      `Shorten the ${kind} name.`,
      { kind, key },
    );
  }
}

/** Params as MLflow stores them: strings. Duplicates with the same value are dropped; with another value refused. */
export function toWireParams(params: Readonly<Record<string, ParamValue>>, limits: LogBatchLimits = MLFLOW_LIMITS): WireKeyValue[] {
  const out: WireKeyValue[] = [];
  for (const [key, raw] of Object.entries(params)) {
    checkKey('param', key, limits);
    if (typeof raw !== 'string' && typeof raw !== 'number' && typeof raw !== 'boolean') {
      throw invalid(`param ${key} must be a string, number or boolean, not ${raw === null ? 'null' : typeof raw}`, 'Convert the value to text first.', { key });
    }
    const value = String(raw);
    const length = codePoints(value);
    if (length > limits.paramValueLength) {
      throw invalid(
        `param ${key} is ${length} characters long; MLflow keeps at most ${limits.paramValueLength}`,
        'Log long values (configs, file lists) as an artifact instead, and a short summary or digest as the param.',
        { key, length, limit: limits.paramValueLength },
      );
    }
    out.push({ key, value });
  }
  return out;
}

export function toWireTags(tags: Readonly<Record<string, string>>, limits: LogBatchLimits = MLFLOW_LIMITS): WireKeyValue[] {
  const out: WireKeyValue[] = [];
  for (const [key, value] of Object.entries(tags)) {
    checkKey('tag', key, limits);
    if (typeof value !== 'string') throw invalid(`tag ${key} must be a string, not ${value === null ? 'null' : typeof value}`, 'Convert the value to text first.', { key });
    const length = codePoints(value);
    if (length > limits.tagValueLength) {
      throw invalid(
        `tag ${key} is ${length} characters long; MLflow keeps at most ${limits.tagValueLength}`,
        'Log long values as an artifact instead.',
        { key, length, limit: limits.tagValueLength },
      );
    }
    out.push({ key, value });
  }
  return out;
}

/** Stamps each point once (so a resent request carries the same point, which MLflow stores once). */
export function toWireMetrics(points: readonly MetricPoint[], now: number, limits: LogBatchLimits = MLFLOW_LIMITS): WireMetric[] {
  return points.map((p, i) => {
    if (p === null || typeof p !== 'object') throw invalid(`metric #${i} is not an object`, 'Pass {key, value, step?, timestamp?} objects.', { index: i });
    checkKey('metric', p.key, limits);
    if (typeof p.value !== 'number') {
      throw invalid(`metric ${p.key} (#${i}) has a ${typeof p.value} value; MLflow takes numbers`, 'Pass the value as a number.', { key: p.key, index: i });
    }
    const step = p.step ?? 0;
    const timestamp = p.timestamp ?? now;
    if (!Number.isSafeInteger(step)) throw invalid(`metric ${p.key} (#${i}) has step ${step}; steps are integers`, 'Use an integer step (epoch, batch number).', { key: p.key, index: i });
    if (!Number.isSafeInteger(timestamp) || timestamp < 0) {
      throw invalid(`metric ${p.key} (#${i}) has timestamp ${timestamp}; MLflow takes ms since the epoch`, 'Use Date.now()-style integer milliseconds.', { key: p.key, index: i });
    }
    const v = p.value;
    const value: WireMetric['value'] = Number.isNaN(v) ? 'NaN' : v === Infinity ? 'Infinity' : v === -Infinity ? '-Infinity' : v;
    return { key: p.key, value, timestamp, step };
  });
}

/**
 * MLflow refuses a batch holding one param key twice, even with the same value
 * (_validate_param_keys_unique), and refuses to change a logged param. Identical
 * repeats are dropped, conflicting ones refused before anything is sent.
 */
function dedupeParams(params: readonly WireKeyValue[]): WireKeyValue[] {
  const seen = new Map<string, string>();
  const out: WireKeyValue[] = [];
  for (const p of params) {
    const prior = seen.get(p.key);
    if (prior === undefined) {
      seen.set(p.key, p.value);
      out.push(p);
    } else if (prior !== p.value) {
      throw invalid(
        `param ${p.key} is given twice with different values (${JSON.stringify(prior.slice(0, 40))}, ${JSON.stringify(p.value.slice(0, 40))})`,
        'Params are write-once in MLflow: log each key once per run; use a metric (with steps) for a value that changes.',
        { key: p.key },
      );
    }
  }
  return out;
}

/** Tags: the last value of a key wins (as MLflow does within one request); earlier ones are dropped. */
function dedupeTags(tags: readonly WireKeyValue[]): WireKeyValue[] {
  const last = new Map<string, WireKeyValue>();
  for (const t of tags) {
    last.delete(t.key);
    last.set(t.key, t);
  }
  return [...last.values()];
}

const utf8 = (v: unknown): number => Buffer.byteLength(JSON.stringify(v), 'utf8');

/**
 * Splits params, tags and metrics into `runs/log-batch` bodies, each within
 * every limit, keeping the order within each kind (MLflow applies a batch in
 * order, and the metric history is read in that order). Params go first, then
 * tags, then metrics; a body is closed when the next entity would break a
 * count or the byte limit (measured on the exact JSON that is sent).
 */
export function planLogBatches(runId: string, input: BatchInput, limits: LogBatchLimits = MLFLOW_LIMITS): LogBatchBody[] {
  const params = dedupeParams(input.params ?? []);
  const tags = dedupeTags(input.tags ?? []);
  const metrics = input.metrics ?? [];
  const empty = (): LogBatchBody => ({ run_id: runId, metrics: [], params: [], tags: [] });
  const baseBytes = utf8(empty());
  const bodies: LogBatchBody[] = [];
  let body = empty();
  let bytes = baseBytes;
  const entities = (b: LogBatchBody) => b.metrics.length + b.params.length + b.tags.length;
  const add = <K extends 'params' | 'tags' | 'metrics'>(kind: K, item: LogBatchBody[K][number], perBatch: number) => {
    // +1: the comma before every element but the first of its array (over-counts by one per array: harmless).
    const size = utf8(item) + 1;
    if (baseBytes + size > limits.requestBytes) {
      throw invalid(`one ${kind.slice(0, -1)} alone is larger than MLflow's ${limits.requestBytes}-byte request limit`, 'Log it as an artifact instead.', {
        key: item.key,
      });
    }
    if (body[kind].length >= perBatch || entities(body) >= limits.entitiesPerBatch || bytes + size > limits.requestBytes) {
      bodies.push(body);
      body = empty();
      bytes = baseBytes;
    }
    (body[kind] as Array<typeof item>).push(item);
    bytes += size;
  };
  for (const p of params) add('params', p, limits.paramsPerBatch);
  for (const t of tags) add('tags', t, limits.tagsPerBatch);
  for (const m of metrics) add('metrics', m, limits.metricsPerBatch);
  if (entities(body) > 0) bodies.push(body);
  return bodies;
}
