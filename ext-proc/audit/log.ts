// The audit log the data path writes to. append() journals the event with one
// write() and returns; a committer on a worker thread (commit-worker.ts) moves
// journaled events into SQLite in large hash-chained transactions and signs
// checkpoints; this thread trims the journal once commits are durable. On
// open, whatever the journal holds beyond the store's head is replayed first.
import type { KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MessageChannel, receiveMessageOnPort, Worker } from 'node:worker_threads';
import type { ChainPosition } from './chain.ts';
import { loadSigningKey, loadVerifyKey, signCheckpoint, type SigningKey } from './checkpoint.ts';
import type { CommitWorkerData, FromCommitter, ToCommitter } from './commit-worker.ts';
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
  /** Largest number of events per SQLite transaction. Default 10,000. */
  batchSize?: number;
  /** How long an event may wait before it is handed to the committer. Default 50 ms. */
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
  /** Called with each batch of events appended after subscribing, once committed. Returns an unsubscribe function. */
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
  const batchSize = options.batchSize ?? 10_000;
  const flushIntervalMs = options.flushIntervalMs ?? 50;
  const checkpointEvery = options.checkpointEvery ?? 10_000;
  const journalRotateBytes = options.journalRotateBytes ?? 64 * 1024 * 1024;
  // Lines are handed to the committer in groups: one postMessage per group, not per event.
  const postEvery = Math.min(batchSize, 1_000);
  const journalDirectory = join(directory, 'journal');
  const releaseLock = acquireWriterLock(directory);
  const databasePath = join(directory, databaseFile);

  // This thread's connection serves replay, queries, verify and archive; the committer has its own.
  const store = openAuditStore(databasePath, options.maxStorageBytes !== undefined ? { maxStorageBytes: options.maxStorageBytes } : {});
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

  // Recover: the journal may hold events acknowledged but not yet stored.
  const replay = readJournal(journalDirectory);
  const toReplay: EncodedEvent[] = [];
  for (const line of replay.lines) {
    if (line.seq <= head.seq) continue;
    if (line.seq !== head.seq + toReplay.length + 1) break;
    toReplay.push({ event: JSON.parse(line.body) as AuditEvent, body: line.body });
  }
  for (let i = 0; i < toReplay.length; i += batchSize) head = store.appendChained(toReplay.slice(i, i + batchSize), head);
  if (head.seq > lastCheckpointSeq) {
    store.addCheckpoint(signCheckpoint(key, head.seq, head.hash, clock()));
    lastCheckpointSeq = head.seq;
    checkpoints += 1;
  }
  const oldJournals = journalFiles(journalDirectory);
  if (oldJournals.length > 0 && !store.makeDurable()) throw new Error('audit store could not be synced after journal replay; retry when no reader holds it');
  for (const file of oldJournals) unlinkSync(file.path);
  const journal: JournalWriter = openJournalWriter(journalDirectory, head.seq + 1);
  let nextSeq = head.seq + 1;
  let lastAt = store.lastTimeMs();
  journalSyncedSeq = head.seq;

  const committer = startCommitter({
    databasePath,
    maxStorageBytes: options.maxStorageBytes ?? null,
    batchSize,
    retryBaseMs: flushIntervalMs,
    checkpointEvery,
    signingKey: key,
    head,
    lastCheckpointSeq,
  });
  let committerStopped: string | null = null;
  // Journaled lines not yet handed to the committer.
  let outgoing: string[] = [];
  let postTimer: NodeJS.Timeout | null = null;
  let postImmediate: NodeJS.Immediate | null = null;
  // Events kept for subscribers until their commit is reported (only while someone listens).
  const awaitingCommit: AuditEvent[] = [];
  let durableRequested = false;
  let nextRequestId = 1;
  const requests = new Map<number, { resolve: (reply: Extract<FromCommitter, { type: 'reply' }>) => void; reject: (error: Error) => void }>();

  const pendingCount = () => nextSeq - 1 - head.seq;
  metrics.gauge('mandate_audit_pending_events', 'Events journaled but not yet committed to the audit store.', pendingCount);
  metrics.gauge('mandate_audit_committed_seq', 'Sequence number of the last committed audit event.', () => head.seq);

  function raiseAlert(alert: AuditAlert): void {
    metrics.alert(alert.name, alert.severity);
    options.onAlert?.(alert);
  }

  function request(message: ToCommitter & { id: number }): Promise<Extract<FromCommitter, { type: 'reply' }>> {
    if (committerStopped !== null) return Promise.reject(new Error(`audit committer stopped: ${committerStopped}`));
    return new Promise((resolve, reject) => {
      requests.set(message.id, { resolve, reject });
      // A reply is awaited: keep the process alive until it comes.
      committer.ref();
      committer.postMessage(message);
    });
  }

  committer.on('message', (message: FromCommitter) => {
    switch (message.type) {
      case 'committed':
        onCommitted(message.head, message.events, message.checkpoints);
        return;
      case 'storageFailing':
        metrics.storageError();
        if (storageError === null) {
          raiseAlert({ name: 'audit_storage_failing', severity: 'critical', message: `audit events cannot be committed: ${message.message}; they are kept in the journal` });
        }
        storageError = message.message;
        return;
      case 'storageRecovered':
        if (storageError !== null) raiseAlert({ name: 'audit_storage_recovered', severity: 'info', message: 'audit storage accepts commits again' });
        storageError = null;
        return;
      case 'reply': {
        const waiting = requests.get(message.id);
        requests.delete(message.id);
        if (requests.size === 0) committer.unref();
        waiting?.resolve(message);
        return;
      }
    }
  });
  const onCommitterGone = (reason: string) => {
    if (committerStopped !== null) return;
    committerStopped = reason;
    if (!closed) {
      storageError = `audit committer stopped: ${reason}`;
      raiseAlert({ name: 'audit_storage_failing', severity: 'critical', message: `${storageError}; events are kept in the journal` });
    }
    for (const waiting of requests.values()) waiting.reject(new Error(`audit committer stopped: ${reason}`));
    requests.clear();
  };
  committer.on('error', (error) => onCommitterGone(error.message));
  committer.on('exit', (code) => onCommitterGone(`exited with code ${code}`));

  function onCommitted(committedHead: ChainPosition, events: number, newCheckpoints: number): void {
    head = committedHead;
    checkpoints += newCheckpoints;
    if (events === 0) return;
    batchesCommitted += 1;
    if (awaitingCommit.length > 0) {
      let count = 0;
      while (count < awaitingCommit.length && awaitingCommit[count]!.seq <= head.seq) count += 1;
      const committed = awaitingCommit.splice(0, count);
      if (committed.length > 0) for (const listener of listeners) listener(committed);
    }
    if (closed) return;
    if (journal.size() >= journalRotateBytes) journal.rotate(nextSeq);
    // A journal file goes only once the commits it backs are synced to the database file (by the committer).
    if (journal.hasOlderFiles() && !durableRequested) {
      durableRequested = true;
      const throughSeq = head.seq;
      void request({ type: 'makeDurable', id: nextRequestId++ })
        .then((reply) => {
          if (reply.durable && !closed) journal.removeCommitted(throughSeq);
        })
        .catch(() => {})
        .finally(() => {
          durableRequested = false;
        });
    }
  }

  /** Hand journaled lines to the committer, and start an fdatasync of the journal behind them. */
  function post(): void {
    if (postTimer) clearTimeout(postTimer);
    if (postImmediate) clearImmediate(postImmediate);
    postTimer = null;
    postImmediate = null;
    if (outgoing.length === 0 || committerStopped !== null) return;
    const syncTarget = nextSeq - 1;
    journal.syncInBackground((error) => {
      if (!error) {
        journalSyncedAtMs = clock();
        journalSyncedSeq = Math.max(journalSyncedSeq, syncTarget);
      }
    });
    const message: ToCommitter = { type: 'lines', text: outgoing.join(''), nowMs: clock() };
    outgoing = [];
    committer.postMessage(message);
  }

  function schedulePost(): void {
    if (postImmediate) return;
    if (outgoing.length >= postEvery) {
      postImmediate = setImmediate(post);
    } else if (!postTimer) {
      postTimer = setTimeout(post, flushIntervalMs);
      postTimer.unref();
    }
  }

  function accept(input: AuditEventInput, bypassBacklogLimit: boolean): AuditEvent {
    if (closed) throw new AuditBackpressureError('audit_log_closed', 'the audit log is closed');
    const pending = pendingCount();
    if (pending >= maxPendingEvents && !bypassBacklogLimit) {
      backpressureRefusals += 1;
      metrics.backpressure();
      if (backpressureRefusals === 1 || backpressureRefusals % 10_000 === 0) {
        raiseAlert({ name: 'audit_backpressure', severity: 'critical', message: `audit backlog is full (${pending} events not yet stored${storageError ? `: ${storageError}` : ''}); calls are refused` });
      }
      throw new AuditBackpressureError('audit_backlog_full', `audit backlog is full (${pending} events waiting for storage)`);
    }
    const fields = normaliseEventInput(input);
    // Never earlier than the previous event: time order is seq order, which the indexes rely on.
    lastAt = Math.max(lastAt, clock());
    const event: AuditEvent = { seq: nextSeq, at: lastAt, ...fields };
    const line = `${JSON.stringify(event)}\n`;
    try {
      journal.write(line);
    } catch (error) {
      backpressureRefusals += 1;
      metrics.backpressure();
      raiseAlert({ name: 'audit_journal_unwritable', severity: 'critical', message: (error as Error).message });
      throw new AuditBackpressureError('audit_journal_unwritable', (error as Error).message, { cause: error });
    }
    nextSeq += 1;
    outgoing.push(line);
    if (listeners.size > 0) awaitingCommit.push(event);
    metrics.observe(fields);
    schedulePost();
    return event;
  }

  async function flush(): Promise<void> {
    post();
    const reply = await request({ type: 'flush', id: nextRequestId++, nowMs: clock() });
    if (reply.error !== null) throw new Error(`audit storage is failing: ${reply.error}`);
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
        if (postTimer) clearTimeout(postTimer);
        if (postImmediate) clearImmediate(postImmediate);
        journal.close();
        if (committerStopped === null) {
          const exited = new Promise((resolve) => committer.once('exit', resolve));
          await request({ type: 'close', id: nextRequestId++ }).catch(() => {});
          // The committer exits once its store is closed; wait for that (and keep the process up meanwhile).
          committer.ref();
          await exited;
        }
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
      pendingEvents: pendingCount(),
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

/**
 * Starts the committer thread and waits (blocking, once, at open) until its
 * store is open, so a broken database fails openAuditLog rather than later.
 */
function startCommitter(settings: Omit<CommitWorkerData, 'ready' | 'startupPort'>): Worker {
  const ready = new Int32Array(new SharedArrayBuffer(4));
  const startup = new MessageChannel();
  const workerData: CommitWorkerData = { ...settings, ready, startupPort: startup.port2 };
  const worker = new Worker(new URL('./commit-worker.ts', import.meta.url), { workerData, transferList: [startup.port2], name: 'mandate-audit-committer' });
  // Events are in the journal: an idle committer must not keep the process alive.
  worker.unref();
  const outcome = Atomics.wait(ready, 0, 0, 60_000);
  const state = Atomics.load(ready, 0);
  if (state !== 1) {
    const failure = receiveMessageOnPort(startup.port1)?.message as { error?: string } | undefined;
    startup.port1.close();
    void worker.terminate();
    throw new Error(`the audit committer did not start: ${failure?.error ?? (outcome === 'timed-out' ? 'timed out' : 'unknown error')}`);
  }
  startup.port1.close();
  return worker;
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
