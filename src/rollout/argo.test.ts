import { readFileSync } from 'node:fs';
import { AnalysisTemplate } from '@kubernetes-models/argo-rollouts/argoproj.io/v1alpha1/AnalysisTemplate';
import { Rollout } from '@kubernetes-models/argo-rollouts/argoproj.io/v1alpha1/Rollout';
import { Service } from 'kubernetes-models/v1/Service';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { TRACK_LABEL } from '../serving/track-labels.js';
import { failure } from '../test-support/errors.js';
import { argoVerdict } from './analysis/judge.js';
import { ARGO_TRACK_LABEL, embeddedQuery, guardedConditions, renderArgoRollout } from './argo.js';
import { DEFAULT_ROLLOUT_SPEC, parseRolloutSpec, validateRolloutSpec, type RolloutSpec } from './spec.js';

const ARCHIVE = 's3://models/aegis/model-archives/example_multimodal/0.2/model.tar.gz';
const EXAMPLE_PROMETHEUS = new URL('../../examples/rollouts/canary-prometheus.yaml', import.meta.url);

type Doc = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string }; spec: Record<string, any> }; // eslint-disable-line @typescript-eslint/no-explicit-any

function render(spec: RolloutSpec = DEFAULT_ROLLOUT_SPEC, extra: Partial<Parameters<typeof renderArgoRollout>[1]> = {}): Doc[] {
  const text = renderArgoRollout(spec, { model: 'example_multimodal', version: '0.2', archiveUri: ARCHIVE, image: 'registry.example/aegis:0.1.0', namespace: 'aegis', ...extra });
  return YAML.parseAllDocuments(text).map((d) => d.toJS() as Doc);
}
const byKind = (docs: Doc[], kind: string) => docs.filter((d) => d.kind === kind);

/** Argo's arg resolution for one analysis ref: every template arg needs a value, from the template or the ref. */
function unresolvedArgs(docs: Doc[], ref: { templates: { templateName: string }[]; args?: { name: string; value?: string }[] }): string[] {
  const passed = new Map((ref.args ?? []).map((a) => [a.name, a.value]));
  return ref.templates.flatMap((tr) => {
    const t = docs.find((d) => d.kind === 'AnalysisTemplate' && d.metadata.name === tr.templateName);
    if (!t) return [`no AnalysisTemplate ${tr.templateName}`];
    return (t.spec.args as { name: string; value?: string }[]).filter((a) => a.value === undefined && passed.get(a.name) === undefined).map((a) => `${tr.templateName}: ${a.name}`);
  });
}

