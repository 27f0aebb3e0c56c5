import type { AuditEntry, Lineage, ModelSummary, ModelVersion, Stage } from './types.js';

/** SQL row shapes and their mapping to registry records. */
export const VERSION_COLUMNS = `v.id, v.model_id, m.name, v.version, v.archive_uri, v.archive_sha256, v.signer_key_id,
  v.stage, v.created_at, v.manifest, v.lineage`;
export const VERSION_FROM = 'model_versions v JOIN models m ON m.id = v.model_id';

export interface VersionRow {
  id: number | bigint;
  model_id: number | bigint;
  name: string;
  version: string;
  archive_uri: string;
  archive_sha256: string;
  signer_key_id: string | null;
  stage: Stage;
  created_at: Date;
  manifest: Record<string, unknown>;
  lineage: Lineage;
}

export function toVersion(r: VersionRow): ModelVersion {
  return {
    id: Number(r.id),
    modelId: Number(r.model_id),
    name: r.name,
    version: r.version,
    archiveUri: r.archive_uri,
    archiveSha256: r.archive_sha256,
    signerKeyId: r.signer_key_id,
    stage: r.stage,
    createdAt: r.created_at,
    manifest: r.manifest,
    lineage: r.lineage,
  };
}

export interface SummaryRow {
  id: number | bigint;
  name: string;
  created_at: Date;
  version_count: number;
  latest_version: string | null;
  production_version: string | null;
  canary_version: string | null;
}

export function toSummary(r: SummaryRow): ModelSummary {
  return {
    id: Number(r.id),
    name: r.name,
    createdAt: r.created_at,
    versionCount: Number(r.version_count),
    latestVersion: r.latest_version,
    productionVersion: r.production_version,
    canaryVersion: r.canary_version,
  };
}

export interface AuditRow {
  id: number | bigint;
  at: Date;
  actor: string;
  action: string;
  subject: string;
  details: Record<string, unknown>;
}

export function toAudit(r: AuditRow): AuditEntry {
  return { id: Number(r.id), at: r.at, actor: r.actor, action: r.action, subject: r.subject, details: r.details };
}
