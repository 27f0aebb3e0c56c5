import type { Db } from '../../db/types.js';
import { AegisError } from '../../errors.js';
import type { NewRollout, RolloutPhase, RolloutRecord, RolloutState, RolloutStore } from '../controller/types.js';
import type { RolloutSpec } from '../spec.js';

interface Row {
  id: number;
  model: string;
  version: string;
  stable_version: string | null;
  phase: RolloutPhase;
  spec: RolloutSpec;
  state: RolloutState;
  message: string | null;
  created_by: string;
  created_at: Date;
  updated_at: Date;
  finished_at: Date | null;
}

const COLUMNS = 'id, model, version, stable_version, phase, spec, state, message, created_by, created_at, updated_at, finished_at';

function toRecord(r: Row): RolloutRecord {
  return {
    id: r.id,
    model: r.model,
    version: r.version,
    stableVersion: r.stable_version,
    phase: r.phase,
    spec: r.spec,
    state: r.state,
    message: r.message,
    createdBy: r.created_by,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    finishedAt: r.finished_at,
  };
}

/** Rollouts in the Aegis database (PGlite or PostgreSQL), table `rollouts`. */
export class DbRolloutStore implements RolloutStore {
  readonly #db: Db;

  constructor(db: Db) {
    this.#db = db;
  }

  async create(input: NewRollout): Promise<RolloutRecord> {
    try {
      const r = await this.#db.query<Row>(
        `INSERT INTO rollouts (model, version, stable_version, phase, spec, state, created_by)
         VALUES ($1, $2, $3, 'Progressing', $4, $5, $6) RETURNING ${COLUMNS}`,
        [input.model, input.version, input.stableVersion, JSON.stringify(input.spec), JSON.stringify(input.state), input.createdBy],
      );
      return toRecord(r.rows[0]!);
    } catch (err) {
      if ((err as { code?: string }).code === '23505') {
        const current = await this.latest(input.model);
        throw new AegisError('ROLLOUT_ACTIVE', `model ${input.model} already has an active rollout${current ? ` (#${current.id}, ${current.version}, ${current.phase})` : ''}`, {
          cause: err,
          hint: `Finish it first: \`aegis rollout promote ${input.model}\` or \`aegis rollout abort ${input.model}\`; \`aegis rollout status ${input.model}\` shows where it is.`,
          details: { model: input.model, ...(current ? { rollout: current.id, version: current.version } : {}) },
        });
      }
      throw err;
    }
  }

  async get(id: number): Promise<RolloutRecord | undefined> {
    const r = await this.#db.query<Row>(`SELECT ${COLUMNS} FROM rollouts WHERE id = $1`, [id]);
    return r.rows[0] ? toRecord(r.rows[0]) : undefined;
  }

  async latest(model: string): Promise<RolloutRecord | undefined> {
    const r = await this.#db.query<Row>(`SELECT ${COLUMNS} FROM rollouts WHERE model = $1 ORDER BY id DESC LIMIT 1`, [model]);
    return r.rows[0] ? toRecord(r.rows[0]) : undefined;
  }

  async active(): Promise<RolloutRecord[]> {
    const r = await this.#db.query<Row>(`SELECT ${COLUMNS} FROM rollouts WHERE phase IN ('Progressing', 'Paused') ORDER BY id`);
    return r.rows.map(toRecord);
  }

  async list(filter: { model?: string; limit?: number } = {}): Promise<RolloutRecord[]> {
    const limit = Math.min(Math.max(1, filter.limit ?? 50), 1000);
    const r = filter.model
      ? await this.#db.query<Row>(`SELECT ${COLUMNS} FROM rollouts WHERE model = $1 ORDER BY id DESC LIMIT $2`, [filter.model, limit])
      : await this.#db.query<Row>(`SELECT ${COLUMNS} FROM rollouts ORDER BY id DESC LIMIT $1`, [limit]);
    return r.rows.map(toRecord);
  }

  async save(record: RolloutRecord): Promise<void> {
    const r = await this.#db.query<{ updated_at: Date }>(
      `UPDATE rollouts SET phase = $2, state = $3, message = $4, finished_at = $5, updated_at = now() WHERE id = $1 RETURNING updated_at`,
      [record.id, record.phase, JSON.stringify(record.state), record.message, record.finishedAt],
    );
    if (r.rows[0]) record.updatedAt = r.rows[0].updated_at;
  }
}
