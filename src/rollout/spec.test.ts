/**
 * The rollout spec: the Argo vocabulary it accepts, its defaults, Argo's
 * metric validation rules, and errors that name the field.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isAegisError } from '../errors.js';
import { formatGoDuration, parseGoDuration, parsePauseDuration } from './duration.js';
import { DEFAULT_ROLLOUT_SPEC, fieldPath, parseRolloutSpec, pauseMs, readRolloutSpec, resolveAnalysis } from './spec.js';

const EXAMPLES = resolve(import.meta.dirname, '../../examples/rollouts');

/** A minimal valid spec with `extra` YAML appended under the given top-level shape. */
function spec(steps: string, templates = ''): string {
  return `apiVersion: aegis.dev/v1\nkind: Rollout\nstrategy:\n  canary:\n${steps}\n${templates ? `analysisTemplates:\n${templates}` : ''}`;
}
const STEPS = '    steps:\n      - setWeight: 50';
function template(metricYaml: string, name = 't'): string {
  return `  - name: ${name}\n    metrics:\n${metricYaml}`;
}
const EMBEDDED = '        provider: {embedded: {metric: error-rate}}';

describe('the default spec and the examples', () => {
  it('examples/rollouts/canary.yaml is DEFAULT_ROLLOUT_SPEC', async () => {
    expect(await readRolloutSpec(resolve(EXAMPLES, 'canary.yaml'))).toEqual(DEFAULT_ROLLOUT_SPEC);
  });

  it('DEFAULT_ROLLOUT_SPEC is 10 → 25 → 50 → 100 with 30 s pauses and background analysis on the embedded counters', () => {
    const c = DEFAULT_ROLLOUT_SPEC.strategy.canary;
    expect(c.steps.map((s) => s.setWeight ?? (s.pause ? `pause ${pauseMs(s)}` : '?'))).toEqual([10, 'pause 30000', 25, 'pause 30000', 50, 'pause 30000', 100]);
    const metrics = resolveAnalysis(DEFAULT_ROLLOUT_SPEC, c.analysis!);
    expect(metrics.map((m) => [m.name, m.successCondition, m.provider])).toEqual([
      ['error-rate', 'result < 0.05', { kind: 'embedded', metric: 'error-rate', track: 'canary', windowMs: 60_000, minSamples: 20 }],
      ['latency-p99', 'result < 0.5', { kind: 'embedded', metric: 'latency-p99', track: 'canary', windowMs: 60_000, minSamples: 20 }],
    ]);
    expect(Object.isFrozen(DEFAULT_ROLLOUT_SPEC.analysisTemplates[0]!.metrics[0])).toBe(true);
  });

  it('the Prometheus example resolves its args into address and query', async () => {
    const s = await readRolloutSpec(resolve(EXAMPLES, 'canary-prometheus.yaml'));
    const metrics = resolveAnalysis(s, s.strategy.canary.steps[4]!.analysis!);
    const p = metrics[0]!.provider;
    expect(p).toMatchObject({ kind: 'prometheus', address: 'http://prometheus.monitoring:9090', timeoutMs: 10_000 });
    expect(p.kind === 'prometheus' && p.query).toContain('model="example_multimodal",track="canary",code=~"5.."');
    expect(metrics[1]!.provider).toMatchObject({ timeoutMs: 30_000 }); // Argo's default
    expect(metrics[0]).toMatchObject({ intervalMs: 60_000, count: 5, failureLimit: 1, inconclusiveLimit: 0, consecutiveErrorLimit: 4 });
  });
});

