import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import type { AegisConfig } from '../config/index.js';
import { AegisError, isAegisError } from '../errors.js';
import { fetchAndVerifyModel } from '../serving/fetch.js';
import { packageModel } from '../signing/package.js';
import { PemKeySigner } from '../signing/pem/index.js';
import { archiveKey } from '../store/types.js';
import { createReadStream } from 'node:fs';
import { CliContext } from './context.js';
import { EXAMPLE_MODEL, EXAMPLE_REQUEST } from '../training/example.js';
import { ensureDevTrust } from './dev-trust.js';
import { printJson, reportError } from './output.js';

const BIN = fileURLToPath(new URL('../../bin/aegis.js', import.meta.url));

/**
 * Makes sure the example model is packaged, pushed and registered, and that
 * some version of it is in production; returns the archive URI to serve.
 */
export async function ensureExampleModel(ctx: CliContext, say: (s: string) => void): Promise<{ uri: string; name: string; version: string }> {
  const { keyPath } = await ensureDevTrust(ctx.config, say);
  const registry = await ctx.registry();
  const name = 'example_multimodal';
  const existing = await registry.resolve(`${name}@production`).catch((err: unknown) => {
    if (isAegisError(err) && err.code === 'REGISTRY_NOT_FOUND') return undefined;
    throw err;
  });
  if (existing) return { uri: existing.archiveUri, name, version: existing.version };

  const scratch = await mkdtemp(join(tmpdir(), 'aegis-up-'));
  try {
    say(`packaging, signing and registering the example model (${EXAMPLE_MODEL})`);
    const pkg = await packageModel({ modelDir: EXAMPLE_MODEL, signer: await PemKeySigner.fromFile(keyPath), outDir: scratch });
    const store = ctx.store();
    const key = archiveKey(pkg.manifest.name, pkg.manifest.version);
    if (!(await store.head(key))) await store.put(key, createReadStream(pkg.archive), { contentLength: pkg.size });
    await store.put(`${key}.sig`, createReadStream(pkg.signature));
    const uri = store.uriOf(key);
    const trust = await ctx.trust({});
    const fetched = await fetchAndVerifyModel({ uri, trust, cacheDir: ctx.paths.cache, expect: { name: pkg.manifest.name, version: pkg.manifest.version } });
    await registry.registerVersion({
      name: pkg.manifest.name,
      version: pkg.manifest.version,
      archiveUri: uri,
      archiveSha256: fetched.archiveSha256,
      signerKeyId: fetched.archiveSigner.trustedId ?? fetched.archiveSigner.keyHint,
      manifest: pkg.manifest as unknown as Record<string, unknown>,
      lineage: { ...(pkg.manifest.dataset ? { datasetUri: pkg.manifest.dataset.uri } : {}) },
      actor: ctx.actor(),
    });
    await registry.promote(pkg.manifest.name, pkg.manifest.version, 'production', ctx.actor(), { reason: 'aegis up: first run' });
    return { uri, name: pkg.manifest.name, version: pkg.manifest.version };
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/** Starts `aegis serve` as a child process and resolves when it reports ready. */
export function startServer(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ child: ChildProcess; ready: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'serve', ...args, '--json'], { stdio: ['ignore', 'pipe', 'pipe'], env });
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (line) {
        try {
          resolve({ child, ready: JSON.parse(line) as Record<string, unknown> });
        } catch {
          // partial line
        }
      }
    });
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      process.stderr.write(d);
    });
    child.on('exit', (code) => reject(new AegisError('SERVER_START_FAILED', `the model server exited (${code}) before it was ready${err ? `: ${err.trim().split('\n')[0]}` : ''}`, { hint: 'See the message above.' })));
  });
}

export function registerUpCommand(program: Command, config: () => AegisConfig): void {
  program
    .command('up')
    .description('bring up the local platform on embedded defaults: dev keys, registry, the example model, a model server')
    .option('--port <port>', 'model server port', '8080')
    .option('--json', 'print a JSON line when ready')
    .addHelpText(
      'after',
      `
First run: creates ./.aegis/ (PGlite database, file store, a DEV signing key and
trust policy), packages, signs, pushes and registers the example model, promotes
it to production, and serves it. Later runs reuse what exists. Ctrl-C stops it.

Example:
  $ npm start          # = npx aegis up
  $ curl -s localhost:8080/infer -H 'content-type: application/json' -d @examples/requests/example_multimodal.json`,
    )
    .action(async (o) => {
      const say = (s: string) => {
        if (!o.json) process.stdout.write(s + '\n');
      };
      const ctx = new CliContext(config());
      let child: ChildProcess | undefined;
      try {
        const model = await ensureExampleModel(ctx, say);
        await ctx.close(); // the embedded database is not held while serving (other commands may use it)
        say(`starting the model server for ${model.name}@${model.version} …`);
        const started = await startServer(['--model', model.uri, '--trust', ctx.paths.trust, '--port', String(o.port), '--name', model.name]);
        child = started.child;
        const url = String(started.ready.url);
        const request = EXAMPLE_REQUEST;
        if (o.json) printJson({ ready: true, url, model: model.name, version: model.version, request });
        else {
          say(`\nAegis is up: ${model.name}@${model.version} (verified) on ${url}`);
          say('Try:');
          say(`  curl -s ${url}/infer -H 'content-type: application/json' -d @${request}`);
          say(`  curl -s ${url}/v2/models/${model.name}`);
          say(`  curl -s ${url}/metrics | grep aegis_`);
          say('Ctrl-C to stop.');
        }
        const stop = () => child?.kill('SIGTERM');
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
        await new Promise<void>((r) => child!.once('exit', () => r()));
        say('stopped');
      } catch (err) {
        child?.kill('SIGTERM');
        process.exitCode = reportError(err, o);
      } finally {
        await ctx.close();
      }
    });
}
