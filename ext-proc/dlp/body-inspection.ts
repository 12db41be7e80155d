// Large bodies are inspected on a worker thread, so one big tool result (a 1 MB export
// dense with card numbers costs tens of milliseconds) or one big request (a 4 MiB body of
// assigned passwords costs over a second) does not stall every other request on ext_proc's
// event loop. Small bodies, most of the traffic, stay inline: handing a body over costs
// more than inspecting a few KiB. A worker that fails or dies is replaced; the caller then
// inspects inline, so a body is never passed unread.
//
// Each worker takes one body at a time (one worker by default), so the pool keeps the queue: one per
// sender (an agent's requests, an upstream's answers), served in turn, so a sender of costly bodies
// (each up to the worker's budget) delays its own bodies and at most the ones on the workers for every
// other sender. A body that has waited as long as Envoy waits for it is not inspected: it is refused
// (fail closed; Envoy has given up on it anyway), so a backlog cannot hold the workers long after its
// senders are gone.
import { Worker } from 'node:worker_threads';
import type { DataProtection } from '../../config/data-protection-schema.ts';
import type { CompiledDataProtectionOk } from './compile.ts';
import type { InspectContext, InspectResult } from './inspect.ts';
import { packFindings, packFingerprints, unpackFindings, unpackFingerprints, type PackedRecords } from './packed-findings.ts';
import { errorClassAndPlace } from '../error-description.ts';
import { InspectionOverBudget } from './budget.ts';
import { StartupError } from '../../config/service-process.ts';

export interface InspectionRequest {
  id: number;
  /** Identifies the compiled engine in the worker: the config, the mode and the fingerprint key. */
  configKey: string;
  config: DataProtection;
  monitor: boolean;
  fingerprintKey: Uint8Array | null;
  /** Raw bytes (inspectBody), or a parsed JSON value such as tool arguments (inspectJson). */
  subject: Uint8Array | InspectedJson;
  context: InspectContext;
}

/** A parsed JSON value, as the request stages inspect tool arguments, a message's params or form fields. */
export type InspectedJson = { json: unknown };

/**
 * What the worker sends back: the result with its findings and fingerprints packed (packed-findings.ts),
 * as the structured clone of one object per finding costs, when there are many, a good part of
 * what inspecting the body took, much of it on the event loop.
 */
export type PackedInspectResult = Omit<InspectResult<Uint8Array | InspectedJson>, 'findings' | 'fingerprints'> & { findings: PackedRecords; fingerprints: PackedRecords };

/** `code` is set when the error is one the caller answers (a spent budget, budget.ts). */
export type InspectionReply = { id: number; ok: true; result: PackedInspectResult } | { id: number; ok: false; error: string; code?: 'inspection_over_budget'; budgetMs?: number };

/** The result to send, with its findings and fingerprints packed, and the buffers to move with it. */
export function packResult(result: InspectResult<Uint8Array | InspectedJson>): { result: PackedInspectResult; transfer: ArrayBuffer[] } {
  const findings = packFindings(result.findings);
  const fingerprints = packFingerprints(result.fingerprints);
  return { result: { ...result, findings, fingerprints }, transfer: [findings.slots.buffer, fingerprints.slots.buffer] };
}

/** The result as inspecting on this thread gives it. */
export function unpackResult(result: PackedInspectResult): InspectResult<Uint8Array | InspectedJson> {
  return { ...result, findings: unpackFindings(result.findings), fingerprints: unpackFingerprints(result.fingerprints) };
}

export interface BodyInspectionPool {
  /** Bodies of at least this many bytes go to the worker. */
  readonly thresholdBytes: number;
  /**
   * inspectBody for a Buffer, inspectJson for a parsed JSON value, on the worker thread. `sender`
   * names whose body it is (the queues take senders in turn); one queue for all when absent.
   */
  inspect<T>(dp: CompiledDataProtectionOk, subject: T, context: InspectContext, sender?: string): Promise<InspectResult<T>>;
  stop(): Promise<void>;
}

/** A body waiting for the worker, or on it. */
interface Job {
  /** Its place in the turns of its sender's bodies (see pump). */
  turn: number;
  request: InspectionRequest;
  transfer: ArrayBuffer[];
  queuedAt: number;
  resolve: (r: InspectResult<Uint8Array | InspectedJson>) => void;
  reject: (e: Error) => void;
}

