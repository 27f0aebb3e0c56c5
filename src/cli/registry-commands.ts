import type { Command } from 'commander';
import type { AegisConfig } from '../config/index.js';
import { AegisError } from '../errors.js';
import { registryFor, withControlFallback } from './control-fallback.js';
import { STAGES, type Stage } from '../registry/types.js';
import { splitObjectUri } from '../store/index.js';
import { withContext } from './archive-commands.js';
import { printJson } from './output.js';

function parseRef(ref: string): { name: string; version: string } {
  const m = /^([^@\s]+)@([^@\s]+)$/.exec(ref);
  if (!m) throw new AegisError('USAGE', `expected NAME@VERSION, got ${JSON.stringify(ref)}`, { hint: 'For example: aegis model promote fraud@1.2.0 --stage production' });
  return { name: m[1]!, version: m[2]! };
}

export function registerRegistryCommands(model: Command, config: () => AegisConfig): void {
  model
    .command('register')
    .description('verify a stored archive, then record it in the registry with its lineage')
    .argument('<uri>', 'archive URI (file://…, s3://…, or a path)')
    .option('--public-key <key.pem>', 'trust this public key')
    .option('--trust <trust.yaml>', 'trust the keys of this policy (default: <home>/trust.yaml)')
    .option('--json', 'print a JSON report')
    .addHelpText(
      'after',
      `
The archive is fetched and verified exactly as a server would (detached
signature, then every file against the OMS bundle) before anything is written.
Registering the same name@version again with the same archive is a no-op;
with a different archive it is refused (versions are immutable).

Example:
  $ aegis model register ./.aegis/artifacts/model-archives/example_multimodal/0.1/model.tar.gz`,
    )
    .action(async (uri: string, o) =>
      withContext(config, o, async (ctx) => {
        const trust = await ctx.trust({ publicKey: o.publicKey, trust: o.trust });
        // Record a canonical, absolute URI (a relative path means nothing to another machine).
        const { store, key } = splitObjectUri(uri);
        uri = store.uriOf(key);
        const { registerArchive } = await import('../control/register.js');
        const input = { uri, trust, cacheDir: ctx.paths.cache, limits: { maxEntries: ctx.config.fetch.maxEntries, maxBytes: ctx.config.fetch.maxBytes }, actor: ctx.actor() };
        // While `aegis up` holds the embedded database, the control plane registers it (fetching and verifying the
        // archive again with its own trust policy).
        const result = await withControlFallback(
          ctx,
          async () => registerArchive(await ctx.registry(), input),
          (client) => client.request<Awaited<ReturnType<typeof registerArchive>>>('POST', '/api/v1/versions', { uri }),
        );
        const { version, created } = result;
        if (o.json) printJson({ ok: true, created, version });
        else process.stdout.write(`${created ? 'registered' : 'already registered'} ${version.name}@${version.version} (sha256 ${version.archiveSha256.slice(0, 16)}…, stage ${version.stage})\n`);
      }),
    );

  model
    .command('list')
    .description('list registered models (or the versions of one model)')
    .argument('[name]', 'a model name: list its versions')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExamples:\n  $ aegis model list\n  $ aegis model list example_multimodal --json')
    .action(async (name: string | undefined, o) =>
      withContext(config, o, async (ctx) => {
        const registry = await registryFor(ctx);
        if (name) {
          const versions = await registry.listVersions(name);
          if (o.json) return printJson({ model: name, versions });
          for (const v of versions) process.stdout.write(`${v.name}@${v.version}`.padEnd(40) + `${v.stage.padEnd(11)} ${v.createdAt.toISOString()}  ${v.archiveUri}\n`);
          return;
        }
        const models = await registry.listModels();
        if (o.json) return printJson({ models });
        if (models.length === 0) process.stdout.write('no models registered (aegis model register URI)\n');
        for (const m of models) {
          process.stdout.write(`${m.name.padEnd(32)} ${String(m.versionCount).padStart(3)} version(s)  latest ${m.latestVersion ?? '-'}  production ${m.productionVersion ?? '-'}  canary ${m.canaryVersion ?? '-'}\n`);
        }
      }),
    );

  model
    .command('show')
    .description('show a model version: archive, digest, signer, stage, manifest, lineage, history')
    .argument('<ref>', 'NAME (latest), NAME@VERSION, or NAME@production|canary|staging')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExample:\n  $ aegis model show example_multimodal@0.1')
    .action(async (ref: string, o) =>
      withContext(config, o, async (ctx) => {
        const registry = await registryFor(ctx);
        const v = await registry.resolve(ref);
        const history = await registry.audit({ subject: `${v.name}@${v.version}`, limit: 50 });
        if (o.json) return printJson({ ...v, history });
        const lines = [
          `${v.name}@${v.version}`,
          `  stage       ${v.stage}`,
          `  archive     ${v.archiveUri}`,
          `  sha256      ${v.archiveSha256}`,
          `  signer      ${v.signerKeyId ?? '-'}`,
          `  created     ${v.createdAt.toISOString()}`,
          `  lineage     ${JSON.stringify(v.lineage)}`,
          `  framework   ${String(v.manifest.framework)} (${JSON.stringify(v.manifest.runtime)})`,
          `  metrics     ${JSON.stringify(v.manifest.metrics ?? {})}`,
          '  history',
          ...history.map((h) => `    ${h.at.toISOString()} ${h.actor} ${h.action} ${JSON.stringify(h.details)}`),
        ];
        process.stdout.write(lines.join('\n') + '\n');
      }),
    );

  model
    .command('promote')
    .description(`move a version to a stage (${STAGES.join(', ')}); production replaces (archives) the previous one`)
    .argument('<name@version>', 'the version')
    .requiredOption('--stage <stage>', STAGES.join(' | '))
    .option('--reason <text>', 'recorded in the audit log')
    .option('--force', 'bring back a version that was archived')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExample:\n  $ aegis model promote example_multimodal@0.1 --stage production --reason "passed canary"')
    .action(async (ref: string, o) =>
      withContext(config, o, async (ctx) => {
        const { name, version } = parseRef(ref);
        const registry = await registryFor(ctx);
        const r = await registry.promote(name, version, o.stage as Stage, ctx.actor(), { ...(o.reason ? { reason: o.reason } : {}), ...(o.force ? { force: true } : {}) });
        if (o.json) return printJson({ ok: true, ...r });
        process.stdout.write(r.changed ? `${name}@${version}: ${r.previousStage} → ${o.stage}\n` : `${name}@${version} is already ${o.stage}\n`);
        for (const d of r.displaced) process.stdout.write(`${name}@${d.version}: ${d.from} → ${d.to}\n`);
      }),
    );

  model
    .command('history')
    .description('the audit log: who did what, newest first')
    .argument('[name]', 'only entries about this model')
    .option('--limit <n>', 'how many entries', '50')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExample:\n  $ aegis model history example_multimodal')
    .action(async (name: string | undefined, o) =>
      withContext(config, o, async (ctx) => {
        const entries = await (await registryFor(ctx)).audit({ ...(name ? { model: name } : {}), limit: Number(o.limit) });
        if (o.json) return printJson({ entries });
        for (const e of entries) process.stdout.write(`${e.at.toISOString()} ${e.actor.padEnd(12)} ${e.action.padEnd(18)} ${e.subject} ${JSON.stringify(e.details)}\n`);
      }),
    );
}
