/**
 * The model-archive smoke check on S3 (moto, AEGIS_TEST_S3_ENDPOINT): one
 * listing per model folder answers which archives and signatures exist, so
 * a missing archive or signature, or an oversized signature, is reported
 * without a HEAD per object, and only signatures that exist are fetched.
 * No server → the test fails with the reason (never skipped).
 */
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MEMORY, openDb, type Db } from '../db/index.js';
import { archiveKey, S3Store, type ArtifactStore } from '../store/index.js';
import { seedRegistry, testKeys } from '../test-support/backup.js';
import { checkModelArchives } from './checks.js';

const ENDPOINT = process.env.AEGIS_TEST_S3_ENDPOINT ?? 'http://127.0.0.1:5077';
const CREDENTIALS = { accessKeyId: process.env.AWS_ACCESS_KEY_ID ?? 'test', secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY ?? 'test' };
const BUCKET = `aegis-checks-itest-${randomBytes(4).toString('hex')}`;
const keys = testKeys();
const open: Db[] = [];

/** Counts the requests the check makes through a real S3 store (pass-through). */
function counted(store: S3Store): { store: ArtifactStore; calls: Record<'head' | 'get' | 'list', number> } {
  const calls = { head: 0, get: 0, list: 0 };
  const wrapper: ArtifactStore = {
    uri: store.uri,
    put: (k, b, o) => store.put(k, b, o),
    get: (k) => (calls.get++, store.get(k)),
    head: (k) => (calls.head++, store.head(k)),
    list: (p) => (calls.list++, store.list(p)),
    delete: (k) => store.delete(k),
    uriOf: (k) => store.uriOf(k),
  };
  return { store: wrapper, calls };
}

beforeAll(async () => {
  const answer = await fetch(ENDPOINT, { signal: AbortSignal.timeout(5000) }).then(
    (r) => `HTTP ${r.status}`,
    (err: unknown) => `no answer (${(err as Error).message})`,
  );
  expect(answer, `the S3 test server at ${ENDPOINT} (moto) does not answer: run scripts/services.sh`).toMatch(/^HTTP 200/);
  await new S3Store({ bucket: BUCKET, prefix: 'x', endpoint: ENDPOINT, credentials: CREDENTIALS }).client.send(new CreateBucketCommand({ Bucket: BUCKET }));
});

afterEach(async () => {
  for (const db of open.splice(0)) await db.close();
});

describe('model-archive check on S3', () => {
  it('lists each model folder once, fetches only signatures that exist, and names what is missing or wrong', async () => {
    const s3 = new S3Store({ bucket: BUCKET, prefix: `t-${randomBytes(3).toString('hex')}`, endpoint: ENDPOINT, credentials: CREDENTIALS });
    const db = await openDb({ url: MEMORY });
    open.push(db);
    await seedRegistry(db, s3, keys.privateKey, 8); // fraud 1.0 1.2 1.4 1.6, churn 1.1 1.3 1.5 1.7

    const intact = counted(s3);
    expect(await checkModelArchives(db, { trust: keys.trust, store: intact.store })).toMatchObject({ status: 'passed' });
    expect(intact.calls).toEqual({ head: 0, list: 2, get: 8 });

    await s3.delete(archiveKey('fraud', '1.0'));
    await s3.delete(`${archiveKey('churn', '1.1')}.sig`);
    await s3.put(`${archiveKey('fraud', '1.2')}.sig`, Buffer.alloc(70 * 1024, 0x41));
    await s3.put(`${archiveKey('churn', '1.3')}.sig`, Buffer.from(randomBytes(70).toString('base64')));
    const damaged = counted(s3);
    const r = await checkModelArchives(db, { trust: keys.trust, store: damaged.store });
    expect(r.status).toBe('failed');
    expect(r.detail).toBe('4 of 8 model versions have a missing or unverifiable archive');
    expect(r.problems).toEqual([
      `fraud@1.0: archive missing: ${s3.uriOf(archiveKey('fraud', '1.0'))}`,
      `churn@1.1: signature missing: ${s3.uriOf(archiveKey('churn', '1.1'))}.sig`,
      `fraud@1.2: ARCHIVE_SIGNATURE_INVALID: ${s3.uriOf(archiveKey('fraud', '1.2'))}.sig is larger than 65536 bytes: not a signature`,
      `churn@1.3: ARCHIVE_SIGNATURE_INVALID: the signature of ${s3.uriOf(archiveKey('churn', '1.3'))} does not verify with test key`,
    ]);
    expect(damaged.calls).toEqual({ head: 0, list: 2, get: 5 }); // the 8 less: archive gone, signature gone, signature too large
  });
});
