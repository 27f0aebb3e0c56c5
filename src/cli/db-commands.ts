import { Option, type Command } from 'commander';
import { resolve } from 'node:path';
import type {
  BackupManifest,
  BackupTrigger,
  CheckResult,
  DrillReport,
  PruneResult,
  RestoreOptions,
  RestoreReport,
} from '../backup/index.js';
import type { AegisConfig } from '../config/index.js';
import type { Db } from '../db/index.js';
import type * as BackupModule from '../backup/index.js';
import type * as DbModule from '../db/index.js';
import { AegisError } from '../errors.js';
import { withContext } from './archive-commands.js';
import { withControlFallback } from './control-fallback.js';
import type { CliContext } from './context.js';
import { EXIT_FAILED, printJson } from './output.js';

// The backup machinery and database drivers load only when a db command runs.
let B: typeof BackupModule;
let D: typeof DbModule;
async function loadModules(): Promise<void> {
  B ??= await import('../backup/index.js');
  D ??= await import('../db/index.js');
}

/**
 * `aegis db backup | backups | prune | restore | drill`: thin commands over
 * src/backup (see docs/backup-restore.md).
 */

/** How long the CLI waits for a backup or drill the control plane runs for it. */
const REMOTE_TIMEOUT_MS = 60 * 60 * 1000;

/** A location sent to the control plane: a URI as given, a path made absolute (the control plane runs in another folder). */
function forRemote(location: string | undefined): string | undefined {
  return location === undefined || /^[a-z][a-z0-9+.-]*:\/\//i.test(location) ? location : resolve(location);
}

/** The configured metadata database, migrated (what every other command sees). */
async function openSource(ctx: CliContext): Promise<{ db: Db; url?: string }> {
  const url = ctx.config.databaseUrl;
  const db = await D.openDb(url ? { url } : { dataDir: ctx.paths.db });
  return url ? { db, url } : { db };
}

function count(value: string, name: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n)) {
    throw new AegisError('USAGE', `${name} must be a whole number ≥ 0, got ${JSON.stringify(value)}`, { hint: `For example ${name} 7.` });
  }
  return n;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

