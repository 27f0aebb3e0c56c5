import type { ExtractLimits } from '../artifact/archive.js';
import type { Registry } from '../registry/index.js';
import { fetchAndVerifyModel } from '../serving/fetch.js';
import type { TrustAnchor } from '../signing/trust.js';
import type { VersionRegistrar } from './types.js';

export interface VerifyingRegistrarOptions {
  registry: Registry;
  /** The trust policy servers verify against: a version the pipeline registers is one they will load. */
  trust: TrustAnchor;
  cacheDir: string;
  limits?: ExtractLimits;
}

/**
 * The registrar the pipeline uses: fetch and verify the pushed archive
 * exactly as a model server would (fetchAndVerifyModel: detached signature,
 * safe extraction, OMS bundle, manifest), then register it with the digest and
 * signer that verification established, and the lineage from the verified
 * manifest plus the run's (alert, tracking run). `aegis model register`
 * (control/register.ts) uses it too.
 */
export function verifyingRegistrar(o: VerifyingRegistrarOptions): VersionRegistrar {
  return {
    async register(input) {
      const fetched = await fetchAndVerifyModel({ uri: input.uri, trust: o.trust, cacheDir: o.cacheDir, ...(o.limits ? { limits: o.limits } : {}) });
      const m = fetched.manifest;
      return o.registry.registerVersion({
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
          ...input.lineage,
        },
        actor: input.actor,
      });
    },
  };
}
