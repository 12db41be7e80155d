// The audit log's committer, on a worker thread: it receives journaled lines
// from the data path's thread, hash-chains them into SQLite in large
// transactions and signs checkpoints. A commit that takes tens of milliseconds
// then costs the second core, never the data path's event loop.
import type { KeyObject } from 'node:crypto';
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import type { ChainPosition } from './chain.ts';
import { signCheckpoint, type SigningKey } from './checkpoint.ts';
import type { AuditEvent } from './event.ts';
import { openAuditStore, type EncodedEvent } from './store.ts';

export interface CommitWorkerData {
  databasePath: string;
  maxStorageBytes: number | null;
  /** Largest number of events per transaction. */
  batchSize: number;
  /** First retry delay when storage fails; doubles up to 5 s. */
  retryBaseMs: number;
  checkpointEvery: number;
  signingKey: { privateKey: KeyObject; publicKey: KeyObject; keyId: string };
  head: ChainPosition;
  lastCheckpointSeq: number;
  /** Set to 1 once the store is open, 2 if opening failed (the error follows on `startupPort`). */
  ready: Int32Array;
  startupPort: MessagePort;
}

/** From the log to the committer. `nowMs` is the log's clock (checkpoints carry it). */
export type ToCommitter =
  | { type: 'lines'; text: string; nowMs: number }
  | { type: 'flush'; id: number; nowMs: number }
  | { type: 'makeDurable'; id: number }
  | { type: 'close'; id: number };

/** From the committer to the log. */
export type FromCommitter =
  | { type: 'committed'; head: ChainPosition; events: number; checkpoints: number }
  | { type: 'storageFailing'; message: string }
  | { type: 'storageRecovered' }
  | { type: 'reply'; id: number; error: string | null; durable?: boolean };

if (parentPort && workerData && (workerData as { databasePath?: unknown }).databasePath) runCommitter(workerData as CommitWorkerData, parentPort);

function runCommitter(data: CommitWorkerData, port: NonNullable<typeof parentPort>): void {
  let store: ReturnType<typeof openAuditStore>;
  try {
    store = openAuditStore(data.databasePath, data.maxStorageBytes !== null ? { maxStorageBytes: data.maxStorageBytes } : {});
  } catch (error) {
    data.startupPort.postMessage({ error: (error as Error).message });
    Atomics.store(data.ready, 0, 2);
    Atomics.notify(data.ready, 0);
    return;
  }
  Atomics.store(data.ready, 0, 1);
  Atomics.notify(data.ready, 0);

  const key: SigningKey = data.signingKey;
  let head = data.head;
  let lastCheckpointSeq = data.lastCheckpointSeq;
  let nowMs = Date.now();
  // Received, not yet committed, in seq order; `queueStart` avoids shifting a large array.
  let queue: EncodedEvent[] = [];
  let queueStart = 0;
  let failing: string | null = null;
  let retryDelayMs = data.retryBaseMs;
  let scheduled: NodeJS.Immediate | NodeJS.Timeout | null = null;
  const send = (message: FromCommitter) => port.postMessage(message);

  const writeCheckpoint = () => {
    store.addCheckpoint(signCheckpoint(key, head.seq, head.hash, nowMs));
    lastCheckpointSeq = head.seq;
  };

  /** One transaction of up to batchSize queued events. False if storage refused it. */
  const commitBatch = (): boolean => {
    const batch = queue.slice(queueStart, queueStart + data.batchSize);
    let checkpoints = 0;
    try {
      head = store.appendChained(batch, head);
      if (head.seq - lastCheckpointSeq >= data.checkpointEvery) {
        writeCheckpoint();
        checkpoints = 1;
      }
    } catch (error) {
      const message = (error as Error).message;
      failing = message;
      retryDelayMs = Math.min(Math.max(retryDelayMs * 2, data.retryBaseMs), 5_000);
      send({ type: 'storageFailing', message });
      return false;
    }
    if (failing !== null) {
      failing = null;
      retryDelayMs = data.retryBaseMs;
      send({ type: 'storageRecovered' });
    }
    queueStart += batch.length;
    if (queueStart === queue.length) {
      queue = [];
      queueStart = 0;
    } else if (queueStart > 100_000) {
      queue = queue.slice(queueStart);
      queueStart = 0;
    }
    send({ type: 'committed', head, events: batch.length, checkpoints });
    return true;
  };

  const commitQueued = (): boolean => {
    while (queueStart < queue.length) if (!commitBatch()) return false;
    return true;
  };

  const schedule = () => {
    if (scheduled || queueStart === queue.length) return;
    const run = () => {
      scheduled = null;
      commitQueued();
      schedule();
    };
    // Messages that arrived together are committed together; failing storage is retried with backoff.
    scheduled = failing === null ? setImmediate(run) : setTimeout(run, retryDelayMs);
  };

  port.on('message', (message: ToCommitter) => {
    switch (message.type) {
      case 'lines': {
        nowMs = message.nowMs;
        const text = message.text;
        let start = 0;
        for (let end = text.indexOf('\n'); end !== -1; start = end + 1, end = text.indexOf('\n', start)) {
          const body = text.slice(start, end);
          queue.push({ event: JSON.parse(body) as AuditEvent, body });
        }
        schedule();
        return;
      }
      case 'flush': {
        nowMs = message.nowMs;
        let error: string | null = null;
        if (!commitQueued()) error = failing;
        else if (head.seq > lastCheckpointSeq) {
          try {
            writeCheckpoint();
            send({ type: 'committed', head, events: 0, checkpoints: 1 });
          } catch (checkpointError) {
            error = (checkpointError as Error).message;
          }
        }
        send({ type: 'reply', id: message.id, error });
        schedule();
        return;
      }
      case 'makeDurable': {
        let durable = false;
        try {
          durable = store.makeDurable();
        } catch {
          durable = false;
        }
        send({ type: 'reply', id: message.id, error: null, durable });
        return;
      }
      case 'close': {
        if (scheduled) {
          clearImmediate(scheduled as NodeJS.Immediate);
          clearTimeout(scheduled as NodeJS.Timeout);
        }
        store.close();
        send({ type: 'reply', id: message.id, error: null });
        port.close();
        return;
      }
    }
  });
}
