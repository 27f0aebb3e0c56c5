import type { Registry } from '../registry/index.js';
import type { AuditEntry, AuditFilter, ModelSummary, ModelVersion, PromoteOptions, PromoteResult, Stage } from '../registry/types.js';
import { reviveDates, type ControlClient } from './client.js';

/** What the registry commands use; the Registry itself, or RemoteRegistry through the control plane. */
export type RegistryView = Pick<Registry, 'listModels' | 'listVersions' | 'resolve' | 'promote' | 'audit'>;

/**
 * The registry through the control plane's API (GET/POST /api/v1/registry/…),
 * for CLI commands run while `aegis up` holds the embedded database. The
 * control plane applies the same Registry rules; the actor is the CLI's.
 */
export class RemoteRegistry implements RegistryView {
  readonly #client: ControlClient;

  constructor(client: ControlClient) {
    this.#client = client;
  }

  async listModels(): Promise<ModelSummary[]> {
    return reviveDates((await this.#client.request<{ models: ModelSummary[] }>('GET', '/api/v1/registry/models')).models);
  }

  async listVersions(name: string): Promise<ModelVersion[]> {
    return reviveDates((await this.#client.request<{ versions: ModelVersion[] }>('GET', `/api/v1/registry/models/${encodeURIComponent(name)}/versions`)).versions);
  }

  async resolve(ref: string): Promise<ModelVersion> {
    return reviveDates(await this.#client.request<ModelVersion>('GET', `/api/v1/registry/resolve?${new URLSearchParams({ ref })}`));
  }

  async promote(name: string, version: string, stage: Stage, _actor: string, options: PromoteOptions = {}): Promise<PromoteResult> {
    return reviveDates(await this.#client.request<PromoteResult>('POST', '/api/v1/registry/promote', { name, version, stage, ...options }));
  }

  async audit(filter: AuditFilter = {}): Promise<AuditEntry[]> {
    const q = new URLSearchParams(Object.entries(filter).map(([k, v]): [string, string] => [k, v instanceof Date ? v.toISOString() : String(v)]));
    return reviveDates((await this.#client.request<{ entries: AuditEntry[] }>('GET', `/api/v1/registry/audit?${q}`)).entries);
  }
}
