// The SQLite side of the audit trail: tables, append-only triggers, and the
// chained bulk insert. Statements are prepared once per open store.
import Database from 'better-sqlite3';
import { drizzle, type BetterSQLite3Database } from 'drizzle-orm/better-sqlite3';
import { chainHash, genesisHash, reasonCodesOf, type ChainPosition, type ChainRecord } from './chain.ts';
import type { Checkpoint } from './checkpoint.ts';
import type { AuditEvent } from './event.ts';

export const databaseFile = 'audit.sqlite';

// Mirrors schema.ts (store.test.ts compares them); the triggers make the store
// itself refuse to rewrite history, whoever holds a connection.
const ddl = `
CREATE TABLE IF NOT EXISTS audit_events (
  seq INTEGER PRIMARY KEY,
  at_ms INTEGER NOT NULL,
  kind TEXT NOT NULL,
  agent TEXT,
  user TEXT,
  persona TEXT,
  tool TEXT,
  verdict TEXT,
  session_id TEXT,
  request_id TEXT,
  reason_codes TEXT NOT NULL,
  arguments_digest TEXT,
  latency_ms REAL,
  body TEXT NOT NULL,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_events_at ON audit_events (at_ms);
-- kind and verdict have two to four values: only their rare values get an index
-- (partial, so the common rows cost nothing to insert); the common ones are
-- found quickly by walking the time index.
DROP INDEX IF EXISTS audit_events_kind;
DROP INDEX IF EXISTS audit_events_verdict;
CREATE INDEX IF NOT EXISTS audit_events_admin ON audit_events (at_ms) WHERE kind = 'admin';
CREATE INDEX IF NOT EXISTS audit_events_alert ON audit_events (at_ms) WHERE kind = 'alert';
CREATE INDEX IF NOT EXISTS audit_events_denied ON audit_events (at_ms) WHERE verdict = 'deny';
CREATE INDEX IF NOT EXISTS audit_events_agent ON audit_events (agent, at_ms);
CREATE INDEX IF NOT EXISTS audit_events_user ON audit_events (user, at_ms);
CREATE INDEX IF NOT EXISTS audit_events_persona ON audit_events (persona, at_ms);
CREATE INDEX IF NOT EXISTS audit_events_tool ON audit_events (tool, at_ms);
-- Request ids are random: their index took random inserts all over a large tree
-- and was the first to fall out of the page cache. Look them up within a time window.
DROP INDEX IF EXISTS audit_events_request;
CREATE TABLE IF NOT EXISTS audit_checkpoints (
  id INTEGER PRIMARY KEY,
  seq INTEGER NOT NULL,
  hash TEXT NOT NULL,
  created_at_ms INTEGER NOT NULL,
  key_id TEXT NOT NULL,
  signature TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_archives (
  id INTEGER PRIMARY KEY,
  from_seq INTEGER NOT NULL,
  to_seq INTEGER NOT NULL,
  last_hash TEXT NOT NULL,
  file TEXT NOT NULL,
  file_sha256 TEXT NOT NULL,
  archived_at_ms INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: updates are refused'); END;
CREATE TRIGGER IF NOT EXISTS audit_events_no_delete BEFORE DELETE ON audit_events
WHEN OLD.seq > (SELECT COALESCE(MAX(to_seq), 0) FROM audit_archives)
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: only archived records may be removed'); END;
CREATE TRIGGER IF NOT EXISTS audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_archives_no_update BEFORE UPDATE ON audit_archives
BEGIN SELECT RAISE(ABORT, 'audit_archives is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_archives_no_delete BEFORE DELETE ON audit_archives
BEGIN SELECT RAISE(ABORT, 'audit_archives is append-only'); END;
`;

/** An event already encoded: `body` is exactly what was journaled and will be hashed. */
export interface EncodedEvent {
  event: AuditEvent;
  body: string;
}

export interface ArchiveRow {
  fromSeq: number;
  toSeq: number;
  lastHash: string;
  file: string;
  fileSha256: string;
  archivedAtMs: number;
}

