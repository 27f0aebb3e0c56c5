import type { Db } from '../db/types.js';
import type { Registry } from '../registry/index.js';
import type { Signer } from '../signing/signer.js';
import type { ArtifactStore } from '../store/types.js';
import type { Tracker } from '../tracking/types.js';
import type { CanaryStarter, PipelineRun, PipelineSettings, StepName, VersionRegistrar } from './types.js';

/**
 * Everything a pipeline step may use, passed in by the composition root
 * (`aegis up`, `aegis pipeline …`): no step reaches for config or globals.
 */
export interface PipelineDeps {
  db: Db;
  registry: Registry;
  /** Where archives are pushed (archiveKey layout). */
  store: ArtifactStore;
  /** The signing key, asked for by the sign step only (PEM file, KMS, …). */
  signer: () => Promise<Signer>;
  registrar: VersionRegistrar;
  /** Starts the canary; without one the canary step fails, telling how to configure it. */
  canary?: CanaryStarter;
  /** MLflow (tracking/openTracker); undefined: runs are tracked in the Aegis database (DbTracker). */
  tracker?: Tracker;
  settings: PipelineSettings;
  /** Resolved pipeline.workDir: each run keeps its files in <workDir>/<run id>/. */
  workDir: string;
  /** Who the pipeline acts as (audit log, rollouts). */
  actor: string;
  /** TESTS ONLY: points where a test stalls or kills the process. */
  hooks?: PipelineHooks;
}

export interface PipelineHooks {
  /** A step's work is done (side effects made) but its success is not recorded yet: a crash here re-runs the step. */
  beforeRecord?(run: PipelineRun, step: StepName): Promise<void> | void;
  /** A step's success is recorded. */
  afterStep?(run: PipelineRun, step: StepName): Promise<void> | void;
}
