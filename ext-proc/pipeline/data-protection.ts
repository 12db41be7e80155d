// The data-protection stage as the data path calls it: inspect what the agent
// sends and check it against what its session read earlier (data-flow rules);
// inspect what the tool answers and remember the sensitive values it revealed.
// Pure apart from the flow tracker, which the service owns.
import type { Environment, ToolClass } from '../../config/schema.ts';
import type { DataFinding, DecisionReason } from '../decision/decision.ts';
import type { CompiledDataProtectionOk } from '../dlp/compile.ts';
import type { FlowSignal, FlowTracker } from '../dlp/flow.ts';
import { spannedFingerprints, textsOfBody, textsOfJson } from '../dlp/flow-candidates.ts';
import { blockedMessage, dataBlockedCode, inspectBody, inspectJson, type BlockedBy, type BlockedPart, type InspectContext, type InspectResult, type ValueFingerprint } from '../dlp/inspect.ts';

export interface FlowEndpoint {
  upstream: string;
  environment: Environment;
  tool?: string;
  toolClass?: ToolClass;
}

export interface RequestProtection<T> {
  /** The value to forward: a masked or redacted copy when `changed`. */
  value: T;
  changed: boolean;
  findings: DataFinding[];
  /** Why the request must be refused (a block action or a flow rule); enforced unless the Persona monitors. */
  denial: DecisionReason | null;
  /** Flow rules with action `detect` that matched: recorded, never refused. */
  notes: DecisionReason[];
}

/** How data protection reads what the agent sends to `to`: rules may name the upstream and the tool. */
export function requestInspectContext(to: FlowEndpoint): InspectContext {
  return { direction: 'request', upstream: to.upstream, ...(to.tool ? { tool: to.tool } : {}) };
}

/**
 * Tool arguments (MCP), a parsed body, header values, a query: `part` is what a block's message names.
 * `inspected`: what inspecting `value` in requestInspectContext(to) gave already (on the worker thread).
 */
export function protectRequestJson<T>(dp: CompiledDataProtectionOk, flow: FlowTracker, flowSession: string, value: T, to: FlowEndpoint, part: BlockedPart, inspected?: InspectResult<T>): RequestProtection<T> {
  if (!dp.active) return { value, changed: false, findings: [], denial: null, notes: [] };
  return withFlowCheck(dp, flow, flowSession, inspected ?? inspectJson(dp, value, requestInspectContext(to)), to, () => textsOfJson(value), part);
}

/** A raw request body (REST): JSON is parsed only when something may match. */
export function protectRequestBody(dp: CompiledDataProtectionOk, flow: FlowTracker, flowSession: string, body: Buffer, to: FlowEndpoint, part: BlockedPart, inspected?: InspectResult<Buffer>): RequestProtection<Buffer> {
  if (!dp.active) return { value: body, changed: false, findings: [], denial: null, notes: [] };
  return withFlowCheck(dp, flow, flowSession, inspected ?? inspectBody(dp, body, requestInspectContext(to)), to, () => textsOfBody(body), part);
}

/**
 * The request is checked against the session's remembered values by the fingerprints of its
 * findings and, when some remembered values may not go to `to`, by every span that could spell
 * one of them, found by a detector or not (flow-candidates.ts). `texts` reads the request for
 * that search; a session with nothing barred from `to` never reads it.
 */
function withFlowCheck<T>(dp: CompiledDataProtectionOk, flow: FlowTracker, flowSession: string, result: InspectResult<T>, to: FlowEndpoint, texts: () => string[], part: BlockedPart): RequestProtection<T> {
  const blocked = result.blocked ?? result.wouldBlock;
  let denial: DecisionReason | null = blocked ? blockedReason(blocked, part) : null;
  const notes: DecisionReason[] = [];
  if (!dp.policy.flow.enabled) return { value: result.value, changed: result.changed, findings: result.findings, denial, notes };
  const restricted = dp.fingerprintKey ? flow.restrictedValues(flowSession, to, dp.policy.flow.rules) : null;
  const hashes = new Set(result.fingerprints.map((f) => f.hash));
  if (restricted !== null) for (const hash of spannedFingerprints(dp.fingerprintKey!, texts(), restricted)) hashes.add(hash);
  if (hashes.size > 0) {
    for (const violation of flow.checkRequest(flowSession, to, [...hashes].map((hash) => ({ hash })), dp.policy.flow.rules, dp.flowLimits)) {
      const reason: DecisionReason = { stage: 'data-protection', code: violation.code, message: violation.message };
      if (violation.action === 'block' && denial === null) denial = reason;
      else notes.push(reason);
    }
  }
  return { value: result.value, changed: result.changed, findings: result.findings, denial, notes };
}

/**
 * A buffered response body (JSON or text). In monitor mode nothing changes and nothing is blocked.
 * `clientIds`: the JSON-RPC ids of the client's requests, which the answer's response messages carry back uninspected.
 */
export function protectResponseBody(dp: CompiledDataProtectionOk, body: Buffer, from: { upstream: string; tool?: string; clientIds?: readonly (string | number)[] }): InspectResult<Buffer> {
  return inspectBody(dp, body, { direction: 'response', upstream: from.upstream, ...(from.tool ? { tool: from.tool } : {}), ...(from.clientIds?.length ? { clientIds: from.clientIds } : {}) });
}

/**
 * Remembers the values a tool result revealed, so a later request cannot carry them where they
 * may not go. Returns the gradual-collection signal when this result takes the session over the
 * threshold of distinct sensitive values read (once per session).
 */
export function rememberResponseValues(dp: CompiledDataProtectionOk, flow: FlowTracker, flowSession: string, from: FlowEndpoint, fingerprints: ValueFingerprint[]): FlowSignal | null {
  if (!dp.policy.flow.enabled || fingerprints.length === 0) return null;
  return flow.recordResponse(flowSession, { upstream: from.upstream, environment: from.environment, ...(from.tool ? { tool: from.tool } : {}) }, fingerprints, dp.flowLimits);
}

/** What data protection found in one result, as the behaviour stage reads it: a count and the groups, never values. */
export function sensitiveSummary(findings: DataFinding[]): { values: number; groups: string[] } {
  return { values: findings.length, groups: [...new Set(findings.map((f) => f.group))] };
}

/** What the audit trail records in place of a segment (of a path, a method or a tool name) that a detector flags. */
export const redactedSegment = '[redacted]';

/**
 * Segments of what names a call (a REST path, an MCP method or tool name, split at "/") as the audit
 * trail keeps them: each one that a finding of inspecting them as a JSON array points at ("$[i]...")
 * becomes "[redacted]", whatever the rule's action (a detect-only finding too).
 */
export function redactFlaggedSegments(segments: readonly string[], findings: readonly DataFinding[]): string[] {
  if (findings.length === 0) return [...segments];
  const flagged = new Set(findings.map((f) => Number(/^\$\[(\d+)\]/.exec(f.location)?.[1] ?? -1)));
  return segments.map((segment, i) => (flagged.has(i) ? redactedSegment : segment));
}

export function blockedReason(blocked: BlockedBy, part: BlockedPart): DecisionReason {
  return { stage: 'data-protection', code: dataBlockedCode, message: blockedMessage(blocked, part) };
}
