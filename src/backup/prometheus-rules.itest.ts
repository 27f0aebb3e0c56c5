/**
 * The backup alert rules (deploy/prometheus/backup-rules.yaml) pass
 * `promtool check rules` and their unit tests (`promtool test rules`).
 * promtool comes with Debian's prometheus package (scripts/services.sh).
 */
import { describe, expect, it } from 'vitest';
import { promtool } from '../test-support/promtool.js';

describe('backup alert rules', () => {
  it('pass promtool check rules', () => {
    const r = promtool(['check', 'rules', 'backup-rules.yaml']);
    expect(r.status, r.out).toBe(0);
    expect(r.out).toMatch(/SUCCESS: 2 rules found/);
  });

  it('pass their promtool unit tests', () => {
    const r = promtool(['test', 'rules', 'backup-rules.test.yaml']);
    expect(r.status, r.out).toBe(0);
    expect(r.out).toMatch(/SUCCESS/);
  });
});
