import type { Command } from 'commander';
import type { AegisConfig } from '../config/index.js';
import { AegisError } from '../errors.js';
import { fetchAndVerifyModel } from '../serving/fetch.js';
import type { FaultInjection, ModelServer, Track } from '../serving/server.js';
import { resolveArchiveUri } from './archive-commands.js';
import { CliContext } from './context.js';
import { printJson, reportError } from './output.js';

export function parseFaults(spec: string): FaultInjection {
  const f: FaultInjection = { errorRate: 0, latencyMs: 0 };
  for (const part of spec.split(',').map((p) => p.trim()).filter(Boolean)) {
    const [k, v] = part.split('=');
    const n = Number(v);
    if (k === 'error-rate' && n >= 0 && n <= 1) f.errorRate = n;
    else if (k === 'latency-ms' && n >= 0) f.latencyMs = n;
    else throw new AegisError('USAGE', `bad --inject-fault part ${JSON.stringify(part)}`, { hint: 'Use error-rate=0..1 and/or latency-ms=N, e.g. --inject-fault error-rate=0.1,latency-ms=200' });
  }
  return f;
}

export function registerServeCommand(program: Command, config: () => AegisConfig): void {
  program
    .command('serve')
    .description('serve a verified model over the Open Inference Protocol v2 and POST /infer')
    .requiredOption('--model <uri-or-ref>', 'archive URI (s3://…, file://…, path) or registry ref (name@version, name@production)')
    .option('--public-key <key.pem>', 'trust this public key')
    .option('--trust <trust.yaml>', 'trust the keys of this policy (default: <home>/trust.yaml)')
    .option('--port <port>', 'port to listen on', '8080')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--name <name>', 'name to serve the model under (default: its manifest name)')
    .option('--track <track>', 'stable | canary (a metrics label)', 'stable')
    .option('--track-from <labels-file>', "follow the track in a Kubernetes downward-API labels file (label aegis.dev/track, which Argo Rollouts' canaryMetadata/stableMetadata set), re-read every 5 s")
    .option('--threads <n>', 'ONNX Runtime intra-op threads per request', '1')
    .option('--body-limit <bytes>', 'largest request body (413 above)', String(16 * 1024 * 1024))
    .option('--inject-fault <spec>', 'DRILLS ONLY: fail or slow a share of requests, e.g. error-rate=0.1,latency-ms=200')
    .option('--admin-token-file <file>', 'hot swap (POST /v2/repository/models/…/load) requires this bearer token (or AEGIS_SERVER_ADMIN_TOKEN)')
    .option('--no-repository-load', 'turn hot swap off (servers a control plane manages)')
    .option('--json', 'print a JSON line when ready')
    .addHelpText(
      'after',
      `
The model is fetched and verified (archive signature, every file against its
OMS bundle, name/version) before the server listens; an unverifiable model
makes the command exit non-zero with the reason. SIGTERM drains and exits.

Examples:
  $ aegis serve --model example_multimodal@production --port 8080
  $ aegis serve --model s3://models/aegis/model-archives/fraud/1.2.0/model.tar.gz --trust /etc/aegis/trust.yaml
  $ curl -s localhost:8080/v2/models/example_multimodal`,
    )
    .action(async (o) => {
      const ctx = new CliContext(config());
      let server: ModelServer | undefined;
      try {
        const track = o.track as Track;
        if (track !== 'stable' && track !== 'canary') throw new AegisError('USAGE', `--track must be stable or canary, got ${o.track}`, { hint: 'Use --track stable or --track canary.' });
        const adminToken = await readAdminToken(o.adminTokenFile);
        const repositoryLoad = o.repositoryLoad === false ? false : adminToken ? { token: adminToken } : undefined;
        if (repositoryLoad === undefined && !isLoopback(o.host)) {
          throw new AegisError('USAGE', `hot swap would be open to anyone who can reach ${o.host}:${o.port}`, {
            hint: 'Pass --admin-token-file FILE (or set AEGIS_SERVER_ADMIN_TOKEN) to require a token, or --no-repository-load to turn hot swap off.',
          });
        }
        const trust = await ctx.trust({ publicKey: o.publicKey, trust: o.trust });
        const limits = { maxEntries: ctx.config.fetch.maxEntries, maxBytes: ctx.config.fetch.maxBytes };
        // Registry refs are resolved once per load; the database is not held open while serving.
        const source = async (ref: string, expect?: { name?: string; version?: string }) => {
          const resolved = await resolveArchiveUri(ctx, ref);
          await ctx.close();
          return fetchAndVerifyModel({ uri: resolved.uri, trust, cacheDir: ctx.paths.cache, expect: { ...resolved.expect, ...expect }, limits });
        };
        // Loaded here, not at start-up: other commands need neither the HTTP server nor ONNX Runtime.
        const [{ ModelServer }, { OnnxRuntime }, { driftSettingsFromConfig }] = await Promise.all([
          import('../serving/server.js'),
          import('../serving/runtime/onnx/index.js'),
          import('../drift/index.js'),
        ]);
        server = new ModelServer({
          runtime: new OnnxRuntime({ intraOpThreads: Number(o.threads) }),
          source,
          track,
          ...(o.name ? { name: o.name } : {}),
          bodyLimit: Number(o.bodyLimit),
          ...(o.injectFault ? { faults: parseFaults(o.injectFault) } : {}),
          drift: driftSettingsFromConfig(ctx.config.drift),
          ...(repositoryLoad !== undefined ? { repositoryLoad } : {}),
        });
        const loaded = await server.load(o.model);
        if (o.trackFrom) {
          const { followTrackLabel } = await import('../serving/track-labels.js');
          const s = server;
          await followTrackLabel(o.trackFrom, (t) => s.setTrack(t));
        }
        const address = await server.listen(Number(o.port), o.host).catch((err: NodeJS.ErrnoException) => {
          throw new AegisError('SERVER_START_FAILED', `cannot listen on ${o.host}:${o.port}: ${err.message}`, {
            cause: err,
            hint: err.code === 'EADDRINUSE' ? `Port ${o.port} is taken; pass another --port.` : 'Check --host and --port.',
          });
        });
        if (o.json) process.stdout.write(JSON.stringify({ ready: true, url: address, ...loaded, track: server.track }) + '\n');
        else process.stdout.write(`serving ${loaded.name}@${loaded.version} (${server.track}) on ${address}${o.injectFault ? `  [FAULT INJECTION: ${o.injectFault}]` : ''}\n`);
        const stop = async (signal: string) => {
          process.stderr.write(`${signal}: draining and stopping\n`);
          await server?.close();
          process.exit(0);
        };
        process.once('SIGTERM', () => void stop('SIGTERM'));
        process.once('SIGINT', () => void stop('SIGINT'));
        if (process.env.AEGIS_EXIT_WITH_PARENT === '1' && !process.stdin.isTTY) {
          // Started by a control plane: its end of our stdin closes when it exits, however it exits.
          process.stdin.on('end', () => void stop('parent exited'));
          process.stdin.on('error', () => void stop('parent exited'));
          process.stdin.resume();
        }
      } catch (err) {
        await server?.close().catch(() => undefined);
        await ctx.close();
        process.exitCode = reportError(err, o);
      }
    });

}

