import { AegisError, isAegisError } from '../../errors.js';
import type { StepContext, StepResult } from '../context.js';
import type { TrainOutputs } from './train.js';

/**
 * canary: starts a canary rollout of the new version against production.
 * Idempotent: a rollout already started for this version (found through
 * `find`, or the controller's ROLLOUT_ACTIVE naming this version) is the
 * step's result; a rollout of another version blocks it (retried with backoff,
 * then the run fails: finish that rollout and `aegis pipeline retry`).
 */
export async function canaryStep(ctx: StepContext): Promise<StepResult> {
  const train = ctx.output<TrainOutputs>('train');
  const canary = ctx.deps.canary;
  if (!canary) {
    throw new AegisError('PIPELINE_STEP_FAILED', `no canary starter is configured, so ${train.model}@${train.version} cannot be canaried from here`, {
      hint: 'Run the pipeline inside the control plane (`aegis up`), or start the canary by hand: `aegis rollout start MODEL@VERSION`.',
      details: { retryable: false },
    });
  }
  let rolloutId: number | undefined = (await canary.find?.(train.model, train.version))?.rolloutId;
  if (rolloutId !== undefined) ctx.log(`rollout #${rolloutId} of ${train.model}@${train.version} already exists`);
  else {
    try {
      rolloutId = (await canary.start(train.model, train.version, ctx.deps.actor)).rolloutId;
      ctx.log(`started canary rollout #${rolloutId} of ${train.model}@${train.version}`);
    } catch (err) {
      if (isAegisError(err, 'ROLLOUT_ACTIVE') && err.details.version === train.version && typeof err.details.rollout === 'number') {
        rolloutId = err.details.rollout;
        ctx.log(`rollout #${rolloutId} of ${train.model}@${train.version} is already running`);
      } else {
        if (isAegisError(err, 'ROLLOUT_NOT_ALLOWED')) err.details.retryable = false;
        throw err;
      }
    }
  }
  const { tracker, runId } = await ctx.tracking();
  await tracker.setTags(runId, { 'aegis.rollout_id': String(rolloutId) });
  return { outputs: { rolloutId }, summary: { rolloutId } };
}
