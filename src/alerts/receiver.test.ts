import Fastify from 'fastify';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { openMemoryDb, type Db } from '../db/index.js';
import { isAegisError } from '../errors.js';
import { signBody } from './auth.js';
import { labelsFingerprint } from './fingerprint.js';
import { registerAlertReceiver } from './receiver.js';
import { listRetrainTriggers, MAX_START_ATTEMPTS, recordRetrainFinished } from './store.js';
import { FakePipeline, payload, receiverApp, SEED_PAYLOAD_TEXT, TEST_TOKEN, type TestReceiver } from './test-support.js';

// The receiver on the embedded database (in-memory PGlite), through fastify inject.
// The retrain pipeline is not built yet: FakePipeline (a fake, named as such) records the start calls.

let db: Db;
let t: TestReceiver;
const auth = { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'application/json' };

// One database for the file (opening PGlite is the slow part), emptied before each test.
beforeAll(async () => {
  db = await openMemoryDb();
}, 60_000);
afterAll(async () => {
  await db.close();
});
beforeEach(async () => {
  await db.query('TRUNCATE alert_notifications, alerts, retrain_triggers RESTART IDENTITY CASCADE');
});
afterEach(async () => {
  await t?.app.close();
});

function post(body: unknown, headers: Record<string, string> = auth, app = t.app) {
  return app.inject({ method: 'POST', url: '/alertmanager', headers, payload: typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body) });
}

