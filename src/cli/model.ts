import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import type { AegisConfig } from '../config/index.js';
import { AegisError } from '../errors.js';
import { resolveTrustAnchor } from '../signing/anchor.js';
import { PemCertificateSigner } from '../signing/pem/index.js';
import { openSigner } from '../signing/provider.js';
import { signModel, writeFileAtomic } from '../signing/sign.js';
import type { Signer } from '../signing/signer.js';
import { verifyModel } from '../signing/verify.js';
import { byteProgress, collect, errorExitCode, printJson, reportError } from './output.js';

/** Default bundle location: model.sig inside a model directory, FILE.sig beside a single-file model. */
export async function defaultBundlePath(modelPath: string): Promise<string> {
  const st = await stat(modelPath).catch(() => undefined);
  return st?.isFile() ? `${modelPath}.sig` : resolve(modelPath, 'model.sig');
}

export function parseBytes(value: string): number {
  const m = /^(\d+)\s*([kmgt]i?b?)?$/i.exec(value.trim());
  if (!m) {
    throw new AegisError('USAGE', `not a byte size: ${value}`, { hint: 'Use a number of bytes or a suffix: 512M, 1GiB, 1073741824.' });
  }
  const unit = (m[2] ?? '').toLowerCase()[0];
  const mult = unit === 'k' ? 2 ** 10 : unit === 'm' ? 2 ** 20 : unit === 'g' ? 2 ** 30 : unit === 't' ? 2 ** 40 : 1;
  return Number(m[1]) * mult;
}