describe('parsing', () => {
  it('reads every pause form Argo takes', () => {
    const s = parseRolloutSpec(spec('    steps:\n      - pause: {}\n      - pause:\n      - pause: {duration: 30}\n      - pause: {duration: "45"}\n      - pause: {duration: 5m}\n      - pause: {duration: 1h30m}\n      - setWeight: 100'));
    expect(s.strategy.canary.steps.map((st) => pauseMs(st))).toEqual([undefined, undefined, 30_000, 45_000, 300_000, 5_400_000, undefined]);
  });

  it('fills in Argo’s defaults', () => {
    const s = parseRolloutSpec(spec(STEPS, template(`      - name: m\n${EMBEDDED}\n      - name: p\n        provider: {prometheus: {address: "http://p:9090", query: up}}`)));
    const [m, p] = s.analysisTemplates[0]!.metrics;
    expect(m).toMatchObject({ failureLimit: 0, inconclusiveLimit: 0, consecutiveErrorLimit: 4, provider: { embedded: { metric: 'error-rate', track: 'canary', window: '60s', minSamples: 20 } } });
    const resolved = resolveAnalysis(s, { templates: [{ templateName: 't' }], args: [], dryRun: [] });
    expect(resolved[1]!.provider).toEqual({ kind: 'prometheus', address: 'http://p:9090', query: 'up', timeoutMs: 30_000 });
    expect(p!.count).toBeUndefined();
  });

  it('applies dryRun rules as Go’s unanchored regexp.MatchString does', () => {
    const s = parseRolloutSpec(
      spec(
        '    steps:\n      - analysis:\n          templates: [{templateName: t}]\n          dryRun: [{metricName: "latency"}]',
        template(`      - name: error-rate\n${EMBEDDED}\n      - name: latency-p99\n${EMBEDDED}`),
      ),
    );
    const metrics = resolveAnalysis(s, s.strategy.canary.steps[0]!.analysis!);
    expect(metrics.map((m) => [m.name, m.dryRun])).toEqual([
      ['error-rate', false],
      ['latency-p99', true],
    ]);
  });

  it('lets a step’s args override a template’s defaults', () => {
    const tpl = `  - name: t\n    args: [{name: threshold, value: "0.05"}, {name: addr, value: "http://a:9090"}]\n    metrics:\n      - name: m\n        successCondition: "result[0] < {{ args.threshold }}"\n        provider: {prometheus: {address: "{{args.addr}}", query: up}}`;
    const s = parseRolloutSpec(spec('    steps:\n      - analysis:\n          templates: [{templateName: t}]\n          args: [{name: threshold, value: "0.01"}]', tpl));
    const [m] = resolveAnalysis(s, s.strategy.canary.steps[0]!.analysis!);
    expect(m!.successCondition).toBe('result[0] < 0.01');
    expect(m!.provider).toMatchObject({ address: 'http://a:9090' });
  });

  it('fills model, version and stable-version from the rollout when the template leaves them open; other open args stay an error', () => {
    const tpl = `  - name: t\n    args: [{name: model}, {name: version}, {name: stable-version}]\n    metrics:\n      - name: m\n        successCondition: "result[0] < 0.05"\n        provider: {prometheus: {address: "http://p:9090", query: 'x{model="{{args.model}}",version="{{args.version}}",stable="{{args.stable-version}}"}'}}`;
    const s = parseRolloutSpec(spec('    steps:\n      - analysis:\n          templates: [{templateName: t}]', tpl));
    const [m] = resolveAnalysis(s, s.strategy.canary.steps[0]!.analysis!, 'analysis', { model: 'fraud', version: '1.3', 'stable-version': '1.2' });
    expect(m!.provider).toMatchObject({ query: 'x{model="fraud",version="1.3",stable="1.2"}' });
    const open = `  - name: t\n    args: [{name: threshold}]\n    metrics:\n      - name: m\n        successCondition: "result[0] < {{args.threshold}}"\n        provider: {prometheus: {address: "http://p:9090", query: up}}`;
    expect(() => parseRolloutSpec(spec('    steps:\n      - analysis:\n          templates: [{templateName: t}]', open))).toThrow(/argument "threshold" .* has no value/);
  });

  it('refuses an ad-hoc reference to a template that does not exist, naming it', () => {
    expect(() => resolveAnalysis(DEFAULT_ROLLOUT_SPEC, { templates: [{ templateName: 'nope' }], args: [], dryRun: [] })).toThrow(
      /cannot resolve analysis: analysis\.templates\[0\]\.templateName: no analysis template named "nope" \(defined: canary-health\)/,
    );
  });

  it('names a missing file', async () => {
    await expect(readRolloutSpec('/nonexistent/rollout.yaml')).rejects.toSatisfy((e) => isAegisError(e, 'FILE_NOT_FOUND'));
  });
});

