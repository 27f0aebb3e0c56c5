import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isAegisError } from '../errors.js';
import { tempDir } from '../test-support/fs.js';
import { readAll } from '../test-support/store.js';
import { FileStore } from './file/index.js';
import { defaultStoreRoot, openStore, splitObjectUri } from './index.js';
import { compareKeys, validateKey, validatePrefix } from './keys.js';
import { parseS3Uri, s3OptionsFromEnv, S3Store } from './s3/index.js';
import { archiveKey, type ArtifactStore } from './types.js';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return isAegisError(err) ? err.code : `not an AegisError: ${String(err)}`;
  }
  return undefined;
}

let work: Awaited<ReturnType<typeof tempDir>>;
beforeEach(async () => {
  work = await tempDir('aegis-store-');
});
afterEach(async () => work.cleanup());

describe('keys', () => {
  it('accepts ordinary keys, including unicode, spaces and dot-files', () => {
    for (const key of [archiveKey('my-model', '1.2.0'), 'a', 'weights/layer 1.bin', 'tokenizer/词表.txt', '.hidden', 'a/..b', 'a/b.', '.tmpx']) {
      expect(validateKey(key)).toBe(key);
    }
  });

  it('accepts prefixes that stop mid-segment or end in /, rejects broken ones', () => {
    for (const prefix of ['', 'a', 'a/', 'model-archives/na', 'a/.', 'a/..', '.tm']) expect(validatePrefix(prefix)).toBe(prefix);
    for (const prefix of ['/', '/a', 'a//', 'a/../b', './a', 'a\\b', 'a\0']) expect(codeOf(() => validatePrefix(prefix)), prefix).toBe('STORE_KEY_INVALID');
  });

  it('orders keys by UTF-8 bytes, as S3 does', () => {
    const keys = ['z/ü', 'a/b', 'a-c', '\u{1F600}', '\uFFFD', 'B', 'a'];
    expect([...keys].sort(compareKeys)).toEqual(['B', 'a', 'a-c', 'a/b', 'z/ü', '\uFFFD', '\u{1F600}']);
  });
});

describe('openStore', () => {
  it('opens file:// URIs and plain paths (relative to cwd) as FileStore', () => {
    const a = openStore(pathToFileURL(join(work.path, 'x y')).href);
    expect(a).toBeInstanceOf(FileStore);
    expect((a as FileStore).root).toBe(join(work.path, 'x y'));
    const b = openStore('rel/artifacts', { cwd: work.path });
    expect((b as FileStore).root).toBe(join(work.path, 'rel', 'artifacts'));
    expect(b.uri).toBe(pathToFileURL(join(work.path, 'rel', 'artifacts')).href);
    expect(openStore(work.path)).toBeInstanceOf(FileStore);
    expect(defaultStoreRoot()).toBe(join('.aegis', 'artifacts'));
  });

  it('opens s3:// URIs with settings from AEGIS_S3_* and explicit options', () => {
    const s = openStore('s3://my-bucket/aegis/prod/', { env: { AEGIS_S3_ENDPOINT: 'http://127.0.0.1:5077' } }) as S3Store;
    expect(s).toBeInstanceOf(S3Store);
    expect(s.uri).toBe('s3://my-bucket/aegis/prod');
    expect(s.bucket).toBe('my-bucket');
    expect(s.base).toBe('aegis/prod/');
    expect(s.endpoint).toBe('http://127.0.0.1:5077');
    expect(s.uriOf('model-archives/m/1/model.tar.gz')).toBe('s3://my-bucket/aegis/prod/model-archives/m/1/model.tar.gz');
    expect((s as ArtifactStore).localPath).toBeUndefined();
    expect(openStore('s3://bucket-only', { env: {} }).uri).toBe('s3://bucket-only');
    expect((openStore('s3://b01', { env: {}, s3: { endpoint: 'http://localhost:9000' } }) as S3Store).endpoint).toBe('http://localhost:9000');
  });

  it.each([
    ['gs://bucket/x', 'USAGE'],
    ['https://example.com/artifacts', 'USAGE'],
    ['', 'USAGE'],
    ['s3://', 'USAGE'],
    ['s3://b/x', 'USAGE'],
    ['s3://bkt/a//c', 'USAGE'],
    ['s3://bkt/../c', 'USAGE'],
    ['file://remote-host/share', 'USAGE'],
  ])('refuses %j with %s and a hint', (uri, code) => {
    expect(codeOf(() => openStore(uri, { env: {} }))).toBe(code);
    try {
      openStore(uri, { env: {} });
    } catch (err) {
      expect(isAegisError(err) && err.hint).toBeTruthy();
    }
  });

  it('rejects keys on an S3 store before any request', async () => {
    const s = openStore('s3://bkt', { env: { AEGIS_S3_ENDPOINT: 'http://127.0.0.1:9' } });
    await expect(s.get('../x')).rejects.toMatchObject({ code: 'STORE_KEY_INVALID' });
    await expect(s.put('/abs', Buffer.from('x'))).rejects.toMatchObject({ code: 'STORE_KEY_INVALID' });
    expect(codeOf(() => s.uriOf('a//b'))).toBe('STORE_KEY_INVALID');
  });
});

