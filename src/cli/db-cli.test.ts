/**
 * `aegis db …` on the embedded defaults (PGlite under a temporary AEGIS_HOME,
 * file store): backup → backups → restore (elsewhere, then over the live
 * database) → drill → prune, with --json and the exit codes.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { okCli, runCli } from '../test-support/cli.js';
import { tempDir } from '../test-support/fs.js';
import { writeModel } from '../test-support/models.js';

let work: Awaited<ReturnType<typeof tempDir>>;
const saved = process.env.AEGIS_HOME;
let home: string;

beforeAll(async () => {
  work = await tempDir('aegis-db-cli-');
  home = join(work.path, 'home');
  process.env.AEGIS_HOME = home;
  await okCli('keys', 'rotate', '--trust', join(home, 'trust.yaml'), '--out-dir', join(home, 'keys', 'k1'));
  const dir = await writeModel(join(work.path, 'model'), {
    'aegis.yaml': 'apiVersion: aegis.dev/v1\nkind: Model\nname: churn\nversion: "1.0"\nframework: onnx\nruntime: { name: onnxruntime }\n' +
      'inputs: [{ name: x, dtype: float32, shape: [-1, 8] }]\noutputs: [{ name: y, dtype: float32, shape: [-1, 1] }]\n',
    'model.onnx': 4096,
  });
  await okCli('model', 'push', dir, '--key', join(home, 'keys', 'k1', 'signing-key.pem'));
  await okCli('model', 'register', join(home, 'artifacts', 'model-archives', 'churn', '1.0', 'model.tar.gz'));
  await okCli('model', 'promote', 'churn@1.0', '--stage', 'production');
});
afterAll(async () => {
  if (saved === undefined) delete process.env.AEGIS_HOME;
  else process.env.AEGIS_HOME = saved;
  await work.cleanup();
});

describe('aegis db', () => {
  it('every command has --help with an example', async () => {
    for (const cmd of ['backup', 'backups', 'prune', 'restore', 'drill']) {
      const r = await runCli('db', cmd, '--help');
      expect(r.code, cmd).toBe(0);
      expect(r.stdout, cmd).toMatch(/Examples?:\n\s+\$ aegis db /);
      expect(r.stdout, cmd).toMatch(/--json/);
    }
  });

  it('backs up, lists, restores elsewhere and over the live database, drills, prunes', async () => {
    const backup = JSON.parse((await okCli('db', 'backup', '--json')).stdout);
    expect(backup).toMatchObject({ ok: true, manifest: { format: 'aegis-logical', engine: 'pglite', tables: { 'public.model_versions': 1 } } });
    const human = await okCli('db', 'backup');
    expect(human.stdout).toMatch(/^backed up to file:\/\/.*\/db-backups\/\d{8}T\d{6}Z(-\d+)?\n {2}aegis-logical, /);

    const listed = JSON.parse((await okCli('db', 'backups', '--json')).stdout);
    expect(listed.backups).toHaveLength(2);
    expect(listed.backups[0]).toMatchObject({ id: backup.manifest.id, uri: backup.uri });

    const elsewhere = join(work.path, 'restored-db');
    const restored = JSON.parse((await okCli('db', 'restore', '--from', backup.manifest.id, '--target', elsewhere, '--json')).stdout);
    expect(restored.ok).toBe(true);
    expect(restored.checks.map((c: { name: string; status: string }) => `${c.name}:${c.status}`)).toEqual([
      'dump-integrity:passed',
      'row-counts:passed',
      'model-archives:passed',
      'control-plane-health:skipped',
    ]);

    const refused = await runCli('db', 'restore', '--from', 'latest', '--json');
    expect(refused.code).toBe(1);
    expect(JSON.parse(refused.stdout).error).toMatchObject({ code: 'RESTORE_TARGET_NOT_EMPTY' });
    const forced = await okCli('db', 'restore', '--from', 'latest', '--force');
    expect(forced.stdout, forced.stdout).toMatch(/passed +model-archives +1 model versions/);
    expect(forced.stdout).toMatch(/skipped +control-plane-health/);
    expect(forced.stdout).toMatch(/restore ok$/m);
    expect(JSON.parse((await okCli('model', 'show', 'churn@production', '--json')).stdout)).toMatchObject({ version: '1.0' });

    const drill = JSON.parse((await okCli('db', 'drill', '--json')).stdout);
    expect(drill).toMatchObject({ ok: true, scratch: 'in-memory PGlite', backup: { new: true } });
    expect(typeof drill.rpoSeconds).toBe('number');
    expect(typeof drill.rtoSeconds).toBe('number');

    const pruned = JSON.parse((await okCli('db', 'prune', '--keep-daily', '0', '--keep-weekly', '0', '--json')).stdout);
    expect(pruned.keep).toEqual([{ id: drill.backup.id, why: ['newest'] }]);
    expect(pruned.remove).toHaveLength(2);
    expect(JSON.parse((await okCli('db', 'backups', '--json')).stdout).backups.map((b: { id: string }) => b.id)).toEqual([drill.backup.id]);
  });

  it('exits 1 with the failed check when an archive is gone', async () => {
    await rm(join(home, 'artifacts', 'model-archives', 'churn', '1.0', 'model.tar.gz'));
    const r = await runCli('db', 'drill', '--from', 'latest', '--json');
    expect(r.code).toBe(1);
    const report = JSON.parse(r.stdout);
    expect(report.ok).toBe(false);
    expect(report.restore.checks.find((c: { name: string }) => c.name === 'model-archives')).toMatchObject({ status: 'failed', problems: [expect.stringMatching(/^churn@1\.0: archive missing/)] });
  });

  it('refuses usage errors with exit 2', async () => {
    expect((await runCli('db', 'prune', '--keep-daily', 'x', '--keep-weekly', '1')).code).toBe(2);
    expect((await runCli('db', 'backup', '--format', 'zip')).code).toBe(2);
    const missing = await runCli('db', 'restore', '--from', 'latest', '--store', join(work.path, 'empty'), '--json');
    expect(missing.code).toBe(1);
    expect(JSON.parse(missing.stdout).error.code).toBe('BACKUP_NOT_FOUND');
  });
});
