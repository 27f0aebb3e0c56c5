/**
 * The pure parts of backups: COPY text, dump scripts, ids, manifests,
 * retention, the scheduler (with fake timers: no waiting), tool discovery.
 */
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Registry as PromRegistry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AegisError, isAegisError } from '../errors.js';
import { tempDir } from '../test-support/fs.js';
import type { BackupResult } from './backup.js';
import { compareIds } from './catalog.js';
import { decodeField, decodeRow, encodeField, encodeRow, normalizeQualified, parseCopyLine, parseSetvalLine, readScript, setvalLine, copyLine, type ScriptItem } from './copy-text.js';
import { backupIdAt, backupIdTime, isBackupId, parseManifest, serializeManifest } from './manifest.js';
import { checkToolVersion, connection, findPgTool } from './pgtools.js';
import { isoWeekOf, planRetention } from './retention.js';
import type { BackupRun, BackupRunLog } from './runs.js';
import { BackupScheduler, parseSchedule, type Timers } from './scheduler.js';
import type { BackupManifest, CompleteBackup } from './types.js';

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return isAegisError(err) ? err.code : `not an AegisError: ${String(err)}`;
  }
  return 'no error';
}

async function* from<T>(items: T[]): AsyncGenerator<T> {
  for (const i of items) yield i;
}

describe('COPY text', () => {
  const samples = ['', 'plain', 'tab\there', 'line\nbreak', 'cr\rlf\r\n', 'back\\slash', '\\N', '\\.', '\\', 'ünïcødé 词 🙂', '\b\f\v', 'ends with \\'];

  it('round-trips awkward values and NULL', () => {
    for (const s of samples) expect(decodeField(encodeField(s)), JSON.stringify(s)).toBe(s);
    expect(encodeField(null)).toBe('\\N');
    expect(decodeField('\\N')).toBeNull();
    expect(encodeField('\\N')).toBe('\\\\N');
    const row = [...samples, null];
    expect(decodeRow(encodeRow(row))).toEqual(row);
    expect(encodeRow(row)).not.toMatch(/\n/);
  });

  it('reads what pg_dump writes, including octal and hex escapes', () => {
    expect(decodeRow('1\tab\\tc\t\\N\t\\\\x0a')).toEqual(['1', 'ab\tc', null, '\\x0a']);
    expect(decodeField('caf\\303\\251')).toBe('café');
    expect(decodeField('\\x41\\x42')).toBe('AB');
  });

  it('parses COPY and setval lines with quoted identifiers', () => {
    expect(parseCopyLine('COPY public.models (id, name, created_at) FROM stdin;')).toEqual({ table: 'public.models', columns: ['id', 'name', 'created_at'] });
    expect(parseCopyLine('COPY "My Schema"."Odd ""T""" ("Col A", b) FROM stdin;')).toEqual({ table: '"My Schema"."Odd ""T"""', columns: ['Col A', 'b'] });
    expect(parseCopyLine('COPY models (id) FROM stdin;')).toEqual({ table: 'public.models', columns: ['id'] });
    expect(parseCopyLine('SELECT 1;')).toBeUndefined();
    expect(parseSetvalLine("SELECT pg_catalog.setval('public.models_id_seq', 42, true);")).toEqual({ sequence: 'public.models_id_seq', value: '42', isCalled: true });
    expect(parseSetvalLine(`SELECT pg_catalog.setval('public."it''s_seq"', 1, false);`)).toEqual({ sequence: `public."it's_seq"`, value: '1', isCalled: false });
    expect(normalizeQualified('"public"."models"')).toBe('public.models');
    const s = { sequence: `public."it's_seq"`, value: '7', isCalled: false };
    expect(parseSetvalLine(setvalLine(s))).toEqual(s);
    expect(parseCopyLine(copyLine('public."Odd"', ['Col A', 'b']))).toEqual({ table: 'public."Odd"', columns: ['Col A', 'b'] });
  });

  it('reads a dump script into tables and setvals, skipping other statements', async () => {
    const script = ['SET statement_timeout = 0;', 'COPY public.a (x) FROM stdin;', '1', '2', '\\.', '', 'COPY public.b (y) FROM stdin;', '\\.', "SELECT pg_catalog.setval('public.a_x_seq', 2, true);"];
    const seen: string[] = [];
    for await (const item of readScript(from(script), 'test')) {
      if (item.kind === 'table') for await (const row of item.rows) seen.push(`${item.header.table}:${row}`);
      else seen.push(`setval ${item.setval.sequence}=${item.setval.value}`);
    }
    expect(seen).toEqual(['public.a:1', 'public.a:2', 'setval public.a_x_seq=2']);
  });

  it('refuses a script cut inside a COPY block', async () => {
    const items: ScriptItem[] = [];
    const run = async () => {
      for await (const item of readScript(from(['COPY public.a (x) FROM stdin;', '1']), 'cut.sql')) items.push(item);
    };
    await expect(run()).rejects.toMatchObject({ code: 'BACKUP_CORRUPT' });
  });
});