export interface StoreOptions {
  readonly?: boolean;
  /** Refuse to grow the database beyond this many bytes (SQLITE_FULL), e.g. a disk quota for audit. */
  maxStorageBytes?: number;
}

export type AuditStore = ReturnType<typeof openAuditStore>;

// With better-sqlite3 12 on Node 24, a Statement finalized by the garbage
// collector can abort the whole process (RemoveEnvironmentCleanupHook assertion,
// WiseLibs/better-sqlite3 on Node 24). So no Statement is ever let go: each
// store prepares a bounded set once, and they are kept here for the process's
// life, even after their database is closed. exec() creates no Statement.
// Iterators from iterate() die the same way, so they are kept too (one per verify
// or archive run: a few hundred bytes each).
const retainedStatements: Database.Statement[] = [];
const retainedIterators: Iterator<unknown>[] = [];

export function openAuditStore(path: string, options: StoreOptions = {}) {
  const sqlite = new Database(path, { readonly: options.readonly ?? false, fileMustExist: options.readonly ?? false });
  const statements = new Map<string, Database.Statement>();
  const prepare = (sql: string): Database.Statement => {
    let statement = statements.get(sql);
    if (!statement) {
      statement = sqlite.prepare(sql);
      statements.set(sql, statement);
      retainedStatements.push(statement);
    }
    return statement;
  };
  // 64 MiB of page cache: the secondary indexes take random inserts.
  sqlite.exec('PRAGMA busy_timeout = 5000; PRAGMA cache_size = -65536');
  if (!options.readonly) {
    // NORMAL: commits do not fsync (the journal already holds every event);
    // makeDurable() syncs before any journal file is deleted.
    // 16 KiB pages (new databases only): rows are about 1 KB, and bigger pages cut the
    // page splits and WAL frames per commit (about 30% less insert time than 4 KiB).
    sqlite.exec('PRAGMA page_size = 16384');
    sqlite.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 2500');
    sqlite.exec(ddl);
    if (options.maxStorageBytes !== undefined) {
      const pageSize = (prepare('PRAGMA page_size').get() as { page_size: number }).page_size;
      sqlite.exec(`PRAGMA max_page_count = ${Math.max(1, Math.floor(options.maxStorageBytes / pageSize))}`);
    }
  }
  const db: BetterSQLite3Database = drizzle({ client: sqlite });

  // Rows go in 64 at a time: one statement call per 64 rows instead of per row.
  const rowsPerInsert = 64;
  const insertSql = (rows: number) =>
    `INSERT INTO audit_events (seq, at_ms, kind, agent, user, persona, tool, verdict, session_id, request_id, reason_codes, arguments_digest, latency_ms, body, prev_hash, hash) VALUES ${Array.from({ length: rows }, () => '(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)').join(', ')}`;
  const insertOne = options.readonly ? null : prepare(insertSql(1));
  const insertMany = options.readonly ? null : prepare(insertSql(rowsPerInsert));
  const insertCheckpoint = options.readonly
    ? null
    : prepare('INSERT INTO audit_checkpoints (seq, hash, created_at_ms, key_id, signature) VALUES (?, ?, ?, ?, ?)');
  const lastEvent = prepare('SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1');
  const lastTime = prepare('SELECT MAX(at_ms) AS at FROM audit_events');
  const lastArchive = prepare('SELECT to_seq AS toSeq, last_hash AS lastHash FROM audit_archives ORDER BY to_seq DESC LIMIT 1');

  const appendChained = sqlite.transaction((events: readonly EncodedEvent[], start: ChainPosition): ChainPosition => {
    let { seq, hash } = start;
    let values: unknown[] = [];
    for (const { event, body } of events) {
      if (event.seq !== seq + 1) throw new Error(`audit chain out of order: appending seq ${event.seq} after ${seq}`);
      const next = chainHash(hash, body);
      values.push(
        event.seq, event.at, event.kind, event.agent, event.user, event.persona, event.tool, event.verdict,
        event.sessionId, event.requestId, reasonCodesOf(event.reasons), event.argumentsDigest, event.latencyMs,
        body, hash, next,
      );
      if (values.length === rowsPerInsert * 16) {
        insertMany!.run(values);
        values = [];
      }
      seq = event.seq;
      hash = next;
    }
    for (let i = 0; i < values.length; i += 16) insertOne!.run(values.slice(i, i + 16));
    return { seq, hash };
  });

  return {
    sqlite,
    /** For building SQL with the schema (`.toSQL()`); run it with `prepare`, never through drizzle's own execution. */
    db,
    prepare,
    /** `prepare(sql).iterate(...params)`, with the iterator kept alive (see retainedIterators). */
    iterate<Row>(sql: string, ...params: unknown[]): IterableIterator<Row> {
      const rows = prepare(sql).iterate(...params) as IterableIterator<Row>;
      retainedIterators.push(rows);
      return rows;
    },
    /** Where the chain ends now: the last record, else the end of the last archive, else genesis. */
    head(): ChainPosition {
      const row = lastEvent.get() as { seq: number; hash: string } | undefined;
      if (row) return { seq: row.seq, hash: row.hash };
      const archive = lastArchive.get() as { toSeq: number; lastHash: string } | undefined;
      return archive ? { seq: archive.toSeq, hash: archive.lastHash } : { seq: 0, hash: genesisHash };
    },
    /** Copy every commit into the database file and fsync it. False if readers kept it from completing. */
    makeDurable(): boolean {
      const result = prepare('PRAGMA wal_checkpoint(FULL)').get() as { busy: number; log: number; checkpointed: number };
      return result.busy === 0 && result.checkpointed === result.log;
    },
    /** Time of the newest record, 0 if none. */
    lastTimeMs(): number {
      return (lastTime.get() as { at: number | null }).at ?? 0;
    },
    /** Hash-chains and inserts the events in one transaction; returns the new head. */
    appendChained(events: readonly EncodedEvent[], start: ChainPosition): ChainPosition {
      return appendChained.immediate(events, start);
    },
    addCheckpoint(checkpoint: Checkpoint): void {
      insertCheckpoint!.run(checkpoint.seq, checkpoint.hash, checkpoint.createdAtMs, checkpoint.keyId, checkpoint.signature);
    },
    checkpoints(): Checkpoint[] {
      return prepare('SELECT seq, hash, created_at_ms AS createdAtMs, key_id AS keyId, signature FROM audit_checkpoints ORDER BY seq')
        .all() as Checkpoint[];
    },
    lastCheckpoint(): Checkpoint | null {
      return (prepare('SELECT seq, hash, created_at_ms AS createdAtMs, key_id AS keyId, signature FROM audit_checkpoints ORDER BY seq DESC LIMIT 1')
        .get() as Checkpoint | undefined) ?? null;
    },
    archives(): ArchiveRow[] {
      return prepare('SELECT from_seq AS fromSeq, to_seq AS toSeq, last_hash AS lastHash, file, file_sha256 AS fileSha256, archived_at_ms AS archivedAtMs FROM audit_archives ORDER BY from_seq')
        .all() as ArchiveRow[];
    },
    /** Every stored record in seq order, with its indexed columns, streamed. */
    *records(fromSeq = 0, toSeq = Number.MAX_SAFE_INTEGER): IterableIterator<ChainRecord> {
      const rows = prepare(
          `SELECT seq, at_ms AS atMs, kind, agent, user, persona, tool, verdict, session_id AS sessionId, request_id AS requestId,
                  reason_codes AS reasonCodes, arguments_digest AS argumentsDigest, latency_ms AS latencyMs, body, prev_hash AS prevHash, hash
           FROM audit_events WHERE seq >= ? AND seq <= ? ORDER BY seq`,
        )
        .iterate(fromSeq, toSeq) as IterableIterator<Record<string, unknown> & { seq: number; body: string; prevHash: string; hash: string }>;
      retainedIterators.push(rows);
      for (const row of rows) {
        const { seq, body, prevHash, hash, ...columns } = row;
        yield { seq, body, prevHash, hash, columns };
      }
    },
    close(): void {
      sqlite.close();
    },
  };
}
