import type { ControlPlane } from '../control/index.js';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import type { AegisConfig } from '../config/index.js';
import { isAegisError } from '../errors.js';
import { fetchAndVerifyModel } from '../serving/fetch.js';
import { packageModel } from '../signing/package.js';
import { PemKeySigner } from '../signing/pem/index.js';
import { archiveKey } from '../store/types.js';
import { createReadStream } from 'node:fs';
import { CliContext } from './context.js';
import { EXAMPLE_MODEL, EXAMPLE_REQUEST } from '../training/example.js';
import { ensureDevTrust } from './dev-trust.js';
import { reportError } from './output.js';


/**
 * Makes sure the example model is packaged, pushed and registered, and that
 * some version of it is in production; returns the archive URI to serve.
 */
export async function ensureExampleModel(ctx: CliContext, say: (s: string) => void): Promise<{ uri: string; name: string; version: string; keyPath: string }> {
  const { keyPath } = await ensureDevTrust(ctx.config, say);
  const registry = await ctx.registry();
  const name = 'example_multimodal';
  const existing = await registry.resolve(`${name}@production`).catch((err: unknown) => {
    if (isAegisError(err) && err.code === 'REGISTRY_NOT_FOUND') return undefined;
    throw err;
  });
  if (existing) return { uri: existing.archiveUri, name, version: existing.version, keyPath };

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
    return { uri, name: pkg.manifest.name, version: pkg.manifest.version, keyPath };
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

export function registerUpCommand(program: Command, config: () => AegisConfig): void {
  program
    .command('up')
    .description('bring up the local platform on embedded defaults: dev keys, registry, the example model, its server behind the gateway, the control plane')
    .option('--port <port>', 'gateway port (where inference requests go)', '8080')
    .option('--control-port <port>', 'control-plane API port (default: control.port, 8079)')
    .option('--json', 'print a JSON line when ready')
    .addHelpText(
      'after',
      `
First run: creates ./.aegis/ (PGlite database, file store, a DEV signing key and
trust policy), packages, signs, pushes and registers the example model, promotes
it to production. Every run then serves the production version behind the
gateway (--port), and runs the control plane (--control-port): the rollout
controller (\`aegis rollout …\` talks to it; active rollouts resume where they
were) and, if backup.schedule is set, scheduled backups. The control plane
holds the embedded database while it runs. Ctrl-C stops everything.

Example:
  $ npm start          # = npx aegis up
  $ curl -s localhost:8080/infer -H 'content-type: application/json' -d @examples/requests/example_multimodal.json
  $ aegis rollout start example_multimodal@0.2`,
    )
    .action(async (o) => {
      const say = (s: string) => {
        if (!o.json) process.stdout.write(s + '\n');
      };
      const ctx = new CliContext(config());
      let plane: ControlPlane | undefined;
      try {
        const model = await ensureExampleModel(ctx, say);
        const { startControlPlane, controlToken, controlPlaneRecord } = await import('../control/index.js');
        const token = await controlToken(ctx.config.control.token, ctx.paths.controlToken, true);
        say(`starting ${model.name}@${model.version} behind the gateway, and the control plane …`);
        plane = await startControlPlane({
          config: ctx.config,
          db: await ctx.db(),
          registry: await ctx.registry(),
          trustPath: ctx.paths.trust,
          trust: await ctx.trust({}),
          cacheDir: ctx.paths.cache,
          store: ctx.store(),
          actor: ctx.actor(),
          defaultSigningKey: model.keyPath,
          token,
          serve: [{ model: model.name, port: Number(o.port) }],
          ...(o.controlPort !== undefined ? { port: Number(o.controlPort) } : {}),
        });
        // Where `aegis rollout|model|db …` find this control plane (whatever --control-port said); removed on exit.
        await writeFile(ctx.paths.controlUrl, controlPlaneRecord(plane.url)).catch(() => undefined);
        const url = plane.gateways[model.name]!;
        const request = EXAMPLE_REQUEST;
        if (o.json) process.stdout.write(JSON.stringify({ ready: true, url, control: plane.url, model: model.name, version: model.version, request }) + '\n');
        else {
          say(`\nAegis is up: ${model.name}@${model.version} (verified) on ${url}; control plane on ${plane.url}`);
          say('Try:');
          say(`  curl -s ${url}/infer -H 'content-type: application/json' -d @${request}`);
          say(`  curl -s ${url}/v2/models/${model.name}`);
          say(`  curl -s ${url}/metrics | grep aegis_`);
          say(`  npx aegis rollout status ${model.name}`);
          say('Ctrl-C to stop.');
        }
        await new Promise<void>((resolve) => {
          process.once('SIGINT', () => resolve());
          process.once('SIGTERM', () => resolve());
        });
        say('stopping …');
        await rm(ctx.paths.controlUrl, { force: true });
        await plane.close();
        plane = undefined;
        say('stopped');
      } catch (err) {
        if (plane) await rm(ctx.paths.controlUrl, { force: true }).catch(() => undefined);
        await plane?.close().catch(() => undefined);
        process.exitCode = reportError(err, o);
      } finally {
        await ctx.close();
      }
    });
}
