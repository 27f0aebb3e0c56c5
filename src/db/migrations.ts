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

export const MIGRATIONS: readonly Migration[] = Object.freeze([
  { version: 1, name: 'registry', sql: V1_REGISTRY },
  { version: 2, name: 'backup_runs', sql: V2_BACKUP_RUNS },
  { version: 3, name: 'rollouts', sql: V3_ROLLOUTS },
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
