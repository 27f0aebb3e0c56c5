import { recordRetrainFinished } from '../alerts/index.js';
import type { Db, Queryable } from '../db/types.js';
import { AegisError } from '../errors.js';
import { STEP_NAMES, type JsonObject, type PipelineRun, type PipelineStep, type RunRequest, type RunState, type StepName } from './types.js';

/**
 * Runs and steps in the database (tables pipeline_runs, pipeline_steps;
 * migration 5). Every state change is one statement or one transaction, so a
 * process killed at any point leaves rows a new process can resume from.
 *
 * Ownership: the process executing a run holds it (`owner`, `lease_until`,
 * renewed while it works). Step writes check the owner, so a process that lost
 * its lease (it stalled, another took over) cannot overwrite the new owner's
 * progress.
 */

/** The newest characters of a step's log kept in its row. */
export const LOG_LIMIT = 64 * 1024;
const LOG_DROPPED = '[… earlier lines dropped …]\n';

const RUN_COLUMNS = `id, uid, request_id, source, executor, request, model, version, parent_version, dataset_uri, alert_id, trigger_id,
  state, attempts, error, error_code, outputs, tracking_kind, tracking_run_id, tracking, cancel_requested, owner, lease_until,
  created_by, created_at, updated_at, started_at, finished_at`;
const STEP_COLUMNS = 'run_id, name, position, state, attempts, logs, outputs, error, error_code, started_at, finished_at';

interface RunRow {
  id: number;
  uid: string;
  request_id: string;
  source: 'alert' | 'manual';
  executor: 'local' | 'external';
  request: RunRequest;
  model: string | null;
  version: string | null;
  parent_version: string | null;
  dataset_uri: string | null;
  alert_id: number | null;
  trigger_id: number | null;
  state: RunState;
  attempts: number;
  error: string | null;
  error_code: string | null;
  outputs: JsonObject;
  tracking_kind: string | null;
  tracking_run_id: string | null;
  tracking: JsonObject;
  cancel_requested: boolean;
  owner: string | null;
  lease_until: Date | null;
  created_by: string;
  created_at: Date;
  updated_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
}

interface StepRow {
  run_id: number;
  name: StepName;
  position: number;
  state: PipelineStep['state'];
  attempts: number;
  logs: string;
  outputs: JsonObject;
  error: string | null;
  error_code: string | null;
  started_at: Date | null;
  finished_at: Date | null;
}

function toRun(r: RunRow): PipelineRun {
  return {
    id: Number(r.id),
    uid: r.uid,
    requestId: r.request_id,
    source: r.source,
    executor: r.executor,
    request: r.request,
    model: r.model,
    version: r.version,
    parentVersion: r.parent_version,
    datasetUri: r.dataset_uri,
    alertId: r.alert_id === null ? null : Number(r.alert_id),
    triggerId: r.trigger_id === null ? null : Number(r.trigger_id),
    state: r.state,
    attempts: r.attempts,
    error: r.error,
    errorCode: r.error_code,
    outputs: r.outputs,
    trackingKind: r.tracking_kind,
    trackingRunId: r.tracking_run_id,
    tracking: r.tracking,
    cancelRequested: r.cancel_requested,
    owner: r.owner,
    leaseUntil: r.lease_until,
    createdBy: r.created_by,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
  };
}

function toStep(r: StepRow): PipelineStep {
  return {
    runId: Number(r.run_id),
    name: r.name,
    position: r.position,
    state: r.state,
    attempts: r.attempts,
    logs: r.logs,
    outputs: r.outputs,
    error: r.error,
    errorCode: r.error_code,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
  };
}

export function notFound(id: number | string): AegisError {
  return new AegisError('PIPELINE_NOT_FOUND', `there is no pipeline run ${id}`, {
    hint: '`aegis pipeline list` shows the runs.',
    details: { run: id },
  });
}

export function leaseLost(id: number): AegisError {
  return new AegisError('PIPELINE_CONFLICT', `pipeline run ${id} is no longer held by this process (another one took it over)`, {
    hint: 'Nothing to do: the process holding the run now carries on from the last recorded step.',
    details: { run: id },
  });
}

