// Default-deny authorization of one MCP message or REST operation against a
// Persona's compiled grants. Pure: no I/O, no clock.
import type { DecisionReason } from '../decision/decision.ts';
import type { CompiledUpstreamGrants } from './compile-grants.ts';

export type AuthorizationResult = { allowed: true; grant: string } | { allowed: false; reason: DecisionReason };

/** MCP methods every Persona may use: session plumbing and the (filtered) tool list. */
const sessionMethods = new Set(['initialize', 'ping', 'tools/list', 'logging/setLevel']);

export function authorizeMcpMethod(
  grants: CompiledUpstreamGrants | undefined,
  method: string,
  tool: string | undefined,
  bindings: Record<string, unknown>,
): AuthorizationResult {
  if (sessionMethods.has(method) || method.startsWith('notifications/')) return { allowed: true, grant: `method:${method}` };
  // Task polling only reaches tasks that a granted tools/call created.
  if (method.startsWith('tasks/')) return { allowed: true, grant: `method:${method}` };
  if (method !== 'tools/call') {
    return { allowed: false, reason: { stage: 'authorization', code: 'method_not_granted', message: `MCP method "${method}" is not granted to this Persona` } };
  }
  if (!tool) {
    return { allowed: false, reason: { stage: 'protocol', code: 'invalid_params', message: 'tools/call needs params.name' } };
  }
  return firstMatchingGrant(
    (grants?.tools ?? []).filter((g) => g.matches(tool)).map((g) => ({ label: `tool:${g.pattern}`, when: g.when, whenSource: g.whenSource })),
    bindings,
    { stage: 'authorization', code: 'tool_not_granted', message: `tool "${tool}" is not granted to this Persona` },
  );
}

/** A tool appears in tools/list if any grant names it, conditional or not. */
export function isToolVisible(grants: CompiledUpstreamGrants | undefined, tool: string): boolean {
  return (grants?.tools ?? []).some((g) => g.matches(tool));
}

export function authorizeOperation(
  grants: CompiledUpstreamGrants | undefined,
  method: string,
  path: string,
  bindings: Omit<Record<string, unknown>, 'params'>,
): AuthorizationResult & { params?: Record<string, string> } {
  const candidates = [];
  for (const op of grants?.operations ?? []) {
    if (op.method !== method && !(method === 'HEAD' && op.method === 'GET')) continue;
    const params = op.path.match(path);
    if (params) candidates.push({ label: `operation:${op.method} ${op.path.template}`, when: op.when, whenSource: op.whenSource, params });
  }
  for (const candidate of candidates) {
    const result = firstMatchingGrant([candidate], { ...bindings, params: candidate.params }, null);
    if (result.allowed) return { ...result, params: candidate.params };
  }
  if (candidates.length > 0) {
    return { allowed: false, reason: { stage: 'authorization', code: 'condition_not_met', message: `${method} ${path} is granted only under a condition that this request does not meet` } };
  }
  return { allowed: false, reason: { stage: 'authorization', code: 'operation_not_granted', message: `${method} ${path} is not granted to this Persona` } };
}

function firstMatchingGrant(
  candidates: { label: string; when: ((b: Record<string, unknown>) => { ok: true; value: boolean } | { ok: false; error: string }) | null; whenSource: string | null }[],
  bindings: Record<string, unknown>,
  notGranted: DecisionReason | null,
): AuthorizationResult {
  let conditionFailure: DecisionReason | null = null;
  for (const candidate of candidates) {
    if (!candidate.when) return { allowed: true, grant: candidate.label };
    const outcome = candidate.when(bindings);
    if (outcome.ok && outcome.value) return { allowed: true, grant: candidate.label };
    conditionFailure = outcome.ok
      ? { stage: 'authorization', code: 'condition_not_met', message: `the call does not meet the grant's condition: ${candidate.whenSource}` }
      : { stage: 'authorization', code: 'condition_error', message: `the grant's condition could not be evaluated (${outcome.error}); refused` };
  }
  return { allowed: false, reason: conditionFailure ?? notGranted ?? { stage: 'authorization', code: 'not_granted', message: 'not granted' } };
}
