/**
 * Test and bench helpers for the receiver (not used by production code).
 * FakePipeline stands in for src/pipeline, which is not built yet: it records
 * each start call and, as the RetrainTrigger contract asks, answers the same
 * run id for a repeated requestId.
 */
import { readFileSync } from 'node:fs';
import Fastify, { type FastifyInstance } from 'fastify';
import { Registry } from 'prom-client';
import type { Db } from '../db/types.js';
import { registerAlertReceiver, type AlertReceiver, type AlertReceiverOptions } from './receiver.js';
import type { RetrainRequest, RetrainTrigger } from './store.js';

export const TEST_TOKEN = 'test-token-0123456789abcdef';

/** The seed's sample payload (docs/seeds: "Example test payload (test-alert.json)"), byte for byte. */
export const SEED_PAYLOAD_TEXT = readFileSync(new URL('./fixtures/seed-test-alert.json', import.meta.url), 'utf8');

export class FakePipeline implements RetrainTrigger {
  readonly calls: RetrainRequest[] = [];
  readonly runs = new Map<string, string>();
  /** When set, start() throws it (the pipeline is down). */
  failWith: Error | undefined;

  async start(request: RetrainRequest): Promise<{ runId: string }> {
    this.calls.push(request);
    if (this.failWith) throw this.failWith;
    let runId = this.runs.get(request.requestId);
    if (!runId) {
      runId = `run-${this.runs.size + 1}`;
      this.runs.set(request.requestId, runId);
    }
    return { runId };
  }

  /** Distinct runs started. */
  get runCount(): number {
    return this.runs.size;
  }
}

export interface TestReceiver {
  app: FastifyInstance;
  receiver: AlertReceiver;
  pipeline: FakePipeline;
  registry: Registry;
}

/** A fastify app with only the receiver mounted (as the control plane will), ready for inject(). */
export async function receiverApp(db: Db, options: Partial<AlertReceiverOptions> = {}, pipeline = new FakePipeline()): Promise<TestReceiver> {
  const app = Fastify({ logger: false });
  const registry = new Registry();
  const receiver = await registerAlertReceiver(app, { db, trigger: pipeline, token: TEST_TOKEN, registry, drainIntervalMs: 0, ...options });
  await app.ready();
  return { app, receiver, pipeline, registry };
}

export interface AlertSpec {
  alertname?: string;
  status?: 'firing' | 'resolved';
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  startsAt?: string;
  fingerprint?: string;
}

/** A version-4 payload as Alertmanager sends it (with the fields newer versions add). */
export function payload(alerts: AlertSpec[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  const list = alerts.map((a) => ({
    status: a.status ?? 'firing',
    labels: { alertname: a.alertname ?? 'ModelDrift', severity: 'critical', ...a.labels },
    annotations: { summary: 'model drift detected', ...a.annotations },
    startsAt: a.startsAt ?? '2025-01-01T00:00:00Z',
    endsAt: a.status === 'resolved' ? '2025-01-01T01:00:00Z' : '0001-01-01T00:00:00Z',
    generatorURL: 'http://prometheus.example/graph?g0.expr=drift',
    ...(a.fingerprint ? { fingerprint: a.fingerprint } : {}),
  }));
  return {
    version: '4',
    groupKey: '{}:{alertname="ModelDrift"}',
    truncatedAlerts: 0,
    status: list.some((a) => a.status === 'firing') ? 'firing' : 'resolved',
    receiver: 'aegis',
    groupLabels: { alertname: 'ModelDrift' },
    commonLabels: {},
    commonAnnotations: {},
    externalURL: 'http://alertmanager.example:9093',
    alerts: list,
    ...extra,
  };
}
