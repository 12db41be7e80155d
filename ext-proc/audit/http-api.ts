// Audit search over HTTP, served by ext_proc (which owns its audit log):
//   GET /v1/audit/events?agent=&user=&persona=&tool=&verdict=&kind=&session=&request=&from=&to=&limit=&cursor=&order=
//   GET /v1/audit/report?agent=&from=&to=&format=json|html
// The caller (service.ts) has already checked the internal token. Bad input is
// an RFC 9457 problem with a stable code (docs/errors.md).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import type { AuditLog } from './log.ts';
import { AuditCursorError, auditFilterSchema, auditPageSchema, type AuditFilter } from './query.ts';
import { buildIncidentReport, renderIncidentReportHtml } from './report.ts';

export type SendProblem = (response: ServerResponse, status: number, code: string, title: string) => void;

/** A report is one synchronous pass on ext_proc's event loop: larger windows go to `mandate report`. */
export const maxReportEvents = 200_000;

/** ISO 8601 or milliseconds since the epoch, as the CLI takes them. */
const timeParameter = z.string().transform((value, context) => {
  const ms = /^\d+$/.test(value) ? Number(value) : Date.parse(value);
  if (Number.isNaN(ms)) {
    context.addIssue({ code: 'custom', message: `"${value}" is not an ISO 8601 time or milliseconds since the epoch` });
    return z.NEVER;
  }
  return ms;
});

const filterParameters = {
  agent: auditFilterSchema.shape.agent,
  user: auditFilterSchema.shape.user,
  persona: auditFilterSchema.shape.persona,
  tool: auditFilterSchema.shape.tool,
  verdict: auditFilterSchema.shape.verdict,
  kind: auditFilterSchema.shape.kind,
  session: auditFilterSchema.shape.sessionId,
  request: auditFilterSchema.shape.requestId,
  from: timeParameter.optional(),
  to: timeParameter.optional(),
};

export const auditEventsQuerySchema = z.strictObject({
  ...filterParameters,
  limit: z.coerce.number().pipe(auditPageSchema.shape.limit.unwrap()).optional(),
  cursor: auditPageSchema.shape.cursor,
  order: auditPageSchema.shape.order.unwrap().optional(),
});

export const auditReportQuerySchema = z.strictObject({
  agent: z.string().min(1),
  from: timeParameter,
  to: timeParameter,
  format: z.enum(['json', 'html']).default('json'),
});

export function handleAuditApi(request: IncomingMessage, response: ServerResponse, audit: Pick<AuditLog, 'query' | 'store'>, sendProblem: SendProblem, now: () => number = Date.now): void {
  if (request.method !== 'GET') {
    response.setHeader('allow', 'GET');
    sendProblem(response, 405, 'method_not_allowed', 'the audit API is read-only: use GET');
    return;
  }
  const url = new URL(request.url ?? '/', 'http://ext-proc');
  const parameters = singleValued(url.searchParams);
  if (typeof parameters === 'string') {
    sendProblem(response, 400, 'invalid_audit_query', `query parameter "${parameters}" is given more than once`);
    return;
  }
  if (url.pathname === '/v1/audit/events') {
    const parsed = auditEventsQuerySchema.safeParse(parameters);
    if (!parsed.success) {
      sendProblem(response, 400, 'invalid_audit_query', describeIssues(parsed.error));
      return;
    }
    const { limit, cursor, order, ...rest } = parsed.data;
    if (!timeWindowValid(rest.from, rest.to, response, sendProblem)) return;
    try {
      const page = audit.query(filterOf(rest), { ...(limit !== undefined ? { limit } : {}), ...(cursor !== undefined ? { cursor } : {}), ...(order ? { order } : {}) });
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(page));
    } catch (error) {
      if (error instanceof AuditCursorError) sendProblem(response, 400, 'invalid_cursor', 'the cursor is not one this API returned');
      else throw error;
    }
    return;
  }
  const parsed = auditReportQuerySchema.safeParse(parameters);
  if (!parsed.success) {
    sendProblem(response, 400, 'invalid_audit_query', describeIssues(parsed.error));
    return;
  }
  const { agent, from, to, format } = parsed.data;
  if (!timeWindowValid(from, to, response, sendProblem)) return;
  const events = countAgentEvents(audit, agent, from, to);
  if (events > maxReportEvents) {
    sendProblem(response, 422, 'audit_report_too_large', `the window holds ${events} events of agent "${agent}" (at most ${maxReportEvents} here); narrow it, or run \`mandate report\` beside the audit directory`);
    return;
  }
  const report = buildIncidentReport(audit.store, { agent, fromMs: from, toMs: to, nowMs: now() });
  if (format === 'html') {
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; img-src data:" }).end(renderIncidentReportHtml(report));
  } else {
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(report));
  }
}

function filterOf(parameters: { agent?: string | undefined; user?: string | undefined; persona?: string | undefined; tool?: string | undefined; verdict?: AuditFilter['verdict']; kind?: AuditFilter['kind']; session?: string | undefined; request?: string | undefined; from?: number | undefined; to?: number | undefined }): AuditFilter {
  const filter: AuditFilter = {};
  if (parameters.agent !== undefined) filter.agent = parameters.agent;
  if (parameters.user !== undefined) filter.user = parameters.user;
  if (parameters.persona !== undefined) filter.persona = parameters.persona;
  if (parameters.tool !== undefined) filter.tool = parameters.tool;
  if (parameters.verdict !== undefined) filter.verdict = parameters.verdict;
  if (parameters.kind !== undefined) filter.kind = parameters.kind;
  if (parameters.session !== undefined) filter.sessionId = parameters.session;
  if (parameters.request !== undefined) filter.requestId = parameters.request;
  if (parameters.from !== undefined) filter.fromMs = parameters.from;
  if (parameters.to !== undefined) filter.toMs = parameters.to;
  return filter;
}

function timeWindowValid(from: number | undefined, to: number | undefined, response: ServerResponse, sendProblem: SendProblem): boolean {
  if (from !== undefined && to !== undefined && from >= to) {
    sendProblem(response, 400, 'invalid_time_window', '"from" must be earlier than "to" (from is inclusive, to exclusive)');
    return false;
  }
  return true;
}

function countAgentEvents(audit: Pick<AuditLog, 'store'>, agent: string, fromMs: number, toMs: number): number {
  return (audit.store.prepare('SELECT COUNT(*) AS n FROM audit_events WHERE agent = ? AND at_ms >= ? AND at_ms < ?').get(agent, fromMs, toMs) as { n: number }).n;
}

/** The parameters as a plain object, or the name of one given twice. */
function singleValued(searchParams: URLSearchParams): Record<string, string> | string {
  const out = new Map<string, string>();
  for (const [key, value] of searchParams) {
    if (out.has(key)) return key;
    out.set(key, value);
  }
  return Object.fromEntries(out);
}

function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      if (issue.code === 'unrecognized_keys') return `unknown query parameter(s): ${issue.keys.join(', ')}`;
      return `${issue.path.join('.') || 'query'}: ${issue.message}`;
    })
    .join('; ');
}
