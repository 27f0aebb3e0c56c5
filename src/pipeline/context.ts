import type { Tracker } from '../tracking/types.js';
import type { PipelineDeps } from './deps.js';
import type { JsonObject, PipelineRun, StepName } from './types.js';

/** What a step gets: its run, the outputs of the steps before it, a log, a cancel signal. */
export interface StepContext {
  deps: PipelineDeps;
  /** The run as it was when the step started. */
  run: PipelineRun;
  name: StepName;
  /** 1 for the first try of this step. */
  attempt: number;
  /** Aborted when the run is cancelled or the process shuts down: stop and throw. */
  signal: AbortSignal;
  /** The run's folder (<workDir>/<run id>), shared by its steps. */
  runDir: string;
  /** The process holding the run (store writes check it). */
  owner: string;
  /** Adds a line to the step's log (kept in its DB row). */
  log(line: string): void;
  /** The outputs of an earlier step, which has succeeded. */
  output<T = JsonObject>(step: StepName): T;
  /** The run's tracking run (MLflow or the database), started on first use; the run's model must be resolved (train). */
  tracking(): Promise<{ tracker: Tracker; runId: string }>;
  /** Re-reads the run (after the train step resolved its model and version). */
  refresh(): Promise<PipelineRun>;
}

export interface StepResult {
  /** Stored on the step row: what later steps read. */
  outputs: JsonObject;
  /** Merged into the run's outputs (what `aegis pipeline list` shows). */
  summary?: JsonObject;
}

export type StepImpl = (ctx: StepContext) => Promise<StepResult>;
