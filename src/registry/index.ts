import type { Db, Queryable } from '../db/types.js';
import { AegisError } from '../errors.js';
import { toAudit, toSummary, toVersion, VERSION_COLUMNS, VERSION_FROM, type AuditRow, type SummaryRow, type VersionRow } from './rows.js';
import type {
  AuditEntry,
  AuditFilter,
  ModelSummary,
  ModelVersion,
  PromoteOptions,
  PromoteResult,
  RegisterResult,
  RegisterVersionInput,
  Stage,
} from './types.js';
import { checkJsonObject, checkName, checkSha256, checkStage, checkText, checkVersion, parseRef } from './validate.js';

export * from './types.js';
export { parseRef } from './validate.js';

/**
 * The model registry: models, their immutable versions (one signed archive
 * each), stages and lineage, with every change written to the append-only
 * audit log in the same transaction as the change.
 *
 * Stage rules (promote):
 * - production: the previous production version (if another) becomes 'archived';
 * - canary: the previous canary (if another) goes back to 'none';
 * - archived: "retire" — the version is withdrawn on purpose;
 * - promoting a version to the stage it is at changes nothing and writes nothing.
 * An archived version may be promoted again (that is how a rollback to the
 * previous production version works), unless it was *retired* — explicitly
 * moved to 'archived' rather than displaced by a newer production version —
 * in which case promote refuses (VERSION_RETIRED) without `force`.
 * Changes to one model are serialized by locking its `models` row; the partial
 * unique indexes keep "one production, one canary" even for direct SQL.
 */
export const AUDIT_ACTIONS = {
  modelCreate: 'model.create',
  register: 'version.register',
  promote: 'version.promote',
  retire: 'version.retire',
  /** Old production displaced by a promotion. */
  archive: 'version.archive',
  /** Old canary displaced by a promotion. */
  demote: 'version.demote',
} as const;

const STAGE_ACTIONS = [AUDIT_ACTIONS.promote, AUDIT_ACTIONS.retire, AUDIT_ACTIONS.archive, AUDIT_ACTIONS.demote];
const LIST_HINT = 'Run `aegis model list` to see the registered models and their versions.';
const MAX_AUDIT_LIMIT = 10_000;

export function subjectOf(name: string, version?: string): string {
  return version === undefined ? name : `${name}@${version}`;
}

function notFound(message: string, details: Record<string, unknown>, hint = LIST_HINT): AegisError {
  return new AegisError('REGISTRY_NOT_FOUND', message, { hint, details });
}

async function writeAudit(q: Queryable, actor: string, action: string, subject: string, details: Record<string, unknown>): Promise<void> {
  await q.query('INSERT INTO audit_log (actor, action, subject, details) VALUES ($1, $2, $3, $4::jsonb)', [actor, action, subject, JSON.stringify(details)]);
}

export class Registry {
  readonly #db: Db;

  constructor(db: Db) {
    this.#db = db;
  }

  /**
   * Registers name@version. Idempotent: the same name@version with the same
   * archive digest returns the existing row (`created: false`, nothing written);
   * a different digest is refused with VERSION_IMMUTABLE. Creates the model on
   * its first version.
   */
  async registerVersion(input: RegisterVersionInput): Promise<RegisterResult> {
    const name = checkName(input.name);
    const version = checkVersion(input.version);
    const sha = checkSha256(input.archiveSha256);
    const archiveUri = checkText(input.archiveUri, 'archiveUri', 'Pass the URI the archive was stored at (file://… or s3://…).');
    const signerKeyId = checkText(input.signerKeyId, 'signerKeyId', 'Pass the id of the key that signed the archive.');
    const actor = checkText(input.actor, 'actor', 'Pass who registers the version (a user or service name).');
    const manifest = checkJsonObject(input.manifest, 'manifest');
    const lineage = checkJsonObject(input.lineage ?? {}, 'lineage');
    const subject = subjectOf(name, version);

    return this.#db.transaction(async (tx) => {
      const created = await tx.query('INSERT INTO models (name) VALUES ($1) ON CONFLICT (name) DO NOTHING RETURNING id', [name]);
      // Lock the model: registrations and stage changes of one model are serialized.
      const model = await tx.query<{ id: number }>('SELECT id FROM models WHERE name = $1 FOR UPDATE', [name]);
      const modelId = model.rows[0]!.id;
      const inserted = await tx.query<{ id: number }>(
        `INSERT INTO model_versions (model_id, version, archive_uri, archive_sha256, signer_key_id, manifest, lineage)
         VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb)
         ON CONFLICT (model_id, version) DO NOTHING RETURNING id`,
        [modelId, version, archiveUri, sha, signerKeyId, manifest, lineage],
      );
      if (inserted.rowCount === 0) {
        const existing = (await this.#versionIn(tx, name, version))!;
        if (existing.archiveSha256 !== sha) {
          throw new AegisError(
            'VERSION_IMMUTABLE',
            `${subject} is already registered with archive sha256 ${existing.archiveSha256}; refusing a different archive (sha256 ${sha})`,
            {
              hint: `Versions are immutable: publish the new archive as a new version of ${name}.`,
              details: { name, version, registeredSha256: existing.archiveSha256, offeredSha256: sha },
            },
          );
        }
        return { version: existing, created: false };
      }
      if (created.rowCount === 1) await writeAudit(tx, actor, AUDIT_ACTIONS.modelCreate, name, {});
      await writeAudit(tx, actor, AUDIT_ACTIONS.register, subject, { archiveUri, archiveSha256: sha, signerKeyId });
      return { version: (await this.#versionIn(tx, name, version))!, created: true };
    });
  }

  /** Every model with its latest, production and canary versions, by name. */
  async listModels(): Promise<ModelSummary[]> {
    const r = await this.#db.query<SummaryRow>(
      `SELECT m.id, m.name, m.created_at,
         (SELECT count(*) FROM model_versions v WHERE v.model_id = m.id)::int AS version_count,
         (SELECT v.version FROM model_versions v WHERE v.model_id = m.id ORDER BY v.id DESC LIMIT 1) AS latest_version,
         (SELECT v.version FROM model_versions v WHERE v.model_id = m.id AND v.stage = 'production') AS production_version,
         (SELECT v.version FROM model_versions v WHERE v.model_id = m.id AND v.stage = 'canary') AS canary_version
       FROM models m ORDER BY m.name`,
    );
    return r.rows.map(toSummary);
  }

