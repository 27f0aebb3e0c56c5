import { createRequire } from 'node:module';
import type * as S3Sdk from '@aws-sdk/client-s3';
import type { S3Client } from '@aws-sdk/client-s3';
import type * as LibStorage from '@aws-sdk/lib-storage';
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';

// The AWS SDK takes ~80 ms to load: load it only when an S3 store is actually used,
// so every CLI command that never touches S3 starts faster.
const require = createRequire(import.meta.url);
let s3sdk: typeof S3Sdk | undefined;
let libStorage: typeof LibStorage | undefined;
const sdk = (): typeof S3Sdk => (s3sdk ??= require('@aws-sdk/client-s3') as typeof S3Sdk);
const storage = (): typeof LibStorage => (libStorage ??= require('@aws-sdk/lib-storage') as typeof LibStorage);
import { AegisError } from '../../errors.js';
import { childLogger } from '../../log.js';
import { validateKey, validatePrefix } from '../keys.js';
import type { ArtifactStore, ObjectInfo, PutOptions } from '../types.js';
import { s3Error, type S3Op } from './errors.js';

export { parseS3Uri, s3OptionsFromEnv } from './config.js';

const MiB = 1024 * 1024;
/** S3 allows at most 10,000 parts per multipart upload. */
const MAX_PARTS = 10_000;

export interface S3StoreOptions {
  bucket: string;
  /** Key prefix inside the bucket (no leading or trailing `/`); '' for the bucket root. */
  prefix?: string;
  /** S3-compatible endpoint, e.g. http://127.0.0.1:5077; default: AWS. */
  endpoint?: string;
  /** Default us-east-1. */
  region?: string;
  /** Path-style URLs (http://host/bucket/key); default true when an endpoint is set. */
  forcePathStyle?: boolean;
  /** Static credentials; default: the AWS SDK's provider chain (AWS_ACCESS_KEY_ID…, profiles, IMDS, …). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Multipart part size in bytes (min 5 MiB); default 16 MiB, raised when contentLength needs more parts than S3 allows. */
  partSize?: number;
  /** Parts uploaded at once; default 4. Memory held is about (queueSize + 1) × partSize. */
  queueSize?: number;
  /** Attempts per request, including the first; default 3. */
  maxAttempts?: number;
  /** Connection timeout per attempt, ms; default 5000. */
  connectionTimeoutMs?: number;
  /** Idle-socket timeout, ms; default 0 (none). */
  socketTimeoutMs?: number;
  /** Keys per list request (MaxKeys); default 1000. */
  pageSize?: number;
  /** A ready client (tests, custom middleware); the connection options above are then ignored. */
  client?: S3Client;
}

/**
 * ArtifactStore on S3 (s3://bucket/prefix) or an S3-compatible server.
 * Objects appear atomically: a small body is one PutObject, a large one a
 * multipart upload that becomes visible only on CompleteMultipartUpload and is
 * aborted when anything fails. Bodies stream in both directions; a put holds
 * at most about (queueSize + 1) parts in memory. A process killed mid-upload
 * leaves an invisible incomplete upload: `sweepIncompleteUploads` (or a
 * bucket lifecycle rule AbortIncompleteMultipartUpload) removes it.
 */
export class S3Store implements ArtifactStore {
  readonly uri: string;
  readonly bucket: string;
  /** Key prefix inside the bucket, '' or ending in `/`. */
  readonly base: string;
  readonly client: S3Client;
  /** Where requests go, for messages. */
  readonly endpoint: string;
  private readonly partSize: number;
  private readonly queueSize: number;
  private readonly pageSize: number;

