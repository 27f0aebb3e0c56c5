/**
 * KmsSigner against moto's KMS (server mode) and the real verifiers: a model
 * packaged with a KMS key verifies with Aegis (trust policy holding the
 * exported KMS public key), with the reference model_signing (OMS bundle) and
 * with cosign (detached archive signature), on every key spec moto has.
 *
 * moto ignores MessageType=DIGEST (see src/test-support/moto-kms.ts), so the
 * signing tests run against a moto started here with DIGEST implemented as
 * AWS documents it; moto as released (the shared one from scripts/services.sh)
 * is used to show such an endpoint is refused instead of yielding bad signatures.
 */
import { execFile } from 'node:child_process';
import { createHash, createPublicKey, verify as nodeVerify } from 'node:crypto';
import { existsSync } from 'node:fs';
import { appendFile, cp, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { CreateAliasCommand, CreateKeyCommand, KMSClient, UpdateAliasCommand, type KeySpec, type KeyUsageType } from '@aws-sdk/client-kms';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AegisError } from '../../errors.js';
import { fetchAndVerifyModel } from '../../serving/fetch.js';
import { tempDir } from '../../test-support/fs.js';
import { startDigestMoto, type DigestMoto } from '../../test-support/moto-kms.js';
import { EXAMPLE_MODEL } from '../../training/example.js';
import { keyHint } from '../keys.js';
import { packageModel } from '../package.js';
import { loadTrustPolicy } from '../trust.js';
import { KmsSigner } from './index.js';

const run = promisify(execFile);
const REPO = fileURLToPath(new URL('../../..', import.meta.url));
const COSIGN = process.env.AEGIS_COSIGN_BIN ?? join(REPO, '.services', 'bin', 'cosign');
const REFERENCE = process.env.AEGIS_MODEL_SIGNING_BIN ?? join(REPO, '.services', 'venv', 'bin', 'model_signing');
/** Python of the services venv, which has moto. */
const PYTHON = process.env.AEGIS_TEST_MOTO_PYTHON ?? join(dirname(REFERENCE), 'python');
/** moto as released, started by scripts/services.sh. */
const SHARED_MOTO = process.env.AEGIS_TEST_S3_ENDPOINT ?? 'http://127.0.0.1:5077';
const CREDENTIALS = { accessKeyId: 'test', secretAccessKey: 'test' };
const REGION = 'us-east-1';

async function sh(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  return run(cmd, args, { env: { ...process.env, ...env }, maxBuffer: 16 * 2 ** 20 }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );
}

let work: Awaited<ReturnType<typeof tempDir>>;
let moto: DigestMoto;
let kms: KMSClient;
let env: NodeJS.ProcessEnv;
const aegis = (...args: string[]) => sh(process.execPath, [join(REPO, 'bin', 'aegis.js'), ...args], env);

async function createKey(KeySpec: KeySpec, KeyUsage: KeyUsageType = 'SIGN_VERIFY', client = kms): Promise<string> {
  const out = await client.send(new CreateKeyCommand({ KeySpec, KeyUsage, Description: 'aegis kms.itest' }));
  return out.KeyMetadata!.KeyId!;
}

const open = (keyId: string, endpoint = moto.endpoint) => KmsSigner.create({ keyId, endpoint, region: REGION, credentials: CREDENTIALS });

async function rejection(p: Promise<unknown>): Promise<AegisError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AegisError);
  return err as AegisError;
}

