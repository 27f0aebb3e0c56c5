import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import { readArchiveEntry } from '../artifact/archive.js';
import { MANIFEST_FILE, parseManifest } from '../artifact/manifest.js';
import type { AegisConfig } from '../config/index.js';
import { AegisError, isAegisError } from '../errors.js';
import { HashTap, hashStream } from '../artifact/archive.js';
import { fetchAndVerifyModel } from '../serving/fetch.js';
import { ARCHIVE_NAME, packageModel, verifyArchiveFile } from '../signing/package.js';
import { openSigner, signerSource } from '../signing/provider.js';
import { splitObjectUri } from '../store/index.js';
import { archiveKey, type ArtifactStore } from '../store/types.js';
import { CliContext } from './context.js';
import { registryFor } from './control-fallback.js';
import { byteProgress, collect, printJson, reportError } from './output.js';

/** Runs a command body with a context, reporting errors and closing the DB. */
export async function withContext(config: () => AegisConfig, o: { json?: boolean }, fn: (ctx: CliContext) => Promise<void>): Promise<void> {
  let ctx: CliContext | undefined;
  try {
    ctx = new CliContext(config());
    await fn(ctx);
  } catch (err) {
    process.exitCode = reportError(err, o);
  } finally {
    await ctx?.close();
  }
}

/** An archive reference: a registry ref (name@version, name@production) or an object URI / path. */
export async function resolveArchiveUri(ctx: CliContext, ref: string): Promise<{ uri: string; expect?: { name: string; version: string } }> {
  if (/^[a-z0-9][a-z0-9._-]*(@[A-Za-z0-9._+-]+)?$/.test(ref) && !ref.endsWith('.tar.gz')) {
    const { existsSync } = await import('node:fs');
    if (!existsSync(ref)) {
      const v = await (await registryFor(ctx)).resolve(ref); // through the control plane while `aegis up` holds the embedded database
      return { uri: v.archiveUri, expect: { name: v.name, version: v.version } };
    }
  }
  return { uri: ref };
}

async function sha256OfStream(s: NodeJS.ReadableStream): Promise<string> {
  return (await hashStream(s)).sha256.toString('hex');
}

async function uploadFile(store: ArtifactStore, key: string, path: string, label: string, o: { json?: boolean }): Promise<void> {
  const size = (await stat(path)).size;
  const bar = byteProgress(label, o, 16 * 2 ** 20);
  try {
    await store.put(key, createReadStream(path), { contentLength: size, onProgress: (n) => bar.update(n, size) });
  } finally {
    bar.stop();
  }
}

