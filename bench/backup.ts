/**
 * `npm run bench -- backup [--runs=3] [--audit=1000000] [--versions=100000] [--full-check-runs=1]`:
 * `aegis db backup` and `aegis db restore` of a PostgreSQL database with 1M
 * audit rows and 100k model versions, each as a ratio to plain `pg_dump -Fc`
 * and `pg_restore` of the same database in the same run. Target <= 1.3x.
 *
 * - backup: pg_dump -Fc streamed into a file store and hashed on the way,
 *   row counts in the same snapshot, manifest last; vs `pg_dump -Fc -f FILE`.
 * - restore: SHA-256 + size check of the dump, `pg_restore --single-transaction`,
 *   row counts vs the manifest, migrations forward, health (skipped: no URL);
 *   vs `pg_restore -d DB FILE` into an empty database. Reported with and
 *   without the model-archive check (every version's archive present and its
 *   detached signature verified), whose cost grows with the number of versions:
 *   once verifying every signature (a first restore on a new machine), once
 *   with the verified-signature cache the first run left (every later drill
 *   or restore on the same machine). The archives' files are read once before
 *   those runs, so that they are in the page cache, as the dump pg_restore
 *   reads is.
 *
 * Needs PostgreSQL (AEGIS_BENCH_DATABASE_URL, else AEGIS_TEST_DATABASE_URL from
 * scripts/services.sh) and pg_dump/pg_restore. Each version gets its own small
 * signed archive in a file store under $AEGIS_BENCH_DIR (default
 * /tmp/aegis-bench/backup/artifacts-<versions>), made once. Databases are
 * created fresh and dropped. `--versions=10000 --audit=100000 --runs=1` is a
 * quick run for iterating; the default is the size the target is set for.
 */
