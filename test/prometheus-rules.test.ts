/**
 * The Prometheus rule files (deploy/prometheus/*-rules.yaml) and the
 * PrometheusRule generated from the canary rules (deploy/kubernetes/prometheusrule.yaml):
 * both parse, the generated file is up to date (one source of truth), it is a
 * valid monitoring.coreos.com/v1 PrometheusRule (checked offline against the
 * CRD's schema: `kubectl apply --dry-run=client` needs an API server), and every
 * alert carries what routing and on-call need: `for`, a severity, a summary and
 * a runbook. promtool's own checks run in test/alerts.itest.ts.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const RULES_DIR = join(REPO, 'deploy', 'prometheus');
const SOURCE = join(RULES_DIR, 'alert-rules.yaml');
const GENERATED = join(REPO, 'deploy', 'kubernetes', 'prometheusrule.yaml');

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RuleFile {
  groups: { name: string; rules: Rule[] }[];
}

const parse = (file: string): unknown => YAML.parse(readFileSync(file, 'utf8'));
const ruleFiles = readdirSync(RULES_DIR)
  .filter((f) => f.endsWith('-rules.yaml'))
  .sort();

const DURATION = '^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$';
const stringMap = { type: 'object', additionalProperties: { type: 'string' } };
/**
 * The spec part of the PrometheusRule CRD's openAPIV3Schema (prometheus-operator
 * v0.82, monitoring.coreos.com_prometheusrules.yaml), with unknown rule fields
 * refused: the API server would silently prune them (a typo such as `fro:` would vanish).
 */
const PROMETHEUS_RULE_SCHEMA = {
  type: 'object',
  required: ['apiVersion', 'kind', 'metadata', 'spec'],
  properties: {
    apiVersion: { const: 'monitoring.coreos.com/v1' },
    kind: { const: 'PrometheusRule' },
    metadata: {
      type: 'object',
      required: ['name'],
      properties: { name: { type: 'string', pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', maxLength: 253 }, labels: stringMap, annotations: stringMap },
    },
    spec: {
      type: 'object',
      required: ['groups'],
      additionalProperties: false,
      properties: {
        groups: {
          type: 'array',
          minItems: 1,
          items: {
            type: 'object',
            required: ['name', 'rules'],
            additionalProperties: false,
            properties: {
              name: { type: 'string', minLength: 1 },
              interval: { type: 'string', pattern: DURATION },
              limit: { type: 'integer' },
              rules: {
                type: 'array',
                items: {
                  type: 'object',
                  required: ['expr'],
                  additionalProperties: false,
                  oneOf: [{ required: ['alert'] }, { required: ['record'] }],
                  properties: {
                    alert: { type: 'string' },
                    record: { type: 'string', pattern: '^[a-zA-Z_:][a-zA-Z0-9_:]*$' },
                    expr: { anyOf: [{ type: 'integer' }, { type: 'string' }] },
                    for: { type: 'string', pattern: DURATION },
                    keep_firing_for: { type: 'string', pattern: DURATION },
                    labels: stringMap,
                    annotations: stringMap,
                  },
                },
              },
            },
          },
        },
      },
    },
  },
};

function alertsOf(file: RuleFile): Rule[] {
  return file.groups.flatMap((g) => g.rules.filter((r) => r.alert !== undefined));
}

describe('Prometheus alert rules', () => {
  it('the rule files parse as Prometheus rule files', () => {
    expect(ruleFiles).toContain('alert-rules.yaml');
    for (const f of ruleFiles) {
      const doc = parse(join(RULES_DIR, f)) as RuleFile;
      expect(Array.isArray(doc?.groups), f).toBe(true);
      for (const g of doc.groups) {
        expect(typeof g.name, f).toBe('string');
        for (const r of g.rules) {
          expect(typeof r.expr, `${f}: ${r.alert ?? r.record}`).toBe('string');
          expect((r.alert === undefined) !== (r.record === undefined), `${f}: a rule is either an alert or a record`).toBe(true);
        }
      }
    }
  });

  it('every alert has for, a severity, a summary and a runbook_url', () => {
    const files: [string, RuleFile][] = [
      ...ruleFiles.map((f): [string, RuleFile] => [f, parse(join(RULES_DIR, f)) as RuleFile]),
      ['prometheusrule.yaml', (parse(GENERATED) as { spec: RuleFile }).spec],
    ];
    for (const [f, doc] of files) {
      for (const a of alertsOf(doc)) {
        const where = `${f}: ${a.alert}`;
        expect(a.for, where).toMatch(/^\d+[smhd]/);
        expect(['critical', 'warning', 'info'], where).toContain(a.labels?.severity);
        expect(a.annotations?.summary, where).toBeTruthy();
        expect(a.annotations?.runbook_url, where).toMatch(/^https:\/\/.+#[a-z0-9-]+$/);
      }
    }
  });

  it('the canary alerts are there, with labels Alertmanager can route on', () => {
    const alerts = alertsOf(parse(SOURCE) as RuleFile);
    expect(alerts.map((a) => a.alert)).toEqual(['AegisCanaryErrorRateHigh', 'AegisCanaryLatencyHigh']);
    for (const a of alerts) {
      expect(a.labels, a.alert).toMatchObject({ component: 'canary', track: 'canary' });
      expect(a.annotations?.runbook_url, a.alert).toMatch(/docs\/rollouts\.md#automatic-rollback$/);
      // the alert keeps the canary's model and version labels (from the recorded series)
      expect(a.expr, a.alert).toMatch(/\{track="canary"\}/);
      expect(a.expr, a.alert).not.toMatch(/\b(sum|max|min|avg)\s+(by|without)\b/);
    }
  });

  it('the committed PrometheusRule is generated from alert-rules.yaml and up to date', () => {
    const generated = parse(GENERATED) as { spec: RuleFile };
    expect(generated.spec.groups).toEqual(['alert-rules.yaml', 'drift-rules.yaml'].flatMap((f) => (parse(join(RULES_DIR, f)) as RuleFile).groups));
    const r = spawnSync(process.execPath, [join(REPO, 'scripts', 'gen-prometheusrule.mjs'), '--check'], { encoding: 'utf8' });
    expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);
  });

  it('the PrometheusRule matches the monitoring.coreos.com/v1 CRD schema', () => {
    const validate = new Ajv({ allErrors: true, strict: false }).compile(PROMETHEUS_RULE_SCHEMA);
    const doc = parse(GENERATED);
    expect(validate(doc), JSON.stringify(validate.errors, null, 2)).toBe(true);
    // and the schema does catch a misspelt field
    const bad = structuredClone(doc) as { spec: { groups: { rules: Record<string, unknown>[] }[] } };
    bad.spec.groups[0]!.rules[0]!.fro = '1m';
    expect(validate(bad)).toBe(false);
  });
});
