/**
 * `tracking` settings and openTracker: which MLflow server and credentials a
 * deployment's environment leads to, and that none at all means "DB only".
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../config/index.js';
import { isAegisError } from '../errors.js';
import { openTracker } from './index.js';

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

const config = (env: Record<string, string>) => loadConfig({ env, file: undefined, cwd: '/nonexistent-aegis-cwd' });

/** Records the Authorization header of each request and answers like MLflow's get-by-name. */
async function authRecorder(): Promise<{ url: string; auth: Array<string | undefined> }> {
  const auth: Array<string | undefined> = [];
  const server = createServer((req, res) => {
    auth.push(req.headers.authorization);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ experiment: { experiment_id: '1', name: 'aegis-retrain', lifecycle_stage: 'active' } }));
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, auth };
}

describe('tracking configuration', () => {
  it('defaults to no MLflow (runs stay in the Aegis DB) and the aegis-retrain experiment', () => {
    const c = config({});
    expect(c.tracking).toEqual({ experiment: 'aegis-retrain', timeoutMs: 30_000, retries: 4 });
    expect(openTracker(c.tracking)).toBeUndefined();
  });

  it('does not pick up MLFLOW_TRACKING_URI: sending records to MLflow is an explicit choice', () => {
    const env = { MLFLOW_TRACKING_URI: 'http://127.0.0.1:5000' };
    expect(openTracker(config(env).tracking, { env })).toBeUndefined();
  });

  it('reads AEGIS_MLFLOW_* settings, keeping secrets that look like numbers as text', () => {
    const c = config({
      AEGIS_MLFLOW_TRACKING_URI: 'https://mlflow.example.com/ml',
      AEGIS_MLFLOW_EXPERIMENT: '2024',
      AEGIS_MLFLOW_TRACKING_USERNAME: 'ann',
      AEGIS_MLFLOW_TRACKING_PASSWORD: '123456',
      AEGIS_MLFLOW_TIMEOUT_MS: '5000',
      AEGIS_MLFLOW_RETRIES: '0',
    });
    expect(c.tracking).toEqual({ mlflowUri: 'https://mlflow.example.com/ml', experiment: '2024', username: 'ann', password: '123456', timeoutMs: 5000, retries: 0 });
    const t = openTracker(c.tracking)!;
    expect(t.kind).toBe('mlflow');
    expect(t.baseUrl).toBe('https://mlflow.example.com/ml');
    expect(t.experiment).toBe('2024');
  });

  it('refuses a non-http tracking URI and a username without a password', () => {
    const envs: Array<Record<string, string>> = [{ AEGIS_MLFLOW_TRACKING_URI: 'file:///tmp/mlruns' }, { AEGIS_MLFLOW_TRACKING_URI: 'http://h:5000', AEGIS_MLFLOW_TRACKING_USERNAME: 'ann' }];
    for (const env of envs) {
      let caught: unknown;
      try {
        config(env);
      } catch (err) {
        caught = err;
      }
      expect(isAegisError(caught, 'CONFIG_INVALID')).toBe(true);
      expect((caught as Error).message).toMatch(/tracking/);
    }
  });

  it('(stub server) uses Aegis credentials when set, else MLflow’s MLFLOW_TRACKING_TOKEN / USERNAME+PASSWORD', async () => {
    const { url, auth } = await authRecorder();
    const mlflowEnv = { MLFLOW_TRACKING_TOKEN: 'mlflow-token', MLFLOW_TRACKING_USERNAME: 'bob', MLFLOW_TRACKING_PASSWORD: 'pw' };
    const cases: Array<{ env: Record<string, string> }> = [
      { env: { AEGIS_MLFLOW_TRACKING_URI: url, AEGIS_MLFLOW_TRACKING_TOKEN: 'aegis-token', ...mlflowEnv } },
      { env: { AEGIS_MLFLOW_TRACKING_URI: url, ...mlflowEnv } },
      { env: { AEGIS_MLFLOW_TRACKING_URI: url, MLFLOW_TRACKING_TOKEN: 'mlflow-token' } },
      { env: { AEGIS_MLFLOW_TRACKING_URI: url } },
    ];
    for (const { env } of cases) {
      const t = openTracker(config(env).tracking, { env })!;
      await t.ensureExperiment();
      await t.close();
    }
    expect(auth).toEqual(['Bearer aegis-token', `Basic ${Buffer.from('bob:pw').toString('base64')}`, 'Bearer mlflow-token', undefined]);
  });
});
