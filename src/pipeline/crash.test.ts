/**
 * Crash-resume: a process running the pipeline is killed with SIGKILL in the
 * middle of a run (src/test-support/pipeline-kill-child.ts, on an embedded
 * database folder, as `aegis up` keeps it); a new runner on the same folder
 * resumes the run at its first unfinished step and redoes no finished side
 * effect.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { openDb } from '../db/index.js';
import type { Db } from '../db/types.js';
import { AUDIT_ACTIONS, subjectOf } from '../registry/index.js';
import { archiveKey } from '../store/types.js';
import { tempDir } from '../test-support/fs.js';
import { killWhenStalled } from '../test-support/kill.js';
import { DATASET_V2, MODEL, pipelineDeps, pipelineEnv, RecordingCanary, seedProduction } from '../test-support/pipeline.js';
import { PipelineRunner } from './runner.js';
import { createRun, getRun, listSteps } from './store.js';
import type { StepName } from './types.js';

const CHILD = fileURLToPath(new URL('../test-support/pipeline-kill-child.ts', import.meta.url));
const cleanups: Array<() => Promise<unknown>> = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Runs the kill child until it reports `stalled`, then kills it with SIGKILL. */
async function runAndKill(work: string, dataDir: string, step: StepName, point: 'before' | 'after'): Promise<void> {
  await killWhenStalled(CHILD, [work, dataDir, step, point], process.env, `at ${step} (${point})`);
}

async function prepare(): Promise<{ work: string; dataDir: string; runId: number }> {
  const dir = await tempDir('aegis-pipeline-crash-');
  cleanups.push(dir.cleanup);
  const dataDir = join(dir.path, 'db');
  const db = await openDb({ dataDir });
  try {
    const env = await pipelineEnv(dir.path, db);
    await seedProduction(env);
    const { run } = await createRun(db, { requestId: 'crash-test', source: 'manual', request: { model: MODEL, datasetUri: DATASET_V2 }, createdBy: 'test' });
    return { work: dir.path, dataDir, runId: run.id };
  } finally {
    await db.close();
  }
}

async function resume(work: string, dataDir: string, runId: number) {
  const db: Db = await openDb({ dataDir }); // takes over the killed process's lock
  cleanups.push(() => db.close());
  const env = await pipelineEnv(work, db);
  const canary = new RecordingCanary();
  const before = { run: await getRun(db, runId), steps: await listSteps(db, runId) };
  const runner = new PipelineRunner(pipelineDeps(env, { canary }));
  cleanups.push(() => runner.close());
  await runner.resumeAll();
  const run = await runner.wait(runId);
  return { db, env, canary, before, run, steps: await listSteps(db, runId) };
}

describe('a control plane killed mid-run (SIGKILL) resumes at the first unfinished step', () => {
  it('killed after push: resumes at register without signing or pushing again, and registers once', async () => {
    const { work, dataDir, runId } = await prepare();
    await runAndKill(work, dataDir, 'push', 'after');
    const version = `0.1-retrain.${runId}`;
    const storedArchive = join(work, 'artifacts', ...archiveKey(MODEL, version).split('/'));
    const pushed = await stat(storedArchive);
    const signed = await stat(join(work, 'pipeline', String(runId), 'dist', 'model.tar.gz'));

    const r = await resume(work, dataDir, runId);
    expect(r.before.run.state).toBe('running');
    expect(r.before.steps.map((s) => `${s.name}:${s.state}`)).toEqual(['train:succeeded', 'evaluate:succeeded', 'package:succeeded', 'sign:succeeded', 'push:succeeded', 'register:pending', 'canary:pending']);

    expect(r.run.state, r.run.error ?? '').toBe('succeeded');
    expect(r.steps.map((s) => [s.name, s.attempts])).toEqual([['train', 1], ['evaluate', 1], ['package', 1], ['sign', 1], ['push', 1], ['register', 1], ['canary', 1]]);
    // Not pushed again (the object is the same file, untouched), not signed again.
    const after = await stat(storedArchive);
    expect({ ino: after.ino, mtimeMs: after.mtimeMs }).toEqual({ ino: pushed.ino, mtimeMs: pushed.mtimeMs });
    expect((await stat(join(work, 'pipeline', String(runId), 'dist', 'model.tar.gz'))).mtimeMs).toBe(signed.mtimeMs);
    // Steps before the crash kept their outcome: the train step finished before the kill.
    expect(r.steps[0]!.finishedAt).toEqual(r.before.steps[0]!.finishedAt);
    const v = await r.env.registry.getVersion(MODEL, version);
    expect(v.lineage).toMatchObject({ parentVersion: '0.1', datasetUri: DATASET_V2, pipelineRunId: runId, runId: r.run.uid });
    expect(await r.env.registry.audit({ subject: subjectOf(MODEL, version), action: AUDIT_ACTIONS.register })).toHaveLength(1);
    expect(r.canary.started.map((s) => s.version)).toEqual([version]);
  });

  it('killed inside push after the upload, before it was recorded: the re-run push finds the objects and does not upload again', async () => {
    const { work, dataDir, runId } = await prepare();
    await runAndKill(work, dataDir, 'push', 'before');
    const storedArchive = join(work, 'artifacts', ...archiveKey(MODEL, `0.1-retrain.${runId}`).split('/'));
    const pushed = await stat(storedArchive);

    const r = await resume(work, dataDir, runId);
    expect(r.before.steps.find((s) => s.name === 'push')).toMatchObject({ state: 'running', attempts: 1 });
    expect(r.run.state, r.run.error ?? '').toBe('succeeded');
    const push = r.steps.find((s) => s.name === 'push')!;
    expect(push).toMatchObject({ state: 'succeeded', attempts: 2, outputs: { uploaded: { archive: false, signature: false } } });
    expect(push.logs).toMatch(/already there \(same sha256\): not uploaded again/);
    const after = await stat(storedArchive);
    expect({ ino: after.ino, mtimeMs: after.mtimeMs }).toEqual({ ino: pushed.ino, mtimeMs: pushed.mtimeMs });
    expect(r.steps.find((s) => s.name === 'sign')!.attempts).toBe(1);
  });

  it('killed inside register after the version was registered: the re-run finds it and does not register twice', async () => {
    const { work, dataDir, runId } = await prepare();
    await runAndKill(work, dataDir, 'register', 'before');
    const version = `0.1-retrain.${runId}`;

    const r = await resume(work, dataDir, runId);
    expect(r.before.steps.find((s) => s.name === 'register')).toMatchObject({ state: 'running', attempts: 1 });
    expect(r.run.state, r.run.error ?? '').toBe('succeeded');
    const register = r.steps.find((s) => s.name === 'register')!;
    expect(register).toMatchObject({ state: 'succeeded', attempts: 2, outputs: { version, created: false } });
    expect(r.steps.find((s) => s.name === 'push')!.attempts).toBe(1);
    expect((await r.env.registry.listVersions(MODEL)).filter((v) => v.version === version)).toHaveLength(1);
    expect(await r.env.registry.audit({ subject: subjectOf(MODEL, version), action: AUDIT_ACTIONS.register })).toHaveLength(1);
    // The database tracker's model version and alias were set again to the same values.
    expect(r.run.tracking).toMatchObject({ modelVersion: { version }, aliases: { candidate: version }, status: 'FINISHED' });
    expect(r.canary.started).toHaveLength(1);
  });
});
