import { cp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { packageModel } from '../signing/package.js';
import { PemKeySigner } from '../signing/pem/index.js';
import { EXAMPLE_MODEL } from '../training/example.js';

/**
 * Packages the example model under another version (for swap and canary
 * tests): copies it into `<work>/m-<version>`, rewrites aegis.yaml's version,
 * signs with `keyPath`; returns `<work>/dist-<version>/model.tar.gz`.
 */
export async function packageExampleVersion(work: string, keyPath: string, version: string): Promise<string> {
  const dir = join(work, `m-${version}`);
  await cp(EXAMPLE_MODEL, dir, { recursive: true });
  const m = await readFile(join(dir, 'aegis.yaml'), 'utf8');
  await writeFile(join(dir, 'aegis.yaml'), m.replace(/^version: .*$/m, `version: "${version}"`));
  const r = await packageModel({ modelDir: dir, signer: await PemKeySigner.fromFile(keyPath), outDir: join(work, `dist-${version}`) });
  return r.archive;
}
