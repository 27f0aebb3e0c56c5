#!/usr/bin/env node
// Generates the Kubernetes PrometheusRule (monitoring.coreos.com/v1, Prometheus
// Operator / kube-prometheus-stack) from the plain Prometheus rule file, so the
// rules have ONE source of truth: deploy/prometheus/alert-rules.yaml.
//
//   node scripts/gen-prometheusrule.mjs           write deploy/kubernetes/prometheusrule.yaml
//   node scripts/gen-prometheusrule.mjs --check   exit 1 if the committed file is out of date
//
// test/prometheus-rules.test.ts runs the --check form.
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const SOURCE = 'deploy/prometheus/alert-rules.yaml';
export const TARGET = 'deploy/kubernetes/prometheusrule.yaml';

/** The PrometheusRule text for a rule file's text (deterministic). */
export function render(sourceText) {
  const rules = YAML.parse(sourceText);
  if (!rules || !Array.isArray(rules.groups) || rules.groups.length === 0) {
    throw new Error(`${SOURCE} has no rule groups (expected "groups: [ {name, rules: [...]} ]")`);
  }
  const resource = {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PrometheusRule',
    metadata: {
      name: 'aegis-canary',
      labels: {
        'app.kubernetes.io/name': 'aegis',
        'app.kubernetes.io/component': 'canary-alerts',
        'app.kubernetes.io/part-of': 'aegis',
      },
    },
    spec: { groups: rules.groups },
  };
  const header = [
    `# GENERATED from ${SOURCE} by scripts/gen-prometheusrule.mjs: do not edit;`,
    '# edit the source and run `node scripts/gen-prometheusrule.mjs`.',
    '# kubectl apply -n <namespace of your Prometheus rules> -f deploy/kubernetes/prometheusrule.yaml',
    "# (kube-prometheus-stack selects rules by label: add your release's, e.g. release: prometheus,",
    '# or set ruleSelectorNilUsesHelmValues=false).',
    '',
  ].join('\n');
  return header + YAML.stringify(resource, { lineWidth: 0 });
}

function main() {
  const check = process.argv.includes('--check');
  const want = render(readFileSync(join(ROOT, SOURCE), 'utf8'));
  const target = join(ROOT, TARGET);
  if (check) {
    let have = '';
    try {
      have = readFileSync(target, 'utf8');
    } catch {
      // missing: out of date
    }
    if (have !== want) {
      process.stderr.write(`${TARGET} is out of date with ${SOURCE}: run \`node scripts/gen-prometheusrule.mjs\` and commit the result\n`);
      process.exit(1);
    }
    process.stdout.write(`${TARGET} is up to date\n`);
    return;
  }
  mkdirSync(dirname(target), { recursive: true });
  writeFileSync(target, want);
  process.stdout.write(`wrote ${TARGET}\n`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) main();
