import { existsSync } from 'node:fs';
import { userInfo } from 'node:os';
import type { AegisConfig } from '../config/index.js';
import { platformPaths } from '../config/index.js';
import type { Db } from '../db/index.js';
import { AegisError } from '../errors.js';
import type { Registry } from '../registry/index.js';
import { resolveTrustAnchor, type AnchorOptions } from '../signing/anchor.js';
import type { TrustAnchor } from '../signing/trust.js';
import { openStore } from '../store/index.js';
import type { ArtifactStore } from '../store/types.js';

/**
 * What CLI commands share: the database, the registry, the artifact store,
 * the trust anchor. Opened on first use and closed by `close()`.
 */
export class CliContext {
  #db?: Db;
  #registry?: Registry;
  readonly config: AegisConfig;

  constructor(config: AegisConfig) {
    this.config = config;
  }

  get paths() {
    return platformPaths(this.config);
  }

  async registry(): Promise<Registry> {
    if (!this.#registry) {
      // Database drivers load on first use: most commands never open the registry.
      const [{ openDb }, { Registry }] = await Promise.all([import('../db/index.js'), import('../registry/index.js')]);
      this.#db = await openDb(this.config.databaseUrl ? { url: this.config.databaseUrl } : { dataDir: this.paths.db });
      this.#registry = new Registry(this.#db);
    }
    return this.#registry;
  }

  /** The migrated database the registry uses. */
  async db(): Promise<Db> {
    await this.registry();
    return this.#db!;
  }

  store(uri?: string): ArtifactStore {
    return openStore(uri ?? this.paths.store);
  }

  actor(): string {
    if (this.config.actor) return this.config.actor;
    try {
      return userInfo().username;
    } catch {
      return 'unknown';
    }
  }

  /** The trust anchor from flags, or the platform's trust policy (<home>/trust.yaml) when none is given. */
  async trust(o: AnchorOptions): Promise<TrustAnchor> {
    const given = o.publicKey || o.trust || (o.certChain && o.certChain.length > 0);
    if (!given) {
      if (!existsSync(this.paths.trust)) {
        throw new AegisError('USAGE', 'no trust anchor given and no platform trust policy found', {
          hint: `Pass --public-key KEY.pem or --trust TRUST.yaml (or create ${this.paths.trust}, e.g. with \`aegis keys rotate --trust ${this.paths.trust} --out-dir …\`).`,
        });
      }
      return resolveTrustAnchor({ trust: this.paths.trust });
    }
    return resolveTrustAnchor(o);
  }

  async close(): Promise<void> {
    await this.#db?.close();
  }
}
