// One audit event: what the data path (or an admin) did, in a shape that is safe
// to keep forever. Arguments are never stored raw: a digest of the canonical
// arguments plus a masked copy, with values flagged by DLP findings redacted.
import { createHmac } from 'node:crypto';
import { z } from 'zod';
import type { AnswerRefusal, DataFinding, Decision, DecisionReason } from '../decision/decision.ts';
import { maskArguments } from './masked-arguments.ts';

export const auditEventKindSchema = z.enum(['decision', 'response', 'admin', 'alert']);
export type AuditEventKind = z.infer<typeof auditEventKindSchema>;

export const auditReasonSchema = z.object({
  stage: z.string(),
  code: z.string(),
  message: z.string(),
});

export const adminActionSchema = z.object({
  /** Who made the change: an admin user or service identity. */
  actor: z.string().min(1),
  /** What was done, e.g. "persona.update", "credential.revoke". */
  action: z.string().min(1),
  /** What it was done to, e.g. "persona/code-assistant". */
  target: z.string(),
  beforeVersion: z.number().int().nullable(),
  afterVersion: z.number().int().nullable(),
  /** Free-form, never secrets: e.g. a summary of the diff. */
  detail: z.string().default(''),
});
export type AdminAction = z.input<typeof adminActionSchema>;

export const alertSchema = z.object({
  name: z.string().min(1),
  severity: z.enum(['info', 'warning', 'critical']),
  message: z.string(),
});
export type AuditAlert = z.infer<typeof alertSchema>;

/** What a caller hands to `AuditLog.append`. Time and sequence are assigned by the log. */
export const auditEventInputSchema = z.object({
  kind: auditEventKindSchema,
  requestId: z.string().nullable().default(null),
  traceId: z.string().nullable().default(null),
  /** The caller's span (from its traceparent) that the event's span is a child of; absent without one. */
  parentSpanId: z.string().regex(/^[0-9a-f]{16}$/).optional(),
  agent: z.string().nullable().default(null),
  user: z.string().nullable().default(null),
  credentialId: z.string().nullable().default(null),
  persona: z.string().nullable().default(null),
  configVersion: z.number().int().nullable().default(null),
  sessionId: z.string().nullable().default(null),
  sourceAddress: z.string().nullable().default(null),
  upstream: z.string().nullable().default(null),
  /** JSON-RPC method for MCP ("tools/call"), HTTP method for REST. */
  operation: z.string().nullable().default(null),
  /** MCP tool name, or "METHOD /path" for REST. */
  tool: z.string().nullable().default(null),
  argumentsDigest: z.string().nullable().default(null),
  maskedArguments: z.unknown().default(null),
  verdict: z.enum(['allow', 'deny']).nullable().default(null),
  enforced: z.boolean().nullable().default(null),
  reasons: z.array(auditReasonSchema).default([]),
  riskScore: z.number().nullable().default(null),
  /** "detector/group" of each DLP finding, never the matched value. */
  findingTypes: z.array(z.string()).default([]),
  latencyMs: z.number().nullable().default(null),
  upstreamStatus: z.number().int().nullable().default(null),
  /**
   * A response event whose answer Mandate refused or cut short (its verdict is then deny and its first
   * reason says why): the HTTP status the agent received (502 for a REST answer refused whole; the
   * upstream's when the refusal travels inside the answer, as an MCP error or the error that ends a
   * stream). Absent when the answer went through.
   */
  agentStatus: z.number().int().optional(),
  admin: adminActionSchema.nullable().default(null),
  alert: alertSchema.nullable().default(null),
});
export type AuditEventInput = z.input<typeof auditEventInputSchema>;
export type AuditEventFields = z.output<typeof auditEventInputSchema>;

/** An event as stored: the input plus what the log assigned. `seq` is its place in the chain. */
export interface AuditEvent extends AuditEventFields {
  seq: number;
  /** Milliseconds since the epoch, from the log's clock at append time. */
  at: number;
}

const eventKinds = new Set<string>(auditEventKindSchema.options);

/**
 * The hot-path equivalent of auditEventInputSchema.parse (which costs several
 * microseconds per event): fills the same defaults, checks the kind. The
 * TypeScript type, inferred from the schema, already constrains callers;
 * event.test.ts checks both give the same result.
 */
export function normaliseEventInput(input: AuditEventInput): AuditEventFields {
  if (!eventKinds.has(input.kind)) throw new TypeError(`unknown audit event kind "${String(input.kind)}"`);
  return {
    kind: input.kind,
    requestId: input.requestId ?? null,
    traceId: input.traceId ?? null,
    ...(input.parentSpanId ? { parentSpanId: input.parentSpanId } : {}),
    agent: input.agent ?? null,
    user: input.user ?? null,
    credentialId: input.credentialId ?? null,
    persona: input.persona ?? null,
    configVersion: input.configVersion ?? null,
    sessionId: input.sessionId ?? null,
    sourceAddress: input.sourceAddress ?? null,
    upstream: input.upstream ?? null,
    operation: input.operation ?? null,
    tool: input.tool ?? null,
    argumentsDigest: input.argumentsDigest ?? null,
    maskedArguments: input.maskedArguments ?? null,
    verdict: input.verdict ?? null,
    enforced: input.enforced ?? null,
    reasons: input.reasons ?? [],
    riskScore: input.riskScore ?? null,
    findingTypes: input.findingTypes ?? [],
    latencyMs: input.latencyMs ?? null,
    upstreamStatus: input.upstreamStatus ?? null,
    ...(input.agentStatus !== undefined ? { agentStatus: input.agentStatus } : {}),
    admin: input.admin ? { ...input.admin, detail: input.admin.detail ?? '' } : null,
    alert: input.alert ?? null,
  };
}

