import type { Registry } from '../registry/index.js';
import type { ModelVersion } from '../registry/types.js';
import { fetchAndVerifyModel } from '../serving/fetch.js';
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
 */
export async function registerArchive(registry: Registry, input: RegisterArchiveInput): Promise<{ version: ModelVersion; created: boolean }> {
  const fetched = await fetchAndVerifyModel({ uri: input.uri, trust: input.trust, cacheDir: input.cacheDir, ...(input.limits ? { limits: input.limits } : {}) });
  const m = fetched.manifest;
  return registry.registerVersion({
    name: m.name,
    version: m.version,
    archiveUri: input.uri,
    archiveSha256: fetched.archiveSha256,
    signerKeyId: fetched.archiveSigner.trustedId ?? fetched.archiveSigner.keyHint,
    manifest: m as unknown as Record<string, unknown>,
    lineage: {
      ...(m.parent ? { parentVersion: m.parent.name ? `${m.parent.name}@${m.parent.version}` : m.parent.version } : {}),
      ...(m.dataset ? { datasetUri: m.dataset.uri } : {}),
      signerKeyHint: fetched.archiveSigner.keyHint,
      rootDigest: fetched.verification.rootDigest,
    },
    actor: input.actor,
  });
}
