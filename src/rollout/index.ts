/**
 * Canary rollouts, analysis half: the rollout spec, the condition language,
 * the analysis run state machine (Argo Rollouts' rules) and the metric
 * providers. The controller and the gateway build on these.
 */
export * from './spec.js';
export { parseGoDuration, parsePauseDuration, formatGoDuration } from './duration.js';
export { compileCondition, condition, conditionSyntaxError, evaluateCondition, type Condition, type ConditionOutcome, type ResultValue } from './analysis/condition.js';
export * from './analysis/judge.js';
export { runAnalysisStep, takeMeasurement, type MeasureOptions, type Measurer } from './analysis/measure.js';
export * from './providers/index.js';
