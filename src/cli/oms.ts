import type { Command } from 'commander';
import { AegisError } from '../errors.js';
import { resolveTrustAnchor } from '../signing/anchor.js';
import { PemCertificateSigner, PemKeySigner } from '../signing/pem/index.js';
import { signModel, writeFileAtomic } from '../signing/sign.js';
import { verifyModel } from '../signing/verify.js';
import { collect, reportError } from './output.js';

/**
 * The OMS conformance suite's adapter protocol (sign-model / verify-model),
 * so the public suite can be pointed at `npx aegis oms`. Only the exit code
 * matters to the suite; errors are still printed for people.
 */
export function registerOmsCommands(program: Command): void {
  const oms = program
    .command('oms')
    .description('OpenSSF Model Signing conformance adapter (sign-model / verify-model)')
    .addHelpText('after', '\nExample:\n  $ npx aegis oms verify-model --method key --model-path /m --bundle /m.sig --public-key /k.pub.pem');

  const method = (m: string) => {
    if (m === 'sigstore') {
      throw new AegisError('BUNDLE_METHOD_UNSUPPORTED', 'the sigstore method needs the public Sigstore services', {
        hint: 'Use --method key or --method certificate.',
      });
    }
    if (m !== 'key' && m !== 'certificate') throw new AegisError('USAGE', `unknown --method ${m}`, { hint: 'Use key or certificate.' });
    return m;
  };

  oms
    .command('sign-model')
    .description('sign a model (conformance adapter protocol)')
    .requiredOption('--method <method>', 'key | certificate')
    .requiredOption('--model-path <path>', 'model directory or file')
    .requiredOption('--output-bundle <path>', 'bundle to write')
    .option('--private-key <path>', 'PEM EC private key')
    .option('--signing-cert <path>', 'PEM signing certificate (certificate method)')
    .option('--cert-chain <path>', 'PEM chain certificate (repeatable)', collect, [])
    .option('--ignore-paths <path>', 'path to leave out (repeatable)', collect, [])
    .addHelpText('after', '\nExample:\n  $ aegis oms sign-model --method key --model-path /m --output-bundle /m.sig --private-key /k.pem')
    .action(async (o) => {
      try {
        const m = method(o.method);
        if (!o.privateKey) throw new AegisError('USAGE', '--private-key is required', { hint: 'Pass the PEM private key.' });
        const signer =
          m === 'certificate'
            ? await PemCertificateSigner.fromFiles(o.privateKey, required(o.signingCert, '--signing-cert'), o.certChain)
            : await PemKeySigner.fromFile(o.privateKey);
        const r = await signModel({ modelPath: o.modelPath, signer, bundlePath: o.outputBundle, ignorePaths: o.ignorePaths });
        await writeFileAtomic(o.outputBundle, r.bundleJson);
      } catch (err) {
        process.exitCode = reportError(err, {}) || 1;
      }
    });

  oms
    .command('verify-model')
    .description('verify a model (conformance adapter protocol)')
    .requiredOption('--method <method>', 'key | certificate')
    .requiredOption('--model-path <path>', 'model directory or file')
    .requiredOption('--bundle <path>', 'bundle to verify')
    .option('--public-key <path>', 'PEM public key (key method)')
    .option('--cert-chain <path>', 'PEM trust anchor (repeatable, certificate method)', collect, [])
    .option('--ignore-paths <path>', 'path to leave out (repeatable)', collect, [])
    .option('--ignore-unsigned-files', 'tolerate files not covered by the bundle')
    .addHelpText('after', '\nExample:\n  $ aegis oms verify-model --method certificate --model-path /m --bundle /m.sig --cert-chain /ca.pem')
    .action(async (o) => {
      try {
        const m = method(o.method);
        const trust = await resolveTrustAnchor(
          m === 'key' ? { publicKey: required(o.publicKey, '--public-key') } : { certChain: o.certChain },
        );
        await verifyModel({
          modelPath: o.modelPath,
          bundlePath: o.bundle,
          trust,
          ignorePaths: o.ignorePaths,
          ignoreUnsignedFiles: Boolean(o.ignoreUnsignedFiles),
        });
        process.stdout.write('verified\n');
      } catch (err) {
        process.exitCode = reportError(err, {}, 'not verified') || 1;
      }
    });

  oms
    .command('capabilities')
    .description('print the adapter capabilities as JSON')
    .addHelpText('after', '\nExample:\n  $ aegis oms capabilities')
    .action(() => {
      process.stdout.write(JSON.stringify({ flags: ['--shard-size'], hash_algorithms: ['sha256', 'blake2b'], benchmark_model: false }) + '\n');
    });
}

function required(value: string | undefined, flag: string): string {
  if (!value) throw new AegisError('USAGE', `${flag} is required for this method`, { hint: `Pass ${flag} PATH.` });
  return value;
}
