/**
 * The model server as users run it: `aegis serve` processes on 127.0.0.1.
 * A hot swap under a steady open-loop load loses no request; an unverifiable
 * model makes `serve` exit non-zero; SIGTERM drains; `aegis up` brings up the
 * platform on a fresh home and answers the printed request.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { appendFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer } from '../src/serving/process.js';
import { packageExampleVersion } from '../src/test-support/example-model.js';
import { startAegisUp } from '../src/test-support/aegis-up.js';
import { tempDir } from '../src/test-support/fs.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(REPO, 'bin', 'aegis.js');
const REQUEST = JSON.parse(await readFile(join(REPO, 'examples', 'requests', 'example_multimodal.oip.json'), 'utf8')) as unknown;

let work: Awaited<ReturnType<typeof tempDir>>;
let env: NodeJS.ProcessEnv;
let port = 18_000 + Math.floor(Math.random() * 2000);

function run(args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [BIN, ...args], { env: { ...env, ...extraEnv } });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    c.on('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

const packageVersion = (version: string) => packageExampleVersion(work.path, join(work.path, 'keys', 'signing-key.pem'), version);

beforeAll(async () => {
  work = await tempDir('aegis-serve-it-');
  env = { ...process.env, AEGIS_HOME: join(work.path, 'home'), AEGIS_LOG_LEVEL: 'warn' };
  expect((await run(['keys', 'generate', '--out-dir', join(work.path, 'keys')])).code).toBe(0);
});
afterAll(async () => work?.cleanup());

/** Open loop: requests start on schedule whatever the responses do. */
async function openLoop(url: string, qps: number, seconds: number): Promise<{ sent: number; failed: { status: number; body: string }[] }> {
  const failed: { status: number; body: string }[] = [];
  const pending: Promise<void>[] = [];
  const start = performance.now();
  let sent = 0;
  while (performance.now() - start < seconds * 1000) {
    const due = start + (sent * 1000) / qps;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    sent++;
    pending.push(
      fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(REQUEST) }).then(
        async (res) => {
          if (res.status !== 200) failed.push({ status: res.status, body: await res.text() });
          else await res.arrayBuffer();
        },
        (err: Error) => {
          failed.push({ status: 0, body: err.message });
        },
      ),
    );
  }
  await Promise.all(pending);
  return { sent, failed };
}

describe('aegis serve', () => {
  it('hot-swaps under a steady open-loop load with zero failed requests', async () => {
    const a = await packageVersion('1.0');
    const b = await packageVersion('1.1');
    const pub = join(work.path, 'keys', 'signing-key.pub.pem');
    const { child, ready } = await startServer(['--model', a, '--public-key', pub, '--port', String(++port)], env);
    try {
      const base = String(ready.url);
      const load = openLoop(`${base}/v2/models/example_multimodal/infer`, 100, 4);
      await new Promise((r) => setTimeout(r, 1000));
      const swap = await fetch(`${base}/v2/repository/models/example_multimodal/load`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ uri: b }) });
      expect(swap.status, await swap.clone().text()).toBe(200);
      const result = await load;
      expect(result.sent).toBeGreaterThan(300);
      expect(result.failed).toEqual([]);
      const meta = (await (await fetch(`${base}/v2/models/example_multimodal`)).json()) as { versions: string[] };
      expect(meta.versions).toEqual(['1.1']);
      // the CLI form of the same swap, back to 1.0
      const back = await run(['model', 'load', a, '--server', base]);
      expect(back.code, back.stderr).toBe(0);
      expect(back.stdout).toContain('now serving example_multimodal@1.0');
    } finally {
      child.kill('SIGTERM');
    }
  });

  it('exits non-zero with the reason when the model does not verify', async () => {
    const a = await packageVersion('2.0');
    await appendFile(a, 'x');
    const r = await run(['serve', '--model', a, '--public-key', join(work.path, 'keys', 'signing-key.pub.pem'), '--port', String(++port)]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('ARCHIVE_SIGNATURE_INVALID');
  });

  it('drains on SIGTERM: a request in flight completes, then the process exits 0', async () => {
    const a = await packageVersion('3.0');
    const { child, ready } = await startServer(['--model', a, '--public-key', join(work.path, 'keys', 'signing-key.pub.pem'), '--port', String(++port), '--inject-fault', 'latency-ms=500'], env);
    const inflight = fetch(`${String(ready.url)}/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: await readFile(join(REPO, 'examples', 'requests', 'example_multimodal.json'), 'utf8'),
    });
    await new Promise((r) => setTimeout(r, 100));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.kill('SIGTERM');
    const res = await inflight;
    expect(res.status).toBe(200);
    expect(await exited).toBe(0);
  });
});

describe('aegis up', () => {
  it('brings up the example model on a fresh home and answers the printed curl request; a second run reuses it', async () => {
    const upPort = ++port;
    const home = join(work.path, 'up-home');
    const start = () => startAegisUp(['--port', String(upPort), '--control-port', '0'], { ...env, AEGIS_HOME: home });
    for (const round of [1, 2]) {
      const { child, ready } = await start();
      try {
        expect(ready).toMatchObject({ ready: true, model: 'example_multimodal', version: '0.1' });
        const res = await fetch(`${String(ready.url)}/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: await readFile(String(ready.request), 'utf8') });
        expect(res.status, `round ${round}`).toBe(200);
        const body = (await res.json()) as { outputs: { probabilities: number[][] } };
        expect(body.outputs.probabilities[0]).toHaveLength(3);
        if (round === 1) {
          // --control-port 0: the CLI finds the port in <home>/control.url, which aegis up removes when it stops.
          expect(JSON.parse(await readFile(join(home, 'control.url'), 'utf8'))).toEqual({ url: String(ready.control), pid: child.pid });
          await dbCommandsWhileUp({ AEGIS_HOME: home });
        }
      } finally {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGINT');
        await exited;
      }
      expect(existsSync(join(home, 'control.url')), `round ${round}`).toBe(false);
    }
  });
});

