// Types only (erased at run time): the object literals below are checked against Argo Rollouts' and Kubernetes'
// API types, so a misspelled field fails to compile instead of being refused by `kubectl apply`.
import type { IAnalysisTemplate } from '@kubernetes-models/argo-rollouts/argoproj.io/v1alpha1/AnalysisTemplate';
import type { IRollout } from '@kubernetes-models/argo-rollouts/argoproj.io/v1alpha1/Rollout';
import type { IService } from 'kubernetes-models/v1/Service';
import { stringify } from 'yaml';
import { AegisError } from '../errors.js';
import { conditionsHandleMissingData } from './analysis/judge.js';
import { QUANTILES } from './providers/embedded/index.js';
import { parseGoDuration } from './duration.js';
import { argNamesIn, RUNTIME_ARGS, type AnalysisRef, type AnalysisTemplateSpec, type EmbeddedMetricName, type MetricSpec, type RolloutSpec } from './spec.js';

/**
 * A rollout spec rendered for a cluster: an Argo Rollouts `Rollout` of the
 * model server (`aegis serve`, which fetches and verifies the model before it
 * listens), a Service in front of it, and one `AnalysisTemplate` per template
 * of the spec. The spec is written in Argo's vocabulary, so steps, background
 * analysis, refs, args, dryRun and the metrics' timing and limits carry over
 * field for field, and `prometheus` metrics are copied as they are.
 *
 * `embedded` metrics (the Aegis gateway's own counters) do not exist in a
 * cluster: each becomes a Prometheus query over the counters every model
 * server exports (aegis_inference_requests_total,
 * aegis_inference_request_duration_seconds_bucket), selecting the canary by
 * its version (Argo gives every pod the same template, so pods cannot label
 * themselves canary or stable; the versions differ). The minimum-sample guard
 * is kept: the query returns NaN below `minSamples` requests in the window,
 * and the conditions are rewritten so that NaN matches neither of them, which
 * Argo judges Inconclusive, as the embedded provider does (a written-out
 * spec is in docs/rollouts.md, "On Kubernetes").
 */
export interface ArgoRolloutOptions {
  /** Registered model name. */
  model: string;
  /** The version this rollout brings in (the canary). */
  version: string;
  /**
   * Its signed archive (s3://…): the pods fetch and verify it, so they need no
   * database access, only read access to the store (IRSA) and the trust policy.
   */
  archiveUri: string;
  /** The version in production now; needed when a metric reads the stable track. */
  stableVersion?: string;
  /** The Aegis image (`aegis` is its entrypoint). */
  image: string;
  namespace?: string;
  /** Pods of the model server. Without a traffic router Argo splits by replicas: 10 % needs 10. */
  replicas?: number;
  /** Prometheus for the metrics that were `embedded` in the spec. */
  prometheusAddress?: string;
  serviceAccount?: string;
  /** ConfigMap with trust.yaml and the keys it names (as deploy/kubernetes uses). */
  trustConfigMap?: string;
}

export const DEFAULT_PROMETHEUS_ADDRESS = 'http://prometheus-operated.monitoring:9090';
const PORT = 8080;
const TRUST_MOUNT = '/etc/aegis/trust';
const PODINFO_MOUNT = '/etc/podinfo';
/** The pod label `aegis serve --track-from` reads (serving's TRACK_LABEL; a test holds them equal). */
export const ARGO_TRACK_LABEL = 'aegis.dev/track';
const LABEL_VALUE = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;

/** Kubernetes object names: DNS-1123 labels (lower case, digits, '-'). */
export function dnsName(text: string, what: string): string {
  const name = text
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '');
  if (name === '' || name.length > 63) {
    throw new AegisError('USAGE', `${what} ${JSON.stringify(text)} does not make a Kubernetes object name (1-63 of a-z, 0-9, -)`, { hint: 'Use a shorter name made of letters, digits, "-" or "_".' });
  }
  return name;
}

// ---------------------------------------------------------------------------
// embedded → Prometheus

/**
 * PromQL giving, as a scalar, what the embedded provider measures, over the
 * model servers' own counters of one version (`{{args.version}}` for the
 * canary track, `{{args.stable-version}}` for stable). Below `minSamples`
 * requests in the window it is NaN (except request-rate, which is never
 * guarded, and is 0 without traffic as the gateway's counter is).
 */
