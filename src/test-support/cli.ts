import { expect, vi } from 'vitest';
import { main } from '../cli/main.js';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `aegis ARGS` in-process, capturing stdout, stderr and the exit code. */
export async function runCli(...args: string[]): Promise<RunResult> {
  let stdout = '';
  let stderr = '';
  const text = (chunk: string | Uint8Array) => (typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout += text(chunk);
    return true;
  });
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr += text(chunk);
    return true;
  });
  process.exitCode = undefined;
  try {
    await main(['node', 'aegis', ...args]);
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
  const code = Number(process.exitCode ?? 0);
  process.exitCode = undefined;
  return { code, stdout, stderr };
}

/** Runs a command that must succeed, failing the test with its output otherwise. */
export async function okCli(...args: string[]): Promise<RunResult> {
  const r = await runCli(...args);
  expect(r.code, `aegis ${args.join(' ')} failed:\n${r.stderr}${r.stdout}`).toBe(0);
  return r;
}
