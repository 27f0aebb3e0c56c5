/**
 * What AWS SDK v3 errors carry, and which of them mean "the endpoint could not
 * be reached": shared by the S3 store and the KMS signer, which map them to
 * their own AegisError codes and hints.
 */
export interface SdkError {
  name?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

/** Socket-level failures: the endpoint could not be reached at all. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'ECONNABORTED',
  'UND_ERR_SOCKET',
]);
const NETWORK_NAMES = new Set(['TimeoutError', 'RequestTimeout', 'RequestTimeoutException', 'NetworkingError']);

/** The fields every mapping reads. */
export function sdkError(err: unknown): { e: SdkError; name: string; status: number | undefined; message: string } {
  const e = (err ?? {}) as SdkError;
  return { e, name: e.name ?? '', status: e.$metadata?.httpStatusCode, message: e.message ?? String(err) };
}

/** A socket error code or an SDK timeout/networking error. */
export function isNetworkFailure(e: SdkError): boolean {
  return (e.code !== undefined && NETWORK_CODES.has(e.code)) || NETWORK_NAMES.has(e.name ?? '');
}

/** The SDK got no HTTP response at all (request metadata without a status code). */
export function hadNoResponse(e: SdkError): boolean {
  return e.$metadata !== undefined && e.$metadata.httpStatusCode === undefined;
}
