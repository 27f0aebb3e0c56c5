import { createHash, generateKeyPairSync, sign as nodeSign, verify as nodeVerify } from 'node:crypto';
import { existsSync } from 'node:fs';
import { p256, p384, p521 } from '@noble/curves/nist.js';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../config/index.js';
import { AegisError } from '../../errors.js';
import { runCli } from '../../test-support/cli.js';
import { tempDir } from '../../test-support/fs.js';
import { EXAMPLE_MODEL } from '../../training/example.js';
import { verifyDigest } from '../blob.js';
import { openSigner, signerSource } from '../provider.js';
import { kmsError } from './errors.js';
import { assertSignVerify, digestMessage, keySpecInfo, lowS, regionOfArn, validateKeyId } from './spec.js';

const ref = { keyId: 'alias/model-signing', endpoint: 'AWS KMS (eu-west-1)' };

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof AegisError ? err.code : `not an AegisError: ${String(err)}`;
  }
  return undefined;
}

describe('KMS key specs', () => {
  it('maps the NIST curves to the curve hash and the KMS algorithm that uses it', () => {
    expect(keySpecInfo('ECC_NIST_P256', 'k')).toMatchObject({ curve: 'p256', hash: 'sha256', algorithm: 'ECDSA_SHA_256', digestBytes: 32 });
    expect(keySpecInfo('ECC_NIST_P384', 'k')).toMatchObject({ curve: 'p384', hash: 'sha384', algorithm: 'ECDSA_SHA_384', digestBytes: 48 });
    expect(keySpecInfo('ECC_NIST_P521', 'k')).toMatchObject({ curve: 'p521', hash: 'sha512', algorithm: 'ECDSA_SHA_512', digestBytes: 64 });
  });

  it.each(['RSA_2048', 'ECC_SECG_P256K1', 'SM2', 'SYMMETRIC_DEFAULT', 'HMAC_256', 'ML_DSA_65', undefined])('refuses key spec %s with KMS_KEY_UNUSABLE naming it', (spec) => {
    expect(code(() => keySpecInfo(spec, 'k1'))).toBe('KMS_KEY_UNUSABLE');
    try {
      keySpecInfo(spec, 'k1');
    } catch (err) {
      expect((err as AegisError).message).toContain(spec ?? '(none)');
      expect((err as AegisError).hint).toContain('ECC_NIST_P256');
    }
  });

  it('accepts only SIGN_VERIFY keys', () => {
    expect(code(() => assertSignVerify('SIGN_VERIFY', 'k'))).toBeUndefined();
    for (const usage of ['ENCRYPT_DECRYPT', 'GENERATE_VERIFY_MAC', 'KEY_AGREEMENT', undefined]) {
      expect(code(() => assertSignVerify(usage, 'k'))).toBe('KMS_KEY_UNUSABLE');
    }
  });
});

