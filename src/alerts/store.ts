import { createHash } from 'node:crypto';
import type { Db, Queryable } from '../db/types.js';
import { AegisError, isAegisError } from '../errors.js';
import { childLogger } from '../log.js';
import type { AlertFilter } from './filters.js';
import { labelsFingerprint } from './fingerprint.js';
import { isZeroTime, type AlertmanagerPayload } from './payload.js';

/**
 * Recording notifications and deciding retrains, in the database, so that
 * dedup, cooldown and the concurrency cap hold across concurrent requests and
 * across every process sharing the database:
 *
 * - An exact repeat of a stored body that held no alert back (the usual
 *   re-send) is one autocommit UPDATE counting the delivery (recordRepeat).
 * - Otherwise one transaction per notification: the delivery (alert_notifications,
 *   one row per distinct body, `deliveries` counting re-sends), every alert in
 *   it (alerts, unique on (fingerprint, starts_at): the first writer inserts,
 *   later deliveries find the row), and the retrain triggers decided. Alerts
 *   are written in (fingerprint, starts_at) order so two notifications holding
 *   the same alerts cannot deadlock.
 * - Decisions about retrains are taken under one transaction-scoped advisory
 *   lock, counting unfinished triggers (the cap) and the model's latest
 *   trigger (the cooldown) from the table, so concurrent deciders queue.
 * - The trigger is called after commit (never inside the transaction: on the
 *   embedded database that would hold its only connection while the pipeline
 *   runs). A trigger row is `pending` until claimed (`starting`, by an atomic
 *   UPDATE) and `started` once the pipeline returned a run id; a failed call
 *   puts it back to `pending` (or `failed` after MAX_START_ATTEMPTS), and
 *   drainPendingTriggers() retries pending rows and rows stuck in `starting`
 *   (a crash between commit and call, or during the call).
 */

/** What the pipeline is asked to do: retrain a model because of an alert. */
export interface RetrainRequest {
  /**
   * Idempotency key, the same on every call about this trigger (retries,
   * drains after a crash): implementations must return the run they already
   * started for it instead of starting another.
   */
  requestId: string;
  triggerId: number;
  /** From the alert's model label (or annotation); undefined when the alert names none. */
  model?: string;
  version?: string;
  /** From the `dataset_uri` annotation (or label). */
  datasetUri?: string;
  alert: {
    id: number;
    alertname: string;
    fingerprint: string;
    startsAt: string;
    labels: Record<string, string>;
    annotations: Record<string, string>;
  };
}

/** The pipeline's side of a retrain decision (implemented by src/pipeline; a fake in tests). */
export interface RetrainTrigger {
  /** Records (and schedules) a retrain run and returns its id; quick, idempotent on `requestId`. */
  start(request: RetrainRequest): Promise<{ runId: string }>;
}

export interface RetrainPolicy {
  filter: AlertFilter;
  /** Label, else annotation, naming the model. */
  modelLabel: string;
  cooldownSeconds: number;
  maxConcurrentRetrains: number;
}

export type AlertDecision = 'ignored' | 'resolved' | 'matched' | 'triggered' | 'cooldown' | 'concurrency_limit';

export interface RecordedAlert {
  id: number;
  fingerprint: string;
  startsAt: string;
  status: 'firing' | 'resolved';
  model: string | undefined;
  decision: AlertDecision;
  /** First delivery of this alert, or a new state of it (resolved), or a new decision (triggered on reconsideration). */
  changed: boolean;
  triggerId?: number;
}

export interface RecordResult {
  notificationId: number;
  /** How many times this exact body was received (1 the first time). */
  deliveries: number;
  /** The payload's alerts and the decisions recorded; empty for an exact repeat of a body that held nothing back. */
  alerts: RecordedAlert[];
  /** Trigger rows created by this notification, `pending` until started. */
  triggerIds: number[];
  /** Nothing new: every alert was already recorded in this state. */
  duplicate: boolean;
}

