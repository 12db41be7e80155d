// Large bodies are inspected on a worker thread, so one big tool result (a 1 MB export
// dense with card numbers costs tens of milliseconds) or one big request (a 4 MiB body of
// assigned passwords costs over a second) does not stall every other request on ext_proc's
// event loop. Small bodies, most of the traffic, stay inline: handing a body over costs
// more than inspecting a few KiB. A worker that fails or dies is replaced; the caller then
// inspects inline, so a body is never passed unread.
import { Worker } from 'node:worker_threads';
import type { DataProtection } from '../../config/data-protection-schema.ts';
import type { CompiledDataProtectionOk } from './compile.ts';
import type { InspectContext, InspectResult } from './inspect.ts';
import { packFindings, packFingerprints, unpackFindings, unpackFingerprints, type PackedRecords } from './packed-findings.ts';
import { errorClassAndPlace } from '../error-description.ts';
import { InspectionOverBudget } from './budget.ts';

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
  /** inspectBody for a Buffer, inspectJson for a parsed JSON value, on the worker thread. */
  inspect<T>(dp: CompiledDataProtectionOk, subject: T, context: InspectContext): Promise<InspectResult<T>>;
  stop(): Promise<void>;
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
 */
export function createBodyInspectionPool(options: { thresholdBytes: number; budgetMs?: number; log: (event: string, fields: Record<string, unknown>) => void }): BodyInspectionPool {
  let worker: Worker | null = null;
  let nextId = 1;
  const waiting = new Map<number, { resolve: (r: InspectResult<Uint8Array | InspectedJson>) => void; reject: (e: Error) => void }>();
  let stopped = false;

  const failAll = (error: Error) => {
    for (const entry of waiting.values()) entry.reject(error);
    waiting.clear();
  };

  function ensureWorker(): Worker {
    if (worker) return worker;
    const started = new Worker(new URL('./inspection-worker.ts', import.meta.url), { name: 'mandate-body-inspection', workerData: { budgetMs: options.budgetMs ?? Infinity } });
    started.unref();
    started.on('message', (reply: InspectionReply) => {
      const entry = waiting.get(reply.id);
      if (!entry) return;
      waiting.delete(reply.id);
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
      if (worker === started) worker = null;
      if (!stopped) options.log('body_inspection_worker_lost', { reason: why, pending: waiting.size });
      failAll(new Error(`the inspection worker stopped (${why})`));
    };
    started.on('error', (error) => lost(errorClassAndPlace(error)));
    started.on('exit', (code) => lost(`exit code ${code}`));
    worker = started;
    return started;
  }

  return {
    thresholdBytes: options.thresholdBytes,
    inspect<T>(dp: CompiledDataProtectionOk, subject: T, context: InspectContext): Promise<InspectResult<T>> {
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
        waiting.set(id, { resolve, reject });
        try {
          const target = ensureWorker();
          target.ref();
          target.postMessage(request, sent instanceof Uint8Array ? [sent.buffer] : []);
        } catch (error) {
          waiting.delete(id);
          reject(error as Error);
        }
      })
        .then((result): InspectResult<T> => {
          // Unchanged: the caller's own value, as inline inspection returns it.
          if (!result.changed) return { ...result, value: subject };
          const value = result.value instanceof Uint8Array ? Buffer.from(result.value.buffer, result.value.byteOffset, result.value.byteLength) : result.value.json;
          return { ...result, value: value as T };
        })
        .finally(() => {
          if (waiting.size === 0) worker?.unref();
        });
    },
    async stop() {
      stopped = true;
      failAll(new Error('the inspection pool is stopped'));
      const current = worker;
      worker = null;
      await current?.terminate();
    },
  };
}