export interface NewRun {
  requestId: string;
  source: 'alert' | 'manual';
  executor?: 'local' | 'external';
  request: RunRequest;
  createdBy: string;
}

/** Records a queued run with its steps; the run already recorded for `requestId` when there is one. */
export async function createRun(db: Db, input: NewRun): Promise<{ run: PipelineRun; created: boolean }> {
  return db.transaction(async (tx) => {
    const inserted = await tx.query<RunRow>(
      `INSERT INTO pipeline_runs (request_id, source, executor, request, model, dataset_uri, alert_id, trigger_id, created_by)
       VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, $8, $9)
       ON CONFLICT (request_id) DO NOTHING RETURNING ${RUN_COLUMNS}`,
      [
        input.requestId,
        input.source,
        input.executor ?? 'local',
        JSON.stringify(input.request),
        // What the request names, for listings until the train step resolves the run (it may pick them when absent).
        input.request.model ?? null,
        input.request.datasetUri ?? null,
        input.request.alert?.id ?? null,
        input.request.triggerId ?? null,
        input.createdBy,
      ],
    );
    const row = inserted.rows[0];
    if (!row) {
      const existing = await tx.query<RunRow>(`SELECT ${RUN_COLUMNS} FROM pipeline_runs WHERE request_id = $1`, [input.requestId]);
      return { run: toRun(existing.rows[0]!), created: false };
    }
    await tx.query(
      `INSERT INTO pipeline_steps (run_id, name, position) SELECT $1, name, ord::int FROM unnest($2::text[]) WITH ORDINALITY AS s(name, ord)`,
      [row.id, [...STEP_NAMES]],
    );
    return { run: toRun(row), created: true };
  });
}

export async function getRun(db: Queryable, id: number): Promise<PipelineRun> {
  const r = await db.query<RunRow>(`SELECT ${RUN_COLUMNS} FROM pipeline_runs WHERE id = $1`, [id]);
  if (!r.rows[0]) throw notFound(id);
  return toRun(r.rows[0]);
}

export async function listRuns(db: Queryable, filter: { state?: RunState; model?: string; limit?: number } = {}): Promise<PipelineRun[]> {
  const where: string[] = [];
  const params: unknown[] = [];
  if (filter.state) where.push(`state = $${params.push(filter.state)}`);
  if (filter.model) where.push(`model = $${params.push(filter.model)}`);
  const limit = Math.min(Math.max(1, filter.limit ?? 50), 1000);
  const r = await db.query<RunRow>(
    `SELECT ${RUN_COLUMNS} FROM pipeline_runs ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT $${params.push(limit)}`,
    params,
  );
  return r.rows.map(toRun);
}

export async function listSteps(db: Queryable, runId: number): Promise<PipelineStep[]> {
  const r = await db.query<StepRow>(`SELECT ${STEP_COLUMNS} FROM pipeline_steps WHERE run_id = $1 ORDER BY position`, [runId]);
  return r.rows.map(toStep);
}

/** Who may take a run another process holds: anyone once its lease lapsed; on PGlite anyone (one process holds the database). */
function claimable(ownerParam: string, takeoverParam: string): string {
  return `(owner IS NULL OR owner = ${ownerParam} OR lease_until < now() OR ${takeoverParam})`;
}

/**
 * Takes the oldest local run that is queued, or running without a live owner
 * (its process died), and marks it running under `owner`.
 */
export async function claimNext(db: Queryable, owner: string, leaseSeconds: number, takeoverAny: boolean, exclude: readonly number[]): Promise<PipelineRun | undefined> {
  const r = await db.query<RunRow>(
    `UPDATE pipeline_runs SET state = 'running', owner = $1, lease_until = now() + make_interval(secs => $2),
       started_at = coalesce(started_at, now()), updated_at = now()
     WHERE id = (
       SELECT id FROM pipeline_runs
       WHERE executor = 'local' AND NOT (id = ANY($4::bigint[]))
         AND (state = 'queued' OR (state = 'running' AND ${claimable('$1', '$3')}))
       ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
     RETURNING ${RUN_COLUMNS}`,
    [owner, leaseSeconds, takeoverAny, exclude],
  );
  return r.rows[0] ? toRun(r.rows[0]) : undefined;
}