export function embeddedQuery(metric: EmbeddedMetricName, track: 'canary' | 'stable', window: string, minSamples: number): string {
  const sel = `model="{{args.model}}",version="{{args.${track === 'canary' ? 'version' : 'stable-version'}}}"`;
  const requests = `sum(rate(aegis_inference_requests_total{${sel}}[${window}]))`;
  if (metric === 'request-rate') return `scalar(${requests} or vector(0))`;
  const value =
    metric === 'error-rate'
      ? // No 5xx series yet is a rate of 0, not "no data".
        `(sum(rate(aegis_inference_requests_total{${sel},code=~"5.."}[${window}])) or vector(0)) / ${requests}`
      : `histogram_quantile(${QUANTILES[metric]}, sum by (le) (rate(aegis_inference_request_duration_seconds_bucket{${sel}}[${window}])))`;
  // The guard: an empty vector (→ NaN) unless the window holds minSamples requests.
  const enough = `sum(increase(aegis_inference_requests_total{${sel}}[${window}])) >= ${minSamples}`;
  return minSamples > 0 ? `scalar((${value}) and on() (${enough}))` : `scalar(${value})`;
}

/**
 * The conditions of a metric that was embedded, for a result that is NaN when
 * there is too little to judge: NaN satisfies neither (Argo: Inconclusive);
 * otherwise the verdict is the one the spec's conditions give. With only one
 * condition written, the other is its negation, so a bad value still fails.
 */
export function guardedConditions(success: string | undefined, failure: string | undefined): { successCondition: string; failureCondition: string } {
  const known = '!isNaN(result)';
  if (success !== undefined && failure !== undefined) return { successCondition: `${known} && (${success})`, failureCondition: `${known} && (${failure})` };
  if (success !== undefined) return { successCondition: `${known} && (${success})`, failureCondition: `${known} && !(${success})` };
  if (failure !== undefined) return { successCondition: `${known} && !(${failure})`, failureCondition: `${known} && (${failure})` };
  // No condition: Argo (and Aegis) count any measurement Successful; a NaN says nothing either way.
  return { successCondition: known, failureCondition: 'false' };
}

// ---------------------------------------------------------------------------
// The documents

type Canary = NonNullable<NonNullable<IRollout['spec']['strategy']>['canary']>;
type Step = NonNullable<Canary['steps']>[number];
type RolloutAnalysis = NonNullable<Canary['analysis']>;
type ArgoMetric = NonNullable<IAnalysisTemplate['spec']['metrics']>[number];

function seconds(timeout: number | string): number {
  return typeof timeout === 'number' ? Math.ceil(timeout) : Math.ceil(parseGoDuration(timeout)! / 1000);
}

function argoMetric(m: MetricSpec, prometheusAddress: string): ArgoMetric {
  const common = {
    name: m.name,
    ...(m.interval ? { interval: m.interval } : {}),
    ...(m.count !== undefined ? { count: m.count } : {}),
    ...(m.initialDelay ? { initialDelay: m.initialDelay } : {}),
    failureLimit: m.failureLimit,
    inconclusiveLimit: m.inconclusiveLimit,
    consecutiveErrorLimit: m.consecutiveErrorLimit,
  };
  if (m.provider.prometheus) {
    const p = m.provider.prometheus;
    return {
      ...common,
      ...(m.successCondition ? { successCondition: m.successCondition } : {}),
      ...(m.failureCondition ? { failureCondition: m.failureCondition } : {}),
      provider: { prometheus: { address: p.address, query: p.query, ...(p.timeout !== undefined ? { timeout: seconds(p.timeout) } : {}) } },
    };
  }
  const e = m.provider.embedded!;
  return {
    ...common,
    ...guardedConditions(m.successCondition, m.failureCondition),
    provider: { prometheus: { address: prometheusAddress, query: embeddedQuery(e.metric, e.track, e.window, e.minSamples) } },
  };
}

/** The runtime args (model, version, stable-version) a template's metrics use, embedded ones included. */
function runtimeArgsUsed(t: AnalysisTemplateSpec): Set<string> {
  const used = new Set<string>();
  for (const m of t.metrics) {
    if (m.provider.embedded) {
      used.add('model');
      used.add(m.provider.embedded.track === 'canary' ? 'version' : 'stable-version');
    }
    const named = argNamesIn(JSON.stringify(m));
    for (const name of RUNTIME_ARGS) if (named.has(name)) used.add(name);
  }
  return used;
}

