/**
 * Registry records as the rest of Aegis sees them: camelCase, Dates, parsed JSON.
 */
export const STAGES = ['none', 'staging', 'canary', 'production', 'archived'] as const;
export type Stage = (typeof STAGES)[number];

/** Stages a ref can name (`name@production`): the ones that mean "the version serving in that role". */
export const REF_STAGES = ['staging', 'canary', 'production'] as const;

/** Where a version came from. Free-form beyond the conventional fields. */
export interface Lineage {
  /** The version this one was derived from (`name@version` or a version of the same model). */
  parentVersion?: string;
  /** The training data (s3://…, file://…, an MLflow dataset URI). */
  datasetUri?: string;
  /** E.g. an MLflow run id or a pipeline run id. */
  runId?: string;
  [key: string]: unknown;
}

export interface ModelVersion {
  id: number;
  modelId: number;
  name: string;
  version: string;
  archiveUri: string;
  archiveSha256: string;
  signerKeyId: string | null;
  stage: Stage;
  createdAt: Date;
  manifest: Record<string, unknown>;
  lineage: Lineage;
}

export interface ModelSummary {
  id: number;
  name: string;
  createdAt: Date;
  versionCount: number;
  /** The most recently registered version. */
  latestVersion: string | null;
  productionVersion: string | null;
  canaryVersion: string | null;
}

export interface RegisterVersionInput {
  name: string;
  version: string;
  archiveUri: string;
  /** SHA-256 of the archive, 64 hex digits. It is the version's identity. */
  archiveSha256: string;
  signerKeyId: string;
  manifest: Record<string, unknown>;
  lineage?: Lineage;
  actor: string;
}

export interface RegisterResult {
  version: ModelVersion;
  /** false when this exact name@version + digest was already registered (an idempotent retry). */
  created: boolean;
}

export interface PromoteOptions {
  /** Why (recorded in the audit log). */
  reason?: string;
  /** Bring back a version that was retired (explicitly moved to 'archived'). */
  force?: boolean;
}

export interface PromoteResult {
  version: ModelVersion;
  previousStage: Stage;
  /** false when the version was already at that stage (nothing written). */
  changed: boolean;
  /** Other versions moved out of the way (old production → archived, old canary → none). */
  displaced: Array<{ version: string; from: Stage; to: Stage }>;
}

export interface AuditEntry {
  id: number;
  at: Date;
  actor: string;
  action: string;
  subject: string;
  details: Record<string, unknown>;
}

export interface AuditFilter {
  /** Entries about this model and all its versions. */
  model?: string;
  /** Exact subject, e.g. `fraud@1.2.0`. */
  subject?: string;
  action?: string;
  actor?: string;
  since?: Date;
  /** Default 100, at most 10 000. */
  limit?: number;
}
