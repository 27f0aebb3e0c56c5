import type { AnalysisRunState } from '../analysis/judge.js';
import type { CanaryStep } from '../spec.js';
import type { RolloutEvent, RolloutPhase, RolloutRecord } from './types.js';

export interface StepView {
  index: number;
  text: string;
  status: 'done' | 'current' | 'pending';
}

export interface AnalysisView {
  run: string;
  phase: string;
  message?: string;
  metrics: Array<{
    name: string;
    phase: string;
    message?: string;
    dryRun: boolean;
    successful: number;
    failed: number;
    inconclusive: number;
    error: number;
    measurements: Array<{ at: string; value: string; phase: string; message?: string }>;
  }>;
}

/** A rollout as `aegis rollout status` and the API show it. */
export interface RolloutView {
  id: number;
  model: string;
  version: string;
  stableVersion: string | null;
  phase: RolloutPhase;
  message: string | null;
  weight: number;
  step: number;
  steps: StepView[];
  analysis: AnalysisView[];
  abort?: { at: string; by: string; reason: string };
  pause?: { reason: string; since: string; message: string };
  injectFault?: string;
  events: Array<{ at: string; type: string; message: string }>;
  createdBy: string;
  createdAt: string;
  updatedAt: string;
  finishedAt: string | null;
}

export function stepText(step: CanaryStep): string {
  if (step.setWeight !== undefined) return `setWeight ${step.setWeight}%`;
  if (step.pause) return step.pause.duration === undefined ? 'pause (until promoted)' : `pause ${String(step.pause.duration)}`;
  return `analysis ${step.analysis!.templates.map((t) => t.templateName).join(', ')}`;
}

const iso = (ms: number) => new Date(ms).toISOString();

function analysisView(run: string, state: AnalysisRunState): AnalysisView {
  return {
    run,
    phase: state.phase,
    ...(state.message ? { message: state.message } : {}),
    metrics: state.metrics.map((m) => ({
      name: m.name,
      phase: m.phase,
      ...(m.message ? { message: m.message } : {}),
      dryRun: m.dryRun,
      successful: m.successful,
      failed: m.failed,
      inconclusive: m.inconclusive,
      error: m.error,
      measurements: m.measurements.map((x) => ({ at: iso(x.finishedAt), value: x.value, phase: x.phase, ...(x.message ? { message: x.message } : {}) })),
    })),
  };
}

export function describeRollout(r: RolloutRecord): RolloutView {
  const st = r.state;
  const steps = r.spec.strategy.canary.steps;
  const active = r.phase === 'Progressing' || r.phase === 'Paused';
  const analysis: AnalysisView[] = [];
  if (st.background) analysis.push(analysisView('background', st.background));
  if (st.stepAnalysis) analysis.push(analysisView(`step ${st.stepAnalysis.step}`, st.stepAnalysis.run));
  return {
    id: r.id,
    model: r.model,
    version: r.version,
    stableVersion: r.stableVersion,
    phase: r.phase,
    message: r.message,
    weight: st.weight,
    step: st.stepIndex,
    steps: steps.map((s, i) => ({
      index: i,
      text: stepText(s),
      status: i < st.stepIndex || r.phase === 'Healthy' ? 'done' : i === st.stepIndex && active ? 'current' : 'pending',
    })),
    analysis,
    ...(st.abort ? { abort: { at: iso(st.abort.at), by: st.abort.by, reason: st.abort.reason } } : {}),
    ...(st.pause ? { pause: { reason: st.pause.reason, since: iso(st.pause.since), message: st.pause.message } } : {}),
    ...(st.injectFault ? { injectFault: st.injectFault } : {}),
    events: st.events.map((e: RolloutEvent) => ({ at: iso(e.at), type: e.type, message: e.message })),
    createdBy: r.createdBy,
    createdAt: r.createdAt.toISOString(),
    updatedAt: r.updatedAt.toISOString(),
    finishedAt: r.finishedAt ? r.finishedAt.toISOString() : null,
  };
}

/** The human form of `aegis rollout status`. */
export function formatRollout(v: RolloutView): string {
  const lines: string[] = [];
  lines.push(`rollout #${v.id}  ${v.model}  ${v.stableVersion ?? '?'} (stable) → ${v.version} (canary)`);
  lines.push(`phase:   ${v.phase}${v.message ? ` — ${v.message}` : ''}`);
  lines.push(`weight:  ${v.weight}% to the canary`);
  if (v.injectFault) lines.push(`FAULT INJECTION (drill): ${v.injectFault}`);
  lines.push('steps:');
  for (const s of v.steps) lines.push(`  ${s.status === 'done' ? '✔' : s.status === 'current' ? '▶' : ' '} ${s.index}  ${s.text}`);
  for (const a of v.analysis) {
    lines.push(`analysis (${a.run}): ${a.phase}${a.message ? ` — ${a.message}` : ''}`);
    for (const m of a.metrics) {
      lines.push(`  ${m.name}: ${m.phase}${m.dryRun ? ' (dry run)' : ''}  ok ${m.successful} · failed ${m.failed} · inconclusive ${m.inconclusive} · error ${m.error}`);
      for (const x of m.measurements.slice(-5)) lines.push(`    ${x.at}  ${x.value.padEnd(10)} ${x.phase}${x.message ? `  (${x.message})` : ''}`);
    }
  }
  if (v.abort) lines.push(`aborted by ${v.abort.by} at ${v.abort.at}: ${v.abort.reason}`);
  return lines.join('\n');
}