/** `aegis model load`: the CLI form of POST /v2/repository/models/{name}/load. */
export function registerHotSwapCommand(model: Command, config: () => AegisConfig): void {
  model
    .command('load')
    .description('hot-swap the model a running server serves (fetch, verify, load, warm up, then switch)')
    .argument('<uri-or-ref>', 'archive URI or registry ref of the new version')
    .option('--server <url>', 'the model server', 'http://127.0.0.1:8080')
    .option('--version <version>', 'refuse the archive unless it holds this version')
    .option('--admin-token-file <file>', "the server's admin token (or AEGIS_SERVER_ADMIN_TOKEN)")
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExample:\n  $ aegis model load example_multimodal@0.2 --server http://127.0.0.1:8080')
    .action(async (ref: string, o) => {
      const ctx = new CliContext(config());
      try {
        const { uri, expect } = await resolveArchiveUri(ctx, ref);
        const index = (await (await fetch(`${o.server}/v2/repository/index`, { method: 'POST' })).json()) as { name: string }[];
        const name = index[0]?.name;
        if (!name) throw new AegisError('USAGE', `${o.server} serves no model yet`, { hint: 'Start it with `aegis serve --model …`.' });
        const adminToken = await readAdminToken(o.adminTokenFile);
        const res = await fetch(`${o.server}/v2/repository/models/${encodeURIComponent(name)}/load`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...(adminToken ? { authorization: `Bearer ${adminToken}` } : {}) },
          body: JSON.stringify({ uri, ...(o.version ?? expect?.version ? { version: o.version ?? expect?.version } : {}) }),
        });
        const body = (await res.json()) as Record<string, unknown>;
        if (o.json) printJson(body);
        if (!res.ok) {
          if (!o.json) process.stderr.write(`load refused [${String(body.code)}]: ${String(body.error)}\n  the server keeps serving ${JSON.stringify(body.serving)}\n`);
          process.exitCode = 1;
        } else if (!o.json) process.stdout.write(`now serving ${String(body.name)}@${String(body.version)} (was ${JSON.stringify(body.previous ?? null)})\n`);
      } catch (err) {
        process.exitCode = reportError(
          err instanceof TypeError ? new AegisError('SERVER_START_FAILED', `cannot reach ${o.server}: ${err.message}`, { cause: err, hint: 'Is the server running? Check --server.' }) : err,
          o,
        );
      } finally {
        await ctx.close();
      }
    });
}

/** The model server's admin token: from --admin-token-file, else AEGIS_SERVER_ADMIN_TOKEN; undefined when neither is given. */
async function readAdminToken(file: string | undefined): Promise<string | undefined> {
  if (file) {
    const { readFile } = await import('node:fs/promises');
    const { fsError } = await import('../errors.js');
    const token = (await readFile(file, 'utf8').catch((err: unknown) => {
      throw fsError(err, file, 'admin token');
    })).trim();
    if (token.length < 16) throw new AegisError('USAGE', `the admin token in ${file} is shorter than 16 characters`, { hint: 'Use a long random token, e.g. `openssl rand -hex 32 > token`.' });
    return token;
  }
  const env = process.env.AEGIS_SERVER_ADMIN_TOKEN;
  return env && env.length > 0 ? env : undefined;
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}
