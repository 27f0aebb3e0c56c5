/**
 * The experiment-tracking role: where a retraining pipeline records a run's
 * parameters, metrics, artifacts, outcome and the model version it produced.
 *
 * Implementations: tracking/mlflow (MLflow Tracking REST API 2.0). Without an
 * MLflow server the pipeline records runs in the Aegis DB through its own
 * implementation of this interface. Nothing here is MLflow-specific: ids and
 * URIs are opaque strings that only the implementation that issued them reads.
 *
 * Every method is safe to call again with the same arguments after a crash or
 * a failed attempt (the pipeline retries steps): `startRun` with the same
 * `pipelineRunId` returns the run it made before, params and tags are
 * idempotent, metrics carry their timestamp so a resent point is the same point,
 * artifacts are overwritten, `registerModelVersion` returns the version it
 * registered before for the same run and artifact path.
 */
export interface Tracker {
  /** 'mlflow', 'db', …: for logs and status output. */
  readonly kind: string;
  /** Gets the run tagged with `input.pipelineRunId`, or starts one. */
  startRun(input: StartRunInput): Promise<TrackedRun>;
  /** Params are write-once per run: the same key again with another value is rejected. */
  logParams(runId: string, params: Readonly<Record<string, ParamValue>>): Promise<void>;
  logMetrics(runId: string, metrics: readonly MetricPoint[]): Promise<void>;
  /** Tags may be overwritten. */
  setTags(runId: string, tags: Readonly<Record<string, string>>): Promise<void>;
  /** Uploads one local file to `<artifactDir>/<file name>` among the run's artifacts (overwriting). */
  logArtifact(runId: string, localPath: string, artifactDir?: string): Promise<LoggedArtifact>;
  /** Ends the run with its outcome; end time default now. */
  finish(runId: string, status: FinalRunStatus, endTime?: number): Promise<void>;
  /** Registers the run's artifacts under `artifactDir` as a new version of `name` (model made when missing). */
  registerModelVersion(input: RegisterModelVersionInput): Promise<ModelVersionRef>;
  /** Points `alias` (e.g. "candidate", "champion") of model `name` at `version`. */
  setAlias(name: string, alias: string, version: string): Promise<void>;
}

export type ParamValue = string | number | boolean;

/** `timestamp` (ms since the epoch) defaults to when logMetrics was called; `step` to 0. */
export interface MetricPoint {
  key: string;
  value: number;
  step?: number;
  timestamp?: number;
}

export type FinalRunStatus = 'FINISHED' | 'FAILED' | 'KILLED';
export type RunStatus = 'RUNNING' | 'SCHEDULED' | FinalRunStatus;

export interface StartRunInput {
  /** The pipeline run this tracking run belongs to: the idempotency key (tag `aegis.pipeline_run_id`). */
  pipelineRunId: string;
  /** Display name; default `<model>-<pipelineRunId>` when `model` is given, else the pipeline run id. */
  runName?: string;
  /** Model being retrained (tag `aegis.model`). */
  model?: string;
  /** Who started it (tag `mlflow.user`); default the OS user. */
  user?: string;
  /** What ran (tag `mlflow.source.name`), e.g. `aegis pipeline retrain`. */
  sourceName?: string;
  /** Free text shown as the run's description (tag `mlflow.note.content`). */
  description?: string;
  /** More tags, set on the run (overwriting on a resumed run). */
  tags?: Readonly<Record<string, string>>;
  /** ms since the epoch; default now. */
  startTime?: number;
}

export interface TrackedRun {
  runId: string;
  /** True when the run already existed for this pipeline run (a retried step). */
  resumed: boolean;
  status: RunStatus;
  /** Where a person can look at the run, when the tracker has a UI. */
  url?: string;
}

export interface LoggedArtifact {
  /** Path among the run's artifacts, e.g. `model/model.tar.gz`. */
  path: string;
  /** Full URI, e.g. `mlflow-artifacts:/1/<run>/artifacts/model/model.tar.gz`. */
  uri: string;
  bytes: number;
}

export interface RegisterModelVersionInput {
  runId: string;
  /** Registered model name. */
  name: string;
  /** Folder among the run's artifacts holding the model (e.g. `model`); becomes the version's source. */
  artifactDir: string;
  /** Tags on the version, e.g. the Aegis version and archive digest. */
  tags?: Readonly<Record<string, string>>;
  description?: string;
}

export interface ModelVersionRef {
  name: string;
  version: string;
  /** Where the version's files are, e.g. `mlflow-artifacts:/1/<run>/artifacts/model`. */
  source: string;
  runId: string;
  /** Where a person can look at the version, when the tracker has a UI. */
  url?: string;
}
