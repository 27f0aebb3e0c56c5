/**
 * The Prometheus provider against a local node:http server that answers
 * /api/v1/query as Prometheus does (no mock of fetch): vectors, scalars,
 * empty results, NaN/Inf samples, API errors, HTTP errors, timeouts, refused
 * connections. The real Prometheus integration suite comes with the controller.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { judge } from '../../analysis/judge.js';
import type { ResolvedMetric } from '../../spec.js';
import { PrometheusProvider } from './index.js';

const servers: Server[] = [];
const seen: Array<{ method: string; url: URL }> = [];

async function prometheus(answer: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  const server = createServer((req, res) => {
    seen.push({ method: req.method!, url: new URL(req.url!, 'http://x') });
    answer(req, res);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function json(status: number, body: unknown) {
  return (_req: IncomingMessage, res: ServerResponse) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
}

const vector = (...values: string[]) => ({
  status: 'success',
  data: { resultType: 'vector', result: values.map((v, i) => ({ metric: { track: 'canary', i: String(i) }, value: [1_700_000_000.123, v] })) },
});

function metric(address: string, query = 'sum(rate(aegis_inference_requests_total{code=~"5.."}[1m]))', timeoutMs = 5000, successCondition = 'result[0] < 0.05'): ResolvedMetric {
  return { name: 'error-rate', template: 't', successCondition, provider: { kind: 'prometheus', address, query, timeoutMs } };
}

const provider = new PrometheusProvider();
const ctx = { now: Date.now() };

afterEach(async () => {
  seen.splice(0);
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

describe('PrometheusProvider', () => {
  it('sends an instant query and reads a vector as number[]', async () => {
    const url = await prometheus(json(200, vector('0.01', '0.5')));
    const query = 'sum by (track) (rate(aegis_inference_requests_total{model="m",code=~"5.."}[1m])) / 2';
    expect(await provider.measure(metric(url, query), ctx)).toEqual({ value: [0.01, 0.5] });
    expect(seen).toHaveLength(1);
    expect(seen[0]!.method).toBe('GET');
    expect(seen[0]!.url.pathname).toBe('/api/v1/query');
    expect(seen[0]!.url.searchParams.get('query')).toBe(query);
    expect(seen[0]!.url.searchParams.has('time')).toBe(false);
  });

  it('keeps a path prefix in the address', async () => {
    const url = await prometheus(json(200, vector('1')));
    await provider.measure(metric(`${url}/prometheus/`), ctx);
    await provider.measure(metric(`${url}/prometheus`), ctx);
    expect(seen.map((s) => s.url.pathname)).toEqual(['/prometheus/api/v1/query', '/prometheus/api/v1/query']);
  });

  it('reads a scalar as a number', async () => {
    const url = await prometheus(json(200, { status: 'success', data: { resultType: 'scalar', result: [1_700_000_000, '0.25'] } }));
    expect(await provider.measure(metric(url, 'scalar(vector(0.25))'), ctx)).toEqual({ value: 0.25 });
  });

  it('passes an empty vector on as [] (Argo: not a provider error), which the judge then handles', async () => {
    const url = await prometheus(json(200, vector()));
    const m = metric(url);
    const r = await provider.measure(m, ctx);
    expect(r).toEqual({ value: [] });
    expect(judge(m, r, { guardMissingData: false })).toMatchObject({ phase: 'Error', message: expect.stringMatching(/index out of range/) });
    expect(judge(m, r).phase).toBe('Inconclusive');
    expect(judge({ ...m, successCondition: 'len(result) == 0 || result[0] < 0.05' }, r).phase).toBe('Successful');
  });

  it('keeps NaN, +Inf and -Inf samples', async () => {
    const url = await prometheus(json(200, vector('NaN', '+Inf', '-Inf', '1e-3')));
    expect(await provider.measure(metric(url), ctx)).toEqual({ value: [NaN, Infinity, -Infinity, 0.001] });
  });

  it('refuses a matrix as Argo does ("Prometheus metric type not supported")', async () => {
    const url = await prometheus(json(200, { status: 'success', data: { resultType: 'matrix', result: [{ metric: {}, values: [[1, '1']] }] } }));
    const r = await provider.measure(metric(url, 'up[5m]'), ctx);
    expect(r.phase).toBe('Error');
    expect(r.message).toMatch(/Prometheus metric type not supported: the query returned "matrix"/);
  });

  it('reports a query Prometheus refuses, with its errorType and error', async () => {
    const url = await prometheus(json(400, { status: 'error', errorType: 'bad_data', error: 'invalid parameter "query": 1:5: parse error: unexpected "}"' }));
    const r = await provider.measure(metric(url, 'sum(}'), ctx);
    expect(r).toMatchObject({ value: null, phase: 'Error' });
    expect(r.message).toMatch(/refused the query \(HTTP 400\): bad_data: invalid parameter "query"/);
  });

  it('reports an HTTP error with a body that is not JSON', async () => {
    const url = await prometheus((_req, res) => {
      res.writeHead(503, { 'content-type': 'text/html' });
      res.end('<html>Service Unavailable</html>');
    });
    const r = await provider.measure(metric(url), ctx);
    expect(r.phase).toBe('Error');
    expect(r.message).toMatch(/answered HTTP 503 with a body that is not JSON: "<html>Service Unavailable<\/html>"/);
  });

  it('reports malformed samples instead of guessing', async () => {
    const url = await prometheus(json(200, { status: 'success', data: { resultType: 'vector', result: [{ metric: {}, value: [1, 'abc'] }] } }));
    expect((await provider.measure(metric(url), ctx)).message).toMatch(/malformed sample/);
  });

  it('times out (provider.prometheus.timeout) as an Error measurement', async () => {
    const url = await prometheus(() => {
      /* never answers */
    });
    const started = Date.now();
    const r = await provider.measure(metric(url, 'up', 200), ctx);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(r).toEqual({ value: null, phase: 'Error', message: `Prometheus at ${url} did not answer within 200ms (provider.prometheus.timeout)` });
  });

  it('times out a body that stalls halfway', async () => {
    const url = await prometheus((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"status":"succ');
    });
    const r = await provider.measure(metric(url, 'up', 200), ctx);
    expect(r.message).toMatch(/did not answer within 200ms/);
  });

  it('reports a refused connection', async () => {
    const url = await prometheus(() => {});
    const server = servers.pop()!;
    await new Promise((r) => server.close(r));
    const r = await provider.measure(metric(url), ctx);
    expect(r.phase).toBe('Error');
    expect(r.message).toMatch(new RegExp(`cannot query Prometheus at ${url.replace(/[.]/g, '\\.')}: ECONNREFUSED`));
  });

  it('stops when the controller cancels', async () => {
    const url = await prometheus(() => {});
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    const r = await provider.measure(metric(url), { now: Date.now(), signal: ac.signal });
    expect(r).toEqual({ value: null, phase: 'Error', message: 'measurement of error-rate was cancelled' });
  });

  it('passes Prometheus warnings on in the message', async () => {
    const url = await prometheus(json(200, { ...vector('0.01'), warnings: ['PromQL info: metric might not be a counter'] }));
    expect(await provider.measure(metric(url), ctx)).toEqual({ value: [0.01], message: 'Prometheus warnings: "PromQL info: metric might not be a counter"' });
  });

  it('refuses an answer larger than 8 MiB', async () => {
    const url = await prometheus((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(Buffer.alloc(9 * 1024 * 1024, 0x20));
    });
    const r = await provider.measure(metric(url), ctx);
    expect(r.phase).toBe('Error');
    expect(r.message).toMatch(/larger than 8 MiB/);
  });
});
