// The behaviour stage as the data path calls it: one verdict per call, after
// authorization, turned into what a Decision carries (risk score, reasons, the
// reason that stops the call, a retry hint for throttling).
import type { DecisionReason } from '../decision/decision.ts';
import type { CompiledBehaviour } from '../sequence/compile.ts';
import { verdictStopsCall, type BehaviourCall, type BehaviourEngine, type BehaviourResult } from '../sequence/engine.ts';

export interface BehaviourCheck {
  /** 0..1; null when the Persona has no behaviour block. */
  riskScore: number | null;
  /** Set for throttle and stronger; enforced unless the Persona monitors (the Decision decides). */
  stop: DecisionReason | null;
  /** The other reasons (alerts, baseline deviations), recorded on the Decision. */
  notes: DecisionReason[];
  retryAfterSeconds: number | null;
}

export function checkBehaviour(engine: BehaviourEngine, compiled: CompiledBehaviour, call: BehaviourCall): BehaviourCheck {
  if (!compiled.active) return { riskScore: null, stop: null, notes: [], retryAfterSeconds: null };
  const verdict = engine.evaluate(compiled, call);
  // Evaluated as if enforced, so monitor mode records exactly what enforcement would refuse.
  const stops = verdictStopsCall({ ...verdict, enforced: true });
  if (!stops) return { riskScore: verdict.riskScore, stop: null, notes: verdict.reasons, retryAfterSeconds: null };
  // The reason to show is the one that caused the action, not a baseline deviation that rode along.
  const stop = verdict.reasons.find((r) => !r.code.startsWith('baseline_')) ?? verdict.reasons[0] ?? { stage: 'behaviour', code: 'behaviour_blocked', message: `behaviour stage: ${verdict.action}` };
  return {
    riskScore: verdict.riskScore,
    stop,
    notes: verdict.reasons.filter((r) => r !== stop),
    retryAfterSeconds: verdict.action === 'throttle' ? verdict.retryAfterSeconds : null,
  };
}

export function recordBehaviourResult(engine: BehaviourEngine, compiled: CompiledBehaviour, call: BehaviourCall, result: BehaviourResult): void {
  if (compiled.active) engine.recordResult(compiled, call, result);
}

/** The response side of one JSON-RPC message, for recordResult: errors, content, and ids the result revealed. */
export function behaviourResultOf(message: { result?: unknown; error?: unknown }): BehaviourResult {
  if (message.error !== undefined) return { isError: true };
  const result = (message.result ?? {}) as { isError?: unknown; content?: unknown; structuredContent?: unknown };
  const objects: string[] = [];
  const structured = result.structuredContent;
  if (structured && typeof structured === 'object') {
    for (const value of Object.values(structured as Record<string, unknown>)) {
      if (!Array.isArray(value)) continue;
      for (const item of value.slice(0, 1000)) {
        const id = (item as { id?: unknown } | null)?.id;
        if (typeof id === 'string' || typeof id === 'number') objects.push(String(id));
      }
    }
  }
  return { isError: result.isError === true, content: result.content, ...(objects.length > 0 ? { objects } : {}) };
}
