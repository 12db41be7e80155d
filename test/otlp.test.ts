// OTLP export of the audit trail against a real OpenTelemetry Collector (built
// from the Go module proxy on first run): spans per decision in the request's
// trace, a log record per audit event, and a dead receiver that costs the data
// path nothing. Through the real gateway: a caller's traceparent puts Mandate's
// spans in the caller's trace.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { allow, deny } from '../ext-proc/decision/decision.ts';
import { auditEventFromDecision } from '../ext-proc/audit/event.ts';
import { spanIdFor } from '../ext-proc/audit/export.ts';
import { openAuditLog } from '../ext-proc/audit/log.ts';
import { createAuditOtlpExporter, feedAuditToOtlp } from '../ext-proc/audit/otlp.ts';
import { auditTraceOf, parseTraceparent, traceIdFromRequestId } from '../ext-proc/audit/trace-context.ts';
import { startGatewayFixture } from './support/gateway-fixture.ts';
import { collectorUnavailableReason, startCollector, type RunningCollector } from './support/otel-collector.ts';

const testDigestKey = 'test-arguments-digest-key-of-32-characters';

interface OtlpAttribute {
  key: string;
  value: { stringValue?: string; intValue?: string; doubleValue?: number; boolValue?: boolean; arrayValue?: unknown };
}
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  attributes: OtlpAttribute[];
  status?: { code?: number; message?: string };
}
interface OtlpLogRecord {
  traceId?: string;
  spanId?: string;
  severityText?: string;
  body?: { stringValue?: string };
  attributes: OtlpAttribute[];
  eventName?: string;
}
type ResourceSpans = { resourceSpans: { resource: { attributes: OtlpAttribute[] }; scopeSpans: { spans: OtlpSpan[] }[] }[] };
type ResourceLogs = { resourceLogs: { resource: { attributes: OtlpAttribute[] }; scopeLogs: { logRecords: OtlpLogRecord[] }[] }[] };

const spansOf = (requests: unknown[]) => (requests as ResourceSpans[]).flatMap((r) => r.resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((s) => s.spans)));
const logsOf = (requests: unknown[]) => (requests as ResourceLogs[]).flatMap((r) => r.resourceLogs.flatMap((rl) => rl.scopeLogs.flatMap((s) => s.logRecords)));
const attribute = (attributes: OtlpAttribute[], key: string) => {
  const value = attributes.find((a) => a.key === key)?.value;
  return value?.stringValue ?? value?.intValue ?? value?.doubleValue ?? value?.boolValue;
};

const unavailable = collectorUnavailableReason();
if (unavailable) console.log(`# otlp.test.ts skipped: ${unavailable}`);

const directories: string[] = [];
const freshDirectory = () => {
  const directory = mkdtempSync(join(tmpdir(), 'mandate-otlp-'));
  directories.push(directory);
  return directory;
};
after(() => directories.forEach((d) => rmSync(d, { recursive: true, force: true })));

const requestIds = ['6f1c2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6b', '0a1b2c3d-4e5f-4a6b-9c8d-7e6f5a4b3c2d'];
const context = (requestId: string) => ({ persona: 'code-assistant', upstream: 'repo-tools', agent: 'agent-7', credentialId: 'cred-1', sessionId: 's-1', sourceAddress: '10.0.0.9', requestId });
const readCall = { kind: 'mcp' as const, method: 'tools/call', tool: 'read_file', arguments: { path: '/repo/src/index.ts' } };
const writeCall = { kind: 'mcp' as const, method: 'tools/call', tool: 'write_file', arguments: { path: '/etc/passwd' } };

