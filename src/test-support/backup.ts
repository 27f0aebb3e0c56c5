/**
 * Helpers for the backup suites: a registry with real (signed) archives in a
 * store, awkward values in every column type we use, and a checksum over
 * every row of every table to prove a restore equal row for row.
 */
import { createHash, generateKeyPairSync, type KeyObject } from 'node:crypto';
import type { Db } from '../db/types.js';
import { Registry } from '../registry/index.js';
import { signDigest } from '../signing/blob.js';
import type { TrustAnchor } from '../signing/trust.js';
import type { ArtifactStore } from '../store/types.js';
import { archiveKey } from '../store/types.js';
import { bytes } from './models.js';

export function testKeys(): { privateKey: KeyObject; trust: TrustAnchor } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { privateKey, trust: { kind: 'publicKey', key: publicKey, source: 'test key' } };
}

/** Stores a stand-in archive and its detached signature; returns what registering it needs. */
export async function signedArchive(store: ArtifactStore, name: string, version: string, key: KeyObject): Promise<{ uri: string; sha256: string }> {
  const content = bytes(`archive ${name}@${version}`, 2048);
  const digest = createHash('sha256').update(content).digest();
  const k = archiveKey(name, version);
  await store.put(k, content);
  await store.put(`${k}.sig`, Buffer.from(signDigest(digest, key).toString('base64')));
  return { uri: store.uriOf(k), sha256: digest.toString('hex') };
}

/** Awkward text for COPY: tabs, newlines, backslashes, `\N`, `\.`, quotes, non-ASCII, emoji. */
export const AWKWARD = 'tab\there\nnew line\\back\\slash \\N \\. "quoted" \'single\' ünïcødé 词 🙂\r\n';

/**
 * A registry with `versions` versions over two models (all signed, stored in
 * `store`), stage changes, awkward audit details, and a row with NULLs.
 */
export async function seedRegistry(db: Db, store: ArtifactStore, key: KeyObject, versions = 4): Promise<void> {
  const registry = new Registry(db);
  for (let i = 0; i < versions; i++) {
    const name = i % 2 === 0 ? 'fraud' : 'churn';
    const version = `1.${i}`;
    const a = await signedArchive(store, name, version, key);
    await registry.registerVersion({
      name,
      version,
      archiveUri: a.uri,
      archiveSha256: a.sha256,
      signerKeyId: 'test-key',
      manifest: { name, version, note: AWKWARD, nested: { list: [1, 2.5, null, 'x\ty'], flag: true } },
      lineage: { parentVersion: i > 1 ? `1.${i - 2}` : undefined, datasetUri: `s3://data/${name}/${i}` },
      actor: i === 0 ? AWKWARD : 'tester',
    });
  }
  await registry.promote('fraud', '1.0', 'production', 'tester', { reason: AWKWARD });
  await db.query(`INSERT INTO audit_log (actor, action, subject, details) VALUES ($1, 'note', 'fraud', $2::jsonb)`, [AWKWARD, JSON.stringify({ text: AWKWARD, n: 1e-7, big: 12345678901234 })]);
}

/** Rows and an MD5 over every row (in a stable order) of every user table, read in UTC. */
export async function tableChecksums(db: Db): Promise<Record<string, { rows: number; md5: string }>> {
  return db.transaction(async (tx) => {
    await tx.query("SET LOCAL TimeZone = 'UTC'; SET LOCAL extra_float_digits = 3");
    const tables = await tx.query<{ name: string }>(
      `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%' ORDER BY 1`,
    );
    const out: Record<string, { rows: number; md5: string }> = {};
    for (const { name } of tables.rows) {
      const r = await tx.query<{ rows: number | bigint; md5: string }>(
        `SELECT count(*) AS rows, md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) AS md5 FROM ${name} t`,
      );
      out[name] = { rows: Number(r.rows[0]!.rows), md5: r.rows[0]!.md5 };
    }
    return out;
  });
}

/** Next values of every user sequence would continue after the restored rows. */
export async function sequenceStates(db: Db): Promise<Record<string, string>> {
  const seqs = await db.query<{ name: string }>(
    `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind = 'S' AND n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1`,
  );
  const out: Record<string, string> = {};
  for (const { name } of seqs.rows) {
    const r = await db.query<{ v: string; c: boolean }>(`SELECT last_value::text AS v, is_called AS c FROM ${name}`);
    out[name] = `${r.rows[0]!.v}/${r.rows[0]!.c}`;
  }
  return out;
}
