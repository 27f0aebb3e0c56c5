import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Registry } from 'prom-client';
import type { AegisConfig } from '../config/index.js';
import type { Db } from '../db/types.js';
import { AegisError } from '../errors.js';
import { childLogger } from '../log.js';
import { Authenticator, type AuthFailure } from './auth.js';
import { compileFilter, DEFAULT_FILTERS, type AlertFilterConfig } from './filters.js';
import { createAlertMetrics, type AlertMetrics, type RejectReason } from './metrics.js';
import { parsePayload, type PayloadProblem } from './payload.js';
import {
  DEFAULT_CLAIM_TIMEOUT_SECONDS,
  drainPendingTriggers,
  recordNotification,
  startTrigger,
  storeError,
  type DrainResult,
  type RetrainPolicy,
  type RetrainTrigger,
  type TriggerStartResult,
} from './store.js';

/**
 * `POST /alertmanager`: the Alertmanager webhook receiver, a fastify plugin
 * the control plane mounts. Per request:
 *  1. bearer token (before the body is read) → 401 with WWW-Authenticate;
 *  2. body size → 413; HMAC of the raw body when a secret is set → 401;
 *  3. JSON and the version-4 schema → 400 naming the offending field;
 *  4. the notification, its alerts and any retrain trigger are stored in one
 *     transaction → 503 if that fails (nothing acknowledged: Alertmanager retries);
 *  5. new triggers are started after commit (a failed start stays pending and
 *     is retried by drainPendingTriggers, at start-up and every drainIntervalMs);
 *  6. 200 with what was decided about each alert.
 */
export interface AlertReceiverOptions {
  db: Db;
  /** Starts retrain runs (the pipeline). */
  trigger: RetrainTrigger;
  /** Bearer token Alertmanager sends (http_config.authorization). Required unless allowUnauthenticated. */
  token?: string;
  /** Accept webhooks without a token (e.g. a loopback-only dev setup). Default false: no token → refuse to start. */
  allowUnauthenticated?: boolean;
  /** When set, an HMAC-SHA256 of the raw body is required in `hmacHeader` (`sha256=<hex>`). */
  hmacSecret?: string;
  hmacHeader?: string;
  filters?: AlertFilterConfig;
  modelLabel?: string;
  cooldownSeconds?: number;
  maxConcurrentRetrains?: number;
  bodyLimitBytes?: number;
  /** Registry for the receiver's counters (the control plane's /metrics); default a new one. */
  registry?: Registry;
  /** Route path; default /alertmanager. */
  path?: string;
  /** Retry pending triggers this often while the app runs; 0: only when the app becomes ready. Default 60 s. */
  drainIntervalMs?: number;
  /** A trigger `starting` for longer than this is retried by the drain. Default 60 s. */
  claimTimeoutSeconds?: number;
}

export interface AlertReceiver {
  readonly metrics: AlertMetrics;
  readonly path: string;
  /** Retries pending triggers now (also run when the app becomes ready, and periodically). */
  drainPendingTriggers(): Promise<DrainResult>;
}

export const DEFAULT_BODY_LIMIT = 1024 * 1024;
export const DEFAULT_HMAC_HEADER = 'x-aegis-signature';
export const DEFAULT_COOLDOWN_SECONDS = 3600;

/** The receiver's options from the `alerts` config section (db and trigger come from the composition root). */
export function alertReceiverOptionsFromConfig(c: AegisConfig['alerts']): Omit<AlertReceiverOptions, 'db' | 'trigger'> {
  return {
    ...(c.token !== undefined ? { token: c.token } : {}),
    allowUnauthenticated: c.allowUnauthenticated,
    ...(c.hmacSecret !== undefined ? { hmacSecret: c.hmacSecret } : {}),
    hmacHeader: c.hmacHeader,
    filters: c.filters,
    modelLabel: c.modelLabel,
    cooldownSeconds: c.cooldownSeconds,
    maxConcurrentRetrains: c.maxConcurrentRetrains,
    bodyLimitBytes: c.bodyLimitBytes,
  };
}

const log = () => childLogger('alerts');

class HttpProblem extends Error {
  readonly status: number;
  readonly body: Record<string, unknown>;
  readonly reason: RejectReason;
  readonly headers: Record<string, string>;

  constructor(status: number, body: Record<string, unknown>, reason: RejectReason, headers: Record<string, string> = {}) {
    super(String(body.error));
    this.status = status;
    this.body = body;
    this.reason = reason;
    this.headers = headers;
  }
}

function containsNul(v: unknown): boolean {
  if (typeof v === 'string') return v.includes('\0');
  if (Array.isArray(v)) return v.some(containsNul);
  if (v !== null && typeof v === 'object') return Object.entries(v).some(([k, x]) => k.includes('\0') || containsNul(x));
  return false;
}

function badRequest(p: PayloadProblem): HttpProblem {
  return new HttpProblem(400, { error: `invalid Alertmanager payload: ${p.message}`, field: p.field, hint: p.hint }, 'invalid');
}