/** Serializes retrain decisions across processes (pg_advisory_xact_lock; 'RETRN' in ASCII). */
const DECISION_LOCK_KEY = 0x52_45_54_52_4e;
/** Start attempts before a trigger is given up as `failed`. */
export const MAX_START_ATTEMPTS = 5;
/** A trigger `starting` for longer than this is taken to have lost its caller (crash) and is retried. */
export const DEFAULT_CLAIM_TIMEOUT_SECONDS = 60;
const ACTIVE_STATES = `('pending', 'starting', 'started')`;

/** Decisions that a later delivery of the same firing alert reconsiders (the limit may have passed). */
const RECONSIDER = new Set<AlertDecision>(['cooldown', 'concurrency_limit']);

const log = () => childLogger('alerts');

interface AlertRow {
  fingerprint: string;
  derived: boolean;
  startsAt: string;
  endsAt: string | null;
  status: 'firing' | 'resolved';
  alertname: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  model: string | undefined;
  version: string | undefined;
  datasetUri: string | undefined;
}

function pick(a: Record<string, string>, b: Record<string, string>, key: string): string | undefined {
  const v = Object.hasOwn(a, key) ? a[key] : Object.hasOwn(b, key) ? b[key] : undefined;
  return v === '' ? undefined : v;
}

function alertRows(payload: AlertmanagerPayload, modelLabel: string): AlertRow[] {
  const rows = payload.alerts.map((a): AlertRow => ({
    fingerprint: a.fingerprint?.toLowerCase() ?? labelsFingerprint(a.labels),
    derived: a.fingerprint === undefined,
    startsAt: a.startsAt,
    endsAt: isZeroTime(a.endsAt) ? null : a.endsAt!,
    status: a.status,
    alertname: a.labels.alertname ?? '',
    labels: a.labels,
    annotations: a.annotations,
    model: pick(a.labels, a.annotations, modelLabel),
    version: pick(a.labels, a.annotations, 'version'),
    datasetUri: pick(a.annotations, a.labels, 'dataset_uri'),
  }));
  // One lock order for every writer: no deadlock between notifications sharing alerts.
  return rows.sort((x, y) => (x.fingerprint < y.fingerprint ? -1 : x.fingerprint > y.fingerprint ? 1 : x.startsAt < y.startsAt ? -1 : x.startsAt > y.startsAt ? 1 : 0));
}

export function bodyDigest(rawBody: Buffer): string {
  return createHash('sha256').update(rawBody).digest('hex');
}

/**
 * Stores a validated notification and decides retrains, in one transaction.
 * Throws (the caller answers 5xx, so Alertmanager retries) when it cannot be stored.
 */
