import { AegisError, isAegisError } from '../../errors.js';
import type { Lineage } from '../../registry/types.js';
import type { StepContext, StepResult } from '../context.js';
import type { SignOutputs } from './package.js';
import type { PushOutputs } from './push.js';
import type { TrainOutputs } from './train.js';

/** The alias the tracker's registered version gets while it is canaried. */
export const CANDIDATE_ALIAS = 'candidate';

/**
 * register: the version in the tracker's model registry (MLflow: a model
 * version whose source is the run's `model` artifacts, alias `candidate`),
 * then in the Aegis registry through the registrar, which fetches and
 * verifies the pushed archive as a server would. Lineage: the alert, the
 * dataset, the parent version, the tracking run. Idempotent: both
 * registries return the version made before for the same run and archive.
 */
export async function registerStep(ctx: StepContext): Promise<StepResult> {
  const train = ctx.output<TrainOutputs>('train');
  const signed = ctx.output<SignOutputs>('sign');
  const pushed = ctx.output<PushOutputs>('push');
  const run = await ctx.refresh();
  const { tracker, runId: trackingRunId } = await ctx.tracking();

  const mv = await tracker.registerModelVersion({
    runId: trackingRunId,
    name: train.model,
    artifactDir: 'model',
    tags: { 'aegis.version': train.version, 'aegis.archive_sha256': signed.sha256, 'aegis.archive_uri': pushed.uri, 'aegis.pipeline_run': String(run.id) },
    description: `${train.model}@${train.version}, retrained by Aegis pipeline run ${run.id}${train.parentVersion ? ` from ${train.parentVersion}` : ''}`,
  });
  await tracker.setAlias(train.model, CANDIDATE_ALIAS, mv.version);
  ctx.log(`tracker (${tracker.kind}): model version ${mv.name} ${mv.version}, alias ${CANDIDATE_ALIAS}`);

  const alert = run.request.alert;
  const lineage: Lineage = {
    ...(train.parentVersion ? { parentVersion: train.parentVersion } : {}),
    datasetUri: train.datasetUri,
    ...(train.datasetDigest ? { datasetDigest: train.datasetDigest } : {}),
    runId: trackingRunId,
    tracker: tracker.kind,
    ...(tracker.kind === 'mlflow' ? { mlflowRunId: trackingRunId, mlflowModelVersion: mv.version } : {}),
    pipelineRunId: run.id,
    pipelineRunUid: run.uid,
    ...(alert ? { alertId: alert.id, alertname: alert.alertname, alertFingerprint: alert.fingerprint } : {}),
    ...(run.triggerId !== null ? { triggerId: run.triggerId } : {}),
  };
  let result;
  try {
    result = await ctx.deps.registrar.register({ uri: pushed.uri, lineage, actor: ctx.deps.actor });
  } catch (err) {
    if (isAegisError(err, 'VERSION_IMMUTABLE')) err.details.retryable = false;
    throw err;
  }
  const v = result.version;
  if (v.archiveSha256 !== signed.sha256) {
    throw new AegisError('PIPELINE_CONFLICT', `${v.name}@${v.version} is registered with archive sha256 ${v.archiveSha256}, not the ${signed.sha256} this run signed`, {
      hint: 'Versions are immutable; the run cannot register its archive under this version.',
      details: { retryable: false },
    });
  }
  ctx.log(`${result.created ? 'registered' : 'already registered'} ${v.name}@${v.version} (sha256 ${v.archiveSha256}, signer ${v.signerKeyId})`);
  return {
    outputs: { version: v.version, created: result.created, archiveUri: v.archiveUri, archiveSha256: v.archiveSha256, signerKeyId: v.signerKeyId, lineage: v.lineage, trackerVersion: { name: mv.name, version: mv.version, ...(mv.url ? { url: mv.url } : {}) } },
    summary: { registered: `${v.name}@${v.version}` },
  };
}
