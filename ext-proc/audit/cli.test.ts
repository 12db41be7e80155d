import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { trace, type Context, type Span, type SpanOptions, type Tracer } from '@opentelemetry/api';
import { run, type CliIo } from './cli.ts';
import { exportSpan } from './export.ts';
import { openAuditLog } from './log.ts';
import { databaseFile } from './store.ts';

const root = mkdtempSync(join(tmpdir(), 'mandate-audit-cli-'));
const directory = join(root, 'audit');
after(() => rmSync(root, { recursive: true, force: true }));
const start = Date.UTC(2026, 10, 21, 12, 0, 0);

function capture(env: Record<string, string> = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = { out: (t) => out.push(t), err: (t) => err.push(t), env };
  return { io, out, err, text: () => out.join('') };
}

before(async () => {
  let now = start;
  const log = openAuditLog({ directory, clock: () => (now += 1000) });
  for (let i = 0; i < 120; i += 1) {
    log.append({ kind: 'decision', agent: i % 3 ? 'agent-a' : 'agent-b', user: 'dana', persona: 'coder', tool: i % 2 ? 'read_file' : 'write_file', verdict: i % 4 === 0 ? 'deny' : 'allow', enforced: true, reasons: i % 4 === 0 ? [{ stage: 'authorization', code: 'tool_not_granted', message: 'no' }] : [], latencyMs: 0.7 });
  }
  log.appendAlert({ name: 'runaway_agent', severity: 'critical', message: 'rate 40x baseline' }, { agent: 'agent-a' });
  log.appendAdminEvent({ actor: 'ops', action: 'persona.update', target: 'persona/coder', beforeVersion: 1, afterVersion: 2, detail: '' });
  assert.match(log.metrics(), /mandate_requests_total\{persona="coder",verdict="deny",enforced="true"\} 30/);
  assert.match(log.metrics(), /mandate_alerts_total\{alert="runaway_agent",severity="critical"\} 1/);
  assert.match(log.metrics(), /mandate_decision_latency_ms_bucket\{persona="coder",le="1"\} 120/);
  await log.close();
});

describe('mandate audit CLI', () => {
  it('verify passes on an intact trail, with the directory from MANDATE_DATA_DIR', async () => {
    const c = capture({ MANDATE_DATA_DIR: root });
    assert.equal(await run(['audit', 'verify'], c.io), 0);
    assert.match(c.text(), /^ok: 122 records, 1 signed checkpoints/);
  });

  it('verify fails and names the first bad record', async () => {
    const copy = join(root, 'tampered');
    await import('node:fs/promises').then((fs) => fs.cp(directory, copy, { recursive: true }));
    const sqlite = new Database(join(copy, databaseFile));
    sqlite.exec("DROP TRIGGER audit_events_no_update; UPDATE audit_events SET body = replace(body, 'deny', 'allow') WHERE seq = 9");
    sqlite.close();
    const c = capture();
    assert.equal(await run(['audit', 'verify', '--dir', copy], c.io), 1);
    assert.match(c.text(), /TAMPERED: first bad record 9 \(hash_mismatch\)/);
  });

  it('query filters and pages with a cursor', async () => {
    const first = capture();
    assert.equal(await run(['audit', 'query', '--dir', directory, '--agent', 'agent-a', '--verdict', 'deny', '--limit', '10', '--json'], first.io), 0);
    const page = JSON.parse(first.text()) as { events: { agent: string; verdict: string; seq: number }[]; nextCursor: string };
    assert.equal(page.events.length, 10);
    assert.ok(page.events.every((e) => e.agent === 'agent-a' && e.verdict === 'deny'));
    const second = capture();
    assert.equal(await run(['audit', 'query', '--dir', directory, '--agent', 'agent-a', '--verdict', 'deny', '--limit', '100', '--cursor', page.nextCursor, '--json'], second.io), 0);
    const rest = JSON.parse(second.text()) as { events: { seq: number }[]; nextCursor: string | null };
    assert.equal(page.events.length + rest.events.length, 20);
    assert.equal(rest.nextCursor, null);
    assert.ok(Math.max(...rest.events.map((e) => e.seq)) < Math.min(...page.events.map((e) => e.seq)));
  });

  it('export writes JSONL of the stored records, filtered by time', async () => {
    const c = capture();
    const out = join(root, 'export.jsonl');
    assert.equal(await run(['audit', 'export', '--dir', directory, '--from', new Date(start + 10_500).toISOString(), '--to', String(start + 20_500), '--out', out], c.io), 0);
    const lines = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { seq: number });
    assert.deepEqual(lines.map((l) => l.seq), [11, 12, 13, 14, 15, 16, 17, 18, 19, 20]);
  });

  it('report writes HTML and JSON for an agent and window', async () => {
    const c = capture();
    const out = join(root, 'report');
    assert.equal(await run(['report', '--dir', directory, '--agent', 'agent-a', '--from', new Date(start).toISOString(), '--to', new Date(start + 3_600_000).toISOString(), '--out', out], c.io), 0);
    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as { totals: { decisions: number; denied: number }; alerts: unknown[] };
    assert.equal(report.totals.decisions, 80);
    assert.equal(report.totals.denied, 20);
    assert.equal(report.alerts.length, 1);
    assert.match(readFileSync(join(out, 'report.html'), 'utf8'), /<svg[\s\S]*Calls per 30 s/);
  });

  it('rejects bad usage with exit code 2', async () => {
    const c = capture();
    assert.equal(await run(['audit', 'query', '--dir', directory, '--verdict', 'maybe'], c.io), 2);
    assert.equal(await run(['report', '--dir', directory, '--agent', 'x'], c.io), 2);
    assert.match(c.err.join(''), /--verdict/);
  });
});

describe('OpenTelemetry export', () => {
  it('makes one span per event, in the trace Envoy started, with the request id', () => {
    const spans: { name: string; options: SpanOptions; parentTraceId: string | undefined; status?: unknown; endTime?: unknown }[] = [];
    const tracer = {
      startSpan(name: string, options: SpanOptions = {}, context?: unknown) {
        const record: (typeof spans)[number] = { name, options, parentTraceId: context ? trace.getSpanContext(context as Context)?.traceId : undefined };
        spans.push(record);
        return {
          setStatus(status: unknown) { record.status = status; return this; },
          addEvent() { return this; },
          end(time: unknown) { record.endTime = time; },
        } as unknown as Span;
      },
    } as unknown as Tracer;
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    exportSpan(tracer, { seq: 7, at: 1_000_000, kind: 'decision', requestId: 'req-9', traceId, agent: 'a', user: null, credentialId: null, persona: 'coder', configVersion: 2, sessionId: null, sourceAddress: null, upstream: 'u', operation: 'tools/call', tool: 'write_file', argumentsDigest: 'sha256:x', maskedArguments: null, verdict: 'deny', enforced: true, reasons: [{ stage: 'authorization', code: 'tool_not_granted', message: '' }], riskScore: 0.9, findingTypes: [], latencyMs: 2, upstreamStatus: null, admin: null, alert: null });
    assert.equal(spans.length, 1);
    const span = spans[0]!;
    assert.equal(span.name, 'mandate.decision write_file');
    assert.equal(span.parentTraceId, traceId);
    assert.equal(span.options.startTime, 999_998);
    assert.equal(span.endTime, 1_000_000);
    assert.equal(span.options.attributes?.['http.request.header.x-request-id'], 'req-9');
    assert.deepEqual(span.options.attributes?.['mandate.reason_codes'], ['tool_not_granted']);
    assert.deepEqual(span.status, { code: 2, message: 'tool_not_granted' });
  });
});