describe('splitObjectUri', () => {
  it('splits s3 object URIs into a store at the parent prefix and the last segment', () => {
    const { store, key } = splitObjectUri('s3://bucket/prefix/model-archives/x/1/model.tar.gz', { env: {} });
    expect(store.uri).toBe('s3://bucket/prefix/model-archives/x/1');
    expect(key).toBe('model.tar.gz');
    expect(store.uriOf(key)).toBe('s3://bucket/prefix/model-archives/x/1/model.tar.gz');
    const top = splitObjectUri('s3://bucket/model.tar.gz', { env: {} });
    expect(top.store.uri).toBe('s3://bucket');
    expect(top.key).toBe('model.tar.gz');
  });

  it('splits file:// URIs and paths, and reads the object through the store', async () => {
    const store = new FileStore(join(work.path, 'dir with space'));
    await store.put('model.tar.gz', Buffer.from('archive bytes'));
    const viaUri = splitObjectUri(store.uriOf('model.tar.gz'));
    expect(viaUri.key).toBe('model.tar.gz');
    expect((viaUri.store as FileStore).root).toBe(store.root);
    expect((await readAll(await viaUri.store.get(viaUri.key))).toString()).toBe('archive bytes');
    const viaPath = splitObjectUri(join(store.root, 'model.tar.gz'));
    expect(viaPath.store.localPath?.(viaPath.key)).toBe(join(store.root, 'model.tar.gz'));
    const relative = splitObjectUri('dir with space/model.tar.gz', { cwd: work.path });
    expect((await readAll(await relative.store.get(relative.key))).toString()).toBe('archive bytes');
  });

  it.each(['s3://bucket', 's3://bucket/', 's3://bucket/dir/', '/', 'file:///', '/abs/dir/', 'gs://bkt/x', 's3://bucket/dir/..'])('refuses %j, which names no object', (uri) => {
    expect(codeOf(() => splitObjectUri(uri, { env: {} }))).toBe('USAGE');
  });
});

describe('S3 settings', () => {
  it('reads AEGIS_S3_* with defaults', () => {
    expect(s3OptionsFromEnv({})).toEqual({ region: 'us-east-1' });
    expect(s3OptionsFromEnv({ AWS_REGION: 'eu-west-1' })).toEqual({ region: 'eu-west-1' });
    expect(s3OptionsFromEnv({ AEGIS_S3_ENDPOINT: 'http://127.0.0.1:5077', AEGIS_S3_REGION: 'eu-central-1', AWS_REGION: 'x' })).toEqual({
      endpoint: 'http://127.0.0.1:5077',
      region: 'eu-central-1',
    });
    expect(s3OptionsFromEnv({ AEGIS_S3_FORCE_PATH_STYLE: 'false' }).forcePathStyle).toBe(false);
    expect(s3OptionsFromEnv({ AEGIS_S3_FORCE_PATH_STYLE: 'TRUE' }).forcePathStyle).toBe(true);
  });

  it('path-style addressing is on by default with an endpoint, and can be turned off', async () => {
    const withEndpoint = openStore('s3://bkt', { env: { AEGIS_S3_ENDPOINT: 'http://127.0.0.1:5077' } }) as S3Store;
    expect(await withEndpoint.client.config.forcePathStyle).toBe(true);
    const off = openStore('s3://bkt', { env: { AEGIS_S3_ENDPOINT: 'http://127.0.0.1:5077', AEGIS_S3_FORCE_PATH_STYLE: 'false' } }) as S3Store;
    expect(await off.client.config.forcePathStyle).toBe(false);
    const aws = openStore('s3://bkt', { env: {} }) as S3Store;
    expect(await aws.client.config.forcePathStyle).toBe(false);
    expect(await aws.client.config.region()).toBe('us-east-1');
  });

  it.each([
    [{ AEGIS_S3_ENDPOINT: 'localhost:5077' }],
    [{ AEGIS_S3_ENDPOINT: 'ftp://host' }],
    [{ AEGIS_S3_FORCE_PATH_STYLE: 'maybe' }],
  ])('refuses invalid settings %j with CONFIG_INVALID', (env) => {
    expect(codeOf(() => s3OptionsFromEnv(env))).toBe('CONFIG_INVALID');
  });

  it('parses s3 URIs', () => {
    expect(parseS3Uri('s3://b.example-1/a/b/')).toEqual({ bucket: 'b.example-1', prefix: 'a/b' });
    expect(parseS3Uri('s3://bkt')).toEqual({ bucket: 'bkt', prefix: '' });
    expect(codeOf(() => parseS3Uri('s3://bkt/a\\b'))).toBe('USAGE');
    expect(codeOf(() => parseS3Uri('s3://b c/x'))).toBe('USAGE');
  });

  it('refuses part sizes S3 would reject', () => {
    expect(codeOf(() => new S3Store({ bucket: 'bkt', partSize: 1024 }))).toBe('USAGE');
    expect(codeOf(() => new S3Store({ bucket: 'bkt', queueSize: 0 }))).toBe('USAGE');
    expect(codeOf(() => new S3Store({ bucket: 'bkt', pageSize: 5000 }))).toBe('USAGE');
  });
});
