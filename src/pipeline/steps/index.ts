import type { StepImpl } from '../context.js';
import type { StepName } from '../types.js';
import { canaryStep } from './canary.js';
import { evaluateStep } from './evaluate.js';
import { packageStep, signStep } from './package.js';
import { pushStep } from './push.js';
import { registerStep } from './register.js';
import { trainStep } from './train.js';

/** The pipeline: every step, in STEP_NAMES order. */
export const STEPS: Readonly<Record<StepName, StepImpl>> = {
  train: trainStep,
  evaluate: evaluateStep,
  package: packageStep,
  sign: signStep,
  push: pushStep,
  register: registerStep,
  canary: canaryStep,
};

/** One line per step, for help texts, docs and the Argo template. */
export const STEP_DESCRIPTIONS: Readonly<Record<StepName, string>> = {
  train: 'train on the dataset (built-in trainer or pipeline.trainCommand) into <run>/model; log params and metrics',
  evaluate: 'gate: held-out metrics must reach the minimums and not regress from production by more than maxRegression',
  package: 'the model directory to sign, with aegis.yaml carrying the new version and its lineage',
  sign: 'sign it (OMS bundle) and write model.tar.gz + model.tar.gz.sig; log both as tracking artifacts',
  push: 'upload the archive and its signature to the artifact store (skipped when already there)',
  register: 'verify the pushed archive and register the version with its lineage; tracker model version + alias',
  canary: 'start a canary rollout of the new version against production',
};

export type { TrainOutputs } from './train.js';
export type { PackageOutputs, SignOutputs } from './package.js';
export type { PushOutputs } from './push.js';
export { gate, describeCheck, type GateCheck } from './evaluate.js';
export { CANDIDATE_ALIAS } from './register.js';
