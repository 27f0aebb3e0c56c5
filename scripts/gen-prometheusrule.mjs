#!/usr/bin/env node
// Generates the Kubernetes PrometheusRule (monitoring.coreos.com/v1, Prometheus
// Operator / kube-prometheus-stack) from the plain Prometheus rule files, so the
// rules have ONE source of truth: deploy/prometheus/alert-rules.yaml (canary)
// and deploy/prometheus/drift-rules.yaml (ModelDrift), their groups in that order.
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
export const SOURCES = ['deploy/prometheus/alert-rules.yaml', 'deploy/prometheus/drift-rules.yaml'];
/** The first source (the canary rules), for callers that name one file. */
export const SOURCE = SOURCES[0];
export const TARGET = 'deploy/kubernetes/prometheusrule.yaml';

/** The PrometheusRule text for the rule files' texts, in SOURCES order (deterministic). A single text is the canary file alone. */
export function render(sourceTexts) {
  const texts = Array.isArray(sourceTexts) ? sourceTexts : [sourceTexts];
  const groups = texts.flatMap((text, i) => {
    const rules = YAML.parse(text);
    if (!rules || !Array.isArray(rules.groups) || rules.groups.length === 0) {
      throw new Error(`${SOURCES[i] ?? 'a rule file'} has no rule groups (expected "groups: [ {name, rules: [...]} ]")`);
    }
    return rules.groups;
  });
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
    spec: { groups },
  };
  const header = [
    `# GENERATED from ${SOURCES.slice(0, texts.length).join(' and ')} by scripts/gen-prometheusrule.mjs: do not edit;`,
    '# edit the sources and run `node scripts/gen-prometheusrule.mjs`.',
    '# kubectl apply -n <namespace of your Prometheus rules> -f deploy/kubernetes/prometheusrule.yaml',
    "# (kube-prometheus-stack selects rules by label: add your release's, e.g. release: prometheus,",
    '# or set ruleSelectorNilUsesHelmValues=false).',
    '',
  ].join('\n');
  return header + YAML.stringify(resource, { lineWidth: 0 });
}

function main() {
  const check = process.argv.includes('--check');
  const want = render(SOURCES.map((f) => readFileSync(join(ROOT, f), 'utf8')));
  const target = join(ROOT, TARGET);
  if (check) {
    let have = '';
    try {
      have = readFileSync(target, 'utf8');
    } catch {
      // missing: out of date
    }
    if (have !== want) {
      process.stderr.write(`${TARGET} is out of date with ${SOURCES.join(', ')}: run \`node scripts/gen-prometheusrule.mjs\` and commit the result\n`);
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