/**
 * `aegis up` holds the embedded database: `aegis db backup` and `aegis db drill`
 * run in its control plane instead (same reports), `aegis db backups` reads the
 * store, a restore into the held database is refused with DB_LOCKED, and
 * `aegis model fetch NAME@STAGE` resolves the ref through the control plane.
 */
async function dbCommandsWhileUp(inHome: NodeJS.ProcessEnv): Promise<void> {
  const backup = await run(['db', 'backup', '--json'], inHome);
  expect(backup.code, backup.stderr).toBe(0);
  const made = JSON.parse(backup.stdout) as { ok: boolean; uri: string; manifest: { id: string; engine: string; format: string; tables: Record<string, number> } };
  expect(made).toMatchObject({ ok: true, manifest: { engine: 'pglite', format: 'aegis-logical' } });
  expect(made.manifest.tables['public.model_versions']).toBeGreaterThanOrEqual(1);
  const list = JSON.parse((await run(['db', 'backups', '--json'], inHome)).stdout) as { backups: { id: string }[] };
  expect(list.backups.map((b) => b.id)).toContain(made.manifest.id);

  const archiveDetail = (out: string) => (JSON.parse(out) as { restore: { checks: { name: string; status: string; detail: string }[] } }).restore.checks.find((c) => c.name === 'model-archives')!;
  const drill = await run(['db', 'drill', '--from', 'latest', '--json'], inHome);
  expect(drill.code, drill.stderr + drill.stdout).toBe(0);
  expect(JSON.parse(drill.stdout)).toMatchObject({ ok: true, backup: { id: made.manifest.id, new: false }, scratch: 'in-memory PGlite' });
  expect(archiveDetail(drill.stdout)).toMatchObject({ status: 'passed' });
  const again = await run(['db', 'drill', '--json'], inHome); // a new backup, then the drill; the signatures are cached now
  expect(again.code, again.stderr + again.stdout).toBe(0);
  expect(JSON.parse(again.stdout)).toMatchObject({ ok: true, backup: { new: true } });
  expect(archiveDetail(again.stdout).detail).toMatch(/verified by an earlier check/);

  const restore = await run(['db', 'restore', '--from', 'latest', '--force'], inHome);
  expect(restore.code).not.toBe(0);
  expect(restore.stderr).toContain('DB_LOCKED');

  // A registry ref is resolved through the control plane too; the archive is then fetched and verified here.
  const fetched = await run(['model', 'fetch', 'example_multimodal@production', '--json'], inHome);
  expect(fetched.code, fetched.stderr + fetched.stdout).toBe(0);
  expect(JSON.parse(fetched.stdout)).toMatchObject({ name: 'example_multimodal', version: '0.1' });
}
