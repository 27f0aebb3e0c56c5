import { join, resolve } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { PipelineRunner } from '../pipeline/index.js';
import { Registry as MetricsRegistry } from 'prom-client';
import type { AegisConfig } from '../config/index.js';
import type { Db } from '../db/types.js';
import { childLogger } from '../log.js';
import type { Registry } from '../registry/index.js';
import { RolloutController } from '../rollout/controller/index.js';
import { DbRolloutStore } from '../rollout/store/index.js';
import type { ArtifactStore } from '../store/types.js';
import { buildControlApp } from './app.js';
import { databaseOps } from './database.js';
import { LocalDeployment } from './deployment.js';
import { RegistryStages } from './stages.js';
import { registerArchive } from './register.js';
import type { TrustAnchor } from '../signing/trust.js';

export { ControlClient } from './client.js';
export { controlToken } from './token.js';
export { connectControl, controlPlaneRecord, controlUrl, runningControlPlane } from './connect.js';
export { LocalDeployment } from './deployment.js';

const log = () => childLogger('control');

export interface ControlPlaneOptions {
  config: AegisConfig;
  db: Db;
  registry: Registry;
  /** The store backups go to (default: none scheduled unless config.backup.schedule is set). */
  backupStore?: ArtifactStore;
  /** Trust policy the model servers verify against (and the anchor loaded from it, for registrations through the API). */
  trustPath: string;
  trust: TrustAnchor;
  cacheDir: string;
  token: string;
  /** Models to serve at start: their production version behind a gateway on `port`. */
  serve: Array<{ model: string; port: number; host?: string }>;
  /** Control API address (default config.control.host/port). */
  host?: string;
  port?: number;
  /** Extra `aegis serve` arguments for every model server. */
  serverArgs?: string[];
  /** Longest wait between rollout reconciles, ms. */
  maxSleepMs?: number;
  /** The artifact store retrained versions are pushed to. */
  store: ArtifactStore;
  /** Who the control plane acts as (pipeline runs, rollouts it starts). */
  actor: string;
  /** PEM key the retrain pipeline signs with when neither pipeline.signingKey nor signing.kmsKeyId is set (aegis up: the dev key). */
  defaultSigningKey?: string;
}

export interface ControlPlane {
  /** The control API's URL. */
  url: string;
  /** Gateway URL per served model. */
  gateways: Record<string, string>;
  deployment: LocalDeployment;
  controller: RolloutController;
  pipeline: PipelineRunner;
  app: FastifyInstance;
  close(): Promise<void>;
}

/**
 * The composition root of the local platform (`aegis up`): the database and
 * registry it is given, a LocalDeployment serving each model's production
 * version behind a gateway, the rollout controller driving it (active
 * rollouts are resumed from the DB), the backup scheduler when
 * backup.schedule is set, and the control-plane API on top.
 */
