import type { AegisConfig } from '../config/index.js';
import type { Lineage, ModelVersion } from '../registry/types.js';

/**
 * The retraining pipeline's records and the small roles it is given. One
 * list of steps, run in order, each a DB row; a run's state says where it is.
 */
export const STEP_NAMES = ['train', 'evaluate', 'package', 'sign', 'push', 'register', 'canary'] as const;
export type StepName = (typeof STEP_NAMES)[number];

/**
 * queued → running → succeeded | failed | rejected (the evaluation gate said no) | cancelled.
 * `aegis pipeline retry` puts a failed, rejected or cancelled run back to queued.
 */
export type RunState = 'queued' | 'running' | 'succeeded' | 'failed' | 'rejected' | 'cancelled';
export const FINAL_STATES: readonly RunState[] = ['succeeded', 'failed', 'rejected', 'cancelled'];

/** pending → running → succeeded | failed; `skipped` after a rejection (never run). */
export type StepState = 'pending' | 'running' | 'succeeded' | 'failed' | 'skipped';

export type JsonObject = Record<string, unknown>;

export interface PipelineRun {
  /** Sequential id (`aegis pipeline show 3`); as a string it is the RetrainTrigger run id. */
  id: number;
  /** Globally unique id: the tracking run's idempotency key (several Aegis databases may share one MLflow). */
  uid: string;
  requestId: string;
  source: 'alert' | 'manual';
  /** `local`: the control plane's runner executes it; `external`: `aegis pipeline step` commands do (an Argo Workflow). */
  executor: 'local' | 'external';
  request: RunRequest;
  /** Filled by the train step (resolved from the request, the config, the registry). */
  model: string | null;
  version: string | null;
  parentVersion: string | null;
  datasetUri: string | null;
  alertId: number | null;
  triggerId: number | null;
  state: RunState;
  /** 1, plus one per `retry`. */
  attempts: number;
  error: string | null;
  errorCode: string | null;
  /** A summary of the step outputs (version, archive, rollout, …). */
  outputs: JsonObject;
  trackingKind: string | null;
  trackingRunId: string | null;
  /** The database tracker's record (params, tags, artifacts) when no MLflow is configured. */
  tracking: JsonObject;
  cancelRequested: boolean;
  owner: string | null;
  leaseUntil: Date | null;
  createdBy: string;
  createdAt: Date;
  updatedAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
}

export interface PipelineStep {
  runId: number;
  name: StepName;
  position: number;
  state: StepState;
  attempts: number;
  /** The step's log, the newest LOG_LIMIT characters. */
  logs: string;
  outputs: JsonObject;
  error: string | null;
  errorCode: string | null;
  startedAt: Date | null;
  finishedAt: Date | null;
}

/** What a run was asked to do: stored as given, resolved by the train step. */
export interface RunRequest {
  model?: string;
  /** The version the alert was about (informative: the parent is the production version when the run starts). */
  version?: string;
  datasetUri?: string;
  alert?: { id: number; alertname: string; fingerprint: string; startsAt: string; labels: Record<string, string>; annotations: Record<string, string> };
  triggerId?: number;
}

/** Starts a canary rollout of a registered version (the rollout controller, locally or through the control-plane API). */
export interface CanaryStarter {
  start(model: string, version: string, actor: string): Promise<{ rolloutId: number }>;
  /**
   * The rollout already started for `model@version`, if any: a step re-run
   * after a crash between starting the rollout and recording it finds it
   * instead of starting a second one.
   */
  find?(model: string, version: string): Promise<{ rolloutId: number } | undefined>;
}

export interface RegisterInput {
  /** Canonical archive URI in the artifact store (its signature is `<uri>.sig`). */
  uri: string;
  /** Merged over the lineage taken from the verified manifest (parent, dataset). */
  lineage: Lineage;
  actor: string;
}

/**
 * Registers a pushed archive: fetches and verifies it exactly as a model
 * server would, then records the version with its lineage. Idempotent: the
 * same archive again returns the version registered before (`created: false`).
 */
export interface VersionRegistrar {
  register(input: RegisterInput): Promise<{ version: ModelVersion; created: boolean }>;
}

export type PipelineSettings = AegisConfig['pipeline'];