export function registerModelCommands(program: Command, config: () => AegisConfig): Command {
  const model = program
    .command('model')
    .description('sign, verify, package, store, register and fetch models')
    .addHelpText(
      'after',
      `
Examples:
  $ aegis model sign my-model/ --key keys/signing-key.pem
  $ aegis model verify my-model/ --public-key keys/signing-key.pub.pem
  verified
  $ aegis model package my-model/ --key keys/signing-key.pem --out dist/
  $ aegis model push dist/model.tar.gz --to s3://models-bucket/aegis
  $ aegis model register s3://models-bucket/aegis/model-archives/my-model/1.0/model.tar.gz --trust TRUST.yaml`,
    );

  model
    .command('sign')
    .description('sign a model directory or file (OpenSSF Model Signing v1.0 bundle)')
    .argument('<model-path>', 'model directory, or a single model file')
    .option('--key <key.pem>', 'EC private key (P-256, P-384 or P-521)')
    .option('--kms-key <id>', 'sign with an AWS KMS key instead: key id, ARN or alias/NAME (default AEGIS_KMS_KEY_ID)')
    .option('--bundle <out.sig>', 'where to write the bundle (default: <dir>/model.sig, or <file>.sig)')
    .option('--ignore <path>', 'leave a path out of the signature (repeatable)', collect, [])
    .option('--no-ignore-git-paths', 'also sign .git, .gitattributes, .github and .gitignore')
    .option('--allow-symlinks', 'follow symlinks that stay inside the model')
    .option('--shard-size <bytes>', 'hash files in shards of this size (e.g. 1GiB) so one large file uses all cores')
    .option('--cert <cert.pem>', 'signing certificate: use the certificate method')
    .option('--cert-chain <ca.pem>', 'certificate chain to include (repeatable, leaf to root)', collect, [])
    .option('--password <password>', 'password of an encrypted key (or AEGIS_KEY_PASSWORD)')
    .option('--json', 'print a JSON report')
    .addHelpText(
      'after',
      `
Examples:
  $ aegis keys generate --out-dir keys
  $ aegis model sign examples/model_registry/example_multimodal/0.1 --key keys/signing-key.pem
  $ aegis model sign big-model/ --key keys/signing-key.pem --bundle big-model.sig --shard-size 1GiB --json
  $ aegis model sign my-model/ --kms-key alias/model-signing`,
    )
    .action(async (modelPath: string, o) => {
      const bar = byteProgress('signing', o);
      try {
        const cfg = config();
        const password = o.password ?? process.env.AEGIS_KEY_PASSWORD;
        if (o.cert && (!o.key || o.kmsKey !== undefined)) {
          throw new AegisError('USAGE', '--cert needs --key (and no --kms-key): the certificate method signs with a PEM private key', {
            hint: 'Pass --key KEY.pem with --cert CERT.pem, or sign with --kms-key alone (key method).',
          });
        }
        const signer: Signer = o.cert
          ? await PemCertificateSigner.fromFiles(o.key, o.cert, o.certChain, password)
          : await openSigner(cfg, { pemPath: o.key, password, kmsKeyId: o.kmsKey });
        const bundlePath = o.bundle ?? (await defaultBundlePath(modelPath));
        const result = await signModel({
          modelPath,
          signer,
          bundlePath,
          ignorePaths: o.ignore,
          ignoreGitPaths: o.ignoreGitPaths,
          allowSymlinks: Boolean(o.allowSymlinks),
          ...(o.shardSize ? { shardSize: parseBytes(o.shardSize) } : {}),
          workers: cfg.hashing.workers,
          chunkBytes: cfg.hashing.chunkBytes,
          onProgress: bar.update,
        });
        bar.stop();
        await writeFileAtomic(bundlePath, result.bundleJson);
        if (o.json) {
          const { bundleJson: _b, signedFiles: _f, ...rest } = result;
          printJson({ ok: true, bundle: bundlePath, method: signer.method, keyHint: signer.keyHint, ...rest });
        } else {
          process.stdout.write(`signed ${result.files} file(s), ${result.bytes} bytes → ${bundlePath}\n`);
        }
      } catch (err) {
        bar.stop();
        process.exitCode = reportError(err, o);
      }
    });

  model
    .command('verify')
    .description('check that a model matches its signature and the signer is trusted; prints "verified"')
    .argument('<model-path>', 'model directory, or a single model file')
    .option('--bundle <b.sig>', 'the bundle (default: <dir>/model.sig, or <file>.sig)')
    .option('--public-key <key.pem>', 'trust this public key')
    .option('--cert-chain <ca.pem>', 'trust certificates issued by these CAs (repeatable)', collect, [])
    .option('--trust <trust.yaml>', 'trust the keys and CAs of this policy (rotation, expiry, revocation)')
    .option('--ignore <path>', 'leave a path out of the check (repeatable)', collect, [])
    .option('--ignore-unsigned-files', 'tolerate files that are not covered by the signature')
    .option('--json', 'print a machine-readable report')
    .addHelpText(
      'after',
      `
Exit status: 0 verified, 1 not verified (the first reason is printed), 2 bad usage.

Examples:
  $ aegis model verify model/ --bundle model/model.sig --public-key keys/signing-key.pub.pem
  verified
  $ aegis model verify model/ --trust TRUST.yaml --json`,
    )
    .action(async (modelPath: string, o) => {
      const bar = byteProgress('verifying', o);
      try {
        const cfg = config();
        const trust = await resolveTrustAnchor({ publicKey: o.publicKey, certChain: o.certChain, trust: o.trust });
        const bundlePath = o.bundle ?? (await defaultBundlePath(modelPath));
        const report = await verifyModel({
          modelPath,
          bundlePath,
          trust,
          ignorePaths: o.ignore,
          ignoreUnsignedFiles: Boolean(o.ignoreUnsignedFiles),
          maxBundleBytes: cfg.signing.maxBundleBytes,
          workers: cfg.hashing.workers,
          chunkBytes: cfg.hashing.chunkBytes,
          onProgress: bar.update,
        });
        bar.stop();
        if (o.json) printJson(report);
        else {
          for (const w of report.warnings) process.stderr.write(`warning: ${w}\n`);
          process.stdout.write('verified\n');
        }
      } catch (err) {
        bar.stop();
        if (o.json && err instanceof AegisError) {
          printJson({ verified: false, model: modelPath, error: err.toJSON() });
          process.exitCode = errorExitCode(err);
        } else {
          process.exitCode = reportError(err, o, 'not verified');
        }
      }
    });
  return model;
}