/**
 * Validates the options (fail safe: no token and no explicit
 * allowUnauthenticated → ALERT_RECEIVER_UNSECURED; a bad matcher →
 * CONFIG_INVALID) and mounts POST <path> in its own encapsulated context
 * (own body limit, raw-body parser, error handler).
 */
export async function registerAlertReceiver(app: FastifyInstance, options: AlertReceiverOptions): Promise<AlertReceiver> {
  if (options.token === undefined && options.allowUnauthenticated !== true) {
    throw new AegisError('ALERT_RECEIVER_UNSECURED', 'the Alertmanager receiver has no token, so anyone who can reach it could start retrains', {
      hint:
        'Set AEGIS_ALERTS_TOKEN (alerts.token; e.g. `openssl rand -hex 32`) and give Alertmanager the same value in ' +
        'http_config.authorization.credentials (docs/alerts.md). For a loopback-only dev setup, set alerts.allowUnauthenticated: true.',
    });
  }
  if (options.token !== undefined && options.token.length === 0) {
    throw new AegisError('CONFIG_INVALID', 'the Alertmanager receiver token is empty', { hint: 'Set AEGIS_ALERTS_TOKEN to a long random string.' });
  }
  const path = options.path ?? '/alertmanager';
  const bodyLimit = options.bodyLimitBytes ?? DEFAULT_BODY_LIMIT;
  const auth = new Authenticator({
    ...(options.token !== undefined ? { token: options.token } : {}),
    ...(options.hmacSecret !== undefined ? { hmacSecret: options.hmacSecret } : {}),
    hmacHeader: options.hmacHeader ?? DEFAULT_HMAC_HEADER,
  });
  const policy: RetrainPolicy = {
    filter: compileFilter(options.filters ?? DEFAULT_FILTERS),
    modelLabel: options.modelLabel ?? 'model',
    cooldownSeconds: options.cooldownSeconds ?? DEFAULT_COOLDOWN_SECONDS,
    maxConcurrentRetrains: options.maxConcurrentRetrains ?? 1,
  };
  const metrics = createAlertMetrics(options.registry);
  const { db, trigger } = options;
  const claimTimeoutSeconds = options.claimTimeoutSeconds ?? DEFAULT_CLAIM_TIMEOUT_SECONDS;
  if (options.token === undefined) log().warn({ event: 'alert_receiver_unauthenticated', path }, 'the Alertmanager receiver accepts webhooks without a token (allowUnauthenticated)');

  const drain = async (): Promise<DrainResult> => {
    const r = await drainPendingTriggers(db, trigger, { claimTimeoutSeconds });
    metrics.triggers.inc({ outcome: 'started' }, r.started);
    metrics.triggers.inc({ outcome: 'start_failed' }, r.pending + r.failed);
    if (r.started + r.pending + r.failed > 0) log().info({ event: 'retrain_triggers_drained', ...r }, 'retried pending retrain triggers');
    return r;
  };
  const drainQuietly = () =>
    drain().catch((err: unknown) => {
      log().warn({ event: 'retrain_drain_failed', err: (err as Error).message }, 'could not retry pending retrain triggers; will try again');
    });

  const unauthorized = (f: AuthFailure): HttpProblem => {
    const challenge = f.reason.startsWith('token')
      ? `Bearer realm="aegis-alertmanager"${f.reason === 'token_wrong' ? ', error="invalid_token"' : ''}`
      : `HMAC-SHA256 realm="aegis-alertmanager", header="${auth.hmacHeader}"`;
    return new HttpProblem(
      401,
      {
        error: f.message,
        hint: f.reason.startsWith('token')
          ? 'Configure the Alertmanager webhook with http_config.authorization (type Bearer) holding the token in AEGIS_ALERTS_TOKEN.'
          : `Sign the raw body with HMAC-SHA256 using the secret in AEGIS_ALERTS_HMAC_SECRET and send it as ${auth.hmacHeader}: sha256=<hex>.`,
      },
      'unauthorized',
      { 'www-authenticate': challenge },
    );
  };

  const sendProblem = (reply: FastifyReply, p: HttpProblem) => {
    metrics.rejected.inc({ reason: p.reason });
    return reply.code(p.status).headers(p.headers).send(p.body);
  };

  await app.register(async (scope) => {
    // Every content type is read as raw bytes (the HMAC covers the exact body; curl's default
    // form type is accepted too); only this route's context is affected.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit }, (_req, body, done) => done(null, body));

    scope.setErrorHandler((err: FastifyError, req, reply) => {
      if (err instanceof HttpProblem) return sendProblem(reply, err);
      if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
        return sendProblem(reply, new HttpProblem(413, { error: `the body is larger than the ${bodyLimit}-byte limit`, hint: 'Raise alerts.bodyLimitBytes (AEGIS_ALERTS_BODY_LIMIT_BYTES), or set max_alerts in the Alertmanager webhook_config.' }, 'too_large'));
      }
      if (err.statusCode !== undefined && err.statusCode < 500) {
        return sendProblem(reply, new HttpProblem(err.statusCode, { error: err.message }, 'invalid'));
      }
      log().error({ event: 'alert_receiver_error', err: err.message, url: req.url }, 'Alertmanager webhook failed');
      return reply.code(500).send({ error: `the notification could not be processed: ${err.message}` });
    });

    scope.post(
      path,
      {
        bodyLimit,
        onRequest: async (req: FastifyRequest) => {
          const f = auth.checkToken(req.headers);
          if (f) throw unauthorized(f);
        },
      },
      async (req, reply) => {
        const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
        const sig = auth.checkSignature(req.headers, raw);
        if (sig) throw unauthorized(sig);
        if (raw.length === 0) throw badRequest({ field: '(body)', message: 'the body is empty', hint: 'Send the Alertmanager webhook payload as JSON.' });
        let json: unknown;
        try {
          json = JSON.parse(raw.toString('utf8'));
        } catch (err) {
          throw badRequest({ field: '(body)', message: `the body is not valid JSON: ${(err as Error).message}`, hint: 'Send the Alertmanager webhook payload as JSON (Content-Type: application/json).' });
        }
        const parsed = parsePayload(json);
        if (!parsed.ok) throw badRequest(parsed.problem);
        if (containsNul(json)) {
          throw badRequest({ field: '(body)', message: 'a string in the body contains a NUL character (\\u0000), which cannot be stored', hint: 'Remove NUL characters from labels and annotations.' });
        }
        const payload = parsed.payload;

        let result;
        try {
          result = await recordNotification(db, raw, payload, policy);
        } catch (err) {
          const e = storeError(err);
          metrics.rejected.inc({ reason: 'store_failed' });
          log().error({ event: 'alert_store_failed', err: (err as Error).message, groupKey: payload.groupKey }, e.message);
          return reply.code(503).header('retry-after', '10').send({ error: e.message, hint: e.hint });
        }
        (result.duplicate ? metrics.deduplicated : metrics.accepted).inc();
        if (result.triggerIds.length > 0) metrics.triggers.inc({ outcome: 'created' }, result.triggerIds.length);
        if ((payload.truncatedAlerts ?? 0) > 0) {
          log().warn({ event: 'alerts_truncated', truncated: payload.truncatedAlerts, groupKey: payload.groupKey }, 'Alertmanager truncated this notification (max_alerts); the alerts it left out were not seen');
        }

        const started: TriggerStartResult[] = [];
        for (const id of result.triggerIds) {
          const s = await startTrigger(db, trigger, id, { claimTimeoutSeconds }).catch((err: unknown): TriggerStartResult => {
            // The trigger row is committed; the drain retries it.
            log().warn({ event: 'retrain_start_failed', triggerId: id, err: (err as Error).message }, 'could not start the retrain; it stays pending');
            return { triggerId: id, state: 'pending', error: (err as Error).message };
          });
          metrics.triggers.inc({ outcome: s.state === 'started' ? 'started' : 'start_failed' });
          started.push(s);
        }
        const level = result.duplicate ? 'debug' : 'info';
        log()[level](
          {
            event: result.duplicate ? 'alert_notification_duplicate' : 'alert_notification_accepted',
            notificationId: result.notificationId,
            deliveries: result.deliveries,
            status: payload.status,
            groupKey: payload.groupKey,
            alerts: result.alerts.map((a) => ({ fingerprint: a.fingerprint, status: a.status, decision: a.decision, model: a.model })),
            triggers: started,
          },
          result.duplicate ? 'Alertmanager notification already recorded' : 'Alertmanager notification recorded',
        );
        return reply.code(200).send({
          status: result.duplicate ? 'duplicate' : 'accepted',
          notificationId: result.notificationId,
          deliveries: result.deliveries,
          alerts: result.alerts.map((a) => ({
            fingerprint: a.fingerprint,
            startsAt: a.startsAt,
            status: a.status,
            decision: a.decision,
            ...(a.model !== undefined ? { model: a.model } : {}),
            ...(a.triggerId !== undefined ? { triggerId: a.triggerId } : {}),
          })),
          triggers: started,
        });
      },
    );
  });

  let timer: NodeJS.Timeout | undefined;
  const interval = options.drainIntervalMs ?? 60_000;
  app.addHook('onReady', async () => {
    // Triggers left pending by a crash (between commit and call) or a failed call: retried
    // before the app takes traffic. trigger.start must be quick (it records a run, it does not run it).
    await drainQuietly();
    if (interval > 0) {
      timer = setInterval(() => void drainQuietly(), interval);
      timer.unref();
    }
  });
  app.addHook('onClose', async () => {
    if (timer) clearInterval(timer);
  });

  return { metrics, path, drainPendingTriggers: drain };
}
