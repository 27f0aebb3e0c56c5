/**
 * Errors a user can cause carry a stable `code` (for scripts and docs), the
 * underlying `cause`, and a `hint` that says what to do about it.
 * Every module throws AegisError for expected failures; anything else is a bug.
 */
export type ErrorCode =
  // configuration and input
  | 'CONFIG_INVALID'
  | 'USAGE'
  | 'FILE_NOT_FOUND'
  | 'FILE_UNREADABLE'
  // model scanning (OMS serialization rules)
  | 'MODEL_EMPTY'
  | 'MODEL_NOT_FOUND'
  | 'SYMLINK_REJECTED'
  | 'SYMLINK_ESCAPES_ROOT'
  | 'SYMLINK_LOOP'
  | 'SYMLINK_BROKEN'
  | 'UNSUPPORTED_FILE_TYPE'
  | 'IGNORE_PATH_INVALID'
  // keys and certificates
  | 'KEY_INVALID'
  | 'KEY_UNSUPPORTED'
  | 'KEY_MISMATCH'
  | 'KEY_UNTRUSTED'
  | 'KEY_REVOKED'
  | 'KEY_EXPIRED'
  | 'KEY_NOT_YET_VALID'
  | 'CERT_INVALID'
  | 'CERT_CHAIN_UNTRUSTED'
  | 'CERT_EXPIRED'
  | 'CERT_USAGE'
  | 'TRUST_POLICY_INVALID'
  // signing keys held in AWS KMS
  | 'KMS_KEY_NOT_FOUND'
  | 'KMS_ACCESS_DENIED'
  | 'KMS_KEY_UNUSABLE'
  | 'KMS_UNREACHABLE'
  | 'KMS_SIGNATURE_INVALID'
  | 'KMS_REQUEST_FAILED'
  // bundles
  | 'BUNDLE_UNREADABLE'
  | 'BUNDLE_TOO_LARGE'
  | 'BUNDLE_MALFORMED'
  | 'BUNDLE_MEDIA_TYPE'
  | 'BUNDLE_METHOD_MISMATCH'
  | 'BUNDLE_METHOD_UNSUPPORTED'
  | 'PAYLOAD_TYPE'
  | 'STATEMENT_MALFORMED'
  | 'PREDICATE_TYPE'
  | 'RESOURCE_NAME_UNSAFE'
  | 'RESOURCE_DUPLICATE'
  | 'HASH_UNSUPPORTED'
  | 'ROOT_DIGEST_MISMATCH'
  | 'SIGNATURE_INVALID'
  // model content vs. manifest
  | 'FILE_MISSING'
  | 'FILE_EXTRA'
  | 'DIGEST_MISMATCH'
  // model manifest, archives, fetch
  | 'MANIFEST_MISSING'
  | 'MANIFEST_INVALID'
  | 'ARCHIVE_UNSAFE_ENTRY'
  | 'ARCHIVE_TRUNCATED'
  | 'ARCHIVE_CORRUPT'
  | 'ARCHIVE_TOO_LARGE'
  | 'ARCHIVE_SIGNATURE_INVALID'
  | 'MODEL_IDENTITY_MISMATCH'
  // model server
  | 'MODEL_LOAD_FAILED'
  | 'SERVER_START_FAILED'
  | 'SWAP_IN_PROGRESS'
  // metadata database
  | 'DB_UNREACHABLE'
  | 'DB_LOCKED'
  | 'DB_MIGRATION_FAILED'
  | 'DB_SCHEMA_TOO_NEW'
  // model registry
  | 'REGISTRY_NOT_FOUND'
  | 'REGISTRY_INPUT_INVALID'
  | 'VERSION_IMMUTABLE'
  | 'VERSION_RETIRED'
  | 'STAGE_INVALID'
  // artifact stores (file://, s3://)
  | 'STORE_KEY_INVALID'
  | 'STORE_NOT_FOUND'
  | 'STORE_UNREACHABLE'
  | 'STORE_WRITE_FAILED'
  // database backup and restore
  | 'BACKUP_TOOL_MISSING'
  | 'BACKUP_FAILED'
  | 'BACKUP_NOT_FOUND'
  | 'BACKUP_INCOMPLETE'
  | 'BACKUP_MANIFEST_INVALID'
  | 'BACKUP_CORRUPT'
  | 'BACKUP_SCHEMA_TOO_NEW'
  | 'BACKUP_SCHEDULE_INVALID'
  | 'RESTORE_TARGET_NOT_EMPTY'
  | 'RESTORE_FAILED'
  // training and datasets
  | 'DATASET_INVALID'
  | 'TRAINING_FAILED'
  | 'ONNX_INVALID'
  // load generator
  | 'LOAD_TARGET_UNREACHABLE'
  // canary rollouts
  | 'ROLLOUT_SPEC_INVALID'
  | 'ROLLOUT_ACTIVE'
  | 'ROLLOUT_NOT_FOUND'
  | 'ROLLOUT_NOT_ALLOWED'
  | 'ROLLOUT_TARGET_MISSING'
  // control plane
  | 'CONTROL_UNREACHABLE'
  | 'CONTROL_UNAUTHORIZED'
  | 'CONTROL_REQUEST_FAILED'
  // Alertmanager receiver and retrain triggers
  | 'ALERT_RECEIVER_UNSECURED'
  | 'ALERT_PAYLOAD_INVALID'
  | 'ALERT_UNAUTHORIZED'
  | 'ALERT_STORE_FAILED'
  | 'RETRAIN_START_FAILED'
  // drift monitor
  | 'DRIFT_PROFILE_INVALID'
  | 'DRIFT_UNAVAILABLE'
  // experiment tracking (MLflow)
  | 'TRACKING_UNREACHABLE'
  | 'TRACKING_REJECTED'
  | 'TRACKING_AUTH_FAILED'
  | 'TRACKING_NOT_FOUND'
  | 'TRACKING_INPUT_INVALID'
  | 'TRACKING_ARTIFACTS_UNSUPPORTED'
  // retraining pipeline
  | 'PIPELINE_NOT_FOUND'
  | 'PIPELINE_INPUT_INVALID'
  | 'PIPELINE_STATE_INVALID'
  | 'PIPELINE_STEP_FAILED'
  | 'PIPELINE_REJECTED'
  | 'PIPELINE_CONFLICT'
  | 'PIPELINE_CANCELLED'
  | 'INTERNAL';