export function renderArgoRollout(spec: RolloutSpec, o: ArgoRolloutOptions): string {
  const name = dnsName(o.model, 'model name');
  const replicas = o.replicas ?? 4;
  if (!Number.isInteger(replicas) || replicas < 1) throw new AegisError('USAGE', `replicas must be a positive integer (got ${o.replicas})`, { hint: 'Pass e.g. --replicas 4.' });
  const prometheusAddress = o.prometheusAddress ?? DEFAULT_PROMETHEUS_ADDRESS;
  // Per model: a second model's render in the same namespace must not replace this one's templates.
  const templateName = (t: string) => dnsName(`${name}-${t}`, 'analysis template name (model name + template name)');
  const runtime: Record<string, string | undefined> = { model: o.model, version: o.version, 'stable-version': o.stableVersion };

  // Each template's args: those it declares, and the runtime args its metrics use (declared without a value).
  const argsOf = new Map(
    spec.analysisTemplates.map((t) => {
      const declared = new Map(t.args.map((a) => [a.name, a.value]));
      for (const a of runtimeArgsUsed(t)) if (!declared.has(a)) declared.set(a, undefined);
      return [t.name, declared];
    }),
  );
  /** A ref with the runtime args filled in where a template declares them without a value and the ref passes none. */
  const ref = (r: AnalysisRef, where: string): RolloutAnalysis => {
    const passed = new Map(r.args.map((a) => [a.name, a.value]));
    for (const tr of r.templates) {
      for (const [arg, value] of argsOf.get(tr.templateName)!) {
        if (value !== undefined || passed.get(arg) !== undefined || !(arg in runtime)) continue;
        const v = runtime[arg];
        if (v === undefined) {
          throw new AegisError('USAGE', `${where} uses template ${tr.templateName}, which reads the stable version: pass --stable-version`, {
            hint: 'Pass the version in production now, e.g. --stable-version 0.1.',
          });
        }
        passed.set(arg, v);
      }
    }
    // An arg the ref names without a value means "the template's value" here; Argo would read it as "" and
    // override the template's default with it, so it is left out.
    const given = [...passed].filter((e): e is [string, string] => e[1] !== undefined);
    return {
      templates: r.templates.map((tr) => ({ templateName: templateName(tr.templateName) })),
      ...(given.length ? { args: given.map(([n, value]) => ({ name: n, value })) } : {}),
      ...(r.dryRun.length ? { dryRun: r.dryRun } : {}),
    };
  };

  const canary = spec.strategy.canary;
  const steps = canary.steps.map((s, i): Step => {
    if (s.setWeight !== undefined) return { setWeight: s.setWeight };
    if (s.pause) return { pause: s.pause.duration === undefined ? {} : { duration: s.pause.duration } };
    return { analysis: ref(s.analysis!, `steps[${i}].analysis`) };
  });
  const selector = { 'app.kubernetes.io/name': 'aegis-model-server', 'aegis.dev/model': name };
  const labels = { ...selector, 'app.kubernetes.io/part-of': 'aegis' };
  const meta = (n: string) => ({ name: n, ...(o.namespace ? { namespace: o.namespace } : {}), labels });

  const rollout: IRollout = {
    apiVersion: 'argoproj.io/v1alpha1',
    kind: 'Rollout',
    metadata: meta(name),
    spec: {
      replicas,
      revisionHistoryLimit: 3,
      selector: { matchLabels: selector },
      template: {
        metadata: {
          labels: { ...labels, ...(LABEL_VALUE.test(o.version) ? { 'aegis.dev/version': o.version } : {}) },
          annotations: { 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(PORT), 'prometheus.io/path': '/metrics' },
        },
        spec: {
          ...(o.serviceAccount ? { serviceAccountName: o.serviceAccount } : {}),
          securityContext: { runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, fsGroup: 1000, seccompProfile: { type: 'RuntimeDefault' } },
          containers: [
            {
              name: 'model-server',
              image: o.image,
              // fetch_and_verify_model before listening: a model that does not verify never becomes Ready, so the
              // canary ReplicaSet never takes traffic and the stable one keeps serving.
              // --track-from: the metrics' track label follows the pod's aegis.dev/track label, which Argo sets (canaryMetadata,
              // stableMetadata) and changes when it promotes; so queries and alerts on track="canary" work as on one machine.
              args: ['serve', '--model', o.archiveUri, '--name', o.model, '--trust', `${TRUST_MOUNT}/trust.yaml`, '--track-from', `${PODINFO_MOUNT}/labels`, '--host', '0.0.0.0', '--port', String(PORT), '--no-repository-load'],
              env: [
                { name: 'AEGIS_HOME', value: '/var/lib/aegis' },
                { name: 'AEGIS_LOG_LEVEL', value: 'info' },
              ],
              ports: [{ name: 'http', containerPort: PORT }],
              // The server listens only once the model is fetched, verified and warmed: up to 10 minutes for a large
              // model before liveness counts (a liveness probe alone would restart it mid-download, for ever).
              startupProbe: { httpGet: { path: '/v2/health/live', port: 'http' }, periodSeconds: 5, failureThreshold: 120 },
              readinessProbe: { httpGet: { path: '/v2/health/ready', port: 'http' }, periodSeconds: 5 },
              livenessProbe: { httpGet: { path: '/v2/health/live', port: 'http' }, periodSeconds: 10 },
              resources: { requests: { cpu: '500m', memory: '512Mi' }, limits: { memory: '2Gi' } },
              securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
              volumeMounts: [
                { name: 'home', mountPath: '/var/lib/aegis' },
                { name: 'tmp', mountPath: '/tmp' },
                { name: 'trust', mountPath: TRUST_MOUNT, readOnly: true },
                { name: 'podinfo', mountPath: PODINFO_MOUNT, readOnly: true },
              ],
            },
          ],
          // A request in flight when a pod is removed (a step, an abort) is finished: SIGTERM drains.
          terminationGracePeriodSeconds: 60,
          volumes: [
            { name: 'home', emptyDir: {} },
            { name: 'tmp', emptyDir: {} },
            { name: 'trust', configMap: { name: o.trustConfigMap ?? 'aegis-trust' } },
            { name: 'podinfo', downwardAPI: { items: [{ path: 'labels', fieldRef: { fieldPath: 'metadata.labels' } }] } },
          ],
        },
      },
      strategy: {
        canary: {
          canaryMetadata: { labels: { [ARGO_TRACK_LABEL]: 'canary' } },
          stableMetadata: { labels: { [ARGO_TRACK_LABEL]: 'stable' } },
          steps,
          ...(canary.analysis ? { analysis: { ...ref(canary.analysis, 'strategy.canary.analysis'), ...(canary.analysis.startingStep !== undefined ? { startingStep: canary.analysis.startingStep } : {}) } } : {}),
        },
      },
    },
  };

  const service: IService = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(name),
    spec: { selector, ports: [{ name: 'http', port: 80, targetPort: 'http' }] },
  };

  const analysisTemplates = spec.analysisTemplates.map((t): IAnalysisTemplate => ({
    apiVersion: 'argoproj.io/v1alpha1',
    kind: 'AnalysisTemplate',
    metadata: { name: templateName(t.name), ...(o.namespace ? { namespace: o.namespace } : {}), labels: { 'app.kubernetes.io/part-of': 'aegis' } },
    spec: {
      args: [...argsOf.get(t.name)!].map(([n, value]) => (value === undefined ? { name: n } : { name: n, value })),
      ...(t.dryRun.length ? { dryRun: t.dryRun } : {}),
      metrics: t.metrics.map((m) => argoMetric(m, prometheusAddress)),
    },
  }));

  // Aegis pauses on no data where a condition does not say what no data means (judge.ts, the missing-data
  // guard); Argo judges it by its own rules. Embedded metrics are rendered with the guard; copied ones are named.
  const unguarded = spec.analysisTemplates.flatMap((t) =>
    t.metrics
      .filter((m) => m.provider.prometheus && !conditionsHandleMissingData(m))
      .map((m) => `${t.name}/${m.name}`),
  );
  const inexact = canary.steps.map((s) => s.setWeight).filter((w): w is number => w !== undefined && (w * replicas) % 100 !== 0);
  const header = [
    `# ${o.model}@${o.version} as an Argo Rollout (\`aegis rollout render-argo\`, spec ${spec.metadata?.name ?? '(unnamed)'}).`,
    '# Apply over the Rollout of the version in production: Argo starts the canary from the new pod template.',
    `# The pods fetch and verify ${o.archiveUri} (read access to it: IRSA through --service-account) against ConfigMap`,
    `# ${o.trustConfigMap ?? 'aegis-trust'} (trust.yaml and its keys; see docs/backup-restore.md). They need no database.`,
    ...(/^s3:\/\//.test(o.archiveUri) ? [] : [`# WARNING: ${o.archiveUri} is not an s3:// URI; pods in a cluster will not reach it. Push the archive to the cluster's store.`]),
    ...(inexact.length
      ? [
          `# Weight${inexact.length > 1 ? 's' : ''} ${inexact.join(', ')} % of ${replicas} pods ${inexact.length > 1 ? 'are not whole numbers' : 'is not a whole number'} of pods: without a traffic router Argo rounds the canary's`,
          '# pods up. Use --replicas 10 (or a multiple of what the weights need) or add trafficRouting to the Rollout.',
        ]
      : []),
    ...(unguarded.length
      ? [
          `# ${unguarded.join(', ')}: the conditions do not say what no data (NaN, []) means. Aegis pauses on no data; Argo judges it`,
          '# by the conditions alone (e.g. all(result, …) of [] is true: Successful). Write `len(result) > 0 && …` to decide it.',
        ]
      : []),
    ...(spec.analysisTemplates.some((t) => t.metrics.some((m) => m.provider.embedded))
      ? [`# Metrics that were "embedded" in the spec read ${prometheusAddress} (the servers' own counters; NaN below minSamples: Inconclusive).`]
      : []),
  ];
  const docs = [rollout, service, ...analysisTemplates].map((d) => stringify(d, { lineWidth: 0 }));
  return `${header.join('\n')}\n${docs.join('---\n')}`;
}