/** The most inspection worker threads a pool may have (MANDATE_DLP_WORKERS). */
export const maxInspectionWorkers = 64;

/** MANDATE_DLP_WORKERS: how many worker threads inspect large bodies, 1 to maxInspectionWorkers. */
export function parseInspectionWorkers(text: string): number {
  const value = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isInteger(value) || value < 1 || value > maxInspectionWorkers) {
    throw new StartupError('invalid_inspection_workers', `MANDATE_DLP_WORKERS must be a whole number of worker threads from 1 to ${maxInspectionWorkers}, not "${text}"`);
  }
  return value;
}

/** A body that waited for the worker as long as Envoy waits for it: refused as over budget, never inspected. */
export class InspectionQueueExpired extends InspectionOverBudget {
  constructor(waitedMs: number) {
    super(waitedMs);
    this.message = `the body waited ${waitedMs} ms for the inspection worker, as long as Envoy waits for it; not inspected`;
    this.name = 'InspectionQueueExpired';
  }
}

const configKeys = new WeakMap<CompiledDataProtectionOk, string>();

function configKeyOf(dp: CompiledDataProtectionOk): string {
  let key = configKeys.get(dp);
  if (key === undefined) configKeys.set(dp, (key = JSON.stringify([dp.policy, dp.monitor, dp.fingerprintKey?.toString('hex') ?? null])));
  return key;
}

/**
 * `budgetMs`: how long the worker may take per body (budget.ts); a body over it is rejected with
 * InspectionOverBudget, which callers refuse rather than inspect again on the event loop.
 * `queueWaitMs`: how long a body may wait for the worker before it is refused unread
 * (InspectionQueueExpired); by default without limit.
 */
