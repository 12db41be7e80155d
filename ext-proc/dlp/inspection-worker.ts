// Worker thread side of body-inspection.ts: compiles each data-protection config it is
// sent once (its own RE2 objects: they cannot cross threads) and inspects bodies with it.
import { parentPort, workerData } from 'node:worker_threads';
import { compileDataProtection, type CompiledDataProtectionOk } from './compile.ts';
import { inspectBody, inspectJson } from './inspect.ts';
import { packResult, type InspectionReply, type InspectionRequest } from './body-inspection.ts';
import { errorClassAndPlace } from '../error-description.ts';
import { InspectionOverBudget, setInspectionBudget } from './budget.ts';

// The pool's budget for a body on this thread (budget.ts keeps one per thread).
const { budgetMs } = (workerData ?? {}) as { budgetMs?: number };
if (budgetMs !== undefined && Number.isFinite(budgetMs)) setInspectionBudget(budgetMs);

const compiled = new Map<string, CompiledDataProtectionOk>();
const maxCompiled = 32;

function engineFor(request: InspectionRequest): CompiledDataProtectionOk {
  let engine = compiled.get(request.configKey);
  if (engine === undefined) {
    const result = compileDataProtection(request.config, { monitor: request.monitor, ...(request.fingerprintKey ? { fingerprintKey: Buffer.from(request.fingerprintKey) } : {}) });
    if (!result.ok) throw new Error(`the data-protection config does not compile in the worker: ${result.issues.map((i) => i.message).join('; ')}`);
    if (compiled.size >= maxCompiled) compiled.delete(compiled.keys().next().value!);
    compiled.set(request.configKey, (engine = result));
  }
  return engine;
}

parentPort!.on('message', (request: InspectionRequest) => {
  let reply: InspectionReply;
  let transfer: ArrayBuffer[] = [];
  try {
    const engine = engineFor(request);
    const { subject } = request;
    if (subject instanceof Uint8Array) {
      const result = inspectBody(engine, Buffer.from(subject.buffer, subject.byteOffset, subject.byteLength), request.context);
      // Unchanged, the caller keeps its own bytes: nothing to send back.
      const value = new Uint8Array(result.changed ? result.value.length : 0);
      if (result.changed) value.set(result.value);
      const packed = packResult({ ...result, value });
      transfer = [value.buffer, ...packed.transfer];
      reply = { id: request.id, ok: true, result: packed.result };
    } else {
      const result = inspectJson(engine, subject.json, request.context);
      const packed = packResult({ ...result, value: { json: result.value } });
      transfer = packed.transfer;
      reply = { id: request.id, ok: true, result: packed.result };
    }
  } catch (error) {
    // the message may quote the body: its class and place only (error-description.ts)
    reply = error instanceof InspectionOverBudget ? { id: request.id, ok: false, error: error.message, code: error.code, budgetMs: error.budgetMs } : { id: request.id, ok: false, error: errorClassAndPlace(error) };
  }
  parentPort!.postMessage(reply, transfer);
});