/** Takes one given run (any executor) for `owner`; undefined when another live process holds it. */
export async function claimRun(db: Queryable, id: number, owner: string, leaseSeconds: number, takeoverAny: boolean): Promise<PipelineRun | undefined> {
  const r = await db.query<RunRow>(
    `UPDATE pipeline_runs SET state = 'running', owner = $1, lease_until = now() + make_interval(secs => $2),
       started_at = coalesce(started_at, now()), updated_at = now()
     WHERE id = $4 AND ${claimable('$1', '$3')}
     RETURNING ${RUN_COLUMNS}`,
    [owner, leaseSeconds, takeoverAny, id],
  );
  return r.rows[0] ? toRun(r.rows[0]) : undefined;
}

/** Extends `owner`'s lease; `held: false` when the run is no longer its. */
export async function renewLease(db: Queryable, id: number, owner: string, leaseSeconds: number): Promise<{ held: boolean; cancelRequested: boolean }> {
  const r = await db.query<{ cancel_requested: boolean }>(
    `UPDATE pipeline_runs SET lease_until = now() + make_interval(secs => $3) WHERE id = $1 AND owner = $2 RETURNING cancel_requested`,
    [id, owner, leaseSeconds],
  );
  return r.rows[0] ? { held: true, cancelRequested: r.rows[0].cancel_requested } : { held: false, cancelRequested: false };
}

/** Lets go of a run without changing its state (shutdown: the next process resumes it). */
export async function releaseRun(db: Queryable, id: number, owner: string): Promise<void> {
  await db.query(`UPDATE pipeline_runs SET owner = NULL, lease_until = NULL, updated_at = now() WHERE id = $1 AND owner = $2`, [id, owner]);
}

export interface Resolved {
  model: string;
  version: string;
  parentVersion: string | null;
  datasetUri: string;
}

/** Records what the run works on, once: the first resolution wins (a re-run train step reuses it). */
export async function resolveRun(db: Queryable, id: number, owner: string, r: Resolved): Promise<PipelineRun> {
  await db.query(
    `UPDATE pipeline_runs SET model = $3, version = $4, parent_version = $5, dataset_uri = $6, updated_at = now()
     WHERE id = $1 AND owner = $2 AND version IS NULL`,
    [id, owner, r.model, r.version, r.parentVersion, r.datasetUri],
  );
  const run = await getRun(db, id);
  if (run.owner !== owner) throw leaseLost(id);
  return run;
}

export async function setTrackingRun(db: Queryable, id: number, kind: string, trackingRunId: string): Promise<void> {
  await db.query(`UPDATE pipeline_runs SET tracking_kind = $2, tracking_run_id = $3, updated_at = now() WHERE id = $1`, [id, kind, trackingRunId]);
}

const OWNED = `EXISTS (SELECT 1 FROM pipeline_runs r WHERE r.id = $1 AND r.owner = $3)`;
const APPEND_LOGS = (param: string) =>
  `CASE WHEN length(logs) + length(${param}) > ${LOG_LIMIT} THEN '${LOG_DROPPED}' || right(logs || ${param}, ${LOG_LIMIT}) ELSE logs || ${param} END`;

/** Marks a step running (one more attempt); returns the attempt number. */
export async function stepStarted(db: Queryable, runId: number, name: StepName, owner: string): Promise<number> {
  const r = await db.query<{ attempts: number }>(
    `UPDATE pipeline_steps SET state = 'running', attempts = attempts + 1, started_at = now(), finished_at = NULL, error = NULL, error_code = NULL, updated_at = now()
     WHERE run_id = $1 AND name = $2 AND ${OWNED} RETURNING attempts`,
    [runId, name, owner],
  );
  if (!r.rows[0]) throw leaseLost(runId);
  return r.rows[0].attempts;
}