describe('backup ids and manifests', () => {
  it('formats, parses and orders ids', () => {
    const d = new Date('2026-11-22T22:30:00.999Z');
    expect(backupIdAt(d)).toBe('20261122T223000Z');
    expect(backupIdAt(d, 2)).toBe('20261122T223000Z-2');
    expect(backupIdTime('20261122T223000Z-2')!.toISOString()).toBe('2026-11-22T22:30:00.000Z');
    expect(isBackupId('20261122T223000Z')).toBe(true);
    expect(isBackupId('2026-11-22')).toBe(false);
    expect(['20261122T223001Z', '20261122T223000Z-10', '20261122T223000Z-2', '20261122T223000Z'].sort(compareIds)).toEqual([
      '20261122T223000Z',
      '20261122T223000Z-2',
      '20261122T223000Z-10',
      '20261122T223001Z',
    ]);
  });

  const manifest: BackupManifest = {
    apiVersion: 'aegis.dev/v1',
    kind: 'DatabaseBackup',
    id: '20261122T223000Z',
    format: 'pg_dump-custom',
    engine: 'postgres',
    serverVersion: '15.18',
    tool: 'pg_dump (PostgreSQL) 15.18',
    schemaVersion: 2,
    tables: { 'public.models': 3 },
    dump: { name: 'dump.pgdump', sha256: 'a'.repeat(64), size: 10 },
    startedAt: '2026-11-22T22:30:00.000Z',
    finishedAt: '2026-11-22T22:30:01.000Z',
  };

  it('round-trips a manifest and names the first problem of a bad one', () => {
    expect(parseManifest(serializeManifest(manifest), 'm')).toEqual(manifest);
    const bad = (m: unknown) => {
      try {
        parseManifest(Buffer.from(JSON.stringify(m)), 'm.json');
      } catch (err) {
        return (err as AegisError).message;
      }
      return 'accepted';
    };
    expect(bad({ ...manifest, dump: { ...manifest.dump, sha256: 'xyz' } })).toMatch(/dump\.sha256/);
    expect(bad({ ...manifest, format: 'tar' })).toMatch(/format/);
    expect(bad({ ...manifest, extra: 1 })).toMatch(/extra|Unrecognized/i);
    expect(bad({ ...manifest, dump: { ...manifest.dump, name: '../x' } })).toMatch(/dump\.name/);
    expect(codeOf(() => parseManifest(Buffer.from('{'), 'm'))).toBe('BACKUP_MANIFEST_INVALID');
  });
});

describe('retention', () => {
  const backup = (startedAt: string, id = backupIdAt(new Date(startedAt))): CompleteBackup => ({
    id,
    location: { store: undefined as never, prefix: `db-backups/${id}/`, id, uri: id },
    manifest: { startedAt } as BackupManifest,
  });

  it('uses ISO weeks', () => {
    expect(isoWeekOf(new Date('2026-01-01T00:00:00Z'))).toBe('2026-W01');
    expect(isoWeekOf(new Date('2027-01-01T00:00:00Z'))).toBe('2026-W53');
    expect(isoWeekOf(new Date('2026-11-22T23:59:59Z'))).toBe('2026-W47'); // a Sunday
    expect(isoWeekOf(new Date('2026-11-23T00:00:00Z'))).toBe('2026-W48'); // Monday
  });

  it('keeps the newest backup of each of the last N days and M weeks, and always the newest', () => {
    const all = [
      backup('2026-11-22T22:30:00Z'),
      backup('2026-11-22T10:00:00Z'),
      backup('2026-11-21T22:30:00Z'),
      backup('2026-11-20T22:30:00Z'),
      backup('2026-11-14T22:30:00Z'),
      backup('2026-11-07T22:30:00Z'),
      backup('2026-10-01T22:30:00Z'),
    ];
    const plan = planRetention(all, [], { keepDaily: 2, keepWeekly: 3 }, new Date('2026-11-23T00:00:00Z'));
    expect(Object.fromEntries(plan.keep.map((k) => [k.id, k.why]))).toEqual({
      '20261122T223000Z': ['newest', 'daily 2026-11-22', 'weekly 2026-W47'],
      '20261121T223000Z': ['daily 2026-11-21'],
      '20261114T223000Z': ['weekly 2026-W46'],
      '20261107T223000Z': ['weekly 2026-W45'],
    });
    expect(plan.remove.map((r) => r.id).sort()).toEqual(['20261001T223000Z', '20261120T223000Z', '20261122T100000Z']);
  });

  it('never removes the newest complete backup, even with nothing to keep', () => {
    const plan = planRetention([backup('2026-11-01T00:00:00Z'), backup('2026-11-02T00:00:00Z')], [], { keepDaily: 0, keepWeekly: 0 }, new Date());
    expect(plan.keep.map((k) => k.id)).toEqual(['20261102T000000Z']);
    expect(plan.remove.map((k) => k.id)).toEqual(['20261101T000000Z']);
  });

  it('removes incomplete leftovers only once they are older than the grace period', () => {
    const inc = (id: string) => ({ id, location: undefined as never, keys: [], reason: 'it has no manifest.json' });
    const plan = planRetention([], [inc('20261120T000000Z'), inc('20261122T220000Z')], { keepDaily: 1, keepWeekly: 1 }, new Date('2026-11-22T22:30:00Z'));
    expect(plan.remove).toEqual([{ id: '20261120T000000Z', why: expect.stringMatching(/^incomplete/), complete: false }]);
  });

  it('refuses negative or fractional counts', () => {
    expect(codeOf(() => planRetention([], [], { keepDaily: -1, keepWeekly: 1 }, new Date()))).toBe('USAGE');
    expect(codeOf(() => planRetention([], [], { keepDaily: 1, keepWeekly: 1.5 }, new Date()))).toBe('USAGE');
  });
});

