/**
 * `npm run bench -- alerts [--n=2000] [--storm=10000] [--concurrency=16]`:
 * the Alertmanager receiver (POST /alertmanager: bearer token, schema,
 * one transaction storing notification + alerts + decisions, trigger call
 * after commit) on the embedded PGlite database, and on PostgreSQL when
 * AEGIS_TEST_DATABASE_URL is set (scripts/services.sh), measured in the
 * same run against two baselines:
 *  - the same fastify route doing nothing (reads the body, answers 200): the HTTP cost;
 *  - a plain INSERT loop of the same payloads into a jsonb table (one
 *    autocommit INSERT each, `concurrency` at a time): the storage floor.
 * Workloads: `n` distinct notifications (each a new ModelDrift alert for one
 * model: the first starts a run, the rest are held by the cooldown, all are
 * stored), then a storm of `storm` identical deliveries of the seed payload,
 * which must end in exactly one run. Closed loop, `concurrency` requests in
 * flight over keep-alive connections; client and server share the 2 cores.
 */
import '../src/test-support/services-env.js';
import { randomBytes } from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import pg from 'pg';
import { Pool } from 'undici';
import { registerAlertReceiver } from '../src/alerts/receiver.js';
import { FakePipeline, payload, SEED_PAYLOAD_TEXT, TEST_TOKEN } from '../src/alerts/test-support.js';
import { MEMORY, openDb, type Db } from '../src/db/index.js';
import { numberArg as arg, table } from './lib.js';

const HEADERS = { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'application/json' };

/** Sends every body once, `concurrency` in flight; returns seconds and the status codes seen. */
async function blast(url: string, bodies: (i: number) => string, count: number, concurrency: number): Promise<{ seconds: number; codes: Map<number, number> }> {
  const u = new URL(url);
  const pool = new Pool(u.origin, { connections: concurrency, pipelining: 1 });
  const codes = new Map<number, number>();
  let next = 0;
  const t0 = performance.now();
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= count) return;
      const res = await pool.request({ method: 'POST', path: u.pathname, headers: HEADERS, body: bodies(i) });
      await res.body.dump();
      codes.set(res.statusCode, (codes.get(res.statusCode) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = (performance.now() - t0) / 1000;
  await pool.close();
  return { seconds, codes };
}

async function insertLoop(db: Db, bodies: (i: number) => string, count: number, concurrency: number): Promise<number> {
  await db.query('CREATE TABLE IF NOT EXISTS bench_plain (id bigserial PRIMARY KEY, payload jsonb NOT NULL, received_at timestamptz NOT NULL DEFAULT now())');
  let next = 0;
  const t0 = performance.now();
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= count) return;
      await db.query('INSERT INTO bench_plain (payload) VALUES ($1::jsonb)', [bodies(i)]);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return (performance.now() - t0) / 1000;
}

async function noopApp(): Promise<FastifyInstance> {
  const app = Fastify({ logger: false });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
  app.post('/alertmanager', async () => ({ status: 'ok' }));
  await app.listen({ host: '127.0.0.1', port: 0 });
  return app;
}

function check(what: string, ok: boolean, detail: string): void {
  if (!ok) throw new Error(`${what}: ${detail}`);
}

const rate = (n: number, s: number) => `${Math.round(n / s)}/s`;

