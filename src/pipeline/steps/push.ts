import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { hashStream } from '../../artifact/archive.js';
import { AegisError } from '../../errors.js';
import { archiveKey, type ArtifactStore } from '../../store/types.js';
import type { StepContext, StepResult } from '../context.js';
import type { SignOutputs } from './package.js';
import type { TrainOutputs } from './train.js';

export interface PushOutputs {
  /** Canonical URI of the archive in the store (what is registered). */
  uri: string;
  key: string;
  signatureKey: string;
  /** false: the object was already there with the same bytes (a re-run step). */
  uploaded: { archive: boolean; signature: boolean };
  [key: string]: unknown;
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c as Uint8Array));
  return Buffer.concat(chunks);
}

function conflict(store: ArtifactStore, key: string, what: string): AegisError {
  return new AegisError('PIPELINE_CONFLICT', `${store.uriOf(key)} already holds a different ${what} than this run signed`, {
    hint: 'Versions are immutable: something else wrote this model version. Remove the object if it is a leftover, then `aegis pipeline retry RUN`.',
    details: { key, retryable: false },
  });
}

/**
 * push: uploads model.tar.gz, then model.tar.gz.sig (a reader that finds the
 * signature finds its archive), under archiveKey(model, version). Idempotent:
 * an object already there with the same bytes is not written again; different
 * bytes are refused (PIPELINE_CONFLICT).
 */
export async function pushStep(ctx: StepContext): Promise<StepResult> {
  const train = ctx.output<TrainOutputs>('train');
  const signed = ctx.output<SignOutputs>('sign');
  const { store } = ctx.deps;
  const key = archiveKey(train.model, train.version);
  const signatureKey = `${key}.sig`;
  const uploaded = { archive: false, signature: false };

  const existing = await store.head(key);
  if (existing) {
    const { sha256 } = await hashStream(await store.get(key));
    if (sha256.toString('hex') !== signed.sha256) throw conflict(store, key, 'archive');
    ctx.log(`${store.uriOf(key)} is already there (same sha256): not uploaded again`);
  } else {
    await store.put(key, createReadStream(signed.archive), { contentLength: signed.size, contentType: 'application/gzip' });
    uploaded.archive = true;
    ctx.log(`uploaded ${store.uriOf(key)} (${signed.size} bytes)`);
  }
  const sig = await readFile(signed.signature);
  if (await store.head(signatureKey)) {
    if (!(await readAll(await store.get(signatureKey))).equals(sig)) throw conflict(store, signatureKey, 'signature');
    ctx.log(`${store.uriOf(signatureKey)} is already there: not uploaded again`);
  } else {
    await store.put(signatureKey, sig, { contentLength: sig.length, contentType: 'text/plain' });
    uploaded.signature = true;
    ctx.log(`uploaded ${store.uriOf(signatureKey)}`);
  }
  const outputs: PushOutputs = { uri: store.uriOf(key), key, signatureKey, uploaded };
  return { outputs, summary: { archiveUri: outputs.uri } };
}