export async function recordNotification(db: Db, rawBody: Buffer, payload: AlertmanagerPayload, policy: RetrainPolicy): Promise<RecordResult> {
  const rows = alertRows(payload, policy.modelLabel);
  const digest = bodyDigest(rawBody);
  const repeat = await recordRepeat(db, digest);
  if (repeat) return repeat;
  return db.transaction(async (tx) => {
    const n = await tx.query<{ id: number; deliveries: number; held_alerts: boolean }>(
      `INSERT INTO alert_notifications (body_sha256, receiver, status, group_key, alert_count, payload)
       VALUES ($1, $2, $3, $4, $5, $6::jsonb)
       ON CONFLICT (body_sha256) DO UPDATE SET deliveries = alert_notifications.deliveries + 1, last_received_at = now()
       RETURNING id, deliveries, held_alerts`,
      [digest, payload.receiver, payload.status, payload.groupKey, payload.alerts.length, rawBody.toString('utf8')],
    );
    const notificationId = n.rows[0]!.id;
    const alerts: RecordedAlert[] = [];
    const candidates: { alert: RecordedAlert; row: AlertRow }[] = [];

    for (const row of rows) {
      const initial: AlertDecision = row.status === 'resolved' ? 'resolved' : policy.filter.matches(row.labels) ? 'matched' : 'ignored';
      const r = await tx.query<{ id: number; status: 'firing' | 'resolved'; decision: AlertDecision; deliveries: number }>(
        `INSERT INTO alerts (fingerprint, fingerprint_derived, starts_at, started_at, ends_at, status, alertname, labels, annotations,
                             model, version, dataset_uri, decision, notification_id, last_notification_id, resolved_at)
         VALUES ($1, $2, $3, $14::timestamptz, $4::timestamptz, $5, $6, $7::jsonb, $8::jsonb, $9, $10, $11, $12, $13, $13,
                 CASE WHEN $5 = 'resolved' THEN now() END)
         ON CONFLICT (fingerprint, starts_at) DO UPDATE
           SET deliveries = alerts.deliveries + 1, last_notification_id = EXCLUDED.last_notification_id
         RETURNING id, status, decision, deliveries`,
        [row.fingerprint, row.derived, row.startsAt, row.endsAt, row.status, row.alertname, JSON.stringify(row.labels), JSON.stringify(row.annotations),
          row.model ?? null, row.version ?? null, row.datasetUri ?? null, initial, notificationId, row.startsAt],
      );
      const got = r.rows[0]!;
      const inserted = got.deliveries === 1;
      const alert: RecordedAlert = {
        id: got.id,
        fingerprint: row.fingerprint,
        startsAt: row.startsAt,
        status: got.status,
        model: row.model,
        decision: got.decision,
        changed: inserted,
      };
      if (!inserted && row.status === 'resolved' && got.status === 'firing') {
        // The alert we saw firing is resolved now: record that (the decision taken while firing stays).
        await tx.query(`UPDATE alerts SET status = 'resolved', ends_at = $2::timestamptz, resolved_at = now() WHERE id = $1`, [got.id, row.endsAt]);
        alert.status = 'resolved';
        alert.changed = true;
      }
      const candidate = row.status === 'firing' && alert.status === 'firing' && (inserted ? got.decision === 'matched' : RECONSIDER.has(got.decision));
      if (candidate) candidates.push({ alert, row });
      alerts.push(alert);
    }

    const triggerIds: number[] = [];
    // A re-delivery of a body that held alerts back decides them again: decide() marks it held again if still so.
    if (n.rows[0]!.held_alerts) await tx.query('UPDATE alert_notifications SET held_alerts = false WHERE id = $1', [notificationId]);
    if (candidates.length > 0) {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [DECISION_LOCK_KEY]);
      for (const { alert, row } of candidates) {
        const d = await decide(tx, alert.id, notificationId, row, policy);
        if (d.triggerId !== null) {
          alert.triggerId = d.triggerId;
          triggerIds.push(d.triggerId);
          alert.changed = true;
        }
        alert.decision = d.decision;
      }
    }
    return { notificationId, deliveries: n.rows[0]!.deliveries, alerts, triggerIds, duplicate: !alerts.some((a) => a.changed) };
  });
}

/**
 * Under the decision lock, in one statement: may a retrain of this model
 * start now (cooldown, then cap)? If so the pending trigger row is written;
 * either way the alert gets the decision, and a hold marks the notification
 * `held_alerts` (its re-deliveries are decided again). (A separate statement from the
 * lock, so its snapshot sees every trigger committed by earlier lock holders.)
 */
async function decide(tx: Queryable, alertId: number, notificationId: number, row: AlertRow, policy: RetrainPolicy): Promise<{ decision: AlertDecision; triggerId: number | null }> {
  const r = await tx.query<{ decision: AlertDecision; trigger_id: number | null }>(
    `WITH d AS (
       SELECT CASE
         WHEN EXISTS (SELECT 1 FROM retrain_triggers WHERE model_key = $3 AND created_at > now() - make_interval(secs => $4)) THEN 'cooldown'
         WHEN (SELECT count(*) FROM retrain_triggers WHERE state IN ${ACTIVE_STATES}) >= $5 THEN 'concurrency_limit'
         ELSE 'triggered' END AS decision
     ), t AS (
       INSERT INTO retrain_triggers (alert_id, notification_id, model, model_key, version, dataset_uri, state)
       SELECT $1, $2, $6::text, $3, $7::text, $8::text, 'pending' FROM d WHERE d.decision = 'triggered'
       RETURNING id
     ), u AS (
       UPDATE alerts SET decision = (SELECT decision FROM d) WHERE id = $1
     ), h AS (
       UPDATE alert_notifications SET held_alerts = true WHERE id = $2 AND (SELECT decision FROM d) <> 'triggered'
     )
     SELECT (SELECT decision FROM d) AS decision, (SELECT id FROM t) AS trigger_id`,
    [alertId, notificationId, row.model ?? '', policy.cooldownSeconds, policy.maxConcurrentRetrains, row.model ?? null, row.version ?? null, row.datasetUri ?? null],
  );
  return { decision: r.rows[0]!.decision, triggerId: r.rows[0]!.trigger_id };
}

