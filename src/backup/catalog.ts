import type { Readable } from 'node:stream';
import { AegisError, isAegisError } from '../errors.js';
import { childLogger } from '../log.js';
import { openStore } from '../store/index.js';
import type { ArtifactStore } from '../store/types.js';
import { backupIdTime, isBackupId, parseManifest } from './manifest.js';
import { BACKUPS_PREFIX, MANIFEST_NAME, type BackupLocation, type CompleteBackup, type IncompleteBackup } from './types.js';

/**
 * The backups in a store: `db-backups/<id>/…`, grouped by id. Complete ones
 * (valid manifest naming a dump of the recorded size) are listed oldest first;
 * the rest are reported as incomplete with the reason.
 */
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

export function locationIn(store: ArtifactStore, id: string): BackupLocation {
  const prefix = `${BACKUPS_PREFIX}${id}/`;
  return { store, prefix, id, uri: `${store.uri}/${prefix.slice(0, -1)}` };
}

export async function readSmall(stream: Readable, limit: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > limit) {
      stream.destroy();
      throw new AegisError('BACKUP_MANIFEST_INVALID', `${what} is larger than ${limit} bytes`, { hint: 'This is not a manifest written by Aegis; restore another backup.' });
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** Reads and checks one backup's manifest against what is stored; throws BACKUP_INCOMPLETE / BACKUP_MANIFEST_INVALID. */
export async function readBackup(location: BackupLocation, sizes?: Map<string, number>): Promise<CompleteBackup> {
  const { store, prefix, id, uri } = location;
  let stream: Readable;
  try {
    stream = await store.get(`${prefix}${MANIFEST_NAME}`);
  } catch (err) {
    if (isAegisError(err, 'STORE_NOT_FOUND')) throw incomplete(uri, 'it has no manifest.json (the backup did not finish)');
    throw err;
  }
  const manifest = parseManifest(await readSmall(stream, MAX_MANIFEST_BYTES, `${uri}/${MANIFEST_NAME}`), `${uri}/${MANIFEST_NAME}`);
  if (isBackupId(id) && manifest.id !== id) {
    throw new AegisError('BACKUP_MANIFEST_INVALID', `the manifest in ${uri} is for backup ${manifest.id}, not ${id}`, {
      hint: 'A manifest was copied between backups; this backup cannot be trusted. Restore another one.',
      details: { folder: id, manifest: manifest.id },
    });
  }
  const dumpKey = `${prefix}${manifest.dump.name}`;
  const size = sizes ? sizes.get(dumpKey) : (await store.head(dumpKey))?.size;
  if (size === undefined) throw incomplete(uri, `its dump ${manifest.dump.name} is missing`);
  if (size !== manifest.dump.size) throw incomplete(uri, `its dump ${manifest.dump.name} has ${size} bytes, the manifest records ${manifest.dump.size}`);
  return { id: manifest.id, location, manifest };
}

function incomplete(uri: string, why: string): AegisError {
  return new AegisError('BACKUP_INCOMPLETE', `${uri} is not a complete backup: ${why}`, {
    hint: 'Only backups with a manifest (written last) can be restored; list them with `aegis db backups` and pick another.',
    details: { backup: uri },
  });
}

export interface BackupListing {
  complete: CompleteBackup[];
  incomplete: IncompleteBackup[];
}

export async function listBackups(store: ArtifactStore): Promise<BackupListing> {
  const groups = new Map<string, Map<string, number>>();
  for await (const o of store.list(BACKUPS_PREFIX)) {
    const id = o.key.slice(BACKUPS_PREFIX.length).split('/')[0]!;
    if (!groups.has(id)) groups.set(id, new Map());
    groups.get(id)!.set(o.key, o.size);
  }
  const complete: CompleteBackup[] = [];
  const incomplete: IncompleteBackup[] = [];
  for (const [id, sizes] of [...groups].sort(([a], [b]) => compareIds(a, b))) {
    const location = locationIn(store, id);
    const keys = [...sizes.keys()];
    if (!isBackupId(id)) {
      incomplete.push({ id, location, keys, reason: 'the folder name is not a backup id' });
      continue;
    }
    try {
      complete.push(await readBackup(location, sizes));
    } catch (err) {
      if (!isAegisError(err, 'BACKUP_INCOMPLETE') && !isAegisError(err, 'BACKUP_MANIFEST_INVALID')) throw err;
      if (err.code === 'BACKUP_MANIFEST_INVALID') childLogger('backup').warn({ backup: location.uri, err: err.message }, 'backup with an invalid manifest');
      incomplete.push({ id, location, keys, reason: err.message.replace(/^.* is not a complete backup: /, '') });
    }
  }
  return { complete, incomplete };
}

/** Chronological order of ids (`…Z` before `…Z-1` before the next second). */
export function compareIds(a: string, b: string): number {
  const ta = backupIdTime(a)?.getTime() ?? 0;
  const tb = backupIdTime(b)?.getTime() ?? 0;
  if (ta !== tb) return ta - tb;
  const sa = Number(/-(\d+)$/.exec(a)?.[1] ?? 0);
  const sb = Number(/-(\d+)$/.exec(b)?.[1] ?? 0);
  return sa !== sb ? sa - sb : a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Resolves what `--from` names: `latest`, a backup id (in `store`), or the
 * URI / path of a backup folder (or of its manifest.json).
 */
export async function resolveBackup(from: string, store: ArtifactStore, open: (uri: string) => ArtifactStore = openStore): Promise<CompleteBackup> {
  if (from === 'latest') {
    const { complete } = await listBackups(store);
    const newest = complete[complete.length - 1];
    if (!newest) {
      throw new AegisError('BACKUP_NOT_FOUND', `there is no complete backup in ${store.uri}/${BACKUPS_PREFIX.slice(0, -1)}`, {
        hint: 'Make one with `aegis db backup`, or point --store / --from at where the backups are.',
        details: { store: store.uri },
      });
    }
    return newest;
  }
  if (isBackupId(from)) return readExisting(locationIn(store, from));
  const folder = from.replace(/\/+$/, '').replace(new RegExp(`/${MANIFEST_NAME}$`), '');
  const id = folder.split('/').pop() ?? '';
  const folderStore = open(folder);
  return readExisting({ store: folderStore, prefix: '', id, uri: folderStore.uri });
}

async function readExisting(location: BackupLocation): Promise<CompleteBackup> {
  try {
    return await readBackup(location);
  } catch (err) {
    if (isAegisError(err, 'BACKUP_INCOMPLETE')) {
      const any = await firstKey(location);
      if (any === undefined) {
        throw new AegisError('BACKUP_NOT_FOUND', `there is no backup at ${location.uri}`, {
          cause: err,
          hint: 'List the backups with `aegis db backups` and pass one of their ids or URIs to --from.',
          details: { backup: location.uri },
        });
      }
    }
    throw err;
  }
}

async function firstKey(location: BackupLocation): Promise<string | undefined> {
  for await (const o of location.store.list(location.prefix)) return o.key;
  return undefined;
}