describe('errors name the field', () => {
  const metric = (yaml: string) => spec(STEPS, template(yaml));
  const table: Array<[string, string, string, RegExp]> = [
    ['not YAML', ': : :', '', /not valid YAML/],
    ['not a mapping', '- a\n- b', '', /not a mapping/],
    ['wrong apiVersion', spec(STEPS).replace('aegis.dev/v1', 'argoproj.io/v1alpha1'), 'apiVersion', /expected "aegis\.dev\/v1"/],
    ['wrong kind', spec(STEPS).replace('kind: Rollout', 'kind: AnalysisTemplate'), 'kind', /expected "Rollout"/],
    ['unknown top-level key', `${spec(STEPS)}\nreplicas: 3`, '(root)', /Unrecognized key: "replicas"/],
    ['no steps', spec('    steps: []'), 'strategy.canary.steps', /at least one step/],
    ['setWeight above 100', spec('    steps:\n      - setWeight: 101'), 'strategy.canary.steps[0].setWeight', /<=100/],
    ['setWeight below 0', spec('    steps:\n      - setWeight: -1'), 'strategy.canary.steps[0].setWeight', />=0/],
    ['setWeight not whole', spec('    steps:\n      - setWeight: 12.5'), 'strategy.canary.steps[0].setWeight', /int/],
    ['two kinds in one step', spec('    steps:\n      - setWeight: 10\n        pause: {}'), 'strategy.canary.steps[0]', /exactly one of setWeight, pause or analysis, got setWeight and pause/],
    ['an empty step', spec('    steps:\n      - {}'), 'strategy.canary.steps[0]', /needs one of setWeight, pause or analysis/],
    ['an unsupported step kind', spec('    steps:\n      - setWeight: 10\n      - experiment: {}'), 'strategy.canary.steps[1]', /Unrecognized key: "experiment"/],
    ['a bad pause duration', spec('    steps:\n      - pause: {duration: 5 minutes}'), 'strategy.canary.steps[0].pause.duration', /number of seconds or a duration such as 30s/],
    ['a negative pause', spec('    steps:\n      - pause: {duration: -5}'), 'strategy.canary.steps[0].pause.duration', /got -5/],
    ['startingStep past the end', spec('    steps:\n      - setWeight: 10\n    analysis:\n      templates: [{templateName: t}]\n      startingStep: 1', template(`      - name: m\n${EMBEDDED}`)), 'strategy.canary.analysis.startingStep', /below 1/],
    ['an unknown template', spec('    steps:\n      - analysis: {templates: [{templateName: nope}]}', template(`      - name: m\n${EMBEDDED}`)), 'strategy.canary.steps[0].analysis.templates[0].templateName', /no analysis template named "nope" \(defined: t\)/],
    ['a ref without templates', spec('    steps:\n      - analysis: {templates: []}'), 'strategy.canary.steps[0].analysis.templates', /at least one template/],
    ['two templates with one name', spec(STEPS, `${template(`      - name: m\n${EMBEDDED}`)}\n${template(`      - name: n\n${EMBEDDED}`)}`), 'analysisTemplates[1].name', /duplicate template name "t"/],
    ['two metrics with one name', metric(`      - name: m\n${EMBEDDED}\n      - name: m\n${EMBEDDED}`), 'analysisTemplates[0].metrics[1].name', /duplicate metric name "m"/],
    [
      'one metric name in two templates of a ref',
      spec('    steps:\n      - analysis: {templates: [{templateName: a}, {templateName: b}]}', `${template(`      - name: m\n${EMBEDDED}`, 'a')}\n${template(`      - name: m\n${EMBEDDED}`, 'b')}`),
      'strategy.canary.steps[0].analysis.templates',
      /templates a and b both have a metric named "m"/,
    ],
    ['a template without metrics', spec(STEPS, '  - name: t\n    metrics: []'), 'analysisTemplates[0].metrics', /at least one metric/],
    ['a bad metric name', metric(`      - name: "bad name"\n${EMBEDDED}`), 'analysisTemplates[0].metrics[0].name', /letters, digits/],
    ['a bad interval', metric(`      - name: m\n        interval: 5 minutes\n${EMBEDDED}`), 'analysisTemplates[0].metrics[0].interval', /duration such as 30s/],
    ['a zero interval', metric(`      - name: m\n        interval: 0s\n${EMBEDDED}`), 'analysisTemplates[0].metrics[0].interval', /longer than 0/],
    ['a numeric interval (Argo takes strings)', metric(`      - name: m\n        interval: 30\n${EMBEDDED}`), 'analysisTemplates[0].metrics[0].interval', /expected string/],
    ['a bad initialDelay', metric(`      - name: m\n        initialDelay: soon\n${EMBEDDED}`), 'analysisTemplates[0].metrics[0].initialDelay', /duration/],
    ['count > 1 without interval (Argo ValidateMetric)', metric(`      - name: m\n        count: 3\n${EMBEDDED}`), 'analysisTemplates[0].metrics[0].interval', /required when count > 1/],
    ['count below failureLimit', metric(`      - name: m\n        interval: 1m\n        count: 2\n        failureLimit: 3\n${EMBEDDED}`), 'analysisTemplates[0].metrics[0].count', /must be >= failureLimit \(3\)/],
    ['count below inconclusiveLimit', metric(`      - name: m\n        interval: 1m\n        count: 2\n        inconclusiveLimit: 3\n${EMBEDDED}`), 'analysisTemplates[0].metrics[0].count', /must be >= inconclusiveLimit \(3\)/],
    ['a negative failureLimit', metric(`      - name: m\n        failureLimit: -1\n${EMBEDDED}`), 'analysisTemplates[0].metrics[0].failureLimit', />=0/],
    ['a negative consecutiveErrorLimit', metric(`      - name: m\n        consecutiveErrorLimit: -1\n${EMBEDDED}`), 'analysisTemplates[0].metrics[0].consecutiveErrorLimit', />=0/],
    ['an unknown metric field', metric(`      - name: m\n        successLimit: 3\n${EMBEDDED}`), 'analysisTemplates[0].metrics[0]', /Unrecognized key: "successLimit"/],
    ['no provider', metric('      - name: m\n        provider: {}'), 'analysisTemplates[0].metrics[0].provider', /exactly one provider: prometheus or embedded/],
    ['two providers', metric('      - name: m\n        provider: {embedded: {metric: error-rate}, prometheus: {address: "http://p", query: up}}'), 'analysisTemplates[0].metrics[0].provider', /got prometheus and embedded/],
    ['an unknown provider', metric('      - name: m\n        provider: {datadog: {query: x}}'), 'analysisTemplates[0].metrics[0].provider', /Unrecognized key: "datadog"/],
    ['an unknown embedded metric', metric('      - name: m\n        provider: {embedded: {metric: cpu}}'), 'analysisTemplates[0].metrics[0].provider.embedded.metric', /"request-rate"\|"error-rate"/],
    ['an unknown track', metric('      - name: m\n        provider: {embedded: {metric: error-rate, track: blue}}'), 'analysisTemplates[0].metrics[0].provider.embedded.track', /"canary"\|"stable"/],
    ['a window longer than the counters keep', metric('      - name: m\n        provider: {embedded: {metric: error-rate, window: 1h}}'), 'analysisTemplates[0].metrics[0].provider.embedded.window', /at most 15m/],
    ['a negative minSamples', metric('      - name: m\n        provider: {embedded: {metric: error-rate, minSamples: -1}}'), 'analysisTemplates[0].metrics[0].provider.embedded.minSamples', />=0/],
    ['a Prometheus query missing', metric('      - name: m\n        provider: {prometheus: {address: "http://p:9090"}}'), 'analysisTemplates[0].metrics[0].provider.prometheus.query', /expected string/],
    [
      'a Prometheus address that is not a URL',
      spec('    steps:\n      - analysis: {templates: [{templateName: t}]}', template('      - name: m\n        provider: {prometheus: {address: "prometheus:9090", query: up}}')),
      'analysisTemplates[0].metrics[0].provider.prometheus.address',
      /http:\/\/ or https:\/\/ URL, got "prometheus:9090"/,
    ],
    ['a negative timeout', metric('      - name: m\n        provider: {prometheus: {address: "http://p", query: up, timeout: -1}}'), 'analysisTemplates[0].metrics[0].provider.prometheus.timeout', /./],
    ['a condition outside the grammar', metric(`      - name: m\n        successCondition: "result <"\n${EMBEDDED}`), 'analysisTemplates[0].metrics[0].successCondition', /unexpected end of expression \(column 9/],
    ['a condition with a string', metric(`      - name: m\n        failureCondition: "result == 'true'"\n${EMBEDDED}`), 'analysisTemplates[0].metrics[0].failureCondition', /strings are not supported/],
    [
      'a condition that breaks once its args are substituted',
      spec('    steps:\n      - analysis:\n          templates: [{templateName: t}]\n          args: [{name: x, value: "0.05 0.1"}]', `  - name: t\n    args: [{name: x}]\n    metrics:\n      - name: m\n        successCondition: "result < {{args.x}}"\n${EMBEDDED}`),
      'analysisTemplates[0].metrics[0].successCondition',
      /after substituting the args of strategy\.canary\.steps\[0\]\.analysis/,
    ],
    [
      'an argument without a value',
      spec('    steps:\n      - analysis: {templates: [{templateName: t}]}', `  - name: t\n    args: [{name: x}]\n    metrics:\n      - name: m\n        successCondition: "result < {{args.x}}"\n${EMBEDDED}`),
      'strategy.canary.steps[0].analysis.args',
      /argument "x" of t has no value/,
    ],
    [
      'a placeholder for an undeclared argument',
      spec('    steps:\n      - analysis: {templates: [{templateName: t}]}', template(`      - name: m\n        successCondition: "result < {{args.y}}"\n${EMBEDDED}`)),
      'analysisTemplates[0].metrics[0].successCondition',
      /uses \{\{args\.y\}\} but strategy\.canary\.steps\[0\]\.analysis gives no value for it/,
    ],
    ['a dryRun rule that matches nothing', spec('    steps:\n      - analysis: {templates: [{templateName: t}], dryRun: [{metricName: zzz}]}', template(`      - name: m\n${EMBEDDED}`)), 'strategy.canary.steps[0].analysis.dryRun[0].metricName', /"zzz" matches none of the metrics \(m\)/],
    ['a dryRun rule that is not a regex', spec('    steps:\n      - analysis: {templates: [{templateName: t}], dryRun: [{metricName: "(("}]}', template(`      - name: m\n${EMBEDDED}`)), 'strategy.canary.steps[0].analysis.dryRun[0].metricName', /not a regular expression/],
  ];
  it.each(table)('%s', (_name, yaml, field, message) => {
    try {
      parseRolloutSpec(yaml, 'rollout.yaml');
      expect.unreachable('parsed');
    } catch (err) {
      expect(isAegisError(err, 'ROLLOUT_SPEC_INVALID')).toBe(true);
      const e = err as { message: string; hint?: string; details: Record<string, unknown> };
      expect(e.message).toMatch(/^rollout spec rollout\.yaml is invalid: /);
      if (field) {
        expect(e.details.field).toBe(field);
        expect(e.message).toContain(`: ${field}: `);
        expect(e.hint).toContain(`Fix "${field}" in rollout.yaml`);
      }
      expect(e.message).toMatch(message);
    }
  });

  it('formats paths as a reader writes them', () => {
    expect(fieldPath(['strategy', 'canary', 'steps', 2, 'pause'])).toBe('strategy.canary.steps[2].pause');
    expect(fieldPath([])).toBe('(root)');
  });
});

describe('durations (Go’s time.ParseDuration, as Argo)', () => {
  it.each([
    ['30s', 30_000],
    ['5m', 300_000],
    ['1h30m', 5_400_000],
    ['500ms', 500],
    ['1.5s', 1500],
    ['0', 0],
    ['100us', 0.1],
    ['2h', 7_200_000],
  ])('%s is %d ms', (text, ms) => expect(parseGoDuration(text)).toBe(ms));

  it.each(['', '30', '5 m', '1d', '-5s', 'm', 's30', '1h 30m'])('refuses %j', (text) => expect(parseGoDuration(text)).toBeUndefined());

  it('takes a pause as seconds or a duration', () => {
    expect([parsePauseDuration(30), parsePauseDuration('30'), parsePauseDuration('2m'), parsePauseDuration(1.5), parsePauseDuration('x')]).toEqual([30_000, 30_000, 120_000, undefined, undefined]);
  });

  it('formats for messages', () => {
    expect([formatGoDuration(60_000), formatGoDuration(90_000), formatGoDuration(1500), formatGoDuration(250), formatGoDuration(3_600_000)]).toEqual(['1m', '1m30s', '1.5s', '250ms', '1h0m']);
  });

  it('keeps the example in the README of this folder honest', () => {
    // canary.yaml documents itself as DEFAULT_ROLLOUT_SPEC; the first test checks the content, this one the claim.
    expect(readFileSync(resolve(EXAMPLES, 'canary.yaml'), 'utf8')).toMatch(/DEFAULT_ROLLOUT_SPEC/);
  });
});
