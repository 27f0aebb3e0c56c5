import { AegisError } from '../errors.js';
import { childLogger } from '../log.js';
import type { ArtifactStore } from '../store/types.js';
import { listBackups } from './catalog.js';
import { backupIdTime } from './manifest.js';
import { MANIFEST_NAME, type BackupLocation, type CompleteBackup, type IncompleteBackup } from './types.js';

/**
 * Retention, the usual way (as restic and borg count): keep the newest
 * complete backup of each of the last `keepDaily` UTC days that have one, and
 * of each of the last `keepWeekly` ISO weeks that have one; the newest
 * complete backup is always kept. Incomplete backups (no manifest) older
 * than `incompleteGraceMs` are leftovers of crashed runs and are removed; younger
 * ones may still be running and are left alone.
 */
export interface RetentionPolicy {
  keepDaily: number;
  keepWeekly: number;
  /** Default 24 h. */
  incompleteGraceMs?: number;
}

export interface RetentionPlan {
  keep: Array<{ id: string; why: string[] }>;
  remove: Array<{ id: string; why: string; complete: boolean }>;
}

const DAY_MS = 24 * 3600 * 1000;

function startedAt(b: CompleteBackup): Date {
  return new Date(b.manifest.startedAt);
}

function dayOf(d: Date): string {
  return d.toISOString().slice(0, 10);
}

/** ISO 8601 week, e.g. 2026-W47 (weeks start on Monday; week 1 holds the year's first Thursday). */
export function isoWeekOf(d: Date): string {
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  const weekday = t.getUTCDay() || 7;
  t.setUTCDate(t.getUTCDate() + 4 - weekday); // the Thursday of this week decides the year
  const yearStart = Date.UTC(t.getUTCFullYear(), 0, 1);
  const week = Math.ceil(((t.getTime() - yearStart) / DAY_MS + 1) / 7);
  return `${t.getUTCFullYear()}-W${String(week).padStart(2, '0')}`;
}

export function checkPolicy(p: RetentionPolicy): void {
  for (const [name, v] of [
    ['--keep-daily', p.keepDaily],
    ['--keep-weekly', p.keepWeekly],
  ] as const) {
    if (!Number.isInteger(v) || v < 0) {
      throw new AegisError('USAGE', `${name} must be a whole number ≥ 0, not ${String(v)}`, { hint: 'For example --keep-daily 7 --keep-weekly 4.' });
    }
  }
}

export function planRetention(complete: readonly CompleteBackup[], incomplete: readonly IncompleteBackup[], policy: RetentionPolicy, now: Date): RetentionPlan {
  checkPolicy(policy);
  const newestFirst = [...complete].sort((a, b) => startedAt(b).getTime() - startedAt(a).getTime() || (a.id < b.id ? 1 : -1));
  const why = new Map<string, string[]>();
  const mark = (id: string, reason: string) => why.set(id, [...(why.get(id) ?? []), reason]);
  if (newestFirst[0]) mark(newestFirst[0].id, 'newest');
  for (const [count, bucket, label] of [
    [policy.keepDaily, dayOf, 'daily'],
    [policy.keepWeekly, isoWeekOf, 'weekly'],
  ] as const) {
    const seen = new Set<string>();
    for (const b of newestFirst) {
      const key = bucket(startedAt(b));
      if (seen.has(key)) continue;
      if (seen.size >= count) break;
      seen.add(key);
      mark(b.id, `${label} ${key}`);
    }
  }
  const grace = policy.incompleteGraceMs ?? DAY_MS;
  const remove: RetentionPlan['remove'] = [];
  for (const b of newestFirst) if (!why.has(b.id)) remove.push({ id: b.id, why: 'outside the retention policy', complete: true });
  for (const b of incomplete) {
    const t = backupIdTime(b.id);
    if (t && now.getTime() - t.getTime() > grace) remove.push({ id: b.id, why: `incomplete (${b.reason}) and older than ${Math.round(grace / 3600_000)} h`, complete: false });
  }
  return { keep: newestFirst.filter((b) => why.has(b.id)).map((b) => ({ id: b.id, why: why.get(b.id)! })), remove };
}

/** Deletes one backup: the manifest first, so it stops counting as complete before any dump byte goes. */
export async function deleteBackup(location: BackupLocation): Promise<void> {
  const { store, prefix } = location;
  await store.delete(`${prefix}${MANIFEST_NAME}`);
  const keys: string[] = [];
  for await (const o of store.list(prefix)) keys.push(o.key);
  for (const key of keys) await store.delete(key);
}

export interface PruneResult extends RetentionPlan {
  dryRun: boolean;
}

export async function pruneBackups(store: ArtifactStore, policy: RetentionPolicy, o: { now?: Date; dryRun?: boolean } = {}): Promise<PruneResult> {
  const { complete, incomplete } = await listBackups(store);
  const plan = planRetention(complete, incomplete, policy, o.now ?? new Date());
  if (!o.dryRun) {
    const locations = new Map([...complete, ...incomplete].map((b) => [b.id, b.location]));
    for (const r of plan.remove) {
      await deleteBackup(locations.get(r.id)!);
      childLogger('backup').info({ event: 'backup_pruned', backup: r.id, reason: r.why }, 'backup removed by retention');
    }
  }
  return { ...plan, dryRun: o.dryRun === true };
}
