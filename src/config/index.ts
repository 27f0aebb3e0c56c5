import { CronExpressionParser } from 'cron-parser';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { AegisError } from '../errors.js';

/**
 * Configuration: embedded defaults < config file < environment variables.
 * Validated once with a schema, then deep-frozen; modules receive the parts
 * they need as arguments rather than reading globals.
 */
/** Alerts that start a retrain unless `alerts.filters.alertnames` says otherwise. */
const DEFAULT_ALERT_NAMES = ['ModelDrift'] as const;

export const configSchema = z
  .object({
    /** Working directory for the embedded platform (DB, artifacts, dev keys). */
    home: z.string().min(1).default('./.aegis'),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('warn'),
    hashing: z
      .object({
        /** Parallel hashing workers; default: one per core. */
        workers: z.number().int().min(1).max(64).default(Math.max(1, availableParallelism())),
        /** Read size per I/O when hashing, bytes. */
        chunkBytes: z.number().int().min(64 * 1024).max(256 * 1024 * 1024).default(2 * 1024 * 1024),
      })
      .strict()
      .default({ workers: Math.max(1, availableParallelism()), chunkBytes: 2 * 1024 * 1024 }),
    /** PostgreSQL URL (postgres://…); unset: the embedded PGlite database in <home>/db. */
    databaseUrl: z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL').optional(),
    /** Artifact store root: file://… or s3://bucket/prefix; default <home>/artifacts. */
    storeUri: z.string().min(1).optional(),
    /** Content-addressed cache of verified models; default <home>/cache. */
    cacheDir: z.string().min(1).optional(),
    /** Who is acting, for the audit log; default the OS user name. */
    actor: z.string().min(1).optional(),
    fetch: z
      .object({
        /** Most entries an archive may hold. */
        maxEntries: z.number().int().min(1).default(100_000),
        /** Most bytes an archive may expand to. */
        maxBytes: z.number().int().min(1).default(256 * 2 ** 30),
      })
      .strict()
      .default({ maxEntries: 100_000, maxBytes: 256 * 2 ** 30 }),
    signing: z
      .object({
        defaultCurve: z.enum(['p256', 'p384', 'p521']).default('p256'),
        /** Largest bundle file a verifier will read, bytes. */
        maxBundleBytes: z.number().int().min(1024).default(64 * 1024 * 1024),
        /** AWS KMS signing key (key id, ARN, alias/NAME) used when no --key/--kms-key is given; see docs/kms.md. */
        kmsKeyId: z.string().min(1).optional(),
        /** Region of the KMS key; default the region in an ARN key id, else AWS_REGION / the AWS profile. */
        kmsRegion: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d+$/, 'must be an AWS region, e.g. eu-west-1').optional(),
        /** KMS-compatible endpoint (VPC endpoint, emulator); default AWS. */
        kmsEndpoint: z.string().url().regex(/^https?:\/\//, 'must be an http(s) URL').optional(),
      })
      .strict()
      .default({ defaultCurve: 'p256', maxBundleBytes: 64 * 1024 * 1024 }),
    control: z
      .object({
        /** Address and port the control-plane API listens on (`aegis up`). */
        host: z.string().min(1).default('127.0.0.1'),
        port: z.number().int().min(0).max(65535).default(8079),
        /** Bearer token for the API; unset: `aegis up` makes one in <home>/control.token (mode 0600) and the CLI reads it there. */
        token: z.string().min(16, 'must be at least 16 characters').optional(),
        /** Where the CLI finds the control plane; default http://127.0.0.1:<port>. */
        url: z.string().url().optional(),
      })
      .strict()
      .default({ host: '127.0.0.1', port: 8079 }),
    backup: z
      .object({
        /** Cron expression (5 fields, or 6 with seconds; evaluated in UTC) for scheduled backups; unset: no schedule. */
        schedule: z
          .string()
          .min(1)
          .refine((expr) => isCronExpression(expr), 'must be a cron expression, e.g. "30 2 * * *" (02:30 UTC daily)')
          .optional(),
        /** Store root for backups (`<root>/db-backups/…`): file://… or s3://…; default the artifact store. */
        storeUri: z.string().min(1).optional(),
        /** Retention after a scheduled backup: the newest backup of each of the last N days … */
        keepDaily: z.number().int().min(0).default(7),
        /** … and of each of the last M ISO weeks. The newest complete backup is always kept. */
        keepWeekly: z.number().int().min(0).default(4),
        /** pg_dump / pg_restore programs (Debian: postgresql-client); default: PATH, then /usr/lib/postgresql/<newest>/bin. */
        pgDumpPath: z.string().min(1).optional(),
        pgRestorePath: z.string().min(1).optional(),
        /** Control-plane health URL the restore smoke checks call; unset: that check is reported as skipped. */
        healthUrl: z.string().url().optional(),
      })
      .strict()
      .default({ keepDaily: 7, keepWeekly: 4 }),
    /** The model server's drift monitor (src/drift, docs/drift.md); needs the model's reference profile (labels.profile). */
    drift: z
      .object({
        enabled: z.boolean().default(true),
        /** Rows each sliding window keeps (the newest). */
        windowRows: z.number().int().min(1).max(10_000_000).default(10_000),
        /** Fewer rows than this: no verdict. */
        minRows: z.number().int().min(1).default(1000),
        /** How often the tests rerun while traffic arrives. */
        intervalSeconds: z.number().min(0.1).default(10),
        /** Share of requests folded into the windows. */
        sampleRate: z.number().gt(0).max(1).default(1),
        /** Dataset drift when at least this share of the features drift (Evidently's drift_share). */
        driftShare: z.number().gt(0).max(1).default(0.5),
        /** auto: Evidently's choice by reference size (KS up to 1000 rows, else normed Wasserstein). */
        numericMethod: z.enum(['auto', 'ks', 'wasserstein', 'psi']).default('auto'),
        /** auto: chi-square (z-test for two categories) up to 1000 reference rows, else Jensen-Shannon. */
        categoricalMethod: z.enum(['auto', 'chisquare', 'z', 'jensenshannon', 'psi']).default('auto'),
        /** Threshold per test (p-value below, or distance at or above, means drift). */
        thresholds: z.partialRecord(z.enum(['ks', 'wasserstein', 'psi', 'chisquare', 'z', 'jensenshannon']), z.number().gt(0)).default({}),
        /** Per-feature overrides, e.g. {"image[0,0,0]": {method: psi, threshold: 0.2}}. */
        features: z
          .record(
            z.string().min(1),
            z.object({ method: z.enum(['ks', 'wasserstein', 'psi', 'chisquare', 'z', 'jensenshannon']).optional(), threshold: z.number().gt(0).optional() }).strict(),
          )
          .default({}),
        /** Embedding-like inputs: drift when p < alpha and the Mahalanobis mean shift >= threshold. */
        multivariate: z
          .object({ alpha: z.number().gt(0).lt(1).default(0.001), threshold: z.number().min(0).default(0.2) })
          .strict()
          .default({ alpha: 0.001, threshold: 0.2 }),
        /** Where data to retrain on is published (the ModelDrift alert's dataset_uri); default: the profile's training dataset. */
        datasetUri: z.string().min(1).optional(),
      })
      .strict()
      .default({
        enabled: true,
        windowRows: 10_000,
        minRows: 1000,
        intervalSeconds: 10,
        sampleRate: 1,
        driftShare: 0.5,
        numericMethod: 'auto',
        categoricalMethod: 'auto',
        thresholds: {},
        features: {},
        multivariate: { alpha: 0.001, threshold: 0.2 },
      }),
    /** The Alertmanager webhook receiver (POST /alertmanager on the control plane); see docs/alerts.md. */
    alerts: z
      .object({
        /** Bearer token Alertmanager sends (http_config.authorization.credentials). Required unless allowUnauthenticated. */
        token: z.string().min(16, 'must be at least 16 characters, e.g. the output of `openssl rand -hex 32`').optional(),
        /** Accept webhooks without a token. Off by default: without a token the receiver refuses to start. */
        allowUnauthenticated: z.boolean().default(false),
        /** When set, every webhook must also carry HMAC-SHA256(body) in `hmacHeader` as `sha256=<hex>`. */
        hmacSecret: z.string().min(16, 'must be at least 16 characters, e.g. the output of `openssl rand -hex 32`').optional(),
        hmacHeader: z
          .string()
          .regex(/^[A-Za-z0-9-]+$/, 'must be an HTTP header name, e.g. X-Aegis-Signature')
          .default('x-aegis-signature'),
        /** Which firing alerts start a retrain: any of `alertnames`, any of `severities` (empty: any), all `matchers`. */
        filters: z
          .object({
            alertnames: z.array(z.string().min(1)).min(1).default([...DEFAULT_ALERT_NAMES]),
            severities: z.array(z.string().min(1)).default([]),
            /** Alertmanager matchers on alert labels: name="v", name!="v", name=~"re", name!~"re" (regexes anchored). */
            matchers: z.array(z.string().min(1)).default([]),
          })
          .strict()
          .default({ alertnames: [...DEFAULT_ALERT_NAMES], severities: [], matchers: [] }),
        /** Label (or annotation) naming the model to retrain. */
        modelLabel: z.string().min(1).default('model'),
        /** After a retrain of a model starts, further alerts about it start none for this long. */
        cooldownSeconds: z.number().int().min(0).default(3600),
        /** Most retrains started by alerts that may be unfinished at once (across every receiver sharing the DB). */
        maxConcurrentRetrains: z.number().int().min(1).default(1),
        /** Largest webhook body accepted, bytes (413 above). */
        bodyLimitBytes: z.number().int().min(1024).max(64 * 1024 * 1024).default(1024 * 1024),
      })
      .strict()
      .default({
        allowUnauthenticated: false,
        hmacHeader: 'x-aegis-signature',
        filters: { alertnames: [...DEFAULT_ALERT_NAMES], severities: [], matchers: [] },
        modelLabel: 'model',
        cooldownSeconds: 3600,
        maxConcurrentRetrains: 1,
        bodyLimitBytes: 1024 * 1024,
      }),
    /** Experiment tracking of retrain runs in MLflow (src/tracking, docs/tracking.md); unset mlflowUri: runs are recorded in the Aegis DB only. */
    tracking: z
      .object({
        /** MLflow tracking server, http(s)://host[:port][/prefix]. Not read from MLFLOW_TRACKING_URI (see docs/tracking.md). */
        mlflowUri: z
          .string()
          .url()
          .regex(/^https?:\/\//i, 'must be an http:// or https:// URL of an MLflow tracking server')
          .optional(),
        /** MLflow experiment the runs go to (made when missing). */
        experiment: z.string().min(1).max(500).default('aegis-retrain'),
        /** Bearer token (MLflow's MLFLOW_TRACKING_TOKEN convention); MLFLOW_TRACKING_TOKEN is the fallback. */
        token: z.string().min(1).optional(),
        /** HTTP basic auth (MLflow's basic-auth app); MLFLOW_TRACKING_USERNAME/PASSWORD are the fallback. */
        username: z.string().min(1).optional(),
        password: z.string().min(1).optional(),
        /** Per-request deadline for API calls, ms (artifact transfers: idle timeout). */
        timeoutMs: z.number().int().min(100).default(30_000),
        /** Retries of idempotent calls after 429/5xx/connection errors, with exponential backoff. */
        retries: z.number().int().min(0).max(10).default(4),
      })
      .strict()
      .refine((t) => (t.username === undefined) === (t.password === undefined), {
        message: 'set both username and password (HTTP basic auth), or neither',
      })
      .default({ experiment: 'aegis-retrain', timeoutMs: 30_000, retries: 4 }),
    /** The retraining pipeline a drift alert starts (src/pipeline, docs/retrain-on-drift.md). */
    pipeline: z
      .object({
        /** Runs executed at once by one control plane; more wait `queued`. */
        maxConcurrentRuns: z.number().int().min(1).max(64).default(1),
        /** Tries of a failing step (the first included) before the run fails. */
        attempts: z.number().int().min(1).max(20).default(3),
        /** Wait before the 2nd try of a step, ms; doubled for each further try (at most 5 minutes). */
        backoffMs: z.number().int().min(0).max(3_600_000).default(5000),
        /** The evaluation gate: the candidate's held-out metrics (from its aegis.yaml). */
        evaluate: z
          .object({
            /** Lowest accuracy accepted. */
            minAccuracy: z.number().min(0).max(1).default(0.85),
            /** Lowest macro-F1 accepted; unset: not checked. */
            minMacroF1: z.number().min(0).max(1).optional(),
            /** Most the candidate's accuracy and macro-F1 may be below the production version's recorded ones. */
            maxRegression: z.number().min(0).max(1).default(0.05),
          })
          .strict()
          .default({ minAccuracy: 0.85, maxRegression: 0.05 }),
        /** Where runs keep their files (<workDir>/<run>/…); default <home>/pipeline. On a cluster: a volume every step's pod mounts. */
        workDir: z.string().min(1).optional(),
        /**
         * Trainer to run instead of the built-in one: argv with {dataset}, {out}, {model}, {version}, {parent}, {run}
         * placeholders (also in the environment as AEGIS_DATASET_DIR, AEGIS_OUTPUT_DIR, …); it must write a model
         * directory with aegis.yaml (metrics from a held-out split) into {out}. Env: a JSON array or space-separated words.
         */
        trainCommand: z.preprocess(splitCommand, z.array(z.string().min(1)).min(1)).optional(),
        /** Settings of the built-in trainer (defaults: those of `aegis train`). */
        train: z
          .object({
            epochs: z.number().int().min(1).max(10_000).optional(),
            hidden: z.number().int().min(1).max(4096).optional(),
            batchSize: z.number().int().min(1).optional(),
            learningRate: z.number().gt(0).lt(10).optional(),
            seed: z.number().int().min(0).optional(),
          })
          .strict()
          .default({}),
        /** Model retrained when an alert names none; unset: the registry's only model, if it has exactly one. */
        model: z.string().min(1).optional(),
        /** PEM private key the pipeline signs with (until signing providers are configured); default the dev key <home>/keys/dev/signing-key.pem. */
        signingKey: z.string().min(1).optional(),
        /** A run whose executing process stops renewing its lease for this long is taken over by another (PostgreSQL). */
        leaseSeconds: z.number().int().min(5).max(86_400).default(60),
      })
      .strict()
      .default({ maxConcurrentRuns: 1, attempts: 3, backoffMs: 5000, evaluate: { minAccuracy: 0.85, maxRegression: 0.05 }, train: {}, leaseSeconds: 60 }),
  })
  .strict();

/** A command given as one string (environment): a JSON array, or words separated by spaces. */
function splitCommand(value: unknown): unknown {
  if (typeof value !== 'string') return value;
  const t = value.trim();
  if (t.startsWith('[')) {
    try {
      return JSON.parse(t) as unknown;
    } catch {
      return value;
    }
  }
  return t.split(/\s+/).filter(Boolean);
}

function isCronExpression(expr: string): boolean {
  try {
    CronExpressionParser.parse(expr, { tz: 'UTC' });
    return true;
  } catch {
    return false;
  }
}

export type AegisConfig = Readonly<z.infer<typeof configSchema>>;

/** Environment variables → config paths. Values are parsed as JSON when possible (numbers, booleans). */
const ENV_MAP: Record<string, string[]> = {
  AEGIS_HOME: ['home'],
  AEGIS_LOG_LEVEL: ['logLevel'],
  AEGIS_HASH_WORKERS: ['hashing', 'workers'],
  AEGIS_HASH_CHUNK_BYTES: ['hashing', 'chunkBytes'],
  AEGIS_DEFAULT_CURVE: ['signing', 'defaultCurve'],
  AEGIS_MAX_BUNDLE_BYTES: ['signing', 'maxBundleBytes'],
  AEGIS_KMS_KEY_ID: ['signing', 'kmsKeyId'],
  AEGIS_KMS_REGION: ['signing', 'kmsRegion'],
  AEGIS_KMS_ENDPOINT: ['signing', 'kmsEndpoint'],
  AEGIS_DATABASE_URL: ['databaseUrl'],
  AEGIS_STORE_URI: ['storeUri'],
  AEGIS_CACHE_DIR: ['cacheDir'],
  AEGIS_ACTOR: ['actor'],
  AEGIS_FETCH_MAX_ENTRIES: ['fetch', 'maxEntries'],
  AEGIS_FETCH_MAX_BYTES: ['fetch', 'maxBytes'],
  AEGIS_CONTROL_HOST: ['control', 'host'],
  AEGIS_CONTROL_PORT: ['control', 'port'],
  AEGIS_CONTROL_TOKEN: ['control', 'token'],
  AEGIS_CONTROL_URL: ['control', 'url'],
  AEGIS_BACKUP_SCHEDULE: ['backup', 'schedule'],
  AEGIS_BACKUP_STORE_URI: ['backup', 'storeUri'],
  AEGIS_BACKUP_KEEP_DAILY: ['backup', 'keepDaily'],
  AEGIS_BACKUP_KEEP_WEEKLY: ['backup', 'keepWeekly'],
  AEGIS_PG_DUMP_PATH: ['backup', 'pgDumpPath'],
  AEGIS_PG_RESTORE_PATH: ['backup', 'pgRestorePath'],
  AEGIS_BACKUP_HEALTH_URL: ['backup', 'healthUrl'],
  AEGIS_DRIFT_ENABLED: ['drift', 'enabled'],
  AEGIS_DRIFT_WINDOW_ROWS: ['drift', 'windowRows'],
  AEGIS_DRIFT_MIN_ROWS: ['drift', 'minRows'],
  AEGIS_DRIFT_INTERVAL_SECONDS: ['drift', 'intervalSeconds'],
  AEGIS_DRIFT_SAMPLE_RATE: ['drift', 'sampleRate'],
  AEGIS_DRIFT_SHARE: ['drift', 'driftShare'],
  AEGIS_DRIFT_DATASET_URI: ['drift', 'datasetUri'],
  AEGIS_ALERTS_TOKEN: ['alerts', 'token'],
  AEGIS_ALERTS_ALLOW_UNAUTHENTICATED: ['alerts', 'allowUnauthenticated'],
  AEGIS_ALERTS_HMAC_SECRET: ['alerts', 'hmacSecret'],
  AEGIS_ALERTS_HMAC_HEADER: ['alerts', 'hmacHeader'],
  AEGIS_ALERTS_MODEL_LABEL: ['alerts', 'modelLabel'],
  AEGIS_ALERTS_COOLDOWN_SECONDS: ['alerts', 'cooldownSeconds'],
  AEGIS_ALERTS_MAX_CONCURRENT_RETRAINS: ['alerts', 'maxConcurrentRetrains'],
  AEGIS_ALERTS_BODY_LIMIT_BYTES: ['alerts', 'bodyLimitBytes'],
  AEGIS_MLFLOW_TRACKING_URI: ['tracking', 'mlflowUri'],
  AEGIS_MLFLOW_EXPERIMENT: ['tracking', 'experiment'],
  AEGIS_MLFLOW_TRACKING_TOKEN: ['tracking', 'token'],
  AEGIS_MLFLOW_TRACKING_USERNAME: ['tracking', 'username'],
  AEGIS_MLFLOW_TRACKING_PASSWORD: ['tracking', 'password'],
  AEGIS_MLFLOW_TIMEOUT_MS: ['tracking', 'timeoutMs'],
  AEGIS_MLFLOW_RETRIES: ['tracking', 'retries'],
  AEGIS_PIPELINE_MAX_CONCURRENT_RUNS: ['pipeline', 'maxConcurrentRuns'],
  AEGIS_PIPELINE_ATTEMPTS: ['pipeline', 'attempts'],
  AEGIS_PIPELINE_BACKOFF_MS: ['pipeline', 'backoffMs'],
  AEGIS_PIPELINE_MIN_ACCURACY: ['pipeline', 'evaluate', 'minAccuracy'],
  AEGIS_PIPELINE_MIN_MACRO_F1: ['pipeline', 'evaluate', 'minMacroF1'],
  AEGIS_PIPELINE_MAX_REGRESSION: ['pipeline', 'evaluate', 'maxRegression'],
  AEGIS_PIPELINE_WORK_DIR: ['pipeline', 'workDir'],
  AEGIS_PIPELINE_TRAIN_COMMAND: ['pipeline', 'trainCommand'],
  AEGIS_PIPELINE_MODEL: ['pipeline', 'model'],
  AEGIS_PIPELINE_SIGNING_KEY: ['pipeline', 'signingKey'],
  AEGIS_PIPELINE_LEASE_SECONDS: ['pipeline', 'leaseSeconds'],
};

/** Settings that are strings: taken verbatim, so AEGIS_HOME=2024 is a folder name, not a number. */
const STRING_ENV = new Set([
  'AEGIS_HOME',
  'AEGIS_LOG_LEVEL',
  'AEGIS_DEFAULT_CURVE',
  'AEGIS_KMS_KEY_ID',
  'AEGIS_KMS_REGION',
  'AEGIS_KMS_ENDPOINT',
  'AEGIS_DATABASE_URL',
  'AEGIS_STORE_URI',
  'AEGIS_CACHE_DIR',
  'AEGIS_ACTOR',
  'AEGIS_CONTROL_HOST',
  'AEGIS_CONTROL_TOKEN',
  'AEGIS_CONTROL_URL',
  'AEGIS_BACKUP_SCHEDULE',
  'AEGIS_BACKUP_STORE_URI',
  'AEGIS_PG_DUMP_PATH',
  'AEGIS_PG_RESTORE_PATH',
  'AEGIS_BACKUP_HEALTH_URL',
  'AEGIS_DRIFT_DATASET_URI',
  'AEGIS_ALERTS_TOKEN',
  'AEGIS_ALERTS_HMAC_SECRET',
  'AEGIS_ALERTS_HMAC_HEADER',
  'AEGIS_ALERTS_MODEL_LABEL',
  'AEGIS_MLFLOW_TRACKING_URI',
  'AEGIS_MLFLOW_EXPERIMENT',
  'AEGIS_MLFLOW_TRACKING_TOKEN',
  'AEGIS_MLFLOW_TRACKING_USERNAME',
  'AEGIS_MLFLOW_TRACKING_PASSWORD',
  'AEGIS_PIPELINE_WORK_DIR',
  'AEGIS_PIPELINE_TRAIN_COMMAND',
  'AEGIS_PIPELINE_MODEL',
  'AEGIS_PIPELINE_SIGNING_KEY',
]);

function setPath(target: Record<string, unknown>, path: string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== 'object' || next === null) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[path[path.length - 1]!] = value;
}