export function registerArchiveCommands(model: Command, config: () => AegisConfig): void {
  model
    .command('package')
    .description('sign a model and write a deterministic model.tar.gz plus its detached signature model.tar.gz.sig')
    .argument('<model-dir>', 'model directory with aegis.yaml')
    .option('--key <key.pem>', 'EC private key')
    .option('--kms-key <id>', 'sign with an AWS KMS key instead: key id, ARN or alias/NAME (default AEGIS_KMS_KEY_ID)')
    .option('--out <dir>', 'output folder', '.')
    .option('--ignore <path>', 'leave a path out (repeatable)', collect, [])
    .option('--password <password>', 'password of an encrypted key (or AEGIS_KEY_PASSWORD)')
    .option('--json', 'print a JSON report')
    .addHelpText(
      'after',
      `
The OMS bundle (model.sig) is placed at the archive root next to the model's
files; model.tar.gz.sig is base64 DER ECDSA over the archive's SHA-256, which
\`cosign verify-blob --key pub.pem --signature model.tar.gz.sig --insecure-ignore-tlog\` accepts.

Example:
  $ aegis model package examples/model_registry/example_multimodal/0.1 --key keys/signing-key.pem --out dist/
  $ aegis model package examples/model_registry/example_multimodal/0.1 --kms-key alias/model-signing --out dist/`,
    )
    .action(async (dir: string, o) => {
      const bar = byteProgress('packaging', o, 64 * 2 ** 20);
      try {
        const signer = await openSigner(config(), { pemPath: o.key, password: o.password ?? process.env.AEGIS_KEY_PASSWORD, kmsKeyId: o.kmsKey });
        const r = await packageModel({ modelDir: dir, signer, outDir: o.out, ignorePaths: o.ignore, workers: config().hashing.workers, onProgress: (_p, d, t) => bar.update(d, t) });
        bar.stop();
        if (o.json) printJson({ ok: true, ...r });
        else process.stdout.write(`${r.manifest.name}@${r.manifest.version}: ${r.archive} (${r.size} bytes, sha256 ${r.sha256})\nsignature: ${r.signature}\n`);
      } catch (err) {
        bar.stop();
        process.exitCode = reportError(err, o);
      }
    });

  model
    .command('verify-archive')
    .description('check the detached signature of a model.tar.gz; prints "verified"')
    .argument('<archive>', 'model.tar.gz')
    .option('--signature <sig>', 'detached signature (default <archive>.sig)')
    .option('--public-key <key.pem>', 'trust this public key')
    .option('--trust <trust.yaml>', 'trust the keys of this policy')
    .option('--json', 'print a JSON report')
    .addHelpText('after', '\nExample:\n  $ aegis model verify-archive dist/model.tar.gz --public-key keys/signing-key.pub.pem\n  verified')
    .action(async (archive: string, o) =>
      withContext(config, o, async (ctx) => {
        const trust = await ctx.trust({ publicKey: o.publicKey, trust: o.trust });
        const r = await verifyArchiveFile(archive, o.signature ?? `${archive}.sig`, trust).catch((err: unknown) => {
          if (o.json && isAegisError(err)) {
            printJson({ verified: false, archive, error: err.toJSON() });
            process.exitCode = 1;
            return undefined;
          }
          throw err;
        });
        if (!r) return;
        if (o.json) printJson({ verified: true, archive, ...r });
        else process.stdout.write('verified\n');
      }),
    );

  model
    .command('push')
    .description('upload a model archive (and its signature) to an artifact store: model-archives/<name>/<version>/model.tar.gz')
    .argument('<dir-or-archive>', 'a model.tar.gz (with .sig beside it), or a model directory to package first')
    .option('--to <uri>', 'store root: a path, file://… or s3://bucket/prefix (default: the platform store)')
    .option('--key <key.pem>', 'signing key, when pushing a directory')
    .option('--kms-key <id>', 'AWS KMS signing key (id, ARN or alias/NAME), when pushing a directory (default AEGIS_KMS_KEY_ID)')
    .option('--json', 'print a JSON report')
    .addHelpText('after', '\nExamples:\n  $ aegis model push dist/model.tar.gz --to s3://models/aegis\n  $ aegis model push my-model/ --key keys/signing-key.pem --to ./.aegis/artifacts')
    .action(async (src: string, o) =>
      withContext(config, o, async (ctx) => {
        let archive = src;
        let scratch: string | undefined;
        try {
          if ((await stat(src)).isDirectory()) {
            const keys = { pemPath: o.key, kmsKeyId: o.kmsKey };
            if (!signerSource(ctx.config, keys)) {
              throw new AegisError('USAGE', `${src} is a directory: pass --key or --kms-key to package it first`, { hint: 'Or push a model.tar.gz made by `aegis model package`.' });
            }
            const signer = await openSigner(ctx.config, keys);
            scratch = await mkdtemp(join(tmpdir(), 'aegis-push-'));
            archive = (await packageModel({ modelDir: src, signer, outDir: scratch })).archive;
          }
          const manifestBytes = await readArchiveEntry(createReadStream(archive), MANIFEST_FILE);
          if (!manifestBytes) throw new AegisError('MANIFEST_MISSING', `${archive} holds no ${MANIFEST_FILE}`, { hint: 'Package the model with `aegis model package`.' });
          const manifest = parseManifest(manifestBytes.toString('utf8'), `${archive}:${MANIFEST_FILE}`);
          await stat(`${archive}.sig`).catch(() => {
            throw new AegisError('ARCHIVE_SIGNATURE_INVALID', `no signature ${archive}.sig next to the archive`, { hint: 'Push the files written by `aegis model package`.' });
          });
          const store = ctx.store(o.to);
          const key = archiveKey(manifest.name, manifest.version);
          const existing = await store.head(key);
          const local = await sha256OfStream(createReadStream(archive));
          if (existing) {
            const remote = await sha256OfStream(await store.get(key));
            if (remote !== local) {
              throw new AegisError('VERSION_IMMUTABLE', `${store.uriOf(key)} already holds a different archive for ${manifest.name}@${manifest.version}`, {
                hint: 'Versions are immutable: bump the version in aegis.yaml and package again.',
                details: { remote, local },
              });
            }
          }
          if (!existing) await uploadFile(store, key, archive, 'uploading', o);
          // The signature goes last, and is refreshed even when the archive was already there.
          await uploadFile(store, `${key}.sig`, `${archive}.sig`, 'uploading signature', o);
          const uri = store.uriOf(key);
          if (o.json) printJson({ ok: true, uri, name: manifest.name, version: manifest.version, sha256: local, uploaded: !existing });
          else process.stdout.write(`${existing ? 'already present' : 'pushed'}: ${uri}\n`);
        } finally {
          if (scratch) await rm(scratch, { recursive: true, force: true });
        }
      }),
    );

  model
    .command('pull')
    .description('download a model archive and its signature (no verification: use fetch for that)')
    .argument('<uri-or-ref>', 'archive URI, or a registry ref such as name@1.0 or name@production')
    .requiredOption('--out <dir>', 'folder to write model.tar.gz and model.tar.gz.sig into')
    .option('--json', 'print a JSON report')
    .addHelpText('after', '\nExample:\n  $ aegis model pull s3://models/aegis/model-archives/fraud/1.2.0/model.tar.gz --out /tmp/fraud')
    .action(async (ref: string, o) =>
      withContext(config, o, async (ctx) => {
        const { uri } = await resolveArchiveUri(ctx, ref);
        const { store, key } = splitObjectUri(uri);
        const head = await store.head(key);
        if (!head) throw new AegisError('STORE_NOT_FOUND', `no archive at ${uri}`, { hint: 'Check the URI, or `aegis model list`.' });
        await mkdir(o.out, { recursive: true });
        const out = resolve(o.out, ARCHIVE_NAME);
        const bar = byteProgress('downloading', o, 16 * 2 ** 20);
        let n = 0;
        try {
          const tmp = `${out}.part-${process.pid}`;
          await pipeline(await store.get(key), new HashTap((b) => bar.update((n = b), head.size)), createWriteStream(tmp));
          const { rename } = await import('node:fs/promises');
          await rename(tmp, out);
          const sigTmp = `${out}.sig.part-${process.pid}`;
          await pipeline(await store.get(`${key}.sig`), createWriteStream(sigTmp));
          await rename(sigTmp, `${out}.sig`);
        } finally {
          bar.stop();
        }
        if (o.json) printJson({ ok: true, uri, archive: out, signature: `${out}.sig`, bytes: n });
        else process.stdout.write(`pulled ${basename(uri)} → ${out}\n`);
      }),
    );

  model
    .command('fetch')
    .description('download, verify (archive signature, then every file against the OMS bundle) and unpack a model into the cache')
    .argument('<uri-or-ref>', 'archive URI, or a registry ref such as name@1.0 or name@production')
    .option('--public-key <key.pem>', 'trust this public key')
    .option('--trust <trust.yaml>', 'trust the keys of this policy (default: <home>/trust.yaml)')
    .option('--dest <dir>', 'cache folder; the model lands in <dest>/<sha256>/ (default <home>/cache)')
    .option('--name <name>', 'refuse the archive unless aegis.yaml names this model')
    .option('--version <version>', 'refuse the archive unless aegis.yaml has this version')
    .option('--json', 'print a JSON report')
    .addHelpText('after', '\nExample:\n  $ aegis model fetch example_multimodal@0.1 --trust .aegis/trust.yaml\n  $ aegis model fetch s3://models/aegis/model-archives/fraud/1.2.0/model.tar.gz --public-key pub.pem --dest /var/cache/aegis')
    .action(async (ref: string, o) =>
      withContext(config, o, async (ctx) => {
        const { uri, expect } = await resolveArchiveUri(ctx, ref);
        const trust = await ctx.trust({ publicKey: o.publicKey, trust: o.trust });
        const bar = byteProgress('fetching', o, 64 * 2 ** 20);
        try {
          const r = await fetchAndVerifyModel({
            uri,
            trust,
            cacheDir: o.dest ?? ctx.paths.cache,
            expect: { ...expect, ...(o.name ? { name: o.name } : {}), ...(o.version ? { version: o.version } : {}) },
            limits: { maxEntries: ctx.config.fetch.maxEntries, maxBytes: ctx.config.fetch.maxBytes },
            onProgress: (_p, d, t) => bar.update(d, t),
          });
          bar.stop();
          if (o.json) printJson({ ok: true, dir: r.dir, name: r.manifest.name, version: r.manifest.version, sha256: r.archiveSha256, size: r.archiveSize, fromCache: r.fromCache, signer: r.archiveSigner });
          else process.stdout.write(`${r.manifest.name}@${r.manifest.version} verified${r.fromCache ? ' (cached)' : ''}: ${r.dir}\n`);
        } finally {
          bar.stop();
        }
      }),
    );
}
