import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

export const exec = promisify(execFile);

/** Runs `fn` `runs` times after one warm-up and returns the median seconds. */
export async function median(runs: number, fn: () => Promise<unknown>): Promise<number> {
  await fn();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    await fn();
    times.push((performance.now() - t) / 1000);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

/** `--name=N` from a bench's arguments, else `dflt`. */
export function numberArg(args: string[], name: string, dflt: number): number {
  return Number(args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? dflt);
}

/** The median of numbers already measured. */
export function medianOf(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

export function gbps(bytes: number, seconds: number): string {
  return `${(bytes / seconds / 1e9).toFixed(2)} GB/s`;
}

export function table(rows: (string | number)[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  return rows.map((r) => r.map((c, i) => String(c).padEnd(widths[i]!)).join('  ')).join('\n');
}
