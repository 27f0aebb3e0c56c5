import { isAbsolute } from 'node:path';
import { z } from 'zod';
import { platformPaths, type AegisConfig } from '../config/index.js';
import type { Db } from '../db/types.js';
import { AegisError } from '../errors.js';
import type { TrustAnchor } from '../signing/trust.js';
import { openStore } from '../store/index.js';

/**
 * `aegis db backup` and `aegis db drill` run here, in the control plane,
 * while `aegis up` holds the embedded database (the CLI cannot open it:
 * DB_LOCKED). Same work, same records, same reports as the CLI's own path;
 * the request carries what the command line said.
 */
const COUNT = z.number().int().min(0).max(100_000);
/** Files named in a request are on this machine (the embedded database is local): absolute paths only. */
const PATH = z.string().min(1).max(4096).refine(isAbsolute, 'an absolute path');
/** A store, backup or database location: a URI (s3://, file://, postgres://) or an absolute path; a relative one would be read from the control plane's folder. */
const LOCATION = z
  .string()
  .min(1)
  .max(4096)
  .refine((v) => /^[a-z][a-z0-9+.-]*:\/\//i.test(v) || isAbsolute(v), 'a URI or an absolute path');

export const dbBackupRequest = z
  .object({
    to: LOCATION.optional(),
    format: z.enum(['pgdump', 'logical']).optional(),
    trigger: z.enum(['manual', 'schedule']).optional(),
    keepDaily: COUNT.optional(),
    keepWeekly: COUNT.optional(),
  })
  .strict();
export type DbBackupRequest = z.infer<typeof dbBackupRequest>;

export const dbDrillRequest = z
  .object({
    store: LOCATION.optional(),
    /** `latest`, a backup id, or a backup's location. */
    from: z.union([z.literal('latest'), z.string().regex(/^\d{8}T\d{6}Z(-\d+)?$/, 'a backup id'), LOCATION]).optional(),
    format: z.enum(['pgdump', 'logical']).optional(),
    scratchUrl: LOCATION.optional(),
    verifyArchives: z.boolean().optional(),
    signatureCache: z.boolean().optional(),
    publicKey: PATH.optional(),
    trust: PATH.optional(),
    healthUrl: z.string().url().max(4096).optional(),
  })
  .strict();
export type DbDrillRequest = z.infer<typeof dbDrillRequest>;

export interface DatabaseOps {
  backup(req: DbBackupRequest): Promise<unknown>;
  drill(req: DbDrillRequest): Promise<unknown>;
}

export function databaseOps(o: { config: AegisConfig; db: Db; trust: TrustAnchor }): DatabaseOps {
  const source = () => (o.config.databaseUrl ? { db: o.db, url: o.config.databaseUrl } : { db: o.db });
  return {
    async backup(req) {
      const B = await import('../backup/index.js');
      const keep = req.keepDaily !== undefined || req.keepWeekly !== undefined ? { keepDaily: req.keepDaily ?? 0, keepWeekly: req.keepWeekly ?? 0 } : undefined;
      const r = await B.runRecordedBackup({
        source: source(),
        store: B.backupStore(o.config, req.to),
        ...(req.format ? { format: B.FORMAT_NAMES[req.format] } : {}),
        tools: B.pgTools(o.config),
        runs: new B.DbBackupRunLog(o.db),
        trigger: req.trigger ?? 'manual',
        retention: keep,
      });
      return { ok: true, uri: r.result.uri, manifest: r.result.manifest, ...(r.pruned ? { pruned: r.pruned } : {}) };
    },
    async drill(req) {
      const B = await import('../backup/index.js');
      let archives: Awaited<Parameters<typeof B.runDrill>[0]>['archives'];
      if (req.verifyArchives === false) archives = { skip: 'disabled by --no-verify-archives' };
      else {
        if (req.publicKey && req.trust) throw new AegisError('USAGE', 'give only one trust anchor', { hint: 'Pass --public-key or --trust, not both.' });
        const { resolveTrustAnchor } = await import('../signing/anchor.js');
        const trust = req.publicKey ? await resolveTrustAnchor({ publicKey: req.publicKey }) : req.trust ? await resolveTrustAnchor({ trust: req.trust }) : o.trust;
        archives = {
          trust,
          store: openStore(platformPaths(o.config).store),
          ...(req.signatureCache === false ? {} : { signatureCache: B.signatureCachePath(o.config) }),
        };
      }
      const url = o.config.databaseUrl;
      const scratch = req.scratchUrl ? B.existingScratch(req.scratchUrl) : url ? B.postgresScratch(url) : B.pgliteScratch();
      return B.runDrill({
        source: source(),
        store: B.backupStore(o.config, req.store),
        from: req.from,
        ...(req.format ? { format: B.FORMAT_NAMES[req.format] } : {}),
        scratch,
        tools: B.pgTools(o.config),
        archives,
        healthUrl: req.healthUrl ?? o.config.backup.healthUrl,
        runs: new B.DbBackupRunLog(o.db),
      });
    },
  };
}
