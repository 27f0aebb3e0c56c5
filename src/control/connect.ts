import { readFileSync } from 'node:fs';
import { platformPaths, type AegisConfig } from '../config/index.js';
import { ControlClient } from './client.js';
import { controlToken } from './token.js';

/**
 * Where the CLI finds the control plane: control.url (AEGIS_CONTROL_URL), else
 * the running `aegis up` of this home (runningControlPlane: it may listen on
 * another port, --control-port), else the configured listening address (a
 * wildcard one read as loopback).
 */
export function controlUrl(config: AegisConfig): string {
  if (config.control.url) return config.control.url;
  return runningControlPlane(config) ?? loopback(`http://${config.control.host.includes(':') ? `[${config.control.host}]` : config.control.host}:${config.control.port}`);
}

/** What `aegis up` writes to <home>/control.url while it runs. */
export function controlPlaneRecord(url: string): string {
  return `${JSON.stringify({ url: loopback(url), pid: process.pid })}\n`;
}

/**
 * The URL the `aegis up` running from this home wrote to <home>/control.url,
 * when that process is alive and the URL is a loopback one; else undefined (no
 * such process, a file left by one that was killed, or one naming another
 * host: the CLI sends its bearer token there, so only this machine counts).
 */
export function runningControlPlane(config: AegisConfig): string | undefined {
  let rec: { url?: unknown; pid?: unknown };
  try {
    rec = JSON.parse(readFileSync(platformPaths(config).controlUrl, 'utf8')) as typeof rec;
  } catch {
    return undefined;
  }
  if (typeof rec.url !== 'string' || typeof rec.pid !== 'number' || !alive(rec.pid)) return undefined;
  try {
    const u = new URL(loopback(rec.url));
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return undefined;
    return LOOPBACK.has(u.hostname) ? u.toString().replace(/\/$/, '') : undefined;
  } catch {
    return undefined;
  }
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

/** A wildcard listening address (0.0.0.0, ::) as the loopback one a client connects to. */
function loopback(url: string): string {
  return url.replace(/^(https?:\/\/)(0\.0\.0\.0|\[::\])(?=[:/]|$)/, (_m, scheme: string, host: string) => `${scheme}${host === '[::]' ? '[::1]' : '127.0.0.1'}`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A client for the configured control plane, with its token (flag, config/env, or <home>/control.token). */
export async function connectControl(config: AegisConfig, actor: string, o: { url?: string; token?: string } = {}): Promise<ControlClient> {
  const token = await controlToken(o.token ?? config.control.token, platformPaths(config).controlToken, false);
  return new ControlClient(o.url ?? controlUrl(config), token, actor);
}
