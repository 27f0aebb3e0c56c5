import type { ChildProcess } from 'node:child_process';
import { AegisError } from '../errors.js';
import { childLogger } from '../log.js';
import type { RolloutTarget } from '../rollout/controller/types.js';
import { Gateway } from '../rollout/gateway/index.js';
import { SlidingWindowStats } from '../rollout/providers/embedded/index.js';
import { startServer, stopServer } from '../serving/process.js';

const log = () => childLogger('deployment');

export interface LocalDeploymentOptions {
  /** The archive URI of a registered version (the control plane asks the registry). */
  archiveOf(model: string, version: string): Promise<string>;
  /** Trust policy file the model servers verify against. */
  trustPath: string;
  /** Extra `aegis serve` arguments for every server (e.g. --threads 2). */
  serverArgs?: string[];
  /** Environment of the model servers (default: this process's). */
  env?: NodeJS.ProcessEnv;
}

interface Slot {
  version: string;
  child: ChildProcess;
  url: string;
}

interface Served {
  gateway: Gateway;
  url: string;
  stable: Slot;
  canary: Slot | undefined;
  stats: SlidingWindowStats;
}

/**
 * The local rollout target: for each model a stable `aegis serve` child (and a
 * canary one during a rollout), each on its own ephemeral 127.0.0.1 port,
 * behind an in-process Aegis gateway on the public port. The gateway splits
 * inference traffic by the canary weight and feeds its per-track counters
 * (status, latency) into a sliding window the embedded metric provider reads.
 * A server is only stopped after the gateway has no request in flight to it,
 * so promotion and abort drop nothing.
 */
export class LocalDeployment implements RolloutTarget {
  readonly #o: LocalDeploymentOptions;
  readonly #models = new Map<string, Served>();

  constructor(options: LocalDeploymentOptions) {
    this.#o = options;
  }

