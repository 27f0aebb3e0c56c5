import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Gateway } from './index.js';
import { WeightedSplit } from './split.js';

describe('WeightedSplit', () => {
  it.each([0, 1, 10, 25, 33, 50, 99, 100])('sends exactly %i of every 100 consecutive requests to the canary, spread evenly', (w) => {
    const s = new WeightedSplit();
    s.setWeight(w);
    for (let block = 0; block < 3; block++) {
      const picks = Array.from({ length: 100 }, () => s.next());
      expect(picks.filter((p) => p === 'canary')).toHaveLength(w);
    }
  });

  it('never sends two canary requests in a row at 10%', () => {
    const s = new WeightedSplit();
    s.setWeight(10);
    const picks = Array.from({ length: 200 }, () => s.next());
    for (let i = 1; i < picks.length; i++) expect(picks[i] === 'canary' && picks[i - 1] === 'canary').toBe(false);
  });

  it('refuses weights outside 0..100', () => {
    expect(() => new WeightedSplit().setWeight(101)).toThrow(RangeError);
    expect(() => new WeightedSplit().setWeight(Number.NaN)).toThrow(RangeError);
  });
});

const servers: Server[] = [];
const gateways: Gateway[] = [];
afterEach(async () => {
  await Promise.all(gateways.splice(0).map((g) => g.close()));
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

/** A stand-in model server answering with its own name, optionally slowly or with a status. */
async function upstream(name: string, opts: { delayMs?: number; status?: number } = {}): Promise<string> {
  const s = createServer((req, res) => {
    req.resume();
    req.on('end', () =>
      setTimeout(() => {
        res.writeHead(opts.status ?? 200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ served_by: name }));
      }, opts.delayMs ?? 0),
    );
  });
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
}

async function gateway(stable: string, canary?: string, onResult?: (t: 'stable' | 'canary', status: number) => void) {
  const g = new Gateway({ model: 'm', stable: { url: stable, version: '1' }, ...(canary ? { canary: { url: canary, version: '2' } } : {}), ...(onResult ? { onResult } : {}) });
  gateways.push(g);
  return { g, url: await g.listen(0) };
}

const infer = (url: string) => fetch(`${url}/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"inputs":{}}' });

describe('Gateway', () => {
  it('splits inference by weight, labels metrics by track, and sends other requests to stable', async () => {
    const seen: string[] = [];
    const { g, url } = await gateway(await upstream('stable'), await upstream('canary'), (t) => seen.push(t));
    g.setWeight(20);
    const served: string[] = [];
    for (let i = 0; i < 50; i++) served.push(((await (await infer(url)).json()) as { served_by: string }).served_by);
    expect(served.filter((s) => s === 'canary')).toHaveLength(10);
    expect(seen.filter((s) => s === 'canary')).toHaveLength(10);
    const meta = await fetch(`${url}/v2/models/m`);
    expect(((await meta.json()) as { served_by: string }).served_by).toBe('stable');
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toContain('aegis_gateway_requests_total{model="m",version="2",track="canary",code="200"} 10');
    expect(metrics).toContain('aegis_gateway_requests_total{model="m",version="1",track="stable",code="200"} 40');
  });

  it('retries on stable when the canary is unreachable, so no request fails', async () => {
    const { g, url } = await gateway(await upstream('stable'), 'http://127.0.0.1:1');
    g.setWeight(50);
    const codes = await Promise.all(Array.from({ length: 20 }, async () => (await infer(url)).status));
    expect(codes.every((c) => c === 200)).toBe(true);
  });

  it('loses no request across weight changes, abort and promotion while requests are in flight', async () => {
    const stable = await upstream('stable', { delayMs: 30 });
    const canary = await upstream('canary', { delayMs: 30 });
    const { g, url } = await gateway(stable, canary);
    let stop = false;
    const codes: number[] = [];
    const traffic = (async () => {
      while (!stop) codes.push(...(await Promise.all(Array.from({ length: 10 }, async () => (await infer(url)).status))));
    })();
    for (const w of [10, 50, 100, 0, 30]) {
      g.setWeight(w);
      await new Promise((r) => setTimeout(r, 40));
    }
    g.setCanary(undefined); // abort: weight 0 at once, canary drained then released
    await new Promise((r) => setTimeout(r, 40));
    g.setCanary({ url: canary, version: '3' });
    g.setWeight(50);
    await new Promise((r) => setTimeout(r, 40));
    g.promoteCanary();
    await new Promise((r) => setTimeout(r, 60));
    stop = true;
    await traffic;
    expect(codes.length).toBeGreaterThan(50);
    expect(codes.filter((c) => c !== 200)).toEqual([]);
    expect(g.weight).toBe(0);
  });

  it('promotes onto a replacement stable server: the next requests go there, requests in flight finish, drained() waits for them', async () => {
    const slowCanary = await upstream('canary', { delayMs: 150 });
    const { g, url } = await gateway(await upstream('stable'), slowCanary);
    g.setWeight(100);
    const inFlight = infer(url); // on the slow canary
    await new Promise((r) => setTimeout(r, 30));
    g.promoteCanary({ url: await upstream('replacement'), version: '2' });
    const drained = g.drained(slowCanary).then(() => 'drained');
    expect(await Promise.race([drained, new Promise((r) => setTimeout(() => r('waiting'), 50))])).toBe('waiting');
    const next = await infer(url);
    expect(await next.json()).toEqual({ served_by: 'replacement' });
    expect(next.headers.get('x-aegis-track')).toBe('stable');
    const first = await inFlight;
    expect(first.status).toBe(200);
    expect(await first.json()).toEqual({ served_by: 'canary' });
    expect(await drained).toBe('drained');
    expect(g.weight).toBe(0);
  });

  it('passes upstream errors through with their status, counted by track', async () => {
    const { g, url } = await gateway(await upstream('stable'), await upstream('canary', { status: 500 }));
    g.setWeight(100);
    expect((await infer(url)).status).toBe(500);
    expect(await (await fetch(`${url}/metrics`)).text()).toContain('track="canary",code="500"} 1');
  });
});
