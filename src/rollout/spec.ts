import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { AegisError, fsError } from '../errors.js';
import { conditionSyntaxError } from './analysis/condition.js';
import type { AnalysisMetric } from './analysis/judge.js';
import { parseGoDuration, parsePauseDuration } from './duration.js';

/**
 * The rollout spec: a canary in Argo Rollouts' vocabulary (steps of
 * setWeight / pause / analysis, background analysis from a starting step,
 * analysis templates whose metrics have interval, count, initialDelay,
 * failureLimit, inconclusiveLimit, consecutiveErrorLimit, successCondition,
 * failureCondition and a provider), so one spec drives the local controller
 * and renders to a Rollout + AnalysisTemplate. See docs/rollouts.md.
 */

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const NAME_MESSAGE = 'letters, digits, ".", "_" or "-", starting with a letter or digit (at most 63)';
/** `{{args.name}}` / `{{ args.name }}`, as Argo's templates write argument placeholders. */
const ARG_PLACEHOLDER = /\{\{\s*args\.([A-Za-z0-9_.-]+)\s*\}\}/g;
/** Longest window the embedded provider can look back (SlidingWindowStats keeps this much by default). */
export const MAX_EMBEDDED_WINDOW_MS = 15 * 60_000;
/** Argo's Prometheus provider default timeout (prometheus.go NewPrometheusProvider: 30 s). */
export const DEFAULT_PROMETHEUS_TIMEOUT_MS = 30_000;

export const EMBEDDED_METRICS = ['request-rate', 'error-rate', 'latency-p50', 'latency-p90', 'latency-p99'] as const;
export type EmbeddedMetricName = (typeof EMBEDDED_METRICS)[number];
export const TRACKS = ['canary', 'stable'] as const;
export type Track = (typeof TRACKS)[number];

const DURATION_MESSAGE = 'must be a duration such as 30s, 5m, 1h30m or 500ms';
function goDuration(options: { positive?: boolean; maxMs?: number } = {}) {
  return z.string().superRefine((text, ctx) => {
    const ms = parseGoDuration(text);
    if (ms === undefined) ctx.addIssue({ code: 'custom', continue: false, message: `${DURATION_MESSAGE}, got ${JSON.stringify(text)}` });
    else if (options.positive && ms <= 0) ctx.addIssue({ code: 'custom', continue: false, message: `must be longer than 0, got ${JSON.stringify(text)}` });
    else if (options.maxMs !== undefined && ms > options.maxMs) ctx.addIssue({ code: 'custom', continue: false, message: `must be at most ${options.maxMs / 60_000}m, got ${JSON.stringify(text)}` });
  });
}

const count = z.number().int().min(0);

const argument = z
  .object({
    name: z.string().min(1),
    value: z.string().optional(),
  })
  .strict();

const dryRunRule = z
  .object({
    /** A regular expression matched (unanchored, as Go's regexp.MatchString) against metric names. */
    metricName: z.string().min(1).superRefine((re, ctx) => {
      try {
        new RegExp(re);
      } catch (err) {
        ctx.addIssue({ code: 'custom', continue: false, message: `not a regular expression: ${(err as Error).message}` });
      }
    }),
  })
  .strict();

const prometheusProvider = z
  .object({
    /** Prometheus base URL, e.g. http://prometheus.monitoring:9090 (may use {{args.x}}). */
    address: z.string().min(1),
    /** PromQL for an instant query (GET /api/v1/query); may use {{args.x}}. */
    query: z.string().min(1),
    /** Seconds (Argo's int `timeout`) or a duration string; default 30 s. */
    timeout: z
      .union([z.number().positive(), goDuration({ positive: true })])
      .optional(),
  })
  .strict();

const embeddedProvider = z
  .object({
    metric: z.enum(EMBEDDED_METRICS),
    track: z.enum(TRACKS).default('canary'),
    /** How far back the measurement looks (1 s resolution). */
    window: goDuration({ positive: true, maxMs: MAX_EMBEDDED_WINDOW_MS }).default('60s'),
    /** Fewer requests than this in the window: the measurement is Inconclusive, never Failed (request-rate excepted). */
    minSamples: count.default(20),
  })
  .strict();

