import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { AegisConfig } from '../config/index.js';
import { writePolicyDocument } from '../signing/trust.js';
import { writeKeyPair } from './keys.js';

/**
 * The embedded platform's DEV signing key and trust policy, made on first use
 * under <home>: keys/dev/signing-key.pem and trust.yaml trusting it. Clearly
 * labelled as dev material; production deployments bring their own keys.
 */
export async function ensureDevTrust(config: AegisConfig, say: (s: string) => void): Promise<{ keyPath: string; trustPath: string }> {
  const home = resolve(config.home);
  const keyDir = join(home, 'keys', 'dev');
  const keyPath = join(keyDir, 'signing-key.pem');
  const trustPath = join(home, 'trust.yaml');
  if (!existsSync(keyPath)) {
    const k = await writeKeyPair(keyDir, config.signing.defaultCurve, true);
    say(`created a DEV signing key ${k.privateKey} (for local use only)`);
  }
  if (!existsSync(trustPath)) {
    await writePolicyDocument(trustPath, {
      apiVersion: 'aegis.dev/v1',
      kind: 'TrustPolicy',
      keys: [{ id: 'dev-local', publicKey: 'keys/dev/signing-key.pub.pem', description: 'DEV KEY made by aegis: never trust it in production' }],
    });
    say(`created trust policy ${trustPath} trusting the dev key`);
  }
  return { keyPath, trustPath };
}
