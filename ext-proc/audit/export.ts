// Getting the trail out: JSONL (a file or a stream), a polling tail for another
// process, and OpenTelemetry spans through @opentelemetry/api (whatever SDK and
// exporter the host process registered decide where they go).
import { SpanKind, SpanStatusCode, TraceFlags, context as otelContext, trace, type Context, type Tracer } from '@opentelemetry/api';
import type { AuditEvent } from './event.ts';
import { filterConditions, type AuditFilter } from './query.ts';
import { auditEvents } from './schema.ts';
import { and, asc, gt } from 'drizzle-orm';
import type { AuditStore } from './store.ts';

/** Matching events as JSON lines, oldest first, streamed from the store (the stored body, byte for byte). */
export function* exportJsonl(store: AuditStore, filter: AuditFilter, afterSeq = 0): Generator<string> {
  let cursor = afterSeq;
  for (;;) {
    const rows = pageAfter(store, filter, cursor, 1000);
    for (const row of rows) yield `${row.body}\n`;
    const last = rows[rows.length - 1];
    if (!last) return;
    cursor = last.seq;
  }
}

function pageAfter(store: AuditStore, filter: AuditFilter, afterSeq: number, limit: number): { seq: number; body: string }[] {
  const query = store.db
    .select({ seq: auditEvents.seq, body: auditEvents.body })
    .from(auditEvents)
    .where(and(gt(auditEvents.seq, afterSeq), ...filterConditions(filter)))
    .orderBy(asc(auditEvents.seq))
    .limit(limit)
    .toSQL();
  return store.prepare(query.sql).all(...query.params) as { seq: number; body: string }[];
}

/**
 * Follow the trail from another process: every `intervalMs`, emit events
 * committed since the last one seen. Stops when the signal aborts.
 */
export async function tailAuditEvents(store: AuditStore, filter: AuditFilter, options: { afterSeq: number; intervalMs: number; signal: AbortSignal; onLine: (line: string) => void }): Promise<number> {
  let cursor = options.afterSeq;
  while (!options.signal.aborted) {
    for (const row of pageAfter(store, filter, cursor, 1000)) {
      options.onLine(`${row.body}\n`);
      cursor = row.seq;
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, options.intervalMs);
      options.signal.addEventListener('abort', () => {
        clearTimeout(timer);
        resolve();
      }, { once: true });
    });
  }
  return cursor;
}

/** Attributes for an audit event, OpenTelemetry semantic names where one exists. */
export function spanAttributes(event: AuditEvent): Record<string, string | number | boolean | string[]> {
  const attributes: Record<string, string | number | boolean | string[]> = { 'mandate.audit.seq': event.seq, 'mandate.audit.kind': event.kind };
  const put = (key: string, value: string | number | boolean | null | undefined) => {
    if (value !== null && value !== undefined) attributes[key] = value;
  };
  put('mandate.agent', event.agent);
  put('enduser.id', event.user);
  put('mandate.persona', event.persona);
  put('mandate.config_version', event.configVersion);
  put('session.id', event.sessionId);
  put('mandate.upstream', event.upstream);
  put('rpc.method', event.operation);
  put('gen_ai.tool.name', event.tool);
  put('mandate.arguments_digest', event.argumentsDigest);
  put('mandate.verdict', event.verdict);
  put('mandate.enforced', event.enforced);
  put('mandate.risk_score', event.riskScore);
  put('mandate.latency_ms', event.latencyMs);
  put('http.response.status_code', event.upstreamStatus);
  put('http.request.header.x-request-id', event.requestId);
  if (event.reasons.length) attributes['mandate.reason_codes'] = event.reasons.map((r) => r.code);
  if (event.findingTypes.length) attributes['mandate.dlp.finding_types'] = event.findingTypes;
  if (event.admin) {
    put('mandate.admin.actor', event.admin.actor);
    put('mandate.admin.action', event.admin.action);
    put('mandate.admin.target', event.admin.target);
  }
  if (event.alert) {
    put('mandate.alert.name', event.alert.name);
    put('mandate.alert.severity', event.alert.severity);
  }
  return attributes;
}

/**
 * One span per audit event, ending at its time and lasting its latency. It joins
 * the event's trace (trace-context.ts): as a child of the caller's span when the
 * request carried a traceparent, else under a parent id derived from the request
 * id. The Envoy request id is an attribute either way.
 */
export function exportSpan(tracer: Tracer, event: AuditEvent): void {
  const parent = traceContextOf(event) ?? otelContext.active();
  const durationMs = event.latencyMs ?? 0;
  const span = tracer.startSpan(
    `mandate.${event.kind}${event.tool ? ` ${event.tool}` : ''}`,
    { kind: SpanKind.INTERNAL, startTime: event.at - durationMs, attributes: spanAttributes(event) },
    parent,
  );
  if (event.verdict === 'deny') span.setStatus({ code: SpanStatusCode.ERROR, message: event.reasons.map((r) => r.code).join(' ') || 'denied' });
  if (event.alert) span.addEvent('mandate.alert', { name: event.alert.name, severity: event.alert.severity, message: event.alert.message }, event.at);
  span.end(event.at);
}

/** The OpenTelemetry context of the event's trace (its parent span remote), or null when it belongs to none. */
export function traceContextOf(event: AuditEvent): Context | null {
  if (!event.traceId || !/^[0-9a-f]{32}$/.test(event.traceId) || /^0+$/.test(event.traceId)) return null;
  return trace.setSpanContext(otelContext.active(), { traceId: event.traceId, spanId: event.parentSpanId ?? spanIdFor(event), traceFlags: TraceFlags.SAMPLED, isRemote: true });
}

/** Without a caller's span: a stable parent span id derived from the request id. */
export function spanIdFor(event: AuditEvent): string {
  const source = event.requestId ?? String(event.seq);
  let a = 0x811c9dc5;
  let b = 0x01000193;
  for (let i = 0; i < source.length; i += 1) {
    a = Math.imul(a ^ source.charCodeAt(i), 0x01000193) >>> 0;
    b = Math.imul(b ^ source.charCodeAt(i), 0x5bd1e995) >>> 0;
  }
  const id = `${a.toString(16).padStart(8, '0')}${b.toString(16).padStart(8, '0')}`;
  return id === '0000000000000000' ? '0000000000000001' : id;
}