export async function appendLogs(db: Queryable, runId: number, name: StepName, owner: string, text: string): Promise<void> {
  if (!text) return;
  await db.query(`UPDATE pipeline_steps SET logs = ${APPEND_LOGS('$4')}, updated_at = now() WHERE run_id = $1 AND name = $2 AND ${OWNED}`, [runId, name, owner, text]);
}

/** Records a step's success and merges its summary into the run's outputs, in one transaction. */
export async function stepSucceeded(db: Db, runId: number, name: StepName, owner: string, outputs: JsonObject, summary: JsonObject, logs: string): Promise<void> {
  await db.transaction(async (tx) => {
    const r = await tx.query(
      `UPDATE pipeline_steps SET state = 'succeeded', outputs = $4::jsonb, finished_at = now(), error = NULL, error_code = NULL,
         logs = ${APPEND_LOGS('$5')}, updated_at = now()
       WHERE run_id = $1 AND name = $2 AND ${OWNED}`,
      [runId, name, owner, JSON.stringify(outputs), logs],
    );
    if (r.rowCount === 0) throw leaseLost(runId);
    await tx.query(`UPDATE pipeline_runs SET outputs = outputs || $2::jsonb, updated_at = now() WHERE id = $1`, [runId, JSON.stringify(summary)]);
  });
}

/** Records a failed attempt (`pending`: the attempt was interrupted by a shutdown and is simply to be run again); `outputs`: what a rejection found. */
export async function stepFailed(
  db: Queryable,
  runId: number,
  name: StepName,
  owner: string,
  failure: { error: string; code: string; logs: string; state?: 'failed' | 'pending'; outputs?: JsonObject },
): Promise<void> {
  const r = await db.query(
    `UPDATE pipeline_steps SET state = $4, error = $5, error_code = $6, finished_at = now(), logs = ${APPEND_LOGS('$7')},
       outputs = coalesce($8::jsonb, outputs), updated_at = now()
     WHERE run_id = $1 AND name = $2 AND ${OWNED}`,
    [runId, name, owner, failure.state ?? 'failed', failure.error, failure.code, failure.logs, failure.outputs ? JSON.stringify(failure.outputs) : null],
  );
  if (r.rowCount === 0) throw leaseLost(runId);
}

/** Sets a step's state without running it (`aegis pipeline step` on a run that ended: skipped). */
export async function markStep(db: Queryable, runId: number, name: StepName, state: PipelineStep['state']): Promise<void> {
  await db.query(`UPDATE pipeline_steps SET state = $3, updated_at = now() WHERE run_id = $1 AND name = $2`, [runId, name, state]);
}

export interface Finish {
  state: Extract<RunState, 'succeeded' | 'failed' | 'rejected' | 'cancelled'>;
  error?: string;
  errorCode?: string;
}

/**
 * Ends a run, in one transaction: its state, the steps a rejection leaves
 * unrun marked skipped, and the alert trigger told (recordRetrainFinished:
 * the receiver's concurrency slot is freed in the same commit, so a crash
 * cannot leave it taken). `owner` undefined: the caller takes the run over
 * (a cancel of a run nobody executes). Undefined when the run had already ended.
 */
export async function finishRun(db: Db, id: number, owner: string | undefined, f: Finish): Promise<PipelineRun | undefined> {
  return db.transaction(async (tx) => {
    const r = await tx.query<RunRow>(
      `UPDATE pipeline_runs SET state = $2, error = $3, error_code = $4, finished_at = now(), updated_at = now(),
         owner = NULL, lease_until = NULL, cancel_requested = false
       WHERE id = $1 AND state IN ('queued', 'running') ${owner === undefined ? '' : 'AND owner = $5'}
       RETURNING ${RUN_COLUMNS}`,
      [id, f.state, f.error ?? null, f.errorCode ?? null, ...(owner === undefined ? [] : [owner])],
    );
    const row = r.rows[0];
    if (!row) return undefined;
    if (f.state === 'rejected') await tx.query(`UPDATE pipeline_steps SET state = 'skipped', updated_at = now() WHERE run_id = $1 AND state = 'pending'`, [id]);
    await recordRetrainFinished(tx, String(id), f.state === 'succeeded' ? 'succeeded' : 'failed');
    return toRun(row);
  });
}

