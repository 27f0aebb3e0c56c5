import type { FastifyInstance } from 'fastify';
import { Registry as MetricsRegistry } from 'prom-client';
import { platformPaths, type AegisConfig } from '../config/index.js';
import type { Db } from '../db/types.js';
import { childLogger } from '../log.js';
import type { Registry } from '../registry/index.js';
import { RolloutController } from '../rollout/controller/index.js';
import { DbRolloutStore } from '../rollout/store/index.js';
import type { ArtifactStore } from '../store/types.js';
import { buildControlApp } from './app.js';
import { LocalDeployment } from './deployment.js';
import { RegistryStages } from './stages.js';
import { registerArchive } from './register.js';
import type { TrustAnchor } from '../signing/trust.js';

export { ControlClient } from './client.js';
export { controlToken } from './token.js';
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
}

export interface ControlPlane {
  /** The control API's URL. */
  url: string;
  /** Gateway URL per served model. */
  gateways: Record<string, string>;
  deployment: LocalDeployment;
  controller: RolloutController;
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
      const { openStore } = await import('../store/index.js');
      const { BackupScheduler, backupJob } = await import('../backup/scheduler.js');
      const { DbBackupRunLog } = await import('../backup/runs.js');
      const store = o.backupStore ?? openStore(o.config.backup.storeUri ?? platformPaths(o.config).store);
      const scheduler = new BackupScheduler({
        schedule: o.config.backup.schedule,
        backup: backupJob({
          source: o.config.databaseUrl ? { db: o.db, url: o.config.databaseUrl } : { db: o.db },
          store,
          tools: { pgDump: o.config.backup.pgDumpPath, pgRestore: o.config.backup.pgRestorePath },
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
    app = await buildControlApp({ controller, token: o.token, deployment: () => deployment.describe(), metrics, register });
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
      app,
      async close() {
        await controller.close();
        await stopBackups?.();
        await app!.close();
        await deployment.close();
      },
    };
    return plane;
  } catch (err) {
    await controller.close().catch(() => undefined);
    await stopBackups?.().catch(() => undefined);
    await app?.close().catch(() => undefined);
    await deployment.close().catch(() => undefined);
    throw err;
  }
}