const provider = z
  .object({ prometheus: prometheusProvider.optional(), embedded: embeddedProvider.optional() })
  .strict()
  .superRefine((p, ctx) => {
    const set = (['prometheus', 'embedded'] as const).filter((k) => p[k] !== undefined);
    if (set.length === 0) ctx.addIssue({ code: 'custom', continue: false, message: 'needs exactly one provider: prometheus or embedded' });
    if (set.length > 1) ctx.addIssue({ code: 'custom', continue: false, message: `needs exactly one provider, got ${set.join(' and ')}` });
  });

const conditionText = z.string().min(1);

const metric = z
  .object({
    name: z.string().regex(NAME, NAME_MESSAGE),
    /** Time between measurements; omitted: a single measurement (unless count says otherwise). */
    interval: goDuration({ positive: true }).optional(),
    /** Measurements to take; 0/omitted: 1 without an interval, until the run ends with one. */
    count: count.optional(),
    initialDelay: goDuration().optional(),
    failureLimit: count.default(0),
    inconclusiveLimit: count.default(0),
    consecutiveErrorLimit: count.default(4),
    successCondition: conditionText.optional(),
    failureCondition: conditionText.optional(),
    provider,
  })
  .strict()
  .superRefine((m, ctx) => {
    // Argo's ValidateMetric (utils/analysis): the same rules, so a spec valid here is valid there.
    if (m.count && m.count > 0) {
      if (m.count < m.failureLimit) ctx.addIssue({ code: 'custom', continue: false, path: ['count'], message: `must be >= failureLimit (${m.failureLimit})` });
      if (m.count < m.inconclusiveLimit) ctx.addIssue({ code: 'custom', continue: false, path: ['count'], message: `must be >= inconclusiveLimit (${m.inconclusiveLimit})` });
    }
    if (m.count && m.count > 1 && !m.interval) ctx.addIssue({ code: 'custom', continue: false, path: ['interval'], message: `is required when count > 1 (count is ${m.count})` });
    for (const key of ['successCondition', 'failureCondition'] as const) {
      const text = m[key];
      if (text === undefined || hasPlaceholder(text)) continue; // checked again once the args are substituted
      const error = conditionSyntaxError(text);
      if (error) ctx.addIssue({ code: 'custom', continue: false, path: [key], message: error });
    }
  });

const analysisTemplate = z
  .object({
    name: z.string().regex(NAME, NAME_MESSAGE),
    /** Arguments the metrics use as {{args.name}}; a value here is the default. */
    args: z.array(argument).default([]),
    dryRun: z.array(dryRunRule).default([]),
    metrics: z.array(metric).min(1, 'a template needs at least one metric'),
  })
  .strict()
  .superRefine((t, ctx) => {
    unique(t.metrics.map((m) => m.name), ['metrics'], 'metric name', ctx);
    unique(t.args.map((a) => a.name), ['args'], 'argument name', ctx);
  });

const templateRef = z.object({ templateName: z.string().min(1) }).strict();

const analysisRef = {
  templates: z.array(templateRef).min(1, 'name at least one template'),
  args: z.array(argument).default([]),
  dryRun: z.array(dryRunRule).default([]),
};

const pause = z.preprocess(
  (v) => (v === null ? {} : v),
  z
    .object({
      /** Omitted (`pause: {}`): wait until `aegis rollout promote`. */
      duration: z
        .union([z.number(), z.string()])
        .superRefine((d, ctx) => {
          if (parsePauseDuration(d) === undefined) ctx.addIssue({ code: 'custom', continue: false, message: `must be a number of seconds or a duration such as 30s or 5m, got ${JSON.stringify(d)}` });
        })
        .optional(),
    })
    .strict(),
);

