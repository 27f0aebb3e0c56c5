/**
 * The receiver on real services (scripts/services.sh):
 *  - PostgreSQL (AEGIS_TEST_DATABASE_URL): two receiver processes' worth of
 *    state — two fastify apps listening on real ports, each with its own
 *    connection pool — share one database; 200 concurrent deliveries of the
 *    same alert, split between them, start exactly one run, and a storm of
 *    distinct alerts for several models starts one run under the cap;
 *  - Alertmanager (ALERTMANAGER_URL, whose webhook receiver posts to
 *    AEGIS_ALERTMANAGER_WEBHOOK_URL): an alert posted to Alertmanager reaches
 *    the receiver as a real webhook and starts one run, and Alertmanager's own
 *    fingerprint equals the one the receiver derives for payloads without one.
 * The services' Alertmanager sends no token (its config has no http_config),
 * so that receiver runs with allowUnauthenticated on loopback.
 * No services → every test fails with the reason (never skipped).
 */
import { randomBytes } from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDb, type Db } from '../db/index.js';
import { labelsFingerprint } from './fingerprint.js';
import { registerAlertReceiver, type AlertReceiverOptions } from './receiver.js';
import { FakePipeline, payload, SEED_PAYLOAD_TEXT, TEST_TOKEN } from './test-support.js';

const ADMIN_URL = process.env.AEGIS_TEST_DATABASE_URL;
const ALERTMANAGER_URL = process.env.ALERTMANAGER_URL;
const WEBHOOK_URL = process.env.AEGIS_ALERTMANAGER_WEBHOOK_URL;
const SERVICES_HINT = 'start the test services with scripts/services.sh (it writes .services/env.sh, which the integration tests read)';

let admin: pg.Client | undefined;
const created: string[] = [];

async function freshDatabaseUrl(): Promise<string> {
  const name = `aegis_alerts_${randomBytes(4).toString('hex')}`;
  await admin!.query(`CREATE DATABASE ${name}`);
  created.push(name);
  const u = new URL(ADMIN_URL!);
  u.pathname = `/${name}`;
  return u.toString();
}

beforeAll(async () => {
  if (!ADMIN_URL) throw new Error(`AEGIS_TEST_DATABASE_URL is not set: ${SERVICES_HINT}`);
  const client = new pg.Client({ connectionString: ADMIN_URL, connectionTimeoutMillis: 10_000 });
  await client.connect().catch((err: unknown) => {
    throw new Error(`PostgreSQL does not answer at AEGIS_TEST_DATABASE_URL (${(err as Error).message}): ${SERVICES_HINT}`, { cause: err });
  });
  admin = client;
});

afterAll(async () => {
  if (!admin) return;
  for (const name of created) await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.end();
});

interface Instance {
  app: FastifyInstance;
  db: Db;
  url: string;
}

/** One receiver "process": its own pool and HTTP listener on the shared database. */
async function instance(dbUrl: string, pipeline: FakePipeline, options: Partial<AlertReceiverOptions> = {}, listen = { host: '127.0.0.1', port: 0 }): Promise<Instance> {
  const db = await openDb({ url: dbUrl });
  const app = Fastify({ logger: false });
  await registerAlertReceiver(app, { db, trigger: pipeline, token: TEST_TOKEN, drainIntervalMs: 0, ...options });
  const address = await app.listen(listen);
  return { app, db, url: `${address}/alertmanager` };
}

async function closeAll(list: Instance[]): Promise<void> {
  for (const i of list) {
    await i.app.close();
    await i.db.close();
  }
}

async function send(url: string, body: string): Promise<number> {
  const res = await fetch(url, { method: 'POST', headers: { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'application/json' }, body });
  await res.arrayBuffer();
  return res.status;
}

