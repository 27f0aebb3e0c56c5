import type { AnalysisRunState } from '../analysis/judge.js';
import type { TrafficStats } from '../providers/embedded/index.js';
import type { RolloutSpec } from '../spec.js';

/**
 * Argo Rollouts' phases: Progressing (steps advancing), Paused (a pause step
 * without a duration, `aegis rollout pause`, or an Inconclusive/Error
 * analysis), Healthy (all steps done: the canary is the new stable) and
 * Degraded (aborted: the canary has weight 0, the stable serves everything).
 */
export type RolloutPhase = 'Progressing' | 'Paused' | 'Healthy' | 'Degraded';
export const ACTIVE_PHASES: readonly RolloutPhase[] = ['Progressing', 'Paused'];

export interface RolloutEvent {
  at: number;
  type: string;
  message: string;
}

export interface RolloutState {
  /** Index of the step being executed; steps.length once every step is done. */
  stepIndex: number;
  /** The canary's share of inference traffic, 0…100. */
  weight: number;
  /** When the current pause step started (epoch ms), so a restart keeps counting from there. */
  pauseStartedAt?: number;
  /** Why the rollout is Paused. */
  pause?: { reason: 'step' | 'user' | 'analysis'; since: number; message: string };
  /** The analysis run of an `analysis` step. */
  stepAnalysis?: { step: number; run: AnalysisRunState };
  /** The background analysis run (spec.strategy.canary.analysis), from its startingStep on. */
  background?: AnalysisRunState;
  /** Set by `promote --full`: skip the remaining steps. */
  promoteFull?: boolean;
  abort?: { at: number; by: string; reason: string };
  /** DRILLS ONLY: the fault the canary server injects (`--inject-fault`). */
  injectFault?: string;
  /** Latest events, newest last (at most EVENT_LIMIT). */
  events: RolloutEvent[];
}

export const EVENT_LIMIT = 50;

export interface RolloutRecord {
  id: number;
  model: string;
  version: string;
  stableVersion: string | null;
  phase: RolloutPhase;
  spec: RolloutSpec;
  state: RolloutState;
  message: string | null;
  createdBy: string;
  createdAt: Date;
  updatedAt: Date;
  finishedAt: Date | null;
}

export interface NewRollout {
  model: string;
  version: string;
  stableVersion: string | null;
  spec: RolloutSpec;
  state: RolloutState;
  createdBy: string;
}

/** Where rollouts and their state live (the `rollouts` table, migration 3). */
export interface RolloutStore {
  /** Creates a Progressing rollout; ROLLOUT_ACTIVE when the model already has an active one. */
  create(input: NewRollout): Promise<RolloutRecord>;
  get(id: number): Promise<RolloutRecord | undefined>;
  /** The model's newest rollout (active or not). */
  latest(model: string): Promise<RolloutRecord | undefined>;
  /** Every Progressing or Paused rollout (what a restarted control plane resumes). */
  active(): Promise<RolloutRecord[]>;
  list(filter?: { model?: string; limit?: number }): Promise<RolloutRecord[]>;
  /** Writes phase, state, message and finishedAt. */
  save(record: RolloutRecord): Promise<void>;
}

/**
 * What the controller drives: the model servers and the traffic split for a
 * model. Locally the control plane's LocalDeployment (child `aegis serve`
 * processes behind the Aegis gateway); on a cluster, Argo Rollouts.
 */
export interface RolloutTarget {
  /** Starts (or, after a restart, re-attaches) the canary server for `version`, at weight 0. Throws if it cannot be verified or started. */
  deployCanary(model: string, version: string, options: { injectFault?: string }): Promise<void>;
  /** Sets the canary's share of inference traffic (0…100); takes effect for the next request. */
  setWeight(model: string, weight: number): Promise<void>;
  /** The canary becomes the stable; the old stable is drained and stopped. */
  promoteCanary(model: string): Promise<void>;
  /** Weight 0 (if not already), then the canary is drained and stopped. */
  removeCanary(model: string): Promise<void>;
  /** The gateway's per-track counters for the embedded metric provider; undefined where there are none. */
  trafficStats(model: string): TrafficStats | undefined;
}

/** Stage changes in the registry a rollout makes (Registry implements it in the control plane). */
export interface StageRecorder {
  canary(model: string, version: string, actor: string, reason: string): Promise<void>;
  production(model: string, version: string, actor: string, reason: string): Promise<void>;
  /** Audit entry for a rollout event (start, abort, promote, pause, resume). */
  audit(actor: string, action: string, model: string, version: string, details: Record<string, unknown>): Promise<void>;
}
