/**
 * `aegis pipeline …` against an embedded database under AEGIS_HOME, the way a
 * workflow engine drives it: a run recorded for external execution, then one
 * `aegis pipeline step` per step. No control plane runs here, so the canary
 * step fails (no control-plane token) and says so.
 */
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDb } from '../db/index.js';
import { writePolicyDocument } from '../signing/trust.js';
import { runCli } from '../test-support/cli.js';
import { tempDir } from '../test-support/fs.js';
import { DATASET_V2, MODEL, pipelineEnv, seedProduction } from '../test-support/pipeline.js';
import { STEP_NAMES } from './types.js';

let home: Awaited<ReturnType<typeof tempDir>>;
const saved: Record<string, string | undefined> = {};
const ENV = ['AEGIS_HOME', 'AEGIS_PIPELINE_SIGNING_KEY', 'AEGIS_PIPELINE_BACKOFF_MS', 'AEGIS_CONTROL_TOKEN', 'AEGIS_CONTROL_PORT'];

beforeAll(async () => {
  home = await tempDir('aegis-pipeline-cli-');
  for (const k of ENV) saved[k] = process.env[k];
  const db = await openDb({ dataDir: join(home.path, 'db') });
  try {
    const env = await pipelineEnv(home.path, db); // keys in <home>/keys, store in <home>/artifacts (the platform default)
    await seedProduction(env);
  } finally {
    await db.close();
  }
  await writePolicyDocument(join(home.path, 'trust.yaml'), { apiVersion: 'aegis.dev/v1', kind: 'TrustPolicy', keys: [{ id: 'test', publicKey: 'keys/signing-key.pub.pem' }] });
  process.env.AEGIS_HOME = home.path;
  process.env.AEGIS_PIPELINE_SIGNING_KEY = join(home.path, 'keys', 'signing-key.pem');
  process.env.AEGIS_PIPELINE_BACKOFF_MS = '10';
  delete process.env.AEGIS_CONTROL_TOKEN;
  process.env.AEGIS_CONTROL_PORT = '9'; // nothing listens there
});

afterAll(async () => {
  for (const k of ENV) {
    if (saved[k] === undefined) delete process.env[k];
    else process.env[k] = saved[k];
  }
  await home.cleanup();
});

const json = <T>(r: { stdout: string }) => JSON.parse(r.stdout) as T;
type RunView = { id: number; state: string; version: string | null; error: string | null; errorCode: string | null; steps?: Array<{ name: string; state: string; attempts: number; logs?: string }> };

