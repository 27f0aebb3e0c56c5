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
      })
      .strict()
      .default({ defaultCurve: 'p256', maxBundleBytes: 64 * 1024 * 1024 }),
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
  })
  .strict();

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
  AEGIS_DATABASE_URL: ['databaseUrl'],
  AEGIS_STORE_URI: ['storeUri'],
  AEGIS_CACHE_DIR: ['cacheDir'],
  AEGIS_ACTOR: ['actor'],
  AEGIS_FETCH_MAX_ENTRIES: ['fetch', 'maxEntries'],
  AEGIS_FETCH_MAX_BYTES: ['fetch', 'maxBytes'],
  AEGIS_BACKUP_SCHEDULE: ['backup', 'schedule'],
  AEGIS_BACKUP_STORE_URI: ['backup', 'storeUri'],
  AEGIS_BACKUP_KEEP_DAILY: ['backup', 'keepDaily'],
  AEGIS_BACKUP_KEEP_WEEKLY: ['backup', 'keepWeekly'],
  AEGIS_PG_DUMP_PATH: ['backup', 'pgDumpPath'],
  AEGIS_PG_RESTORE_PATH: ['backup', 'pgRestorePath'],
  AEGIS_BACKUP_HEALTH_URL: ['backup', 'healthUrl'],
};

/** Settings that are strings: taken verbatim, so AEGIS_HOME=2024 is a folder name, not a number. */
const STRING_ENV = new Set([
  'AEGIS_HOME',
  'AEGIS_LOG_LEVEL',
  'AEGIS_DEFAULT_CURVE',
  'AEGIS_DATABASE_URL',
  'AEGIS_STORE_URI',
  'AEGIS_CACHE_DIR',
  'AEGIS_ACTOR',
  'AEGIS_BACKUP_SCHEDULE',
  'AEGIS_BACKUP_STORE_URI',
  'AEGIS_PG_DUMP_PATH',
  'AEGIS_PG_RESTORE_PATH',
  'AEGIS_BACKUP_HEALTH_URL',
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
export function platformPaths(c: AegisConfig): { db: string; store: string; cache: string; keys: string; trust: string } {
  const home = resolve(c.home);
  return {
    db: resolve(home, 'db'),
    store: c.storeUri ?? resolve(home, 'artifacts'),
    cache: resolve(c.cacheDir ?? resolve(home, 'cache')),
    keys: resolve(home, 'keys'),
    trust: resolve(home, 'trust.yaml'),
  };
}
