/**
 * The built-in trainer as a child process of the pipeline (so a long
 * training never blocks the control plane's event loop, and cancelling a run
 * kills it). Run as `node train-child.js '<TrainOptions as JSON>'`; prints one
 * JSON object per line: `{"event":"epoch",…}` per epoch, then
 * `{"event":"done",…}`, or `{"event":"error",…}` and exit code 1.
 * Custom trainers (pipeline.trainCommand) may print the same epoch lines.
 */
import { isAegisError } from '../errors.js';
import { trainModel, type TrainOptions } from '../training/train.js';

const emit = (o: Record<string, unknown>) => process.stdout.write(JSON.stringify(o) + '\n');

try {
  const options = JSON.parse(process.argv[2] ?? '{}') as TrainOptions;
  const r = await trainModel({ ...options, onEpoch: (s) => emit({ event: 'epoch', epoch: s.epoch, loss: s.loss, accuracy: s.accuracy }) });
  emit({
    event: 'done',
    metrics: r.manifest.metrics,
    datasetDigest: r.manifest.dataset?.digest,
    trainRows: r.trainRows,
    testRows: r.testRows,
    modelBytes: r.modelBytes,
    options: r.options,
  });
} catch (err) {
  emit({
    event: 'error',
    code: isAegisError(err) ? err.code : 'TRAINING_FAILED',
    message: (err as Error).message,
    ...(isAegisError(err) && err.hint ? { hint: err.hint } : {}),
  });
  process.exitCode = 1;
}
