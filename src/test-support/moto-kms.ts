/**
 * Test support (integration tests only): a moto server whose KMS honours
 * `Sign` with MessageType=DIGEST.
 *
 * moto (5.2.5, the newest release) reads MessageType and ignores it: a digest
 * is hashed again before signing, so its signatures verify over H(digest)
 * instead of the digest (getmoto/moto#10202 proposes the fix). KmsSigner only
 * ever sends digests, as AWS documents for messages of any size, so against
 * moto as released it refuses every signature (KMS_SIGNATURE_INVALID, tested).
 * To test the signer end to end, this starts moto from the services venv with
 * that one behaviour brought in line with the AWS API reference for ECDSA
 * keys: with DIGEST the Message is signed as a prehashed digest, and must be
 * exactly as long as the algorithm's hash ("Digest is invalid length for
 * algorithm …" otherwise). Everything else is moto unchanged.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';

const PATCH = String.raw`
import sys, threading
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from moto.kms import responses, utils
from moto.kms.exceptions import ValidationException
from moto.server import main

state = threading.local()
HASHES = {"ECDSA_SHA_256": hashes.SHA256, "ECDSA_SHA_384": hashes.SHA384, "ECDSA_SHA_512": hashes.SHA512}

original_response_sign = responses.KmsResponse.sign
def response_sign(self):
    state.digest = self._get_param("MessageType") == "DIGEST"
    try:
        return original_response_sign(self)
    finally:
        state.digest = False
responses.KmsResponse.sign = response_sign

original_ec_sign = utils.ECDSAPrivateKey.sign
def ec_sign(self, message, signing_algorithm):
    if not getattr(state, "digest", False):
        return original_ec_sign(self, message, signing_algorithm)
    utils.validate_signing_algorithm(signing_algorithm, self.valid_signing_algorithms)
    algorithm = HASHES[signing_algorithm]()
    if len(message) != algorithm.digest_size:
        raise ValidationException(f"Digest is invalid length for algorithm {signing_algorithm}.")
    return self.private_key.sign(message, ec.ECDSA(Prehashed(algorithm)))
utils.ECDSAPrivateKey.sign = ec_sign

main(["-H", "127.0.0.1", "-p", sys.argv[1]])
`;

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

export interface DigestMoto {
  endpoint: string;
  stop(): Promise<void>;
}

/** Starts the patched moto with `python` (the services venv's); resolves once it answers (at most ~30 s). */
export async function startDigestMoto(python: string): Promise<DigestMoto> {
  const port = await freePort();
  const child: ChildProcess = spawn(python, ['-c', PATCH, String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => {
    stderr = (stderr + b.toString()).slice(-4000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const endpoint = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
  };
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) throw new Error(`patched moto exited (${child.exitCode}): ${stderr}`);
    const ok = await fetch(`${endpoint}/moto-api/`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return { endpoint, stop };
    await new Promise((r) => setTimeout(r, 100));
  }
  await stop();
  throw new Error(`patched moto did not answer on ${endpoint}: ${stderr}`);
}
