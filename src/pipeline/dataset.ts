import { createWriteStream } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { AegisError } from '../errors.js';
import { openStore } from '../store/index.js';

const COMPLETE = '.aegis-dataset-complete';

/**
 * The dataset named by a URI as a local folder the trainer can read:
 * a path or file:// URI as it is; s3://bucket/prefix copied once into `dir`
 * (every object under the prefix; a marker file makes a re-run step reuse
 * the copy). Other schemes are refused.
 */
export async function localDataset(uri: string, dir: string, signal: AbortSignal, log: (line: string) => void): Promise<string> {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(uri)?.[1]?.toLowerCase();
  if (scheme === undefined) return resolve(uri);
  if (scheme === 'file') return fileURLToPath(uri);
  if (scheme !== 's3') {
    throw new AegisError('PIPELINE_INPUT_INVALID', `cannot read the dataset ${uri}: ${scheme}:// is not supported`, {
      hint: 'Publish the dataset as s3://BUCKET/PREFIX/ (a folder with dataset.yaml and the splits) or a local path / file:// URI.',
      details: { datasetUri: uri, retryable: false },
    });
  }
  const marker = join(dir, COMPLETE);
  if (await readFile(marker, 'utf8').then(() => true, () => false)) {
    log(`dataset ${uri} already copied to ${dir}`);
    return dir;
  }
  await rm(dir, { recursive: true, force: true });
  const store = openStore(uri.replace(/\/+$/, ''));
  let files = 0;
  let bytes = 0;
  for await (const o of store.list('')) {
    signal.throwIfAborted();
    const target = join(dir, ...o.key.split('/'));
    await mkdir(dirname(target), { recursive: true });
    await pipeline(await store.get(o.key), createWriteStream(target), { signal });
    files++;
    bytes += o.size;
  }
  if (files === 0) {
    throw new AegisError('PIPELINE_INPUT_INVALID', `the dataset ${uri} is empty (no objects under that prefix)`, {
      hint: 'Check the alert\'s dataset_uri annotation: it must name the folder holding dataset.yaml and the splits.',
      details: { datasetUri: uri },
    });
  }
  await writeFile(marker, `${files} files, ${bytes} bytes\n`);
  log(`copied dataset ${uri}: ${files} files, ${bytes} bytes`);
  return dir;
}
