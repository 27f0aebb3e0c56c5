/**
 * Test support: type-checks data against TypeScript types, as the compiler
 * checks an object literal (excess properties included). Used to hold YAML
 * manifests to the Kubernetes API types of kubernetes-models, whose runtime
 * validate() ignores unknown fields while `kubectl apply` (strict field
 * validation, the default) refuses them.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const REPO = fileURLToPath(new URL('../..', import.meta.url));

export interface TypedValue {
  /** `import type { <name> } from '<module>'`. */
  type: { module: string; name: string };
  value: unknown;
  /** Shown with the value's errors. */
  label: string;
}

/** The compiler's errors per label (empty: every value has its type). One program for all values. */
export function typeErrors(values: TypedValue[]): Record<string, string[]> {
  const file = join(REPO, 'test', '__typecheck__.ts');
  const imports = [...new Set(values.map((v) => `import type { ${v.type.name} } from '${v.type.module}';`))];
  const lines = values.map((v, i) => `export const v${i}: ${v.type.name} = ${JSON.stringify(v.value)};`);
  const source = [...imports, ...lines].join('\n');
  const options: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2023,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    strict: true,
    skipLibCheck: true,
    noEmit: true,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, lang, ...rest) => (name === file ? ts.createSourceFile(name, source, lang) : getSourceFile(name, lang, ...rest));
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => name === file || fileExists(name);
  const program = ts.createProgram([file], options, host);
  const sf = program.getSourceFile(file)!;
  const out: Record<string, string[]> = Object.fromEntries(values.map((v) => [v.label, []]));
  for (const d of [...program.getSyntacticDiagnostics(sf), ...program.getSemanticDiagnostics(sf)]) {
    const line = d.start === undefined ? -1 : sf.getLineAndCharacterOfPosition(d.start).line - imports.length;
    const label = values[line]?.label ?? '(imports)';
    (out[label] ??= []).push(ts.flattenDiagnosticMessageText(d.messageText, '\n'));
  }
  return out;
}
