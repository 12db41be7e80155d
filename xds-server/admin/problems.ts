// RFC 9457 problem responses with Mandate's stable codes (docs/errors.md).
import type { ServerResponse } from 'node:http';
import type { ConfigIssue } from '../../config/bundle.ts';
import type { Problem } from './api-schemas.ts';

export const problemCodes = {
  unauthorized: { status: 401, title: 'Unauthorized' },
  forbidden: { status: 403, title: 'Forbidden' },
  not_found: { status: 404, title: 'Not found' },
  method_not_allowed: { status: 405, title: 'Method not allowed' },
  unsupported_media_type: { status: 415, title: 'Unsupported media type' },
  payload_too_large: { status: 413, title: 'Payload too large' },
  invalid_json: { status: 400, title: 'Body is not valid JSON' },
  invalid_yaml: { status: 400, title: 'Body is not valid YAML' },
  invalid_request: { status: 400, title: 'Invalid request' },
  invalid_config: { status: 422, title: 'Invalid config' },
  conflict: { status: 409, title: 'Conflict' },
  config_write_contended: { status: 409, title: 'Config write contended' },
  config_replication_unavailable: { status: 503, title: 'Config replication unavailable' },
  config_revision_too_large: { status: 413, title: 'Config revision too large to replicate' },
  config_secrets_key_missing: { status: 422, title: 'Config secrets key missing' },
  internal_error: { status: 500, title: 'Internal error' },
} as const;

export type ProblemCode = keyof typeof problemCodes;

export function problem(code: ProblemCode, detail: string, issues?: ConfigIssue[]): Problem {
  const { status, title } = problemCodes[code];
  return { type: `urn:mandate:problem:${code}`, title, status, detail, code, ...(issues ? { issues } : {}) };
}

/** The problem for issues the store returned, by the most specific issue code. */
export function problemForIssues(issues: ConfigIssue[], detail = 'the config was rejected; nothing was applied'): Problem {
  const refusal = replicationRefusal(issues);
  if (refusal) return refusal;
  const notFound = issues.find((i) => i.code === 'not_found' || i.code === 'unknown_persona');
  if (notFound) return problem('not_found', notFound.message, issues);
  if (issues.some((i) => i.code === 'still_referenced')) return problem('conflict', 'the object is still referenced; nothing was changed', issues);
  return problem('invalid_config', detail, issues);
}

export function sendProblem(response: ServerResponse, body: Problem, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  response.writeHead(body.status, { 'content-type': 'application/problem+json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store', ...headers });
  response.end(text);
}

/** Scaled out, a write the replicated store could not commit comes back as one issue with one of these codes. */
const replicationRefusalCodes = ['config_replication_unavailable', 'config_write_contended', 'config_revision_too_large', 'config_secrets_key_missing'] as const;

export function replicationRefusal(issues: ConfigIssue[]): Problem | null {
  const refusal = issues.find((i) => (replicationRefusalCodes as readonly string[]).includes(i.code));
  return refusal ? problem(refusal.code as (typeof replicationRefusalCodes)[number], refusal.message) : null;
}

