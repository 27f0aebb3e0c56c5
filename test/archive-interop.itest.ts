/**
 * Archives against real tools and services: cosign verify-blob and openssl
 * accept the detached signature; GNU tar reads the archive; the OMS bundle
 * inside verifies with the reference model_signing; and the whole
 * package → push → register → fetch flow runs against S3 (moto) and a real
 * PostgreSQL, through the CLI as a user runs it.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { appendFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../src/test-support/fs.js';
import { writeModel } from '../src/test-support/models.js';

const run = promisify(execFile);
const REPO = fileURLToPath(new URL('..', import.meta.url));
const COSIGN = process.env.AEGIS_COSIGN_BIN ?? join(REPO, '.services', 'bin', 'cosign');
const REFERENCE = process.env.AEGIS_MODEL_SIGNING_BIN ?? join(REPO, '.services', 'venv', 'bin', 'model_signing');
const S3_ENDPOINT = process.env.AEGIS_TEST_S3_ENDPOINT ?? 'http://127.0.0.1:5077';
const PG_URL = process.env.AEGIS_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:25432/postgres';

async function sh(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  return run(cmd, args, { env: { ...process.env, ...env } }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );
}
const aegis = (args: string[], env: NodeJS.ProcessEnv = {}) => sh(process.execPath, [join(REPO, 'bin', 'aegis.js'), ...args], env);

const manifest = (name: string, version: string) =>
  `apiVersion: aegis.dev/v1\nkind: Model\nname: ${name}\nversion: "${version}"\nframework: onnx\nruntime: { name: onnxruntime }\ninputs: [{ name: x, dtype: float32, shape: [-1, 4] }]\noutputs: [{ name: y, dtype: float32, shape: [-1, 2] }]\ndataset: { uri: s3://data/v1 }\n`;

let work: Awaited<ReturnType<typeof tempDir>>;
beforeAll(async () => {
  for (const [what, path] of [['cosign', COSIGN], ['model_signing', REFERENCE]] as const) {
    expect(existsSync(path), `${what} not found at ${path}: run scripts/services.sh`).toBe(true);
  }
  expect(existsSync(join(REPO, 'dist', 'cli', 'main.js')), 'dist/ missing: run npm run build').toBe(true);
  work = await tempDir('aegis-archive-it-');
});
afterAll(async () => work?.cleanup());

describe.each(['p256', 'p384'])('detached archive signature, %s key', (curve) => {
  it('is accepted by cosign verify-blob and openssl, and refused by both after tampering', async () => {
    const base = join(work.path, curve);
    await aegis(['keys', 'generate', '--out-dir', join(base, 'keys'), '--curve', curve]);
    const model = await writeModel(join(base, 'model'), { 'aegis.yaml': manifest('interop', '1.0'), 'model.onnx': 200_000, 'tokenizer/vocab.txt': 'a\nb\n' });
    const p = await aegis(['model', 'package', model, '--key', join(base, 'keys', 'signing-key.pem'), '--out', join(base, 'out')]);
    expect(p.code, p.stderr).toBe(0);
    const archive = join(base, 'out', 'model.tar.gz');
    const pub = join(base, 'keys', 'signing-key.pub.pem');
    const c = await sh(COSIGN, ['verify-blob', '--key', pub, '--signature', `${archive}.sig`, '--insecure-ignore-tlog', archive]);
    expect(c.code, c.stderr).toBe(0);
    expect(c.stderr).toContain('Verified OK');
    await writeFile(join(base, 'sig.der'), Buffer.from((await import('node:fs')).readFileSync(`${archive}.sig`, 'utf8'), 'base64'));
    const o = await sh('openssl', ['dgst', '-sha256', '-verify', pub, '-signature', join(base, 'sig.der'), archive]);
    expect(o.stdout.trim()).toBe('Verified OK');

    // GNU tar reads it; the OMS bundle inside verifies with the reference tool
    const x = join(base, 'x');
    await mkdir(x);
    expect((await sh('tar', ['xzf', archive, '-C', x])).code).toBe(0);
    const ref = await sh(REFERENCE, ['verify', 'key', '--public_key', pub, '--signature', join(x, 'model.sig'), x]);
    expect(ref.code, ref.stdout + ref.stderr).toBe(0);

    await appendFile(archive, 'x');
    expect((await sh(COSIGN, ['verify-blob', '--key', pub, '--signature', `${archive}.sig`, '--insecure-ignore-tlog', archive])).code).not.toBe(0);
    expect((await aegis(['model', 'verify-archive', archive, '--public-key', pub])).code).toBe(1);
  });
});

describe('package → push → register → fetch on S3 (moto) and PostgreSQL', () => {
  const db = `aegis_it_${randomBytes(4).toString('hex')}`;
  const bucket = `aegis-it-${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: PG_URL });
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    await admin.connect().catch((err: Error) => {
      throw new Error(`PostgreSQL does not answer at ${PG_URL} (${err.message}): run scripts/services.sh`);
    });
    await admin.query(`create database ${db}`);
    const { S3Client, CreateBucketCommand } = await import('@aws-sdk/client-s3');
    const s3 = new S3Client({ endpoint: S3_ENDPOINT, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
    await s3.send(new CreateBucketCommand({ Bucket: bucket })).catch((err: Error) => {
      throw new Error(`the S3 test server at ${S3_ENDPOINT} does not answer (${err.message}): run scripts/services.sh`);
    });
    const home = join(work.path, 's3home');
    env = {
      AEGIS_HOME: home,
      AEGIS_DATABASE_URL: PG_URL.replace(/\/[^/]*$/, `/${db}`),
      AEGIS_STORE_URI: `s3://${bucket}/aegis`,
      AEGIS_S3_ENDPOINT: S3_ENDPOINT,
      AWS_ACCESS_KEY_ID: 'test',
      AWS_SECRET_ACCESS_KEY: 'test',
      AWS_REGION: 'us-east-1',
    };
    const k = await aegis(['keys', 'rotate', '--trust', join(home, 'trust.yaml'), '--out-dir', join(home, 'keys', 'k1')], env);
    expect(k.code, k.stderr).toBe(0);
  });
  afterAll(async () => {
    await admin.query(`drop database if exists ${db} with (force)`).catch(() => undefined);
    await admin.end();
  });

  it('stores the archive under model-archives/<name>/<version>/, registers it and fetches it back verified', async () => {
    const home = env.AEGIS_HOME!;
    const model = await writeModel(join(work.path, 's3model'), { 'aegis.yaml': manifest('fraud', '1.2.0'), 'model.onnx': 3_000_000 });
    const push = await aegis(['model', 'push', model, '--key', join(home, 'keys', 'k1', 'signing-key.pem'), '--json'], env);
    expect(push.code, push.stderr).toBe(0);
    const uri = JSON.parse(push.stdout).uri as string;
    expect(uri).toBe(`s3://${bucket}/aegis/model-archives/fraud/1.2.0/model.tar.gz`);

    const reg = await aegis(['model', 'register', uri, '--json'], env);
    expect(reg.code, reg.stderr).toBe(0);
    expect(JSON.parse(reg.stdout).version).toMatchObject({ name: 'fraud', version: '1.2.0', archiveUri: uri });

    // register verified it into the platform cache; a server with its own cache downloads it from S3
    const cached = await aegis(['model', 'fetch', 'fraud@1.2.0', '--json'], env);
    expect(cached.code, cached.stderr).toBe(0);
    expect(JSON.parse(cached.stdout)).toMatchObject({ name: 'fraud', version: '1.2.0', fromCache: true });
    const fetched = await aegis(['model', 'fetch', 'fraud@1.2.0', '--dest', join(work.path, 'server-cache'), '--json'], env);
    expect(fetched.code, fetched.stderr).toBe(0);
    const f = JSON.parse(fetched.stdout);
    expect(f).toMatchObject({ name: 'fraud', version: '1.2.0', fromCache: false });
    expect(existsSync(join(f.dir, 'model.onnx'))).toBe(true);

    // the registry really is in PostgreSQL
    const rows = await admin.query(`select 1`).then(async () => {
      const c = new pg.Client({ connectionString: env.AEGIS_DATABASE_URL });
      await c.connect();
      try {
        return (await c.query('select v.version, m.name from model_versions v join models m on m.id = v.model_id')).rows;
      } finally {
        await c.end();
      }
    });
    expect(rows).toEqual([{ version: '1.2.0', name: 'fraud' }]);
  });
});
