import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Buckets from 0.25 ms to 10 s: small models answer in well under a millisecond. */
export const LATENCY_BUCKETS = [0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export interface ServerMetrics {
  registry: Registry;
  requests: Counter<'model' | 'version' | 'track' | 'code'>;
  duration: Histogram<'model' | 'version' | 'track'>;
  info: Gauge<'model' | 'version' | 'digest' | 'signer'>;
  loads: Counter<'outcome'>;
}

/** The model server's Prometheus metrics (conventional names, model/version/track labels). */
export function createServerMetrics(options: { defaultMetrics?: boolean } = {}): ServerMetrics {
  const registry = new Registry();
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry });
  return {
    registry,
    requests: new Counter({
      name: 'aegis_inference_requests_total',
      help: 'Inference requests, by model, version, track (stable|canary) and HTTP status code.',
      labelNames: ['model', 'version', 'track', 'code'],
      registers: [registry],
    }),
    duration: new Histogram({
      name: 'aegis_inference_request_duration_seconds',
      help: 'Inference request latency, from request received to response sent.',
      labelNames: ['model', 'version', 'track'],
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    info: new Gauge({
      name: 'aegis_model_info',
      help: 'The model version being served (value 1), with its archive digest and signer key id.',
      labelNames: ['model', 'version', 'digest', 'signer'],
      registers: [registry],
    }),
    loads: new Counter({
      name: 'aegis_model_load_total',
      help: 'Model loads (start-up and hot swaps), by outcome (success|failure).',
      labelNames: ['outcome'],
      registers: [registry],
    }),
  };
}
