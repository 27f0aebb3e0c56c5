/**
 * Trust policies: loading and validation of TRUST.yaml, and verification
 * through a policy (key choice by hint, rotation, expiry, revocation,
 * not-yet-valid keys, unknown signers, certificate authorities).
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAegisError, type AegisError, type ErrorCode } from '../errors.js';
import { SHARED_DIR, tempDir } from '../test-support/fs.js';
import { writeModel } from '../test-support/models.js';
import { generateKeyPair, readPrivateKey, type Curve } from './keys.js';
import { PemCertificateSigner, PemKeySigner } from './pem/index.js';
import { signModel, writeFileAtomic } from './sign.js';
import type { Signer } from './signer.js';
import { loadTrustPolicy, readPolicyDocument, writePolicyDocument, type TrustPolicy, type TrustPolicyDocument } from './trust.js';
import { verifyModel, type VerificationReport } from './verify.js';

const CERTS = join(SHARED_DIR, 'oms-conformance', 'assets', 'keys', 'certificate');
const DAY = 86_400_000;

let root: string;
let cleanup: () => Promise<void>;

interface TestKey {
  id: string;
  hint: string;
  publicKeyPem: string;
  privatePath: string;
  publicPath: string;
}

async function makeKey(id: string, curve: Curve = 'p256'): Promise<TestKey> {
  const dir = join(root, 'keys', id);
  await mkdir(dir, { recursive: true });
  const pair = generateKeyPair(curve);
  const privatePath = join(dir, 'signing-key.pem');
  const publicPath = join(dir, 'signing-key.pub.pem');
  await writeFile(privatePath, pair.privateKeyPem, { mode: 0o600 });
  await writeFile(publicPath, pair.publicKeyPem);
  return { id, hint: pair.hint, publicKeyPem: pair.publicKeyPem, privatePath, publicPath };
}

/** Expects `p` to reject with an AegisError of `code`; returns it for further checks. */
async function rejectsWith(p: Promise<unknown>, code: ErrorCode): Promise<AegisError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected a rejection with ${code}`).toBeDefined();
  expect(isAegisError(err), `expected an AegisError, got ${String(err)}`).toBe(true);
  expect((err as AegisError).code).toBe(code);
  return err as AegisError;
}

let policyCount = 0;
/** Writes YAML text as a policy file in its own folder and returns its path. */
async function policyFile(yaml: string, dir = join(root, 'policies', `p${++policyCount}`)): Promise<string> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, 'trust.yaml');
  await writeFile(path, yaml);
  return path;
}

let modelCount = 0;
/** Writes a fresh small model and signs it; the bundle goes beside the model. */
async function signedModel(signer: Signer): Promise<{ modelPath: string; bundlePath: string }> {
  const n = ++modelCount;
  const modelPath = await writeModel(join(root, 'models', `m${n}`), {
    'config.json': `{"model":${n}}\n`,
    'weights.bin': 4096 + n,
  });
  const bundlePath = join(root, 'models', `m${n}.sig`);
  const r = await signModel({ modelPath, signer, bundlePath });
  await writeFileAtomic(bundlePath, r.bundleJson);
  return { modelPath, bundlePath };
}

function verifyWith(policy: TrustPolicy, m: { modelPath: string; bundlePath: string }, now?: Date): Promise<VerificationReport> {
  return verifyModel({ ...m, trust: { kind: 'policy', policy }, ...(now ? { now } : {}) });
}

async function policyOf(doc: TrustPolicyDocument, name: string): Promise<TrustPolicy> {
  const dir = join(root, 'policies', name);
  await mkdir(dir, { recursive: true });
  const path = join(dir, 'trust.yaml');
  await writePolicyDocument(path, doc);
  return loadTrustPolicy(path);
}

const HEADER = 'apiVersion: aegis.dev/v1\nkind: TrustPolicy\n';

let keyA: TestKey;
let keyB: TestKey;
let keyC: TestKey;

beforeAll(async () => {
  ({ path: root, cleanup } = await tempDir('aegis-trust-test-'));
  [keyA, keyB, keyC] = await Promise.all([makeKey('a'), makeKey('b', 'p384'), makeKey('c')]);
});

afterAll(async () => {
  await cleanup();
});

describe('loadTrustPolicy', () => {
  it('resolves relative publicKey paths against the folder of the policy file, not the cwd', async () => {
    const dir = join(root, 'policies', 'relative', 'nested');
    await mkdir(join(dir, 'keys'), { recursive: true });
    await writeFile(join(dir, 'keys', 'a.pub.pem'), keyA.publicKeyPem);
    const path = await policyFile(
      `${HEADER}keys:\n  - id: a\n    publicKey: keys/a.pub.pem\n  - id: c\n    publicKey: ../../../keys/c/signing-key.pub.pem\n`,
      dir,
    );
    expect(process.cwd()).not.toBe(dir);
    const policy = await loadTrustPolicy(path);
    expect(policy.path).toBe(path);
    expect(policy.keys.map((k) => [k.id, k.hint])).toEqual([
      ['a', keyA.hint],
      ['c', keyC.hint],
    ]);
    expect(policy.keys[0]!.revoked).toBe(false);
    expect(policy.authorities).toEqual([]);
  });

  it('accepts absolute publicKey paths', async () => {
    const path = await policyFile(`${HEADER}keys:\n  - id: b\n    publicKey: ${keyB.publicPath}\n`);
    expect((await loadTrustPolicy(path)).keys[0]!.hint).toBe(keyB.hint);
  });

  it('accepts an inline PEM block as publicKey', async () => {
    const indented = keyB.publicKeyPem.trimEnd().split('\n').map((l) => `      ${l}`).join('\n');
    const path = await policyFile(`${HEADER}keys:\n  - id: inline-b\n    publicKey: |\n${indented}\n`);
    const policy = await loadTrustPolicy(path);
    expect(policy.keys).toHaveLength(1);
    expect(policy.keys[0]!.id).toBe('inline-b');
    expect(policy.keys[0]!.hint).toBe(keyB.hint);
  });

  it('parses validity fields into dates and keeps the reason', async () => {
    const path = await policyFile(
      `${HEADER}keys:\n  - id: a\n    publicKey: ${keyA.publicPath}\n    notBefore: 2026-01-01T00:00:00Z\n    notAfter: "2026-12-31T12:00:00+02:00"\n    revoked: true\n    reason: key leaked\n`,
    );
    const [k] = (await loadTrustPolicy(path)).keys;
    expect(k!.notBefore?.toISOString()).toBe('2026-01-01T00:00:00.000Z');
    expect(k!.notAfter?.toISOString()).toBe('2026-12-31T10:00:00.000Z');
    expect(k!.revoked).toBe(true);
    expect(k!.reason).toBe('key leaked');
  });

  it('refuses an id used twice, among keys and across keys and CAs', async () => {
    const twice = await policyFile(`${HEADER}keys:\n  - id: same\n    publicKey: ${keyA.publicPath}\n  - id: same\n    publicKey: ${keyB.publicPath}\n`);
    const e1 = await rejectsWith(loadTrustPolicy(twice), 'TRUST_POLICY_INVALID');
    expect(e1.message).toContain('id same is used twice');
    expect(e1.message).toContain(twice);

    const across = await policyFile(
      `${HEADER}keys:\n  - id: corp\n    publicKey: ${keyA.publicPath}\ncertificateAuthorities:\n  - id: corp\n    certificate: ${join(CERTS, 'ca-cert.pem')}\n`,
    );
    expect((await rejectsWith(loadTrustPolicy(across), 'TRUST_POLICY_INVALID')).message).toContain('id corp is used twice');
  });

  it('refuses unknown fields at the top level and inside entries, naming them', async () => {
    const top = await policyFile(`${HEADER}trustEverything: true\nkeys:\n  - id: a\n    publicKey: ${keyA.publicPath}\n`);
    expect((await rejectsWith(loadTrustPolicy(top), 'TRUST_POLICY_INVALID')).message).toContain('trustEverything');

    const inEntry = await policyFile(`${HEADER}keys:\n  - id: a\n    publicKey: ${keyA.publicPath}\n    notafter: 2026-01-01T00:00:00Z\n`);
    const e = await rejectsWith(loadTrustPolicy(inEntry), 'TRUST_POLICY_INVALID');
    expect(e.message).toContain('keys.0');
    expect(e.message).toContain('notafter');
  });

  it('refuses a policy that trusts nothing', async () => {
    const empty = await policyFile(`${HEADER}keys: []\ncertificateAuthorities: []\n`);
    expect((await rejectsWith(loadTrustPolicy(empty), 'TRUST_POLICY_INVALID')).message).toContain('trusts no key and no certificate authority');
    const noLists = await policyFile(HEADER);
    await rejectsWith(loadTrustPolicy(noLists), 'TRUST_POLICY_INVALID');
    const emptyFile = await policyFile('');
    await rejectsWith(loadTrustPolicy(emptyFile), 'TRUST_POLICY_INVALID');
  });

  it('refuses YAML that does not parse', async () => {
    const path = await policyFile(`${HEADER}keys:\n  - id: a\n    publicKey: [unclosed\n`);
    const e = await rejectsWith(loadTrustPolicy(path), 'TRUST_POLICY_INVALID');
    expect(e.message).toContain(path);
    expect(e.hint).toMatch(/trust-policy\.md/);
  });

  it.each([
    ['a time that is not ISO 8601', `keys:\n  - id: a\n    publicKey: KEY\n    notAfter: next tuesday\n`, 'keys.0.notAfter'],
    ['a time without an offset', `keys:\n  - id: a\n    publicKey: KEY\n    notBefore: "2026-01-01T00:00:00"\n`, 'keys.0.notBefore'],
    ['revoked that is not a boolean', `keys:\n  - id: a\n    publicKey: KEY\n  - id: b\n    publicKey: KEY\n    revoked: "yes"\n`, 'keys.1.revoked'],
    ['an id with a space', `keys:\n  - id: my key\n    publicKey: KEY\n`, 'keys.0.id'],
    ['a key without publicKey', `keys:\n  - id: a\n`, 'keys.0.publicKey'],
    ['a CA without certificate', `certificateAuthorities:\n  - id: root\n`, 'certificateAuthorities.0.certificate'],
  ])('names the field for %s', async (_what, body, field) => {
    const path = await policyFile(HEADER + body.replaceAll('KEY', keyA.publicPath));
    const e = await rejectsWith(loadTrustPolicy(path), 'TRUST_POLICY_INVALID');
    expect(e.message).toContain(`${field}:`);
    expect(e.details.path).toBe(path);
  });

  it('refuses a wrong apiVersion or kind, naming the field', async () => {
    const v2 = await policyFile(`apiVersion: aegis.dev/v2\nkind: TrustPolicy\nkeys:\n  - id: a\n    publicKey: ${keyA.publicPath}\n`);
    expect((await rejectsWith(loadTrustPolicy(v2), 'TRUST_POLICY_INVALID')).message).toContain('apiVersion:');
    const kind = await policyFile(`apiVersion: aegis.dev/v1\nkind: Policy\nkeys:\n  - id: a\n    publicKey: ${keyA.publicPath}\n`);
    expect((await rejectsWith(loadTrustPolicy(kind), 'TRUST_POLICY_INVALID')).message).toContain('kind:');
  });

  it('names a missing key file, and refuses a file that is not a public key', async () => {
    const missing = await policyFile(`${HEADER}keys:\n  - id: gone\n    publicKey: keys/gone.pub.pem\n`);
    const e = await rejectsWith(loadTrustPolicy(missing), 'FILE_NOT_FOUND');
    expect(e.message).toContain(join(root, 'policies', `p${policyCount}`, 'keys', 'gone.pub.pem'));
    expect(e.message).toContain('gone');

    const notKey = await policyFile(`${HEADER}keys:\n  - id: a\n    publicKey: ${missing}\n`);
    await rejectsWith(loadTrustPolicy(notKey), 'KEY_INVALID');
  });

  it('reports a missing policy file as FILE_NOT_FOUND', async () => {
    await rejectsWith(loadTrustPolicy(join(root, 'no-such-trust.yaml')), 'FILE_NOT_FOUND');
  });

  it('readPolicyDocument reports YAML that does not parse as TRUST_POLICY_INVALID', async () => {
    const path = await policyFile(`${HEADER}keys: [\n`);
    const e = await rejectsWith(readPolicyDocument(path), 'TRUST_POLICY_INVALID');
    expect(e.message).toContain(path);
    await rejectsWith(readPolicyDocument(await policyFile('just a string\n')), 'TRUST_POLICY_INVALID');
  });

  it('writePolicyDocument refuses an invalid document and names the field', async () => {
    const path = join(root, 'policies', 'write-invalid.yaml');
    const e = await rejectsWith(
      writePolicyDocument(path, { apiVersion: 'aegis.dev/v1', kind: 'TrustPolicy', keys: [{ id: 'a', publicKey: 'x.pem', notAfter: 'soon' }] }),
      'TRUST_POLICY_INVALID',
    );
    expect(e.message).toContain('keys.0.notAfter');
  });
});

describe('verification through a trust policy', () => {
  it('picks the key named by the bundle hint among several keys', async () => {
    const policy = await policyOf(
      {
        apiVersion: 'aegis.dev/v1',
        kind: 'TrustPolicy',
        keys: [
          { id: 'a', publicKey: keyA.publicPath },
          { id: 'b', publicKey: keyB.publicPath },
          { id: 'c', publicKey: keyC.publicPath },
        ],
      },
      'several',
    );
    for (const k of [keyA, keyB, keyC]) {
      const m = await signedModel(await PemKeySigner.fromFile(k.privatePath));
      const r = await verifyWith(policy, m);
      expect(r.verified).toBe(true);
      expect(r.signer.method).toBe('key');
      expect(r.signer.trustedId).toBe(k.id);
      expect(r.signer.keyHint).toBe(k.hint);
    }
  });

  it('refuses a bundle whose hint names a trusted key but whose signature is by another key', async () => {
    // A signer that claims key A's hint but signs with key C.
    class LyingSigner extends PemKeySigner {
      override verificationMaterial(): Record<string, unknown> {
        return { publicKey: { hint: keyA.hint } };
      }
    }
    const liar = new LyingSigner(await readPrivateKey(keyC.privatePath));
    const m = await signedModel(liar);
    const policy = await policyOf(
      { apiVersion: 'aegis.dev/v1', kind: 'TrustPolicy', keys: [{ id: 'a', publicKey: keyA.publicPath }] },
      'liar',
    );
    const e = await rejectsWith(verifyWith(policy, m), 'SIGNATURE_INVALID');
    expect(e.message).toContain('a');
  });

  it('tries every key when the bundle carries no hint (oldest format)', async () => {
    class HintlessSigner extends PemKeySigner {
      override verificationMaterial(): Record<string, unknown> {
        return { publicKey: {} };
      }
    }
    const m = await signedModel(new HintlessSigner(await readPrivateKey(keyB.privatePath)));
    const policy = await policyOf(
      {
        apiVersion: 'aegis.dev/v1',
        kind: 'TrustPolicy',
        keys: [
          { id: 'a', publicKey: keyA.publicPath },
          { id: 'b', publicKey: keyB.publicPath },
        ],
      },
      'hintless',
    );
    const r = await verifyWith(policy, m);
    expect(r.signer.trustedId).toBe('b');
    expect(r.warnings.join('\n')).toContain('no key hint');
    const onlyA = await policyOf({ apiVersion: 'aegis.dev/v1', kind: 'TrustPolicy', keys: [{ id: 'a', publicKey: keyA.publicPath }] }, 'hintless-a');
    await rejectsWith(verifyWith(onlyA, m), 'SIGNATURE_INVALID');
  });

  it('rotation: both keys verify during the overlap; after it the old key is expired and the new one still verifies', async () => {
    const signerA = await PemKeySigner.fromFile(keyA.privatePath);
    const signerB = await PemKeySigner.fromFile(keyB.privatePath);
    const doc: TrustPolicyDocument = { apiVersion: 'aegis.dev/v1', kind: 'TrustPolicy', keys: [{ id: 'a', publicKey: keyA.publicPath }] };

    const model1 = await signedModel(signerA);
    const before = await policyOf(doc, 'rotation-before');
    expect((await verifyWith(before, model1)).signer.trustedId).toBe('a');

    // Rotate: add B, A expires in 30 days.
    const now = new Date();
    const overlapEnds = new Date(now.getTime() + 30 * DAY);
    doc.keys![0]!.notAfter = overlapEnds.toISOString();
    doc.keys!.push({ id: 'b', publicKey: keyB.publicPath, notBefore: now.toISOString() });
    const rotated = await policyOf(doc, 'rotation-after');

    const model2 = await signedModel(signerB);
    expect((await verifyWith(rotated, model1)).signer.trustedId).toBe('a');
    expect((await verifyWith(rotated, model2)).signer.trustedId).toBe('b');
    // One millisecond before the end of the overlap, A still verifies.
    expect((await verifyWith(rotated, model1, new Date(overlapEnds.getTime() - 1))).signer.trustedId).toBe('a');

    // At and after notAfter, A's bundles are refused; B's still verify.
    for (const t of [overlapEnds, new Date(overlapEnds.getTime() + DAY)]) {
      const e = await rejectsWith(verifyWith(rotated, model1, t), 'KEY_EXPIRED');
      expect(e.message).toContain('"a"');
      expect(e.message).toContain(overlapEnds.toISOString());
      expect(e.details).toMatchObject({ id: 'a', notAfter: overlapEnds.toISOString() });
      expect((await verifyWith(rotated, model2, t)).signer.trustedId).toBe('b');
    }
  });

  it('revocation: a revoked key fails at once with KEY_REVOKED and the reason; other keys are unaffected', async () => {
    const model1 = await signedModel(await PemKeySigner.fromFile(keyA.privatePath));
    const model2 = await signedModel(await PemKeySigner.fromFile(keyB.privatePath));
    const doc: TrustPolicyDocument = {
      apiVersion: 'aegis.dev/v1',
      kind: 'TrustPolicy',
      keys: [
        { id: 'a', publicKey: keyA.publicPath, notAfter: new Date(Date.now() + 365 * DAY).toISOString() },
        { id: 'b', publicKey: keyB.publicPath },
      ],
    };
    expect((await verifyWith(await policyOf(doc, 'revoke-before'), model1)).verified).toBe(true);

    doc.keys![0]!.revoked = true;
    doc.keys![0]!.reason = 'laptop stolen on 2026-03-01';
    const revoked = await policyOf(doc, 'revoke-after');
    const e = await rejectsWith(verifyWith(revoked, model1), 'KEY_REVOKED');
    expect(e.message).toContain('"a"');
    expect(e.message).toContain('laptop stolen on 2026-03-01');
    expect(e.details).toMatchObject({ id: 'a' });
    // Revocation wins even at a time when the key was otherwise valid.
    await rejectsWith(verifyWith(revoked, model1, new Date('2020-01-01T00:00:00Z')), 'KEY_REVOKED');
    expect((await verifyWith(revoked, model2)).signer.trustedId).toBe('b');
  });

  it('revocation is checked before the model content', async () => {
    const m = await signedModel(await PemKeySigner.fromFile(keyA.privatePath));
    await writeFile(join(m.modelPath, 'config.json'), '{"tampered":true}\n');
    const policy = await policyOf(
      { apiVersion: 'aegis.dev/v1', kind: 'TrustPolicy', keys: [{ id: 'a', publicKey: keyA.publicPath, revoked: true }] },
      'revoked-tampered',
    );
    const e = await rejectsWith(verifyWith(policy, m), 'KEY_REVOKED');
    expect(e.message).toMatch(/"a" is revoked$/);
  });

  it('a key whose notBefore is in the future gives KEY_NOT_YET_VALID until then', async () => {
    const m = await signedModel(await PemKeySigner.fromFile(keyA.privatePath));
    const start = new Date(Date.now() + 7 * DAY);
    const policy = await policyOf(
      { apiVersion: 'aegis.dev/v1', kind: 'TrustPolicy', keys: [{ id: 'a', publicKey: keyA.publicPath, notBefore: start.toISOString() }] },
      'not-yet',
    );
    const e = await rejectsWith(verifyWith(policy, m), 'KEY_NOT_YET_VALID');
    expect(e.message).toContain(start.toISOString());
    expect((await verifyWith(policy, m, start)).signer.trustedId).toBe('a');
  });

  it('a key the policy does not list gives KEY_UNTRUSTED naming the hint and the policy', async () => {
    const m = await signedModel(await PemKeySigner.fromFile(keyC.privatePath));
    const policy = await policyOf(
      {
        apiVersion: 'aegis.dev/v1',
        kind: 'TrustPolicy',
        keys: [
          { id: 'a', publicKey: keyA.publicPath },
          { id: 'b', publicKey: keyB.publicPath },
        ],
      },
      'untrusted',
    );
    const e = await rejectsWith(verifyWith(policy, m), 'KEY_UNTRUSTED');
    expect(e.message).toContain(keyC.hint);
    expect(e.message).toContain(policy.path);
    expect(e.details).toMatchObject({ keyHint: keyC.hint });
  });

  describe('certificate authorities', () => {
    // Inside the validity of the shared fixture certificates (2025-05-02 .. 2035-04-30).
    const AT = new Date('2030-06-01T00:00:00Z');
    let certModel: { modelPath: string; bundlePath: string };

    beforeAll(async () => {
      const signer = await PemCertificateSigner.fromFiles(join(CERTS, 'signing-key.pem'), join(CERTS, 'signing-key-cert.pem'), [
        join(CERTS, 'int-ca-cert.pem'),
      ]);
      certModel = await signedModel(signer);
    });

    const caPolicy = (name: string, extra: Partial<{ revoked: boolean; reason: string; notAfter: string }> = {}) =>
      policyOf(
        {
          apiVersion: 'aegis.dev/v1',
          kind: 'TrustPolicy',
          keys: [{ id: 'a', publicKey: keyA.publicPath }],
          certificateAuthorities: [{ id: 'corp-root', certificate: join(CERTS, 'ca-cert.pem'), ...extra }],
        },
        name,
      );

    it('verifies a certificate bundle whose chain reaches a listed CA', async () => {
      const policy = await caPolicy('ca-ok');
      expect(policy.authorities).toHaveLength(1);
      const r = await verifyWith(policy, certModel, AT);
      expect(r.signer.method).toBe('certificate');
      expect(r.signer.trustedId).toBe('corp-root');
      expect(r.signer.issuer).toContain('intermediate-ca');
    });

    it('loads a CA certificate by a path relative to the policy', async () => {
      const dir = join(root, 'policies', 'ca-relative');
      await mkdir(join(dir, 'ca'), { recursive: true });
      await writeFile(join(dir, 'ca', 'root.pem'), await readFile(join(CERTS, 'ca-cert.pem')));
      const path = await policyFile(`${HEADER}certificateAuthorities:\n  - id: corp-root\n    certificate: ca/root.pem\n`, dir);
      const policy = await loadTrustPolicy(path);
      expect(policy.keys).toEqual([]);
      expect((await verifyWith(policy, certModel, AT)).signer.trustedId).toBe('corp-root');
    });

    it('refuses a bundle from a revoked CA with KEY_REVOKED and the reason', async () => {
      const policy = await caPolicy('ca-revoked', { revoked: true, reason: 'CA compromised' });
      const e = await rejectsWith(verifyWith(policy, certModel, AT), 'KEY_REVOKED');
      expect(e.message).toContain('certificate authority "corp-root" is revoked: CA compromised');
    });

    it('refuses a bundle from a CA past its policy notAfter with KEY_EXPIRED', async () => {
      const policy = await caPolicy('ca-expired', { notAfter: '2029-01-01T00:00:00Z' });
      await rejectsWith(verifyWith(policy, certModel, AT), 'KEY_EXPIRED');
    });

    it('refuses a certificate bundle when the policy lists no CA, and one that chains to another CA', async () => {
      const keysOnly = await policyOf({ apiVersion: 'aegis.dev/v1', kind: 'TrustPolicy', keys: [{ id: 'a', publicKey: keyA.publicPath }] }, 'ca-none');
      await rejectsWith(verifyWith(keysOnly, certModel, AT), 'CERT_CHAIN_UNTRUSTED');
      const otherCa = join(SHARED_DIR, 'oms-conformance', 'assets', 'keys', 'self-signed', 'signing-cert.pem');
      const wrong = await policyOf(
        { apiVersion: 'aegis.dev/v1', kind: 'TrustPolicy', certificateAuthorities: [{ id: 'other', certificate: otherCa }] },
        'ca-wrong',
      );
      await rejectsWith(verifyWith(wrong, certModel, AT), 'CERT_CHAIN_UNTRUSTED');
    });
  });
});