describe('aegis rollout render-argo', () => {
  it('renders the default spec as a valid Rollout, Service and AnalysisTemplate (Argo Rollouts and Kubernetes schemas)', () => {
    const docs = render();
    // Template names carry the model's: a second model rendered into the namespace does not replace them.
    expect(docs.map((d) => `${d.kind}/${d.metadata.name}`)).toEqual(['Rollout/example-multimodal', 'Service/example-multimodal', 'AnalysisTemplate/example-multimodal-canary-health']);
    for (const d of docs) expect(d.metadata.namespace).toBe('aegis');
    const Model = { Rollout, Service, AnalysisTemplate } as unknown as Record<string, new (o: unknown) => { validate(): void }>;
    for (const d of docs) expect(() => new Model[d.kind]!(d).validate(), d.kind).not.toThrow();
    // The schema check can fail: a step with a string weight is refused.
    const bad = structuredClone(docs[0]!);
    bad.spec.strategy.canary.steps[0] = { setWeight: 'ten' };
    expect(() => new Rollout(bad as never).validate()).toThrow(/setWeight/);
  });

  it('carries the steps and the background analysis over field for field, with the runtime args filled in', () => {
    const [rollout, , template] = render();
    const canary = rollout!.spec.strategy.canary;
    expect(canary.steps).toEqual(DEFAULT_ROLLOUT_SPEC.strategy.canary.steps);
    expect(canary.steps).toContainEqual({ pause: { duration: '30s' } });
    expect(canary.analysis).toEqual({
      templates: [{ templateName: 'example-multimodal-canary-health' }],
      args: [
        { name: 'model', value: 'example_multimodal' },
        { name: 'version', value: '0.2' },
      ],
      startingStep: 0,
    });
    expect(template!.spec.metrics.map((m: { name: string; interval: string; initialDelay: string; failureLimit: number; inconclusiveLimit: number }) => [m.name, m.interval, m.initialDelay, m.failureLimit, m.inconclusiveLimit])).toEqual([
      ['error-rate', '10s', '10s', 2, 2],
      ['latency-p99', '10s', '10s', 2, 2],
    ]);
  });

  it('the pods fetch and verify the archive (no database access), follow their track label, and Argo labels canary and stable pods', () => {
    const [rollout] = render();
    const pod = rollout!.spec.template.spec;
    const c = pod.containers[0];
    expect(c.args.slice(0, 5)).toEqual(['serve', '--model', ARCHIVE, '--name', 'example_multimodal']);
    expect(c.args).toEqual(expect.arrayContaining(['--trust', '--track-from', '--no-repository-load']));
    expect(c.envFrom, 'no Secret: the pods need the store and the trust policy, not the database').toBeUndefined();
    expect(JSON.stringify(pod)).not.toMatch(/aegis-db|AEGIS_DATABASE_URL/);
    expect(c.readinessProbe.httpGet.path).toBe('/v2/health/ready');
    // Fetching and verifying a large model takes minutes: liveness counts only once the server is up.
    expect(c.startupProbe.periodSeconds * c.startupProbe.failureThreshold).toBeGreaterThanOrEqual(600);
    expect(c.livenessProbe.initialDelaySeconds).toBeUndefined();
    expect(rollout!.spec.strategy.canary.canaryMetadata).toEqual({ labels: { [TRACK_LABEL]: 'canary' } });
    expect(rollout!.spec.strategy.canary.stableMetadata).toEqual({ labels: { [TRACK_LABEL]: 'stable' } });
    expect(ARGO_TRACK_LABEL).toBe(TRACK_LABEL);
    const labelsFile = c.args[c.args.indexOf('--track-from') + 1] as string;
    const mount = c.volumeMounts.find((m: { mountPath: string }) => labelsFile.startsWith(`${m.mountPath}/`));
    const volume = pod.volumes.find((v: { name: string }) => v.name === mount.name);
    expect(volume.downwardAPI.items).toEqual([{ path: labelsFile.slice(mount.mountPath.length + 1), fieldRef: { fieldPath: 'metadata.labels' } }]);
    expect(c.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
  });

  it('an embedded metric becomes a Prometheus query of the canary version, NaN below minSamples', () => {
    const [, , template] = render();
    const m = template!.spec.metrics[0];
    expect(m.provider.prometheus.address).toBe('http://prometheus-operated.monitoring:9090');
    expect(m.provider.prometheus.query).toBe(embeddedQuery('error-rate', 'canary', '60s', 20));
    expect(m.provider.prometheus.query).toContain('version="{{args.version}}"');
    expect(m.provider.prometheus.query).toContain('>= 20');
    expect(embeddedQuery('request-rate', 'canary', '60s', 20)).not.toContain('>= 20'); // a low rate is the measurement itself
    expect(embeddedQuery('latency-p90', 'stable', '2m', 0)).toBe(
      'scalar(histogram_quantile(0.9, sum by (le) (rate(aegis_inference_request_duration_seconds_bucket{model="{{args.model}}",version="{{args.stable-version}}"}[2m]))))',
    );
    expect(template!.spec.args).toEqual([{ name: 'model' }, { name: 'version' }]);
  });

  it('Argo judges the rendered conditions as Aegis judges the embedded metric: NaN Inconclusive, good Successful, bad Failed', () => {
    for (const [success, fail] of [
      ['result < 0.05', undefined],
      [undefined, 'result >= 0.05'],
      ['result < 0.05', 'result >= 0.10'],
    ] as const) {
      const c = guardedConditions(success, fail);
      expect(argoVerdict(Number.NaN, c).phase, `${success} / ${fail}: NaN`).toBe('Inconclusive');
      expect(argoVerdict(0.01, c).phase, `${success} / ${fail}: 0.01`).toBe('Successful');
      expect(argoVerdict(0.2, c).phase, `${success} / ${fail}: 0.2`).toBe('Failed');
    }
    // Between the two conditions of the third: neither, as in Argo.
    expect(argoVerdict(0.07, guardedConditions('result < 0.05', 'result >= 0.10')).phase).toBe('Inconclusive');
    const none = guardedConditions(undefined, undefined);
    expect([argoVerdict(Number.NaN, none).phase, argoVerdict(3, none).phase]).toEqual(['Inconclusive', 'Successful']);
  });

  it('the rendered AnalysisTemplate reads back as an Aegis template: one spec, both ways', () => {
    const docs = render();
    const t = byKind(docs, 'AnalysisTemplate')[0]!;
    const back = validateRolloutSpec({
      apiVersion: 'aegis.dev/v1',
      kind: 'Rollout',
      strategy: { canary: { steps: [{ setWeight: 10 }], analysis: { templates: [{ templateName: t.metadata.name }], args: [{ name: 'model', value: 'm' }, { name: 'version', value: '1' }] } } },
      analysisTemplates: [{ name: t.metadata.name, ...t.spec }],
    });
    expect(back.analysisTemplates[0]!.metrics.map((m) => Object.keys(m.provider))).toEqual([['prometheus'], ['prometheus']]);
  });

  it('copies Prometheus metrics as written, fills every template arg from the refs, and names conditions that leave no data to Argo', () => {
    const spec = parseRolloutSpec(readFileSync(EXAMPLE_PROMETHEUS, 'utf8'));
    const docs = render(spec);
    const [rollout] = docs;
    const t = byKind(docs, 'AnalysisTemplate')[0]!;
    expect(t.spec.metrics[0].provider.prometheus).toEqual({ ...spec.analysisTemplates[0]!.metrics[0]!.provider.prometheus, timeout: 10 });
    expect(t.spec.metrics[0].successCondition).toBe(spec.analysisTemplates[0]!.metrics[0]!.successCondition);
    const refs = [rollout!.spec.strategy.canary.analysis, ...rollout!.spec.strategy.canary.steps.filter((s: { analysis?: unknown }) => s.analysis).map((s: { analysis: unknown }) => s.analysis)];
    expect(refs).toHaveLength(2);
    for (const r of refs) expect(unresolvedArgs(docs, r)).toEqual([]);
    expect(rollout!.spec.strategy.canary.analysis.startingStep).toBe(1);

    const text = renderArgoRollout(spec, { model: 'm', version: '2', archiveUri: ARCHIVE, image: 'i' });
    expect(text).not.toMatch(/do not say what no data/); // the example decides it (len(result) > 0)
    const loose = structuredClone(spec) as RolloutSpec;
    loose.analysisTemplates[0]!.metrics[1]!.successCondition = 'all(result, {# < 0.5})';
    delete (loose.analysisTemplates[0]!.metrics[1] as { failureCondition?: string }).failureCondition;
    expect(renderArgoRollout(loose, { model: 'm', version: '2', archiveUri: ARCHIVE, image: 'i' })).toMatch(/# canary-slo\/latency-p99: the conditions do not say what no data/);
  });

  it('a metric of the stable track needs --stable-version; the weights that pods cannot give exactly are named', async () => {
    const spec = structuredClone(DEFAULT_ROLLOUT_SPEC) as RolloutSpec;
    spec.analysisTemplates[0]!.metrics[1]!.provider = { embedded: { metric: 'latency-p99', track: 'stable', window: '60s', minSamples: 20 } };
    expect(await failure((async () => render(spec))())).toMatchObject({ code: 'USAGE', message: expect.stringMatching(/--stable-version/) });
    const docs = render(spec, { stableVersion: '0.1' });
    expect(docs[0]!.spec.strategy.canary.analysis.args).toContainEqual({ name: 'stable-version', value: '0.1' });
    expect(renderArgoRollout(DEFAULT_ROLLOUT_SPEC, { model: 'm', version: '2', archiveUri: ARCHIVE, image: 'i', replicas: 4 })).toMatch(/# Weight 10 % of 4 pods is not a whole number/);
    expect(renderArgoRollout(DEFAULT_ROLLOUT_SPEC, { model: 'm', version: '2', archiveUri: ARCHIVE, image: 'i', replicas: 20 })).not.toMatch(/whole number/);
  });

  it('a ref arg without a value is left out (Argo would read it as "" over the template default)', () => {
    const spec = structuredClone(DEFAULT_ROLLOUT_SPEC) as RolloutSpec;
    spec.analysisTemplates[0]!.args = [{ name: 'threshold', value: '0.05' }];
    spec.strategy.canary.analysis!.args = [{ name: 'threshold' }];
    const args = render(spec)[0]!.spec.strategy.canary.analysis.args as { name: string; value?: string }[];
    expect(args.map((a) => a.name)).toEqual(['model', 'version']);
    expect(args.every((a) => typeof a.value === 'string')).toBe(true);
    expect(byKind(render(spec), 'AnalysisTemplate')[0]!.spec.args).toContainEqual({ name: 'threshold', value: '0.05' });
  });

  it('warns when the archive is not in an object store the pods can reach', () => {
    expect(renderArgoRollout(DEFAULT_ROLLOUT_SPEC, { model: 'm', version: '2', archiveUri: 'file:///home/me/.aegis/artifacts/x.tar.gz', image: 'i' })).toMatch(/# WARNING: file:\/\/\/home.* is not an s3:\/\/ URI/);
    expect(renderArgoRollout(DEFAULT_ROLLOUT_SPEC, { model: 'm', version: '2', archiveUri: ARCHIVE, image: 'i' })).not.toMatch(/WARNING/);
  });

  it('object names are Kubernetes names; a model name that cannot be one is refused', async () => {
    expect(render(DEFAULT_ROLLOUT_SPEC, { model: 'Fraud_Detector.v2' })[0]!.metadata.name).toBe('fraud-detector-v2');
    expect(await failure((async () => render(DEFAULT_ROLLOUT_SPEC, { model: 'x'.repeat(64) }))())).toMatchObject({ code: 'USAGE' });
  });
});
