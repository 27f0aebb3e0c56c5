import { AegisError, isAegisError } from '../errors.js';
import { childLogger } from '../log.js';
import type { Db, Queryable } from './types.js';

/**
 * Schema migrations, PostgreSQL dialect, run unchanged on PGlite and PostgreSQL.
 * Embedded as strings so the build needs no file copying. Append only: never
 * edit a released migration; add the next version instead.
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

const V1_REGISTRY = `
CREATE TABLE models (
  id          bigserial PRIMARY KEY,
  name        text NOT NULL UNIQUE,
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE model_versions (
  id              bigserial PRIMARY KEY,
  model_id        bigint NOT NULL REFERENCES models (id) ON DELETE RESTRICT,
  version         text NOT NULL,
  archive_uri     text NOT NULL,
  archive_sha256  char(64) NOT NULL CHECK (archive_sha256 ~ '^[0-9a-f]{64}$'),
  signer_key_id   text,
  stage           text NOT NULL DEFAULT 'none'
                  CHECK (stage IN ('none', 'staging', 'canary', 'production', 'archived')),
  created_at      timestamptz NOT NULL DEFAULT now(),
  manifest        jsonb NOT NULL,
  lineage         jsonb NOT NULL DEFAULT '{}',
  UNIQUE (model_id, version)
);

-- At most one production and one canary version per model, whatever the writer.
CREATE UNIQUE INDEX model_versions_one_production ON model_versions (model_id) WHERE stage = 'production';
CREATE UNIQUE INDEX model_versions_one_canary ON model_versions (model_id) WHERE stage = 'canary';

CREATE TABLE audit_log (
  id       bigserial PRIMARY KEY,
  at       timestamptz NOT NULL DEFAULT now(),
  actor    text NOT NULL,
  action   text NOT NULL,
  subject  text NOT NULL,
  details  jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_subject ON audit_log (subject, id);
-- Subjects are "model" or "model@version": lets "everything about a model" use an index.
CREATE INDEX audit_log_model ON audit_log (split_part(subject, '@', 1), id);

-- Append-only: UPDATE, DELETE and TRUNCATE raise. (A superuser can still
-- disable the trigger; this guards against mistakes and application bugs.)
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP
    USING ERRCODE = 'insufficient_privilege',
          HINT = 'Audit entries are permanent; record a correcting entry instead.';
END
$$;
CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
`;

/** Outcomes of database backups (scheduled, manual, drills): what the backup-staleness alert and `aegis db` read. */
const V2_BACKUP_RUNS = `
CREATE TABLE backup_runs (
  id             bigserial PRIMARY KEY,
  trigger        text NOT NULL CHECK (trigger IN ('schedule', 'manual', 'drill')),
  status         text NOT NULL CHECK (status IN ('succeeded', 'failed')),
  started_at     timestamptz NOT NULL,
  finished_at    timestamptz NOT NULL,
  backup_id      text,
  location       text,
  format         text,
  bytes          bigint,
  error_code     text,
  error_message  text
);
CREATE INDEX backup_runs_finished ON backup_runs (status, finished_at DESC);
`;

/**
 * Canary rollouts the control plane drives: the spec it was started with and
 * the controller's state (step, weight, pause, analysis runs with their
 * measurements) as JSON, so a restarted control plane resumes where it was.
 * At most one active (Progressing or Paused) rollout per model.
 */
const V3_ROLLOUTS = `
CREATE TABLE rollouts (
  id              bigserial PRIMARY KEY,
  model           text NOT NULL,
  version         text NOT NULL,
  stable_version  text,
  phase           text NOT NULL CHECK (phase IN ('Progressing', 'Paused', 'Healthy', 'Degraded')),
  spec            jsonb NOT NULL,
  state           jsonb NOT NULL,
  message         text,
  created_by      text NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  finished_at     timestamptz
);
CREATE UNIQUE INDEX rollouts_one_active ON rollouts (model) WHERE phase IN ('Progressing', 'Paused');
CREATE INDEX rollouts_model ON rollouts (model, id DESC);
`;

