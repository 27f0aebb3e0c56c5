/**
 * The canary load simulator: open-loop constant-rate HTTP load with
 * deliberately malformed requests mixed in, latencies from each request's
 * intended start into an HDR histogram. Used by `aegis load` (alias `loadgen`),
 * `npm run bench -- loadgen` and integration tests of other features.
 *
 *   const report = await runLoad({ url: 'http://127.0.0.1:8080/infer', qps: 20, durationMs: 180_000, errorRate: 0.02, payload });
 */
export { runLoad } from './run.js';
export type { LoadOptions, LoadProgress, LoadReport, Outcome, OutcomeCounts, RequestResult, SecondStats } from './run.js';
export type { LatencySummary } from './histogram.js';
export { malformedBodies, seededRandom, type MalformedBody, type MalformedKind } from './payload.js';
export { parseDuration, formatDuration } from './duration.js';
export { formatProgress, formatReport } from './format.js';
export { defaultPayloadPath } from './defaults.js';
