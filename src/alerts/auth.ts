import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

/**
 * Who may post alerts. Alertmanager authenticates a webhook with
 * `http_config.authorization` (an `Authorization: Bearer <token>` header);
 * an HMAC-SHA256 of the raw body in a header (`X-Aegis-Signature:
 * sha256=<hex>`) can be required on top, for senders that sign (a relay, a
 * gateway; Alertmanager itself cannot). Secrets are compared in constant time
 * over equal-length SHA-256 digests, so neither the content nor the length of
 * a secret leaks through timing.
 */
export interface AuthConfig {
  token?: string;
  hmacSecret?: string;
  /** Lower-case header name. */
  hmacHeader: string;
}

export type AuthFailure = { reason: 'token_missing' | 'token_wrong' | 'signature_missing' | 'signature_wrong'; message: string };

const digest = (s: string | Buffer) => createHash('sha256').update(s).digest();

function sameSecret(given: string | Buffer, expectedDigest: Buffer): boolean {
  return timingSafeEqual(digest(given), expectedDigest);
}

export class Authenticator {
  readonly #tokenDigest: Buffer | undefined;
  readonly #hmacSecret: string | undefined;
  readonly hmacHeader: string;

  constructor(config: AuthConfig) {
    this.#tokenDigest = config.token === undefined ? undefined : digest(config.token);
    this.#hmacSecret = config.hmacSecret;
    this.hmacHeader = config.hmacHeader.toLowerCase();
  }

  get requiresSignature(): boolean {
    return this.#hmacSecret !== undefined;
  }

  /** Checks the bearer token (headers only: runs before the body is read). */
  checkToken(headers: IncomingHttpHeaders): AuthFailure | undefined {
    if (!this.#tokenDigest) return undefined;
    const m = /^\s*Bearer\s+(\S+)\s*$/i.exec(headers.authorization ?? '');
    if (!m) return { reason: 'token_missing', message: 'missing bearer token: send Authorization: Bearer <token>' };
    if (!sameSecret(m[1]!, this.#tokenDigest)) return { reason: 'token_wrong', message: 'the bearer token is wrong' };
    return undefined;
  }

  /** Checks the HMAC of the raw body, when a secret is configured. */
  checkSignature(headers: IncomingHttpHeaders, rawBody: Buffer): AuthFailure | undefined {
    if (this.#hmacSecret === undefined) return undefined;
    const header = headers[this.hmacHeader];
    const value = Array.isArray(header) ? header[0] : header;
    const m = /^\s*sha256=([0-9a-fA-F]{64})\s*$/.exec(value ?? '');
    if (!m) return { reason: 'signature_missing', message: `missing or malformed ${this.hmacHeader} header: send sha256=<hex HMAC-SHA256 of the body>` };
    const expected = createHmac('sha256', this.#hmacSecret).update(rawBody).digest();
    if (!sameSecret(Buffer.from(m[1]!.toLowerCase(), 'hex'), digest(expected))) {
      return { reason: 'signature_wrong', message: `the ${this.hmacHeader} signature does not match the body` };
    }
    return undefined;
  }
}

/** `sha256=<hex>` for a body: what a signing sender puts in the HMAC header. */
export function signBody(secret: string, body: string | Buffer): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}
