import { readManifest } from '../../artifact/manifest.js';
import { AegisError } from '../../errors.js';
import type { StepContext, StepResult } from '../context.js';
import type { PipelineSettings } from '../types.js';
import type { TrainOutputs } from './train.js';

export interface GateCheck {
  metric: string;
  /** `>=`: the candidate must reach `threshold`. */
  op: '>=';
  value: number | null;
  threshold: number;
  /** What the threshold is: `minimum`, or `production <version> - maxRegression`. */
  rule: string;
  passed: boolean;
}

/** Metrics where higher is better, compared with the production version's recorded ones. */
export const REGRESSION_METRICS = ['accuracy', 'macro_f1'] as const;

/**
 * The evaluation gate, a pure function: the candidate's held-out metrics
 * must reach the minimums and must not be below the production version's
 * recorded metrics by more than `maxRegression` (for each of accuracy and
 * macro-F1 both record). A missing candidate metric that a rule needs fails it.
 */
export function gate(
  candidate: Readonly<Record<string, number>>,
  production: { version: string; metrics: Readonly<Record<string, number>> } | undefined,
  rules: PipelineSettings['evaluate'],
): GateCheck[] {
  const value = (k: string) => (typeof candidate[k] === 'number' && Number.isFinite(candidate[k]) ? candidate[k] : null);
  const check = (metric: string, threshold: number, rule: string): GateCheck => {
    const v = value(metric);
    // Metrics are rounded to 4 decimals by the trainer: compare at that precision so 0.9 - 0.05 is 0.85, not 0.8500000001.
    const t = Math.round(threshold * 1e6) / 1e6;
    return { metric, op: '>=', value: v, threshold: t, rule, passed: v !== null && v >= t };
  };
  const checks = [check('accuracy', rules.minAccuracy, 'minimum')];
  if (rules.minMacroF1 !== undefined) checks.push(check('macro_f1', rules.minMacroF1, 'minimum'));
  if (production) {
    for (const m of REGRESSION_METRICS) {
      const p = production.metrics[m];
      if (typeof p !== 'number') continue;
      checks.push(check(m, p - rules.maxRegression, `production ${production.version} (${p}) - maxRegression ${rules.maxRegression}`));
    }
  }
  return checks;
}

export function describeCheck(c: GateCheck): string {
  return `${c.metric} ${c.value ?? 'missing'} ${c.passed ? '>=' : '<'} ${c.threshold} (${c.rule})`;
}

/**
 * evaluate: reads the candidate's held-out metrics from the aegis.yaml the
 * trainer wrote and applies the gate. A failed gate throws PIPELINE_REJECTED:
 * the run ends `rejected` with the reasons and nothing is packaged.
 */
export async function evaluateStep(ctx: StepContext): Promise<StepResult> {
  const train = ctx.output<TrainOutputs>('train');
  const manifest = await readManifest(train.modelDir);
  const candidate = manifest.metrics;
  let production: { version: string; metrics: Record<string, number> } | undefined;
  if (train.parentVersion) {
    const v = await ctx.deps.registry.getVersion(train.model, train.parentVersion);
    const metrics = (v.manifest.metrics ?? {}) as Record<string, number>;
    production = { version: v.version, metrics };
    ctx.log(`production ${train.model}@${v.version} recorded: ${Object.entries(metrics).map(([k, x]) => `${k} ${x}`).join(', ') || '(no metrics)'}`);
  } else ctx.log('no production version to compare with: only the minimums apply');
  const checks = gate(candidate, production, ctx.deps.settings.evaluate);
  for (const c of checks) ctx.log(`${c.passed ? 'pass' : 'FAIL'}: ${describeCheck(c)}`);
  const failed = checks.filter((c) => !c.passed);

  const { tracker, runId } = await ctx.tracking();
  const base = ctx.run.createdAt.getTime();
  if (production) {
    await tracker.logMetrics(
      runId,
      Object.entries(production.metrics).map(([k, v]) => ({ key: `production_${k}`, value: v, step: 0, timestamp: base + 100_000 })),
    );
  }
  await tracker.setTags(runId, { 'aegis.gate': failed.length ? 'rejected' : 'passed' });

  if (failed.length) {
    throw new AegisError('PIPELINE_REJECTED', `the candidate ${train.model}@${train.version} did not pass evaluation: ${failed.map(describeCheck).join('; ')}`, {
      hint: 'Nothing was packaged or pushed. Fix the data or the training, or change pipeline.evaluate (minAccuracy, maxRegression) and `aegis pipeline retry RUN`.',
      details: { checks, production: production ?? null, retryable: false },
    });
  }
  return { outputs: { passed: true, checks, candidate, production: production ?? null }, summary: { evaluation: 'passed' } };
}
