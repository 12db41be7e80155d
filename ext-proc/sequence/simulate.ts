// Replays recorded calls through the same decision core the data path uses and
// reports, per session, what the behaviour stage did or would have done.
import { z } from 'zod';
import type { Persona } from '../../config/schema.ts';
import type { BehaviourAction } from '../../config/behaviour-schema.ts';
import { MemoryAlertSink } from './alerts.ts';
import type { BaselineRegistry } from './baseline.ts';
import { toolPatternRegExp, type CompiledBehaviour } from './compile.ts';
import { createBehaviourEngine, verdictStopsCall, type BehaviourCall } from './engine.ts';
import { InMemorySessionStateStore } from './state-store.ts';

export const traceLineSchema = z.object({
  session: z.string().min(1),
  agent: z.string().min(1),
  user: z.string().min(1).optional(),
  upstream: z.string().min(1).optional(),
  ts: z.iso.datetime({ offset: true }),
  method: z.string().min(1),
  tool: z.string().min(1).optional(),
  arguments: z.record(z.string(), z.unknown()).default({}),
  result: z
    .object({
      content: z.array(z.unknown()).default([]),
      isError: z.boolean().default(false),
    })
    .optional(),
});

export type TraceLine = z.infer<typeof traceLineSchema>;

export interface TraceError {
  line: number;
  field: string;
  message: string;
}

/** Parses JSONL traces; every bad line is reported with its number and the field at fault. */
export function parseTraces(text: string): { ok: true; traces: { line: number; trace: TraceLine }[] } | { ok: false; errors: TraceError[] } {
  const traces: { line: number; trace: TraceLine }[] = [];
  const errors: TraceError[] = [];
  text.split('\n').forEach((raw, index) => {
    const line = index + 1;
    if (raw.trim() === '') return;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (error) {
      errors.push({ line, field: '(line)', message: `not JSON: ${(error as Error).message}` });
      return;
    }
    if (isAuditEvent(value)) {
      // An audit trail export (mandate audit export): replay its tool calls, skip everything else.
      const trace = traceFromAuditEvent(value);
      if (trace) traces.push({ line, trace });
      return;
    }
    const parsed = traceLineSchema.safeParse(value);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) errors.push({ line, field: issue.path.join('.') || '(line)', message: issue.message });
      return;
    }
    if (parsed.data.method === 'tools/call' && parsed.data.tool === undefined) {
      errors.push({ line, field: 'tool', message: 'a tools/call line needs the tool name' });
      return;
    }
    traces.push({ line, trace: parsed.data });
  });
  return errors.length > 0 ? { ok: false, errors } : { ok: true, traces };
}

interface AuditExportLine {
  kind: string;
  seq: number;
  at: number;
  agent: string | null;
  user: string | null;
  sessionId: string | null;
  credentialId: string | null;
  upstream: string | null;
  operation: string | null;
  tool: string | null;
  maskedArguments: unknown;
}

function isAuditEvent(value: unknown): value is AuditExportLine {
  const v = value as Partial<AuditExportLine> | null;
  return v !== null && typeof v === 'object' && typeof v.kind === 'string' && typeof v.seq === 'number' && typeof v.at === 'number';
}

/**
 * A decision event of the audit trail as a trace line. Arguments are the masked copy the
 * trail keeps (never raw values), which is what rules on argument shapes see in a replay.
 */
function traceFromAuditEvent(event: AuditExportLine): TraceLine | null {
  if (event.kind !== 'decision' || event.operation !== 'tools/call' || !event.tool || !event.agent) return null;
  const args = event.maskedArguments !== null && typeof event.maskedArguments === 'object' && !Array.isArray(event.maskedArguments) ? (event.maskedArguments as Record<string, unknown>) : {};
  return {
    session: event.sessionId ?? `credential:${event.credentialId ?? event.agent}`,
    agent: event.agent,
    ...(event.user ? { user: event.user } : {}),
    ...(event.upstream ? { upstream: event.upstream } : {}),
    ts: new Date(event.at).toISOString(),
    method: 'tools/call',
    tool: event.tool,
    arguments: args,
  };
}

export interface SessionReport {
  session: string;
  agent: string;
  calls: number;
  actions: Partial<Record<BehaviourAction, number>>;
  maxRiskScore: number;
  /** The first call the stage stopped (or would have stopped), if any. */
  firstStop: { line: number; tool: string; action: BehaviourAction; reasons: string[] } | null;
  /** Distinct reason codes seen in the session. */
  reasonCodes: string[];
}

