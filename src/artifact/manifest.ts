import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { AegisError, fsError } from '../errors.js';

/** The model manifest file, at the model root; it is signed with the model. */
export const MANIFEST_FILE = 'aegis.yaml';

const NAME = /^[a-z0-9][a-z0-9._-]{0,127}$/;
const VERSION = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/;

const dtype = z.enum(['float16', 'float32', 'float64', 'int8', 'int16', 'int32', 'int64', 'uint8', 'uint16', 'uint32', 'uint64', 'bool', 'string']);

const tensor = z
  .object({
    name: z.string().min(1),
    dtype,
    /** Dimensions; -1 is a dynamic size (the first one is usually the batch). */
    shape: z.array(z.number().int().min(-1)).max(16),
    description: z.string().optional(),
  })
  .strict();

export const manifestSchema = z
  .object({
    apiVersion: z.literal('aegis.dev/v1'),
    kind: z.literal('Model'),
    name: z.string().regex(NAME, 'lowercase letters, digits, ".", "_" or "-", starting with a letter or digit'),
    version: z.string().regex(VERSION, 'letters, digits, ".", "_", "+" or "-" (e.g. 0.1 or 1.2.3)'),
    description: z.string().optional(),
    framework: z.enum(['onnx', 'pytorch', 'tensorflow', 'sklearn', 'xgboost', 'other']),
    runtime: z
      .object({ name: z.string().min(1), version: z.string().optional() })
      .strict(),
    /** The model file the runtime loads, relative to the model root. */
    entrypoint: z.string().min(1).optional(),
    inputs: z.array(tensor).min(1, 'a model needs at least one input'),
    outputs: z.array(tensor).min(1, 'a model needs at least one output'),
    /** Training / evaluation metrics (held-out split). */
    metrics: z.record(z.string(), z.number()).default({}),
    dataset: z.object({ uri: z.string().min(1), digest: z.string().optional() }).strict().optional(),
    /** Lineage: the version this one was derived from. */
    parent: z.object({ name: z.string().regex(NAME).optional(), version: z.string().regex(VERSION) }).strict().optional(),
    labels: z.record(z.string(), z.string()).default({}),
  })
  .strict()
  .superRefine((m, ctx) => {
    const dup = (list: { name: string }[], field: 'inputs' | 'outputs') => {
      const seen = new Set<string>();
      list.forEach((t, i) => {
        if (seen.has(t.name)) ctx.addIssue({ code: 'custom', path: [field, i, 'name'], message: `duplicate tensor name ${t.name}` });
        seen.add(t.name);
      });
    };
    dup(m.inputs, 'inputs');
    dup(m.outputs, 'outputs');
    if (m.entrypoint && (m.entrypoint.startsWith('/') || m.entrypoint.split('/').includes('..'))) {
      ctx.addIssue({ code: 'custom', path: ['entrypoint'], message: 'must be a path inside the model' });
    }
  });

export type ModelManifest = z.infer<typeof manifestSchema>;

function invalid(source: string, message: string, field?: string): AegisError {
  return new AegisError('MANIFEST_INVALID', `model manifest ${source} is invalid: ${message}`, {
    hint: `Fix ${field ? `"${field}" in ` : ''}${MANIFEST_FILE}; see docs/model-manifest.md for every field.`,
    details: { source, ...(field ? { field } : {}) },
  });
}

export function parseManifest(text: string, source: string): ModelManifest {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw invalid(source, `not valid YAML (${(err as Error).message.split('\n')[0]})`);
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw invalid(source, 'not a YAML mapping');
  const r = manifestSchema.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0]!;
    const field = i.path.map(String).join('.') || '(root)';
    throw invalid(source, `${field}: ${i.message}`, field);
  }
  return r.data;
}

/** Reads and validates `<modelDir>/aegis.yaml`. */
export async function readManifest(modelDir: string): Promise<ModelManifest> {
  const path = join(modelDir, MANIFEST_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new AegisError('MANIFEST_MISSING', `model ${modelDir} has no ${MANIFEST_FILE}`, {
        hint: `Add ${MANIFEST_FILE} (name, version, framework, runtime, inputs, outputs); see docs/model-manifest.md.`,
        details: { path },
      });
    }
    throw fsError(err, path, 'model manifest');
  }
  return parseManifest(text, path);
}