const step = z
  .object({
    setWeight: z.number().int().min(0).max(100).optional(),
    pause: pause.optional(),
    analysis: z.object(analysisRef).strict().optional(),
  })
  .strict()
  .superRefine((s, ctx) => {
    const kinds = (['setWeight', 'pause', 'analysis'] as const).filter((k) => s[k] !== undefined);
    if (kinds.length === 0) ctx.addIssue({ code: 'custom', continue: false, message: 'a step needs one of setWeight, pause or analysis' });
    if (kinds.length > 1) ctx.addIssue({ code: 'custom', continue: false, message: `a step has exactly one of setWeight, pause or analysis, got ${kinds.join(' and ')}` });
  });

export const rolloutSpecSchema = z
  .object({
    apiVersion: z.literal('aegis.dev/v1'),
    kind: z.literal('Rollout'),
    metadata: z.object({ name: z.string().regex(NAME, NAME_MESSAGE).optional() }).strict().optional(),
    strategy: z
      .object({
        canary: z
          .object({
            steps: z.array(step).min(1, 'a canary needs at least one step'),
            /** Background analysis: runs from `startingStep` (default 0) until the rollout completes or it fails. */
            analysis: z
              .object({ ...analysisRef, startingStep: count.optional() })
              .strict()
              .optional(),
          })
          .strict(),
      })
      .strict(),
    analysisTemplates: z.array(analysisTemplate).default([]),
  })
  .strict()
  .superRefine((spec, ctx) => {
    unique(spec.analysisTemplates.map((t) => t.name), ['analysisTemplates'], 'template name', ctx);
    const canary = spec.strategy.canary;
    if (canary.analysis?.startingStep !== undefined && canary.analysis.startingStep >= canary.steps.length) {
      ctx.addIssue({
        code: 'custom',
        continue: false,
        path: ['strategy', 'canary', 'analysis', 'startingStep'],
        message: `must be a step index below ${canary.steps.length} (there are ${canary.steps.length} steps)`,
      });
    }
    const refs: Array<{ ref: AnalysisRef; path: (string | number)[] }> = [];
    if (canary.analysis) refs.push({ ref: canary.analysis, path: ['strategy', 'canary', 'analysis'] });
    canary.steps.forEach((s, i) => {
      if (s.analysis) refs.push({ ref: s.analysis, path: ['strategy', 'canary', 'steps', i, 'analysis'] });
    });
    for (const { ref, path } of refs) {
      const r = resolve(spec as RolloutSpec, ref, path, RUNTIME_ARG_PLACEHOLDERS);
      if ('issue' in r) ctx.addIssue({ code: 'custom', continue: false, path: r.issue.path, message: r.issue.message });
    }
  });

function unique(names: string[], path: (string | number)[], what: string, ctx: z.RefinementCtx): void {
  const seen = new Set<string>();
  names.forEach((n, i) => {
    if (seen.has(n)) ctx.addIssue({ code: 'custom', continue: false, path: [...path, i, 'name'], message: `duplicate ${what} ${JSON.stringify(n)}` });
    seen.add(n);
  });
}

export type RolloutSpec = z.infer<typeof rolloutSpecSchema>;
export type CanaryStep = RolloutSpec['strategy']['canary']['steps'][number];
export type BackgroundAnalysis = NonNullable<RolloutSpec['strategy']['canary']['analysis']>;
export type AnalysisRef = Pick<BackgroundAnalysis, 'templates' | 'args' | 'dryRun'>;
export type AnalysisTemplateSpec = RolloutSpec['analysisTemplates'][number];
export type MetricSpec = AnalysisTemplateSpec['metrics'][number];
export type ProviderSpec = MetricSpec['provider'];

// ---------------------------------------------------------------------------
// Parsing

/** `['strategy', 'canary', 'steps', 2, 'pause']` → `strategy.canary.steps[2].pause`. */
export function fieldPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : `${out ? '.' : ''}${String(p)}`;
  return out || '(root)';
}

function invalid(source: string, message: string, field?: string): AegisError {
  return new AegisError('ROLLOUT_SPEC_INVALID', `rollout spec ${source} is invalid: ${field ? `${field}: ` : ''}${message}`, {
    hint: `Fix ${field ? `"${field}" in ` : ''}${source}; docs/rollouts.md ("Spec format") describes every field, and examples/rollouts/canary.yaml is a working spec.`,
    details: { source, ...(field ? { field } : {}) },
  });
}

