import { AegisError } from '../../errors.js';
import { hadNoResponse, isNetworkFailure, sdkError } from '../../util/aws-errors.js';

export type KmsOp = 'GetPublicKey' | 'Sign';

/** What a message about a failed KMS call names. */
export interface KmsRef {
  keyId: string;
  /** Where requests go, for messages: the endpoint URL, or "AWS KMS (region)". */
  endpoint: string;
}

/** The caller is not allowed, or not recognized. */
const AUTH_NAMES = new Set([
  'AccessDeniedException',
  'AccessDenied',
  'UnrecognizedClientException',
  'InvalidSignatureException',
  'IncompleteSignature',
  'MissingAuthenticationToken',
  'ExpiredTokenException',
  'ExpiredToken',
  'InvalidClientTokenId',
]);
/** The key exists but cannot sign now, or cannot sign this way. */
const UNUSABLE_NAMES = new Set(['DisabledException', 'KMSInvalidStateException', 'KeyUnavailableException', 'InvalidKeyUsageException', 'UnsupportedOperationException']);

const PERMISSIONS = 'kms:GetPublicKey and kms:Sign';

/** Maps an AWS SDK error from a KMS call to an AegisError with a stable code and a hint. */
export function kmsError(err: unknown, ref: KmsRef, op: KmsOp): AegisError {
  if (err instanceof AegisError) return err;
  const { e, name, status, message } = sdkError(err);
  const details = { keyId: ref.keyId, endpoint: ref.endpoint, op, ...(name ? { error: name } : {}), ...(status ? { status } : {}) };

  if (/region is missing/i.test(message)) {
    return new AegisError('CONFIG_INVALID', `no AWS region for KMS key ${ref.keyId}`, {
      cause: err,
      hint: 'Set AEGIS_KMS_REGION (or AWS_REGION), or pass the key as an ARN, which names its region.',
      details,
    });
  }
  if (name === 'NotFoundException' || name === 'InvalidArnException' || name === 'InvalidAliasNameException') {
    return new AegisError('KMS_KEY_NOT_FOUND', `KMS has no key ${ref.keyId} at ${ref.endpoint}: ${message}`, {
      cause: err,
      hint:
        'Check the key id, ARN or alias (alias/NAME) and the region: KMS keys are regional (AEGIS_KMS_REGION, or the region in the ARN). ' +
        '`aws kms describe-key --key-id ID` shows whether the identity in use can see the key.',
      details,
    });
  }
  if (name === 'CredentialsProviderError') {
    return new AegisError('KMS_ACCESS_DENIED', `no AWS credentials to call KMS ${op} for key ${ref.keyId}: ${message}`, {
      cause: err,
      hint: 'Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run where an IAM role applies (instance profile, IRSA, ECS task role).',
      details,
    });
  }
  if (AUTH_NAMES.has(name) || status === 401 || status === 403) {
    return new AegisError('KMS_ACCESS_DENIED', `KMS refused ${op} on key ${ref.keyId}: ${message}`, {
      cause: err,
      hint: `The AWS identity in use needs ${PERMISSIONS} on this key (in the key policy, or an IAM policy the key policy allows); check which identity that is with \`aws sts get-caller-identity\`. See docs/kms.md.`,
      details,
    });
  }
  if (UNUSABLE_NAMES.has(name)) {
    return new AegisError('KMS_KEY_UNUSABLE', `KMS key ${ref.keyId} cannot sign: ${message}`, {
      cause: err,
      hint:
        name === 'DisabledException' || name === 'KMSInvalidStateException'
          ? 'The key is disabled or pending deletion: enable it (`aws kms enable-key`, `aws kms cancel-key-deletion`) or sign with another key.'
          : name === 'KeyUnavailableException'
            ? 'KMS cannot use the key material right now (custom key store disconnected?): retry later, or check the key store.'
            : 'Use an asymmetric key with key usage SIGN_VERIFY and key spec ECC_NIST_P256, ECC_NIST_P384 or ECC_NIST_P521.',
      details,
    });
  }
  if (isNetworkFailure(e) || hadNoResponse(e)) {
    return new AegisError('KMS_UNREACHABLE', `cannot reach KMS at ${ref.endpoint} for ${op} on key ${ref.keyId}: ${message}`, {
      cause: err,
      hint: 'Check that the endpoint is reachable from here (AEGIS_KMS_ENDPOINT when set, the region in AEGIS_KMS_REGION, proxy and firewall settings, a VPC endpoint for KMS).',
      details,
    });
  }
  if (name === 'ValidationException') {
    return new AegisError('KMS_REQUEST_FAILED', `KMS rejected ${op} on key ${ref.keyId} at ${ref.endpoint} as invalid: ${message}`, {
      cause: err,
      hint: 'Retrying will not help. If the endpoint is AWS KMS this is a bug in Aegis: please report it with the message; with an emulator, check that it supports the KMS API Aegis uses (Sign with MessageType DIGEST).',
      details,
    });
  }
  return new AegisError('KMS_REQUEST_FAILED', `KMS ${op} on key ${ref.keyId} failed at ${ref.endpoint}: ${message}`, {
    cause: err,
    hint: 'Retry; if it persists, check the key with `aws kms describe-key --key-id ID` and the service health of KMS in that region.',
    details,
  });
}
