import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MEMORY, openDb } from '../db/index.js';
import type { Db } from '../db/types.js';
import { AegisError } from '../errors.js';
import { DbTracker } from './db-tracker.js';
import { backoffDelay, MAX_BACKOFF_MS } from './runner.js';
import { describeCheck, gate } from './steps/evaluate.js';
import { appendLogs, claimRun, createRun, LOG_LIMIT, listSteps } from './store.js';
import { retrainVersion } from './version.js';

describe('retrainVersion', () => {
  it('derives <parent>-retrain.<run>, keeping the base of a parent that is itself a retrain', () => {
    expect(retrainVersion('0.1', 7)).toBe('0.1-retrain.7');
    expect(retrainVersion('1.4.0', 12)).toBe('1.4.0-retrain.12');
    expect(retrainVersion('0.1-retrain.7', 9)).toBe('0.1-retrain.9');
    expect(retrainVersion(null, 3)).toBe('0.0.0-retrain.3');
  });

  it('refuses a parent too long to derive a valid version from', () => {
    expect(() => retrainVersion('1'.repeat(60), 12345)).toThrow(expect.objectContaining({ code: 'PIPELINE_INPUT_INVALID' }) as unknown as Error);
  });
});

describe('the evaluation gate', () => {
  const rules = { minAccuracy: 0.85, maxRegression: 0.05 };
  const prod = { version: '0.1', metrics: { accuracy: 0.918, macro_f1: 0.9179, log_loss: 0.2448 } };

  it('passes a candidate at the minimum and within the regression margin of production', () => {
    const checks = gate({ accuracy: 0.868, macro_f1: 0.8679 }, prod, rules);
    expect(checks.map(describeCheck)).toEqual([
      'accuracy 0.868 >= 0.85 (minimum)',
      'accuracy 0.868 >= 0.868 (production 0.1 (0.918) - maxRegression 0.05)',
      'macro_f1 0.8679 >= 0.8679 (production 0.1 (0.9179) - maxRegression 0.05)',
    ]);
    expect(checks.every((c) => c.passed)).toBe(true);
  });

  it('fails below the minimum, beyond the margin, or when the candidate lacks a metric', () => {
    expect(gate({ accuracy: 0.84 }, undefined, rules).map((c) => c.passed)).toEqual([false]);
    expect(gate({ accuracy: 0.9, macro_f1: 0.86 }, prod, rules).filter((c) => !c.passed).map(describeCheck)).toEqual(['macro_f1 0.86 < 0.8679 (production 0.1 (0.9179) - maxRegression 0.05)']);
    expect(gate({ macro_f1: 0.99 }, undefined, rules).map(describeCheck)).toEqual(['accuracy missing < 0.85 (minimum)']);
    expect(gate({ accuracy: 0.9, macro_f1: 0.5 }, undefined, { ...rules, minMacroF1: 0.8 }).filter((c) => !c.passed).map((c) => c.metric)).toEqual(['macro_f1']);
  });

  it('compares only the metrics production recorded', () => {
    expect(gate({ accuracy: 0.9 }, { version: '0.1', metrics: {} }, rules).map((c) => c.rule)).toEqual(['minimum']);
  });
});

describe('backoff', () => {
  it('doubles per failed try, capped', () => {
    expect([1, 2, 3, 4].map((n) => backoffDelay(1000, n))).toEqual([1000, 2000, 4000, 8000]);
    expect(backoffDelay(60_000, 10)).toBe(MAX_BACKOFF_MS);
  });
});