import '../src/test-support/services-env.js';
import { createHash, createPublicKey, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { runBackup } from '../src/backup/backup.js';
import { locationIn, readBackup } from '../src/backup/catalog.js';
import { findPgTool } from '../src/backup/pgtools.js';
import { runRestore, type RestoreReport } from '../src/backup/restore.js';
import { openDb, openDbUnmigrated } from '../src/db/index.js';
import { FileStore } from '../src/store/index.js';
import { exec, medianOf, numberArg as arg, table } from './lib.js';

/**
 * One small signed archive per version (made once, kept for later runs). Each
 * --versions count has its own store folder: a smaller run must not overwrite
 * the archives (and key) a larger one recorded.
 */
async function archives(dir: string, versions: number): Promise<{ store: FileStore; shas: string[]; pubPem: string }> {
  const store = new FileStore(join(dir, `artifacts-${versions}`));
  const marker = join(store.root, 'archives.json');
  if (existsSync(marker)) {
    const saved = JSON.parse(await readFile(marker, 'utf8')) as { shas: string[]; pubPem: string };
    return { store, ...saved };
  }
  process.stderr.write(`writing ${versions} signed archives into ${store.root} (once) …\n`);
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const shas: string[] = [];
  for (let i = 0; i < versions; i++) {
    const content = Buffer.concat([Buffer.from(`model ${i % 100} version ${i}\n`), randomBytes(1024)]);
    const sha = createHash('sha256').update(content).digest();
    const folder = join(store.root, 'model-archives', `m${i % 100}`, `v${i}`);
    await mkdir(folder, { recursive: true });
    await writeFile(join(folder, 'model.tar.gz'), content);
    await writeFile(join(folder, 'model.tar.gz.sig'), sign('sha256', content, privateKey).toString('base64'));
    shas.push(sha.toString('hex'));
  }
  const pubPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  await writeFile(marker, JSON.stringify({ shas, pubPem }));
  return { store, shas, pubPem };
}

/** Reads every archive's stat and signature once, so that the measured runs find them in the page cache. */
async function warmPageCache(store: FileStore, versions: number): Promise<void> {
  for (let i = 0; i < versions; i++) {
    const folder = join(store.root, 'model-archives', `m${i % 100}`, `v${i}`);
    statSync(join(folder, 'model.tar.gz'));
    readFileSync(join(folder, 'model.tar.gz.sig'));
  }
}

export async function main(args: string[]): Promise<void> {
  const runs = arg(args, 'runs', 3);
  const auditRows = arg(args, 'audit', 1_000_000);
  const versions = arg(args, 'versions', 100_000);
  const fullCheckRuns = arg(args, 'full-check-runs', 1);
  const adminUrl = process.env.AEGIS_BENCH_DATABASE_URL ?? process.env.AEGIS_TEST_DATABASE_URL;
  if (!adminUrl) throw new Error('set AEGIS_BENCH_DATABASE_URL (or run scripts/services.sh, which provides AEGIS_TEST_DATABASE_URL)');
  const dir = join(process.env.AEGIS_BENCH_DIR ?? '/tmp/aegis-bench', 'backup');
  await mkdir(dir, { recursive: true });
  const pgDump = findPgTool('pg_dump');
  const pgRestore = findPgTool('pg_restore');

  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  const tag = randomBytes(3).toString('hex');
  const made: string[] = [];
  const urlOf = (name: string) => {
    const u = new URL(adminUrl);
    u.pathname = `/${name}`;
    return u.toString();
  };
  let dbNo = 0;
  const freshDb = async () => {
    const name = `aegis_bench_${tag}_${dbNo++}`;
    await admin.query(`CREATE DATABASE ${name}`);
    made.push(name);
    return urlOf(name);
  };
  const dropDb = async (url: string) => {
    const name = new URL(url).pathname.slice(1);
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  };

  try {
    const { store, shas, pubPem } = await archives(dir, versions);
    const trust = { kind: 'publicKey' as const, key: createPublicKey(pubPem), source: 'bench key' };

    const sourceUrl = await freshDb();
    const source = await openDb({ url: sourceUrl });
    process.stderr.write(`filling ${new URL(sourceUrl).pathname.slice(1)}: ${versions} model versions, ${auditRows} audit rows …\n`);
    let t = performance.now();
    await source.query(`INSERT INTO models (name) SELECT 'm' || g FROM generate_series(0, 99) g`);
    await source.query(
      `INSERT INTO model_versions (model_id, version, archive_uri, archive_sha256, signer_key_id, stage, manifest, lineage)
       SELECT (SELECT id FROM models WHERE name = 'm' || (g % 100)), 'v' || g,
              $1 || '/model-archives/m' || (g % 100) || '/v' || g || '/model.tar.gz', ($2::text[])[g + 1], 'bench-key',
              CASE WHEN g >= $3 - 100 THEN 'production' ELSE 'archived' END,
              jsonb_build_object('apiVersion', 'aegis.dev/v1', 'kind', 'Model', 'name', 'm' || (g % 100), 'version', 'v' || g, 'framework', 'onnx',
                'runtime', jsonb_build_object('name', 'onnxruntime'),
                'inputs', jsonb_build_array(jsonb_build_object('name', 'features', 'dtype', 'float32', 'shape', jsonb_build_array(-1, 32))),
                'outputs', jsonb_build_array(jsonb_build_object('name', 'score', 'dtype', 'float32', 'shape', jsonb_build_array(-1, 1))),
                'metrics', jsonb_build_object('auc', 0.9 + (g % 97) / 1000.0)),
              jsonb_build_object('parentVersion', 'v' || (g - 100), 'datasetUri', 's3://data/m' || (g % 100) || '/' || g)
       FROM generate_series(0, $3 - 1) g`,
      [store.uri, shas.slice(0, versions), versions],
    );
    await source.query(
      `INSERT INTO audit_log (at, actor, action, subject, details)
       SELECT now() - (g || ' seconds')::interval, 'user-' || (g % 17), (ARRAY['version.register', 'version.promote', 'version.archive'])[1 + g % 3],
              'm' || (g % 100) || '@v' || (g % $2), jsonb_build_object('archiveSha256', md5(g::text) || md5((g + 1)::text), 'reason', 'bench ' || g)
       FROM generate_series(1, $1) g`,
      [auditRows, versions],
    );
    await source.query('ANALYZE');
    const size = (await source.query<{ s: string }>('SELECT pg_size_pretty(pg_database_size(current_database())) AS s')).rows[0]!.s;
    process.stderr.write(`filled in ${((performance.now() - t) / 1000).toFixed(1)} s (database ${size})\n`);
    const env = { ...process.env };
    const conn = (url: string) => {
      const u = new URL(url);
      if (u.password) env.PGPASSWORD = decodeURIComponent(u.password);
      u.password = '';
      return u.toString();
    };

    const backups = new FileStore(join(dir, `backups-${tag}`));
    const plainDump = join(dir, `plain-${tag}.dump`);
    const times: Record<string, number[]> = { pgDump: [], aegisBackup: [], pgRestore: [], pgRestoreSame: [], aegisRestore: [], aegisRestoreFull: [], aegisRestoreCached: [] };
    let lastReport: RestoreReport | undefined;
    let fullReport: RestoreReport | undefined;
    let cachedReport: RestoreReport | undefined;
    let fullCpuMs = 0; // this process, worker threads included (pg_restore and the server are other processes)
    let lastBackupId = '';
    for (let i = 0; i <= runs; i++) {
      const measured = i > 0; // run 0 warms caches
      process.stderr.write(`${measured ? `run ${i}/${runs}` : 'warm-up'} …\n`);
      t = performance.now();
      await exec(pgDump, ['--format=custom', `--file=${plainDump}`, `--dbname=${conn(sourceUrl)}`], { env });
      if (measured) times.pgDump!.push((performance.now() - t) / 1000);

      t = performance.now();
      const b = await runBackup({ source: { db: source, url: sourceUrl }, store: backups, now: () => new Date(Date.now() + i * 1000) });
      if (measured) times.aegisBackup!.push((performance.now() - t) / 1000);
      lastBackupId = b.manifest.id;

      const plainTarget = await freshDb();
      t = performance.now();
      await exec(pgRestore, [`--dbname=${conn(plainTarget)}`, plainDump], { env });
      if (measured) times.pgRestore!.push((performance.now() - t) / 1000);
      await dropDb(plainTarget);

      // pg_restore with the flags aegis passes: isolates what the checks cost
      const sameTarget = await freshDb();
      t = performance.now();
      await exec(pgRestore, ['--no-owner', '--no-privileges', '--single-transaction', '--exit-on-error', `--dbname=${conn(sameTarget)}`, plainDump], { env });
      if (measured) times.pgRestoreSame!.push((performance.now() - t) / 1000);
      await dropDb(sameTarget);

      const aegisTarget = await freshDb();
      const target = await openDbUnmigrated({ url: aegisTarget });
      const backup = await readBackup(b.location);
      t = performance.now();
      lastReport = await runRestore({ backup, target: { db: target, url: aegisTarget }, archives: { skip: 'bench: measured separately' } });
      if (measured) times.aegisRestore!.push((performance.now() - t) / 1000);
      await target.close();
      await dropDb(aegisTarget);
      if (!lastReport.ok) throw new Error(`restore checks failed: ${JSON.stringify(lastReport.checks)}`);
    }
    // The archives' files in the page cache, as the dump pg_restore reads is (it was just written): on this
    // machine a cold stat + read of a signature costs ~100 µs of kernel CPU, a warm one ~10 µs.
    if (fullCheckRuns > 0) await warmPageCache(store, versions);
    const signatureCache = join(dir, `verified-signatures-${tag}`);
    for (let i = 0; i < fullCheckRuns; i++) {
      for (const cached of [false, true]) {
        process.stderr.write(`restore with the model-archive check (${versions} signatures, ${cached ? 'verified-signature cache from the previous run' : 'every signature verified'}) ${i + 1}/${fullCheckRuns} …\n`);
        if (!cached) await rm(signatureCache, { force: true });
        const aegisTarget = await freshDb();
        const target = await openDbUnmigrated({ url: aegisTarget });
        const backup = await readBackup(locationIn(backups, lastBackupId));
        t = performance.now();
        const cpu = process.cpuUsage();
        const report = await runRestore({ backup, target: { db: target, url: aegisTarget }, archives: { trust, store, signatureCache } });
        (cached ? times.aegisRestoreCached! : times.aegisRestoreFull!).push((performance.now() - t) / 1000);
        const used = process.cpuUsage(cpu);
        if (cached) cachedReport = report;
        else {
          fullReport = report;
          fullCpuMs = (used.user + used.system) / 1000;
        }
        await target.close();
        await dropDb(aegisTarget);
        if (!report.ok) throw new Error(`restore checks failed: ${JSON.stringify(report.checks)}`);
      }
    }
    await rm(signatureCache, { force: true });
    await source.close();

    const m = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, v.length ? medianOf(v) : NaN]));
    const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}x`;
    const dumpSize = (await readBackup(locationIn(backups, lastBackupId))).manifest.dump.size;
    process.stdout.write(
      `\nbackup bench: ${versions} model versions, ${auditRows} audit rows (database ${size}, dump ${(dumpSize / 2 ** 20).toFixed(1)} MiB); median of ${runs} runs\n\n` +
        table([
          ['operation', 'seconds', 'vs baseline'],
          ['pg_dump -Fc -f FILE (baseline)', m.pgDump!.toFixed(2), '1.00x'],
          ['aegis db backup', m.aegisBackup!.toFixed(2), ratio(m.aegisBackup!, m.pgDump!)],
          ['pg_restore -d DB FILE (baseline)', m.pgRestore!.toFixed(2), '1.00x'],
          ['pg_restore --single-transaction (aegis flags)', m.pgRestoreSame!.toFixed(2), ratio(m.pgRestoreSame!, m.pgRestore!)],
          ['aegis db restore, archive check skipped', m.aegisRestore!.toFixed(2), `${ratio(m.aegisRestore!, m.pgRestore!)} (${ratio(m.aegisRestore!, m.pgRestoreSame!)} of same-flags)`],
          ...(fullCheckRuns > 0
            ? [
                [`aegis db restore, all checks, every signature verified`, m.aegisRestoreFull!.toFixed(2), `${ratio(m.aegisRestoreFull!, m.pgRestore!)} (${ratio(m.aegisRestoreFull!, m.pgRestoreSame!)} of same-flags)`],
                [`aegis db restore, all checks, signatures cached by an earlier check`, m.aegisRestoreCached!.toFixed(2), `${ratio(m.aegisRestoreCached!, m.pgRestore!)} (${ratio(m.aegisRestoreCached!, m.pgRestoreSame!)} of same-flags)`],
              ]
            : []),
        ]) +
        '\n\n' +
        `restore phases (last run, archive check skipped): verify ${lastReport!.timings.verifyMs} ms, load + row counts ${lastReport!.timings.loadMs} ms, ` +
        `migrate ${lastReport!.timings.migrateMs} ms, checks ${lastReport!.timings.checksMs} ms\n` +
        (fullReport
          ? `model-archive check: ${fullReport.timings.archiveCheckMs} ms for ${versions} versions (${((fullReport.timings.archiveCheckMs * 1000) / versions).toFixed(0)} µs each), ${fullReport.timings.archiveCheckOverlapped ? `beside the load (${fullReport.timings.checksMs} ms of checks after it)` : 'after the load'}: ${fullReport.checks.find((c) => c.name === 'model-archives')!.detail}\n` +
            `  CPU of this process during that restore (mostly the check; ${availableParallelism()} cores): ${fullCpuMs.toFixed(0)} ms (${((fullCpuMs * 1000) / versions).toFixed(0)} µs per version)\n` +
            `model-archive check with the cache of the run before: ${cachedReport!.timings.archiveCheckMs} ms (${((cachedReport!.timings.archiveCheckMs * 1000) / versions).toFixed(0)} µs each), ${cachedReport!.timings.archiveCheckOverlapped ? 'beside the load' : 'after the load'}\n`
          : '') +
        'target: <= 1.3x\n',
    );
    await rm(plainDump, { force: true });
    await rm(backups.root, { recursive: true, force: true });
  } finally {
    for (const name of made) await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined);
    await admin.end();
  }
}