/** Validates an already-parsed document (e.g. from JSON or an API body). */
export function validateRolloutSpec(doc: unknown, source = 'rollout spec'): RolloutSpec {
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw invalid(source, 'not a mapping (expected apiVersion, kind, strategy, analysisTemplates)');
  const r = rolloutSpecSchema.safeParse(doc);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw invalid(source, issue.message, fieldPath(issue.path));
  }
  return r.data;
}

/** Parses and validates rollout spec YAML; errors name the field (ROLLOUT_SPEC_INVALID). */
export function parseRolloutSpec(text: string, source = 'rollout spec'): RolloutSpec {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw invalid(source, `not valid YAML (${(err as Error).message.split('\n')[0]})`);
  }
  return validateRolloutSpec(doc, source);
}

/** Reads and validates a rollout spec file. */
export async function readRolloutSpec(path: string): Promise<RolloutSpec> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw fsError(err, path, 'rollout spec');
  }
  return parseRolloutSpec(text, path);
}

// ---------------------------------------------------------------------------
// From the spec to what the judge and the providers need

export type ResolvedProvider =
  | { kind: 'prometheus'; address: string; query: string; timeoutMs: number }
  | { kind: 'embedded'; metric: EmbeddedMetricName; track: Track; windowMs: number; minSamples: number };

/** A metric with its template's args substituted and durations in milliseconds. */
export interface ResolvedMetric extends AnalysisMetric {
  /** The template it came from. */
  template: string;
  provider: ResolvedProvider;
}

/** Milliseconds a step pauses; undefined for an indefinite pause (until promoted) or a step that is not a pause. */
export function pauseMs(step: CanaryStep): number | undefined {
  if (!step.pause || step.pause.duration === undefined) return undefined;
  return parsePauseDuration(step.pause.duration);
}

/**
 * The metrics of an analysis (a step's `analysis` or the background one) as
 * an AnalysisRun would hold them: the referenced templates merged (metric
 * names must be unique across them, as Argo's flattenMetrics requires), the
 * arguments resolved (template defaults, overridden by the ref's args;
 * one left without a value is an error, as Argo's MergeArgs says), and dryRun
 * rules of the templates and the ref applied.
 */
export function resolveAnalysis(spec: RolloutSpec, ref: AnalysisRef, field = 'analysis', runtime: RuntimeArgs = RUNTIME_ARG_PLACEHOLDERS): ResolvedMetric[] {
  const r = resolve(spec, ref, [field], runtime);
  if ('issue' in r) {
    const where = fieldPath(r.issue.path);
    throw new AegisError('ROLLOUT_SPEC_INVALID', `cannot resolve ${field}: ${where}: ${r.issue.message}`, {
      hint: 'Reference templates defined in analysisTemplates and give every argument a value; docs/rollouts.md ("Spec format").',
      details: { field: where },
    });
  }
  return r.metrics;
}

type Issue = { path: (string | number)[]; message: string };

/**
 * Arguments the controller fills in when a template declares them without a
 * value and the ref passes none (as Argo's `valueFrom` fills the pod template
 * hashes): `model`, `version` (the canary's) and `stable-version`. So a
 * Prometheus query can select exactly the canary:
 * `aegis:inference_error_ratio:rate1m{model="{{args.model}}",version="{{args.version}}",track="canary"}`.
 */
export const RUNTIME_ARGS = ['model', 'version', 'stable-version'] as const;
export type RuntimeArgs = Readonly<Record<(typeof RUNTIME_ARGS)[number], string>>;
/** What validation substitutes (the real values are known when a rollout starts). */
const RUNTIME_ARG_PLACEHOLDERS: RuntimeArgs = { model: 'model', version: '0.0.0', 'stable-version': '0.0.0' };