async function measure(label: string, db: Db, o: { n: number; storm: number; concurrency: number }): Promise<string[][]> {
  const distinct = (i: number) => JSON.stringify(payload([{ labels: { model: 'bench', pod: `pod-${i}` }, startsAt: '2025-01-01T00:00:00Z' }]));
  const pipeline = new FakePipeline();
  const app = Fastify({ logger: false });
  await registerAlertReceiver(app, { db, trigger: pipeline, token: TEST_TOKEN, drainIntervalMs: 0 });
  const url = `${await app.listen({ host: '127.0.0.1', port: 0 })}/alertmanager`;
  const noop = await noopApp();
  const noopUrl = `http://127.0.0.1:${(noop.server.address() as { port: number }).port}/alertmanager`;
  try {
    // Warm-up (JIT, connections, the database's caches): distinct bodies not reused below.
    await blast(url, (i) => JSON.stringify(payload([{ labels: { model: 'warmup', pod: `w${i}` } }])), 200, o.concurrency);
    await blast(noopUrl, distinct, 200, o.concurrency);
    await db.query('TRUNCATE alert_notifications, alerts, retrain_triggers RESTART IDENTITY CASCADE');
    pipeline.calls.length = 0;
    pipeline.runs.clear();

    const base = await blast(noopUrl, distinct, o.n, o.concurrency);
    const plain = await insertLoop(db, distinct, o.n, o.concurrency);
    const rx = await blast(url, distinct, o.n, o.concurrency);
    check('distinct notifications', rx.codes.get(200) === o.n, `answers ${JSON.stringify([...rx.codes])}`);
    const stored = await db.query<{ n: number; a: number; t: number }>(
      'SELECT (SELECT count(*)::int FROM alert_notifications) AS n, (SELECT count(*)::int FROM alerts) AS a, (SELECT count(*)::int FROM retrain_triggers) AS t',
    );
    check('distinct notifications persisted', stored.rows[0]!.n === o.n && stored.rows[0]!.a === o.n, JSON.stringify(stored.rows[0]));
    check('distinct notifications runs', pipeline.runCount === 1, `${pipeline.runCount} runs`);

    await db.query('TRUNCATE alert_notifications, alerts, retrain_triggers RESTART IDENTITY CASCADE');
    pipeline.calls.length = 0;
    pipeline.runs.clear();
    const stormBase = await blast(noopUrl, () => SEED_PAYLOAD_TEXT, o.storm, o.concurrency);
    const storm = await blast(url, () => SEED_PAYLOAD_TEXT, o.storm, o.concurrency);
    check('storm', storm.codes.get(200) === o.storm, `answers ${JSON.stringify([...storm.codes])}`);
    const d = await db.query<{ deliveries: number }>('SELECT deliveries FROM alert_notifications');
    check('storm persisted', d.rows.length === 1 && d.rows[0]!.deliveries === o.storm, JSON.stringify(d.rows));
    check('storm runs', pipeline.runCount === 1 && pipeline.calls.length === 1, `${pipeline.runCount} runs, ${pipeline.calls.length} start calls`);

    return [
      [label, `${o.n} distinct`, rate(o.n, rx.seconds), rate(o.n, base.seconds), `${(base.seconds / rx.seconds).toFixed(2)}x`, rate(o.n, plain), `${(plain / rx.seconds).toFixed(2)}x`, '1'],
      [label, `${o.storm} duplicates`, rate(o.storm, storm.seconds), rate(o.storm, stormBase.seconds), `${(stormBase.seconds / storm.seconds).toFixed(2)}x`, '', '', String(pipeline.runCount)],
    ];
  } finally {
    await app.close();
    await noop.close();
  }
}

export async function main(args: string[]): Promise<void> {
  const o = { n: arg(args, 'n', 2000), storm: arg(args, 'storm', 10_000), concurrency: arg(args, 'concurrency', 16) };
  process.env.AEGIS_LOG_LEVEL ??= 'error';
  const rows: string[][] = [['database', 'workload', 'receiver', 'no-op route', 'vs no-op', 'plain INSERT', 'vs INSERT', 'runs']];

  const lite = await openDb({ url: MEMORY });
  try {
    rows.push(...(await measure('PGlite', lite, o)));
  } finally {
    await lite.close();
  }

  const adminUrl = process.env.AEGIS_TEST_DATABASE_URL;
  if (adminUrl) {
    const admin = new pg.Client({ connectionString: adminUrl });
    await admin.connect();
    const name = `aegis_bench_alerts_${randomBytes(4).toString('hex')}`;
    await admin.query(`CREATE DATABASE ${name}`);
    try {
      const u = new URL(adminUrl);
      u.pathname = `/${name}`;
      const db = await openDb({ url: u.toString() });
      try {
        rows.push(...(await measure('PostgreSQL', db, o)));
      } finally {
        await db.close();
      }
    } finally {
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
    }
  } else {
    process.stderr.write('AEGIS_TEST_DATABASE_URL is not set: PostgreSQL skipped (run scripts/services.sh)\n');
  }

  process.stdout.write(`alerts benchmark: POST /alertmanager, accepted and persisted webhooks per second, ${o.concurrency} in flight\n`);
  process.stdout.write(`${table(rows)}\n`);
  process.stdout.write('vs no-op: receiver throughput / the same fastify route doing nothing; vs INSERT: / one plain jsonb INSERT per payload (higher is better; 1.00x = as fast)\n');
}