  /** The versions of a model, newest first. */
  async listVersions(name: string): Promise<ModelVersion[]> {
    checkName(name);
    const r = await this.#db.query<VersionRow>(`SELECT ${VERSION_COLUMNS} FROM ${VERSION_FROM} WHERE m.name = $1 ORDER BY v.id DESC`, [name]);
    if (r.rows.length === 0) await this.#assertModel(this.#db, name);
    return r.rows.map(toVersion);
  }

  async getVersion(name: string, version: string): Promise<ModelVersion> {
    checkName(name);
    checkVersion(version);
    const v = await this.#versionIn(this.#db, name, version);
    if (v) return v;
    await this.#assertModel(this.#db, name);
    throw notFound(`model ${name} has no version ${version}`, { name, version });
  }

  /**
   * Resolves `name@version`, `name@production|canary|staging` (the version at
   * that stage; for staging, which may hold several, the newest), or `name` /
   * `name@latest` (the newest registered version).
   */
  async resolve(ref: string): Promise<ModelVersion> {
    const p = parseRef(ref);
    if (p.kind === 'version') return this.getVersion(p.name, p.version);
    const where = p.kind === 'stage' ? 'AND v.stage = $2' : '';
    const params = p.kind === 'stage' ? [p.name, p.stage] : [p.name];
    const r = await this.#db.query<VersionRow>(
      `SELECT ${VERSION_COLUMNS} FROM ${VERSION_FROM} WHERE m.name = $1 ${where} ORDER BY v.id DESC LIMIT 1`,
      params,
    );
    if (r.rows[0]) return toVersion(r.rows[0]);
    await this.#assertModel(this.#db, p.name);
    if (p.kind === 'stage') {
      throw notFound(`no version of ${p.name} is at stage ${p.stage}`, { ref, name: p.name, stage: p.stage }, `Promote one first (\`aegis model promote ${p.name}@VERSION ${p.stage}\`); ${LIST_HINT}`);
    }
    throw notFound(`model ${p.name} has no versions`, { ref, name: p.name });
  }

  /** Moves a version to `stage`; see the class comment for the rules. */
  async promote(name: string, version: string, stage: Stage, actor: string, options: PromoteOptions = {}): Promise<PromoteResult> {
    checkName(name);
    checkVersion(version);
    const to = checkStage(stage);
    checkText(actor, 'actor', 'Pass who promotes the version (a user or service name).');
    const subject = subjectOf(name, version);

    return this.#db.transaction(async (tx) => {
      const model = await tx.query<{ id: number }>('SELECT id FROM models WHERE name = $1 FOR UPDATE', [name]);
      if (!model.rows[0]) throw notFound(`model ${name} is not registered`, { name });
      const modelId = model.rows[0].id;
      const target = await this.#versionIn(tx, name, version);
      if (!target) throw notFound(`model ${name} has no version ${version}`, { name, version });
      const from = target.stage;
      if (from === to) return { version: target, previousStage: from, changed: false, displaced: [] };
      if (from === 'archived' && !options.force) await this.#assertNotRetired(tx, name, version);

      const displaced: PromoteResult['displaced'] = [];
      if (to === 'production' || to === 'canary') {
        const next: Stage = to === 'production' ? 'archived' : 'none';
        const moved = await tx.query<{ version: string }>(
          'UPDATE model_versions SET stage = $1 WHERE model_id = $2 AND stage = $3 AND id <> $4 RETURNING version',
          [next, modelId, to, target.id],
        );
        for (const row of moved.rows) {
          displaced.push({ version: row.version, from: to, to: next });
          await writeAudit(tx, actor, to === 'production' ? AUDIT_ACTIONS.archive : AUDIT_ACTIONS.demote, subjectOf(name, row.version), {
            from: to,
            to: next,
            replacedBy: version,
          });
        }
      }
      await tx.query('UPDATE model_versions SET stage = $1 WHERE id = $2', [to, target.id]);
      await writeAudit(tx, actor, to === 'archived' ? AUDIT_ACTIONS.retire : AUDIT_ACTIONS.promote, subject, {
        from,
        to,
        ...(options.reason ? { reason: options.reason } : {}),
        ...(options.force ? { force: true } : {}),
      });
      return { version: { ...target, stage: to }, previousStage: from, changed: true, displaced };
    });
  }

  /**
   * Records an event about a model or version that another module owns (e.g.
   * `rollout.start`, `rollout.abort`) in the same append-only audit log, so
   * `aegis model history` shows the whole story.
   */
  async recordEvent(actor: string, action: string, name: string, version: string | undefined, details: Record<string, unknown>): Promise<void> {
    checkName(name);
    if (version !== undefined) checkVersion(version);
    checkText(actor, 'actor', 'Pass who acted (a user or service name).');
    await writeAudit(this.#db, actor, action, subjectOf(name, version), details);
  }

  /** Audit entries matching `filter`, newest first. */
  async audit(filter: AuditFilter = {}): Promise<AuditEntry[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    const add = (clause: string, value: unknown) => {
      params.push(value);
      where.push(clause.replace('?', `$${params.length}`));
    };
    if (filter.model !== undefined) add("split_part(subject, '@', 1) = ?", checkName(filter.model));
    if (filter.subject !== undefined) add('subject = ?', filter.subject);
    if (filter.action !== undefined) add('action = ?', filter.action);
    if (filter.actor !== undefined) add('actor = ?', filter.actor);
    if (filter.since !== undefined) add('at >= ?', filter.since);
    const limit = filter.limit ?? 100;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_AUDIT_LIMIT) {
      throw new AegisError('REGISTRY_INPUT_INVALID', `audit limit must be an integer from 1 to ${MAX_AUDIT_LIMIT}, not ${limit}`, {
        hint: 'Narrow the query with a model, action or since filter instead of a larger limit.',
        details: { limit },
      });
    }
    params.push(limit);
    const r = await this.#db.query<AuditRow>(
      `SELECT id, at, actor, action, subject, details FROM audit_log
       ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT $${params.length}`,
      params,
    );
    return r.rows.map(toAudit);
  }

  async #versionIn(q: Queryable, name: string, version: string): Promise<ModelVersion | undefined> {
    const r = await q.query<VersionRow>(`SELECT ${VERSION_COLUMNS} FROM ${VERSION_FROM} WHERE m.name = $1 AND v.version = $2`, [name, version]);
    return r.rows[0] ? toVersion(r.rows[0]) : undefined;
  }

  async #assertModel(q: Queryable, name: string): Promise<void> {
    const r = await q.query('SELECT 1 FROM models WHERE name = $1', [name]);
    if (r.rows.length === 0) throw notFound(`model ${name} is not registered`, { name });
  }

  /** A version whose last stage change was an explicit retirement needs `force` to come back. */
  async #assertNotRetired(q: Queryable, name: string, version: string): Promise<void> {
    const r = await q.query<AuditRow>(
      `SELECT id, at, actor, action, subject, details FROM audit_log
       WHERE subject = $1 AND action = ANY($2::text[]) ORDER BY id DESC LIMIT 1`,
      [subjectOf(name, version), STAGE_ACTIONS],
    );
    const last = r.rows[0] ? toAudit(r.rows[0]) : undefined;
    if (last?.action !== AUDIT_ACTIONS.retire) return;
    const reason = typeof last.details.reason === 'string' ? ` (${last.details.reason})` : '';
    throw new AegisError('VERSION_RETIRED', `${name}@${version} was retired by ${last.actor} at ${last.at.toISOString()}${reason}`, {
      hint: 'A retired version stays out of service unless brought back on purpose: publish a new version, or promote it with --force.',
      details: { name, version, retiredBy: last.actor, retiredAt: last.at.toISOString() },
    });
  }
}