  /** Serves `model@version` as the stable behind a gateway on `port`; returns the gateway URL. */
  async serve(model: string, version: string, port: number, host = '127.0.0.1'): Promise<string> {
    if (this.#models.has(model)) throw new AegisError('USAGE', `${model} is already served`, { hint: 'Serve each model once.' });
    const stable = await this.#start(model, version, 'stable');
    const ref: { served?: Served } = {};
    const gateway = new Gateway({
      model,
      stable: { url: stable.url, version },
      onResult: (track, status, latencyMs) => ref.served?.stats.record(track, status, latencyMs),
    });
    let url: string;
    try {
      url = await gateway.listen(port, host);
    } catch (err) {
      await stopServer(stable.child);
      await gateway.close();
      const e = err as NodeJS.ErrnoException;
      throw new AegisError('SERVER_START_FAILED', `cannot listen on ${host}:${port}: ${e.message}`, {
        cause: err,
        hint: e.code === 'EADDRINUSE' ? `Port ${port} is taken (another \`aegis up\`?); pass another --port.` : 'Check --host and --port.',
      });
    }
    ref.served = { gateway, url, stable, canary: undefined, stats: new SlidingWindowStats() };
    this.#models.set(model, ref.served);
    return url;
  }

  /** What is served: model → gateway URL, stable and canary versions and server URLs, weight. */
  describe(): Array<{ model: string; url: string; weight: number; stable: { version: string; url: string }; canary: { version: string; url: string } | null }> {
    return [...this.#models].map(([model, s]) => ({
      model,
      url: s.url,
      weight: s.gateway.weight,
      stable: { version: s.stable.version, url: s.stable.url },
      canary: s.canary ? { version: s.canary.version, url: s.canary.url } : null,
    }));
  }

  async deployCanary(model: string, version: string, options: { injectFault?: string }): Promise<void> {
    const s = this.#served(model);
    if (s.canary?.version === version) return; // already running (a resumed rollout)
    if (s.canary) await this.removeCanary(model);
    const slot = await this.#start(model, version, 'canary', options.injectFault);
    s.stats = new SlidingWindowStats(); // the canary track's window starts with this canary
    s.canary = slot;
    s.gateway.setCanary({ url: slot.url, version });
    s.gateway.setWeight(0);
  }

  async setWeight(model: string, weight: number): Promise<void> {
    const s = this.#served(model);
    if (!s.canary && weight > 0) throw new AegisError('ROLLOUT_TARGET_MISSING', `${model} has no canary server to send ${weight}% to`, { hint: 'This is a controller bug; abort the rollout.' });
    s.gateway.setWeight(weight);
  }

  async promoteCanary(model: string): Promise<void> {
    const s = this.#served(model);
    const canary = s.canary;
    if (!canary) return;
    const old = s.stable;
    // A fresh server of the promoted version on the stable track: the servers' own metrics carry the track label the
    // alert rules compare, so the promoted canary process (labelled canary) is replaced rather than relabelled.
    let fresh: Slot | undefined;
    try {
      fresh = await this.#start(model, canary.version, 'stable');
    } catch (err) {
      log().warn({ event: 'stable_restart_failed', model, version: canary.version, err: (err as Error).message }, 'could not start a stable-track server for the promoted version; the canary server serves as stable');
    }
    s.gateway.promoteCanary(fresh ? { url: fresh.url, version: fresh.version } : undefined);
    s.stable = fresh ?? canary;
    s.canary = undefined;
    const retired = fresh ? [old, canary] : [old];
    await Promise.all(
      retired.map(async (slot) => {
        await s.gateway.drained(slot.url);
        await stopServer(slot.child);
      }),
    );
    log().info({ event: 'stable_replaced', model, version: s.stable.version, previous: old.version }, 'canary is the new stable');
  }

  async removeCanary(model: string): Promise<void> {
    const s = this.#served(model);
    const c = s.canary;
    if (!c) return;
    s.gateway.setWeight(0);
    s.gateway.setCanary(undefined);
    s.canary = undefined;
    await s.gateway.drained(c.url);
    await stopServer(c.child);
    log().info({ event: 'canary_removed', model, version: c.version }, 'canary stopped');
  }

  trafficStats(model: string): SlidingWindowStats | undefined {
    return this.#models.get(model)?.stats;
  }

  /** Stops the gateways, then the servers. */
  async close(): Promise<void> {
    for (const s of this.#models.values()) {
      await s.gateway.close();
      await Promise.all([s.stable, s.canary].filter((x): x is Slot => !!x).map((x) => stopServer(x.child)));
    }
    this.#models.clear();
  }

  #served(model: string): Served {
    const s = this.#models.get(model);
    if (!s) {
      throw new AegisError('ROLLOUT_TARGET_MISSING', `${model} is not served by this control plane`, {
        hint: `The local control plane serves ${[...this.#models.keys()].join(', ') || 'no model'}; roll out a version of one of those.`,
        details: { model },
      });
    }
    return s;
  }

  async #start(model: string, version: string, track: 'stable' | 'canary', injectFault?: string): Promise<Slot> {
    const uri = await this.#o.archiveOf(model, version);
    // No hot swap on servers the control plane manages: a version change is a new process (rollout or promotion).
    const args = ['--model', uri, '--trust', this.#o.trustPath, '--port', '0', '--name', model, '--track', track, '--no-repository-load', ...(this.#o.serverArgs ?? [])];
    if (injectFault) args.push('--inject-fault', injectFault);
    const { child, ready } = await startServer(args, this.#o.env);
    if (ready.version !== version) {
      await stopServer(child);
      throw new AegisError('ROLLOUT_TARGET_MISSING', `the archive registered as ${model}@${version} holds version ${String(ready.version)}`, { hint: 'Re-register the version with its own archive.' });
    }
    log().info({ event: 'server_started', model, version, track, url: ready.url, ...(injectFault ? { injectFault } : {}) }, 'model server started');
    return { version, child, url: String(ready.url) };
  }
}