describe('alert receiver on PostgreSQL, two instances sharing the database', () => {
  it('200 concurrent deliveries of the seed payload across both instances start exactly one run', async () => {
    const dbUrl = await freshDatabaseUrl();
    const pipeline = new FakePipeline(); // the pipeline is not built yet: a fake shared by both instances
    const nodes = [await instance(dbUrl, pipeline), await instance(dbUrl, pipeline)];
    try {
      const codes = await Promise.all(Array.from({ length: 200 }, (_, i) => send(nodes[i % 2]!.url, SEED_PAYLOAD_TEXT)));
      expect(codes.filter((c) => c !== 200)).toEqual([]);
      expect(pipeline.calls).toHaveLength(1);
      const db = nodes[0]!.db;
      expect((await db.query('SELECT state FROM retrain_triggers')).rows).toEqual([{ state: 'started' }]);
      expect((await db.query('SELECT deliveries FROM alert_notifications')).rows).toEqual([{ deliveries: 200 }]);
      expect(await db.query('SELECT count(*)::int AS n FROM alerts').then((r) => r.rows)).toEqual([{ n: 1 }]);
    } finally {
      await closeAll(nodes);
    }
  });

  it('a concurrent storm of distinct alerts for several models starts one run (cap 1)', async () => {
    const dbUrl = await freshDatabaseUrl();
    const pipeline = new FakePipeline();
    const nodes = [await instance(dbUrl, pipeline), await instance(dbUrl, pipeline)];
    try {
      const bodies = Array.from({ length: 200 }, (_, i) =>
        JSON.stringify(payload([{ labels: { model: `m${i % 7}`, pod: `p${i}` } }, { labels: { model: `m${(i + 3) % 7}`, pod: `q${i}` } }])),
      );
      const codes = await Promise.all(bodies.map((b, i) => send(nodes[i % 2]!.url, b)));
      expect(codes.filter((c) => c !== 200)).toEqual([]);
      expect(pipeline.runCount).toBe(1);
      const decisions = await nodes[0]!.db.query<{ decision: string; n: number }>('SELECT decision, count(*)::int AS n FROM alerts GROUP BY decision ORDER BY decision');
      expect(decisions.rows.reduce((s, r) => s + r.n, 0)).toBe(400);
      expect(decisions.rows.find((r) => r.decision === 'triggered')?.n).toBe(1);
    } finally {
      await closeAll(nodes);
    }
  });
});

describe('alert receiver behind a real Alertmanager', () => {
  it('an alert posted to Alertmanager reaches the receiver and starts one run; the fingerprints agree', async () => {
    if (!ALERTMANAGER_URL || !WEBHOOK_URL) throw new Error(`ALERTMANAGER_URL / AEGIS_ALERTMANAGER_WEBHOOK_URL are not set: ${SERVICES_HINT}`);
    const hook = new URL(WEBHOOK_URL);
    const dbUrl = await freshDatabaseUrl();
    const pipeline = new FakePipeline();
    let node: Instance;
    try {
      node = await instance(dbUrl, pipeline, { token: undefined, allowUnauthenticated: true, path: hook.pathname }, { host: hook.hostname, port: Number(hook.port) });
    } catch (err) {
      throw new Error(`cannot listen on ${hook.host} for Alertmanager's webhook (is another test using it?): ${(err as Error).message}`, { cause: err });
    }
    const model = `itest-${randomBytes(3).toString('hex')}`;
    const labels = { alertname: 'ModelDrift', severity: 'critical', model, version: '1.0.0' };
    const post = (endsAt?: string) =>
      fetch(`${ALERTMANAGER_URL}/api/v2/alerts`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify([{ labels, annotations: { summary: 'drift (alerts.itest)', dataset_uri: 's3://bucket/datasets/x/' }, ...(endsAt ? { endsAt } : {}) }]),
      });
    try {
      const res = await post();
      expect(res.status, await res.text()).toBe(200);
      // group_wait is 1 s in the services' config; allow for a loaded machine.
      const deadline = Date.now() + 30_000;
      let rows: { fingerprint: string; derived: boolean; decision: string }[] = [];
      while (Date.now() < deadline) {
        rows = (await node.db.query<{ fingerprint: string; derived: boolean; decision: string }>('SELECT fingerprint, fingerprint_derived AS derived, decision FROM alerts WHERE model = $1', [model])).rows;
        if (rows.length > 0 && pipeline.calls.some((c) => c.model === model)) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      // Alertmanager sent its own fingerprint; the receiver's derivation (for old payloads) gives the same.
      expect(rows).toEqual([{ fingerprint: labelsFingerprint(labels), derived: false, decision: 'triggered' }]);
      const mine = pipeline.calls.filter((c) => c.model === model);
      expect(mine).toHaveLength(1);
      expect(mine[0]).toMatchObject({ version: '1.0.0', datasetUri: 's3://bucket/datasets/x/' });
    } finally {
      await post(new Date().toISOString()).catch(() => undefined); // resolve it in Alertmanager
      await closeAll([node]);
    }
  });
});
