/**
 * The durable retraining pipeline (docs/retrain-on-drift.md): train →
 * evaluate → package → sign → push → register → canary, every run and step a
 * row in the database. PipelineRunner executes runs in the control plane and
 * is the alert receiver's RetrainTrigger; runSingleStep runs one step per
 * process (`aegis pipeline step`, an Argo Workflow's containers).
 */
export { PipelineRunner, backoffDelay, MAX_BACKOFF_MS, type PipelineRunnerOptions, type SubmitInput } from './runner.js';
export { runSingleStep, checkStepName, type SingleStepResult } from './single-step.js';
export { verifyingRegistrar, type VerifyingRegistrarOptions } from './registrar.js';
export { DbTracker } from './db-tracker.js';
export { retrainVersion } from './version.js';
export { isRetryable, trackerOf, finishTracking, type StepOutcome } from './execute.js';
export { getRun, listRuns, listSteps, requestCancel, retryRun, LOG_LIMIT } from './store.js';
export { STEPS, STEP_DESCRIPTIONS, gate, describeCheck, CANDIDATE_ALIAS, type GateCheck, type TrainOutputs, type PackageOutputs, type SignOutputs, type PushOutputs } from './steps/index.js';
export type { PipelineDeps, PipelineHooks } from './deps.js';
export * from './types.js';
export { renderArgoWorkflowTemplate, STEP_EXIT_FINAL, STEP_EXIT_RETRY, type ArgoTemplateOptions } from './argo.js';
