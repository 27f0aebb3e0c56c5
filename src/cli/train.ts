import type { Command } from 'commander';
import type { AegisConfig } from '../config/index.js';
import { AegisError } from '../errors.js';
import { DEFAULT_DATASET_SEED, generateExampleDataset } from '../training/dataset.js';
import { TRAIN_DEFAULTS, trainModel } from '../training/train.js';
import { printJson, reportError } from './output.js';

function int(name: string) {
  return (value: string): number => {
    if (!/^\d+$/.test(value.trim())) throw new AegisError('USAGE', `--${name} must be a non-negative integer (got ${value})`, { hint: `Pass e.g. --${name} 10.` });
    return Number(value);
  };
}

function positiveNumber(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n <= 0) throw new AegisError('USAGE', `--${name} must be a positive number (got ${value})`, { hint: `Pass e.g. --${name} 0.003.` });
    return n;
  };
}

/** `aegis train` and `aegis dataset generate`. */
export function registerTrainCommand(program: Command, _config: () => AegisConfig): void {
  program
    .command('train')
    .description('train the multimodal classifier on a dataset; writes model.onnx, profile.json and aegis.yaml')
    .requiredOption('--dataset <dir>', 'dataset directory (local path or file:// URI) with dataset.yaml, train.jsonl, test.jsonl')
    .requiredOption('--out <model-dir>', 'model directory to write (created if missing)')
    .option('--name <name>', 'model name in aegis.yaml', TRAIN_DEFAULTS.name)
    .option('--version <version>', 'model version in aegis.yaml', TRAIN_DEFAULTS.version)
    .option('--parent <version>', 'lineage: the version this one was derived from')
    .option('--seed <n>', 'seed of the weight initialisation and batch order', String(TRAIN_DEFAULTS.seed))
    .option('--epochs <n>', 'passes over the training split', String(TRAIN_DEFAULTS.epochs))
    .option('--hidden <n>', 'units of the hidden layer', String(TRAIN_DEFAULTS.hidden))
    .option('--batch-size <n>', 'examples per Adam step', String(TRAIN_DEFAULTS.batchSize))
    .option('--learning-rate <lr>', 'Adam learning rate', String(TRAIN_DEFAULTS.learningRate))
    .option('--dataset-uri <uri>', 'record this as dataset.uri in aegis.yaml instead of --dataset (e.g. where the data is published)')
    .option('--json', 'print a JSON report')
    .addHelpText(
      'after',
      `
Trains Flatten(image) + text → Gemm → Relu → Gemm → Softmax with Adam on the
dataset's train split and reports accuracy, macro-F1 and log-loss on its test
split (also written to aegis.yaml). Deterministic: the same dataset, options
and seed give byte-identical files.

Example:
  $ aegis train --dataset examples/datasets/example_multimodal/v1 --out /tmp/m
  $ aegis train --dataset examples/datasets/example_multimodal/v2 --out /tmp/m2 --version 0.2 --parent 0.1`,
    )
    .action(async (o: Record<string, string | boolean | undefined>) => {
      const json = Boolean(o.json);
      try {
        const started = performance.now();
        const r = await trainModel({
          dataset: String(o.dataset),
          out: String(o.out),
          ...(o.datasetUri ? { datasetUri: String(o.datasetUri) } : {}),
          name: String(o.name),
          version: String(o.version),
          ...(o.parent ? { parent: String(o.parent) } : {}),
          seed: int('seed')(String(o.seed)),
          epochs: int('epochs')(String(o.epochs)),
          hidden: int('hidden')(String(o.hidden)),
          batchSize: int('batch-size')(String(o.batchSize)),
          learningRate: positiveNumber('learning-rate')(String(o.learningRate)),
        });
        const seconds = (performance.now() - started) / 1000;
        const e = r.evaluation;
        if (json) {
          printJson({
            ok: true,
            model: { name: r.manifest.name, version: r.manifest.version, dir: r.dir },
            files: r.files,
            metrics: r.manifest.metrics,
            perClass: e.perClass,
            confusion: e.confusion,
            trainRows: r.trainRows,
            testRows: r.testRows,
            epochs: r.options.epochs,
            seed: r.options.seed,
            finalTrainLoss: r.history.at(-1)?.loss,
            seconds: Math.round(seconds * 1000) / 1000,
          });
          return;
        }
        const out = (s: string) => process.stdout.write(s + '\n');
        out(`trained ${r.manifest.name}@${r.manifest.version} on ${r.options.datasetUri}: ${r.trainRows} training rows, ${r.options.epochs} epochs, seed ${r.options.seed} (${seconds.toFixed(1)}s)`);
        out(`held-out (${r.testRows} rows): accuracy ${e.accuracy.toFixed(4)}  macro-F1 ${e.macroF1.toFixed(4)}  log-loss ${e.logLoss.toFixed(4)}`);
        const w = Math.max(5, ...e.perClass.map((c) => c.class.length));
        out(`  ${'class'.padEnd(w)}  precision  recall  f1      support`);
        for (const c of e.perClass) out(`  ${c.class.padEnd(w)}  ${c.precision.toFixed(4).padEnd(9)}  ${c.recall.toFixed(4)}  ${c.f1.toFixed(4)}  ${c.support}`);
        out(`wrote ${r.files.model} (${r.modelBytes} bytes), ${r.files.profile}, ${r.files.manifest}`);
      } catch (err) {
        process.exitCode = reportError(err, { json });
      }
    });

  const dataset = program
    .command('dataset')
    .description('example datasets for training')
    .addHelpText('after', '\nExample:\n  $ aegis dataset generate --out examples/datasets/example_multimodal/v1 --version v1');

  dataset
    .command('generate')
    .description('write the seeded example multimodal dataset (dataset.yaml, train.jsonl, test.jsonl); v2 has covariate shift')
    .requiredOption('--out <dir>', 'directory to write the dataset into')
    .requiredOption('--version <v1|v2>', 'v1: the training distribution; v2: shifted inputs (brighter, side-lit images; trending words)')
    .option('--seed <n>', 'generator seed', String(DEFAULT_DATASET_SEED))
    .option('--train-rows <n>', 'rows of the train split', '4000')
    .option('--test-rows <n>', 'rows of the held-out test split', '1000')
    .option('--json', 'print a JSON report')
    .addHelpText(
      'after',
      `
The same options always give byte-identical files (the committed example
datasets are checked against a regeneration in the tests).

Example:
  $ aegis dataset generate --out examples/datasets/example_multimodal/v2 --version v2`,
    )
    .action(async (o: Record<string, string | boolean | undefined>) => {
      const json = Boolean(o.json);
      try {
        const version = String(o.version);
        if (version !== 'v1' && version !== 'v2') throw new AegisError('USAGE', `unknown dataset version ${version}`, { hint: 'Use --version v1 or --version v2.' });
        const r = await generateExampleDataset({
          out: String(o.out),
          version,
          seed: int('seed')(String(o.seed)),
          trainRows: int('train-rows')(String(o.trainRows)),
          testRows: int('test-rows')(String(o.testRows)),
        });
        if (json) printJson({ ok: true, dir: r.dir, version, seed: r.spec.generator?.seed, splits: r.spec.splits, files: r.files });
        else {
          for (const f of r.files) process.stdout.write(`wrote ${f.path} (${f.bytes} bytes, sha256 ${f.sha256.slice(0, 16)}…)\n`);
          process.stdout.write(`dataset ${r.spec.name} ${version} (seed ${r.spec.generator?.seed}) in ${r.dir}\n`);
        }
      } catch (err) {
        process.exitCode = reportError(err, { json });
      }
    });
}
