import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Db, Queryable } from '../db/types.js';
import { AegisError, fsError } from '../errors.js';
import type {
  FinalRunStatus,
  LoggedArtifact,
  MetricPoint,
  ModelVersionRef,
  ParamValue,
  RegisterModelVersionInput,
  StartRunInput,
  TrackedRun,
  Tracker,
} from '../tracking/types.js';
import type { JsonObject } from './types.js';

/**
 * The Tracker the pipeline uses when no MLflow server is configured: the
 * same calls, recorded in the Aegis database. Params, tags, artifacts (where
 * the files are, not copies), registered versions and aliases go into the
 * run's `tracking` column; metric points into pipeline_metrics, keyed by
 * (key, step, timestamp) so a resent point is stored once. The tracking run
 * id is the pipeline run's uid.
 */
export class DbTracker implements Tracker {
  readonly kind = 'db';
  readonly #db: Db;

  constructor(db: Db) {
    this.#db = db;
  }

  async startRun(input: StartRunInput): Promise<TrackedRun> {
    return this.#db.transaction(async (tx) => {
      const { id, tracking } = await this.#lock(tx, input.pipelineRunId);
      const resumed = typeof tracking.startTime === 'number';
      const next: JsonObject = {
        ...tracking,
        ...(resumed ? {} : { startTime: input.startTime ?? Date.now(), status: 'RUNNING' }),
        runName: tracking.runName ?? input.runName ?? (input.model ? `${input.model}-${input.pipelineRunId}` : input.pipelineRunId),
        tags: { ...(tracking.tags as object | undefined), ...input.tags, ...(input.model ? { 'aegis.model': input.model } : {}), 'aegis.pipeline_run_id': input.pipelineRunId },
        ...(input.description ? { description: input.description } : {}),
        ...(input.user ? { user: input.user } : {}),
      };
      await this.#save(tx, id, next);
      return { runId: input.pipelineRunId, resumed, status: (next.status as TrackedRun['status']) ?? 'RUNNING' };
    });
  }

  async logParams(runId: string, params: Readonly<Record<string, ParamValue>>): Promise<void> {
    await this.#db.transaction(async (tx) => {
      const { id, tracking } = await this.#lock(tx, runId);
      const current = (tracking.params as Record<string, string> | undefined) ?? {};
      for (const [k, v] of Object.entries(params)) {
        if (k in current && current[k] !== String(v)) {
          throw new AegisError('TRACKING_INPUT_INVALID', `param ${k} of tracking run ${runId} is already ${JSON.stringify(current[k])}; refusing ${JSON.stringify(String(v))}`, {
            hint: 'Params are write-once per run: log a changed value under another key, or as a metric or tag.',
            details: { runId, key: k },
          });
        }
      }
      const merged = { ...current, ...Object.fromEntries(Object.entries(params).map(([k, v]) => [k, String(v)])) };
      await this.#save(tx, id, { ...tracking, params: merged });
    });
  }

  async logMetrics(runId: string, metrics: readonly MetricPoint[]): Promise<void> {
    if (metrics.length === 0) return;
    const id = await this.#id(this.#db, runId);
    const now = Date.now();
    for (const m of metrics) {
      await this.#db.query(
        `INSERT INTO pipeline_metrics (run_id, key, step, ts, value) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (run_id, key, step, ts) DO UPDATE SET value = EXCLUDED.value`,
        [id, m.key, m.step ?? 0, m.timestamp ?? now, m.value],
      );
    }
  }

  async setTags(runId: string, tags: Readonly<Record<string, string>>): Promise<void> {
    await this.#update(runId, (t) => ({ ...t, tags: { ...(t.tags as object | undefined), ...tags } }));
  }

  async logArtifact(runId: string, localPath: string, artifactDir?: string): Promise<LoggedArtifact> {
    const st = await stat(localPath).catch((err: unknown) => {
      throw fsError(err, localPath, 'artifact');
    });
    const path = artifactDir ? `${artifactDir.replace(/\/+$/, '')}/${basename(localPath)}` : basename(localPath);
    const artifact: LoggedArtifact = { path, uri: pathToFileURL(localPath).href, bytes: st.size };
    await this.#update(runId, (t) => ({ ...t, artifacts: { ...(t.artifacts as object | undefined), [path]: { uri: artifact.uri, bytes: artifact.bytes } } }));
    return artifact;
  }

  async finish(runId: string, status: FinalRunStatus, endTime?: number): Promise<void> {
    await this.#update(runId, (t) => ({ ...t, status, endTime: endTime ?? Date.now() }));
  }

  async registerModelVersion(input: RegisterModelVersionInput): Promise<ModelVersionRef> {
    const version = input.tags?.['aegis.version'] ?? input.runId;
    const ref: ModelVersionRef = { name: input.name, version, source: `aegis-db:${input.runId}/${input.artifactDir}`, runId: input.runId };
    await this.#update(input.runId, (t) => ({ ...t, modelVersion: { ...ref, ...(input.tags ? { tags: input.tags } : {}) } }));
    return ref;
  }

  async setAlias(name: string, alias: string, version: string): Promise<void> {
    // Aliases belong to a model, not a run: recorded on the run that registered that version.
    const r = await this.#db.query<{ uid: string }>(
      `SELECT uid FROM pipeline_runs WHERE tracking->'modelVersion'->>'name' = $1 AND tracking->'modelVersion'->>'version' = $2 ORDER BY id DESC LIMIT 1`,
      [name, version],
    );
    if (!r.rows[0]) throw new AegisError('TRACKING_NOT_FOUND', `no tracked run registered ${name} version ${version}`, { hint: 'Register the version first.' });
    await this.#update(r.rows[0].uid, (t) => ({ ...t, aliases: { ...(t.aliases as object | undefined), [alias]: version } }));
  }

  /** The metric points of a run, oldest first (for `aegis pipeline show`). */
  static async metrics(db: Queryable, pipelineRunId: number): Promise<Array<{ key: string; step: number; timestamp: number; value: number }>> {
    const r = await db.query<{ key: string; step: number; ts: number; value: number }>(
      'SELECT key, step, ts, value FROM pipeline_metrics WHERE run_id = $1 ORDER BY key, step, ts',
      [pipelineRunId],
    );
    return r.rows.map((m) => ({ key: m.key, step: Number(m.step), timestamp: Number(m.ts), value: m.value }));
  }

  async #id(q: Queryable, uid: string): Promise<number> {
    const r = await q.query<{ id: number }>('SELECT id FROM pipeline_runs WHERE uid = $1', [uid]);
    if (!r.rows[0]) throw new AegisError('TRACKING_NOT_FOUND', `no pipeline run has the tracking id ${uid}`, { hint: 'Start the tracking run first (startRun).' });
    return Number(r.rows[0].id);
  }

  async #lock(tx: Queryable, uid: string): Promise<{ id: number; tracking: JsonObject }> {
    const r = await tx.query<{ id: number; tracking: JsonObject }>('SELECT id, tracking FROM pipeline_runs WHERE uid = $1 FOR UPDATE', [uid]);
    if (!r.rows[0]) throw new AegisError('TRACKING_NOT_FOUND', `no pipeline run has the tracking id ${uid}`, { hint: 'Start the tracking run first (startRun).' });
    return { id: Number(r.rows[0].id), tracking: r.rows[0].tracking ?? {} };
  }

  async #save(tx: Queryable, id: number, tracking: JsonObject): Promise<void> {
    await tx.query('UPDATE pipeline_runs SET tracking = $2::jsonb WHERE id = $1', [id, JSON.stringify(tracking)]);
  }

  async #update(uid: string, change: (t: JsonObject) => JsonObject): Promise<void> {
    await this.#db.transaction(async (tx) => {
      const { id, tracking } = await this.#lock(tx, uid);
      await this.#save(tx, id, change(tracking));
    });
  }
}
