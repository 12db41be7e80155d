// Search the audit trail: by agent, user, Persona, tool, verdict, kind, session,
// request and time, newest first, with an opaque cursor. Agent, user, Persona,
// tool, verdict, kind and time have a (column, at_ms) index, so pages stay fast
// on millions of events; session and request ids are filtered within those.
import { and, asc, desc, eq, gt, gte, lt, sql, type SQL } from 'drizzle-orm';
import { z } from 'zod';
import { auditEvents } from './schema.ts';
import type { AuditStore } from './store.ts';
import type { AuditEvent } from './event.ts';

export const auditFilterSchema = z.object({
  agent: z.string().optional(),
  user: z.string().optional(),
  persona: z.string().optional(),
  tool: z.string().optional(),
  verdict: z.enum(['allow', 'deny']).optional(),
  kind: z.enum(['decision', 'response', 'admin', 'alert']).optional(),
  sessionId: z.string().optional(),
  requestId: z.string().optional(),
  /** Inclusive, milliseconds since the epoch. */
  fromMs: z.number().int().optional(),
  /** Exclusive, milliseconds since the epoch. */
  toMs: z.number().int().optional(),
});
export type AuditFilter = z.infer<typeof auditFilterSchema>;

export const auditPageSchema = z.object({
  limit: z.number().int().min(1).max(1000).default(100),
  /** From a previous page's nextCursor. */
  cursor: z.string().optional(),
  order: z.enum(['newest', 'oldest']).default('newest'),
});
export type AuditPageRequest = z.input<typeof auditPageSchema>;

export interface AuditPage {
  events: AuditEvent[];
  /** Pass as `cursor` for the next page; null when this was the last. */
  nextCursor: string | null;
}

export class AuditCursorError extends Error {
  override readonly name = 'AuditCursorError';
  readonly code = 'invalid_cursor';
}

export function encodeCursor(seq: number): string {
  return Buffer.from(`seq:${seq}`).toString('base64url');
}

export function decodeCursor(cursor: string): number {
  const match = /^seq:(\d+)$/.exec(Buffer.from(cursor, 'base64url').toString());
  if (!match) throw new AuditCursorError('the cursor is not one this API returned');
  return Number(match[1]);
}

export function filterConditions(filter: AuditFilter): SQL[] {
  const conditions: SQL[] = [];
  if (filter.agent !== undefined) conditions.push(eq(auditEvents.agent, filter.agent));
  if (filter.user !== undefined) conditions.push(eq(auditEvents.user, filter.user));
  if (filter.persona !== undefined) conditions.push(eq(auditEvents.persona, filter.persona));
  if (filter.tool !== undefined) conditions.push(eq(auditEvents.tool, filter.tool));
  // verdict and kind have two to four values: when an indexed selective filter is
  // also present, the unary + keeps SQLite from choosing their index over it.
  // (session and request ids have no index: they are looked up within a time window.)
  const selective = conditions.length > 0;
  // Their rare values have partial indexes (store.ts), which SQLite uses only
  // when the query spells the same literal condition, not a bound parameter.
  if (filter.verdict !== undefined) {
    conditions.push(selective ? sql`+${auditEvents.verdict} = ${filter.verdict}` : filter.verdict === 'deny' ? sql`${auditEvents.verdict} = 'deny'` : eq(auditEvents.verdict, filter.verdict));
  }
  if (filter.kind !== undefined) {
    const partial = filter.kind === 'admin' ? sql`${auditEvents.kind} = 'admin'` : filter.kind === 'alert' ? sql`${auditEvents.kind} = 'alert'` : null;
    conditions.push(selective || filter.verdict === 'deny' ? sql`+${auditEvents.kind} = ${filter.kind}` : (partial ?? eq(auditEvents.kind, filter.kind)));
  }
  if (filter.sessionId !== undefined) conditions.push(eq(auditEvents.sessionId, filter.sessionId));
  if (filter.requestId !== undefined) conditions.push(eq(auditEvents.requestId, filter.requestId));
  if (filter.fromMs !== undefined) conditions.push(gte(auditEvents.atMs, filter.fromMs));
  if (filter.toMs !== undefined) conditions.push(lt(auditEvents.atMs, filter.toMs));
  return conditions;
}

export function queryAuditEvents(store: AuditStore, filter: AuditFilter, page: AuditPageRequest = {}): AuditPage {
  const { limit, cursor, order } = auditPageSchema.parse(page);
  const conditions = filterConditions(auditFilterSchema.parse(filter));
  if (cursor !== undefined) {
    const after = decodeCursor(cursor);
    conditions.push(order === 'newest' ? lt(auditEvents.seq, after) : gt(auditEvents.seq, after));
  }
  const query = store.db
    .select({ seq: auditEvents.seq, body: auditEvents.body })
    .from(auditEvents)
    .where(conditions.length ? and(...conditions) : undefined)
    // at_ms never decreases with seq (the log makes its clock monotonic), so this
    // is seq order, and it is the order of every (column, at_ms) index: no sort.
    .orderBy(...(order === 'newest' ? [desc(auditEvents.atMs), desc(auditEvents.seq)] : [asc(auditEvents.atMs), asc(auditEvents.seq)]))
    .limit(limit + 1)
    .toSQL();
  const rows = store.prepare(query.sql).all(...query.params) as { seq: number; body: string }[];
  const events = rows.slice(0, limit).map((row) => JSON.parse(row.body) as AuditEvent);
  const last = events[events.length - 1];
  return { events, nextCursor: rows.length > limit && last ? encodeCursor(last.seq) : null };
}

/** Every matching event, oldest first, streamed in pages: for exports and reports. */
export function* scanAuditEvents(store: AuditStore, filter: AuditFilter, pageSize = 1000): Generator<AuditEvent> {
  let cursor: string | undefined;
  for (;;) {
    const page = queryAuditEvents(store, filter, { limit: pageSize, order: 'oldest', ...(cursor ? { cursor } : {}) });
    yield* page.events;
    if (!page.nextCursor) return;
    cursor = page.nextCursor;
  }
}
