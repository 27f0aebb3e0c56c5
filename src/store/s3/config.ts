import { AegisError } from '../../errors.js';
import { validateKey } from '../keys.js';

/** Connection settings from the environment: AEGIS_S3_ENDPOINT, AEGIS_S3_REGION, AEGIS_S3_FORCE_PATH_STYLE. */
export interface S3EnvOptions {
  endpoint?: string;
  region: string;
  /** Only when AEGIS_S3_FORCE_PATH_STYLE is set; S3Store defaults it to true when an endpoint is set. */
  forcePathStyle?: boolean;
}

/**
 * Reads AEGIS_S3_ENDPOINT (an S3-compatible server; default AWS),
 * AEGIS_S3_REGION (default $AWS_REGION, then us-east-1) and
 * AEGIS_S3_FORCE_PATH_STYLE (true/false; default true when an endpoint is set).
 * Credentials are not read here: the AWS SDK's provider chain finds them.
 */
export function s3OptionsFromEnv(env: NodeJS.ProcessEnv = process.env): S3EnvOptions {
  const endpoint = env.AEGIS_S3_ENDPOINT?.trim() || undefined;
  if (endpoint !== undefined) {
    let url: URL | undefined;
    try {
      url = new URL(endpoint);
    } catch {
      url = undefined;
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
      throw new AegisError('CONFIG_INVALID', `AEGIS_S3_ENDPOINT must be an http(s) URL, got ${JSON.stringify(endpoint)}`, {
        hint: 'For example AEGIS_S3_ENDPOINT=http://127.0.0.1:5077, or unset it to use AWS.',
      });
    }
  }
  const region = env.AEGIS_S3_REGION?.trim() || env.AWS_REGION?.trim() || 'us-east-1';
  const rawPathStyle = env.AEGIS_S3_FORCE_PATH_STYLE?.trim().toLowerCase();
  let forcePathStyle: boolean | undefined;
  if (rawPathStyle) {
    if (['true', '1', 'yes'].includes(rawPathStyle)) forcePathStyle = true;
    else if (['false', '0', 'no'].includes(rawPathStyle)) forcePathStyle = false;
    else {
      throw new AegisError('CONFIG_INVALID', `AEGIS_S3_FORCE_PATH_STYLE must be true or false, got ${JSON.stringify(env.AEGIS_S3_FORCE_PATH_STYLE)}`, {
        hint: 'Set AEGIS_S3_FORCE_PATH_STYLE=true for servers that need http://host/bucket/key URLs (MinIO, moto), or unset it.',
      });
    }
  }
  return { ...(endpoint ? { endpoint } : {}), region, ...(forcePathStyle === undefined ? {} : { forcePathStyle }) };
}

/** S3 bucket names: 3-63 lowercase letters, digits, dots, hyphens; legacy buckets may be longer or use capitals and `_`. */
const BUCKET = /^[A-Za-z0-9][A-Za-z0-9._-]{2,254}$/;

/** Splits `s3://bucket/optional/prefix` into bucket and prefix (no leading or trailing `/`). */
export function parseS3Uri(uri: string): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([^/]*)(?:\/(.*))?$/i.exec(uri);
  const bucket = m?.[1] ?? '';
  if (!m || !BUCKET.test(bucket)) {
    throw new AegisError('USAGE', `not an S3 URI: ${JSON.stringify(uri)}`, {
      hint: 'Write s3://BUCKET or s3://BUCKET/PREFIX, e.g. s3://my-models/aegis (bucket names are 3-63 lowercase letters, digits, dots and hyphens).',
    });
  }
  const prefix = (m[2] ?? '').replace(/\/+$/, '');
  if (prefix) {
    try {
      validateKey(prefix);
    } catch (err) {
      throw new AegisError('USAGE', `invalid prefix in S3 URI ${JSON.stringify(uri)}`, {
        cause: err,
        hint: 'The part after the bucket must be a relative path without `//`, `.` or `..` segments, e.g. s3://my-models/aegis/prod.',
      });
    }
  }
  return { bucket, prefix };
}