function mib(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${(bytes / 1024 / 1024).toFixed(1)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`;
}

function renderChecks(checks: CheckResult[]): string[] {
  const out: string[] = [];
  for (const c of checks) {
    out.push(`  ${c.status === 'passed' ? 'passed ' : c.status === 'failed' ? 'FAILED ' : 'skipped'}  ${c.name.padEnd(21)} ${c.detail}`);
    for (const p of c.problems ?? []) out.push(`             ${p}`);
  }
  return out;
}

function renderRestore(r: RestoreReport): string {
  const applied = r.migrations.applied.length ? `applied ${r.migrations.applied.map((m) => `${m.version} (${m.name})`).join(', ')}` : 'none needed';
  return [
    `restored backup ${r.backup.id} (${r.backup.format}, ${r.backup.engine}, schema ${r.backup.schemaVersion}) into ${r.target.engine} ${r.target.serverVersion}`,
    `  migrations forward: ${applied}`,
    ...renderChecks(r.checks),
    `  time: verify ${seconds(r.timings.verifyMs)}, load ${seconds(r.timings.loadMs)}, migrate ${seconds(r.timings.migrateMs)}, checks ${seconds(r.timings.checksMs)}${r.timings.archiveCheckOverlapped ? ` (the archive check, ${seconds(r.timings.archiveCheckMs)}, ran beside the load)` : ''}, total ${seconds(r.timings.totalMs)}`,
    r.ok ? 'restore ok' : 'restore FAILED its checks (see above)',
  ].join('\n');
}

function renderPrune(p: PruneResult): string[] {
  return [
    ...p.keep.map((k) => `  keep    ${k.id}  (${k.why.join(', ')})`),
    ...p.remove.map((r) => `  ${p.dryRun ? 'would remove' : 'removed'} ${r.id}  (${r.why})`),
  ];
}

/** The archive check's trust anchor, or why it is skipped. Resolved before anything is touched. */
async function archiveCheck(ctx: CliContext, o: { verifyArchives?: boolean; publicKey?: string; trust?: string; signatureCache?: boolean }): Promise<RestoreOptions['archives']> {
  if (o.verifyArchives === false) return { skip: 'disabled by --no-verify-archives' };
  return {
    trust: await ctx.trust({ publicKey: o.publicKey, trust: o.trust }),
    store: ctx.store(),
    ...(o.signatureCache === false ? {} : { signatureCache: B.signatureCachePath(ctx.config) }),
  };
}

const checkOptions = (cmd: Command): Command =>
  cmd
    .option('--public-key <key.pem>', 'trust this key when checking model archive signatures')
    .option('--trust <trust.yaml>', 'trust policy for the archive signatures (default: <home>/trust.yaml)')
    .option('--no-verify-archives', 'skip the model-archive check (reported as skipped)')
    .option('--no-signature-cache', 'verify every archive signature, even those an earlier check verified (<home>/cache/verified-signatures)')
    .option('--health-url <url>', 'control-plane health URL to check (default: backup.healthUrl)');

export function registerDbCommands(program: Command, config: () => AegisConfig): Command {
  const db = program
    .command('db')
    .description('back up, list, restore and drill-restore the Aegis database')
    .addHelpText('after', '\nExamples:\n  $ aegis db backup\n  $ aegis db backups\n  $ aegis db restore --from latest --target postgres://aegis@db:5432/aegis\n  $ aegis db drill --json');

  db.command('backup')
    .description('back up the database into the store (db-backups/<UTC timestamp>/, manifest written last)')
    .option('--to <uri>', 'store root for the backup: a folder, file://… or s3://bucket/prefix (default: backup.storeUri, else the artifact store)')
    .addOption(new Option('--format <format>', 'dump format (default: pgdump on PostgreSQL, logical on the embedded database)').choices(['pgdump', 'logical']))
    .addOption(new Option('--trigger <trigger>', 'what started it, recorded in backup_runs (the Kubernetes CronJob passes schedule)').choices(['manual', 'schedule']).default('manual'))
    .option('--keep-daily <n>', 'afterwards, prune: keep the newest backup of each of the last N days')
    .option('--keep-weekly <m>', 'afterwards, prune: keep the newest backup of each of the last M ISO weeks')
    .option('--json', 'print a JSON report')
    .addHelpText(
      'after',
      `
PostgreSQL is dumped with pg_dump -Fc (postgresql-client; backup.pgDumpPath),
the embedded database in the aegis-logical format. The dump streams into the
store and is hashed on the way; manifest.json (format, engine and server
version, schema version, rows per table, SHA-256 and size, start/end) is
written last, so an interrupted backup never counts as one. The outcome is
recorded in backup_runs.

Examples:
  $ aegis db backup
  $ aegis db backup --to s3://my-bucket/aegis --keep-daily 7 --keep-weekly 4 --json`,
    )
    .action(async (o) =>
      withContext(config, o, async (ctx) => {
        await loadModules();
        const keep = o.keepDaily !== undefined || o.keepWeekly !== undefined
          ? { keepDaily: count(o.keepDaily ?? '0', '--keep-daily'), keepWeekly: count(o.keepWeekly ?? '0', '--keep-weekly') }
          : undefined;
        const trigger = o.trigger as BackupTrigger;
        const done = await withControlFallback<{ uri: string; manifest: BackupManifest; pruned?: PruneResult }>(
          ctx,
          async () => {
            const source = await openSource(ctx);
            try {
              const r = await B.runRecordedBackup({
                source,
                store: B.backupStore(ctx.config, o.to),
                ...(o.format ? { format: B.FORMAT_NAMES[o.format as 'pgdump' | 'logical'] } : {}),
                tools: B.pgTools(ctx.config),
                runs: new B.DbBackupRunLog(source.db),
                trigger,
                retention: keep,
              });
              return { uri: r.result.uri, manifest: r.result.manifest, ...(r.pruned ? { pruned: r.pruned } : {}) };
            } finally {
              await source.db.close();
            }
          },
          // `aegis up` holds the embedded database: its control plane makes the backup.
          (client) =>
            client.request('POST', '/api/v1/db/backups', { to: forRemote(o.to), format: o.format, trigger, ...keep }, { timeoutMs: REMOTE_TIMEOUT_MS }),
        );
        const { uri, manifest, pruned } = done;
        if (o.json) return printJson({ ok: true, uri, manifest, ...(pruned ? { pruned } : {}) });
        const rows = Object.values(manifest.tables).reduce((a, b) => a + b, 0);
        const ms = Date.parse(manifest.finishedAt) - Date.parse(manifest.startedAt);
        process.stdout.write(
          `backed up to ${uri}\n  ${manifest.format}, ${mib(manifest.dump.size)}, ${Object.keys(manifest.tables).length} tables, ${rows} rows, schema ${manifest.schemaVersion}, ${seconds(ms)}\n`,
        );
        if (pruned) process.stdout.write(['retention:', ...renderPrune(pruned)].join('\n') + '\n');
      }),
    );

  db.command('backups')
    .description('list the complete backups in the store, oldest first')
    .option('--store <uri>', 'store root (default: backup.storeUri, else the artifact store)')
    .option('--all', 'also list incomplete backups (no manifest, damaged) with the reason')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nA backup without a manifest is incomplete: it is never listed (except with --all) nor restored.\n\nExamples:\n  $ aegis db backups\n  $ aegis db backups --store s3://my-bucket/aegis --all --json')
    .action(async (o) =>
      withContext(config, o, async (ctx) => {
        await loadModules();
        const store = B.backupStore(ctx.config, o.store);
        const { complete, incomplete } = await B.listBackups(store);
        if (o.json) {
          return printJson({
            store: store.uri,
            backups: complete.map((b) => ({ uri: b.location.uri, ...b.manifest })),
            ...(o.all ? { incomplete: incomplete.map((b) => ({ id: b.id, uri: b.location.uri, reason: b.reason })) } : {}),
          });
        }
        if (complete.length === 0) process.stdout.write(`no complete backups in ${store.uri} (make one with \`aegis db backup\`)\n`);
        for (const b of complete) {
          const m = b.manifest;
          const rows = Object.values(m.tables).reduce((a, c) => a + c, 0);
          process.stdout.write(`${b.id.padEnd(20)} ${m.format.padEnd(15)} ${m.engine.padEnd(8)} schema ${String(m.schemaVersion).padEnd(3)} ${mib(m.dump.size).padStart(10)} ${String(rows).padStart(9)} rows  ${b.location.uri}\n`);
        }
        if (o.all) for (const b of incomplete) process.stdout.write(`${b.id.padEnd(20)} INCOMPLETE: ${b.reason}\n`);
      }),
    );

  db.command('prune')
    .description('remove backups outside the retention policy (never the newest complete one)')
    .requiredOption('--keep-daily <n>', 'keep the newest backup of each of the last N days')
    .requiredOption('--keep-weekly <m>', 'keep the newest backup of each of the last M ISO weeks')
    .option('--store <uri>', 'store root (default: backup.storeUri, else the artifact store)')
    .option('--dry-run', 'only show what would be removed')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
Incomplete backups (no manifest) older than 24 h are leftovers of interrupted
runs and are removed too. A backup's manifest is deleted first, so it stops
counting as a backup before any of its dump goes.

Example:
  $ aegis db prune --keep-daily 7 --keep-weekly 4 --dry-run`,
    )
    .action(async (o) =>
      withContext(config, o, async (ctx) => {
        await loadModules();
        const policy = { keepDaily: count(o.keepDaily, '--keep-daily'), keepWeekly: count(o.keepWeekly, '--keep-weekly') };
        const r = await B.pruneBackups(B.backupStore(ctx.config, o.store), policy, { dryRun: o.dryRun === true });
        if (o.json) return printJson({ ok: true, ...r });
        process.stdout.write([...renderPrune(r), `${r.dryRun ? 'would remove' : 'removed'} ${r.remove.length}, kept ${r.keep.length}`].join('\n') + '\n');
      }),
    );

  checkOptions(
    db
      .command('restore')
      .description('restore a backup into a database, then run the smoke checks')
      .requiredOption('--from <backup>', '`latest`, a backup id (20261122T223000Z), or the URI / path of a backup folder')
      .option('--store <uri>', 'where `latest` and ids are looked up (default: backup.storeUri, else the artifact store)')
      .option('--target <db>', 'database to restore into: postgres://… or an embedded database folder (default: the configured database)')
      .option('--force', 'replace a target that holds data'),
  )
    .option('--json', 'print the report as JSON')
    .addHelpText(
      'after',
      `
Before the target is touched, the dump is read end to end and must match the
manifest's SHA-256 and size, and its schema version must be one this build
knows. A target holding data is refused without --force. After loading,
migrations run forward (older dumps) and the smoke checks run: row counts
equal the manifest, every model version's archive exists and its signature
verifies (a signature an earlier check on this machine verified is not
verified again: <home>/cache/verified-signatures; --no-signature-cache), the
control plane answers health (skipped when no URL is set).
Exit status 1 when any check fails. Cross-engine restores work both ways
(embedded ⇄ PostgreSQL; a pg_dump backup into the embedded database needs pg_restore).

Examples:
  $ aegis db restore --from latest --target postgres://aegis@db:5432/aegis_new
  $ aegis db restore --from s3://my-bucket/aegis/db-backups/20261122T223000Z --force --json`,
    )
    .action(async (o) =>
      withContext(config, o, async (ctx) => {
        await loadModules();
        const archives = await archiveCheck(ctx, o);
        const backup = await B.resolveBackup(o.from, B.backupStore(ctx.config, o.store));
        const targetUrl: string | undefined = o.target ?? ctx.config.databaseUrl;
        const db = await D.openDbUnmigrated(targetUrl ? { url: targetUrl } : { dataDir: ctx.paths.db });
        try {
          const report = await B.runRestore({
            backup,
            target: { db, ...(D.isPostgresUrl(targetUrl) ? { url: targetUrl } : {}) },
            force: o.force === true,
            tools: B.pgTools(ctx.config),
            archives,
            healthUrl: o.healthUrl ?? ctx.config.backup.healthUrl,
          });
          if (o.json) printJson(report);
          else process.stdout.write(renderRestore(report) + '\n');
          if (!report.ok) process.exitCode = EXIT_FAILED;
        } finally {
          await db.close();
        }
      }),
    );

  checkOptions(
    db
      .command('drill')
      .description('back up, restore into a scratch database, run the smoke checks, report RPO and RTO')
      .option('--store <uri>', 'store root for the backup (default: backup.storeUri, else the artifact store)')
      .option('--from <backup>', 'drill on an existing backup (`latest`, an id or a URI) instead of making a new one')
      .addOption(new Option('--format <format>', 'format of the new backup').choices(['pgdump', 'logical']))
      .option('--scratch-url <db>', 'restore into this empty database (postgres://… or a folder) instead of a fresh one')
      .option('--keep-scratch', 'keep the scratch PostgreSQL database afterwards (to inspect it)'),
  )
    .option('--json', 'print the report as JSON (for CI)')
    .addHelpText(
      'after',
      `
The scratch database is a new database on the same PostgreSQL server (the
role needs CREATEDB; it is dropped afterwards), or an in-memory embedded
database for the embedded platform. RPO is the age of the backup's snapshot
when the restore began; RTO is the restore (verify, load, migrate) plus the
checks. Exit status 1 when any check fails.

Examples:
  $ aegis db drill
  $ aegis db drill --from latest --json`,
    )
    .action(async (o) =>
      withContext(config, o, async (ctx) => {
        await loadModules();
        const report = await withControlFallback<DrillReport>(
          ctx,
          async () => {
            const source = await openSource(ctx); // first: DB_LOCKED sends the drill to the control plane, with its own trust anchor
            try {
              const archives = await archiveCheck(ctx, o); // before the backup: a missing anchor makes nothing
              const scratch = o.scratchUrl
                ? B.existingScratch(o.scratchUrl)
                : source.url
                  ? B.postgresScratch(source.url, { keep: o.keepScratch === true })
                  : B.pgliteScratch();
              return await B.runDrill({
                source,
                store: B.backupStore(ctx.config, o.store),
                from: o.from,
                ...(o.format ? { format: B.FORMAT_NAMES[o.format as 'pgdump' | 'logical'] } : {}),
                scratch,
                tools: B.pgTools(ctx.config),
                archives,
                healthUrl: o.healthUrl ?? ctx.config.backup.healthUrl,
                runs: new B.DbBackupRunLog(source.db),
              });
            } finally {
              await source.db.close();
            }
          },
          // `aegis up` holds the embedded database: its control plane runs the drill (into an in-memory scratch database).
          (client) =>
            client.request(
              'POST',
              '/api/v1/db/drills',
              {
                store: forRemote(o.store),
                from: o.from === undefined || o.from === 'latest' || B.isBackupId(o.from) ? o.from : forRemote(o.from),
                format: o.format,
                scratchUrl: forRemote(o.scratchUrl),
                verifyArchives: o.verifyArchives,
                signatureCache: o.signatureCache,
                publicKey: o.publicKey === undefined ? undefined : resolve(o.publicKey),
                trust: o.trust === undefined ? undefined : resolve(o.trust),
                healthUrl: o.healthUrl,
              },
              { timeoutMs: REMOTE_TIMEOUT_MS },
            ),
        );
        if (o.json) printJson(report);
        else process.stdout.write(renderDrill(report) + '\n');
        if (!report.ok) process.exitCode = EXIT_FAILED;
      }),
    );
  return db;
}

function renderDrill(d: DrillReport): string {
  return [
    `drill: ${d.backup.new ? 'new backup' : 'backup'} ${d.backup.id} (${mib(d.backup.bytes)}) restored into ${d.scratch}`,
    renderRestore(d.restore),
    `RPO ${d.rpoSeconds.toFixed(1)} s (age of the backup when the restore began)`,
    `RTO ${d.rtoSeconds.toFixed(1)} s (restore + checks)`,
    d.ok ? 'drill ok' : 'drill FAILED',
  ].join('\n');
}
