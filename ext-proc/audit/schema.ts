// The audit tables as drizzle declares them: the single description of columns
// that queries are written against. store.ts creates them (plus the append-only
// triggers drizzle cannot express); store.test.ts checks the two agree.
import { sql } from 'drizzle-orm';
import { index, integer, real, sqliteTable, text } from 'drizzle-orm/sqlite-core';

/**
 * One row per audit event. `body` is the exact JSON that was journaled and
 * hashed; the other columns are copies of body fields kept for indexed search
 * (verify checks they still match the body).
 */
export const auditEvents = sqliteTable(
  'audit_events',
  {
    seq: integer('seq').primaryKey(),
    atMs: integer('at_ms').notNull(),
    kind: text('kind').notNull(),
    agent: text('agent'),
    user: text('user'),
    persona: text('persona'),
    tool: text('tool'),
    verdict: text('verdict'),
    sessionId: text('session_id'),
    requestId: text('request_id'),
    /** Space-separated reason codes, for grouping denials without parsing bodies. */
    reasonCodes: text('reason_codes').notNull(),
    argumentsDigest: text('arguments_digest'),
    latencyMs: real('latency_ms'),
    body: text('body').notNull(),
    prevHash: text('prev_hash').notNull(),
    hash: text('hash').notNull(),
  },
  (table) => [
    index('audit_events_at').on(table.atMs),
    // Partial: only the rare values of kind and verdict are indexed (query.ts spells these literals).
    index('audit_events_admin').on(table.atMs).where(sql`${table.kind} = 'admin'`),
    index('audit_events_alert').on(table.atMs).where(sql`${table.kind} = 'alert'`),
    index('audit_events_denied').on(table.atMs).where(sql`${table.verdict} = 'deny'`),
    index('audit_events_agent').on(table.agent, table.atMs),
    index('audit_events_user').on(table.user, table.atMs),
    index('audit_events_persona').on(table.persona, table.atMs),
    index('audit_events_tool').on(table.tool, table.atMs),
  ],
);

/** A signed statement "the chain up to seq ends in hash". */
export const auditCheckpoints = sqliteTable('audit_checkpoints', {
  id: integer('id').primaryKey(),
  seq: integer('seq').notNull(),
  hash: text('hash').notNull(),
  createdAtMs: integer('created_at_ms').notNull(),
  keyId: text('key_id').notNull(),
  /** base64 Ed25519 signature over checkpointMessage(seq, hash, createdAtMs). */
  signature: text('signature').notNull(),
});

/** A range of records moved out to a segment file; the live chain continues from lastHash. */
export const auditArchives = sqliteTable('audit_archives', {
  id: integer('id').primaryKey(),
  fromSeq: integer('from_seq').notNull(),
  toSeq: integer('to_seq').notNull(),
  lastHash: text('last_hash').notNull(),
  /** File name inside the archive directory. */
  file: text('file').notNull(),
  fileSha256: text('file_sha256').notNull(),
  archivedAtMs: integer('archived_at_ms').notNull(),
});