export async function startControlPlane(o: ControlPlaneOptions): Promise<ControlPlane> {
  const deployment = new LocalDeployment({
    archiveOf: async (model, version) => (await o.registry.getVersion(model, version)).archiveUri,
    trustPath: o.trustPath,
    ...(o.serverArgs ? { serverArgs: o.serverArgs } : {}),
  });
  const gateways: Record<string, string> = {};
  const metrics = new MetricsRegistry();
  let stopBackups: (() => Promise<void>) | undefined;
  let app: FastifyInstance | undefined;
  let pipeline: PipelineRunner | undefined;
  const controller = new RolloutController({
    store: new DbRolloutStore(o.db),
    target: deployment,
    stages: new RegistryStages(o.registry),
    ...(o.maxSleepMs ? { maxSleepMs: o.maxSleepMs } : {}),
  });
  try {
    for (const s of o.serve) {
      const prod = await o.registry.resolve(`${s.model}@production`);
      gateways[s.model] = await deployment.serve(s.model, prod.version, s.port, s.host);
    }
    if (o.config.backup.schedule) {
      const { BackupScheduler, backupJob, backupStore, DbBackupRunLog, pgTools } = await import('../backup/index.js');
      const store = o.backupStore ?? backupStore(o.config);
      const scheduler = new BackupScheduler({
        schedule: o.config.backup.schedule,
        backup: backupJob({
          source: o.config.databaseUrl ? { db: o.db, url: o.config.databaseUrl } : { db: o.db },
          store,
          tools: pgTools(o.config),
          retention: { keepDaily: o.config.backup.keepDaily, keepWeekly: o.config.backup.keepWeekly },
        }),
        runs: new DbBackupRunLog(o.db),
        registry: metrics,
      });
      scheduler.start();
      stopBackups = () => scheduler.stop();
    }
    const limits = { maxEntries: o.config.fetch.maxEntries, maxBytes: o.config.fetch.maxBytes };
    const register = async (uri: string, actor: string) => {
      const { splitObjectUri } = await import('../store/index.js');
      const { store, key } = splitObjectUri(uri);
      return registerArchive(o.registry, { uri: store.uriOf(key), trust: o.trust, cacheDir: o.cacheDir, limits, actor });
    };
    // The retrain pipeline (alert → train → evaluate → package → sign → push → register → canary) and the
    // Alertmanager receiver that starts it; loaded here so other commands do not pay for them.
    const [{ PipelineRunner, verifyingRegistrar, getRun, listRuns, listSteps }, { registerAlertReceiver, alertReceiverOptionsFromConfig }, { openTracker }, { openSigner }] = await Promise.all([
      import('../pipeline/index.js'),
      import('../alerts/index.js'),
      import('../tracking/index.js'),
      import('../signing/provider.js'),
    ]);
    const rollouts = new DbRolloutStore(o.db);
    const pemPath = o.config.pipeline.signingKey ?? (o.config.signing.kmsKeyId ? undefined : o.defaultSigningKey);
    const tracker = openTracker(o.config.tracking, { defaultUser: o.actor });
    pipeline = new PipelineRunner({
      db: o.db,
      registry: o.registry,
      store: o.store,
      actor: o.actor,
      signer: () => openSigner(o.config, pemPath ? { pemPath } : {}),
      registrar: verifyingRegistrar({ registry: o.registry, trust: o.trust, cacheDir: o.cacheDir, limits }),
      canary: {
        start: async (model, version, actor) => ({ rolloutId: (await controller.start({ model, version, actor })).id }),
        find: async (model, version) => {
          const r = await rollouts.latest(model);
          return r?.version === version ? { rolloutId: r.id } : undefined;
        },
      },
      ...(tracker ? { tracker } : {}),
      settings: o.config.pipeline,
      workDir: o.config.pipeline.workDir ?? join(resolve(o.config.home), 'pipeline'),
    });
    await pipeline.resumeAll();
    const runner = pipeline;
    const alerts = alertReceiverOptionsFromConfig(o.config.alerts);
    app = await buildControlApp({
      controller,
      token: o.token,
      deployment: () => deployment.describe(),
      metrics,
      register,
      registry: o.registry,
      // Only the embedded database needs it (no other process can open it); PostgreSQL is open to the CLI itself.
      ...(o.config.databaseUrl ? {} : { database: databaseOps({ config: o.config, db: o.db, trust: o.trust }) }),
      pipelineRuns: {
        list: (f) => listRuns(o.db, f as Parameters<typeof listRuns>[1]),
        show: async (id) => ({ run: await getRun(o.db, id), steps: await listSteps(o.db, id) }),
        submit: (input) => runner.submit(input),
        retry: (id) => runner.retry(id),
        cancel: (id) => runner.cancel(id),
      },
      plugins: [
        (a) => {
          // Alertmanager authenticates with alerts.token; without one, the control-plane token (same file, same owner).
          registerAlertReceiver(a, { ...alerts, token: alerts.token ?? o.token, db: o.db, trigger: runner, registry: metrics });
        },
      ],
    });
    const host = o.host ?? o.config.control.host;
    const port = o.port ?? o.config.control.port;
    await app.listen({ host, port });
    const addr = app.server.address();
    const url = typeof addr === 'object' && addr ? `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}` : `http://${host}:${port}`;
    const resumed = await controller.resumeAll();
    if (resumed.length) log().info({ event: 'rollouts_resumed', rollouts: resumed.map((r) => r.id) }, 'resumed active rollouts');
    const plane: ControlPlane = {
      url,
      gateways,
      deployment,
      controller,
      pipeline: pipeline!,
      app,
      async close() {
        await pipeline?.close();
        await controller.close();
        await stopBackups?.();
        await app!.close();
        await deployment.close();
      },
    };
    return plane;
  } catch (err) {
    await pipeline?.close().catch(() => undefined);
    await controller.close().catch(() => undefined);
    await stopBackups?.().catch(() => undefined);
    await app?.close().catch(() => undefined);
    await deployment.close().catch(() => undefined);
    throw err;
  }
}