/**
 * Alertmanager webhook notifications (src/alerts): every delivery is stored
 * before it is acknowledged (identical bodies share a row and count
 * `deliveries`; `held_alerts`: some alert in it was held by the cooldown or
 * the cap, so a re-delivery is decided again); each alert in them once per
 * (fingerprint, starts_at), the dedup key, with the decision taken about it
 * (`deliveries` there counts the notifications that carried it, exact
 * repeats of a body aside); and the retrain triggers those
 * decisions made, with their state (pending → starting → started →
 * succeeded | failed), whose count and age enforce the concurrency cap and
 * the per-model cooldown across every receiver sharing the database.
 * `starts_at` is Alertmanager's RFC 3339 text as sent (nanoseconds;
 * timestamptz keeps microseconds), `started_at` the same instant as a time.
 */
const V4_ALERTS = `
CREATE TABLE alert_notifications (
  id                bigserial PRIMARY KEY,
  body_sha256       char(64) NOT NULL UNIQUE CHECK (body_sha256 ~ '^[0-9a-f]{64}$'),
  receiver          text NOT NULL,
  status            text NOT NULL CHECK (status IN ('firing', 'resolved')),
  group_key         text NOT NULL,
  alert_count       integer NOT NULL,
  payload           jsonb NOT NULL,
  received_at       timestamptz NOT NULL DEFAULT now(),
  last_received_at  timestamptz NOT NULL DEFAULT now(),
  deliveries        integer NOT NULL DEFAULT 1,
  held_alerts       boolean NOT NULL DEFAULT false
);
CREATE INDEX alert_notifications_received ON alert_notifications (received_at DESC);

CREATE TABLE alerts (
  id                    bigserial PRIMARY KEY,
  fingerprint           text NOT NULL,
  fingerprint_derived   boolean NOT NULL,
  starts_at             text NOT NULL,
  started_at            timestamptz NOT NULL,
  ends_at               timestamptz,
  status                text NOT NULL CHECK (status IN ('firing', 'resolved')),
  alertname             text NOT NULL,
  labels                jsonb NOT NULL,
  annotations           jsonb NOT NULL,
  model                 text,
  version               text,
  dataset_uri           text,
  decision              text NOT NULL
                        CHECK (decision IN ('ignored', 'resolved', 'matched', 'triggered', 'cooldown', 'concurrency_limit')),
  notification_id       bigint NOT NULL REFERENCES alert_notifications (id),
  last_notification_id  bigint NOT NULL REFERENCES alert_notifications (id),
  deliveries            integer NOT NULL DEFAULT 1,
  received_at           timestamptz NOT NULL DEFAULT now(),
  resolved_at           timestamptz,
  UNIQUE (fingerprint, starts_at)
);
CREATE INDEX alerts_received ON alerts (received_at DESC);

CREATE TABLE retrain_triggers (
  id               bigserial PRIMARY KEY,
  alert_id         bigint NOT NULL REFERENCES alerts (id),
  notification_id  bigint NOT NULL REFERENCES alert_notifications (id),
  model            text,
  model_key        text NOT NULL,
  version          text,
  dataset_uri      text,
  state            text NOT NULL CHECK (state IN ('pending', 'starting', 'started', 'succeeded', 'failed')),
  run_id           text,
  attempts         integer NOT NULL DEFAULT 0,
  last_error       text,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  claimed_at       timestamptz,
  started_at       timestamptz,
  finished_at      timestamptz
);
CREATE INDEX retrain_triggers_model ON retrain_triggers (model_key, created_at DESC);
CREATE INDEX retrain_triggers_active ON retrain_triggers (state) WHERE state IN ('pending', 'starting', 'started');
CREATE INDEX retrain_triggers_run ON retrain_triggers (run_id) WHERE run_id IS NOT NULL;
`;

