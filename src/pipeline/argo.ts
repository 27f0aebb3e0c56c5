import { stringify } from 'yaml';
import { STEP_DESCRIPTIONS } from './steps/index.js';
import { STEP_NAMES } from './types.js';

export interface ArgoTemplateOptions {
  /** WorkflowTemplate name (default aegis-retrain). */
  name?: string;
  namespace?: string;
  /** The Aegis image; `aegis` must be on its PATH. */
  image: string;
  serviceAccount?: string;
  /** Secret whose keys become the steps' environment (AEGIS_DATABASE_URL, AEGIS_STORE_URI, AWS_*, AEGIS_MLFLOW_TRACKING_URI, …). */
  envSecret?: string;
  /** Size of the volume the steps share (<workDir>: dataset copy, trained model, archive). */
  workVolumeSize?: string;
  /** Tries of a step after its first (failures only: a rejection or a permanent error is not retried). */
  retries?: number;
}

/** Exit codes of `aegis pipeline step`: 1 a failure worth another try; 3 rejected, cancelled or failed for good. */
export const STEP_EXIT_RETRY = 1;
export const STEP_EXIT_FINAL = 3;

const WORK_MOUNT = '/work';

/**
 * The pipeline as an Argo WorkflowTemplate: one step per pipeline step, in
 * order, each `aegis pipeline step NAME --run {{workflow.parameters.run}}` in
 * its own container. The steps share a volume (pipeline.workDir) and the
 * database that holds the run, so a step's pod picks up where the previous one
 * left, exactly as the in-process runner does. Argo retries a step that
 * exited 1 (with backoff); exit 3 (the evaluation gate rejected the model, or
 * the error cannot be fixed by retrying) ends the workflow.
 */
export function renderArgoWorkflowTemplate(o: ArgoTemplateOptions): string {
  const doc = {
    apiVersion: 'argoproj.io/v1alpha1',
    kind: 'WorkflowTemplate',
    metadata: {
      name: o.name ?? 'aegis-retrain',
      ...(o.namespace ? { namespace: o.namespace } : {}),
      labels: { 'app.kubernetes.io/part-of': 'aegis', 'app.kubernetes.io/component': 'retrain-pipeline' },
    },
    spec: {
      entrypoint: 'retrain',
      ...(o.serviceAccount ? { serviceAccountName: o.serviceAccount } : {}),
      arguments: { parameters: [{ name: 'run', description: 'Aegis pipeline run id: `aegis pipeline run --dataset URI --external --detach --json`' }] },
      volumeClaimTemplates: [
        {
          metadata: { name: 'work' },
          spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: o.workVolumeSize ?? '10Gi' } } },
        },
      ],
      templates: [
        {
          name: 'retrain',
          steps: STEP_NAMES.map((step) => [{ name: step, template: 'step', arguments: { parameters: [{ name: 'step', value: step }] } }]),
        },
        {
          name: 'step',
          inputs: { parameters: [{ name: 'step' }] },
          retryStrategy: {
            limit: String(o.retries ?? 2),
            retryPolicy: 'Always',
            expression: `asInt(lastRetry.exitCode) == ${STEP_EXIT_RETRY}`,
            backoff: { duration: '5s', factor: '2', maxDuration: '10m' },
          },
          container: {
            image: o.image,
            command: ['aegis'],
            args: ['pipeline', 'step', '{{inputs.parameters.step}}', '--run', '{{workflow.parameters.run}}'],
            env: [
              { name: 'AEGIS_PIPELINE_WORK_DIR', value: `${WORK_MOUNT}/pipeline` },
              { name: 'AEGIS_LOG_LEVEL', value: 'info' },
            ],
            ...(o.envSecret ? { envFrom: [{ secretRef: { name: o.envSecret } }] } : {}),
            volumeMounts: [{ name: 'work', mountPath: WORK_MOUNT }],
          },
        },
      ],
    },
  };
  const header = [
    '# Aegis retraining pipeline as an Argo WorkflowTemplate (`aegis pipeline render-argo`).',
    '# Steps, each `aegis pipeline step NAME --run {{workflow.parameters.run}}`:',
    ...STEP_NAMES.map((s) => `#   ${s.padEnd(9)} ${STEP_DESCRIPTIONS[s]}`),
    `# Submit: argo submit --from workflowtemplate/${o.name ?? 'aegis-retrain'} -p run=$(aegis pipeline run --dataset URI --external --detach --json | jq .run.id)`,
  ];
  return `${header.join('\n')}\n${stringify(doc, { lineWidth: 0 })}`;
}
