import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import type { Command } from 'commander';
import type { AegisConfig } from '../config/index.js';
import { AegisError } from '../errors.js';
import { generateKeyPair, readPublicKey, keyHint, type Curve } from '../signing/keys.js';
import { openKmsSigner } from '../signing/provider.js';
import { writeFileAtomic } from '../signing/sign.js';
import { loadTrustPolicy, readPolicyDocument, writePolicyDocument, type TrustPolicyDocument } from '../signing/trust.js';
import { printJson, reportError } from './output.js';

export function parseDuration(value: string): number {
  const m = /^(\d+)\s*(s|m|h|d|w)$/.exec(value.trim());
  if (!m) throw new AegisError('USAGE', `not a duration: ${value}`, { hint: 'Use a number and a unit: 30d, 12h, 90m, 2w.' });
  const unit = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 }[m[2] as 's' | 'm' | 'h' | 'd' | 'w'];
  return Number(m[1]) * unit * 1000;
}

function parseCurve(value: string | undefined, fallback: Curve): Curve {
  const c = (value ?? fallback).toLowerCase().replace('-', '');
  if (c !== 'p256' && c !== 'p384' && c !== 'p521') {
    throw new AegisError('USAGE', `unknown curve ${value}`, { hint: 'Use --curve p256, p384 or p521.' });
  }
  return c;
}

/** Writes a new key pair into `dir`; refuses to overwrite an existing key. */
export async function writeKeyPair(dir: string, curve: Curve, force = false) {
  const keyPath = join(dir, 'signing-key.pem');
  const pubPath = join(dir, 'signing-key.pub.pem');
  if (!force && (existsSync(keyPath) || existsSync(pubPath))) {
    throw new AegisError('USAGE', `${keyPath} already exists`, {
      hint: 'Choose another --out-dir, or pass --force to replace the key (bundles signed with it will no longer verify with the new one).',
    });
  }
  await mkdir(dir, { recursive: true });
  const pair = generateKeyPair(curve);
  // With --force, remove the old files first: writeFile's mode only applies to a new file,
  // and the new private key must not inherit a looser mode (or a symlink) from the old one.
  if (force) await Promise.all([rm(keyPath, { force: true }), rm(pubPath, { force: true })]);
  await writeFile(keyPath, pair.privateKeyPem, { mode: 0o600 });
  await writeFile(pubPath, pair.publicKeyPem, { mode: 0o644 });
  return { privateKey: keyPath, publicKey: pubPath, keyId: pair.hint, curve };
}

