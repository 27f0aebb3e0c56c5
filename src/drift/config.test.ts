/**
 * The `drift` configuration section (defaults < file < AEGIS_DRIFT_*) as the
 * model server receives it (driftSettingsFromConfig).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../config/index.js';
import { isAegisError } from '../errors.js';
import { DRIFT_DEFAULTS, driftSettingsFromConfig } from './index.js';

let cwd: string;
beforeAll(async () => {
  cwd = await mkdtemp(join(tmpdir(), 'aegis-drift-config-'));
});
afterAll(async () => rm(cwd, { recursive: true, force: true }));

describe('drift configuration', () => {
  it('defaults to the monitor defaults (Evidently thresholds, 10 000-row window, 1000 rows minimum, every 10 s)', () => {
    const s = driftSettingsFromConfig(loadConfig({ env: {}, cwd }).drift);
    expect(s).toEqual({ ...DRIFT_DEFAULTS });
  });

  it('takes the environment variables, the dataset URI verbatim, and turns off with AEGIS_DRIFT_ENABLED=false', () => {
    const env = { AEGIS_DRIFT_WINDOW_ROWS: '5000', AEGIS_DRIFT_MIN_ROWS: '2000', AEGIS_DRIFT_INTERVAL_SECONDS: '2.5', AEGIS_DRIFT_SAMPLE_RATE: '0.1', AEGIS_DRIFT_SHARE: '0.3', AEGIS_DRIFT_DATASET_URI: 's3://bucket/datasets/fraud/v2/' };
    expect(driftSettingsFromConfig(loadConfig({ env, cwd }).drift)).toMatchObject({ windowRows: 5000, minRows: 2000, intervalMs: 2500, sampleRate: 0.1, driftShare: 0.3, datasetUri: 's3://bucket/datasets/fraud/v2/' });
    expect(driftSettingsFromConfig(loadConfig({ env: { AEGIS_DRIFT_ENABLED: 'false' }, cwd }).drift)).toBe(false);
  });

  it('reads per-test thresholds and per-feature overrides from the file, and refuses unknown tests', async () => {
    await writeFile(join(cwd, 'ok.yaml'), 'drift:\n  thresholds: {wasserstein: 0.2}\n  features:\n    "text[the]": {method: psi, threshold: 0.25}\n  multivariate: {alpha: 0.01}\n');
    const s = driftSettingsFromConfig(loadConfig({ env: {}, cwd, file: 'ok.yaml' }).drift);
    expect(s).toMatchObject({ thresholds: { wasserstein: 0.2 }, features: { 'text[the]': { method: 'psi', threshold: 0.25 } }, multivariate: { alpha: 0.01, threshold: 0.2 } });
    await writeFile(join(cwd, 'bad.yaml'), 'drift:\n  numericMethod: anderson\n');
    let err: unknown;
    try {
      loadConfig({ env: {}, cwd, file: 'bad.yaml' });
    } catch (e) {
      err = e;
    }
    expect(isAegisError(err, 'CONFIG_INVALID')).toBe(true);
    expect((err as Error).message).toMatch(/drift\.numericMethod/);
  });
});