async function count(table: string): Promise<number> {
  const r = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`);
  return r.rows[0]!.n;
}

async function nothingStored(): Promise<void> {
  expect(await count('alert_notifications')).toBe(0);
  expect(await count('alerts')).toBe(0);
  expect(await count('retrain_triggers')).toBe(0);
}

async function metric(name: string, labels = ''): Promise<number> {
  const text = await t.registry.metrics();
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  return line ? Number(line.split(' ')[1]) : 0;
}

describe('alert receiver: authentication', () => {
  it('refuses to start without a token unless allowUnauthenticated is set', async () => {
    const app = Fastify();
    const err = await registerAlertReceiver(app, { db, trigger: new FakePipeline() }).catch((e: unknown) => e);
    expect(isAegisError(err, 'ALERT_RECEIVER_UNSECURED')).toBe(true);
    expect((err as Error & { hint: string }).hint).toMatch(/AEGIS_ALERTS_TOKEN/);
    await app.close();
  });

  it('accepts webhooks without a token only when allowUnauthenticated is set explicitly', async () => {
    t = await receiverApp(db, { token: undefined, allowUnauthenticated: true });
    const res = await post(payload([{}]), { 'content-type': 'application/json' });
    expect(res.statusCode).toBe(200);
    expect(t.pipeline.runCount).toBe(1);
  });

  it('answers 401 with WWW-Authenticate for a missing or wrong bearer token, and stores nothing', async () => {
    t = await receiverApp(db);
    const missing = await post(payload([{}]), { 'content-type': 'application/json' });
    expect(missing.statusCode).toBe(401);
    expect(missing.headers['www-authenticate']).toMatch(/^Bearer realm="aegis-alertmanager"$/);
    expect(missing.json().hint).toMatch(/http_config.authorization/);
    for (const token of ['wrong', `${TEST_TOKEN}x`, TEST_TOKEN.toUpperCase()]) {
      const wrong = await post(payload([{}]), { authorization: `Bearer ${token}`, 'content-type': 'application/json' });
      expect(wrong.statusCode).toBe(401);
      expect(wrong.headers['www-authenticate']).toMatch(/error="invalid_token"/);
    }
    const basic = await post(payload([{}]), { authorization: `Basic ${Buffer.from(`x:${TEST_TOKEN}`).toString('base64')}`, 'content-type': 'application/json' });
    expect(basic.statusCode).toBe(401);
    await nothingStored();
    expect(t.pipeline.calls).toHaveLength(0);
    expect(await metric('aegis_alert_notifications_rejected_total', '{reason="unauthorized"}')).toBe(5);
  });

  it('checks the token before the body: an unauthenticated oversized body gets 401, not 413', async () => {
    t = await receiverApp(db, { bodyLimitBytes: 1024 });
    const res = await post('x'.repeat(10_000), { 'content-type': 'application/json' });
    expect(res.statusCode).toBe(401);
  });

  it('requires the HMAC header when a secret is configured: missing or wrong → 401, right → 200', async () => {
    const secret = 'hmac-secret-0123456789';
    t = await receiverApp(db, { hmacSecret: secret, hmacHeader: 'X-Aegis-Signature' });
    const body = JSON.stringify(payload([{}]));
    const missing = await post(body);
    expect(missing.statusCode).toBe(401);
    expect(missing.headers['www-authenticate']).toMatch(/header="x-aegis-signature"/);
    const wrongSecret = await post(body, { ...auth, 'x-aegis-signature': signBody('another-secret-0123456789', body) });
    expect(wrongSecret.statusCode).toBe(401);
    const otherBody = await post(body, { ...auth, 'x-aegis-signature': signBody(secret, `${body} `) });
    expect(otherBody.statusCode).toBe(401);
    const malformed = await post(body, { ...auth, 'x-aegis-signature': 'sha256=nothex' });
    expect(malformed.statusCode).toBe(401);
    await nothingStored();
    const noToken = await post(body, { 'content-type': 'application/json', 'x-aegis-signature': signBody(secret, body) });
    expect(noToken.statusCode).toBe(401);
    const right = await post(body, { ...auth, 'x-aegis-signature': signBody(secret, body) });
    expect(right.statusCode).toBe(200);
    expect(t.pipeline.runCount).toBe(1);
  });
});

describe('alert receiver: malformed and oversized payloads', () => {
  beforeEach(async () => {
    t = await receiverApp(db, { bodyLimitBytes: 4096 });
  });

  it('answers 400 for a body that is not JSON, empty, or not an object', async () => {
    for (const body of ['{"version": "4", ', 'not json', '']) {
      const res = await post(body);
      expect(res.statusCode, body).toBe(400);
      expect(res.json().field).toBe('(body)');
    }
    const arr = await post('[1,2]');
    expect(arr.statusCode).toBe(400);
    expect(arr.json().error).toMatch(/JSON object/);
    await nothingStored();
    expect(await metric('aegis_alert_notifications_rejected_total', '{reason="invalid"}')).toBe(4);
  });

  it('answers 400 naming the offending field', async () => {
    const cases: [unknown, string][] = [
      [{ ...payload([{}]), alerts: [{ ...(payload([{}]).alerts as object[])[0]!, labels: 'ModelDrift' }] }, 'alerts[0].labels'],
      [{ ...payload([{}, {}]), alerts: [(payload([{}]).alerts as object[])[0]!, { ...(payload([{}]).alerts as object[])[0]!, startsAt: 'yesterday' }] }, 'alerts[1].startsAt'],
      [{ ...payload([{}]), alerts: [{ ...(payload([{}]).alerts as object[])[0]!, labels: { alertname: 7 } }] }, 'alerts[0].labels.alertname'],
      [{ ...payload([{}]), status: 'exploded' }, 'status'],
      [{ ...payload([{}]), alerts: [] }, 'alerts'],
      [{ ...payload([{}]), alerts: undefined }, 'alerts'],
      [{ ...payload([{}]), alerts: [{ ...(payload([{}]).alerts as object[])[0]!, fingerprint: 'not hex!' }] }, 'alerts[0].fingerprint'],
    ];
    for (const [body, field] of cases) {
      const res = await post(body);
      expect(res.statusCode, field).toBe(400);
      expect(res.json().field).toBe(field);
      expect(res.json().error).toContain(field);
    }
    await nothingStored();
  });

  it('answers 400 with a hint for a payload version other than "4"', async () => {
    for (const version of ['3', 4, undefined]) {
      const res = await post({ ...payload([{}]), version });
      expect(res.statusCode).toBe(400);
      expect(res.json().field).toBe('version');
      expect(res.json().error).toMatch(/version must be "4"/);
      expect(res.json().hint).toMatch(/version "4"/);
    }
    await nothingStored();
  });

  it('answers 400 for NUL characters, which the database cannot store', async () => {
    const res = await post(payload([{ labels: { model: 'a\u0000b' } }]));
    expect(res.statusCode).toBe(400);
    await nothingStored();
  });

  it('answers 413 for a body over the limit, and stores nothing', async () => {
    const big = payload([{ annotations: { description: 'x'.repeat(5000) } }]);
    const res = await post(big);
    expect(res.statusCode).toBe(413);
    expect(res.json().error).toMatch(/4096-byte limit/);
    expect(res.json().hint).toMatch(/bodyLimitBytes/);
    await nothingStored();
    expect(await metric('aegis_alert_notifications_rejected_total', '{reason="too_large"}')).toBe(1);
  });

  it('tolerates fields newer Alertmanagers add and stores the raw payload with them', async () => {
    const body = payload([{}], { groupId: 'abc', futureField: { nested: [1, 2] } });
    (body.alerts as Record<string, unknown>[])[0]!.silencedBy = [];
    const res = await post(body);
    expect(res.statusCode).toBe(200);
    const stored = await db.query<{ payload: Record<string, unknown> }>('SELECT payload FROM alert_notifications');
    expect(stored.rows[0]!.payload.futureField).toEqual({ nested: [1, 2] });
  });

  it('accepts the body whatever the content type (curl --data sends a form type)', async () => {
    const res = await post(SEED_PAYLOAD_TEXT, { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'application/x-www-form-urlencoded' });
    expect(res.statusCode).toBe(200);
    expect(t.pipeline.runCount).toBe(1);
  });
});

describe('alert receiver: the seed payload and duplicate storms', () => {
  it('the seed sample payload starts exactly one run; posting it 100 times more starts none', async () => {
    t = await receiverApp(db);
    const first = await post(SEED_PAYLOAD_TEXT);
    expect(first.statusCode).toBe(200);
    expect(first.json()).toMatchObject({ status: 'accepted', alerts: [{ decision: 'triggered', status: 'firing' }], triggers: [{ state: 'started', runId: 'run-1' }] });
    expect(t.pipeline.calls).toHaveLength(1);
    expect(t.pipeline.calls[0]).toMatchObject({
      datasetUri: 's3://my-staging-bucket/datasets/cifar/v2/',
      alert: { alertname: 'ModelDrift', startsAt: '2025-01-01T00:00:00Z', fingerprint: labelsFingerprint({ alertname: 'ModelDrift', severity: 'critical' }) },
    });
    expect(t.pipeline.calls[0]!.model).toBeUndefined();

    for (let i = 0; i < 100; i++) {
      const again = await post(SEED_PAYLOAD_TEXT);
      expect(again.statusCode).toBe(200);
      expect(again.json()).toMatchObject({ status: 'duplicate', triggers: [] });
    }
    expect(t.pipeline.calls).toHaveLength(1);
    expect(await count('retrain_triggers')).toBe(1);
    const n = await db.query<{ deliveries: number }>('SELECT deliveries FROM alert_notifications');
    expect(n.rows).toEqual([{ deliveries: 101 }]);
    expect(await metric('aegis_alert_notifications_accepted_total')).toBe(1);
    expect(await metric('aegis_alert_notifications_deduplicated_total')).toBe(100);
  });

  it('a storm of 200 concurrent copies of one alert ends in exactly one run', async () => {
    t = await receiverApp(db);
    const res = await Promise.all(Array.from({ length: 200 }, () => post(payload([{ labels: { model: 'fraud' } }]))));
    expect(res.every((r) => r.statusCode === 200)).toBe(true);
    expect(t.pipeline.calls).toHaveLength(1);
    expect(await count('retrain_triggers')).toBe(1);
  });

  it('dedups on fingerprint + startsAt: re-sends with a changed body and old payloads without a fingerprint are the same alert', async () => {
    t = await receiverApp(db);
    const labels = { alertname: 'ModelDrift', severity: 'critical', model: 'fraud' };
    expect((await post(payload([{ labels }]))).statusCode).toBe(200);
    // A newer Alertmanager re-sends it with its fingerprint and another groupKey: the same alert.
    const resend = await post(payload([{ labels, fingerprint: labelsFingerprint(labels) }], { groupKey: 'other' }));
    expect(resend.json().status).toBe('duplicate');
    // The same labels firing again later (a new startsAt) are a new alert, held back by the cooldown.
    const later = await post(payload([{ labels, startsAt: '2025-01-02T00:00:00.123456789Z' }]));
    expect(later.json()).toMatchObject({ status: 'accepted', alerts: [{ decision: 'cooldown', startsAt: '2025-01-02T00:00:00.123456789Z' }] });
    expect(t.pipeline.runCount).toBe(1);
    expect(await count('alerts')).toBe(2);
  });
});

describe('alert receiver: filters', () => {
  it('considers every alert in the payload, not only the first', async () => {
    t = await receiverApp(db, { maxConcurrentRetrains: 5 });
    const res = await post(
      payload([
        { alertname: 'HighLatency', labels: { model: 'a' } },
        { alertname: 'ModelDrift', labels: { model: 'b' } },
        { alertname: 'ModelDrift', labels: { model: 'c' } },
      ]),
    );
    expect(res.statusCode).toBe(200);
    expect(t.pipeline.calls.map((c) => c.model).sort()).toEqual(['b', 'c']);
    const decisions = await db.query<{ model: string; decision: string }>('SELECT model, decision FROM alerts ORDER BY model');
    expect(decisions.rows).toEqual([
      { model: 'a', decision: 'ignored' },
      { model: 'b', decision: 'triggered' },
      { model: 'c', decision: 'triggered' },
    ]);
  });

  it('filters on alert names, severities and label matchers (=, !=, =~, !~)', async () => {
    t = await receiverApp(db, {
      maxConcurrentRetrains: 100,
      filters: { alertnames: ['ModelDrift', 'DataDrift'], severities: ['critical', 'page'], matchers: ['env="prod"', 'model=~"fraud-.*"', 'model!~".*-test"', 'team!="sandbox"'] },
    });
    const cases: [Record<string, string>, boolean][] = [
      [{ alertname: 'ModelDrift', severity: 'critical', env: 'prod', model: 'fraud-eu' }, true],
      [{ alertname: 'DataDrift', severity: 'page', env: 'prod', model: 'fraud-us', team: 'risk' }, true],
      [{ alertname: 'Other', severity: 'critical', env: 'prod', model: 'fraud-eu' }, false],
      [{ alertname: 'ModelDrift', severity: 'warning', env: 'prod', model: 'fraud-eu' }, false],
      [{ alertname: 'ModelDrift', severity: 'critical', env: 'staging', model: 'fraud-eu' }, false],
      [{ alertname: 'ModelDrift', severity: 'critical', env: 'prod', model: 'xfraud-eu' }, false], // regexes are anchored
      [{ alertname: 'ModelDrift', severity: 'critical', env: 'prod', model: 'fraud-eu-test' }, false],
      [{ alertname: 'ModelDrift', severity: 'critical', env: 'prod', model: 'fraud-eu', team: 'sandbox' }, false],
      [{ alertname: 'ModelDrift', severity: 'critical', model: 'fraud-eu' }, false], // missing label = ""
    ];
    for (const [i, [labels, starts]] of cases.entries()) {
      const res = await post({ ...payload([]), alerts: [{ status: 'firing', labels, annotations: {}, startsAt: `2025-01-01T00:00:0${i}Z` }] });
      expect(res.statusCode).toBe(200);
      expect(res.json().alerts[0].decision, JSON.stringify(labels)).toBe(starts ? 'triggered' : 'ignored');
    }
    expect(t.pipeline.runCount).toBe(2);
  });

  it('refuses to start with a malformed matcher, naming it', async () => {
    const app = Fastify();
    for (const matcher of ['model', 'model=~"("', '=x']) {
      const err = await registerAlertReceiver(app, { db, trigger: new FakePipeline(), token: TEST_TOKEN, filters: { alertnames: ['ModelDrift'], severities: [], matchers: [matcher] } }).catch((e: unknown) => e);
      expect(isAegisError(err, 'CONFIG_INVALID'), matcher).toBe(true);
      expect((err as Error).message).toContain(JSON.stringify(matcher));
    }
    await app.close();
  });
});

describe('alert receiver: resolved notifications, cooldown, concurrency', () => {
  it('records resolved notifications without starting a run', async () => {
    t = await receiverApp(db);
    await post(payload([{ labels: { model: 'fraud' } }]));
    const resolved = await post(payload([{ labels: { model: 'fraud' }, status: 'resolved' }]));
    expect(resolved.json()).toMatchObject({ status: 'accepted', alerts: [{ status: 'resolved', decision: 'triggered' }], triggers: [] });
    // Resolved without ever being seen firing: recorded, no run.
    const unseen = await post(payload([{ labels: { model: 'other' }, status: 'resolved' }]));
    expect(unseen.json()).toMatchObject({ status: 'accepted', alerts: [{ status: 'resolved', decision: 'resolved' }], triggers: [] });
    const rows = await db.query<{ model: string; status: string; ends_at: Date | null; resolved_at: Date | null }>('SELECT model, status, ends_at, resolved_at FROM alerts ORDER BY model');
    expect(rows.rows.map((r) => [r.model, r.status, r.ends_at?.toISOString(), r.resolved_at !== null])).toEqual([
      ['fraud', 'resolved', '2025-01-01T01:00:00.000Z', true],
      ['other', 'resolved', '2025-01-01T01:00:00.000Z', true],
    ]);
    expect(t.pipeline.runCount).toBe(1);
    // A late firing re-send of the resolved alert does not bring it back.
    expect((await post(payload([{ labels: { model: 'fraud' } }]))).json().status).toBe('duplicate');
  });

  it('holds further runs of a model during its cooldown; a re-sent alert starts one after it', async () => {
    t = await receiverApp(db, { cooldownSeconds: 3600, maxConcurrentRetrains: 10 });
    await post(payload([{ labels: { model: 'fraud', feature: 'amount' } }]));
    const second = await post(payload([{ labels: { model: 'fraud', feature: 'country' } }]));
    expect(second.json().alerts[0].decision).toBe('cooldown');
    const otherModel = await post(payload([{ labels: { model: 'churn' } }]));
    expect(otherModel.json().alerts[0].decision).toBe('triggered');
    expect(t.pipeline.runCount).toBe(2);
    // Still cooling: Alertmanager's repeat of the held alert starts nothing.
    expect((await post(payload([{ labels: { model: 'fraud', feature: 'country' } }]))).json().triggers).toEqual([]);
    // Two hours later (moved back in the database, the clock the cooldown reads) the repeat starts one.
    await db.query(`UPDATE retrain_triggers SET created_at = created_at - interval '2 hours'`);
    const repeat = await post(payload([{ labels: { model: 'fraud', feature: 'country' } }]));
    expect(repeat.json()).toMatchObject({ status: 'accepted', alerts: [{ decision: 'triggered' }], triggers: [{ state: 'started' }] });
    expect(t.pipeline.runCount).toBe(3);
  });

  it('caps concurrent retrains; a finished run frees the slot for the held alert', async () => {
    t = await receiverApp(db, { maxConcurrentRetrains: 1 });
    const a = await post(payload([{ labels: { model: 'a' } }]));
    const runA = a.json().triggers[0].runId as string;
    const b = await post(payload([{ labels: { model: 'b' } }]));
    expect(b.json().alerts[0].decision).toBe('concurrency_limit');
    expect((await post(payload([{ labels: { model: 'b' } }]))).json().triggers).toEqual([]);
    expect(await recordRetrainFinished(db, runA, 'succeeded')).toBe(1);
    const again = await post(payload([{ labels: { model: 'b' } }]));
    expect(again.json().alerts[0].decision).toBe('triggered');
    expect(t.pipeline.calls.map((c) => c.model)).toEqual(['a', 'b']);
  });

  it('an alert storm over many models and alerts starts one run (cap 1)', async () => {
    t = await receiverApp(db, { maxConcurrentRetrains: 1 });
    const res = await Promise.all(
      Array.from({ length: 100 }, (_, i) => post(payload([{ labels: { model: `m${i % 10}`, pod: `p${i}` } }, { labels: { model: `m${(i + 3) % 10}`, pod: `q${i}` } }]))),
    );
    expect(res.every((r) => r.statusCode === 200)).toBe(true);
    expect(t.pipeline.runCount).toBe(1);
    expect(await count('alerts')).toBe(200);
  });
});

describe('alert receiver: storage failures and recovery', () => {
  it('answers 5xx and acknowledges nothing when the notification cannot be stored', async () => {
    t = await receiverApp(db);
    // A real failure inside the transaction, after the notification and alert rows were written.
    await db.query(`CREATE FUNCTION fail_insert() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'disk full (test)'; END $$`);
    await db.query('CREATE TRIGGER fail_insert BEFORE INSERT ON retrain_triggers FOR EACH ROW EXECUTE FUNCTION fail_insert()');
    const res = await post(SEED_PAYLOAD_TEXT);
    expect(res.statusCode).toBe(503);
    expect(res.json().error).toMatch(/could not store.*disk full/);
    await nothingStored();
    expect(t.pipeline.calls).toHaveLength(0);
    expect(await metric('aegis_alert_notifications_rejected_total', '{reason="store_failed"}')).toBe(1);
    // Alertmanager retries; once the database is healthy the retry is the first delivery.
    await db.query('DROP TRIGGER fail_insert ON retrain_triggers');
    const retry = await post(SEED_PAYLOAD_TEXT);
    expect(retry.json()).toMatchObject({ status: 'accepted', deliveries: 1, triggers: [{ state: 'started' }] });
    expect(t.pipeline.runCount).toBe(1);
  });

  it('a trigger whose start failed stays pending and is started when the receiver starts again', async () => {
    const down = new FakePipeline();
    down.failWith = new Error('pipeline unreachable');
    t = await receiverApp(db, {}, down);
    const res = await post(SEED_PAYLOAD_TEXT);
    expect(res.statusCode).toBe(200); // stored: acknowledged, the trigger is retried from the database
    expect(res.json().triggers).toEqual([{ triggerId: 1, state: 'pending', error: 'pipeline unreachable' }]);
    expect((await listRetrainTriggers(db))[0]).toMatchObject({ state: 'pending', attempts: 1, lastError: 'pipeline unreachable' });
    // Still pending: the re-sends that follow are duplicates and start nothing more.
    for (let i = 0; i < 5; i++) await post(SEED_PAYLOAD_TEXT);
    await t.app.close();

    // A new process: the pending trigger is started during start-up (onReady).
    t = await receiverApp(db);
    expect(t.pipeline.calls).toHaveLength(1);
    expect(t.pipeline.calls[0]!.requestId).toBe(down.calls[0]!.requestId);
    expect((await listRetrainTriggers(db))[0]).toMatchObject({ state: 'started', runId: 'run-1', lastError: null });
    // Draining again does nothing: the run is started.
    expect(await t.receiver.drainPendingTriggers()).toEqual({ started: 0, pending: 0, failed: 0 });
    expect(t.pipeline.calls).toHaveLength(1);
  });

  it('a trigger left "starting" by a crash is retried once its claim times out, with the same request id', async () => {
    t = await receiverApp(db);
    await post(SEED_PAYLOAD_TEXT);
    const [row] = await listRetrainTriggers(db);
    // As if the process died after claiming the trigger, before recording the run id.
    await db.query(`UPDATE retrain_triggers SET state = 'starting', run_id = NULL WHERE id = $1`, [row!.id]);
    expect(await t.receiver.drainPendingTriggers()).toEqual({ started: 0, pending: 0, failed: 0 }); // claimed just now: someone may be calling
    await db.query(`UPDATE retrain_triggers SET claimed_at = claimed_at - interval '2 minutes' WHERE id = $1`, [row!.id]);
    expect(await t.receiver.drainPendingTriggers()).toEqual({ started: 1, pending: 0, failed: 0 });
    expect(t.pipeline.calls.map((c) => c.requestId)).toEqual([`alert-trigger-${row!.id}`, `alert-trigger-${row!.id}`]);
    expect(t.pipeline.runCount).toBe(1); // idempotent on requestId: one run
  });

  it(`gives a trigger up after ${MAX_START_ATTEMPTS} failed starts, freeing the concurrency slot`, async () => {
    const down = new FakePipeline();
    down.failWith = new Error('bad request');
    t = await receiverApp(db, {}, down);
    await post(payload([{ labels: { model: 'a' } }]));
    for (let i = 1; i < MAX_START_ATTEMPTS; i++) await t.receiver.drainPendingTriggers();
    expect((await listRetrainTriggers(db))[0]).toMatchObject({ state: 'failed', attempts: MAX_START_ATTEMPTS });
    expect(await t.receiver.drainPendingTriggers()).toEqual({ started: 0, pending: 0, failed: 0 });
    down.failWith = undefined;
    const b = await post(payload([{ labels: { model: 'b' } }]));
    expect(b.json().alerts[0].decision).toBe('triggered');
  });
});
