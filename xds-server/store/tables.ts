// The control plane's SQLite schema. drizzle-kit generates the migrations in
// ./migrations from this file; the store applies them at open.
import { index, integer, sqliteTable, text } from 'drizzle-orm/sqlite-core';

/**
 * One row per config version. bundle_json is the whole validated ConfigBundle at that version.
 * stream_sequence: scaled out, the NATS JetStream sequence of the replicated revision this row
 * came from (null for revisions made before or without replication).
 */
export const revisions = sqliteTable('revisions', {
  version: integer('version').primaryKey(),
  createdAt: text('created_at').notNull(),
  actor: text('actor').notNull(),
  summary: text('summary').notNull(),
  bundleJson: text('bundle_json').notNull(),
  streamSequence: integer('stream_sequence').unique(),
});

/** Agent credentials. Only the SHA-256 of the token's secret part is kept. */
export const credentials = sqliteTable(
  'credentials',
  {
    id: text('id').primaryKey(),
    persona: text('persona').notNull(),
    agent: text('agent').notNull(),
    secretHash: text('secret_hash').notNull(),
    createdAt: text('created_at').notNull(),
    expiresAt: text('expires_at'),
    revokedAt: text('revoked_at'),
  },
  (table) => [index('credentials_persona_idx').on(table.persona)],
);
