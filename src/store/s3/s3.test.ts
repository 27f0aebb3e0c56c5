/**
 * S3Store logic that needs no server (a fake client): error mapping, the age
 * filter and pagination of sweepIncompleteUploads, and list filtering.
 * The real protocol is exercised against moto in s3.itest.ts.
 */
import {
  AbortMultipartUploadCommand,
  type GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  type ListObjectsV2Command,
  type S3Client,
} from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { AegisError } from '../../errors.js';
import { s3Error } from './errors.js';
import { S3Store } from './index.js';

type Handler = (command: unknown) => unknown;

function fakeStore(handler: Handler, prefix = 'pre'): { store: S3Store; sent: unknown[] } {
  const sent: unknown[] = [];
  const client = {
    send: async (command: unknown) => {
      sent.push(command);
      return handler(command);
    },
  } as unknown as S3Client;
  return { store: new S3Store({ bucket: 'bkt', prefix, client, endpoint: 'http://s3.test:9000' }), sent };
}

function sdkError(name: string, status?: number, extra: Record<string, unknown> = {}): Error {
  return Object.assign(new Error(`${name} happened`), { name, $metadata: status ? { httpStatusCode: status } : {}, ...extra });
}

const ref = { uri: 's3://bkt/pre', bucket: 'bkt', endpoint: 'http://s3.test:9000', uriOf: (k: string) => `s3://bkt/pre/${k}` };

describe('s3Error', () => {
  it.each([
    ['NoSuchKey on get', sdkError('NoSuchKey', 404), 'get', 'STORE_NOT_FOUND'],
    ['NotFound on head', sdkError('NotFound', 404), 'head', 'STORE_NOT_FOUND'],
    ['NoSuchBucket', sdkError('NoSuchBucket', 404), 'get', 'STORE_UNREACHABLE'],
    ['connection refused', Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED', $metadata: { attempts: 1 } }), 'get', 'STORE_UNREACHABLE'],
    ['DNS failure on put', Object.assign(new Error('getaddrinfo ENOTFOUND'), { code: 'ENOTFOUND', $metadata: {} }), 'put', 'STORE_UNREACHABLE'],
    ['timeout', sdkError('TimeoutError'), 'list', 'STORE_UNREACHABLE'],
    ['no credentials', Object.assign(new Error('Could not load credentials from any providers'), { name: 'CredentialsProviderError' }), 'get', 'STORE_UNREACHABLE'],
    ['access denied', sdkError('AccessDenied', 403), 'put', 'STORE_UNREACHABLE'],
    ['server error on put', sdkError('InternalError', 500), 'put', 'STORE_WRITE_FAILED'],
    ['server error on get', sdkError('InternalError', 500), 'get', 'STORE_UNREACHABLE'],
  ] as const)('%s → %s', (_what, err, op, code) => {
    const mapped = s3Error(err, ref, op, 'k');
    expect(mapped.code).toBe(code);
    expect(mapped.hint).toBeTruthy();
    expect(mapped.cause).toBe(err);
  });

  it('names the endpoint and bucket when unreachable, and AWS credentials when none are found', () => {
    const refused = s3Error(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED', $metadata: {} }), ref, 'get', 'k');
    expect(refused.hint).toContain('http://s3.test:9000');
    expect(refused.hint).toContain('bkt');
    const noCreds = s3Error(Object.assign(new Error('Could not load credentials'), { name: 'CredentialsProviderError' }), ref, 'get', 'k');
    expect(noCreds.hint).toContain('AWS_ACCESS_KEY_ID');
  });

  it('passes AegisErrors through', () => {
    const own = new AegisError('STORE_KEY_INVALID', 'x');
    expect(s3Error(own, ref, 'get', 'k')).toBe(own);
  });
});

describe('S3Store with a fake client', () => {
  it('maps a missing object on get and head', async () => {
    const { store, sent } = fakeStore(() => {
      throw sdkError('NoSuchKey', 404);
    });
    await expect(store.get('a/b')).rejects.toMatchObject({ code: 'STORE_NOT_FOUND' });
    expect(await store.head('a/b')).toBeUndefined();
    expect((sent[0] as GetObjectCommand).input).toMatchObject({ Bucket: 'bkt', Key: 'pre/a/b' });
    expect(sent[1]).toBeInstanceOf(HeadObjectCommand);
  });

  it('lists across pages, strips the prefix and skips keys no store could have written', async () => {
    const pages = [
      { Contents: [{ Key: 'pre/a', Size: 1 }, { Key: 'pre/dir/', Size: 0 }], IsTruncated: true, NextContinuationToken: 't1' },
      { Contents: [{ Key: 'pre/b//c', Size: 2 }, { Key: 'pre/c', Size: 3 }], IsTruncated: false },
    ];
    const { store, sent } = fakeStore(() => pages.shift());
    const out = [];
    for await (const o of store.list('')) out.push(o);
    expect(out).toEqual([
      { key: 'a', size: 1 },
      { key: 'c', size: 3 },
    ]);
    expect((sent[0] as ListObjectsV2Command).input).toMatchObject({ Bucket: 'bkt', Prefix: 'pre/', MaxKeys: 1000 });
    expect((sent[1] as ListObjectsV2Command).input).toMatchObject({ ContinuationToken: 't1' });
  });

  it('sweepIncompleteUploads aborts only uploads older than the age, across pages', async () => {
    const now = Date.now();
    const pages = [
      {
        Uploads: [
          { Key: 'pre/old', UploadId: 'u1', Initiated: new Date(now - 2 * 3600_000) },
          { Key: 'pre/new', UploadId: 'u2', Initiated: new Date(now - 60_000) },
        ],
        IsTruncated: true,
        NextKeyMarker: 'pre/new',
        NextUploadIdMarker: 'u2',
      },
      { Uploads: [{ Key: 'pre/older', UploadId: 'u3', Initiated: new Date(now - 24 * 3600_000) }], IsTruncated: false },
    ];
    const { store, sent } = fakeStore((cmd) => (cmd instanceof ListMultipartUploadsCommand ? pages.shift() : {}));
    expect(await store.sweepIncompleteUploads(3600_000)).toBe(2);
    const aborted = sent.filter((c) => c instanceof AbortMultipartUploadCommand).map((c) => (c as AbortMultipartUploadCommand).input);
    expect(aborted).toEqual([
      { Bucket: 'bkt', Key: 'pre/old', UploadId: 'u1' },
      { Bucket: 'bkt', Key: 'pre/older', UploadId: 'u3' },
    ]);
    const lists = sent.filter((c) => c instanceof ListMultipartUploadsCommand).map((c) => (c as ListMultipartUploadsCommand).input);
    expect(lists).toEqual([
      { Bucket: 'bkt', Prefix: 'pre/' },
      { Bucket: 'bkt', Prefix: 'pre/', KeyMarker: 'pre/new', UploadIdMarker: 'u2' },
    ]);
  });
});