export interface SimulationReport {
  persona: string;
  enforced: boolean;
  lines: number;
  skipped: number;
  sessions: SessionReport[];
  alerts: number;
  quarantined: string[];
}

/** Which upstream a traced tool belongs to: the trace's own field, else the first grant whose pattern matches. */
function upstreamResolver(persona: Persona): (trace: TraceLine) => string {
  const grants = persona.grants.flatMap((grant) => grant.tools.map((tool) => ({ upstream: grant.upstream, pattern: toolPatternRegExp(tool.name) })));
  return (trace) => trace.upstream ?? grants.find((g) => g.pattern.test(trace.tool ?? ''))?.upstream ?? 'unknown';
}

export function simulateTraces(persona: Persona, compiled: CompiledBehaviour, traces: { line: number; trace: TraceLine }[], baselines?: BaselineRegistry): SimulationReport {
  const alerts = new MemoryAlertSink();
  let lastTime = 0;
  const engine = createBehaviourEngine({ clock: () => lastTime, store: new InMemorySessionStateStore({ maxSessions: 1_000_000 }), alertSink: alerts, ...(baselines ? { baselines } : {}) });
  const upstreamOf = upstreamResolver(persona);
  const sessions = new Map<string, SessionReport>();
  let skipped = 0;
  for (const { line, trace } of traces) {
    if (trace.method !== 'tools/call' || trace.tool === undefined) {
      skipped += 1;
      continue;
    }
    lastTime = Date.parse(trace.ts);
    const call: BehaviourCall = {
      persona: persona.name,
      agent: trace.agent,
      user: trace.user ?? null,
      sessionId: trace.session,
      credentialId: null,
      upstream: upstreamOf(trace),
      tool: trace.tool,
      arguments: trace.arguments,
      timeMs: lastTime,
    };
    const verdict = engine.evaluate(compiled, call);
    if (trace.result) engine.recordResult(compiled, call, { isError: trace.result.isError, content: trace.result.content });
    let report = sessions.get(trace.session);
    if (!report) {
      report = { session: trace.session, agent: trace.agent, calls: 0, actions: {}, maxRiskScore: 0, firstStop: null, reasonCodes: [] };
      sessions.set(trace.session, report);
    }
    report.calls += 1;
    report.actions[verdict.action] = (report.actions[verdict.action] ?? 0) + 1;
    report.maxRiskScore = Math.max(report.maxRiskScore, verdict.riskScore);
    for (const reason of verdict.reasons) if (!report.reasonCodes.includes(reason.code)) report.reasonCodes.push(reason.code);
    // In monitor mode "stopped" means "would have stopped".
    if (report.firstStop === null && verdictStopsCall({ ...verdict, enforced: true })) {
      report.firstStop = { line, tool: trace.tool, action: verdict.action, reasons: verdict.reasons.map((r) => r.message) };
    }
  }
  return {
    persona: persona.name,
    enforced: compiled.enforced,
    lines: traces.length,
    skipped,
    sessions: [...sessions.values()],
    alerts: alerts.alerts.length,
    quarantined: engine.quarantine.list().map((q) => q.agent),
  };
}

export function formatReport(report: SimulationReport): string {
  const verb = report.enforced ? 'stopped' : 'would have stopped';
  const out: string[] = [
    `Persona ${report.persona} (${report.enforced ? 'enforce' : 'monitor: nothing below was enforced'}): ${report.lines} lines, ${report.skipped} skipped (not tools/call), ${report.sessions.length} sessions, ${report.alerts} alerts`,
  ];
  for (const session of report.sessions) {
    const actions = Object.entries(session.actions)
      .map(([action, count]) => `${action} ${count}`)
      .join(', ');
    out.push(`\nsession ${session.session} (agent ${session.agent}): ${session.calls} calls; ${actions}; max risk ${session.maxRiskScore}`);
    if (session.firstStop) {
      out.push(`  ${verb} at line ${session.firstStop.line} (${session.firstStop.tool}): ${session.firstStop.action}`);
      for (const reason of session.firstStop.reasons) out.push(`    - ${reason}`);
    } else if (session.reasonCodes.length > 0) {
      out.push(`  alerts only: ${session.reasonCodes.join(', ')}`);
    }
  }
  if (report.quarantined.length > 0) out.push(`\nquarantined agents: ${report.quarantined.join(', ')}`);
  return `${out.join('\n')}\n`;
}
