/**
 * Failure paths a real MLflow server does not produce on demand (overload,
 * lost answers, auth, hangs, a lost upload, a failed registration), against a
 * throwaway node:http server that answers like MLflow's REST API: every test
 * here says "(stub server)". The behaviour itself is tested against a real
 * MLflow server in mlflow.itest.ts.
 */
import { writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '../../test-support/fs.js';
import { MlflowHttp } from './http.js';
import { MlflowTracker } from './index.js';
import { failure } from '../../test-support/errors.js';

type Handler = (req: IncomingMessage & { body: string }, res: ServerResponse) => void;
const servers: Server[] = [];
const cleanups: Array<() => Promise<void>> = [];

async function stub(handler: Handler): Promise<{ url: string; seen: Array<{ method: string; path: string; headers: IncomingMessage['headers']; body: string }> }> {
  const seen: Array<{ method: string; path: string; headers: IncomingMessage['headers']; body: string }> = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      seen.push({ method: req.method!, path: req.url!, headers: req.headers, body });
      handler(Object.assign(req, { body }), res);
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

const fast = { minDelayMs: 1, maxDelayMs: 5 };

afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
  for (const c of cleanups.splice(0)) await c();
});

describe('MlflowHttp retries and errors', () => {
  it('(stub server) retries an idempotent call after 503 and 429 and then succeeds', async () => {
    let n = 0;
    const { url, seen } = await stub((_req, res) => {
      n++;
      if (n === 1) return json(res, 503, { error_code: 'TEMPORARILY_UNAVAILABLE', message: 'busy' });
      if (n === 2) return json(res, 429, { error_code: 'REQUEST_LIMIT_EXCEEDED', message: 'slow down' }, { 'retry-after': '0' });
      json(res, 200, {});
    });
    const http = new MlflowHttp({ baseUrl: url, ...fast });
    await http.call('POST', '/api/2.0/mlflow/runs/log-batch', { idempotent: true, body: { run_id: 'r' } });
    await http.close();
    expect(seen).toHaveLength(3);
    expect(seen.every((s) => s.body === '{"run_id":"r"}')).toBe(true);
  });

  it('(stub server) gives up after the configured retries, naming endpoint, status and MLflow’s error', async () => {
    const { url, seen } = await stub((_req, res) => json(res, 503, { error_code: 'TEMPORARILY_UNAVAILABLE', message: 'database is locked' }));
    const http = new MlflowHttp({ baseUrl: url, retries: 2, ...fast });
    const err = await failure(http.call('POST', '/api/2.0/mlflow/runs/update', { idempotent: true, body: {} }));
    await http.close();
    expect(seen).toHaveLength(3);
    expect(err.code).toBe('TRACKING_UNREACHABLE');
    expect(err.message).toContain('POST /api/2.0/mlflow/runs/update');
    expect(err.message).toContain('HTTP 503');
    expect(err.message).toContain('TEMPORARILY_UNAVAILABLE: database is locked');
    expect(err.details).toMatchObject({ endpoint: '/api/2.0/mlflow/runs/update', status: 503, errorCode: 'TEMPORARILY_UNAVAILABLE' });
  });

  it('(stub server) never resends a non-idempotent call', async () => {
    const { url, seen } = await stub((_req, res) => json(res, 503, { error_code: 'TEMPORARILY_UNAVAILABLE', message: 'busy' }));
    const http = new MlflowHttp({ baseUrl: url, retries: 3, ...fast });
    expect((await failure(http.call('POST', '/api/2.0/mlflow/runs/create', { idempotent: false, body: {} }))).code).toBe('TRACKING_UNREACHABLE');
    await http.close();
    expect(seen).toHaveLength(1);
  });

  it('(stub server) a run whose create answer was lost is found by its pipeline id, not created twice', async () => {
    const runs: Array<{ info: Record<string, unknown>; data: { tags: Array<{ key: string; value: string }> } }> = [];
    const { url, seen } = await stub((req, res) => {
      const path = req.url!.split('?')[0];
      if (path === '/api/2.0/mlflow/experiments/get-by-name') return json(res, 200, { experiment: { experiment_id: '7', name: 'e', lifecycle_stage: 'active' } });
      if (path === '/api/2.0/mlflow/runs/search') {
        const filter = (JSON.parse(req.body) as { filter: string }).filter;
        const hits = runs.filter((r) => r.data.tags.some((t) => t.key === 'aegis.pipeline_run_id' && filter.endsWith(`'${t.value}'`)));
        return json(res, 200, hits.length ? { runs: hits } : {});
      }
      if (path === '/api/2.0/mlflow/runs/create') {
        const body = JSON.parse(req.body) as { tags: Array<{ key: string; value: string }> };
        runs.push({
          info: { run_id: `run${runs.length}`, experiment_id: '7', status: 'RUNNING', artifact_uri: `mlflow-artifacts:/7/run${runs.length}/artifacts`, lifecycle_stage: 'active' },
          data: { tags: body.tags },
        });
        req.socket.destroy(); // stored, but the answer never arrives
        return;
      }
      json(res, 404, { error_code: 'ENDPOINT_NOT_FOUND', message: path });
    });
    const t = new MlflowTracker({ baseUrl: url, experiment: 'e', ...fast });
    const run = await t.startRun({ pipelineRunId: 'pipeline-42' });
    await t.close();
    expect(runs).toHaveLength(1);
    expect(run).toMatchObject({ runId: 'run0', resumed: false });
    expect(seen.filter((s) => s.path.startsWith('/api/2.0/mlflow/runs/create'))).toHaveLength(1);
    expect(seen.filter((s) => s.path.startsWith('/api/2.0/mlflow/runs/search'))).toHaveLength(2);
  });

  it('(stub server) 401 and 403 are TRACKING_AUTH_FAILED with what to set; a token goes as Bearer, username+password as Basic', async () => {
    const { url, seen } = await stub((req, res) =>
      json(res, req.headers.authorization?.startsWith('Basic') ? 403 : 401, { error_code: 'PERMISSION_DENIED', message: 'no' }),
    );
    const bearer = new MlflowHttp({ baseUrl: url, token: 'tok-1', ...fast });
    const e401 = await failure(bearer.call('GET', '/api/2.0/mlflow/experiments/get-by-name', { idempotent: true, query: { experiment_name: 'x' } }));
    expect(e401.code).toBe('TRACKING_AUTH_FAILED');
    expect(e401.hint).toContain('AEGIS_MLFLOW_TRACKING_TOKEN');
    const basic = new MlflowHttp({ baseUrl: url, token: 'tok-1', username: 'ann', password: 's3cret', ...fast });
    const e403 = await failure(basic.call('GET', '/api/2.0/mlflow/experiments/get-by-name', { idempotent: true }));
    expect(e403.code).toBe('TRACKING_AUTH_FAILED');
    expect(e403.hint).toMatch(/permission/);
    await bearer.close();
    await basic.close();
    expect(seen.map((s) => s.headers.authorization)).toEqual(['Bearer tok-1', `Basic ${Buffer.from('ann:s3cret').toString('base64')}`]);
    expect(seen[0]!.path).toBe('/api/2.0/mlflow/experiments/get-by-name?experiment_name=x');
  });

  it('(stub server) a server that accepts but never answers is TRACKING_UNREACHABLE after the timeout', async () => {
    const { url } = await stub(() => {
      /* never answers */
    });
    const http = new MlflowHttp({ baseUrl: url, timeoutMs: 200, retries: 1, ...fast });
    const err = await failure(http.call('GET', '/api/2.0/mlflow/runs/get', { idempotent: true, query: { run_id: 'r' } }));
    await http.close();
    expect(err.code).toBe('TRACKING_UNREACHABLE');
    expect(err.message).toContain('no answer within 200 ms');
  });

  it('refuses URIs that are not http(s) or that carry credentials', () => {
    expect(() => new MlflowHttp({ baseUrl: 'databricks' })).toThrow(/not a URL/);
    expect(() => new MlflowHttp({ baseUrl: 'file:///tmp/mlruns' })).toThrow(/http/);
    expect(() => new MlflowHttp({ baseUrl: 'http://u:p@host:5000' })).toThrow(/credentials/);
    expect(new MlflowHttp({ baseUrl: 'https://mlflow.example.com/prefix/' }).baseUrl).toBe('https://mlflow.example.com/prefix');
  });
});

