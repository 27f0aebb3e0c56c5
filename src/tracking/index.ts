import type { AegisConfig } from '../config/index.js';
import { MlflowTracker, type MlflowTrackerOptions } from './mlflow/index.js';

export type {
  FinalRunStatus,
  LoggedArtifact,
  MetricPoint,
  ModelVersionRef,
  ParamValue,
  RegisterModelVersionInput,
  RunStatus,
  StartRunInput,
  TrackedRun,
  Tracker,
} from './types.js';
export { checkArtifactPath, MLFLOW_LIMITS, MlflowTracker, TAGS, mlflowErrorCode, type MlflowTrackerOptions } from './mlflow/index.js';

export interface OpenTrackerOptions {
  /** Read for the MLFLOW_TRACKING_TOKEN / _USERNAME / _PASSWORD fallbacks; default process.env. */
  env?: NodeJS.ProcessEnv;
  /** `mlflow.user` of new runs; default the OS user (pass config.actor when set). */
  defaultUser?: string;
  /** Test hooks and tuning (backoff, limits, dispatcher). */
  overrides?: Partial<MlflowTrackerOptions>;
}

/**
 * The MLflow tracker when `tracking.mlflowUri` is set, else undefined: the
 * caller (the pipeline) then records runs in the Aegis DB only.
 *
 * Credentials: tracking.token / tracking.username+password
 * (AEGIS_MLFLOW_TRACKING_TOKEN, …) when any is set; otherwise MLflow's own
 * MLFLOW_TRACKING_TOKEN, MLFLOW_TRACKING_USERNAME + MLFLOW_TRACKING_PASSWORD.
 * MLFLOW_TRACKING_URI is deliberately not read: it is often set for training
 * code (and may be `databricks`, `file:` or `sqlite:`), and where Aegis sends
 * its records should be an explicit choice (docs/tracking.md).
 */
export function openTracker(tracking: AegisConfig['tracking'], options: OpenTrackerOptions = {}): MlflowTracker | undefined {
  if (!tracking.mlflowUri) return undefined;
  const env = options.env ?? process.env;
  const own = tracking.token !== undefined || tracking.username !== undefined;
  const credentials = own
    ? { token: tracking.token, username: tracking.username, password: tracking.password }
    : {
        token: env.MLFLOW_TRACKING_TOKEN || undefined,
        ...(env.MLFLOW_TRACKING_USERNAME && env.MLFLOW_TRACKING_PASSWORD ? { username: env.MLFLOW_TRACKING_USERNAME, password: env.MLFLOW_TRACKING_PASSWORD } : {}),
      };
  return new MlflowTracker({
    baseUrl: tracking.mlflowUri,
    experiment: tracking.experiment,
    timeoutMs: tracking.timeoutMs,
    retries: tracking.retries,
    ...stripUndefined(credentials),
    ...(options.defaultUser ? { defaultUser: options.defaultUser } : {}),
    ...options.overrides,
  });
}

function stripUndefined<T extends Record<string, unknown>>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
