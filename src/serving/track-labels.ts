import { readFile } from 'node:fs/promises';
import type { Track } from './server.js';
import { childLogger } from '../log.js';

/** The pod label Argo Rollouts sets through canaryMetadata / stableMetadata (see `aegis rollout render-argo`). */
export const TRACK_LABEL = 'aegis.dev/track';

/**
 * A Kubernetes downward-API labels file (`fieldRef: metadata.labels`): one
 * `key="value"` per line, the value Go-quoted. Label values are limited to
 * [A-Za-z0-9._-], so JSON's string syntax reads every value the API server accepts.
 */
export function parseDownwardLabels(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    try {
      const value: unknown = JSON.parse(line.slice(eq + 1));
      if (typeof value === 'string') out[line.slice(0, eq)] = value;
    } catch {
      // not a quoted value: not a line of this format
    }
  }
  return out;
}

/** The track a labels file says (`aegis.dev/track: canary|stable`), or undefined when it says neither. */
export function trackFromLabels(labels: Record<string, string>): Track | undefined {
  const v = labels[TRACK_LABEL];
  return v === 'canary' || v === 'stable' ? v : undefined;
}

/**
 * Follows the track of this pod: reads `file` now and every `intervalMs`
 * (the kubelet rewrites it within about a minute of a label change, when
 * Argo promotes the canary's pods to stable), and calls `onTrack` when it
 * changes. A file that cannot be read or names no track keeps the last one.
 */
export async function followTrackLabel(file: string, onTrack: (t: Track) => void, intervalMs = 5000): Promise<{ track: Track | undefined; stop: () => void }> {
  const log = childLogger('serving');
  let current: Track | undefined;
  const read = async () => {
    const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
      log.warn({ event: 'track_labels_unreadable', file, err: err.message }, 'cannot read the pod labels file; keeping the track');
      return undefined;
    });
    const t = text === undefined ? undefined : trackFromLabels(parseDownwardLabels(text));
    if (t !== undefined && t !== current) {
      if (current !== undefined) log.info({ event: 'track_changed', from: current, to: t }, `track is now ${t}`);
      current = t;
      onTrack(t);
    }
  };
  await read();
  const timer = setInterval(() => void read(), intervalMs);
  timer.unref();
  return { track: current, stop: () => clearInterval(timer) };
}
