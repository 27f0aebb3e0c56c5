import { cp, mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import type { AegisConfig } from '../config/index.js';
import { isAegisError } from '../errors.js';
import { PemKeySigner } from '../signing/pem/index.js';
import { signModel, writeFileAtomic } from '../signing/sign.js';
import { loadTrustPolicy } from '../signing/trust.js';
import { verifyModel } from '../signing/verify.js';
import { printJson, reportError } from './output.js';
import { ensureDevTrust } from './dev-trust.js';
import { EXAMPLE_MODEL } from '../training/example.js';

export { EXAMPLE_MODEL };

/**
 * `aegis demo` (what `npm start` runs until the model server lands): on the
 * embedded defaults, create a dev key and trust policy under the Aegis home,
 * sign the example model, verify it, and show that a tampered copy is refused.
 */
export function registerDemoCommand(program: Command, config: () => AegisConfig): void {
  program
    .command('demo')
    .description('sign and verify the example model with a dev key under ./.aegis (the quick start)')
    .option('--model <path>', 'model to use', EXAMPLE_MODEL)
    .option('--json', 'print a JSON report')
    .addHelpText('after', '\nExample:\n  $ npm start        # same as: npx aegis demo')
    .action(async (o) => {
      const say = (s: string) => {
        if (!o.json) process.stdout.write(s + '\n');
      };
      try {
        const home = resolve(config().home);
        const { keyPath, trustPath } = await ensureDevTrust(config(), say);
        const policy = await loadTrustPolicy(trustPath);
        const bundlePath = join(home, 'bundles', 'example_multimodal-0.1.sig');
        const signer = await PemKeySigner.fromFile(keyPath);
        const signed = await signModel({ modelPath: o.model, signer, bundlePath });
        await writeFileAtomic(bundlePath, signed.bundleJson);
        say(`signed ${o.model}: ${signed.files} files, root digest ${signed.rootDigest}`);
        say(`bundle: ${bundlePath}`);
        const report = await verifyModel({ modelPath: o.model, bundlePath, trust: { kind: 'policy', policy } });
        say(`$ aegis model verify ${o.model} --bundle ${bundlePath} --trust ${trustPath}`);
        say('verified');

        // Tamper with a copy: one byte of one file.
        const scratch = await mkdtemp(join(tmpdir(), 'aegis-demo-'));
        let refusal: unknown;
        try {
          const copy = join(scratch, 'model');
          await cp(o.model, copy, { recursive: true });
          const victim = join(copy, 'model.onnx');
          const fh = await open(victim, 'r+');
          const b = Buffer.alloc(1);
          await fh.read(b, 0, 1, 100);
          b[0] = b[0]! ^ 0xff;
          await fh.write(b, 0, 1, 100);
          await fh.close();
          await verifyModel({ modelPath: copy, bundlePath, trust: { kind: 'policy', policy } });
        } catch (err) {
          refusal = err;
        } finally {
          await rm(scratch, { recursive: true, force: true });
        }
        const refused = isAegisError(refusal) ? { code: refusal.code, message: refusal.message } : undefined;
        say(`tampered copy (one byte of model.onnx flipped): ${refused ? `refused [${refused.code}] ${refused.message}` : 'NOT REFUSED'}`);
        if (!refused) process.exitCode = 1;
        if (o.json) printJson({ ok: Boolean(refused), signed: { ...signed, bundleJson: undefined, signedFiles: undefined }, verification: report, tampered: refused });
        else say(`\nnext: aegis model verify --help, aegis keys rotate --help`);
      } catch (err) {
        process.exitCode = reportError(err, o);
      }
    });
}
