import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { accessSync, constants, readdirSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { AegisError } from '../errors.js';

/**
 * pg_dump and pg_restore (Debian's postgresql-client): found at a configured
 * path (config backup.pgDumpPath / backup.pgRestorePath, env
 * AEGIS_PG_DUMP_PATH / AEGIS_PG_RESTORE_PATH), else on PATH, else in
 * /usr/lib/postgresql/<newest>/bin. Passwords go through PGPASSWORD, never
 * the command line (which other users can read in `ps`).
 */
export type PgTool = 'pg_dump' | 'pg_restore';

export interface PgToolPaths {
  pgDump?: string | undefined;
  pgRestore?: string | undefined;
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function versionDirs(root = '/usr/lib/postgresql'): string[] {
  try {
    return readdirSync(root)
      .filter((d) => /^\d+(\.\d+)?$/.test(d))
      .sort((a, b) => Number(b) - Number(a))
      .map((d) => join(root, d, 'bin'));
  } catch {
    return [];
  }
}

export function findPgTool(tool: PgTool, configured?: string, env: NodeJS.ProcessEnv = process.env): string {
  const setting = tool === 'pg_dump' ? 'backup.pgDumpPath (AEGIS_PG_DUMP_PATH)' : 'backup.pgRestorePath (AEGIS_PG_RESTORE_PATH)';
  if (configured) {
    if (executable(configured)) return configured;
    throw new AegisError('BACKUP_TOOL_MISSING', `${tool} is configured as ${configured}, which is not an executable file`, {
      hint: `Fix ${setting}, or unset it to use ${tool} from PATH (apt-get install postgresql-client).`,
      details: { tool, path: configured },
    });
  }
  const candidates = [...(env.PATH ?? '').split(delimiter).filter(Boolean), ...versionDirs()].map((d) => join(d, tool));
  const found = candidates.find(executable);
  if (found) return found;
  throw new AegisError('BACKUP_TOOL_MISSING', `${tool} was not found on PATH or under /usr/lib/postgresql/*/bin`, {
    hint: `Install the PostgreSQL client programs (Debian/Ubuntu: apt-get install postgresql-client; same major version as the server or newer), or set ${setting}.`,
    details: { tool },
  });
}

/** Connection arguments for a libpq tool: the URL without its password, which goes in PGPASSWORD. */
export function connection(url: string): { dbname: string; env: NodeJS.ProcessEnv } {
  const u = new URL(url);
  const password = u.password ? decodeURIComponent(u.password) : undefined;
  u.password = '';
  return { dbname: u.toString(), env: password === undefined ? {} : { PGPASSWORD: password } };
}

export interface ToolRun {
  child: ChildProcessByStdio<Writable | null, Readable, Readable>;
  /** Resolves when the program exits 0; rejects with its stderr otherwise. */
  done: Promise<void>;
}

const STDERR_LIMIT = 64 * 1024;

/** Starts a tool with stdout piped (stdin closed unless asked for); `done` reports its exit. */
export function runTool(path: string, args: string[], o: { env?: NodeJS.ProcessEnv; what: string; stdin?: boolean }): ToolRun {
  const child = spawn(path, args, {
    stdio: [o.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    env: { ...process.env, PGAPPNAME: 'aegis-backup', ...o.env },
  }) as ChildProcessByStdio<Writable | null, Readable, Readable>;
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (s: string) => {
    if (stderr.length < STDERR_LIMIT) stderr += s;
  });
  const done = new Promise<void>((resolve, reject) => {
    child.on('error', (err) =>
      reject(
        new AegisError('BACKUP_TOOL_MISSING', `cannot run ${path}: ${err.message}`, {
          cause: err,
          hint: 'Check the path and that it is executable (apt-get install postgresql-client).',
          details: { path },
        }),
      ),
    );
    child.on('close', (code, signal) => {
      if (code === 0) return resolve();
      const detail = stderr.trim().split('\n').slice(-5).join('\n') || (signal ? `killed by ${signal}` : `exit status ${code}`);
      reject(new ToolError(o.what, path, code, signal, detail));
    });
  });
  done.catch(() => undefined); // observed by the caller; never an unhandled rejection
  return { child, done };
}

export class ToolError extends Error {
  readonly what: string;
  readonly path: string;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stderr: string;

  constructor(what: string, path: string, code: number | null, signal: NodeJS.Signals | null, stderr: string) {
    super(`${what} failed (${code === null ? `signal ${signal}` : `exit status ${code}`}): ${stderr}`);
    this.name = 'ToolError';
    this.what = what;
    this.path = path;
    this.code = code;
    this.signal = signal;
    this.stderr = stderr;
  }
}

/** `pg_dump (PostgreSQL) 15.18 (Debian …)` → { text, major: 15 }. */
export async function toolVersion(path: string): Promise<{ text: string; major: number }> {
  const run = runTool(path, ['--version'], { what: `${path} --version` });
  let out = '';
  run.child.stdout.setEncoding('utf8');
  run.child.stdout.on('data', (s: string) => (out += s));
  await run.done;
  const text = out.trim().replace(/\s*\(Debian.*\)$/, '').replace(/\s*\(Ubuntu.*\)$/, '');
  const m = /\)\s*(\d+)(?:\.(\d+))?/.exec(text);
  return { text, major: m ? Number(m[1]) : 0 };
}

/** Refuses a client older than the server (pg_dump cannot dump a newer server). */
export function checkToolVersion(tool: PgTool, path: string, toolMajor: number, serverVersion: string): void {
  const serverMajor = Number(/^(\d+)/.exec(serverVersion)?.[1] ?? 0);
  if (toolMajor && serverMajor && toolMajor < serverMajor) {
    throw new AegisError('BACKUP_TOOL_MISSING', `${path} is version ${toolMajor}, older than the PostgreSQL ${serverVersion} server`, {
      hint: `Install postgresql-client-${serverMajor} (or newer) and point ${tool === 'pg_dump' ? 'backup.pgDumpPath' : 'backup.pgRestorePath'} at it.`,
      details: { tool, path, toolMajor, serverVersion },
    });
  }
}