/**
 * The durable retraining pipeline (src/pipeline, docs/retrain-on-drift.md): one
 * row per run (`request_id` is the idempotency key of whoever asked for it: the
 * alert trigger's `alert-trigger-<id>`, or a manual request), one row per step
 * with its state, attempts, capped logs and outputs (what later steps read),
 * and the metric points of runs tracked in the database (no MLflow). `uid` is
 * the run's globally unique id (the tracking runs' idempotency key); `owner` +
 * `lease_until` say which process is executing the run, so a process killed
 * mid-run is taken over once its lease lapses.
 */
const V5_PIPELINE = `
CREATE TABLE pipeline_runs (
  id                bigserial PRIMARY KEY,
  uid               text NOT NULL UNIQUE DEFAULT gen_random_uuid()::text,
  request_id        text NOT NULL UNIQUE,
  source            text NOT NULL CHECK (source IN ('alert', 'manual')),
  executor          text NOT NULL DEFAULT 'local' CHECK (executor IN ('local', 'external')),
  request           jsonb NOT NULL,
  model             text,
  version           text,
  parent_version    text,
  dataset_uri       text,
  alert_id          bigint,
  trigger_id        bigint,
  state             text NOT NULL DEFAULT 'queued'
                    CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'rejected', 'cancelled')),
  attempts          integer NOT NULL DEFAULT 1,
  error             text,
  error_code        text,
  outputs           jsonb NOT NULL DEFAULT '{}',
  tracking_kind     text,
  tracking_run_id   text,
  tracking          jsonb NOT NULL DEFAULT '{}',
  cancel_requested  boolean NOT NULL DEFAULT false,
  owner             text,
  lease_until       timestamptz,
  created_by        text NOT NULL,
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now(),
  started_at        timestamptz,
  finished_at       timestamptz
);
CREATE INDEX pipeline_runs_open ON pipeline_runs (id) WHERE state IN ('queued', 'running');
CREATE INDEX pipeline_runs_model ON pipeline_runs (model, id DESC);

CREATE TABLE pipeline_steps (
  run_id       bigint NOT NULL REFERENCES pipeline_runs (id) ON DELETE CASCADE,
  name         text NOT NULL,
  position     integer NOT NULL,
  state        text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'running', 'succeeded', 'failed', 'skipped')),
  attempts     integer NOT NULL DEFAULT 0,
  logs         text NOT NULL DEFAULT '',
  outputs      jsonb NOT NULL DEFAULT '{}',
  error        text,
  error_code   text,
  started_at   timestamptz,
  finished_at  timestamptz,
  updated_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (run_id, name),
  UNIQUE (run_id, position)
);

CREATE TABLE pipeline_metrics (
  run_id  bigint NOT NULL REFERENCES pipeline_runs (id) ON DELETE CASCADE,
  key     text NOT NULL,
  step    bigint NOT NULL,
  ts      bigint NOT NULL,
  value   double precision NOT NULL,
  PRIMARY KEY (run_id, key, step, ts)
);
`;

export const MIGRATIONS: readonly Migration[] = Object.freeze([
  { version: 1, name: 'registry', sql: V1_REGISTRY },
  { version: 2, name: 'backup_runs', sql: V2_BACKUP_RUNS },
  { version: 3, name: 'rollouts', sql: V3_ROLLOUTS },
  { version: 4, name: 'alerts', sql: V4_ALERTS },
  { version: 5, name: 'pipeline', sql: V5_PIPELINE },
]);

export const LATEST_SCHEMA_VERSION: number = MIGRATIONS[MIGRATIONS.length - 1]!.version;

/** Serializes migrators across processes (pg_advisory_xact_lock; 'AEGIS' in ASCII). */
const MIGRATION_LOCK_KEY = 0x41_45_47_49_53;

const CREATE_MIGRATIONS_TABLE = `
CREATE TABLE IF NOT EXISTS schema_migrations (
  version     integer PRIMARY KEY,
  name        text NOT NULL,
  applied_at  timestamptz NOT NULL DEFAULT now()
)`;

