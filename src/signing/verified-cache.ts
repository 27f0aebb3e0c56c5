import { createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { childLogger } from '../log.js';
import { signatureCacheId } from './digest-verify.js';

/**
 * A cache of blob signatures already verified: (public key, digest, signature)
 * triples for which the ECDSA equation held. A registry-wide check (the
 * restore smoke check, run by every drill) verifies the same 100k signatures
 * each time at ~0.1 ms of CPU each; with this cache only the signatures it has
 * not seen before are verified. Written by hand because it is the product's
 * own trade-off, not a general-purpose store.
 *
 * What it stores and what it does not decide:
 * - an entry is SHA-256 over a domain tag, the key's SPKI (hashed), the
 *   digest and the DER signature (signatureCacheId in digest-verify.ts); a hit proves only that this exact signature by this exact
 *   key over this exact digest verified before (the equation's answer never
 *   changes). Which keys are trusted, revoked or expired is decided afresh on
 *   every check (blobSigner), so rotating or revoking a key needs no flush;
 * - failures are never cached;
 * - it lives in the platform's cache folder (`<home>/cache`, beside the
 *   verified model cache, which is trusted the same way): whoever can write
 *   there can already change the trust policy. Do not point it at shared
 *   storage (the artifact store) that others can write.
 *
 * File: a 16-byte header, then the 32-byte entries. A file that does not
 * parse is ignored (the check verifies everything, as with no cache) and
 * replaced on the next save; saves are atomic (temp file + rename).
 */
const HEADER = Buffer.from('AEGIS-VSIG-2\n\0\0\0', 'latin1');
const ENTRY = 32;
/** 64 MiB of entries; past it only the entries this process used are kept. */
const MAX_ENTRIES = 2_000_000;

export class VerifiedSignatureCache {
  private readonly loaded: Set<string>;
  private readonly touched = new Set<string>();
  private added = 0;
  readonly path: string;

  private constructor(path: string, entries: Set<string>) {
    this.path = path;
    this.loaded = entries;
  }

  /** Opens (or starts) the cache at `path`; an unreadable or malformed file counts as empty. */
  static async open(path: string): Promise<VerifiedSignatureCache> {
    let entries = new Set<string>();
    try {
      const buf = await readFile(path);
      if (buf.length >= HEADER.length && buf.subarray(0, HEADER.length).equals(HEADER) && (buf.length - HEADER.length) % ENTRY === 0) {
        for (let off = HEADER.length; off < buf.length; off += ENTRY) entries.add(buf.toString('latin1', off, off + ENTRY));
      } else {
        childLogger('signing').warn({ event: 'signature_cache_ignored', path }, 'the verified-signature cache is not in the expected format; ignoring it');
      }
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') childLogger('signing').warn({ event: 'signature_cache_unreadable', path, err: (err as Error).message }, 'cannot read the verified-signature cache; ignoring it');
      entries = new Set();
    }
    return new VerifiedSignatureCache(path, entries);
  }

  /** Entries known (loaded plus added). */
  get size(): number {
    let n = this.loaded.size;
    for (const e of this.touched) if (!this.loaded.has(e)) n++;
    return n;
  }

  /** Index of the first of `keys` that signed `signature` over `digest` in an earlier verification, or -1. */
  firstKey(keys: readonly KeyObject[], digest: Uint8Array, signature: Uint8Array): number {
    return this.firstId(this.ids(keys, digest, signature));
  }

  /** The entry ids of `signature` over `digest` under each of `keys` (undefined for what is not a key). */
  ids(keys: readonly KeyObject[], digest: Uint8Array, signature: Uint8Array): (string | undefined)[] {
    return keys.map((k) => this.entry(k, digest, signature));
  }

  /** Index of the first entry id (signatureCacheId; undefined: none) that is in the cache, or -1. */
  firstId(ids: readonly (string | undefined)[]): number {
    for (let k = 0; k < ids.length; k++) {
      const id = ids[k];
      if (id !== undefined && (this.loaded.has(id) || this.touched.has(id))) {
        this.touched.add(id);
        return k;
      }
    }
    return -1;
  }

  /** Records that `key`'s signature over `digest` verified. */
  add(key: KeyObject, digest: Uint8Array, signature: Uint8Array): void {
    this.addId(this.entry(key, digest, signature));
  }

  /** Records an entry id (signatureCacheId) of a signature that verified. */
  addId(id: string | undefined): void {
    if (id === undefined || this.touched.has(id)) return;
    this.touched.add(id);
    if (!this.loaded.has(id)) this.added++;
  }

  /** Writes the cache if anything was added (atomically; a failure is logged, never thrown: it is only a cache). */
  async save(): Promise<void> {
    if (this.added === 0) return;
    const all = this.loaded.size + this.added <= MAX_ENTRIES ? new Set([...this.loaded, ...this.touched]) : this.touched;
    const buf = Buffer.allocUnsafe(HEADER.length + all.size * ENTRY);
    HEADER.copy(buf, 0);
    let off = HEADER.length;
    for (const e of all) off += buf.write(e, off, ENTRY, 'latin1');
    const tmp = `${this.path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    try {
      await mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
      await writeFile(tmp, buf, { mode: 0o600 });
      await rename(tmp, this.path);
      this.added = 0;
    } catch (err) {
      await rm(tmp, { force: true }).catch(() => undefined);
      childLogger('signing').warn({ event: 'signature_cache_unwritable', path: this.path, err: (err as Error).message }, 'cannot write the verified-signature cache; the next check verifies everything again');
    }
  }

  private entry(key: KeyObject, digest: Uint8Array, signature: Uint8Array): string | undefined {
    const spki = spkiOf(key);
    return spki && signatureCacheId(spki, digest, signature).toString('latin1');
  }
}

const spkis = new WeakMap<KeyObject, Uint8Array | null>();

/** A key's public SPKI DER, point uncompressed (one object per key, so that signatureCacheId reuses its hash prefix); undefined for a key that has none. */
export function spkiOf(key: KeyObject): Uint8Array | undefined {
  let spki = spkis.get(key);
  if (spki === undefined) {
    try {
      // Through the JWK: one encoding per key (a point stored compressed or uncompressed gives the same entries).
      const jwk = (key.type === 'private' ? createPublicKey(key) : key).export({ format: 'jwk' });
      spki = new Uint8Array(createPublicKey({ key: jwk, format: 'jwk' }).export({ type: 'spki', format: 'der' }));
    } catch {
      spki = null; // not an asymmetric key: nothing it verified is cached
    }
    spkis.set(key, spki);
  }
  return spki ?? undefined;
}
