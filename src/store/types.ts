import type { Readable } from 'node:stream';

/** Layout of model archives inside a store. */
export function archiveKey(name: string, version: string): string {
  return `model-archives/${name}/${version}/model.tar.gz`;
}

export interface ObjectInfo {
  key: string;
  size: number;
}

export interface PutOptions {
  /** Known size in bytes (lets S3 use a single PUT for small objects). */
  contentLength?: number;
  contentType?: string;
  /** Called with bytes written so far (progress bars). */
  onProgress?: (bytes: number) => void;
}

/**
 * Where archives, signatures and backups live. Keys are `/`-separated
 * relative paths (no leading `/`, no `..`). Writes are atomic: a reader
 * never sees a partial object (temp + rename on disk; single PUT or completed
 * multipart upload on S3). Bodies stream end to end.
 * Implementations: store/file (file://), store/s3 (s3://).
 */
export interface ArtifactStore {
  /** The store's root URI, e.g. file:///var/lib/aegis/artifacts or s3://bucket/prefix */
  readonly uri: string;
  put(key: string, body: Readable | Buffer, options?: PutOptions): Promise<ObjectInfo>;
  /** Streams an object; throws AegisError STORE_NOT_FOUND when absent. */
  get(key: string): Promise<Readable>;
  /** Size of an object, or undefined when absent. */
  head(key: string): Promise<ObjectInfo | undefined>;
  /** Objects under a key prefix, sorted by key. */
  list(prefix: string): AsyncIterable<ObjectInfo>;
  /** Deletes an object; absent objects are not an error. */
  delete(key: string): Promise<void>;
  /** Full URI of a key (for registry records and messages). */
  uriOf(key: string): string;
  /** A local file path holding the object, when the store is on this machine (lets readers avoid a copy). */
  localPath?(key: string): string | undefined;
}
