import { z } from 'zod';

/**
 * The Alertmanager webhook payload, version 4 (the only version Alertmanager
 * has sent since 0.7; https://prometheus.io/docs/alerting/latest/configuration/#webhook_config).
 * Fields later Alertmanagers added (`truncatedAlerts`, `fingerprint`,
 * `groupKey`, `externalURL`, …) are optional, and unknown fields are kept
 * (loose objects), so a newer Alertmanager's additions pass through and are
 * stored with the raw payload.
 */

const STATUS = z.enum(['firing', 'resolved']);
const LABELS = z.record(z.string(), z.string());
/** RFC 3339 as Go's time.Time marshals it (nanoseconds, `Z` or an offset). */
const TIME = z.iso.datetime({ offset: true });

export const alertSchema = z.looseObject({
  status: STATUS,
  labels: LABELS,
  annotations: LABELS.default({}),
  startsAt: TIME,
  /** Alertmanager sends 0001-01-01T00:00:00Z for alerts without an end. */
  endsAt: TIME.optional(),
  generatorURL: z.string().optional(),
  /** Alertmanager >= 0.19; older payloads lack it and get a derived one (see fingerprint.ts). */
  fingerprint: z.string().regex(/^[0-9a-f]{1,64}$/i, 'must be a hex string such as "c4a3f1e0b2d9e8f7"').optional(),
});

export const payloadSchema = z.looseObject({
  version: z.string(),
  groupKey: z.string().default(''),
  truncatedAlerts: z.number().int().min(0).optional(),
  status: STATUS,
  receiver: z.string().default(''),
  groupLabels: LABELS.default({}),
  commonLabels: LABELS.default({}),
  commonAnnotations: LABELS.default({}),
  externalURL: z.string().optional(),
  alerts: z.array(alertSchema).min(1, 'must hold at least one alert'),
});

export type AlertmanagerAlert = z.infer<typeof alertSchema>;
export type AlertmanagerPayload = z.infer<typeof payloadSchema>;

/** The payload version this receiver speaks. */
export const PAYLOAD_VERSION = '4';

export interface PayloadProblem {
  /** JavaScript-style path of the offending field, e.g. `alerts[0].labels`; `(body)` for the whole body. */
  field: string;
  message: string;
  hint: string;
}

/** `['alerts', 0, 'labels']` → `alerts[0].labels`. */
export function fieldPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else if (typeof p === 'string' && /^[A-Za-z_$][\w$]*$/.test(p)) out += out === '' ? p : `.${p}`;
    else out += `[${JSON.stringify(String(p))}]`;
  }
  return out || '(body)';
}

const HINT = 'Send an Alertmanager webhook payload (version "4"); see docs/alerts.md for the fields and an example.';

/** Validates a parsed JSON body; a problem names the first offending field. */
export function parsePayload(body: unknown): { ok: true; payload: AlertmanagerPayload } | { ok: false; problem: PayloadProblem } {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return { ok: false, problem: { field: '(body)', message: 'the body must be a JSON object', hint: HINT } };
  }
  const version = (body as { version?: unknown }).version;
  if (version !== PAYLOAD_VERSION) {
    return {
      ok: false,
      problem: {
        field: 'version',
        message: `version must be "${PAYLOAD_VERSION}", got ${version === undefined ? 'none' : JSON.stringify(version)}`,
        hint:
          'This receiver speaks the Alertmanager webhook payload version "4" (every Alertmanager since 0.7 sends it). ' +
          'Point an Alertmanager webhook_config at it, or send version "4" by hand.',
      },
    };
  }
  const r = payloadSchema.safeParse(body);
  if (r.success) return { ok: true, payload: r.data };
  const issue = r.error.issues[0]!;
  const field = fieldPath(issue.path);
  return { ok: false, problem: { field, message: `${field}: ${issue.message}`, hint: HINT } };
}

/** Go's zero time, which Alertmanager writes as endsAt of an alert without an end. */
export function isZeroTime(t: string | undefined): boolean {
  return t === undefined || t.startsWith('0001-01-01T');
}