function resolve(spec: RolloutSpec, ref: AnalysisRef, refPath: (string | number)[], runtime: RuntimeArgs): { metrics: ResolvedMetric[] } | { issue: Issue } {
  const templates: Array<{ t: AnalysisTemplateSpec; index: number }> = [];
  for (const [i, tr] of ref.templates.entries()) {
    const index = spec.analysisTemplates.findIndex((t) => t.name === tr.templateName);
    if (index < 0) {
      const known = spec.analysisTemplates.map((t) => t.name);
      return {
        issue: {
          path: [...refPath, 'templates', i, 'templateName'],
          message: `no analysis template named ${JSON.stringify(tr.templateName)} (${known.length ? `defined: ${known.join(', ')}` : 'analysisTemplates is empty'})`,
        },
      };
    }
    templates.push({ t: spec.analysisTemplates[index]!, index });
  }
  // Argo flattenArgs: the same argument in two templates must not have two different values.
  const args = new Map<string, string | undefined>();
  for (const { t, index } of templates) {
    for (const [ai, a] of t.args.entries()) {
      const prev = args.get(a.name);
      if (prev !== undefined && a.value !== undefined && prev !== a.value) {
        return { issue: { path: ['analysisTemplates', index, 'args', ai, 'value'], message: `argument ${JSON.stringify(a.name)} has two different values in the templates referenced by ${fieldPath(refPath)}` } };
      }
      if (prev === undefined) args.set(a.name, a.value);
    }
  }
  for (const a of ref.args) args.set(a.name, a.value ?? args.get(a.name));
  // Argo MergeArgs → ResolveArgs: every template argument needs a value once the ref's args are merged in.
  for (const name of RUNTIME_ARGS) if (args.has(name) && args.get(name) === undefined) args.set(name, runtime[name]);
  for (const [name, value] of args) {
    if (value === undefined) {
      return { issue: { path: [...refPath, 'args'], message: `argument ${JSON.stringify(name)} of ${templates.map(({ t }) => t.name).join(', ')} has no value: pass it as { name: ${name}, value: … }` } };
    }
  }
  const dryRunRules = [...templates.flatMap(({ t }) => t.dryRun), ...ref.dryRun];

  const out: ResolvedMetric[] = [];
  const seen = new Map<string, string>();
  for (const { t, index } of templates) {
    for (const [mi, m] of t.metrics.entries()) {
      const mPath = ['analysisTemplates', index, 'metrics', mi];
      const other = seen.get(m.name);
      if (other !== undefined) {
        return { issue: { path: [...refPath, 'templates'], message: `templates ${other} and ${t.name} both have a metric named ${JSON.stringify(m.name)}` } };
      }
      seen.set(m.name, t.name);
      const sub = (text: string, key: string): string | Issue => {
        let missing: string | undefined;
        const value = text.replace(ARG_PLACEHOLDER, (_all, name: string) => {
          const v = args.get(name);
          if (v === undefined) missing ??= name;
          return v ?? '';
        });
        if (missing !== undefined) {
          return {
            path: [...mPath, ...key.split('.')],
            message: `uses {{args.${missing}}} but ${fieldPath(refPath)} gives no value for it (declare it in analysisTemplates[${index}].args with a default, or pass it in args)`,
          };
        }
        return value;
      };
      const conditions: Partial<Record<'successCondition' | 'failureCondition', string>> = {};
      for (const key of ['successCondition', 'failureCondition'] as const) {
        const text = m[key];
        if (text === undefined) continue;
        const v = sub(text, key);
        if (typeof v !== 'string') return { issue: v };
        const error = conditionSyntaxError(v);
        if (error) return { issue: { path: [...mPath, key], message: `${error}${v !== text ? ` (after substituting the args of ${fieldPath(refPath)})` : ''}` } };
        conditions[key] = v;
      }
      let resolvedProvider: ResolvedProvider;
      if (m.provider.prometheus) {
        const p = m.provider.prometheus;
        const address = sub(p.address, 'provider.prometheus.address');
        if (typeof address !== 'string') return { issue: address };
        const query = sub(p.query, 'provider.prometheus.query');
        if (typeof query !== 'string') return { issue: query };
        if (!isHttpUrl(address)) return { issue: { path: [...mPath, 'provider', 'prometheus', 'address'], message: `must be an http:// or https:// URL, got ${JSON.stringify(address)}` } };
        const timeoutMs = p.timeout === undefined ? DEFAULT_PROMETHEUS_TIMEOUT_MS : typeof p.timeout === 'number' ? p.timeout * 1000 : parseGoDuration(p.timeout)!;
        resolvedProvider = { kind: 'prometheus', address, query, timeoutMs };
      } else {
        const e = m.provider.embedded!;
        resolvedProvider = { kind: 'embedded', metric: e.metric, track: e.track, windowMs: parseGoDuration(e.window)!, minSamples: e.minSamples };
      }
      out.push({
        name: m.name,
        template: t.name,
        ...(m.interval ? { intervalMs: parseGoDuration(m.interval)! } : {}),
        ...(m.initialDelay ? { initialDelayMs: parseGoDuration(m.initialDelay)! } : {}),
        ...(m.count !== undefined ? { count: m.count } : {}),
        failureLimit: m.failureLimit,
        inconclusiveLimit: m.inconclusiveLimit,
        consecutiveErrorLimit: m.consecutiveErrorLimit,
        ...conditions,
        dryRun: dryRunRules.some((rule) => new RegExp(rule.metricName).test(m.name)),
        provider: resolvedProvider,
      });
    }
  }
  // Argo GetDryRunMetrics: a rule that matches no metric is an error.
  for (const [i, rule] of ref.dryRun.entries()) {
    if (!out.some((m) => new RegExp(rule.metricName).test(m.name))) {
      return { issue: { path: [...refPath, 'dryRun', i, 'metricName'], message: `${JSON.stringify(rule.metricName)} matches none of the metrics (${out.map((m) => m.name).join(', ')})` } };
    }
  }
  return { metrics: out };
}