  constructor(options: S3StoreOptions) {
    const prefix = (options.prefix ?? '').replace(/^\/+|\/+$/g, '');
    if (prefix) validateKey(prefix);
    this.bucket = options.bucket;
    this.base = prefix ? `${prefix}/` : '';
    this.uri = `s3://${this.bucket}${prefix ? `/${prefix}` : ''}`;
    const region = options.region ?? 'us-east-1';
    this.endpoint = options.endpoint ?? `AWS S3 (${region})`;
    this.partSize = options.partSize ?? 16 * MiB;
    this.queueSize = options.queueSize ?? 4;
    this.pageSize = options.pageSize ?? 1000;
    if (!Number.isInteger(this.partSize) || this.partSize < 5 * MiB) {
      throw new AegisError('USAGE', `S3 part size must be at least 5 MiB, got ${this.partSize}`, { hint: 'S3 rejects smaller multipart parts; use 8-16 MiB.' });
    }
    if (!Number.isInteger(this.queueSize) || this.queueSize < 1) {
      throw new AegisError('USAGE', `S3 queue size must be a positive integer, got ${this.queueSize}`, { hint: 'Use 2-4 parallel part uploads.' });
    }
    if (!Number.isInteger(this.pageSize) || this.pageSize < 1 || this.pageSize > 1000) {
      throw new AegisError('USAGE', `S3 list page size must be 1-1000, got ${this.pageSize}`, { hint: 'S3 returns at most 1000 keys per request.' });
    }
    this.client =
      options.client ??
      new (sdk().S3Client)({
        region,
        ...(options.endpoint ? { endpoint: options.endpoint } : {}),
        forcePathStyle: options.forcePathStyle ?? options.endpoint !== undefined,
        ...(options.credentials ? { credentials: options.credentials } : {}),
        maxAttempts: options.maxAttempts ?? 3,
        followRegionRedirects: true,
        requestHandler: {
          connectionTimeout: options.connectionTimeoutMs ?? 5000,
          ...(options.socketTimeoutMs ? { socketTimeout: options.socketTimeoutMs } : {}),
        },
      });
  }

  async put(key: string, body: Readable | Buffer, options: PutOptions = {}): Promise<ObjectInfo> {
    const Key = this.fullKey(key);
    const expected = options.contentLength;
    if (Buffer.isBuffer(body) && expected !== undefined && body.length !== expected) {
      throw lengthMismatch(this, key, expected, body.length);
    }
    const counter = { bytes: 0, sourceError: undefined as unknown };
    const ignore = (): void => undefined;
    if (!Buffer.isBuffer(body)) body.on('error', ignore); // errors surface through the iterator below
    const source = Buffer.isBuffer(body) ? body : Readable.from(counted(body, counter, () => lengthCheck(this, key, expected, counter.bytes)), { objectMode: false });
    const upload = new (storage().Upload)({
      client: this.client,
      params: { Bucket: this.bucket, Key, Body: source, ...(options.contentType ? { ContentType: options.contentType } : {}) },
      partSize: this.partSizeFor(expected),
      queueSize: this.queueSize,
      leavePartsOnError: false,
    });
    if (options.onProgress) {
      const onProgress = options.onProgress;
      upload.on('httpUploadProgress', (p) => {
        if (p.loaded !== undefined) onProgress(p.loaded);
      });
    }
    try {
      await upload.done();
    } catch (err) {
      if (!Buffer.isBuffer(source)) source.destroy();
      if (counter.sourceError !== undefined) throw sourceFailed(this, key, counter.sourceError);
      throw s3Error(err, this, 'put', key);
    } finally {
      if (!Buffer.isBuffer(body)) body.off('error', ignore);
    }
    const size = Buffer.isBuffer(body) ? body.length : counter.bytes;
    childLogger('store').debug({ event: 'store_put', uri: this.uriOf(key), bytes: size }, 'object stored');
    return { key, size };
  }