export interface AegisErrorOptions {
  cause?: unknown;
  /** What the user should do about it. */
  hint?: string;
  /** Machine-readable context (paths, digests, ids) for `--json` output. */
  details?: Record<string, unknown>;
}

export class AegisError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly details: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, options: AegisErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AegisError';
    this.code = code;
    this.hint = options.hint;
    this.details = options.details ?? {};
  }

  toJSON(): Record<string, unknown> {
    return {
      code: this.code,
      message: this.message,
      ...(this.hint ? { hint: this.hint } : {}),
      ...(Object.keys(this.details).length ? { details: this.details } : {}),
      ...(this.cause instanceof Error ? { cause: this.cause.message } : {}),
    };
  }
}

export function isAegisError(e: unknown, code?: ErrorCode): e is AegisError {
  return e instanceof AegisError && (code === undefined || e.code === code);
}

/** Wraps a filesystem error in an AegisError that names the path. */
export function fsError(err: unknown, path: string, what: string): AegisError {
  const errno = (err as NodeJS.ErrnoException | undefined)?.code;
  if (errno === 'ENOENT') {
    return new AegisError('FILE_NOT_FOUND', `${what} not found: ${path}`, {
      cause: err,
      hint: 'Check the path; relative paths are resolved from the current directory.',
      details: { path },
    });
  }
  return new AegisError('FILE_UNREADABLE', `cannot read ${what} ${path}: ${(err as Error).message}`, {
    cause: err,
    hint: 'Check that the file exists and that you have permission to read it.',
    details: { path },
  });
}
