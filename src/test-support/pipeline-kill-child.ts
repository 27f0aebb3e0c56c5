/**
 * Child process for the "control plane killed mid-run" pipeline tests. Run as
 *   node --import tsx pipeline-kill-child.ts WORK DATA_DIR STEP before|after
 * It opens the embedded database in DATA_DIR and runs the pipeline runner on
 * the queued runs (keys, store and cache under WORK, as src/test-support/pipeline.ts
 * lays them out). When step STEP has done its work (`before`: its success
 * not yet recorded; `after`: recorded) it prints `stalled` and waits to be
 * killed with SIGKILL.
 */
import { openDb } from '../db/index.js';
import { PipelineRunner } from '../pipeline/runner.js';
import { STEP_NAMES, type StepName } from '../pipeline/types.js';
import { pipelineDeps, pipelineEnv, RecordingCanary } from './pipeline.js';

const [work, dataDir, step, point] = process.argv.slice(2);
if (!work || !dataDir || !(STEP_NAMES as readonly string[]).includes(step ?? '') || (point !== 'before' && point !== 'after')) {
  process.stderr.write('usage: pipeline-kill-child.ts WORK DATA_DIR STEP before|after\n');
  process.exit(2);
}
const stall = (s: StepName) => {
  if (s !== step) return;
  process.stdout.write('stalled\n');
  return new Promise<never>(() => {});
};

// stdin (a pipe from the parent) keeps this process alive while stalled, and ends it if the parent goes away.
process.stdin.resume();
process.stdin.on('end', () => process.exit(5));
const db = await openDb({ dataDir });
const env = await pipelineEnv(work, db);
const runner = new PipelineRunner(
  pipelineDeps(env, {
    canary: new RecordingCanary(),
    hooks: point === 'before' ? { beforeRecord: (_run, s) => stall(s) } : { afterStep: (_run, s) => stall(s) },
  }),
);
await runner.resumeAll();