export function createBodyInspectionPool(options: {
  thresholdBytes: number;
  budgetMs?: number;
  queueWaitMs?: number;
  /** Worker threads, each inspecting one body at a time (default 1). */
  workers?: number;
  log: (event: string, fields: Record<string, unknown>) => void;
}): BodyInspectionPool {
  /** One per worker thread: the thread (started when first needed) and the body it is inspecting. */
  const slots: { worker: Worker | null; job: Job | null }[] = Array.from({ length: Math.max(1, options.workers ?? 1) }, () => ({ worker: null, job: null }));
  let nextId = 1;
  /** Bodies not yet sent, oldest first, per sender. */
  const queues = new Map<string, Job[]>();
  /** The turn of each sender's last body queued; the turn of the body last sent to a worker. */
  const lastTurns = new Map<string, number>();
  let turn = 0;
  const queueWaitMs = options.queueWaitMs ?? Infinity;
  let stopped = false;

  /**
   * Sends the next bodies while a worker is free; bodies that waited too long are refused. A sender's
   * bodies take turns n, n+1, n+2... from the turn being served when they arrive (start-time fair
   * queuing), and the lowest turn goes first (the older body on a tie): a sender arriving while
   * another's tenth body is inspected goes before its eleventh.
   */
  function pump(): void {
    for (;;) {
      const slot = stopped ? undefined : slots.find((s) => s.job === null);
      if (slot === undefined || queues.size === 0) break;
      let next: Job[] | null = null;
      let nextSender = '';
      for (const [sender, queue] of queues) {
        const head = queue[0]!;
        if (next === null || head.turn < next[0]!.turn || (head.turn === next[0]!.turn && head.request.id < next[0]!.request.id)) {
          next = queue;
          nextSender = sender;
        }
      }
      const job = next!.shift()!;
      if (next!.length === 0) queues.delete(nextSender);
      turn = job.turn;
      // A sender with nothing queued whose last turn is past is as one never seen.
      for (const [sender, last] of lastTurns) if (last < turn && !queues.has(sender)) lastTurns.delete(sender);
      const waited = performance.now() - job.queuedAt;
      if (waited >= queueWaitMs) {
        options.log('body_inspection_expired', { waitedMs: Math.round(waited), queued: queuedCount() });
        job.reject(new InspectionQueueExpired(Math.round(waited)));
        continue;
      }
      slot.job = job;
      try {
        const target = workerOf(slot);
        target.ref();
        target.postMessage(job.request, job.transfer);
      } catch (error) {
        slot.job = null;
        job.reject(error as Error);
      }
    }
  }

  function queuedCount(): number {
    let n = 0;
    for (const queue of queues.values()) n += queue.length;
    return n;
  }

  /** The slot's worker thread, started when first needed (and again after one is lost). */
  function workerOf(slot: (typeof slots)[number]): Worker {
    if (slot.worker) return slot.worker;
    const started = new Worker(new URL('./inspection-worker.ts', import.meta.url), { name: 'mandate-body-inspection', workerData: { budgetMs: options.budgetMs ?? Infinity } });
    started.unref();
    started.on('message', (reply: InspectionReply) => {
      const entry = slot.job;
      if (slot.worker !== started || entry === null || entry.request.id !== reply.id) return;
      slot.job = null;
      started.unref();
      // The next body goes to the worker before this one's result is read.
      pump();
      if (!reply.ok) {
        entry.reject(reply.code === 'inspection_over_budget' ? new InspectionOverBudget(reply.budgetMs ?? options.budgetMs ?? 0) : new Error(reply.error));
        return;
      }
      let result: InspectResult<Uint8Array | InspectedJson>;
      try {
        result = unpackResult(reply.result);
      } catch (error) {
        entry.reject(new Error(`the inspection worker's reply could not be read: ${errorClassAndPlace(error)}`));
        return;
      }
      entry.resolve(result);
    });
    const lost = (why: string) => {
      // Once per worker ('error' is followed by 'exit'), and not for one already replaced or stopped.
      if (slot.worker !== started) return;
      slot.worker = null;
      const entry = slot.job;
      slot.job = null;
      if (!stopped) options.log('body_inspection_worker_lost', { reason: why, pending: entry === null ? 0 : 1, queued: queuedCount() });
      // The body it was inspecting fails (its caller inspects it inline); the queued ones go on.
      entry?.reject(new Error(`the inspection worker stopped (${why})`));
      pump();
    };
    started.on('error', (error) => lost(errorClassAndPlace(error)));
    started.on('exit', (code) => lost(`exit code ${code}`));
    slot.worker = started;
    return started;
  }

  return {
    thresholdBytes: options.thresholdBytes,
    inspect<T>(dp: CompiledDataProtectionOk, subject: T, context: InspectContext, sender = ''): Promise<InspectResult<T>> {
      if (stopped) return Promise.reject(new Error('the inspection pool is stopped'));
      const id = nextId++;
      // Bytes are copied and moved; a JSON value is copied by postMessage (structured clone keeps its members and their order).
      let sent: Uint8Array<ArrayBuffer> | InspectedJson = { json: subject };
      if (Buffer.isBuffer(subject)) {
        sent = new Uint8Array(subject.length);
        sent.set(subject);
      }
      const request: InspectionRequest = { id, configKey: configKeyOf(dp), config: dp.policy, monitor: dp.monitor, fingerprintKey: dp.fingerprintKey ? new Uint8Array(dp.fingerprintKey) : null, subject: sent, context };
      return new Promise<InspectResult<Uint8Array | InspectedJson>>((resolve, reject) => {
        const jobTurn = Math.max(turn, (lastTurns.get(sender) ?? -1) + 1);
        lastTurns.set(sender, jobTurn);
        const job: Job = { turn: jobTurn, request, transfer: sent instanceof Uint8Array ? [sent.buffer] : [], queuedAt: performance.now(), resolve, reject };
        const queue = queues.get(sender);
        if (queue) queue.push(job);
        else queues.set(sender, [job]);
        pump();
      }).then((result): InspectResult<T> => {
        // Unchanged: the caller's own value, as inline inspection returns it.
        if (!result.changed) return { ...result, value: subject };
        const value = result.value instanceof Uint8Array ? Buffer.from(result.value.buffer, result.value.byteOffset, result.value.byteLength) : result.value.json;
        return { ...result, value: value as T };
      });
    },
    async stop() {
      stopped = true;
      const stoppedError = new Error('the inspection pool is stopped');
      for (const queue of queues.values()) for (const job of queue) job.reject(stoppedError);
      queues.clear();
      lastTurns.clear();
      const running = slots.map((slot) => {
        slot.job?.reject(stoppedError);
        slot.job = null;
        const current = slot.worker;
        slot.worker = null;
        return current?.terminate();
      });
      await Promise.all(running);
    },
  };
}
