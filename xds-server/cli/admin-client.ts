// The CLI's side of the admin API: where it is, which token, and what came back.
import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import type { ConfigIssue } from '../../config/bundle.ts';

export const defaultAdminUrl = 'http://127.0.0.1:18080';
const repoRoot = resolve(import.meta.dirname, '..', '..');

export interface ClientSettings {
  server: string;
  env: Record<string, string | undefined>;
  cwd: string;
}

export type AdminResponse<T> = { ok: true; status: number; body: T } | { ok: false; code: string; detail: string; status: number | null; issues: ConfigIssue[] };

export interface AdminClient {
  request<T>(method: string, path: string, body?: { json: unknown } | { text: string; contentType: string }): Promise<AdminResponse<T>>;
}

export function adminUrlFrom(option: string | undefined, env: Record<string, string | undefined>): string {
  return (option ?? env.MANDATE_ADMIN_URL ?? defaultAdminUrl).replace(/\/+$/, '');
}

/** MANDATE_ADMIN_TOKEN, else the admin-token file in MANDATE_DATA_DIR (default .data under the repository). */
export function adminTokenFrom(env: Record<string, string | undefined>, cwd: string): { token: string } | { error: string } {
  if (env.MANDATE_ADMIN_TOKEN) return { token: env.MANDATE_ADMIN_TOKEN.trim() };
  const dataDir = env.MANDATE_DATA_DIR ? resolve(cwd, env.MANDATE_DATA_DIR) : join(repoRoot, '.data');
  const path = join(dataDir, 'admin-token');
  try {
    const token = readFileSync(path, 'utf8').trim();
    if (token) return { token };
  } catch {
    // Reported below with what to do about it.
  }
  return { error: `no admin token: set MANDATE_ADMIN_TOKEN, or start the control plane so it writes ${path}` };
}

export function createAdminClient(settings: ClientSettings): AdminClient {
  let token: string | null = null;
  return {
    async request<T>(method: string, path: string, body?: { json: unknown } | { text: string; contentType: string }): Promise<AdminResponse<T>> {
      if (token === null) {
        const found = adminTokenFrom(settings.env, settings.cwd);
        if ('error' in found) return { ok: false, code: 'no_admin_token', detail: found.error, status: null, issues: [] };
        token = found.token;
      }
      const headers: Record<string, string> = { authorization: `Bearer ${token}`, accept: 'application/json', 'x-mandate-actor': actorName(settings.env) };
      let payload: string | undefined;
      if (body && 'json' in body) {
        headers['content-type'] = 'application/json';
        payload = JSON.stringify(body.json);
      } else if (body) {
        headers['content-type'] = body.contentType;
        payload = body.text;
      }
      let response: Response;
      try {
        response = await fetch(`${settings.server}${path}`, { method, headers, ...(payload === undefined ? {} : { body: payload }), signal: AbortSignal.timeout(30_000) });
      } catch (error) {
        const cause = error instanceof Error && error.cause instanceof Error ? error.cause.message : error instanceof Error ? error.message : String(error);
        return { ok: false, code: 'connection_failed', detail: `cannot reach the admin API at ${settings.server} (${cause}); is the control plane running? (--server or MANDATE_ADMIN_URL)`, status: null, issues: [] };
      }
      const text = await response.text();
      let parsed: unknown = null;
      try {
        parsed = text ? JSON.parse(text) : null;
      } catch {
        return { ok: false, code: 'bad_response', detail: `the server at ${settings.server} answered ${response.status} with something that is not JSON`, status: response.status, issues: [] };
      }
      if (response.ok) return { ok: true, status: response.status, body: parsed as T };
      const problem = (parsed ?? {}) as { code?: string; detail?: string; issues?: ConfigIssue[] };
      return { ok: false, code: problem.code ?? `http_${response.status}`, detail: problem.detail ?? response.statusText, status: response.status, issues: problem.issues ?? [] };
    },
  };
}

function actorName(env: Record<string, string | undefined>): string {
  try {
    return userInfo().username;
  } catch {
    return env.USER ?? 'unknown';
  }
}