describe('digest presented to KMS for the archive signature (SHA-256 on every curve)', () => {
  const sha256 = createHash('sha256').update('model.tar.gz bytes').digest();

  it('is the digest itself on P-256, and zero-padded to the algorithm hash length on P-384/P-521', () => {
    expect(digestMessage(sha256, keySpecInfo('ECC_NIST_P256', 'k'))).toEqual(sha256);
    const m384 = digestMessage(sha256, keySpecInfo('ECC_NIST_P384', 'k'));
    expect(m384.length).toBe(48);
    expect(m384.subarray(16)).toEqual(sha256);
    expect(m384.subarray(0, 16).every((b) => b === 0)).toBe(true);
    expect(digestMessage(sha256, keySpecInfo('ECC_NIST_P521', 'k')).length).toBe(64);
  });

  it.each([
    ['ECC_NIST_P384', 'secp384r1', p384],
    ['ECC_NIST_P521', 'secp521r1', p521],
  ] as const)('a %s signature over the padded digest is a signature over the SHA-256 digest (as cosign and OpenSSL check it)', (spec, namedCurve, curve) => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve });
    const d = new Uint8Array(Buffer.from(privateKey.export({ format: 'jwk' }).d!, 'base64url'));
    const padded = digestMessage(sha256, keySpecInfo(spec, 'k'));
    // What KMS does with MessageType DIGEST: sign the given bytes as the hash.
    const sig = Buffer.from(curve.sign(new Uint8Array(padded), d, { prehash: false, format: 'der' }));
    expect(verifyDigest(sha256, sig, publicKey)).toBe(true);
    expect(nodeVerify('sha256', Buffer.from('model.tar.gz bytes'), publicKey, sig)).toBe(true);
    // and padding on the wrong side would not be
    const wrong = Buffer.concat([sha256, Buffer.alloc(padded.length - 32)]);
    const bad = Buffer.from(curve.sign(new Uint8Array(wrong), d, { prehash: false, format: 'der' }));
    expect(verifyDigest(sha256, bad, publicKey)).toBe(false);
  });

  it('refuses a digest that is not 32 bytes', () => {
    expect(code(() => digestMessage(Buffer.alloc(48), keySpecInfo('ECC_NIST_P384', 'k')))).toBe('INTERNAL');
  });
});

describe('low-S normalization', () => {
  it.each([
    ['p256', 'prime256v1', p256, 'sha256'],
    ['p384', 'secp384r1', p384, 'sha384'],
    ['p521', 'secp521r1', p521, 'sha512'],
  ] as const)('%s: a high-S signature becomes the low-S one, which still verifies; low-S is left alone', (c, namedCurve, curve, hash) => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve });
    const data = Buffer.from('payload');
    let high: Buffer | undefined;
    let low: Buffer | undefined;
    // OpenSSL signs with random k: about half its signatures are high-S.
    for (let i = 0; i < 64 && (!high || !low); i++) {
      const sig = nodeSign(hash, data, privateKey);
      if (curve.Signature.fromBytes(new Uint8Array(sig), 'der').hasHighS()) high ??= sig;
      else low ??= sig;
    }
    expect(high && low).toBeTruthy();
    const normalized = lowS(high!, c);
    expect(normalized.equals(high!)).toBe(false);
    expect(curve.Signature.fromBytes(new Uint8Array(normalized), 'der').hasHighS()).toBe(false);
    expect(nodeVerify(hash, data, publicKey, normalized)).toBe(true);
    const digest = createHash(hash).update(data).digest();
    const pub = new Uint8Array(Buffer.concat([Buffer.from([4]), Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url'), Buffer.from(publicKey.export({ format: 'jwk' }).y!, 'base64url')]));
    // noble's default verify rejects high-S: the reason to normalize
    expect(curve.verify(new Uint8Array(high!), new Uint8Array(digest), pub, { prehash: false, format: 'der' })).toBe(false);
    expect(curve.verify(new Uint8Array(normalized), new Uint8Array(digest), pub, { prehash: false, format: 'der' })).toBe(true);
    expect(lowS(low!, c)).toBe(low);
  });

  it('refuses bytes that are not DER ECDSA', () => {
    expect(code(() => lowS(Buffer.from('not a signature'), 'p256'))).toBe('KMS_SIGNATURE_INVALID');
  });
});

describe('key ids', () => {
  it('takes ids, ARNs and aliases, and reads the region from an ARN', () => {
    for (const id of [
      '1234abcd-12ab-34cd-56ef-1234567890ab',
      'mrk-1234abcd12ab34cd56ef1234567890ab',
      'alias/model-signing',
      'arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab',
      'arn:aws:kms:us-east-2:111122223333:alias/model-signing',
      'arn:aws-us-gov:kms:us-gov-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab',
    ]) {
      expect(validateKeyId(id)).toBe(id);
    }
    expect(regionOfArn('arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab')).toBe('eu-west-1');
    expect(regionOfArn('arn:aws-us-gov:kms:us-gov-west-1:111122223333:alias/x')).toBe('us-gov-west-1');
    expect(regionOfArn('alias/model-signing')).toBeUndefined();
  });

  it.each(['', 'model-signing', 'keys/signing-key.pem', 'arn:aws:s3:::bucket', 'alias/'])('refuses %j as a usage error', (id) => {
    expect(code(() => validateKeyId(id))).toBe('USAGE');
  });
});