  async get(key: string): Promise<Readable> {
    const res = await this.send('get', key, () => this.client.send(new (sdk().GetObjectCommand)({ Bucket: this.bucket, Key: this.fullKey(key) })));
    const body = res.Body;
    if (body instanceof Readable) return body;
    if (body && typeof (body as { transformToWebStream?: unknown }).transformToWebStream === 'function') {
      return Readable.fromWeb((body as { transformToWebStream(): WebReadableStream }).transformToWebStream());
    }
    throw new AegisError('INTERNAL', `S3 returned no body for ${this.uriOf(key)}`);
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    try {
      const res = await this.send('head', key, () => this.client.send(new (sdk().HeadObjectCommand)({ Bucket: this.bucket, Key: this.fullKey(key) })));
      return { key, size: res.ContentLength ?? 0 };
    } catch (err) {
      if (err instanceof AegisError && err.code === 'STORE_NOT_FOUND') return undefined;
      throw err;
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    validatePrefix(prefix);
    let token: string | undefined;
    do {
      const page = await this.send('list', prefix, () =>
        this.client.send(
          new (sdk().ListObjectsV2Command)({ Bucket: this.bucket, Prefix: this.base + prefix, MaxKeys: this.pageSize, ...(token ? { ContinuationToken: token } : {}) }),
        ),
      );
      for (const object of page.Contents ?? []) {
        const key = object.Key?.slice(this.base.length);
        // Keys no store could have written (folder markers `x/`, `a//b`) are not objects of this store.
        if (key !== undefined && isValidKey(key)) yield { key, size: object.Size ?? 0 };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async delete(key: string): Promise<void> {
    await this.send('delete', key, () => this.client.send(new (sdk().DeleteObjectCommand)({ Bucket: this.bucket, Key: this.fullKey(key) })));
  }

  uriOf(key: string): string {
    return `s3://${this.bucket}/${this.fullKey(key)}`;
  }

  /**
   * Aborts multipart uploads under this store's prefix that were started more
   * than `olderThanMs` ago (left by writers that were killed). Returns how
   * many were aborted. Choose an age longer than any upload still running.
   */
  async sweepIncompleteUploads(olderThanMs: number): Promise<number> {
    const cutoff = Date.now() - olderThanMs;
    let aborted = 0;
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    do {
      const page = await this.send('list', '', () =>
        this.client.send(
          new (sdk().ListMultipartUploadsCommand)({
            Bucket: this.bucket,
            Prefix: this.base,
            ...(keyMarker ? { KeyMarker: keyMarker } : {}),
            ...(uploadIdMarker ? { UploadIdMarker: uploadIdMarker } : {}),
          }),
        ),
      );
      for (const u of page.Uploads ?? []) {
        if (!u.Key || !u.UploadId || (u.Initiated && u.Initiated.getTime() > cutoff)) continue;
        const key = u.Key.slice(this.base.length);
        await this.send('delete', key, () => this.client.send(new (sdk().AbortMultipartUploadCommand)({ Bucket: this.bucket, Key: u.Key, UploadId: u.UploadId })));
        aborted++;
      }
      const more = page.IsTruncated === true;
      keyMarker = more ? page.NextKeyMarker : undefined;
      uploadIdMarker = more ? page.NextUploadIdMarker : undefined;
    } while (keyMarker);
    if (aborted) childLogger('store').info({ event: 'store_uploads_swept', uri: this.uri, aborted }, 'aborted incomplete multipart uploads');
    return aborted;
  }

  private fullKey(key: string): string {
    return this.base + validateKey(key);
  }

  /** Part size for a body of known length: the configured size, or larger when 10,000 parts would not hold it. */
  private partSizeFor(contentLength: number | undefined): number {
    if (contentLength === undefined) return this.partSize;
    return Math.max(this.partSize, Math.ceil(contentLength / MAX_PARTS / MiB) * MiB);
  }

  private async send<T>(op: S3Op, key: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw s3Error(err, this, op, key);
    }
  }
}

/** Passes a stream through, counting bytes and remembering whether the source itself failed. */
async function* counted(body: Readable, counter: { bytes: number; sourceError: unknown }, atEnd: () => void): AsyncGenerator<Buffer> {
  try {
    for await (const chunk of body as AsyncIterable<unknown>) {
      const buf = Buffer.isBuffer(chunk) ? chunk : typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk as Uint8Array);
      counter.bytes += buf.length;
      yield buf;
    }
  } catch (err) {
    counter.sourceError = err ?? new Error('source stream failed');
    throw err;
  }
  try {
    atEnd();
  } catch (err) {
    counter.sourceError = err;
    throw err;
  }
}

function isValidKey(key: string): boolean {
  try {
    validateKey(key);
    return true;
  } catch {
    return false;
  }
}

function lengthCheck(store: S3Store, key: string, expected: number | undefined, actual: number): void {
  if (expected !== undefined && actual !== expected) throw lengthMismatch(store, key, expected, actual);
}

function lengthMismatch(store: S3Store, key: string, expected: number, actual: number): AegisError {
  return new AegisError('STORE_WRITE_FAILED', `not stored ${store.uriOf(key)}: expected ${expected} bytes, got ${actual}`, {
    hint: 'The source ended early or was longer than announced; nothing was stored. Retry once the source is complete.',
    details: { key, expected, actual },
  });
}

function sourceFailed(store: S3Store, key: string, err: unknown): AegisError {
  if (err instanceof AegisError) return err;
  return new AegisError('STORE_WRITE_FAILED', `not stored ${store.uriOf(key)}: reading the data failed: ${(err as Error | undefined)?.message ?? String(err)}`, {
    cause: err,
    hint: 'Reading the data to store failed, so nothing was stored (the multipart upload was aborted); fix the source and retry.',
    details: { store: store.uri, key },
  });
}
