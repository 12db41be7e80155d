// Which trace an audit event belongs to. A request that carries a valid W3C
// `traceparent` (Trace Context, level 1) puts Mandate's spans and log records in
// the caller's trace, as children of the caller's span; otherwise Envoy's UUID
// request id names the trace, so the events of one request still share one.
import type { TraceParent } from '../decision/decision.ts';

const allZero = /^0+$/;

/**
 * The trace id and parent span id of a traceparent header, or null when it is not a valid one (the
 * spec's rule: a header that does not parse is ignored). Versions other than 00 are read by their
 * first four fields, as the spec asks of a version it does not know; version ff is invalid.
 */
export function parseTraceparent(value: string | null | undefined): TraceParent | null {
  if (!value) return null;
  const header = value.trim();
  const match = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/.exec(header);
  if (!match) return null;
  const [, version, traceId, parentSpanId, , rest] = match;
  if (version === 'ff') return null;
  if (version === '00' && rest !== undefined) return null;
  if (allZero.test(traceId!) || allZero.test(parentSpanId!)) return null;
  return { traceId: traceId!, parentSpanId: parentSpanId! };
}

/**
 * The W3C trace id for a request when Envoy's x-request-id is a UUID (Envoy's
 * default): its 32 hex digits. Every event of that request then lands in one
 * trace, findable by request id. Null for any other request id.
 */
export function traceIdFromRequestId(requestId: string | null): string | null {
  if (!requestId) return null;
  const lower = requestId.toLowerCase();
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(lower)) return null;
  const hex = lower.replace(/-/g, '');
  return allZero.test(hex) ? null : hex;
}

/** The trace an event of this request belongs to: the caller's when it sent one, else the request id's. */
export function auditTraceOf(context: { trace?: TraceParent | null; requestId: string | null }): { traceId: string | null; parentSpanId: string | null } {
  if (context.trace) return { traceId: context.trace.traceId, parentSpanId: context.trace.parentSpanId };
  return { traceId: traceIdFromRequestId(context.requestId), parentSpanId: null };
}
