/**
 * The ModelDrift alert rule (deploy/prometheus/drift-rules.yaml) passes
 * `promtool check rules` and its unit tests (`promtool test rules`: fires
 * after 10 minutes of drift with dataset_uri in its annotations, once per
 * model version; quiet without drift, without a verdict, and when flapping).
 * promtool comes with Debian's prometheus package (scripts/services.sh).
 */
import { describe, expect, it } from 'vitest';
import { promtool } from '../test-support/promtool.js';

describe('ModelDrift alert rule', () => {
  it('passes promtool check rules', () => {
    const r = promtool(['check', 'rules', 'drift-rules.yaml']);
    expect(r.status, r.out).toBe(0);
    expect(r.out).toMatch(/SUCCESS: 1 rules found/);
  });

  it('passes its promtool unit tests', () => {
    const r = promtool(['test', 'rules', 'drift-rules.test.yaml']);
    expect(r.status, r.out).toBe(0);
    expect(r.out).toMatch(/SUCCESS/);
  });
});