describe('KMS error mapping', () => {
  const sdkError = (name: string, message: string, status?: number, extra: Record<string, unknown> = {}) =>
    Object.assign(new Error(message), { name, $metadata: status === undefined ? {} : { httpStatusCode: status }, ...extra });

  it.each([
    ['NotFoundException', 400, 'KMS_KEY_NOT_FOUND', 'region'],
    ['InvalidArnException', 400, 'KMS_KEY_NOT_FOUND', 'alias/NAME'],
    ['AccessDeniedException', 400, 'KMS_ACCESS_DENIED', 'kms:Sign'],
    ['UnrecognizedClientException', 400, 'KMS_ACCESS_DENIED', 'kms:GetPublicKey'],
    ['DisabledException', 400, 'KMS_KEY_UNUSABLE', 'enable-key'],
    ['KMSInvalidStateException', 400, 'KMS_KEY_UNUSABLE', 'pending deletion'],
    ['InvalidKeyUsageException', 400, 'KMS_KEY_UNUSABLE', 'SIGN_VERIFY'],
    ['UnsupportedOperationException', 400, 'KMS_KEY_UNUSABLE', 'SIGN_VERIFY'],
    ['ValidationException', 400, 'KMS_REQUEST_FAILED', 'MessageType DIGEST'],
    ['ThrottlingException', 400, 'KMS_REQUEST_FAILED', 'Retry'],
    ['KMSInternalException', 500, 'KMS_REQUEST_FAILED', 'Retry'],
  ])('%s → %s with a hint', (name, status, expected, hintPart) => {
    const e = kmsError(sdkError(name, 'boom', status), ref, 'Sign');
    expect(e.code).toBe(expected);
    expect(e.hint).toContain(hintPart);
    expect(e.details).toMatchObject({ keyId: ref.keyId, op: 'Sign', error: name });
    expect(e.message).toContain(ref.keyId);
  });

  it('missing credentials say how to provide them', () => {
    const e = kmsError(sdkError('CredentialsProviderError', 'Could not load credentials from any providers'), ref, 'GetPublicKey');
    expect(e.code).toBe('KMS_ACCESS_DENIED');
    expect(e.hint).toContain('AWS_ACCESS_KEY_ID');
  });

  it('a refused connection or a timeout is KMS_UNREACHABLE naming the endpoint', () => {
    const refused = kmsError(sdkError('Error', 'connect ECONNREFUSED 127.0.0.1:1', undefined, { code: 'ECONNREFUSED' }), ref, 'GetPublicKey');
    expect(refused.code).toBe('KMS_UNREACHABLE');
    expect(refused.message).toContain(ref.endpoint);
    expect(kmsError(sdkError('TimeoutError', 'socket timed out'), ref, 'Sign').code).toBe('KMS_UNREACHABLE');
  });

  it('no region is a configuration error', () => {
    const e = kmsError(new Error('Region is missing'), ref, 'GetPublicKey');
    expect(e.code).toBe('CONFIG_INVALID');
    expect(e.hint).toContain('AEGIS_KMS_REGION');
  });

  it('passes AegisErrors through', () => {
    const original = new AegisError('KMS_KEY_UNUSABLE', 'x');
    expect(kmsError(original, ref, 'Sign')).toBe(original);
  });
});