describe('MlflowTracker failure paths', () => {
  it('(stub server) an upload the server did not store in full is TRACKING_REJECTED', async () => {
    const work = await tempDir('aegis-mlflow-stub-');
    cleanups.push(work.cleanup);
    const file = join(work.path, 'model.tar.gz');
    await writeFile(file, Buffer.alloc(100, 1));
    const { url, seen } = await stub((req, res) => {
      const path = req.url!.split('?')[0]!;
      if (path === '/api/2.0/mlflow/runs/get') {
        return json(res, 200, { run: { info: { run_id: 'r1', experiment_id: '1', status: 'RUNNING', artifact_uri: 'mlflow-artifacts://mlflow.internal:5000/1/r1/artifacts', lifecycle_stage: 'active' }, data: {} } });
      }
      if (path.startsWith('/api/2.0/mlflow-artifacts/artifacts/')) return json(res, 200, {});
      if (path === '/api/2.0/mlflow/artifacts/list') return json(res, 200, { root_uri: 'x', files: [{ path: 'model/model.tar.gz', is_dir: false, file_size: 60 }] });
      json(res, 404, { error_code: 'ENDPOINT_NOT_FOUND', message: path });
    });
    const t = new MlflowTracker({ baseUrl: url, experiment: 'e', ...fast });
    const err = await failure(t.logArtifact('r1', file, 'model'));
    await t.close();
    expect(err.code).toBe('TRACKING_REJECTED');
    expect(err.details).toMatchObject({ path: 'model/model.tar.gz', expected: 100, stored: 60 });
    // The artifact URI's own host is the server's name for itself: the upload went to the configured URI, path kept.
    const put = seen.find((s) => s.method === 'PUT')!;
    expect(put.path).toBe('/api/2.0/mlflow-artifacts/artifacts/1/r1/artifacts/model/model.tar.gz');
    expect(put.headers['content-length']).toBe('100');
  });

  it('(stub server) a registration that failed in the registry is TRACKING_REJECTED with its reason', async () => {
    const { url } = await stub((req, res) => {
      const path = req.url!.split('?')[0]!;
      if (path === '/api/2.0/mlflow/runs/get') {
        return json(res, 200, { run: { info: { run_id: 'r1', experiment_id: '1', status: 'RUNNING', artifact_uri: 'mlflow-artifacts:/1/r1/artifacts', lifecycle_stage: 'active' }, data: {} } });
      }
      if (path === '/api/2.0/mlflow/registered-models/get') return json(res, 200, { registered_model: { name: 'm' } });
      if (path === '/api/2.0/mlflow/model-versions/search') return json(res, 200, {});
      if (path === '/api/2.0/mlflow/model-versions/create') {
        return json(res, 200, { model_version: { name: 'm', version: '3', source: 'mlflow-artifacts:/1/r1/artifacts/model', status: 'FAILED_REGISTRATION', status_message: 'copy failed: no space left' } });
      }
      json(res, 404, { error_code: 'ENDPOINT_NOT_FOUND', message: path });
    });
    const t = new MlflowTracker({ baseUrl: url, experiment: 'e', ...fast });
    const err = await failure(t.registerModelVersion({ runId: 'r1', name: 'm', artifactDir: 'model' }));
    await t.close();
    expect(err.code).toBe('TRACKING_REJECTED');
    expect(err.message).toContain('copy failed: no space left');
  });
});
