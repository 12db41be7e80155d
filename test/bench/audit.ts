// Audit trail benchmark: sustained write throughput through the real path
// (journal write per append, batched hash-chained SQLite commits, signed
// checkpoints), append latency, the power-loss window, query and verify speed.
// Usage: sh deploy/bootstrap.sh node test/bench/audit.ts [--events N]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { allow, deny } from '../../ext-proc/decision/decision.ts';
import { auditEventFromDecision } from '../../ext-proc/audit/event.ts';
import { openAuditLog } from '../../ext-proc/audit/log.ts';
import { buildIncidentReport } from '../../ext-proc/audit/report.ts';

const benchDigestKey = 'bench-arguments-digest-key-of-32-characters';

const { values } = parseArgs({ options: { events: { type: 'string', default: '1000000' } } });
const total = Number(values.events);
const directory = mkdtempSync(join(tmpdir(), 'mandate-audit-bench-'));
const log = openAuditLog({ directory });

// Realistic events: what the data path hands over, built once and cycled.
const templates = Array.from({ length: 1_000 }, (_, i) => {
  const context = { persona: `persona-${i % 5}`, upstream: 'repo-tools', agent: `agent-${i % 200}`, credentialId: `cred-${i % 200}`, sessionId: `s-${i % 50}`, sourceAddress: '10.0.0.9', requestId: `req-${i}` };
  const call = { kind: 'mcp' as const, method: 'tools/call', tool: ['read_file', 'write_file', 'git_commit', 'search'][i % 4]!, arguments: { path: `/repo/src/module-${i}/file-${i}.ts`, sha: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' } };
  const decision = i % 5 === 0 ? deny(call, context, 7, { stage: 'authorization', code: 'tool_not_granted', message: 'write_file is not granted to this Persona' }) : allow(call, context, 7);
  return auditEventFromDecision(decision, benchDigestKey, { latencyMs: 0.4 + (i % 10) / 10, user: `user-${i % 20}` });
});

const appendNs: number[] = [];
let maxUndurableEvents = 0;
let maxUndurableMs = 0;
let pacedWaits = 0;
const started = performance.now();
for (let i = 0; i < total; i += 1) {
  const t0 = process.hrtime.bigint();
  log.append(templates[i % templates.length]!);
  if (i % 97 === 0) appendNs.push(Number(process.hrtime.bigint() - t0));
  if (i % 1_000 === 999) {
    const stats = log.stats();
    maxUndurableEvents = Math.max(maxUndurableEvents, stats.appendedSeq - stats.durableSeq);
    if (stats.journalSyncedAtMs !== null) maxUndurableMs = Math.max(maxUndurableMs, Date.now() - stats.journalSyncedAtMs);
    // Yield like a server does between requests, so lines reach the committer and fdatasync runs.
    await new Promise((resolve) => setImmediate(resolve));
    // The committer runs on its own thread: when it falls behind, hold off (as clients refused by
    // backpressure would) instead of filling the backlog until append() refuses.
    while (log.stats().pendingEvents > 100_000) {
      pacedWaits += 1;
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  }
}
const appendedAt = performance.now();
await log.flush();
const flushedAt = performance.now();
const stats = log.stats();

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
appendNs.sort((a, b) => a - b);

const timeQuery = (label: string, fn: () => unknown, runs = 50) => {
  fn();
  const t0 = performance.now();
  for (let i = 0; i < runs; i += 1) fn();
  return `${label}: ${((performance.now() - t0) / runs).toFixed(2)} ms`;
};
const midMs = Date.now() - (flushedAt - started) / 2;
let deepCursor: string | undefined;
for (let page = 0; page < 20; page += 1) deepCursor = log.query({ agent: 'agent-7' }, { limit: 100, ...(deepCursor ? { cursor: deepCursor } : {}) }).nextCursor ?? undefined;
const queries = [
  timeQuery('newest 100 for one agent', () => log.query({ agent: 'agent-7' }, { limit: 100 })),
  timeQuery('agent + verdict=deny, 100', () => log.query({ agent: 'agent-5', verdict: 'deny' }, { limit: 100 })),
  timeQuery('tool + 1 s time range, 100', () => log.query({ tool: 'write_file', fromMs: Math.floor(midMs), toMs: Math.floor(midMs) + 1_000 }, { limit: 100 })),
  timeQuery('page 21 via cursor (agent)', () => log.query({ agent: 'agent-7' }, { limit: 100, ...(deepCursor ? { cursor: deepCursor } : {}) })),
  timeQuery('persona + user, 100', () => log.query({ persona: 'persona-3', user: 'user-3' }, { limit: 100 })),
];

const verifyStarted = performance.now();
const verification = log.verify();
const verifySeconds = (performance.now() - verifyStarted) / 1000;
const reportStarted = performance.now();
const report = buildIncidentReport(log.store, { agent: 'agent-7', fromMs: 0, toMs: Date.now() + 1, nowMs: Date.now() });
const reportSeconds = (performance.now() - reportStarted) / 1000;
await log.close();
rmSync(directory, { recursive: true, force: true });

const seconds = (flushedAt - started) / 1000;
console.log(`audit trail benchmark, ${total.toLocaleString('en')} events`);
console.log(`  sustained throughput (append → committed, hash-chained, checkpointed): ${Math.round(total / seconds).toLocaleString('en')} events/s (${seconds.toFixed(1)} s; appends done at ${((appendedAt - started) / 1000).toFixed(1)} s, final flush ${((flushedAt - appendedAt) / 1000).toFixed(2)} s)`);
console.log(`  append() latency: p50 ${(quantile(appendNs, 0.5) / 1000).toFixed(1)} µs, p99 ${(quantile(appendNs, 0.99) / 1000).toFixed(1)} µs, max ${(appendNs[appendNs.length - 1]! / 1000).toFixed(1)} µs`);
console.log(`  batches ${stats.batchesCommitted}, checkpoints ${stats.checkpoints}, backpressure refusals ${stats.backpressureRefusals}, paced waits (committer behind by 100k) ${pacedWaits}`);
console.log(`  power-loss window (acknowledged but not yet fdatasync'd): max ${maxUndurableEvents} events, max ${maxUndurableMs} ms since last journal sync`);
console.log(`  verify: ${verification.ok ? 'ok' : `FAILED at ${verification.firstBad?.seq}`}, ${verification.recordsChecked.toLocaleString('en')} records, ${verification.checkpointsVerified} checkpoints in ${verifySeconds.toFixed(1)} s (${Math.round(verification.recordsChecked / verifySeconds).toLocaleString('en')} records/s)`);
console.log(`  incident report for one agent (${report.totals.events.toLocaleString('en')} of its events): ${reportSeconds.toFixed(2)} s`);
for (const q of queries) console.log(`  query ${q}`);
if (!verification.ok || total / seconds < 20_000) process.exitCode = 1;
