/**
 * The ModelDrift rule as Alertmanager's receivers need it (promtool runs it in
 * test/promtool.itest.ts): what it routes on, the annotations the
 * retraining trigger reads (dataset_uri, as in the sample webhook payload),
 * that it watches the gauges the model server exports, and that the generated
 * Kubernetes PrometheusRule carries it unchanged.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { createServerMetrics } from '../serving/metrics.js';

const read = (rel: string) => YAML.parse(readFileSync(fileURLToPath(new URL(`../../${rel}`, import.meta.url)), 'utf8'));
interface Rule {
  alert?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface Group {
  name: string;
  rules: Rule[];
}

describe('ModelDrift alert rule', () => {
  const groups = (read('deploy/prometheus/drift-rules.yaml') as { groups: Group[] }).groups;
  const rule = groups.flatMap((g) => g.rules).find((r) => r.alert === 'ModelDrift')!;

  it('routes on severity, component, model and version, and annotates dataset_uri for the retrain trigger', () => {
    expect(rule).toBeDefined();
    expect(rule.labels).toEqual({ severity: 'critical', component: 'drift' });
    expect(rule.expr).toMatch(/max by \(model, version, dataset_uri, reference_dataset_uri\)/);
    expect(rule.for).toBe('10m');
    expect(rule.annotations).toMatchObject({ dataset_uri: '{{ $labels.dataset_uri }}', reference_dataset_uri: '{{ $labels.reference_dataset_uri }}' });
    expect(rule.annotations?.summary).toMatch(/\$labels.model/);
    expect(rule.annotations?.description).toMatch(/aegis drift report/);
    expect(rule.annotations?.runbook_url).toMatch(/docs\/drift\.md#when-the-modeldrift-alert-fires$/);
  });

  it('reads metrics the model server exports, with the labels it joins on', () => {
    const m = createServerMetrics({ defaultMetrics: false });
    for (const name of rule.expr.match(/aegis_[a-z_]+/g)!) {
      const metric = m.registry.getSingleMetric(name) as unknown as { labelNames: string[] } | undefined;
      expect(metric, name).toBeDefined();
      expect(metric!.labelNames, name).toEqual(expect.arrayContaining(['model', 'version']));
    }
    expect((m.registry.getSingleMetric('aegis_model_drift_dataset_info') as unknown as { labelNames: string[] }).labelNames).toEqual(['model', 'version', 'dataset_uri', 'reference_dataset_uri']);
  });

  it('is in the generated PrometheusRule, group for group', () => {
    const generated = read('deploy/kubernetes/prometheusrule.yaml') as { spec: { groups: Group[] } };
    for (const g of groups) expect(generated.spec.groups.find((x) => x.name === g.name)).toEqual(g);
  });
});
