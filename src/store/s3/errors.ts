import { AegisError } from '../../errors.js';
import { hadNoResponse, isNetworkFailure, sdkError } from '../../util/aws-errors.js';

export type S3Op = 'put' | 'get' | 'head' | 'list' | 'delete';

/** What an S3Store error message needs to know about the store. */
interface StoreRef {
  readonly uri: string;
  readonly bucket: string;
  readonly endpoint: string;
  uriOf(key: string): string;
}

const AUTH_NAMES = new Set([
  'CredentialsProviderError',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'AccessDenied',
  'ExpiredToken',
  'InvalidToken',
  'TokenRefreshRequired',
]);

/** Maps an AWS SDK error to an AegisError with a code and an actionable hint. */
export function s3Error(err: unknown, store: StoreRef, op: S3Op, key: string): AegisError {
  if (err instanceof AegisError) return err;
  const { e, name, status, message } = sdkError(err);
  const what = key ? store.uriOf(key) : store.uri;
  const details = { store: store.uri, endpoint: store.endpoint, key, op, ...(name ? { error: name } : {}), ...(status ? { status } : {}) };

  if (name === 'NoSuchBucket') {
    return new AegisError('STORE_UNREACHABLE', `bucket ${store.bucket} does not exist at ${store.endpoint}`, {
      cause: err,
      hint: `Create the bucket ${store.bucket} or fix the store URI (${store.uri}); check AEGIS_S3_ENDPOINT and AEGIS_S3_REGION.`,
      details,
    });
  }
  if ((op === 'get' || op === 'head') && (name === 'NoSuchKey' || name === 'NotFound' || status === 404)) {
    return new AegisError('STORE_NOT_FOUND', `no object ${what}`, {
      cause: err,
      hint: `Check the key and the store (${store.uri}); list what is there with the store's list command.`,
      details,
    });
  }
  if (AUTH_NAMES.has(name) || status === 401 || status === 403) {
    return new AegisError('STORE_UNREACHABLE', `S3 refused ${op} ${what} at ${store.endpoint}: ${message}`, {
      cause: err,
      hint:
        name === 'CredentialsProviderError'
          ? 'No AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, or run where an IAM role applies).'
          : `Check that the AWS credentials in use may ${op} in bucket ${store.bucket}, and that the bucket is in the configured region (AEGIS_S3_REGION).`,
      details,
    });
  }
  if (isNetworkFailure(e) || (hadNoResponse(e) && !name.startsWith('S3'))) {
    return new AegisError('STORE_UNREACHABLE', `cannot reach S3 at ${store.endpoint} for ${op} ${what}: ${message}`, {
      cause: err,
      hint: `Check that ${store.endpoint} is up and reachable from here and that bucket ${store.bucket} exists (AEGIS_S3_ENDPOINT, AEGIS_S3_REGION, proxy and firewall settings).`,
      details,
    });
  }
  if (op === 'put') {
    return new AegisError('STORE_WRITE_FAILED', `cannot store ${what}: ${message}`, {
      cause: err,
      hint: `S3 at ${store.endpoint} rejected the upload (nothing was stored; a multipart upload is aborted). Retry; if it persists, check the bucket's policy and quotas.`,
      details,
    });
  }
  return new AegisError('STORE_UNREACHABLE', `S3 ${op} of ${what} failed at ${store.endpoint}: ${message}`, {
    cause: err,
    hint: `Retry; if it persists, check the service at ${store.endpoint} and bucket ${store.bucket}.`,
    details,
  });
}
