/** `aegis load` (alias `loadgen`), run in-process against a local node:http server. */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../test-support/cli.js';

let server: Server;
let url: string;

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c));
    req.on('end', () => {
      let ok = true;
      try {
        ok = !Array.isArray(JSON.parse(body).inputs.image[0][0][0][0]) && 'text' in JSON.parse(body).inputs && 'image' in JSON.parse(body).inputs;
      } catch {
        ok = false;
      }
      res.writeHead(ok ? 200 : 400, { 'content-type': 'application/json' }).end(ok ? '{"outputs":{}}' : '{"error":"bad"}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/infer`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

describe('aegis load', () => {
  it('--json prints the report with status counts, percentiles and a per-second series', async () => {
    const r = await runCli('load', '--url', url, '--qps', '100', '--duration', '2s', '--error-rate', '0.1', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe(''); // no progress line off a terminal
    const report = JSON.parse(r.stdout);
    expect(report).toMatchObject({
      ok: true,
      url,
      method: 'POST',
      target: { qps: 100, durationS: 2, requests: 200 },
      achieved: { rps: expect.any(Number), sentRps: expect.any(Number), ratio: expect.any(Number) },
      sent: 200,
      completed: 200,
      outcomes: { ok: expect.any(Number), expected4xx: expect.any(Number), serverErrors: 0, unexpected: 0, networkErrors: 0, timeouts: 0, dropped: 0 },
      statusCounts: { '200': expect.any(Number), '400': expect.any(Number) },
      latencyMs: { p50: expect.any(Number), p90: expect.any(Number), p99: expect.any(Number), p999: expect.any(Number), max: expect.any(Number) },
      malformed: { errorRate: 0.1, sent: expect.any(Number), expected4xx: expect.any(Number), unexpected: 0 },
      settings: { seed: 1, timeoutMs: 10_000 },
    });
    expect(report.payload).toMatch(/examples\/requests\/example_multimodal\.json$/);
    expect(report.outcomes.expected4xx).toBe(report.malformed.sent);
    expect(report.series).toHaveLength(2);
    for (const s of report.series) {
      expect(Object.keys(s).sort()).toEqual(['dropped', 'expected4xx', 'malformed', 'networkErrors', 'ok', 'p99Ms', 'second', 'sent', 'serverErrors', 'timeouts', 'unexpected']);
      expect(s.sent).toBe(100);
    }
  });

  it('prints a table for a person, accepts the runbook spelling of --duration, and sends --payload verbatim', async () => {
    const r = await runCli('load', '--url', url, '--qps', '20', '--duration', '1', '--payload', 'examples/requests/example_multimodal.json');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/achieved\s+[\d.]+ rps responses \([\d.]+% of target\), [\d.]+ rps sent/);
    expect(r.stdout).toMatch(/target\s+20 rps for 1 s = 20 requests \(open loop\)/);
    expect(r.stdout).toMatch(/latency\s+p50 [\d.]+ +p90 [\d.]+ +p99 [\d.]+ +p99\.9 [\d.]+ +max [\d.]+ ms/);
    expect(r.stdout).toContain('200: 20');
  });

  it('exits 1 and says so when nothing could connect', async () => {
    const free = createServer();
    await new Promise<void>((r) => free.listen(0, '127.0.0.1', r));
    const port = (free.address() as AddressInfo).port;
    await new Promise((r) => free.close(r)); // nothing listens there now
    const r = await runCli('load', '--url', `http://127.0.0.1:${port}/infer`, '--qps', '20', '--duration', '500ms', '--json');
    expect(r.code).toBe(1);
    const out = JSON.parse(r.stdout);
    expect(out.error.code).toBe('LOAD_TARGET_UNREACHABLE');
    expect(out.error.message).toContain('nothing could connect');
    expect(out.error.details.report.networkErrorCodes.ECONNREFUSED).toBeGreaterThan(0);
  });

  it('exits 2 on bad usage, naming the option', async () => {
    for (const [args, text] of [
      [['--qps', 'fast', '--duration', '1'], '--qps'],
      [['--qps', '10', '--duration', '1 fortnight'], '--duration'],
      [['--qps', '10', '--duration', '1', '--error-rate', '2'], '--error-rate'],
      [['--qps', '10', '--duration', '1', '--payload', '/nonexistent/body.json'], '--payload'],
    ] as const) {
      const r = await runCli('load', '--url', url, ...args);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(text);
      expect(r.stderr).toContain('hint:');
    }
    expect((await runCli('load', '--qps', '10', '--duration', '1')).code).toBe(2); // --url missing
  });

  it('--help has an example; `aegis loadgen` is the same command', async () => {
    const r = await runCli('load', '--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Usage: aegis load|loadgen [options]');
    expect((await runCli('loadgen', '--help')).stdout).toBe(r.stdout);
    expect(r.stdout).toContain('Example:');
    expect(r.stdout).toContain('aegis load --url http://127.0.0.1:8080/infer --qps 20 --duration 180 --error-rate 0.02');
  });
});
