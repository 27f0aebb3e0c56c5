import type { ModelVersion } from '../registry/types.js';
import type { Registry } from '../registry/index.js';
import { verifyingRegistrar } from '../pipeline/registrar.js';
import type { TrustAnchor } from '../signing/trust.js';

export interface RegisterArchiveInput {
  /** Canonical archive URI (file://… or s3://…). */
  uri: string;
  trust: TrustAnchor;
  cacheDir: string;
  limits?: { maxEntries: number; maxBytes: number };
  actor: string;
}

/**
 * `aegis model register` (and POST /api/v1/versions): fetch and verify the
 * archive exactly as a server would, then record it with its lineage. The
 * digest and signer come from this verification, never from the caller.
 * (The same registrar the retrain pipeline uses.)
 */
export async function registerArchive(registry: Registry, input: RegisterArchiveInput): Promise<{ version: ModelVersion; created: boolean }> {
  const registrar = verifyingRegistrar({ registry, trust: input.trust, cacheDir: input.cacheDir, ...(input.limits ? { limits: input.limits } : {}) });
  return registrar.register({ uri: input.uri, lineage: {}, actor: input.actor });
}