function envValue(raw: string): unknown {
  if (/^-?\d+(\.\d+)?$/.test(raw)) return Number(raw);
  if (raw === 'true' || raw === 'false') return raw === 'true';
  return raw;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

export interface LoadConfigOptions {
  /** Explicit config file; otherwise $AEGIS_CONFIG, otherwise ./aegis.config.yaml if it exists. */
  file?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export function loadConfig(options: LoadConfigOptions = {}): AegisConfig {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const explicit = options.file ?? env.AEGIS_CONFIG;
  const file = resolve(cwd, explicit ?? 'aegis.config.yaml');
  let fromFile: Record<string, unknown> = {};
  try {
    const text = readFileSync(file, 'utf8');
    const parsed: unknown = parseYaml(text);
    if (parsed !== null && parsed !== undefined) {
      if (typeof parsed !== 'object' || Array.isArray(parsed)) {
        throw new AegisError('CONFIG_INVALID', `config file ${file} must be a YAML mapping`, {
          hint: 'Write the settings as `key: value` pairs; see docs/configuration.md.',
        });
      }
      fromFile = parsed as Record<string, unknown>;
    }
  } catch (err) {
    if (err instanceof AegisError) throw err;
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    if (!missing || explicit) {
      throw new AegisError('CONFIG_INVALID', `cannot read config file ${file}: ${(err as Error).message}`, {
        cause: err,
        hint: missing ? 'Create the file or unset AEGIS_CONFIG.' : 'Fix the YAML syntax at the position shown.',
      });
    }
  }
  const merged: Record<string, unknown> = structuredClone(fromFile);
  for (const [name, path] of Object.entries(ENV_MAP)) {
    const raw = env[name];
    if (raw !== undefined && raw !== '') setPath(merged, path, STRING_ENV.has(name) ? raw : envValue(raw));
  }
  const result = configSchema.safeParse(merged);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const where = issue.path.join('.') || '(root)';
    throw new AegisError('CONFIG_INVALID', `invalid configuration at ${where}: ${issue.message}`, {
      hint: `Fix "${where}" in ${file} or in the matching AEGIS_* environment variable.`,
      details: { path: where, issues: result.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })) },
    });
  }
  return deepFreeze(result.data);
}

/** Where the embedded platform keeps things, derived from `home` unless set explicitly. */
export function platformPaths(c: AegisConfig): { db: string; store: string; cache: string; keys: string; trust: string; controlToken: string; controlUrl: string } {
  const home = resolve(c.home);
  return {
    controlToken: resolve(home, 'control.token'),
    controlUrl: resolve(home, 'control.url'),
    db: resolve(home, 'db'),
    store: c.storeUri ?? resolve(home, 'artifacts'),
    cache: resolve(c.cacheDir ?? resolve(home, 'cache')),
    keys: resolve(home, 'keys'),
    trust: resolve(home, 'trust.yaml'),
  };
}
