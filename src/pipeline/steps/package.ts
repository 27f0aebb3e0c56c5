import { cp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseDocument } from 'yaml';
import { MANIFEST_FILE, parseManifest } from '../../artifact/manifest.js';
import { scanModel } from '../../artifact/scan.js';
import { ARCHIVE_BUNDLE, packageModel } from '../../signing/package.js';
import type { StepContext, StepResult } from '../context.js';
import type { TrainOutputs } from './train.js';

export interface PackageOutputs {
  /** The model directory to sign: the trained files with the final aegis.yaml. */
  dir: string;
  name: string;
  version: string;
  files: number;
  bytes: number;
  [key: string]: unknown;
}

export interface SignOutputs {
  archive: string;
  signature: string;
  sha256: string;
  size: number;
  rootDigest: string;
  keyHint: string;
  [key: string]: unknown;
}

/**
 * package: the trained model directory as it will be signed, in
 * <run>/package/model: its aegis.yaml gets the run's name, version, parent,
 * dataset and pipeline labels (whatever the trainer wrote), so the signed
 * manifest itself carries the lineage. Deterministic: the same trained files
 * give the same directory.
 */
export async function packageStep(ctx: StepContext): Promise<StepResult> {
  const train = ctx.output<TrainOutputs>('train');
  const dir = join(ctx.runDir, 'package', 'model');
  await rm(dir, { recursive: true, force: true });
  await cp(train.modelDir, dir, { recursive: true, filter: (src) => !src.endsWith(`/${ARCHIVE_BUNDLE}`) });
  const manifestPath = join(dir, MANIFEST_FILE);
  // Edited in place: the trainer's formatting and comments are kept.
  const doc = parseDocument(await readFile(manifestPath, 'utf8'));
  doc.set('name', train.model);
  doc.set('version', train.version);
  if (train.parentVersion) doc.set('parent', { version: train.parentVersion });
  else doc.delete('parent');
  doc.set('dataset', { uri: train.datasetUri, ...(train.datasetDigest ? { digest: train.datasetDigest } : {}) });
  const labels = (doc.toJS() as { labels?: Record<string, string> }).labels ?? {};
  doc.set('labels', {
    ...labels,
    'aegis.pipeline_run': String(ctx.run.id),
    ...(ctx.run.alertId !== null ? { 'aegis.alert_id': String(ctx.run.alertId) } : {}),
  });
  const text = doc.toString({ lineWidth: 0, flowCollectionPadding: false });
  parseManifest(text, manifestPath); // never sign a manifest a server would refuse
  await writeFile(manifestPath, text);
  const scan = await scanModel(dir);
  const bytes = scan.totalBytes;
  ctx.log(`packaged ${train.model}@${train.version}: ${scan.files.length} files, ${bytes} bytes in ${dir}`);
  const outputs: PackageOutputs = { dir, name: train.model, version: train.version, files: scan.files.length, bytes };
  return { outputs };
}

/**
 * sign: signs the packaged model with the configured key (OMS bundle inside
 * the archive) and writes the deterministic model.tar.gz and its detached
 * signature into <run>/dist; both are logged to the tracker as artifacts
 * (`model/model.tar.gz`, `model/model.tar.gz.sig`).
 */
export async function signStep(ctx: StepContext): Promise<StepResult> {
  const pkg = ctx.output<PackageOutputs>('package');
  const signer = await ctx.deps.signer();
  const r = await packageModel({ modelDir: pkg.dir, signer, outDir: join(ctx.runDir, 'dist') });
  ctx.log(`signed with key ${r.keyHint}: ${r.archive} (${r.size} bytes, sha256 ${r.sha256})`);
  const { tracker, runId } = await ctx.tracking();
  await tracker.logArtifact(runId, r.archive, 'model');
  await tracker.logArtifact(runId, r.signature, 'model');
  const outputs: SignOutputs = { archive: r.archive, signature: r.signature, sha256: r.sha256, size: r.size, rootDigest: r.rootDigest, keyHint: r.keyHint };
  return { outputs, summary: { archiveSha256: r.sha256, keyHint: r.keyHint } };
}