describe('aegis pipeline', () => {
  it('runs a run step by step (`pipeline step`, as workflow containers do), in order only, each once', async () => {
    const created = await runCli('pipeline', 'run', '--dataset', DATASET_V2, '--model', MODEL, '--external', '--detach', '--json', '--request-id', 'wf-1');
    expect(created.code, created.stderr + created.stdout).toBe(0);
    const run = json<{ run: RunView }>(created).run;
    expect(run.state).toBe('queued');
    const again = json<{ run: RunView }>(await runCli('pipeline', 'run', '--dataset', DATASET_V2, '--external', '--detach', '--json', '--request-id', 'wf-1'));
    expect(again.run.id).toBe(run.id);

    const early = await runCli('pipeline', 'step', 'evaluate', '--run', String(run.id), '--json');
    expect(early.code).toBe(1);
    expect(json<{ error: { code: string; message: string } }>(early).error).toMatchObject({ code: 'PIPELINE_STATE_INVALID', message: `step evaluate of run ${run.id} comes after train (pending)` });

    for (const step of STEP_NAMES.slice(0, -1)) {
      const r = await runCli('pipeline', 'step', step, '--run', String(run.id));
      expect(r.code, `${step}: ${r.stderr}${r.stdout}`).toBe(0);
      expect(r.stdout).toBe(`run ${run.id} step ${step}: succeeded\n`);
    }
    const repeat = await runCli('pipeline', 'step', 'train', '--run', String(run.id));
    expect(repeat.stdout).toBe(`run ${run.id} step train: had already succeeded\n`);

    // No control plane: the canary cannot start, and trying again would not help (exit 3).
    const canary = await runCli('pipeline', 'step', 'canary', '--run', String(run.id), '--json');
    expect(canary.code).toBe(3);
    expect(json<{ run: RunView }>(canary).run).toMatchObject({ state: 'failed', errorCode: 'CONTROL_UNAUTHORIZED' });

    const shown = json<{ run: RunView }>(await runCli('pipeline', 'show', String(run.id), '--json')).run;
    expect(shown.version).toBe(`0.1-retrain.${run.id}`);
    expect(shown.steps!.map((s) => `${s.name}:${s.state}:${s.attempts}`)).toEqual([
      'train:succeeded:1', 'evaluate:succeeded:1', 'package:succeeded:1', 'sign:succeeded:1', 'push:succeeded:1', 'register:succeeded:1', 'canary:failed:1',
    ]);
    const text = await runCli('pipeline', 'show', String(run.id));
    expect(text.stdout).toContain(`run ${run.id}  failed  ${MODEL} 0.1 → 0.1-retrain.${run.id}`);
    expect(text.stdout).toMatch(/ 7 canary +failed +1 try .*\[CONTROL_UNAUTHORIZED\]/);

    const listed = json<{ runs: RunView[] }>(await runCli('pipeline', 'list', '--state', 'failed', '--json')).runs;
    expect(listed.map((r) => r.id)).toEqual([run.id]);

    // The version it registered is in the registry, verified.
    const versions = await runCli('model', 'list', MODEL, '--json');
    expect(versions.stdout).toContain(`0.1-retrain.${run.id}`);
  });

  it('retry --detach queues a failed run again; cancel stops a queued run', async () => {
    const failed = json<{ runs: RunView[] }>(await runCli('pipeline', 'list', '--state', 'failed', '--json')).runs[0]!;
    const retried = await runCli('pipeline', 'retry', String(failed.id), '--detach', '--json');
    expect(retried.code, retried.stderr).toBe(0);
    expect(json<{ run: RunView }>(retried).run).toMatchObject({ id: failed.id, state: 'queued' });
    const cancelled = await runCli('pipeline', 'cancel', String(failed.id));
    expect(cancelled.stdout).toBe(`run ${failed.id} cancelled\n`);
    const again = await runCli('pipeline', 'cancel', String(failed.id), '--json');
    expect(again.code).toBe(1);
    expect(json<{ error: { code: string } }>(again).error.code).toBe('PIPELINE_STATE_INVALID');
    expect((await runCli('pipeline', 'show', '999', '--json')).stdout).toContain('PIPELINE_NOT_FOUND');
  });

  it('render-argo prints a WorkflowTemplate running each step as `aegis pipeline step NAME --run {{workflow.parameters.run}}`', async () => {
    const r = await runCli('pipeline', 'render-argo', '--image', 'ghcr.io/acme/aegis:1.0', '--namespace', 'aegis', '--env-secret', 'aegis-env');
    expect(r.code, r.stderr).toBe(0);
    const doc = parseYaml(r.stdout) as {
      apiVersion: string;
      kind: string;
      metadata: { name: string; namespace: string };
      spec: { entrypoint: string; arguments: { parameters: Array<{ name: string }> }; templates: Array<Record<string, unknown>> };
    };
    expect(doc).toMatchObject({ apiVersion: 'argoproj.io/v1alpha1', kind: 'WorkflowTemplate', metadata: { name: 'aegis-retrain', namespace: 'aegis' }, spec: { entrypoint: 'retrain' } });
    expect(doc.spec.arguments.parameters.map((p) => p.name)).toEqual(['run']);
    const main = doc.spec.templates.find((t) => t.name === 'retrain') as { steps: Array<Array<{ name: string; template: string; arguments: { parameters: Array<{ value: string }> } }>> };
    expect(main.steps.map((group) => group.map((s) => s.name))).toEqual(STEP_NAMES.map((s) => [s]));
    expect(main.steps.map((group) => group[0]!.arguments.parameters[0]!.value)).toEqual([...STEP_NAMES]);
    const step = doc.spec.templates.find((t) => t.name === 'step') as { container: { image: string; command: string[]; args: string[]; envFrom: unknown[] }; retryStrategy: { expression: string } };
    expect([...step.container.command, ...step.container.args]).toEqual(['aegis', 'pipeline', 'step', '{{inputs.parameters.step}}', '--run', '{{workflow.parameters.run}}']);
    expect(step.container).toMatchObject({ image: 'ghcr.io/acme/aegis:1.0', envFrom: [{ secretRef: { name: 'aegis-env' } }] });
    expect(step.retryStrategy.expression).toBe('asInt(lastRetry.exitCode) == 1');
  });
});