beforeAll(async () => {
  for (const [what, path] of [
    ['cosign', COSIGN],
    ['model_signing', REFERENCE],
    ['python with moto', PYTHON],
  ] as const) {
    expect(existsSync(path), `${what} not found at ${path}: run scripts/services.sh`).toBe(true);
  }
  expect(existsSync(join(REPO, 'dist', 'cli', 'main.js')), 'dist/ missing: run npm run build').toBe(true);
  work = await tempDir('aegis-kms-it-');
  moto = await startDigestMoto(PYTHON);
  kms = new KMSClient({ region: REGION, endpoint: moto.endpoint, credentials: CREDENTIALS });
  env = {
    AEGIS_HOME: join(work.path, 'home'),
    AEGIS_KMS_ENDPOINT: moto.endpoint,
    AEGIS_KMS_REGION: REGION,
    AWS_ACCESS_KEY_ID: CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: CREDENTIALS.secretAccessKey,
  };
});

afterAll(async () => {
  kms?.destroy();
  await moto?.stop();
  await work?.cleanup();
});

describe.each([
  ['ECC_NIST_P256', 'prime256v1'],
  ['ECC_NIST_P384', 'secp384r1'],
  ['ECC_NIST_P521', 'secp521r1'],
] as const)('a %s KMS key', (spec, namedCurve) => {
  it('packages the example model; Aegis (trust policy), model_signing and cosign verify it, and refuse it once tampered', async () => {
    const base = join(work.path, spec);
    await mkdir(base, { recursive: true });
    const keyId = await createKey(spec);

    // export the public key and trust it
    const pub = join(base, 'kms.pub.pem');
    const ex = await aegis('keys', 'export-kms-public', '--kms-key', keyId, '--out', pub, '--json');
    expect(ex.code, ex.stderr).toBe(0);
    const exported = JSON.parse(ex.stdout) as { keyId: string; keySpec: string };
    const pubKey = createPublicKey(await readFile(pub));
    expect(pubKey.asymmetricKeyDetails?.namedCurve).toBe(namedCurve);
    expect(exported).toMatchObject({ keyId: keyHint(pubKey), keySpec: spec });
    const trust = join(base, 'trust.yaml');
    const add = await aegis('keys', 'add', '--trust', trust, '--public-key', pub, '--id', 'kms-release');
    expect(add.code, add.stderr).toBe(0);

    // package with the KMS key through the CLI
    const out = join(base, 'dist');
    const p = await aegis('model', 'package', EXAMPLE_MODEL, '--kms-key', keyId, '--out', out, '--json');
    expect(p.code, p.stderr).toBe(0);
    const pkg = JSON.parse(p.stdout) as { archive: string; keyHint: string };
    expect(pkg.keyHint).toBe(exported.keyId);
    const archive = pkg.archive;

    // Aegis: the detached signature, then the full fetch (archive signature + OMS bundle inside)
    const va = await aegis('model', 'verify-archive', archive, '--trust', trust, '--json');
    expect(va.code, va.stdout + va.stderr).toBe(0);
    expect(JSON.parse(va.stdout)).toMatchObject({ verified: true, signer: { keyHint: exported.keyId, trustedId: 'kms-release' } });
    const fetched = await fetchAndVerifyModel({ uri: archive, trust: { kind: 'policy', policy: await loadTrustPolicy(trust) }, cacheDir: join(base, 'cache') });
    expect(fetched.archiveSigner.trustedId).toBe('kms-release');
    expect(fetched.verification.signer).toMatchObject({ method: 'key', keyHint: exported.keyId, trustedId: 'kms-release' });
    expect(fetched.manifest.name).toBeTruthy();

    // cosign: base64 DER ECDSA over the archive's SHA-256
    const c = await sh(COSIGN, ['verify-blob', '--key', pub, '--signature', `${archive}.sig`, '--insecure-ignore-tlog', archive]);
    expect(c.code, c.stderr).toBe(0);
    expect(c.stderr).toContain('Verified OK');

    // the reference model_signing: the OMS bundle at the archive root
    const x = join(base, 'x');
    await mkdir(x);
    expect((await sh('tar', ['xzf', archive, '-C', x])).code).toBe(0);
    const ref = await sh(REFERENCE, ['verify', 'key', '--public_key', pub, '--signature', join(x, 'model.sig'), x]);
    expect(ref.code, ref.stdout + ref.stderr).toBe(0);
    expect(ref.stdout).toContain('Verification succeeded');

    // tampered: one byte appended to the archive, one file of the model changed
    await appendFile(archive, 'x');
    expect((await aegis('model', 'verify-archive', archive, '--trust', trust)).code).toBe(1);
    expect((await sh(COSIGN, ['verify-blob', '--key', pub, '--signature', `${archive}.sig`, '--insecure-ignore-tlog', archive])).code).not.toBe(0);
    await appendFile(join(x, 'aegis.yaml'), '# changed\n');
    expect((await sh(REFERENCE, ['verify', 'key', '--public_key', pub, '--signature', join(x, 'model.sig'), x])).code).not.toBe(0);
  });
});

