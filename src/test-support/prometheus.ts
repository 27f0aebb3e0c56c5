import { createServer, type Server } from 'node:http';
import { rename, writeFile } from 'node:fs/promises';

/** Helpers for integration tests against the Prometheus and Alertmanager scripts/services.sh runs. */
export const PROMETHEUS_URL = process.env.PROMETHEUS_URL;
export const ALERTMANAGER_URL = process.env.ALERTMANAGER_URL;
export const FILE_SD_DIR = process.env.AEGIS_PROM_FILE_SD_DIR;
export const WEBHOOK_URL = process.env.AEGIS_ALERTMANAGER_WEBHOOK_URL;
export const SERVICES_HINT = 'Start the test services with scripts/services.sh (it writes .services/env.sh, which the integration tests read).';

export interface PromAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  state: 'pending' | 'firing';
  activeAt: string;
  value: string;
}

export async function getJson<T>(url: string, init?: RequestInit): Promise<T> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(5000) });
  if (!res.ok) throw new Error(`${init?.method ?? 'GET'} ${url}: HTTP ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

export async function promQuery(expr: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
  const body = await getJson<{ data: { result: { metric: Record<string, string>; value: [number, string] }[] } }>(`${PROMETHEUS_URL}/api/v1/query?query=${encodeURIComponent(expr)}`);
  return body.data.result;
}

export async function prometheusAlerts(): Promise<PromAlert[]> {
  return (await getJson<{ data: { alerts: PromAlert[] } }>(`${PROMETHEUS_URL}/api/v1/alerts`)).data.alerts;
}

/** Writes a file_sd target file atomically: each URL's host:port with its role label. */
export async function writeTargets(file: string, job: string, urls: Record<string, string>): Promise<void> {
  const groups = Object.entries(urls).map(([role, url]) => ({ targets: [new URL(url).host], labels: { job, role } }));
  await writeFile(`${file}.tmp`, JSON.stringify(groups, null, 2));
  await rename(`${file}.tmp`, file);
}

export type WebhookPayload = { status: string; alerts: { status: string; labels: Record<string, string> }[] };

/** The Alertmanager webhook receiver configured by scripts/services.sh: collects what it is sent. */
export async function webhookReceiver(url: string): Promise<{ server: Server; payloads: WebhookPayload[] }> {
  const u = new URL(url);
  const payloads: WebhookPayload[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      if (req.method === 'POST' && req.url === u.pathname) {
        try {
          payloads.push(JSON.parse(body) as WebhookPayload);
        } catch {
          // not JSON: ignore
        }
      }
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new Error(`cannot listen on ${u.host} for the Alertmanager webhook (${err.code ?? err.message}): is another test using it? ${SERVICES_HINT}`)),
    );
    server.listen(Number(u.port), u.hostname, () => resolve());
  });
  return { server, payloads };
}

/** Fails unless Prometheus and Alertmanager answer, then makes Prometheus reload this checkout's rule files. */
export async function requirePrometheus(): Promise<void> {
  if (!PROMETHEUS_URL || !ALERTMANAGER_URL || !FILE_SD_DIR || !WEBHOOK_URL) {
    throw new Error(`PROMETHEUS_URL, ALERTMANAGER_URL, AEGIS_PROM_FILE_SD_DIR and AEGIS_ALERTMANAGER_WEBHOOK_URL must be set. ${SERVICES_HINT}`);
  }
  for (const url of [PROMETHEUS_URL, ALERTMANAGER_URL]) {
    const ok = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(3000) }).then(
      (r) => r.ok,
      () => false,
    );
    if (!ok) throw new Error(`${url} does not answer. ${SERVICES_HINT}`);
  }
  const reload = await fetch(`${PROMETHEUS_URL}/-/reload`, { method: 'POST', signal: AbortSignal.timeout(10_000) });
  if (reload.status !== 200) throw new Error(`Prometheus could not reload its rules: ${await reload.text()}`);
}
