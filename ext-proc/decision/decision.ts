// The one value every policy stage contributes to and the audit log stores.
// A Decision is data: what was asked, what was decided, why, under which config.

/** Which stage produced a reason. */
export type DecisionStage = 'protocol' | 'authentication' | 'authorization' | 'data-protection' | 'behaviour' | 'availability';

export interface DecisionReason {
  stage: DecisionStage;
  /** Stable, documented code (see docs/errors.md), e.g. "tool_not_granted". */
  code: string;
  /** A sentence a person can act on. Never contains sensitive values. */
  message: string;
}

/** A sensitive-data finding. Never carries the matched value. */
export interface DataFinding {
  detector: string;
  group: string;
  /** JSON path or "body" for non-JSON content. */
  location: string;
  confidence: number;
  action: 'detect' | 'mask' | 'redact' | 'block';
  direction: 'request' | 'response';
}

/** What the agent asked for, normalised across MCP and REST. */
export type AgentCall =
  | {
      kind: 'mcp';
      /** JSON-RPC method, e.g. "tools/call". */
      method: string;
      /** For tools/call: the tool name. */
      tool?: string;
      arguments?: unknown;
      jsonRpcId?: string | number | null;
    }
  | {
      kind: 'rest';
      method: string;
      /** Path relative to the upstream's base, without the query string. */
      path: string;
      query: Record<string, string | string[]>;
      body?: unknown;
    };

export interface CallContext {
  persona: string;
  upstream: string;
  /** Agent identity as authenticated, or null if authentication failed. */
  agent: string | null;
  credentialId: string | null;
  sessionId: string | null;
  sourceAddress: string | null;
  requestId: string | null;
  /** The caller's span, from a valid W3C traceparent header; the audit's spans join its trace. */
  trace?: TraceParent | null;
}

/** A caller's span as a traceparent header names it (audit/trace-context.ts reads the header). */
export interface TraceParent {
  traceId: string;
  /** The caller's span: the parent of the spans Mandate exports for the request. */
  parentSpanId: string;
}

export type Verdict = 'allow' | 'deny';

/**
 * Mandate refused the upstream's answer to an allowed call, or cut it short (a blocked value, an
 * answer it cannot read, an external DLP refusal): the call's response event records it.
 */
export interface AnswerRefusal {
  reason: DecisionReason;
  /** False in monitor mode: recorded, and the answer passed. */
  enforced: boolean;
  /**
   * The HTTP status the agent received: 502 for a REST answer refused whole; the upstream's when the
   * refusal travels inside the answer (an MCP error in place of a result, the error that ends a stream)
   * or was not enforced.
   */
  agentStatus: number | null;
}

export interface Decision {
  verdict: Verdict;
  /** False when the Persona is in monitor mode: a deny is recorded, not enforced. */
  enforced: boolean;
  reasons: DecisionReason[];
  findings: DataFinding[];
  /** 0..1, from the behavioural stage; null if not scored. */
  riskScore: number | null;
  configVersion: number;
  call: AgentCall;
  context: CallContext;
}

export function allow(call: AgentCall, context: CallContext, configVersion: number): Decision {
  return { verdict: 'allow', enforced: true, reasons: [], findings: [], riskScore: null, configVersion, call, context };
}

export function deny(call: AgentCall, context: CallContext, configVersion: number, reason: DecisionReason, enforced = true): Decision {
  return { verdict: 'deny', enforced, reasons: [reason], findings: [], riskScore: null, configVersion, call, context };
}

/** True if the request must be stopped: denied and enforced. */
export function blocks(decision: Decision): boolean {
  return decision.verdict === 'deny' && decision.enforced;
}