export interface DecisionEventExtra {
  kind?: 'decision' | 'response';
  latencyMs?: number | null;
  upstreamStatus?: number | null;
  user?: string | null;
  traceId?: string | null;
  parentSpanId?: string | null;
  /** Findings on the response, for a response event. Added to the decision's own. */
  responseFindings?: DataFinding[];
  /** What happened after the decision (external DLP rewrote or failed open), for a response event. Added to its reasons. */
  outcomeNotes?: DecisionReason[];
  /** For a response event: Mandate refused or cut the answer. The event's verdict becomes deny, with this reason first. */
  answerRefusal?: AnswerRefusal | null;
}

/**
 * A decision's arguments as the audit keeps them: a digest and a masked copy. Masking reads only
 * the request's findings, so the decision event and its response event share one record, computed
 * once per decision (the digest hashes the whole canonical arguments).
 */
const argumentRecords = new WeakMap<Decision, { argumentsDigest: string | null; maskedArguments: unknown }>();

function argumentRecordOf(decision: Decision, digestKey: string | Buffer): { argumentsDigest: string | null; maskedArguments: unknown } {
  let record = argumentRecords.get(decision);
  if (record === undefined) {
    const { call } = decision;
    const rawArguments = call.kind === 'mcp' ? call.arguments : call.body === undefined ? { query: call.query } : { query: call.query, body: call.body };
    record =
      rawArguments === undefined
        ? { argumentsDigest: null, maskedArguments: null }
        : { argumentsDigest: argumentsDigest(rawArguments, digestKey), maskedArguments: maskArguments(rawArguments, decision.findings.filter((f) => f.direction === 'request'), call.kind) };
    argumentRecords.set(decision, record);
  }
  return record;
}

/** The audit event for a decision (kind "decision") or for the upstream's answer to it (kind "response"). */
export function auditEventFromDecision(decision: Decision, digestKey: string | Buffer, extra: DecisionEventExtra = {}): AuditEventFields {
  const { call, context } = decision;
  const findings = extra.responseFindings && extra.responseFindings.length > 0 ? [...decision.findings, ...extra.responseFindings] : decision.findings;
  const { argumentsDigest: digest, maskedArguments } = argumentRecordOf(decision, digestKey);
  const refusal = extra.kind === 'response' ? (extra.answerRefusal ?? null) : null;
  return {
    kind: extra.kind ?? 'decision',
    requestId: context.requestId,
    traceId: extra.traceId ?? null,
    ...(extra.parentSpanId ? { parentSpanId: extra.parentSpanId } : {}),
    agent: context.agent,
    user: extra.user ?? null,
    credentialId: context.credentialId,
    persona: context.persona,
    configVersion: decision.configVersion,
    sessionId: context.sessionId,
    sourceAddress: context.sourceAddress,
    upstream: context.upstream,
    operation: call.method,
    tool: call.kind === 'mcp' ? (call.tool ?? null) : `${call.method} ${call.path}`,
    argumentsDigest: digest,
    maskedArguments,
    verdict: refusal ? 'deny' : decision.verdict,
    enforced: refusal ? refusal.enforced : decision.enforced,
    reasons: [...(refusal ? [refusal.reason] : []), ...decision.reasons, ...(extra.outcomeNotes ?? [])].map((r) => ({ stage: r.stage, code: r.code, message: r.message })),
    riskScore: decision.riskScore,
    findingTypes: [...new Set(findings.map((f) => `${f.detector}/${f.group}`))],
    latencyMs: extra.latencyMs ?? null,
    upstreamStatus: extra.upstreamStatus ?? null,
    ...(refusal && refusal.agentStatus !== null ? { agentStatus: refusal.agentStatus } : {}),
    admin: null,
    alert: null,
  };
}

/** JSON with object keys sorted, so equal values always give equal bytes. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value ?? null);
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v === undefined ? null : v)).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

/**
 * The digest of a call's canonical arguments: an HMAC with the deployment's audit digest key, so that
 * whoever reads the trail (or the traces it is exported to) cannot recover a redacted low-entropy
 * value (an SSN, a PIN) by hashing guesses. Equal arguments give equal digests under one key.
 */
export function argumentsDigest(value: unknown, key: string | Buffer): string {
  return `hmac-sha256:${createHmac('sha256', key).update(canonicalJson(value)).digest('hex')}`;
}
