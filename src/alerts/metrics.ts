import { Counter, Registry } from 'prom-client';

/**
 * The receiver's Prometheus metrics, registered in the registry the control
 * plane passes (or a new one):
 * - aegis_alert_notifications_accepted_total: stored notifications that held at least one alert not seen before (or a new state of one);
 * - aegis_alert_notifications_deduplicated_total: stored notifications that held nothing new (Alertmanager re-sends, retries);
 * - aegis_alert_notifications_rejected_total{reason}: refused (unauthorized, invalid, too_large, store_failed);
 * - aegis_alert_retrain_triggers_total{outcome}: retrain triggers recorded (created) and their start calls (started, start_failed).
 */
export type RejectReason = 'unauthorized' | 'invalid' | 'too_large' | 'store_failed';

export interface AlertMetrics {
  registry: Registry;
  accepted: Counter;
  deduplicated: Counter;
  rejected: Counter<'reason'>;
  triggers: Counter<'outcome'>;
}

export function createAlertMetrics(registry: Registry = new Registry()): AlertMetrics {
  return {
    registry,
    accepted: new Counter({
      name: 'aegis_alert_notifications_accepted_total',
      help: 'Alertmanager notifications stored that held at least one new alert or alert state.',
      registers: [registry],
    }),
    deduplicated: new Counter({
      name: 'aegis_alert_notifications_deduplicated_total',
      help: 'Alertmanager notifications stored that held nothing new (re-sends and retries of alerts already recorded).',
      registers: [registry],
    }),
    rejected: new Counter({
      name: 'aegis_alert_notifications_rejected_total',
      help: 'Alertmanager notifications refused, by reason (unauthorized, invalid, too_large, store_failed).',
      labelNames: ['reason'],
      registers: [registry],
    }),
    triggers: new Counter({
      name: 'aegis_alert_retrain_triggers_total',
      help: 'Retrain triggers made by alerts: created, started, start_failed.',
      labelNames: ['outcome'],
      registers: [registry],
    }),
  };
}
