/**
 * Every Prometheus rule file (deploy/prometheus/*-rules.yaml) passes
 * `promtool check rules` with the rules it is meant to hold, and its unit
 * tests (`promtool test rules <name>.test.yaml`: the canary alerts, the
 * ModelDrift alert after 10 minutes of drift with dataset_uri, once per model
 * version, the backup-staleness alerts). A new rule file without tests, or
 * missing here, fails. promtool comes with Debian's prometheus package
 * (scripts/services.sh).
 */
import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { promtool, RULES_DIR } from '../src/test-support/promtool.js';

/** Rule files and how many rules each holds. */
const RULE_FILES: Record<string, number> = {
  'alert-rules.yaml': 8,
  'backup-rules.yaml': 2,
  'drift-rules.yaml': 1,
};

describe('Prometheus rule files: promtool', () => {
  it('lists every rule file, each with its unit tests beside it', () => {
    const files = readdirSync(RULES_DIR);
    expect(files.filter((f) => f.endsWith('-rules.yaml')).sort()).toEqual(Object.keys(RULE_FILES).sort());
    for (const f of Object.keys(RULE_FILES)) expect(files, f).toContain(f.replace(/\.yaml$/, '.test.yaml'));
  });

  for (const [file, rules] of Object.entries(RULE_FILES)) {
    it(`${file} passes promtool check rules (${rules} rules)`, () => {
      const r = promtool(['check', 'rules', file]);
      expect(r.status, r.out).toBe(0);
      expect(r.out).toMatch(new RegExp(`SUCCESS: ${rules} rules found`));
    });

    it(`${file} passes its promtool unit tests`, () => {
      const r = promtool(['test', 'rules', file.replace(/\.yaml$/, '.test.yaml')]);
      expect(r.status, r.out).toBe(0);
      expect(r.out).toMatch(/SUCCESS/);
    });
  }
});
