/**
 * Test helpers for the retraining pipeline (not used by production code): a
 * signing key and trust anchor, a file artifact store, the example model
 * registered as production 0.1, and a CanaryStarter that records its calls
 * (the rollout controller needs model servers; its own tests cover it).
 */
import { generateKeyPairSync } from 'node:crypto';
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { configSchema } from '../config/index.js';
import type { Db } from '../db/types.js';
import { AegisError } from '../errors.js';
import type { PipelineDeps, PipelineHooks } from '../pipeline/deps.js';
import { verifyingRegistrar } from '../pipeline/registrar.js';
import type { PipelineRunnerOptions } from '../pipeline/runner.js';
import type { CanaryStarter, PipelineSettings } from '../pipeline/types.js';
import { Registry } from '../registry/index.js';
import { resolveTrustAnchor } from '../signing/anchor.js';
import { PemKeySigner } from '../signing/pem/index.js';
import type { TrustAnchor } from '../signing/trust.js';
import { FileStore } from '../store/file/index.js';
import { archiveKey, type ArtifactStore } from '../store/types.js';
import type { Tracker } from '../tracking/types.js';
import { packageExampleVersion } from './example-model.js';

export const DATASET_V1 = new URL('../../examples/datasets/example_multimodal/v1', import.meta.url).pathname;
export const DATASET_V2 = new URL('../../examples/datasets/example_multimodal/v2', import.meta.url).pathname;
export const MODEL = 'example_multimodal';

/** A recording CanaryStarter (a stand-in for the rollout controller, which needs running model servers). */
export class RecordingCanary implements CanaryStarter {
  readonly started: Array<{ model: string; version: string; actor: string; rolloutId: number }> = [];
  /** When set, start() throws it. */
  failWith: Error | undefined;

  async start(model: string, version: string, actor: string): Promise<{ rolloutId: number }> {
    if (this.failWith) throw this.failWith;
    const active = this.started.find((s) => s.model === model);
    if (active && active.version !== version) {
      throw new AegisError('ROLLOUT_ACTIVE', `model ${model} already has an active rollout`, { details: { model, rollout: active.rolloutId, version: active.version } });
    }
    const rolloutId = 100 + this.started.length;
    this.started.push({ model, version, actor, rolloutId });
    return { rolloutId };
  }

  async find(model: string, version: string): Promise<{ rolloutId: number } | undefined> {
    const s = this.started.find((x) => x.model === model && x.version === version);
    return s ? { rolloutId: s.rolloutId } : undefined;
  }
}

/** Writes an EC P-256 key pair as PEM files under `<work>/keys`. */
export async function writeTestKeys(work: string): Promise<{ keyPath: string; pubPath: string }> {
  const dir = join(work, 'keys');
  await mkdir(dir, { recursive: true });
  const keyPath = join(dir, 'signing-key.pem');
  const pubPath = join(dir, 'signing-key.pub.pem');
  const exists = await readFile(keyPath).then(() => true, () => false);
  if (!exists) {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    await writeFile(keyPath, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    await writeFile(pubPath, publicKey.export({ type: 'spki', format: 'pem' }));
  }
  return { keyPath, pubPath };
}

export function testSettings(overrides: Partial<PipelineSettings> = {}): PipelineSettings {
  const defaults = configSchema.parse({}).pipeline;
  return { ...defaults, ...overrides, evaluate: { ...defaults.evaluate, ...overrides.evaluate } };
}

export interface PipelineEnv {
  work: string;
  db: Db;
  registry: Registry;
  store: ArtifactStore;
  keyPath: string;
  trust: TrustAnchor;
}

/** Keys, store and registry for `db` under `work` (the same folders every time, so a child process sees what the parent made). */
export async function pipelineEnv(work: string, db: Db): Promise<PipelineEnv> {
  const { keyPath, pubPath } = await writeTestKeys(work);
  return { work, db, registry: new Registry(db), store: new FileStore(join(work, 'artifacts')), keyPath, trust: await resolveTrustAnchor({ publicKey: pubPath }) };
}

/** The example model (trained on dataset v1) pushed, registered and promoted: production `example_multimodal@0.1`. */
export async function seedProduction(env: PipelineEnv, version = '0.1'): Promise<void> {
  const archive = await packageExampleVersion(env.work, env.keyPath, version);
  const key = archiveKey(MODEL, version);
  await env.store.put(key, await readFile(archive));
  await env.store.put(`${key}.sig`, await readFile(`${archive}.sig`));
  const registrar = verifyingRegistrar({ registry: env.registry, trust: env.trust, cacheDir: join(env.work, 'cache') });
  await registrar.register({ uri: env.store.uriOf(key), lineage: {}, actor: 'test' });
  await env.registry.promote(MODEL, version, 'production', 'test');
}

export interface DepsOptions {
  canary?: CanaryStarter;
  tracker?: Tracker;
  settings?: Partial<PipelineSettings>;
  hooks?: PipelineHooks;
  store?: ArtifactStore;
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

export function pipelineDeps(env: PipelineEnv, o: DepsOptions = {}): PipelineRunnerOptions & PipelineDeps {
  return {
    db: env.db,
    registry: env.registry,
    store: o.store ?? env.store,
    signer: () => PemKeySigner.fromFile(env.keyPath),
    registrar: verifyingRegistrar({ registry: env.registry, trust: env.trust, cacheDir: join(env.work, 'cache') }),
    ...(o.canary ? { canary: o.canary } : {}),
    ...(o.tracker ? { tracker: o.tracker } : {}),
    settings: testSettings({ backoffMs: 10, ...o.settings }),
    workDir: join(env.work, 'pipeline'),
    actor: 'aegis-pipeline-test',
    pollMs: 0,
    ...(o.hooks ? { hooks: o.hooks } : {}),
    ...(o.sleep ? { sleep: o.sleep } : {}),
  };
}