describe('OTLP export through a real OpenTelemetry Collector', { skip: unavailable ?? false, timeout: 20 * 60_000 }, () => {
  let collector: RunningCollector;
  before(async () => {
    collector = await startCollector();
  });
  after(async () => {
    await collector?.stop();
  });

  it('sends a span per decision in the request trace and a log record per audit event', async () => {
    const log = openAuditLog({ directory: freshDirectory() });
    const exporter = createAuditOtlpExporter({ endpoint: collector.endpoint, scheduledDelayMs: 100 });
    const stopFeed = feedAuditToOtlp(log, exporter);
    const allowed = auditEventFromDecision(allow(readCall, context(requestIds[0]!), 7), testDigestKey, { latencyMs: 0.8, traceId: traceIdFromRequestId(requestIds[0]!) });
    const denied = auditEventFromDecision(
      deny(writeCall, context(requestIds[1]!), 7, { stage: 'authorization', code: 'tool_not_granted', message: 'write_file is not granted' }),
      testDigestKey,
      { latencyMs: 0.5, traceId: traceIdFromRequestId(requestIds[1]!) },
    );
    const stored = [log.append(allowed), log.append(denied)];
    stored.push(log.appendAlert({ name: 'behaviour.block', severity: 'critical', message: 'runaway' }, { agent: 'agent-7', persona: 'code-assistant' }));
    await log.flush();
    await exporter.forceFlush();
    await collector.waitFor((r) => spansOf(r.traces).length >= 2 && logsOf(r.logs).length >= 3);

    const spans = spansOf(collector.received.traces);
    assert.equal(spans.length, 2, 'one span per decision, none for the alert');
    const resource = (collector.received.traces[0] as ResourceSpans).resourceSpans[0]!.resource;
    assert.equal(attribute(resource.attributes, 'service.name'), 'mandate-ext-proc');
    const [allowSpan, denySpan] = [spans.find((s) => s.name === 'mandate.decision read_file')!, spans.find((s) => s.name === 'mandate.decision write_file')!];
    assert.ok(allowSpan && denySpan, `span names: ${spans.map((s) => s.name).join(', ')}`);
    assert.equal(allowSpan.traceId, requestIds[0]!.replace(/-/g, ''), 'the span joins the trace named by the request id');
    assert.equal(allowSpan.parentSpanId, spanIdFor(stored[0]!));
    assert.equal(attribute(allowSpan.attributes, 'http.request.header.x-request-id'), requestIds[0]);
    assert.equal(attribute(allowSpan.attributes, 'mandate.audit.seq'), String(stored[0]!.seq));
    assert.equal(attribute(denySpan.attributes, 'mandate.verdict'), 'deny');
    assert.equal(denySpan.status?.code, 2, 'a denial is an error span');
    assert.equal(denySpan.status?.message, 'tool_not_granted');

    const records = logsOf(collector.received.logs);
    assert.equal(records.length, 3, 'one log record per audit event');
    const bodies = records.map((r) => JSON.parse(r.body?.stringValue ?? 'null') as { seq: number; kind: string });
    assert.deepEqual(bodies.map((b) => b.seq).sort((a, b) => a - b), stored.map((e) => e.seq));
    const deniedRecord = records.find((r) => attribute(r.attributes, 'mandate.verdict') === 'deny')!;
    assert.equal(deniedRecord.severityText, 'WARN');
    assert.equal(deniedRecord.traceId, requestIds[1]!.replace(/-/g, ''));
    assert.equal(deniedRecord.eventName, 'mandate.audit.decision');
    const alertRecord = records.find((r) => attribute(r.attributes, 'mandate.alert.name') === 'behaviour.block')!;
    assert.equal(alertRecord.severityText, 'ERROR');
    assert.ok(!alertRecord.traceId, 'an alert belongs to no request trace');

    stopFeed();
    await exporter.shutdown();
    await log.close();
  });

  it('through real Envoy: a request with a traceparent puts its span and its log records in the caller\'s trace, under the caller\'s span; an invalid one is ignored', async () => {
    const gateway = await startGatewayFixture({ env: { MANDATE_OTLP_ENDPOINT: collector.endpoint } });
    try {
      const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
      const callerSpan = '00f067aa0ba902b7';
      const url = `http://127.0.0.1:${gateway.ports.gateway}/personas/support-agent/tickets/tickets/1`;
      const authorization = `Bearer ${gateway.tokens['support-agent']}`;
      const traced = await fetch(url, { headers: { authorization, traceparent: `00-${traceId}-${callerSpan}-01`, tracestate: 'vendor=opaque' } });
      assert.equal(traced.status, 200);
      const received = (await traced.json()) as { received: { path: string } };
      assert.equal(received.received.path, '/api/tickets/1');
      // An all-zero trace id is invalid (W3C): the request gets the trace its request id names.
      const invalid = await fetch(url, { headers: { authorization, traceparent: `00-${'0'.repeat(32)}-${callerSpan}-01` } });
      assert.equal(invalid.status, 200);
      await invalid.arrayBuffer();
      const persona = (attributes: OtlpAttribute[]) => attribute(attributes, 'mandate.persona') === 'support-agent';
      const spans = () => spansOf(collector.received.traces).filter((s) => persona(s.attributes));
      const records = () => logsOf(collector.received.logs).filter((r) => persona(r.attributes));
      // One span per decision; a log record per decision and per response event.
      await collector.waitFor(() => spans().length >= 2 && records().length >= 4, 30_000);

      const [tracedSpan, ...rest] = spans().filter((s) => s.traceId === traceId);
      assert.equal(rest.length, 0);
      assert.equal(tracedSpan?.name, 'mandate.decision GET /tickets/1');
      assert.equal(tracedSpan.parentSpanId, callerSpan, 'the decision span is a child of the caller\'s span');
      const tracedRecords = records().filter((r) => r.traceId === traceId);
      assert.deepEqual(tracedRecords.map((r) => r.eventName).sort(), ['mandate.audit.decision', 'mandate.audit.response']);
      for (const record of tracedRecords) assert.equal(record.spanId, callerSpan);

      const other = spans().find((s) => s.traceId !== traceId)!;
      const requestId = String(attribute(other.attributes, 'http.request.header.x-request-id'));
      assert.equal(other.traceId, traceIdFromRequestId(requestId), 'the invalid traceparent is ignored: the request id names the trace');
      assert.notEqual(other.parentSpanId, callerSpan);
    } finally {
      await gateway.stop();
    }
  });

  it('a receiver that is gone costs the data path nothing: every append commits and shutdown returns', async () => {
    const log = openAuditLog({ directory: freshDirectory() });
    // A port nothing listens on: every export fails fast.
    const exporter = createAuditOtlpExporter({ endpoint: 'http://127.0.0.1:1', maxQueueSize: 256, scheduledDelayMs: 20, exportTimeoutMs: 500 });
    const stopFeed = feedAuditToOtlp(log, exporter);
    for (let i = 0; i < 5_000; i += 1) {
      log.append(auditEventFromDecision(allow(readCall, context(requestIds[i % 2]!), 7), testDigestKey, { latencyMs: 0.3, traceId: traceIdFromRequestId(requestIds[i % 2]!) }));
      if (i % 500 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    await log.flush();
    assert.equal(log.stats().committedSeq, 5_000);
    const started = Date.now();
    await exporter.shutdown();
    assert.ok(Date.now() - started < 10_000, 'shutdown waits at most for the bounded queue');
    stopFeed();
    await log.close();
  });
});

describe('trace ids from request ids', () => {
  it('uses the hex digits of a UUID request id, and nothing else', () => {
    assert.equal(traceIdFromRequestId('6F1C2A9E-3B4D-4E5F-8A7B-1C2D3E4F5A6B'), '6f1c2a9e3b4d4e5f8a7b1c2d3e4f5a6b');
    assert.equal(traceIdFromRequestId('req-42'), null);
    assert.equal(traceIdFromRequestId('00000000-0000-0000-0000-000000000000'), null);
    assert.equal(traceIdFromRequestId(null), null);
  });
});

describe('the caller\'s trace from its traceparent header (W3C Trace Context)', () => {
  const trace = '4bf92f3577b34da6a3ce929d0e0e4736';
  const span = '00f067aa0ba902b7';
  it('reads a valid header, and a later version by its first four fields', () => {
    assert.deepEqual(parseTraceparent(`00-${trace}-${span}-01`), { traceId: trace, parentSpanId: span });
    assert.deepEqual(parseTraceparent(`00-${trace}-${span}-00`), { traceId: trace, parentSpanId: span }, 'not sampled by the caller: the audit exports it anyway');
    assert.deepEqual(parseTraceparent(` 00-${trace}-${span}-01 `), { traceId: trace, parentSpanId: span });
    assert.deepEqual(parseTraceparent(`cc-${trace}-${span}-01-what-comes-later`), { traceId: trace, parentSpanId: span });
  });
  it('ignores what the spec says to ignore', () => {
    for (const bad of [
      '',
      null,
      undefined,
      `ff-${trace}-${span}-01`,
      `00-${trace}-${span}-01-extra`,
      `00-${'0'.repeat(32)}-${span}-01`,
      `00-${trace}-${'0'.repeat(16)}-01`,
      `00-${trace.toUpperCase()}-${span}-01`,
      `00-${trace.slice(1)}-${span}-01`,
      `00-${trace}-${span}-1`,
      `00_${trace}_${span}_01`,
      `00-${trace}-${span}-0g`,
    ]) {
      assert.equal(parseTraceparent(bad), null, String(bad));
    }
  });
  it('the audit takes the caller\'s trace first, else the request id\'s', () => {
    const requestId = '6f1c2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6b';
    assert.deepEqual(auditTraceOf({ requestId, trace: { traceId: trace, parentSpanId: span } }), { traceId: trace, parentSpanId: span });
    assert.deepEqual(auditTraceOf({ requestId, trace: null }), { traceId: '6f1c2a9e3b4d4e5f8a7b1c2d3e4f5a6b', parentSpanId: null });
    assert.deepEqual(auditTraceOf({ requestId: 'req-1' }), { traceId: null, parentSpanId: null });
  });
});
