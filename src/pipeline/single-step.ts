import { AegisError } from '../errors.js';
import type { PipelineDeps } from './deps.js';
import { attemptStep, endRun, holdLease, newOwner, type StepOutcome } from './execute.js';
import { claimRun, getRun, listSteps, releaseRun, reopenRun } from './store.js';
import { STEP_NAMES, type PipelineRun, type PipelineStep, type StepName } from './types.js';

export interface SingleStepResult {
  run: PipelineRun;
  step: PipelineStep;
  /** `ran`: this call ran it (see outcome); `done`: it had succeeded before; `skipped`: the run had ended (rejected, cancelled) so it is not run. */
  status: 'ran' | 'done' | 'skipped';
  outcome?: StepOutcome;
}

export function checkStepName(name: string): StepName {
  if (!(STEP_NAMES as readonly string[]).includes(name)) {
    throw new AegisError('USAGE', `unknown pipeline step ${JSON.stringify(name)}`, { hint: `Steps, in order: ${STEP_NAMES.join(', ')}.` });
  }
  return name as StepName;
}

/**
 * `aegis pipeline step NAME --run ID`: one try of one step, in this process,
 * recorded like the runner records it, for a workflow engine that runs each
 * step as its own container (an Argo Workflow retries a failed pod: a failed
 * run is taken up again by the next try). The steps before it must have
 * succeeded; a step that already succeeded is not run again; once the run has
 * been rejected or cancelled the remaining steps are skipped. The run ends
 * (and the alert trigger is told) when its last step succeeds or any step fails.
 */
export async function runSingleStep(deps: PipelineDeps, runId: number, name: StepName, shutdown?: AbortSignal): Promise<SingleStepResult> {
  const stepOf = async () => (await listSteps(deps.db, runId)).find((s) => s.name === name)!;
  let run = await getRun(deps.db, runId);
  const steps = await listSteps(deps.db, runId);
  const step = steps.find((s) => s.name === name)!;
  if (step.state === 'succeeded') return { run, step, status: 'done' };
  if (run.state === 'rejected' || run.state === 'cancelled' || run.state === 'succeeded') return { run, step, status: 'skipped' };
  const missing = steps.filter((s) => s.position < step.position && s.state !== 'succeeded');
  if (missing.length) {
    throw new AegisError('PIPELINE_STATE_INVALID', `step ${name} of run ${runId} comes after ${missing.map((s) => `${s.name} (${s.state})`).join(', ')}`, {
      hint: `Run the steps in order: \`aegis pipeline step ${missing[0]!.name} --run ${runId}\` first.`,
      details: { run: runId, step: name, missing: missing.map((s) => s.name) },
    });
  }
  const owner = newOwner('step');
  const takeover = deps.db.engine === 'pglite';
  const claimed = run.state === 'failed' ? await reopenRun(deps.db, runId, owner, deps.settings.leaseSeconds) : await claimRun(deps.db, runId, owner, deps.settings.leaseSeconds, takeover);
  if (!claimed) {
    run = await getRun(deps.db, runId);
    throw new AegisError('PIPELINE_CONFLICT', `pipeline run ${runId} is being executed by ${run.owner ?? 'another process'} (lease until ${run.leaseUntil?.toISOString() ?? '?'})`, {
      hint: 'Wait for it, or `aegis pipeline cancel` it first. A process that died loses the run when its lease lapses (pipeline.leaseSeconds).',
      details: { run: runId, owner: run.owner },
    });
  }
  const controller = new AbortController();
  // The caller stopping (SIGTERM: the pod is going away) is a shutdown, not a cancel: the step is tried again later.
  const onAbort = () => controller.abort('shutdown');
  shutdown?.addEventListener('abort', onAbort, { once: true });
  const lease = holdLease(deps, runId, owner, controller);
  try {
    const outcome = await attemptStep(deps, runId, name, owner, controller.signal);
    if (outcome.kind === 'succeeded') {
      if (name === STEP_NAMES[STEP_NAMES.length - 1]) await endRun(deps, runId, owner, { state: 'succeeded' });
      else await releaseRun(deps.db, runId, owner);
    } else if (outcome.kind === 'rejected') await endRun(deps, runId, owner, { state: 'rejected', error: outcome.error.message, errorCode: outcome.error.code });
    else if (outcome.kind === 'failed') await endRun(deps, runId, owner, { state: 'failed', error: `step ${name} failed: ${outcome.error.message}`, errorCode: outcome.error.code });
    else if (outcome.reason === 'cancel') await endRun(deps, runId, owner, { state: 'cancelled', error: 'cancelled', errorCode: 'PIPELINE_CANCELLED' });
    else if (outcome.reason === 'shutdown') await releaseRun(deps.db, runId, owner);
    return { run: await getRun(deps.db, runId), step: await stepOf(), status: 'ran', outcome };
  } finally {
    lease.stop();
    shutdown?.removeEventListener('abort', onAbort);
  }
}