function hasPlaceholder(text: string): boolean {
  return new RegExp(ARG_PLACEHOLDER.source).test(text);
}

/** The argument names a text uses as `{{args.name}}`. */
export function argNamesIn(text: string): Set<string> {
  return new Set([...text.matchAll(ARG_PLACEHOLDER)].map((m) => m[1]!));
}

function isHttpUrl(text: string): boolean {
  try {
    const u = new URL(text);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.host !== '';
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------
// The default

/**
 * The canary a model version gets when no spec is given: 10 % → 25 % → 50 %
 * of traffic, 30 s each, then 100 %, with background analysis from the first
 * step on the gateway's own counters (no Prometheus needed): canary 5xx rate
 * below 5 % and p99 latency below 500 ms, every 10 s over the last minute,
 * after 10 s for the window to fill. Three failed measurements of a metric
 * abort (failureLimit 2); three inconclusive ones (fewer than 20 requests in
 * the window) pause. examples/rollouts/canary.yaml is this spec as YAML.
 */
export const DEFAULT_ROLLOUT_SPEC: RolloutSpec = deepFreeze(
  validateRolloutSpec(
    {
      apiVersion: 'aegis.dev/v1',
      kind: 'Rollout',
      metadata: { name: 'default-canary' },
      strategy: {
        canary: {
          steps: [
            { setWeight: 10 },
            { pause: { duration: '30s' } },
            { setWeight: 25 },
            { pause: { duration: '30s' } },
            { setWeight: 50 },
            { pause: { duration: '30s' } },
            { setWeight: 100 },
          ],
          analysis: { templates: [{ templateName: 'canary-health' }], startingStep: 0 },
        },
      },
      analysisTemplates: [
        {
          name: 'canary-health',
          metrics: [
            {
              name: 'error-rate',
              initialDelay: '10s',
              interval: '10s',
              failureLimit: 2,
              inconclusiveLimit: 2,
              successCondition: 'result < 0.05',
              provider: { embedded: { metric: 'error-rate', track: 'canary', window: '60s', minSamples: 20 } },
            },
            {
              name: 'latency-p99',
              initialDelay: '10s',
              interval: '10s',
              failureLimit: 2,
              inconclusiveLimit: 2,
              successCondition: 'result < 0.5',
              provider: { embedded: { metric: 'latency-p99', track: 'canary', window: '60s', minSamples: 20 } },
            },
          ],
        },
      ],
    },
    'DEFAULT_ROLLOUT_SPEC',
  ),
);

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