describe('KmsSigner', () => {
  it('sends only a digest, whatever the size of the data, and its signatures verify over the data', async () => {
    const keyId = await createKey('ECC_NIST_P384');
    const client = new KMSClient({ region: REGION, endpoint: moto.endpoint, credentials: CREDENTIALS });
    const sent: number[] = [];
    client.middlewareStack.add(
      (next) => async (args) => {
        const input = args.input as { Message?: Uint8Array; MessageType?: string };
        if (input.Message) {
          expect(input.MessageType).toBe('DIGEST');
          sent.push(input.Message.length);
        }
        return next(args);
      },
      { step: 'initialize' },
    );
    const signer = await KmsSigner.create({ keyId, client });
    const data = Buffer.alloc(8 * 2 ** 20, 7); // far over KMS's 4096-byte RAW limit
    const sig = await signer.sign(data);
    expect(nodeVerify('sha384', data, signer.publicKey, sig)).toBe(true);
    const blob = await signer.signDigest(createHash('sha256').update(data).digest());
    expect(nodeVerify('sha256', data, signer.publicKey, blob)).toBe(true);
    expect(sent).toEqual([48, 48]);
    client.destroy();
  });

  it('signs through an alias with the key the alias named when it was opened, even after the alias is moved', async () => {
    const first = await createKey('ECC_NIST_P256');
    const second = await createKey('ECC_NIST_P256');
    const alias = `alias/aegis-it-${Date.now()}`;
    await kms.send(new CreateAliasCommand({ AliasName: alias, TargetKeyId: first }));
    const signer = await open(alias);
    const direct = await open(first);
    expect(signer.keyHint).toBe(direct.keyHint);
    await kms.send(new UpdateAliasCommand({ AliasName: alias, TargetKeyId: second }));
    const data = Buffer.from('statement');
    expect(nodeVerify('sha256', data, direct.publicKey, await signer.sign(data))).toBe(true);
  });

  it('pushes a model directory with the KMS key named by AEGIS_KMS_KEY_ID (no flag)', async () => {
    const keyId = await createKey('ECC_NIST_P256');
    const signer = await open(keyId);
    const pub = join(work.path, 'push.pub.pem');
    await writeFile(pub, signer.publicKeyPem());
    const model = join(work.path, 'push-model');
    await cp(EXAMPLE_MODEL, model, { recursive: true });
    const store = join(work.path, 'push-store');
    const r = await sh(process.execPath, [join(REPO, 'bin', 'aegis.js'), 'model', 'push', model, '--to', store, '--json'], { ...env, AEGIS_KMS_KEY_ID: keyId });
    expect(r.code, r.stderr).toBe(0);
    const uri = (JSON.parse(r.stdout) as { uri: string }).uri;
    const archive = uri.replace(/^file:\/\//, '');
    const v = await aegis('model', 'verify-archive', archive, '--public-key', pub);
    expect(v.code, v.stderr).toBe(0);
    expect(v.stdout.trim()).toBe('verified');
  });

  it('aegis model sign --kms-key writes a bundle that aegis model verify accepts', async () => {
    const keyId = await createKey('ECC_NIST_P256');
    const signer = await open(keyId);
    const pub = join(work.path, 'sign.pub.pem');
    await writeFile(pub, signer.publicKeyPem());
    const model = join(work.path, 'sign-model');
    await cp(EXAMPLE_MODEL, model, { recursive: true });
    const s = await aegis('model', 'sign', model, '--kms-key', keyId, '--json');
    expect(s.code, s.stderr).toBe(0);
    expect(JSON.parse(s.stdout)).toMatchObject({ method: 'key', keyHint: signer.keyHint });
    const v = await aegis('model', 'verify', model, '--public-key', pub);
    expect(v.code, v.stdout + v.stderr).toBe(0);
  });
});

describe('refused KMS keys and endpoints', () => {
  it('a key id that does not exist is KMS_KEY_NOT_FOUND, from the library and the CLI', async () => {
    const e = await rejection(open('11111111-2222-3333-4444-555555555555'));
    expect(e.code).toBe('KMS_KEY_NOT_FOUND');
    expect(e.hint).toContain('region');
    const alias = await rejection(open('alias/no-such-key'));
    expect(alias.code).toBe('KMS_KEY_NOT_FOUND');
    const out = join(work.path, 'never');
    const r = await aegis('model', 'package', EXAMPLE_MODEL, '--kms-key', 'alias/no-such-key', '--out', out);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('KMS_KEY_NOT_FOUND');
    expect(existsSync(out)).toBe(false);
  });

  it('an ENCRYPT_DECRYPT key is refused: it cannot sign', async () => {
    const e = await rejection(open(await createKey('SYMMETRIC_DEFAULT', 'ENCRYPT_DECRYPT')));
    expect(e.code).toBe('KMS_KEY_UNUSABLE');
    expect(e.message).toContain('ENCRYPT_DECRYPT');
    const rsaEncrypt = await rejection(open(await createKey('RSA_2048', 'ENCRYPT_DECRYPT')));
    expect(rsaEncrypt.code).toBe('KMS_KEY_UNUSABLE');
  });

  it.each(['RSA_2048', 'ECC_SECG_P256K1'] as const)('a %s signing key is refused: OMS key bundles are ECDSA on a NIST curve', async (spec) => {
    const e = await rejection(open(await createKey(spec)));
    expect(e.code).toBe('KMS_KEY_UNUSABLE');
    expect(e.message).toContain(spec);
    expect(e.hint).toContain('ECC_NIST_P256');
  });

  it('an endpoint nothing listens on is KMS_UNREACHABLE naming it', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const endpoint = `http://127.0.0.1:${port}`;
    const e = await rejection(KmsSigner.create({ keyId: 'alias/x', endpoint, region: REGION, credentials: CREDENTIALS, maxAttempts: 1, connectionTimeoutMs: 2000 }));
    expect(e.code).toBe('KMS_UNREACHABLE');
    expect(e.message).toContain(endpoint);
    expect(e.hint).toContain('AEGIS_KMS_ENDPOINT');
  });

  it('an endpoint that ignores MessageType=DIGEST (moto as released) is refused and nothing is written', async () => {
    const released = new KMSClient({ region: REGION, endpoint: SHARED_MOTO, credentials: CREDENTIALS });
    const keyId = await createKey('ECC_NIST_P256', 'SIGN_VERIFY', released).catch((err: Error) => {
      throw new Error(`moto does not answer at ${SHARED_MOTO} (${err.message}): run scripts/services.sh`);
    });
    released.destroy();
    const signer = await open(keyId, SHARED_MOTO);
    const out = join(work.path, 'not-written');
    const e = await rejection(packageModel({ modelDir: EXAMPLE_MODEL, signer, outDir: out }));
    expect(e.code).toBe('KMS_SIGNATURE_INVALID');
    expect(e.hint).toContain('MessageType=DIGEST');
    expect(existsSync(out) ? await readdir(out) : []).toEqual([]);
  });
});
