import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Buckets from 0.25 ms to 10 s: small models answer in well under a millisecond. */
export const LATENCY_BUCKETS = [0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export interface ServerMetrics {
  registry: Registry;
  requests: Counter<'model' | 'version' | 'track' | 'code'>;
  duration: Histogram<'model' | 'version' | 'track'>;
  info: Gauge<'model' | 'version' | 'digest' | 'signer'>;
  loads: Counter<'outcome'>;
  /** Drift monitor (src/drift): per-feature score, the model's verdict, share of drifted features, window fill, and the datasets for retraining. */
  driftScore: Gauge<'model' | 'version' | 'feature'>;
  driftDetected: Gauge<'model' | 'version'>;
  driftShare: Gauge<'model' | 'version'>;
  driftWindowRows: Gauge<'model' | 'version'>;
  driftDataset: Gauge<'model' | 'version' | 'dataset_uri' | 'reference_dataset_uri'>;
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
    driftScore: new Gauge({
      name: 'aegis_model_drift_score',
      help: "Drift score per input feature against the model's reference profile: a p-value (ks, chisquare, z: drift when below the threshold) or a distance (wasserstein, jensenshannon, psi, mahalanobis: drift when at or above it). See GET /v2/models/{name}/drift.",
      labelNames: ['model', 'version', 'feature'],
      registers: [registry],
    }),
    driftDetected: new Gauge({
      name: 'aegis_model_drift_detected',
      help: 'Whether the live inputs have drifted from the reference profile (1) or not (0): dataset drift (share of drifted features at or above the threshold) or a multivariate check. Absent until the window holds the minimum rows.',
      labelNames: ['model', 'version'],
      registers: [registry],
    }),
    driftShare: new Gauge({
      name: 'aegis_model_drift_share',
      help: 'Share of input features whose drift test fired in the last evaluation.',
      labelNames: ['model', 'version'],
      registers: [registry],
    }),
    driftWindowRows: new Gauge({
      name: 'aegis_model_drift_window_rows',
      help: 'Rows in the drift monitor sliding window at the last evaluation.',
      labelNames: ['model', 'version'],
      registers: [registry],
    }),
    driftDataset: new Gauge({
      name: 'aegis_model_drift_dataset_info',
      help: 'Datasets behind the drift verdict (value 1): dataset_uri to retrain on (carried by the ModelDrift alert) and the reference (training) dataset.',
      labelNames: ['model', 'version', 'dataset_uri', 'reference_dataset_uri'],
      registers: [registry],
    }),
  };
}