/**
 * The common case under a storm: this exact body was stored before (and, in
 * the same transaction, its alerts and decisions) and held no alert back, so
 * nothing about it can change: one autocommit UPDATE counts the delivery.
 * (Decisions other than a hold are final, and a repeated body repeats the
 * states it already recorded.) Undefined: take the full path.
 */
async function recordRepeat(db: Queryable, digest: string): Promise<RecordResult | undefined> {
  const r = await db.query<{ id: number; deliveries: number }>(
    `UPDATE alert_notifications SET deliveries = deliveries + 1, last_received_at = now()
     WHERE body_sha256 = $1 AND NOT held_alerts RETURNING id, deliveries`,
    [digest],
  );
  const hit = r.rows[0];
  return hit ? { notificationId: hit.id, deliveries: hit.deliveries, alerts: [], triggerIds: [], duplicate: true } : undefined;
}

export type TriggerState = 'pending' | 'starting' | 'started' | 'succeeded' | 'failed';

export interface TriggerStartResult {
  triggerId: number;
  /** `started` (run id known), `pending` (call failed; retried by drainPendingTriggers), `failed` (gave up), `skipped` (someone else has it). */
  state: TriggerState | 'skipped';
  runId?: string;
  error?: string;
}

interface ClaimedRow {
  id: number;
  attempts: number;
  model: string | null;
  version: string | null;
  dataset_uri: string | null;
  alert_id: number;
  alertname: string;
  fingerprint: string;
  starts_at: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

/**
 * Claims one trigger (pending, or starting for longer than the claim timeout)
 * and calls the pipeline. Never throws for a pipeline failure: the row goes
 * back to `pending` with the error (or `failed` after MAX_START_ATTEMPTS).
 */
export async function startTrigger(db: Db, trigger: RetrainTrigger, triggerId: number, options: { claimTimeoutSeconds?: number } = {}): Promise<TriggerStartResult> {
  const claim = await db.query<ClaimedRow>(
    `WITH c AS (
       UPDATE retrain_triggers SET state = 'starting', claimed_at = now(), attempts = attempts + 1, updated_at = now()
       WHERE id = $1 AND (state = 'pending' OR (state = 'starting' AND claimed_at < now() - make_interval(secs => $2)))
       RETURNING id, attempts, model, version, dataset_uri, alert_id)
     SELECT c.*, a.alertname, a.fingerprint, a.starts_at, a.labels, a.annotations FROM c JOIN alerts a ON a.id = c.alert_id`,
    [triggerId, options.claimTimeoutSeconds ?? DEFAULT_CLAIM_TIMEOUT_SECONDS],
  );
  const row = claim.rows[0];
  if (!row) return { triggerId, state: 'skipped' };
  const request: RetrainRequest = {
    requestId: `alert-trigger-${row.id}`,
    triggerId: row.id,
    ...(row.model !== null ? { model: row.model } : {}),
    ...(row.version !== null ? { version: row.version } : {}),
    ...(row.dataset_uri !== null ? { datasetUri: row.dataset_uri } : {}),
    alert: { id: row.alert_id, alertname: row.alertname, fingerprint: row.fingerprint, startsAt: row.starts_at, labels: row.labels, annotations: row.annotations },
  };
  let runId: string;
  try {
    const r = await trigger.start(request);
    if (typeof r?.runId !== 'string' || r.runId === '') throw new AegisError('RETRAIN_START_FAILED', 'the retrain trigger returned no run id');
    runId = r.runId;
  } catch (err) {
    const message = (err as Error).message ?? String(err);
    const giveUp = row.attempts >= MAX_START_ATTEMPTS;
    await db.query(
      `UPDATE retrain_triggers SET state = $2, last_error = $3, updated_at = now(), finished_at = CASE WHEN $2 = 'failed' THEN now() END
       WHERE id = $1 AND state = 'starting'`,
      [row.id, giveUp ? 'failed' : 'pending', message],
    );
    log().warn(
      { event: 'retrain_start_failed', triggerId: row.id, model: row.model, attempt: row.attempts, code: isAegisError(err) ? err.code : undefined, err: message, willRetry: !giveUp },
      giveUp ? 'starting the retrain failed; giving up after the last attempt' : 'starting the retrain failed; it stays pending and is retried',
    );
    return { triggerId: row.id, state: giveUp ? 'failed' : 'pending', error: message };
  }
  await db.query(
    `UPDATE retrain_triggers SET state = 'started', run_id = $2, started_at = now(), updated_at = now(), last_error = NULL
     WHERE id = $1 AND state = 'starting'`,
    [row.id, runId],
  );
  log().info({ event: 'retrain_started', triggerId: row.id, runId, model: row.model, version: row.version, alert: row.alertname, fingerprint: row.fingerprint }, 'retrain started by an alert');
  return { triggerId: row.id, state: 'started', runId };
}

export interface DrainResult {
  started: number;
  pending: number;
  failed: number;
}

/**
 * Retries every trigger that is `pending` (its call failed, or the process
 * died between commit and call) or stuck `starting` past the claim timeout.
 * Run at start-up and periodically; safe to run from several processes at once.
 */
export async function drainPendingTriggers(db: Db, trigger: RetrainTrigger, options: { claimTimeoutSeconds?: number } = {}): Promise<DrainResult> {
  const timeout = options.claimTimeoutSeconds ?? DEFAULT_CLAIM_TIMEOUT_SECONDS;
  const due = await db.query<{ id: number }>(
    `SELECT id FROM retrain_triggers
     WHERE state = 'pending' OR (state = 'starting' AND claimed_at < now() - make_interval(secs => $1)) ORDER BY id`,
    [timeout],
  );
  const result: DrainResult = { started: 0, pending: 0, failed: 0 };
  for (const { id } of due.rows) {
    const r = await startTrigger(db, trigger, id, { claimTimeoutSeconds: timeout });
    if (r.state === 'started') result.started++;
    else if (r.state === 'pending') result.pending++;
    else if (r.state === 'failed') result.failed++;
  }
  return result;
}

/**
 * The pipeline reports a run's end: the trigger stops counting against the
 * concurrency cap. Returns how many triggers it closed (0: unknown run id).
 */
export async function recordRetrainFinished(db: Queryable, runId: string, outcome: 'succeeded' | 'failed'): Promise<number> {
  const r = await db.query(
    `UPDATE retrain_triggers SET state = $2, finished_at = now(), updated_at = now()
     WHERE run_id = $1 AND state IN ('starting', 'started')`,
    [runId, outcome],
  );
  return r.rowCount;
}

export interface TriggerRow {
  id: number;
  alertId: number;
  model: string | null;
  version: string | null;
  datasetUri: string | null;
  state: TriggerState;
  runId: string | null;
  attempts: number;
  lastError: string | null;
  createdAt: Date;
}

/** The newest retrain triggers, for the control plane's API and tests. */
export async function listRetrainTriggers(db: Queryable, limit = 100): Promise<TriggerRow[]> {
  const r = await db.query<TriggerRow>(
    `SELECT id, alert_id AS "alertId", model, version, dataset_uri AS "datasetUri", state, run_id AS "runId", attempts,
            last_error AS "lastError", created_at AS "createdAt"
     FROM retrain_triggers ORDER BY id DESC LIMIT $1`,
    [limit],
  );
  return r.rows;
}

/** Wraps a storage failure for the log and the 5xx answer. */
export function storeError(err: unknown): AegisError {
  return new AegisError('ALERT_STORE_FAILED', `could not store the Alertmanager notification: ${(err as Error).message}`, {
    cause: err,
    hint: 'Nothing was acknowledged; Alertmanager retries. Check that the database is reachable and has space (AEGIS_DATABASE_URL, or the embedded one under AEGIS_HOME), and its logs.',
  });
}