export function registerKeysCommands(program: Command, config: () => AegisConfig): void {
  const keys = program
    .command('keys')
    .description('signing keys and trust policies')
    .addHelpText(
      'after',
      `
Examples:
  $ aegis keys generate --out-dir keys
  $ aegis keys rotate --trust TRUST.yaml --out-dir keys/2027 --overlap 30d
  $ aegis keys list --trust TRUST.yaml
  $ aegis keys export-kms-public --kms-key alias/model-signing --out keys/kms.pub.pem`,
    );

  keys
    .command('generate')
    .description('create an EC key pair: signing-key.pem (mode 0600) and signing-key.pub.pem')
    .requiredOption('--out-dir <dir>', 'directory to write the keys into')
    .option('--curve <curve>', 'p256 | p384 | p521 (default p256)')
    .option('--force', 'replace existing keys in the directory')
    .option('--json', 'print a JSON report')
    .addHelpText('after', '\nExample:\n  $ aegis keys generate --out-dir keys --curve p384')
    .action(async (o) => {
      try {
        const out = await writeKeyPair(o.outDir, parseCurve(o.curve, config().signing.defaultCurve), Boolean(o.force));
        if (o.json) printJson({ ok: true, ...out });
        else process.stdout.write(`private key ${out.privateKey} (keep it secret)\npublic key  ${out.publicKey}\nkey id      ${out.keyId}\n`);
      } catch (err) {
        process.exitCode = reportError(err, o);
      }
    });

  keys
    .command('export-kms-public')
    .description('write the public key of an AWS KMS signing key as PEM, to list it in a trust policy')
    .option('--kms-key <id>', 'key id, ARN or alias/NAME (default AEGIS_KMS_KEY_ID)')
    .option('--out <pub.pem>', 'file to write (default: print the PEM)')
    .option('--json', 'print a JSON report')
    .addHelpText(
      'after',
      `
Needs kms:GetPublicKey on the key. The region is AEGIS_KMS_REGION, the one in
an ARN, or AWS_REGION; AEGIS_KMS_ENDPOINT points at a KMS-compatible endpoint.

Example:
  $ aegis keys export-kms-public --kms-key alias/model-signing --out keys/kms.pub.pem
  $ aegis keys add --trust TRUST.yaml --public-key keys/kms.pub.pem --id kms-release`,
    )
    .action(async (o) => {
      try {
        const kms = await openKmsSigner(config(), o.kmsKey);
        const pem = kms.publicKeyPem();
        if (o.out) await writeFileAtomic(o.out, pem);
        const report = { ok: true, keyId: kms.keyHint, kmsKey: kms.keyArn, keySpec: kms.spec.keySpec, ...(o.out ? { publicKey: o.out } : { pem }) };
        if (o.json) printJson(report);
        else if (o.out) process.stdout.write(`public key ${o.out}\nkey id     ${kms.keyHint}\nkms key    ${kms.keyArn} (${kms.spec.keySpec})\n`);
        else process.stdout.write(pem);
      } catch (err) {
        process.exitCode = reportError(err, o);
      }
    });

  keys
    .command('rotate')
    .description('generate a new signing key and add it to a trust policy; the current keys expire after an overlap')
    .requiredOption('--trust <trust.yaml>', 'trust policy to update (created if missing)')
    .requiredOption('--out-dir <dir>', 'directory for the new key pair')
    .option('--id <id>', 'id of the new key in the policy (default key-<date>-<hint>)')
    .option('--curve <curve>', 'p256 | p384 | p521')
    .option('--overlap <duration>', 'how long bundles signed with the current keys keep verifying', '30d')
    .option('--json', 'print a JSON report')
    .addHelpText(
      'after',
      `
Sign new models with the new key right away; models signed with the old key
keep verifying until the overlap ends (their key's notAfter).

Example:
  $ aegis keys rotate --trust TRUST.yaml --out-dir keys/2026-12 --overlap 30d`,
    )
    .action(async (o) => {
      try {
        const overlap = parseDuration(o.overlap);
        const now = new Date();
        const trustPath = resolve(o.trust);
        const doc: TrustPolicyDocument = existsSync(trustPath)
          ? await readPolicyDocument(trustPath)
          : { apiVersion: 'aegis.dev/v1', kind: 'TrustPolicy', keys: [] };
        if (existsSync(trustPath)) await loadTrustPolicy(trustPath); // refuse to edit an invalid policy
        // Refuse a taken --id before writing a key pair that would then be left out of the policy.
        if (o.id && doc.keys?.some((k) => k.id === o.id)) throw new AegisError('USAGE', `the policy already has a key with id ${o.id}`, { hint: 'Pass another --id.' });
        const out = await writeKeyPair(o.outDir, parseCurve(o.curve, config().signing.defaultCurve));
        const id: string = o.id ?? `key-${now.toISOString().slice(0, 10)}-${out.keyId.slice(0, 8)}`;
        const ends = new Date(now.getTime() + overlap);
        const expiring: string[] = [];
        doc.keys ??= [];
        if (doc.keys.some((k) => k.id === id)) throw new AegisError('USAGE', `the policy already has a key with id ${id}`, { hint: 'Pass another --id.' });
        for (const k of doc.keys) {
          if (k.revoked) continue;
          const current = k.notAfter ? new Date(k.notAfter as string | Date) : undefined;
          if (!current || current > ends) {
            k.notAfter = ends.toISOString();
            expiring.push(k.id);
          }
        }
        doc.keys.push({
          id,
          publicKey: relative(dirname(trustPath), resolve(out.publicKey)),
          notBefore: now.toISOString(),
          description: `created by aegis keys rotate (${out.curve})`,
        });
        await writePolicyDocument(trustPath, doc);
        if (o.json) printJson({ ok: true, trust: trustPath, newKey: { id, ...out }, expiring, overlapEnds: ends.toISOString() });
        else {
          process.stdout.write(`new key ${id} → ${out.privateKey}\n`);
          for (const e of expiring) process.stdout.write(`key ${e} now expires ${ends.toISOString()}\n`);
          process.stdout.write(`updated ${trustPath}\n`);
        }
      } catch (err) {
        process.exitCode = reportError(err, o);
      }
    });

  keys
    .command('add')
    .description('trust an existing public key in a policy')
    .requiredOption('--trust <trust.yaml>', 'trust policy to update (created if missing)')
    .requiredOption('--public-key <key.pem>', 'the public key')
    .option('--id <id>', 'id of the key in the policy')
    .option('--not-before <time>', 'ISO time from which bundles by this key verify')
    .option('--not-after <time>', 'ISO time after which they stop verifying')
    .option('--json', 'print a JSON report')
    .addHelpText('after', '\nExample:\n  $ aegis keys add --trust TRUST.yaml --public-key partner.pub.pem --id partner-2026')
    .action(async (o) => {
      try {
        const trustPath = resolve(o.trust);
        const key = await readPublicKey(o.publicKey);
        const hint = keyHint(key);
        const doc: TrustPolicyDocument = existsSync(trustPath)
          ? await readPolicyDocument(trustPath)
          : { apiVersion: 'aegis.dev/v1', kind: 'TrustPolicy', keys: [] };
        if (existsSync(trustPath)) await loadTrustPolicy(trustPath); // refuse to edit an invalid policy
        doc.keys ??= [];
        const id: string = o.id ?? `key-${hint.slice(0, 12)}`;
        if (doc.keys.some((k) => k.id === id)) throw new AegisError('USAGE', `the policy already has a key with id ${id}`, { hint: 'Pass another --id.' });
        doc.keys.push({
          id,
          publicKey: relative(dirname(trustPath), resolve(o.publicKey)),
          ...(o.notBefore ? { notBefore: o.notBefore } : {}),
          ...(o.notAfter ? { notAfter: o.notAfter } : {}),
        });
        await writePolicyDocument(trustPath, doc);
        await loadTrustPolicy(trustPath);
        if (o.json) printJson({ ok: true, trust: trustPath, id, keyId: hint });
        else process.stdout.write(`trusted ${id} (${hint}) in ${trustPath}\n`);
      } catch (err) {
        process.exitCode = reportError(err, o);
      }
    });

  keys
    .command('revoke')
    .description('revoke a key or CA in a trust policy: its bundles stop verifying at once')
    .requiredOption('--trust <trust.yaml>', 'trust policy to update')
    .requiredOption('--id <id>', 'id of the key or certificate authority')
    .option('--reason <text>', 'why (shown when verification fails)')
    .option('--json', 'print a JSON report')
    .addHelpText('after', '\nExample:\n  $ aegis keys revoke --trust TRUST.yaml --id key-2026-01-01-1a2b3c4d --reason "laptop lost"')
    .action(async (o) => {
      try {
        const trustPath = resolve(o.trust);
        const doc = await readPolicyDocument(trustPath);
        const entry = [...(doc.keys ?? []), ...(doc.certificateAuthorities ?? [])].find((k) => k.id === o.id);
        if (!entry) throw new AegisError('USAGE', `no key or CA with id ${o.id} in ${trustPath}`, { hint: 'List ids with `aegis keys list --trust FILE`.' });
        entry.revoked = true;
        if (o.reason) entry.reason = o.reason;
        await writePolicyDocument(trustPath, doc);
        if (o.json) printJson({ ok: true, trust: trustPath, revoked: o.id });
        else process.stdout.write(`revoked ${o.id} in ${trustPath}\n`);
      } catch (err) {
        process.exitCode = reportError(err, o);
      }
    });

  keys
    .command('list')
    .description('show the keys and CAs of a trust policy and whether each is usable now')
    .requiredOption('--trust <trust.yaml>', 'trust policy')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExample:\n  $ aegis keys list --trust TRUST.yaml')
    .action(async (o) => {
      try {
        const policy = await loadTrustPolicy(o.trust);
        const now = new Date();
        const status = (e: { revoked: boolean; notBefore?: Date; notAfter?: Date }) =>
          e.revoked ? 'revoked' : e.notBefore && now < e.notBefore ? 'not-yet-valid' : e.notAfter && now >= e.notAfter ? 'expired' : 'active';
        const rows = [
          ...policy.keys.map((k) => ({ kind: 'key', id: k.id, keyId: k.hint, status: status(k), notBefore: k.notBefore?.toISOString(), notAfter: k.notAfter?.toISOString(), reason: k.reason })),
          ...policy.authorities.map((a) => ({ kind: 'ca', id: a.id, subject: a.certificate.subject.replace(/\n/g, ', '), status: status(a), notBefore: a.notBefore?.toISOString(), notAfter: a.notAfter?.toISOString(), reason: a.reason })),
        ];
        if (o.json) printJson({ trust: policy.path, entries: rows });
        else for (const r of rows) process.stdout.write(`${r.kind.padEnd(4)} ${r.id.padEnd(32)} ${r.status.padEnd(14)} ${r.notAfter ? `until ${r.notAfter}` : ''}\n`);
      } catch (err) {
        process.exitCode = reportError(err, o);
      }
    });
}
