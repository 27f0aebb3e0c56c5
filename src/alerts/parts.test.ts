import { describe, expect, it } from 'vitest';
import { loadConfig } from '../config/index.js';
import { isAegisError } from '../errors.js';
import { compileFilter, parseMatcher } from './filters.js';
import { labelsFingerprint } from './fingerprint.js';
import { fieldPath, parsePayload } from './payload.js';
import { alertReceiverOptionsFromConfig } from './receiver.js';
import { SEED_PAYLOAD_TEXT } from './test-support.js';

describe('alert fingerprints', () => {
  it('match Prometheus label-set fingerprints (prometheus/common TestMetricToFingerprint)', () => {
    expect(labelsFingerprint({})).toBe(BigInt('14695981039346656037').toString(16).padStart(16, '0'));
    expect(labelsFingerprint({ name: 'garland, briggs', fear: 'love is not enough' })).toBe(BigInt('5799056148416392346').toString(16).padStart(16, '0'));
  });

  it('do not depend on label order, and differ for different labels', () => {
    expect(labelsFingerprint({ a: '1', b: '2' })).toBe(labelsFingerprint({ b: '2', a: '1' }));
    expect(labelsFingerprint({ a: '1', b: '2' })).not.toBe(labelsFingerprint({ a: '1', b: '3' }));
    expect(labelsFingerprint({ ab: '' })).not.toBe(labelsFingerprint({ a: 'b' }));
  });
});

describe('alert matchers and filters', () => {
  it('parse Alertmanager matcher syntax', () => {
    expect(parseMatcher('env="prod"')).toMatchObject({ name: 'env', op: '=', value: 'prod' });
    expect(parseMatcher(' model =~ "fraud-.*" ')).toMatchObject({ name: 'model', op: '=~', value: 'fraud-.*' });
    expect(parseMatcher('team!=sandbox')).toMatchObject({ name: 'team', op: '!=', value: 'sandbox' });
    expect(parseMatcher('x!~"a\\"b"')).toMatchObject({ op: '!~', value: 'a"b' });
    expect(parseMatcher('"label with space"="v"')).toMatchObject({ name: 'label with space' });
  });

  it('anchor regexes and treat a missing label as empty', () => {
    expect(parseMatcher('m=~"fr.*"').test({ m: 'fraud' })).toBe(true);
    expect(parseMatcher('m=~"fr"').test({ m: 'fraud' })).toBe(false);
    expect(parseMatcher('m=~"a|b"').test({ m: 'b' })).toBe(true);
    expect(parseMatcher('m=""').test({})).toBe(true);
    expect(parseMatcher('m!~".+"').test({})).toBe(true);
  });

  it('reject malformed matchers with CONFIG_INVALID', () => {
    for (const m of ['env', 'env=="x"', '1abc="x"', 'x=~"[z-a]"', 'x="unterminated', 'x=a,b']) {
      expect(() => parseMatcher(m), m).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
    }
  });

  it('default to firing ModelDrift alerts of any severity', () => {
    const f = compileFilter();
    expect(f.matches({ alertname: 'ModelDrift' })).toBe(true);
    expect(f.matches({ alertname: 'ModelDrift', severity: 'warning' })).toBe(true);
    expect(f.matches({ alertname: 'AegisCanaryErrorRateHigh' })).toBe(false);
    expect(f.matches({})).toBe(false);
  });
});

describe('Alertmanager payload validation', () => {
  it('accepts the seed sample payload (no fingerprint, endsAt, truncatedAlerts or externalURL)', () => {
    const r = parsePayload(JSON.parse(SEED_PAYLOAD_TEXT));
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.payload.alerts[0]!.annotations.dataset_uri).toBe('s3://my-staging-bucket/datasets/cifar/v2/');
  });

  it('names fields as JavaScript paths', () => {
    expect(fieldPath(['alerts', 0, 'labels'])).toBe('alerts[0].labels');
    expect(fieldPath(['alerts', 2, 'labels', 'app.kubernetes.io/name'])).toBe('alerts[2].labels["app.kubernetes.io/name"]');
    expect(fieldPath([])).toBe('(body)');
  });
});

describe('alerts configuration', () => {
  it('has fail-safe defaults and takes secrets from the environment verbatim', () => {
    const dflt = loadConfig({ env: {}, cwd: '/nonexistent' }).alerts;
    expect(dflt).toEqual({
      allowUnauthenticated: false,
      hmacHeader: 'x-aegis-signature',
      filters: { alertnames: ['ModelDrift'], severities: [], matchers: [] },
      modelLabel: 'model',
      cooldownSeconds: 3600,
      maxConcurrentRetrains: 1,
      bodyLimitBytes: 1024 * 1024,
    });
    const c = loadConfig({
      env: {
        AEGIS_ALERTS_TOKEN: '1234567890123456',
        AEGIS_ALERTS_HMAC_SECRET: 'true-secret-value-123',
        AEGIS_ALERTS_COOLDOWN_SECONDS: '600',
        AEGIS_ALERTS_MAX_CONCURRENT_RETRAINS: '2',
        AEGIS_ALERTS_BODY_LIMIT_BYTES: '65536',
        AEGIS_ALERTS_ALLOW_UNAUTHENTICATED: 'false',
      },
      cwd: '/nonexistent',
    }).alerts;
    expect(c).toMatchObject({ token: '1234567890123456', hmacSecret: 'true-secret-value-123', cooldownSeconds: 600, maxConcurrentRetrains: 2, bodyLimitBytes: 65536 });
    expect(alertReceiverOptionsFromConfig(c)).toMatchObject({ token: '1234567890123456', cooldownSeconds: 600 });
  });

  it('rejects a short token, naming the setting but not the value', () => {
    let err: unknown;
    try {
      loadConfig({ env: { AEGIS_ALERTS_TOKEN: 'short-secret' }, cwd: '/nonexistent' });
    } catch (e) {
      err = e;
    }
    expect(isAegisError(err, 'CONFIG_INVALID')).toBe(true);
    expect((err as Error).message).toMatch(/alerts\.token/);
    expect((err as Error).message).not.toContain('short-secret');
  });
});
