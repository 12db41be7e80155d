// The audit log the data path writes to. append() journals the event with one
// write() and returns; a batcher moves journaled events into SQLite in large
// hash-chained transactions, signs checkpoints, and trims the journal. On open,
// whatever the journal holds beyond the store's head is replayed first.
import type { KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ChainPosition } from './chain.ts';
import { loadSigningKey, loadVerifyKey, signCheckpoint, type SigningKey } from './checkpoint.ts';
import { normaliseEventInput, type AdminAction, type AuditAlert, type AuditEvent, type AuditEventInput } from './event.ts';
import { journalFiles, openJournalWriter, readJournal, JournalWriteError, type JournalWriter } from './journal.ts';
import { createAuditMetrics } from './metrics.ts';
import { queryAuditEvents, type AuditFilter, type AuditPage, type AuditPageRequest } from './query.ts';
import { databaseFile, openAuditStore, type AuditStore, type EncodedEvent } from './store.ts';
import { archiveAuditRecords, verifyAuditTrail, type VerifyResult } from './verify.ts';

/** Thrown by append() when the event cannot be accepted durably: the data path should fail closed. */
export class AuditBackpressureError extends Error {
  override readonly name = 'AuditBackpressureError';
  readonly code: 'audit_backlog_full' | 'audit_journal_unwritable' | 'audit_log_closed';
  constructor(code: AuditBackpressureError['code'], message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}

export interface AuditLogOptions {
  /** Holds audit.sqlite, journal/, keys/ and archive/. */
  directory: string;
  /** Ed25519 private key for checkpoints, or a PEM file path. Default: keys/ in the directory, created on first use. */
  signingKey?: KeyObject | string;
  /** Milliseconds since the epoch. Injected for tests. */
  clock?: () => number;
  /** Journaled-but-not-stored events allowed before append() refuses. Default 200,000. */
  maxPendingEvents?: number;
  /** Largest number of events per SQLite transaction. Default 5,000. */
  batchSize?: number;
  /** How long an event may wait in the journal before a batch is written. Default 50 ms. */
  flushIntervalMs?: number;
  /** Sign a checkpoint at least every this many records. Default 10,000. */
  checkpointEvery?: number;
  /** Start a new journal file once the current one is this large. Default 64 MiB. */
  journalRotateBytes?: number;
  /** Cap on the database size (disk quota); beyond it commits fail and backpressure starts. */
  maxStorageBytes?: number;
  /** Called for every alert the log raises about itself (storage failing, backlog full). */
  onAlert?: (alert: AuditAlert) => void;
}

export interface AuditLogStats {
  /** Last seq handed out by append. */
  appendedSeq: number;
  /** Last seq committed to SQLite. */
  committedSeq: number;
  pendingEvents: number;
  maxPendingEvents: number;
  batchesCommitted: number;
  checkpoints: number;
  /** Events recovered from the journal when the log was opened. */
  replayedEvents: number;
  /** Bytes of torn journal tail dropped on open (only after a power loss mid-write). */
  journalDiscardedBytes: number;
  /** The last storage error, while storage is failing; null when healthy. */
  storageError: string | null;
  backpressureRefusals: number;
  /** Last time the journal was known to be on disk (fdatasync completed). */
  journalSyncedAtMs: number | null;
  /** Highest seq known to be on disk in the journal or the store. */
  durableSeq: number;
}

export interface AuditLog {
  append(event: AuditEventInput): AuditEvent;
  appendAdminEvent(action: AdminAction): AuditEvent;
  appendAlert(alert: AuditAlert, about?: Pick<AuditEventInput, 'agent' | 'user' | 'persona' | 'sessionId' | 'upstream'>): AuditEvent;
  flush(): Promise<void>;
  close(): Promise<void>;
  query(filter: AuditFilter, page?: AuditPageRequest): AuditPage;
  verify(options?: { publicKeyPath?: string }): VerifyResult;
  stats(): AuditLogStats;
  /** Prometheus text exposition of the log's metrics. */
  metrics(): string;
  /** Called with each batch of events once committed. Returns an unsubscribe function. */
  subscribe(listener: (events: readonly AuditEvent[]) => void): () => void;
  /** Archive committed records up to the last checkpoint at or below throughSeq. */
  archive(throughSeq: number): Promise<{ file: string; fromSeq: number; toSeq: number } | null>;
  readonly store: AuditStore;
}

export function openAuditLog(options: AuditLogOptions): AuditLog {
  const directory = options.directory;
  mkdirSync(directory, { recursive: true });
  const clock = options.clock ?? Date.now;
  const maxPendingEvents = options.maxPendingEvents ?? 200_000;
  const batchSize = options.batchSize ?? 5_000;
  const flushIntervalMs = options.flushIntervalMs ?? 50;
  const checkpointEvery = options.checkpointEvery ?? 10_000;
  const journalRotateBytes = options.journalRotateBytes ?? 64 * 1024 * 1024;
  const journalDirectory = join(directory, 'journal');
  const releaseLock = acquireWriterLock(directory);

  const store = openAuditStore(join(directory, databaseFile), options.maxStorageBytes !== undefined ? { maxStorageBytes: options.maxStorageBytes } : {});
  const key: SigningKey = loadSigningKey(directory, options.signingKey);
  const metrics = createAuditMetrics();
  const listeners = new Set<(events: readonly AuditEvent[]) => void>();

  let head: ChainPosition = store.head();
  let lastCheckpointSeq = store.lastCheckpoint()?.seq ?? 0;
  let checkpoints = 0;
  let batchesCommitted = 0;
  let storageError: string | null = null;
  let backpressureRefusals = 0;
  let journalSyncedAtMs: number | null = null;
  let journalSyncedSeq = head.seq;
  let closed = false;
  let retryDelayMs = flushIntervalMs;
  let timer: NodeJS.Timeout | null = null;
  let immediate: NodeJS.Immediate | null = null;

  // Recover: the journal may hold events acknowledged but not yet stored.
  const replay = readJournal(journalDirectory);
  const toReplay: EncodedEvent[] = [];
  for (const line of replay.lines) {
    if (line.seq <= head.seq) continue;
    if (line.seq !== head.seq + toReplay.length + 1) break;
    toReplay.push({ event: JSON.parse(line.body) as AuditEvent, body: line.body });
  }
  for (let i = 0; i < toReplay.length; i += batchSize) head = store.appendChained(toReplay.slice(i, i + batchSize), head);
  if (head.seq > lastCheckpointSeq) writeCheckpoint();
  const oldJournals = journalFiles(journalDirectory);
  if (oldJournals.length > 0 && !store.makeDurable()) throw new Error('audit store could not be synced after journal replay; retry when no reader holds it');
  for (const file of oldJournals) unlinkSync(file.path);
  const journal: JournalWriter = openJournalWriter(journalDirectory, head.seq + 1);
  let nextSeq = head.seq + 1;
  let lastAt = store.lastTimeMs();
  journalSyncedSeq = head.seq;

  const pending: EncodedEvent[] = [];
  metrics.gauge('mandate_audit_pending_events', 'Events journaled but not yet committed to the audit store.', () => pending.length);
  metrics.gauge('mandate_audit_committed_seq', 'Sequence number of the last committed audit event.', () => head.seq);

  function writeCheckpoint(): void {
    const checkpoint = signCheckpoint(key, head.seq, head.hash, clock());
    store.addCheckpoint(checkpoint);
    lastCheckpointSeq = head.seq;
    checkpoints += 1;
  }

  function raiseAlert(alert: AuditAlert): void {
    metrics.alert(alert.name, alert.severity);
    options.onAlert?.(alert);
  }

  function schedule(): void {
    if (closed || immediate || pending.length === 0) return;
    if (storageError !== null) {
      // Failing storage: retry with backoff, never in a tight loop.
      if (!timer) {
        timer = setTimeout(runScheduledBatch, retryDelayMs);
        timer.unref();
      }
    } else if (pending.length >= batchSize) {
      if (timer) clearTimeout(timer);
      timer = null;
      immediate = setImmediate(runScheduledBatch);
    } else if (!timer) {
      timer = setTimeout(runScheduledBatch, flushIntervalMs);
      timer.unref();
    }
  }

  function runScheduledBatch(): void {
    timer = null;
    immediate = null;
    commitBatch();
    schedule();
  }

  /** Commits up to batchSize pending events. Returns false if storage failed. */
  function commitBatch(): boolean {
    if (pending.length === 0) return true;
    const batch = pending.slice(0, batchSize);
    const syncTarget = nextSeq - 1;
    journal.syncInBackground((error) => {
      if (!error) {
        journalSyncedAtMs = clock();
        journalSyncedSeq = Math.max(journalSyncedSeq, syncTarget);
      }
    });
    try {
      head = store.appendChained(batch, head);
      if (head.seq - lastCheckpointSeq >= checkpointEvery) writeCheckpoint();
    } catch (error) {
      const message = (error as Error).message;
      metrics.storageError();
      if (storageError === null) {
        raiseAlert({ name: 'audit_storage_failing', severity: 'critical', message: `audit events cannot be committed: ${message}; they are kept in the journal` });
      }
      storageError = message;
      retryDelayMs = Math.min(Math.max(retryDelayMs * 2, flushIntervalMs), 5_000);
      return false;
    }
    if (storageError !== null) {
      raiseAlert({ name: 'audit_storage_recovered', severity: 'info', message: 'audit storage accepts commits again' });
      storageError = null;
      retryDelayMs = flushIntervalMs;
    }
    pending.splice(0, batch.length);
    batchesCommitted += 1;
    if (journal.size() >= journalRotateBytes) journal.rotate(nextSeq);
    // A journal file goes only once the commits it backs are synced to the database file.
    if (journal.hasOlderFiles() && store.makeDurable()) journal.removeCommitted(head.seq);
    if (listeners.size > 0) {
      const events = batch.map((e) => e.event);
      for (const listener of listeners) listener(events);
    }
    return true;
  }

  function accept(input: AuditEventInput, bypassBacklogLimit: boolean): AuditEvent {
    if (closed) throw new AuditBackpressureError('audit_log_closed', 'the audit log is closed');
    if (pending.length >= maxPendingEvents && !bypassBacklogLimit) {
      backpressureRefusals += 1;
      metrics.backpressure();
      if (backpressureRefusals === 1 || backpressureRefusals % 10_000 === 0) {
        raiseAlert({ name: 'audit_backpressure', severity: 'critical', message: `audit backlog is full (${pending.length} events not yet stored${storageError ? `: ${storageError}` : ''}); calls are refused` });
      }
      throw new AuditBackpressureError('audit_backlog_full', `audit backlog is full (${pending.length} events waiting for storage)`);
    }
    const fields = normaliseEventInput(input);
    // Never earlier than the previous event: time order is seq order, which the indexes rely on.
    lastAt = Math.max(lastAt, clock());
    const event: AuditEvent = { seq: nextSeq, at: lastAt, ...fields };
    const body = JSON.stringify(event);
    try {
      journal.write(`${body}\n`);
    } catch (error) {
      backpressureRefusals += 1;
      metrics.backpressure();
      raiseAlert({ name: 'audit_journal_unwritable', severity: 'critical', message: (error as Error).message });
      throw new AuditBackpressureError('audit_journal_unwritable', (error as Error).message, { cause: error });
    }
    nextSeq += 1;
    pending.push({ event, body });
    metrics.observe(fields);
    schedule();
    return event;
  }

  async function flush(): Promise<void> {
    while (pending.length > 0) {
      if (!commitBatch()) throw new Error(`audit storage is failing: ${storageError}`);
      // Let the data path run between large batches.
      if (pending.length > 0) await new Promise((resolve) => setImmediate(resolve));
    }
    if (head.seq > lastCheckpointSeq) writeCheckpoint();
  }

  return {
    store,
    append: (event) => accept(event, false),
    appendAdminEvent: (action) => accept({ kind: 'admin', admin: action, user: action.actor }, false),
    appendAlert: (alert, about = {}) => accept({ kind: 'alert', alert, ...about }, true),
    flush,
    /** Flushes and closes. If storage is failing it still closes, and rejects: the journal keeps the events for the next open. */
    async close() {
      if (closed) return;
      try {
        await flush();
      } finally {
        closed = true;
        if (timer) clearTimeout(timer);
        if (immediate) clearImmediate(immediate);
        journal.close();
        if (journal.hasOlderFiles() && store.makeDurable()) journal.removeCommitted(head.seq);
        store.close();
        releaseLock();
      }
    },
    query: (filter, page) => queryAuditEvents(store, filter, page),
    verify: (verifyOptions = {}) => verifyAuditTrail(store, { directory, publicKey: loadVerifyKey(directory, verifyOptions.publicKeyPath) ?? { key: key.publicKey, source: 'local' } }),
    stats: () => ({
      appendedSeq: nextSeq - 1,
      committedSeq: head.seq,
      pendingEvents: pending.length,
      maxPendingEvents,
      batchesCommitted,
      checkpoints,
      replayedEvents: toReplay.length,
      journalDiscardedBytes: replay.discardedBytes,
      storageError,
      backpressureRefusals,
      journalSyncedAtMs,
      durableSeq: Math.max(journalSyncedSeq, head.seq),
    }),
    metrics: () => metrics.render(),
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    archive: (throughSeq) => archiveAuditRecords(store, { directory, throughSeq: Math.min(throughSeq, head.seq), nowMs: clock() }),
  };
}

/** One writer per audit directory: two would fork the chain. A lock left by a dead process is taken over. */
function acquireWriterLock(directory: string): () => void {
  const path = join(directory, 'writer.lock');
  if (existsSync(path)) {
    const pid = Number(readFileSync(path, 'utf8'));
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && processAlive(pid)) {
      throw new Error(`audit directory ${directory} is in use by process ${pid}`);
    }
  }
  writeFileSync(path, String(process.pid));
  return () => {
    try {
      unlinkSync(path);
    } catch {
      // already gone
    }
  };
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export { JournalWriteError };
