import { formatGoDuration } from '../../duration.js';
import type { ResolvedMetric } from '../../spec.js';
import { providerError, type MeasureContext, type MetricProvider, type ProviderMeasurement } from '../types.js';

/** Largest answer read from Prometheus; an instant query for a canary judgement is a few hundred bytes. */
const MAX_BODY_BYTES = 8 * 1024 * 1024;

/**
 * Instant queries over Prometheus' HTTP API (`GET {address}/api/v1/query?query=…`),
 * read the way Argo Rollouts' prometheus provider reads them
 * (metricproviders/prometheus/prometheus.go, processResponse):
 *  - a scalar gives a number, an instant vector a number[] (one per series, in
 *    Prometheus' order), so conditions say `result` or `result[0]`;
 *  - an empty vector (no series matched) is the empty array `[]`, not an error: the
 *    conditions see it (`len(result) == 0`, or `result[0]` → evaluation error → Error
 *    measurement), and the judge's missing-data guard makes it Inconclusive;
 *  - NaN, +Inf and -Inf sample values are kept as such;
 *  - a matrix or string result is an Error ("Prometheus metric type not supported");
 *  - an unreachable server, a timeout (default 30 s, Argo's), an HTTP error or an
 *    `{"status":"error"}` answer is an Error measurement with the reason.
 * No `time` parameter is sent: Prometheus evaluates at its own "now", so the
 * controller's clock cannot skew the window.
 */
export class PrometheusProvider implements MetricProvider {
  readonly kind = 'prometheus';

  async measure(metric: ResolvedMetric, context: MeasureContext): Promise<ProviderMeasurement> {
    const p = metric.provider;
    if (p.kind !== 'prometheus') return providerError(`metric ${metric.name} has no prometheus provider`);
    const base = p.address.endsWith('/') ? p.address : `${p.address}/`;
    const url = new URL('api/v1/query', base);
    url.searchParams.set('query', p.query);
    const where = `Prometheus at ${p.address}`;
    const timeout = AbortSignal.timeout(p.timeoutMs);
    const signal = context.signal ? AbortSignal.any([timeout, context.signal]) : timeout;

    let status: number;
    let text: string;
    try {
      const res = await fetch(url, { signal, headers: { accept: 'application/json' } });
      status = res.status;
      text = await readCapped(res);
    } catch (err) {
      if (timeout.aborted) return providerError(`${where} did not answer within ${formatGoDuration(p.timeoutMs)} (provider.prometheus.timeout)`);
      if (context.signal?.aborted) return providerError(`measurement of ${metric.name} was cancelled`);
      return providerError(`cannot query ${where}: ${describeFetchError(err)}`);
    }

    let body: PromResponse;
    try {
      body = JSON.parse(text) as PromResponse;
    } catch {
      return providerError(`${where} answered HTTP ${status} with a body that is not JSON: ${JSON.stringify(text.slice(0, 200))}`);
    }
    if (body?.status !== 'success') {
      const kind = body?.errorType ? `${body.errorType}: ` : '';
      return providerError(`${where} refused the query (HTTP ${status}): ${kind}${body?.error ?? 'no error message'}`);
    }
    if (status < 200 || status > 299) return providerError(`${where} answered HTTP ${status}`);

    const data = body.data;
    const warnings = Array.isArray(body.warnings) && body.warnings.length ? `Prometheus warnings: ${body.warnings.map((w) => JSON.stringify(w)).join(', ')}` : undefined;
    const withWarnings = (m: ProviderMeasurement): ProviderMeasurement => (warnings ? { ...m, message: m.message ? `${m.message}; ${warnings}` : warnings } : m);
    switch (data?.resultType) {
      case 'scalar': {
        const v = sampleValue(data.result);
        if (v === undefined) return providerError(`${where} answered a malformed scalar: ${JSON.stringify(data.result).slice(0, 200)}`);
        return withWarnings({ value: v });
      }
      case 'vector': {
        if (!Array.isArray(data.result)) return providerError(`${where} answered a malformed vector`);
        const values: number[] = [];
        for (const sample of data.result as Array<{ value?: unknown } | null>) {
          if (sample === null) continue; // prometheus.go skips nil samples
          const v = sampleValue(sample.value);
          if (v === undefined) return providerError(`${where} answered a malformed sample: ${JSON.stringify(sample).slice(0, 200)}`);
          values.push(v);
        }
        return withWarnings({ value: values });
      }
      default:
        return providerError(
          `Prometheus metric type not supported: the query returned ${JSON.stringify(data?.resultType ?? null)}; ` +
            'write an instant query that returns a scalar or a vector (e.g. wrap a range selector in rate(…) or sum(…))',
        );
    }
  }
}

interface PromResponse {
  status?: string;
  errorType?: string;
  error?: string;
  warnings?: unknown[];
  data?: { resultType?: string; result?: unknown };
}

/** `[ <unix time>, "<value>" ]`; Prometheus writes NaN, +Inf and -Inf as such. */
function sampleValue(pair: unknown): number | undefined {
  if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[1] !== 'string') return undefined;
  const s = pair[1];
  if (s === 'NaN') return NaN;
  if (s === '+Inf' || s === 'Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  const v = Number(s);
  return s.trim() !== '' && !Number.isNaN(v) ? v : undefined;
}

async function readCapped(res: Response): Promise<string> {
  if (!res.body) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of res.body) {
    size += chunk.byteLength;
    if (size > MAX_BODY_BYTES) {
      await res.body.cancel().catch(() => {});
      throw new Error(`answer larger than ${MAX_BODY_BYTES / 1024 / 1024} MiB`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function describeFetchError(err: unknown): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  const cause = e?.cause;
  if (cause?.code) return `${cause.code}${cause.message ? ` (${cause.message})` : ''}`;
  return cause?.message ?? e?.message ?? String(err);
}
