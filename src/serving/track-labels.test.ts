import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../test-support/fs.js';
import { followTrackLabel, parseDownwardLabels, trackFromLabels } from './track-labels.js';

// What the kubelet writes for `fieldRef: metadata.labels` (sorted keys, Go-quoted values).
const KUBELET = 'aegis.dev/model="example-multimodal"\naegis.dev/track="canary"\napp.kubernetes.io/name="aegis-model-server"\nrollouts-pod-template-hash="6b8f9c7d5"';

describe('the track of a pod, from its downward-API labels file', () => {
  it('reads the labels the kubelet writes, and the track among them', () => {
    const labels = parseDownwardLabels(KUBELET);
    expect(labels).toEqual({ 'aegis.dev/model': 'example-multimodal', 'aegis.dev/track': 'canary', 'app.kubernetes.io/name': 'aegis-model-server', 'rollouts-pod-template-hash': '6b8f9c7d5' });
    expect(trackFromLabels(labels)).toBe('canary');
    expect(trackFromLabels(parseDownwardLabels('aegis.dev/track="stable"\n'))).toBe('stable');
    // Neither track, no label, garbage: no track (the server keeps the one it has).
    for (const text of ['aegis.dev/track="blue"', 'app="x"', '', 'not a labels file', 'aegis.dev/track=canary']) expect(trackFromLabels(parseDownwardLabels(text)), text).toBeUndefined();
  });

  it('follows the file: a promotion (canary → stable) reaches the server; an unreadable file keeps the last track', async () => {
    const dir = await tempDir('aegis-track-');
    const file = join(dir.path, 'labels');
    try {
      await writeFile(file, KUBELET);
      const seen: string[] = [];
      const f = await followTrackLabel(file, (t) => seen.push(t), 10);
      expect(f.track).toBe('canary');
      await writeFile(file, KUBELET.replace('"canary"', '"stable"'));
      for (let i = 0; i < 200 && seen.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
      await rm(file);
      await new Promise((r) => setTimeout(r, 50));
      f.stop();
      expect(seen).toEqual(['canary', 'stable']);
    } finally {
      await dir.cleanup();
    }
  });
});
