/**
 * The Alertmanager receiver: authenticated, validated, deduplicated webhook
 * notifications that start retrains (through a RetrainTrigger the pipeline
 * implements) under a per-model cooldown and a concurrency cap. See docs/alerts.md.
 */
export {
  alertReceiverOptionsFromConfig,
  DEFAULT_BODY_LIMIT,
  DEFAULT_COOLDOWN_SECONDS,
  DEFAULT_HMAC_HEADER,
  registerAlertReceiver,
  type AlertReceiver,
  type AlertReceiverOptions,
} from './receiver.js';
export {
  drainPendingTriggers,
  listRetrainTriggers,
  MAX_START_ATTEMPTS,
  recordRetrainFinished,
  type DrainResult,
  type RetrainRequest,
  type RetrainTrigger,
  type TriggerRow,
  type TriggerState,
} from './store.js';
export { createAlertMetrics, type AlertMetrics } from './metrics.js';
export { compileFilter, parseMatcher, DEFAULT_FILTERS, type AlertFilterConfig } from './filters.js';
export { parsePayload, PAYLOAD_VERSION, type AlertmanagerAlert, type AlertmanagerPayload } from './payload.js';
export { labelsFingerprint } from './fingerprint.js';
export { signBody } from './auth.js';