/** The highest migration recorded in the database; 0 for an empty database. */
export async function currentSchemaVersion(db: Queryable): Promise<number> {
  const present = await db.query<{ present: boolean }>(`SELECT to_regclass('schema_migrations') IS NOT NULL AS present`);
  if (!present.rows[0]?.present) return 0;
  const r = await db.query<{ version: number }>('SELECT coalesce(max(version), 0)::int AS version FROM schema_migrations');
  return r.rows[0]?.version ?? 0;
}

function tooNew(found: number, known: number): AegisError {
  return new AegisError(
    'DB_SCHEMA_TOO_NEW',
    `the database schema is at version ${found}, newer than this build of Aegis knows (up to ${known})`,
    {
      hint:
        `A newer Aegis has upgraded this database. Run that version (or newer), or restore a backup ` +
        `made at schema ${known} or lower; never point an older Aegis at it.`,
      details: { schemaVersion: found, latestKnown: known },
    },
  );
}

function checkOrder(migrations: readonly Migration[]): void {
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new AegisError('INTERNAL', `migration list is not 1..n in order: position ${i} has version ${m.version}`);
  });
}

export interface MigrateResult {
  from: number;
  to: number;
  applied: Array<{ version: number; name: string }>;
}

/**
 * Applies pending migrations in order, each in its own transaction that first
 * takes a transaction-scoped advisory lock, so concurrent migrators queue and
 * each migration runs once. Refuses a database newer than `migrations`
 * (DB_SCHEMA_TOO_NEW) or one whose history differs from it (DB_MIGRATION_FAILED).
 */
export async function migrate(db: Db, migrations: readonly Migration[] = MIGRATIONS): Promise<MigrateResult> {
  checkOrder(migrations);
  const latest = migrations.length === 0 ? 0 : migrations[migrations.length - 1]!.version;
  const from = await currentSchemaVersion(db);
  if (from > latest) throw tooNew(from, latest);
  const applied: MigrateResult['applied'] = [];
  if (from === latest) return { from, to: latest, applied };
  const log = childLogger('db');

  for (;;) {
    const next = await db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
      await tx.query(CREATE_MIGRATIONS_TABLE);
      const done = await tx.query<{ version: number; name: string }>('SELECT version, name FROM schema_migrations ORDER BY version');
      for (const [i, row] of done.rows.entries()) {
        if (row.version > latest) throw tooNew(row.version, latest);
        const known = migrations[i];
        if (!known || known.version !== row.version || known.name !== row.name) {
          throw new AegisError(
            'DB_MIGRATION_FAILED',
            `the database records migration ${row.version} as "${row.name}", but this build's migration ${i + 1} is "${known?.name ?? '(none)'}"`,
            {
              hint: 'This database was migrated by a different build of Aegis. Use the build that created it, or restore a backup.',
              details: { version: row.version, recorded: row.name, expected: known?.name, expectedVersion: i + 1 },
            },
          );
        }
      }
      const m = migrations[done.rows.length];
      if (!m) return undefined;
      try {
        await tx.query(m.sql);
        await tx.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
      } catch (err) {
        throw new AegisError('DB_MIGRATION_FAILED', `database migration ${m.version} (${m.name}) failed: ${(err as Error).message}`, {
          cause: err,
          hint:
            'The migration was rolled back, so the database is as it was. Check that the database user may create ' +
            'tables, functions and triggers, then start Aegis again.',
          details: { version: m.version, name: m.name },
        });
      }
      return m;
    });
    if (!next) break;
    applied.push({ version: next.version, name: next.name });
    log.info({ version: next.version, name: next.name, engine: db.engine }, 'applied database migration');
  }
  return { from, to: latest, applied };
}

/** Wraps unexpected migration errors (connection lost mid-way, …) with a hint. */
export function asMigrationError(err: unknown): AegisError {
  if (isAegisError(err)) return err;
  return new AegisError('DB_MIGRATION_FAILED', `database migration failed: ${(err as Error).message}`, {
    cause: err,
    hint: 'Each migration runs in a transaction, so a failed one left no partial change; fix the cause and start Aegis again.',
  });
}