describe('BackupScheduler', () => {
  class FakeTimers implements Timers {
    t = new Date('2026-11-22T22:00:00Z');
    pending: Array<{ fn: () => void; at: number; id: number }> = [];
    #id = 0;
    now = () => new Date(this.t);
    setTimeout = (fn: () => void, ms: number) => {
      const id = ++this.#id;
      this.pending.push({ fn, at: this.t.getTime() + ms, id });
      return id;
    };
    clearTimeout = (h: unknown) => {
      this.pending = this.pending.filter((p) => p.id !== h);
    };
    /** Jumps to the next timer and fires it. */
    fire(): void {
      const next = this.pending.sort((a, b) => a.at - b.at).shift();
      if (!next) throw new Error('no timer armed');
      this.t = new Date(next.at);
      next.fn();
    }
  }

  class MemoryRuns implements BackupRunLog {
    runs: BackupRun[] = [];
    record = async (r: BackupRun) => void this.runs.push(r);
    lastSuccess = async () => this.runs.filter((r) => r.status === 'succeeded').at(-1)?.finishedAt;
    recent = async (n: number) => this.runs.slice(-n).reverse();
  }

  let timers: FakeTimers;
  let runs: MemoryRuns;
  let registry: PromRegistry;
  let outcomes: Array<'ok' | 'fail'>;
  let calls: number;
  let release: (() => void) | undefined;
  const result = (id: string) => ({ manifest: { id, format: 'aegis-logical', dump: { size: 123 } }, uri: `file:///b/${id}` }) as unknown as BackupResult;

  beforeEach(() => {
    timers = new FakeTimers();
    runs = new MemoryRuns();
    registry = new PromRegistry();
    outcomes = [];
    calls = 0;
    release = undefined;
  });
  afterEach(() => release?.());

  function scheduler(hold = false) {
    return new BackupScheduler({
      schedule: '30 22 * * *',
      registry,
      runs,
      timers,
      backup: async () => {
        calls++;
        if (hold) await new Promise<void>((r) => (release = r));
        if (outcomes.shift() === 'fail') throw new AegisError('STORE_UNREACHABLE', 'bucket gone', { hint: 'h' });
        return result(`id${calls}`);
      },
    });
  }

  const metric = async (name: string) => (await registry.getSingleMetric(name)!.get()).values;
  const settle = () => new Promise((r) => setImmediate(r));

  it('refuses a bad cron expression', () => {
    expect(codeOf(() => parseSchedule('every day'))).toBe('BACKUP_SCHEDULE_INVALID');
    expect(parseSchedule('30 2 * * *').next(new Date('2026-11-22T03:00:00Z')).toISOString()).toBe('2026-11-23T02:30:00.000Z');
  });

  it('runs at the scheduled times, records each outcome and exports the metrics', async () => {
    const s = scheduler();
    s.start();
    expect(s.nextRun?.toISOString()).toBe('2026-11-22T22:30:00.000Z');
    expect(await metric('aegis_db_backup_last_success_timestamp_seconds')).toEqual([expect.objectContaining({ value: 0 })]);

    outcomes.push('ok');
    timers.fire();
    await settle();
    await settle();
    expect(calls).toBe(1);
    expect(runs.runs).toEqual([expect.objectContaining({ trigger: 'schedule', status: 'succeeded', backupId: 'id1', bytes: 123 })]);
    expect(await metric('aegis_db_backup_last_success_timestamp_seconds')).toEqual([expect.objectContaining({ value: Date.parse('2026-11-22T22:30:00Z') / 1000 })]);
    expect(s.nextRun?.toISOString()).toBe('2026-11-23T22:30:00.000Z');

    outcomes.push('fail');
    timers.fire();
    await settle();
    await settle();
    expect(runs.runs[1]).toMatchObject({ status: 'failed', errorCode: 'STORE_UNREACHABLE', errorMessage: 'bucket gone' });
    expect(await metric('aegis_db_backup_last_success_timestamp_seconds')).toEqual([expect.objectContaining({ value: Date.parse('2026-11-22T22:30:00Z') / 1000 })]);
    const totals = Object.fromEntries((await metric('aegis_db_backup_runs_total')).map((v) => [v.labels.outcome, v.value]));
    expect(totals).toEqual({ success: 1, failure: 1 });
    const text = await registry.metrics();
    expect(text).toMatch(/^aegis_db_backup_last_success_timestamp_seconds 1795386600$/m);
    await s.stop();
    expect(timers.pending).toEqual([]);
  });

  it('seeds the last-success gauge from the run log at start', async () => {
    runs.runs.push({ trigger: 'manual', status: 'succeeded', startedAt: new Date(0), finishedAt: new Date('2026-11-20T00:00:00Z') });
    const s = scheduler();
    s.start();
    expect(await metric('aegis_db_backup_last_success_timestamp_seconds')).toEqual([expect.objectContaining({ value: Date.parse('2026-11-20T00:00:00Z') / 1000 })]);
    await s.stop();
  });

  it('picks up backups recorded elsewhere (a CronJob, the CLI) at scrape time', async () => {
    const s = scheduler();
    s.start();
    expect(await metric('aegis_db_backup_last_success_timestamp_seconds')).toEqual([expect.objectContaining({ value: 0 })]);
    runs.runs.push({ trigger: 'schedule', status: 'succeeded', startedAt: new Date(0), finishedAt: new Date('2026-11-21T00:00:00Z') });
    expect(await metric('aegis_db_backup_last_success_timestamp_seconds')).toEqual([expect.objectContaining({ value: Date.parse('2026-11-21T00:00:00Z') / 1000 })]);
    runs.runs.push({ trigger: 'manual', status: 'failed', startedAt: new Date(0), finishedAt: new Date('2026-11-22T00:00:00Z') });
    expect(await metric('aegis_db_backup_last_success_timestamp_seconds')).toEqual([expect.objectContaining({ value: Date.parse('2026-11-21T00:00:00Z') / 1000 })]);
    await s.stop();
  });

  it('does not start a second run while one is in progress', async () => {
    const s = scheduler(true);
    s.start();
    timers.fire();
    await settle();
    const again = s.runNow();
    expect(calls).toBe(1);
    release!();
    expect((await again).ok).toBe(true);
    expect(calls).toBe(1);
    await s.stop();
  });
});