/**
 * Asks for a run to stop. A queued run, or a running one nobody holds
 * (`takeoverAny`: on PGlite nobody else can), ends `cancelled` at once;
 * a run another process executes is flagged and that process stops it at
 * its next lease renewal.
 */
export async function requestCancel(db: Db, id: number, takeoverAny: boolean): Promise<{ run: PipelineRun; immediate: boolean }> {
  const run = await getRun(db, id);
  if (run.state !== 'queued' && run.state !== 'running') {
    throw new AegisError('PIPELINE_STATE_INVALID', `pipeline run ${id} has already ended (${run.state})`, {
      hint: run.state === 'succeeded' ? 'To undo its canary, `aegis rollout abort MODEL`.' : 'Nothing to cancel.',
      details: { run: id, state: run.state },
    });
  }
  const orphan = await db.query<{ id: number }>(
    `SELECT id FROM pipeline_runs WHERE id = $1 AND (state = 'queued' OR owner IS NULL OR lease_until < now() OR $2)`,
    [id, takeoverAny],
  );
  if (orphan.rows[0]) {
    const ended = await finishRun(db, id, undefined, { state: 'cancelled', error: 'cancelled', errorCode: 'PIPELINE_CANCELLED' });
    if (ended) return { run: ended, immediate: true };
  }
  await db.query(`UPDATE pipeline_runs SET cancel_requested = true, updated_at = now() WHERE id = $1 AND state IN ('queued', 'running')`, [id]);
  return { run: await getRun(db, id), immediate: false };
}

/**
 * Puts a failed, rejected or cancelled run back in the queue: its steps that
 * had not succeeded are pending again (with fresh attempt counts), the ones
 * that had keep their outputs and are not run again.
 */
export async function retryRun(db: Db, id: number): Promise<PipelineRun> {
  return db.transaction(async (tx) => {
    const r = await tx.query<RunRow>(
      `UPDATE pipeline_runs SET state = 'queued', attempts = attempts + 1, error = NULL, error_code = NULL, finished_at = NULL,
         cancel_requested = false, owner = NULL, lease_until = NULL, updated_at = now()
       WHERE id = $1 AND state IN ('failed', 'rejected', 'cancelled') RETURNING ${RUN_COLUMNS}`,
      [id],
    );
    if (!r.rows[0]) {
      const run = await getRun(tx, id);
      throw new AegisError('PIPELINE_STATE_INVALID', `pipeline run ${id} is ${run.state}; only a failed, rejected or cancelled run can be retried`, {
        hint: run.state === 'succeeded' ? 'Start a new run instead: `aegis pipeline run --dataset URI`.' : '`aegis pipeline show` follows it; `aegis pipeline cancel` stops it.',
        details: { run: id, state: run.state },
      });
    }
    await tx.query(
      `UPDATE pipeline_steps SET state = 'pending', attempts = 0, error = NULL, error_code = NULL, updated_at = now()
       WHERE run_id = $1 AND state <> 'succeeded'`,
      [id],
    );
    return toRun(r.rows[0]);
  });
}

/** Puts an ended run back to running for `owner` (an `aegis pipeline step` re-run of a failed step, e.g. an Argo retry). */
export async function reopenRun(db: Queryable, id: number, owner: string, leaseSeconds: number): Promise<PipelineRun | undefined> {
  const r = await db.query<RunRow>(
    `UPDATE pipeline_runs SET state = 'running', owner = $2, lease_until = now() + make_interval(secs => $3), error = NULL, error_code = NULL,
       finished_at = NULL, updated_at = now()
     WHERE id = $1 AND state = 'failed' RETURNING ${RUN_COLUMNS}`,
    [id, owner, leaseSeconds],
  );
  return r.rows[0] ? toRun(r.rows[0]) : undefined;
}
