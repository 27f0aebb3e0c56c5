import { readFileSync } from 'node:fs';
import { platformPaths, type AegisConfig } from '../config/index.js';
import { ControlClient } from './client.js';
import { controlToken } from './token.js';

/**
 * Where the CLI finds the control plane: control.url (AEGIS_CONTROL_URL), else
 * the address the running `aegis up` wrote to <home>/control.url (it may
 * listen on another port: --control-port), else the configured listening
 * address (a wildcard one read as loopback).
 */
export function controlUrl(config: AegisConfig): string {
  if (config.control.url) return config.control.url;
  try {
    const written = readFileSync(platformPaths(config).controlUrl, 'utf8').trim();
    if (/^https?:\/\/\S+$/.test(written)) return written;
  } catch {
    // no aegis up running from this home (or it could not write the file)
  }
  const host = config.control.host === '0.0.0.0' || config.control.host === '::' ? '127.0.0.1' : config.control.host;
  return `http://${host.includes(':') ? `[${host}]` : host}:${config.control.port}`;
}

/** A client for the configured control plane, with its token (flag, config/env, or <home>/control.token). */
export async function connectControl(config: AegisConfig, actor: string, o: { url?: string; token?: string } = {}): Promise<ControlClient> {
  const token = await controlToken(o.token ?? config.control.token, platformPaths(config).controlToken, false);
  return new ControlClient(o.url ?? controlUrl(config), token, actor);
}
