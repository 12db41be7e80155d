// Large bodies are inspected on a worker thread, so one big tool result (a 1 MB export
// dense with card numbers costs tens of milliseconds) does not stall every other request
// on ext_proc's event loop. Small bodies, most of the traffic, stay inline: handing a body
// over costs more than inspecting a few KiB. A worker that fails or dies is replaced; the
// caller then inspects inline, so a body is never passed unread.
import { Worker } from 'node:worker_threads';
import type { DataProtection } from '../../config/data-protection-schema.ts';
import type { CompiledDataProtectionOk } from './compile.ts';
import type { InspectContext, InspectResult } from './inspect.ts';

export interface InspectionRequest {
  id: number;
  /** Identifies the compiled engine in the worker: the config, the mode and the fingerprint key. */
  configKey: string;
  config: DataProtection;
  monitor: boolean;
  fingerprintKey: Uint8Array | null;
  body: Uint8Array;
  context: InspectContext;
}

export type InspectionReply = { id: number; ok: true; result: InspectResult<Uint8Array> } | { id: number; ok: false; error: string };

export interface BodyInspectionPool {
  /** Bodies of at least this many bytes go to the worker. */
  readonly thresholdBytes: number;
  inspect(dp: CompiledDataProtectionOk, body: Buffer, context: InspectContext): Promise<InspectResult<Buffer>>;
  stop(): Promise<void>;
}

const configKeys = new WeakMap<CompiledDataProtectionOk, string>();

function configKeyOf(dp: CompiledDataProtectionOk): string {
  let key = configKeys.get(dp);
  if (key === undefined) configKeys.set(dp, (key = JSON.stringify([dp.policy, dp.monitor, dp.fingerprintKey?.toString('hex') ?? null])));
  return key;
}

export function createBodyInspectionPool(options: { thresholdBytes: number; log: (event: string, fields: Record<string, unknown>) => void }): BodyInspectionPool {
  let worker: Worker | null = null;
  let nextId = 1;
  const waiting = new Map<number, { resolve: (r: InspectResult<Buffer>) => void; reject: (e: Error) => void }>();
  let stopped = false;

  const failAll = (error: Error) => {
    for (const entry of waiting.values()) entry.reject(error);
    waiting.clear();
  };

  function ensureWorker(): Worker {
    if (worker) return worker;
    const started = new Worker(new URL('./inspection-worker.ts', import.meta.url), { name: 'mandate-body-inspection' });
    started.unref();
    started.on('message', (reply: InspectionReply) => {
      const entry = waiting.get(reply.id);
      if (!entry) return;
      waiting.delete(reply.id);
      if (reply.ok) entry.resolve({ ...reply.result, value: Buffer.from(reply.result.value.buffer, reply.result.value.byteOffset, reply.result.value.byteLength) });
      else entry.reject(new Error(reply.error));
    });
    const lost = (why: string) => {
      if (worker === started) worker = null;
      if (!stopped) options.log('body_inspection_worker_lost', { reason: why, pending: waiting.size });
      failAll(new Error(`the inspection worker stopped (${why})`));
    };
    started.on('error', (error) => lost(error.message));
    started.on('exit', (code) => lost(`exit code ${code}`));
    worker = started;
    return started;
  }

  return {
    thresholdBytes: options.thresholdBytes,
    inspect(dp, body, context) {
      if (stopped) return Promise.reject(new Error('the inspection pool is stopped'));
      const id = nextId++;
      const copy = new Uint8Array(body.length);
      copy.set(body);
      const request: InspectionRequest = { id, configKey: configKeyOf(dp), config: dp.policy, monitor: dp.monitor, fingerprintKey: dp.fingerprintKey ? new Uint8Array(dp.fingerprintKey) : null, body: copy, context };
      return new Promise<InspectResult<Buffer>>((resolve, reject) => {
        waiting.set(id, { resolve, reject });
        try {
          const target = ensureWorker();
          target.ref();
          target.postMessage(request, [copy.buffer]);
        } catch (error) {
          waiting.delete(id);
          reject(error as Error);
        }
      }).finally(() => {
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
