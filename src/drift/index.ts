/**
 * Drift monitoring: reference profiles (shipped inside the signed model),
 * sliding windows of live inputs, per-feature drift tests with Evidently's
 * defaults, a multivariate check for embedding-like inputs, and the report
 * the model server exposes (GET /v2/models/{name}/drift, the
 * aegis_model_drift_* gauges and the ModelDrift alert). See docs/drift.md.
 */
import type { AegisConfig } from '../config/index.js';
import { DRIFT_DEFAULTS, type DriftSettings } from './monitor.js';

export { DriftMonitor, DRIFT_DEFAULTS, type DriftReport, type DriftSettings, type TensorLike } from './monitor.js';
export { loadReference, compileReference, type Reference } from './reference.js';
export { DETECT_DEFAULTS, DEFAULT_THRESHOLDS, detect, type FeatureVerdict, type Method, type MultivariateVerdict, type Verdicts } from './detect.js';
export { RowWindow } from './window.js';

/** The model server's drift settings from the configuration's `drift` section; false when disabled. */
export function driftSettingsFromConfig(c: AegisConfig['drift']): Partial<DriftSettings> | false {
  if (!c.enabled) return false;
  return {
    windowRows: c.windowRows,
    minRows: c.minRows,
    intervalMs: Math.round(c.intervalSeconds * 1000),
    sampleRate: c.sampleRate,
    driftShare: c.driftShare,
    numericMethod: c.numericMethod,
    categoricalMethod: c.categoricalMethod,
    thresholds: { ...c.thresholds },
    features: Object.fromEntries(Object.entries(c.features).map(([k, v]) => [k, { ...v }])),
    multivariate: { ...DRIFT_DEFAULTS.multivariate, ...c.multivariate },
    ...(c.datasetUri ? { datasetUri: c.datasetUri } : {}),
  };
}