describe('pipeline rows', () => {
  let db: Db;
  beforeAll(async () => {
    db = await openDb({ url: MEMORY });
  });
  afterAll(async () => {
    await db.close();
  });

  it('keeps the newest LOG_LIMIT characters of a step log, marking the cut', async () => {
    const { run } = await createRun(db, { requestId: 'logs', source: 'manual', request: {}, createdBy: 't' });
    await claimRun(db, run.id, 'me', 60, false);
    const line = `${'x'.repeat(1023)}\n`;
    for (let i = 0; i < 80; i++) await appendLogs(db, run.id, 'train', 'me', line.replace('x', String(i % 10)));
    const logs = (await listSteps(db, run.id))[0]!.logs;
    expect(logs.length).toBeLessThanOrEqual(LOG_LIMIT + 100);
    expect(logs.startsWith('[… earlier lines dropped …]\n')).toBe(true);
    expect(logs.endsWith(`9${'x'.repeat(1022)}\n`)).toBe(true);
  });

  it('refuses step writes from a process that does not hold the run', async () => {
    const { run } = await createRun(db, { requestId: 'owned', source: 'manual', request: {}, createdBy: 't' });
    expect(await claimRun(db, run.id, 'first', 60, false)).toBeDefined();
    expect(await claimRun(db, run.id, 'second', 60, false)).toBeUndefined();
    await appendLogs(db, run.id, 'train', 'second', 'ignored\n');
    expect((await listSteps(db, run.id))[0]!.logs).toBe('');
    // On PGlite a new process may take any run over (only one process can hold the database).
    expect((await claimRun(db, run.id, 'second', 60, true))?.owner).toBe('second');
  });

  it('DbTracker: params are write-once, metric points are stored once, tags merge', async () => {
    const { run } = await createRun(db, { requestId: 'tracker', source: 'manual', request: {}, createdBy: 't' });
    const t = new DbTracker(db);
    const first = await t.startRun({ pipelineRunId: run.uid, model: 'm', tags: { a: '1' } });
    expect(first).toMatchObject({ runId: run.uid, resumed: false, status: 'RUNNING' });
    expect(await t.startRun({ pipelineRunId: run.uid, model: 'm' })).toMatchObject({ resumed: true });
    await t.logParams(run.uid, { epochs: 15, lr: 0.003 });
    await t.logParams(run.uid, { epochs: 15 });
    const err = await t.logParams(run.uid, { epochs: 16 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AegisError);
    expect((err as AegisError).code).toBe('TRACKING_INPUT_INVALID');
    await t.logMetrics(run.uid, [{ key: 'loss', value: 0.5, step: 1, timestamp: 10 }]);
    await t.logMetrics(run.uid, [{ key: 'loss', value: 0.5, step: 1, timestamp: 10 }, { key: 'loss', value: 0.4, step: 2, timestamp: 11 }]);
    expect(await DbTracker.metrics(db, run.id)).toEqual([
      { key: 'loss', step: 1, timestamp: 10, value: 0.5 },
      { key: 'loss', step: 2, timestamp: 11, value: 0.4 },
    ]);
    await t.setTags(run.uid, { b: '2' });
    await t.finish(run.uid, 'FINISHED', 1234);
    const row = await db.query<{ tracking: Record<string, unknown> }>('SELECT tracking FROM pipeline_runs WHERE id = $1', [run.id]);
    expect(row.rows[0]!.tracking).toMatchObject({ params: { epochs: '15', lr: '0.003' }, tags: { a: '1', b: '2', 'aegis.model': 'm' }, status: 'FINISHED', endTime: 1234 });
  });
});

describe('pipeline configuration', () => {
  it('reads AEGIS_PIPELINE_* (a train command as a JSON array or as words) over the defaults', async () => {
    const { loadConfig } = await import('../config/index.js');
    const c = loadConfig({ env: { AEGIS_PIPELINE_TRAIN_COMMAND: '["python", "train.py", "--data dir", "{out}"]', AEGIS_PIPELINE_MIN_ACCURACY: '0.9', AEGIS_PIPELINE_ATTEMPTS: '5' }, cwd: '/nonexistent' });
    expect(c.pipeline).toMatchObject({ trainCommand: ['python', 'train.py', '--data dir', '{out}'], attempts: 5, backoffMs: 5000, maxConcurrentRuns: 1, evaluate: { minAccuracy: 0.9, maxRegression: 0.05 } });
    expect(loadConfig({ env: { AEGIS_PIPELINE_TRAIN_COMMAND: 'python  train.py {dataset}' }, cwd: '/nonexistent' }).pipeline.trainCommand).toEqual(['python', 'train.py', '{dataset}']);
    expect(() => loadConfig({ env: { AEGIS_PIPELINE_MAX_REGRESSION: '2' }, cwd: '/nonexistent' })).toThrow(/pipeline\.evaluate\.maxRegression/);
  });
});