describe('key provider selection', () => {
  const none = { signing: { defaultCurve: 'p256' as const, maxBundleBytes: 1024 } };
  const configured = { signing: { ...none.signing, kmsKeyId: 'alias/from-config' } };

  it('a PEM path wins; else --kms-key; else the configured KMS key; else nothing', () => {
    expect(signerSource(configured, { pemPath: 'k.pem' })).toEqual({ kind: 'pem', path: 'k.pem' });
    expect(signerSource(configured, { kmsKeyId: 'alias/flag' })).toEqual({ kind: 'kms', keyId: 'alias/flag' });
    expect(signerSource(configured, {})).toEqual({ kind: 'kms', keyId: 'alias/from-config' });
    expect(signerSource(none, {})).toBeUndefined();
  });

  it('both --key and --kms-key, or neither, are usage errors', async () => {
    expect(code(() => signerSource(none, { pemPath: 'k.pem', kmsKeyId: 'alias/x' }))).toBe('USAGE');
    await expect(openSigner(none, {})).rejects.toMatchObject({ code: 'USAGE', hint: expect.stringContaining('--kms-key') });
  });

  it('reads the KMS key, region and endpoint from AEGIS_KMS_*, and refuses a region or endpoint that is not one', async () => {
    const dir = await tempDir('aegis-kms-config-');
    try {
      const cfg = loadConfig({ cwd: dir.path, env: { AEGIS_KMS_KEY_ID: 'alias/release', AEGIS_KMS_REGION: 'eu-west-1', AEGIS_KMS_ENDPOINT: 'http://127.0.0.1:4566' } });
      expect(cfg.signing).toMatchObject({ kmsKeyId: 'alias/release', kmsRegion: 'eu-west-1', kmsEndpoint: 'http://127.0.0.1:4566' });
      expect(signerSource(cfg, {})).toEqual({ kind: 'kms', keyId: 'alias/release' });
      expect(code(() => loadConfig({ cwd: dir.path, env: { AEGIS_KMS_REGION: 'Ireland' } }))).toBe('CONFIG_INVALID');
      expect(code(() => loadConfig({ cwd: dir.path, env: { AEGIS_KMS_ENDPOINT: 'kms.local' } }))).toBe('CONFIG_INVALID');
    } finally {
      await dir.cleanup();
    }
  });

  it('a malformed --kms-key is refused before any request', async () => {
    await expect(openSigner(none, { kmsKeyId: 'signing-key.pem' })).rejects.toMatchObject({ code: 'USAGE' });
  });
});

describe('CLI key flags', () => {
  it('refuses --key with --kms-key, --cert with --kms-key, and no key at all, as usage errors (exit 2) before signing', async () => {
    const dir = await tempDir('aegis-kms-cli-');
    const saved = process.env.AEGIS_KMS_KEY_ID;
    delete process.env.AEGIS_KMS_KEY_ID;
    try {
      const out = `${dir.path}/out`;
      const both = await runCli('model', 'package', EXAMPLE_MODEL, '--key', 'k.pem', '--kms-key', 'alias/x', '--out', out);
      expect(both.code).toBe(2);
      expect(both.stderr).toContain('either --key or --kms-key');
      const cert = await runCli('model', 'sign', EXAMPLE_MODEL, '--kms-key', 'alias/x', '--cert', 'c.pem', '--bundle', `${out}.sig`);
      expect(cert.code).toBe(2);
      expect(cert.stderr).toContain('--cert needs --key');
      const none = await runCli('model', 'package', EXAMPLE_MODEL, '--out', out);
      expect(none.code).toBe(2);
      expect(none.stderr).toContain('--kms-key');
      const push = await runCli('model', 'push', EXAMPLE_MODEL, '--to', `${dir.path}/store`);
      expect(push.code).toBe(2);
      expect(push.stderr).toContain('pass --key or --kms-key');
      const exp = await runCli('keys', 'export-kms-public', '--out', `${dir.path}/pub.pem`);
      expect(exp.code).toBe(2);
      expect(exp.stderr).toContain('AEGIS_KMS_KEY_ID');
      expect(existsSync(out) || existsSync(`${out}.sig`) || existsSync(`${dir.path}/pub.pem`)).toBe(false);
    } finally {
      if (saved !== undefined) process.env.AEGIS_KMS_KEY_ID = saved;
      await dir.cleanup();
    }
  });
});