describe('pg tools', () => {
  let work: Awaited<ReturnType<typeof tempDir>>;
  beforeEach(async () => {
    work = await tempDir('aegis-pgtools-');
  });
  afterEach(() => work.cleanup());

  it('uses a configured path, refuses a bad one with the setting to fix, and searches PATH', async () => {
    const fake = join(work.path, 'pg_dump');
    await writeFile(fake, '#!/bin/sh\necho "pg_dump (PostgreSQL) 15.1"\n');
    await chmod(fake, 0o755);
    expect(findPgTool('pg_dump', fake)).toBe(fake);
    expect(findPgTool('pg_dump', undefined, { PATH: work.path })).toBe(fake);
    try {
      findPgTool('pg_dump', join(work.path, 'nope'));
      expect.unreachable();
    } catch (err) {
      expect(err).toMatchObject({ code: 'BACKUP_TOOL_MISSING', hint: expect.stringMatching(/backup\.pgDumpPath/) });
    }
  });

  it('keeps passwords off the command line and refuses a client older than the server', () => {
    expect(connection('postgres://u:s%40cret@db:5432/aegis')).toEqual({ dbname: 'postgres://u@db:5432/aegis', env: { PGPASSWORD: 's@cret' } });
    expect(connection('postgres://u@db/aegis')).toEqual({ dbname: 'postgres://u@db/aegis', env: {} });
    expect(codeOf(() => checkToolVersion('pg_dump', '/x/pg_dump', 15, '16.2'))).toBe('BACKUP_TOOL_MISSING');
    expect(codeOf(() => checkToolVersion('pg_dump', '/x/pg_dump', 16, '15.18'))).toBe('no error');
  });
});
