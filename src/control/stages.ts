import { isAegisError } from '../errors.js';
import type { Registry } from '../registry/index.js';
import type { VersionCheck } from '../rollout/controller/index.js';
import type { StageRecorder } from '../rollout/controller/types.js';

/** The registry as the rollout controller sees it: stage changes, audit entries, and the production version. */
export class RegistryStages implements StageRecorder, VersionCheck {
  readonly #registry: Registry;

  constructor(registry: Registry) {
    this.#registry = registry;
  }

  async productionOf(model: string, version: string): Promise<string | null> {
    await this.#registry.getVersion(model, version); // REGISTRY_NOT_FOUND names what is missing
    try {
      return (await this.#registry.resolve(`${model}@production`)).version;
    } catch (err) {
      if (isAegisError(err, 'REGISTRY_NOT_FOUND')) return null;
      throw err;
    }
  }

  async canary(model: string, version: string, actor: string, reason: string): Promise<void> {
    await this.#registry.promote(model, version, 'canary', actor, { reason });
  }

  async production(model: string, version: string, actor: string, reason: string): Promise<void> {
    await this.#registry.promote(model, version, 'production', actor, { reason });
  }

  async audit(actor: string, action: string, model: string, version: string, details: Record<string, unknown>): Promise<void> {
    await this.#registry.recordEvent(actor, action, model, version, details);
  }
}
