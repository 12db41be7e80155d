import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { AuditEvent, AuditEventFields } from './event.ts';
import { buildIncidentReport, chooseBucketMs, renderIncidentReportHtml, type IncidentReport } from './report.ts';
import { databaseFile, openAuditStore, type AuditStore, type EncodedEvent } from './store.ts';

const directory = mkdtempSync(join(tmpdir(), 'mandate-report-'));
after(() => rmSync(directory, { recursive: true, force: true }));

const hour = 3_600_000;
const fridayEvening = Date.UTC(2026, 10, 20, 18, 0, 0);
const mondayMorning = fridayEvening + 60 * hour;
const runawayStart = fridayEvening + 6 * hour;
const throttleStart = fridayEvening + 30 * hour;
const totalCalls = 1_000_000;
const agent = 'dev-agent-7';
let expectedThrottled = 0;

const blank: AuditEventFields = {
  kind: 'decision', requestId: null, traceId: null, agent, user: 'dana', credentialId: 'cred-1', persona: 'code-assistant', configVersion: 12,
  sessionId: null, sourceAddress: null, upstream: 'repo-tools', operation: 'tools/call', tool: null, argumentsDigest: null, maskedArguments: null,
  verdict: 'allow', enforced: true, reasons: [], riskScore: null, findingTypes: [], latencyMs: 0.8, upstreamStatus: null, admin: null, alert: null,
};

/** A weekend runaway: a quiet start, then a million calls inventing paths, altering SHAs and hunting for write permission. */
function* runawayTrail(): Generator<AuditEventFields & { at: number }> {
  yield { ...blank, kind: 'admin', agent: null, user: 'ops@example.com', persona: null, tool: null, verdict: null, enforced: null, at: fridayEvening + 1000,
    admin: { actor: 'ops@example.com', action: 'persona.update', target: 'persona/code-assistant', beforeVersion: 11, afterVersion: 12, detail: 'granted git_commit' } };
  for (let i = 0; i < totalCalls; i += 1) {
    const quiet = i < 2_000;
    const at = quiet ? fridayEvening + 2_000 + Math.floor((i / 2_000) * 6 * hour) : runawayStart + Math.floor(((i - 2_000) / (totalCalls - 2_000)) * 54 * hour);
    const step = i % 4;
    const throttled = at >= throttleStart && i % 10 === 0;
    const event: AuditEventFields & { at: number } = { ...blank, at, sessionId: `s-${Math.floor(i / 50_000)}` };
    if (step === 0) Object.assign(event, { tool: 'read_file', argumentsDigest: `sha256:path-${Math.floor(i / 4) % 5_000}`, maskedArguments: { path: `/repo/sr…(${20 + (i % 30)})` } });
    if (step === 1) Object.assign(event, { tool: 'git_commit', argumentsDigest: `sha256:sha-${Math.floor(i / 4) % 20_000}`, maskedArguments: { sha: `${(i % 65_536).toString(16)}…(40)` } });
    if (step === 2) Object.assign(event, { tool: 'write_file', verdict: 'deny', reasons: [{ stage: 'authorization', code: 'tool_not_granted', message: 'write_file is not granted' }], argumentsDigest: `sha256:w-${i % 3_000}`, maskedArguments: { path: '/etc/pas…(11)' } });
    if (step === 3) Object.assign(event, { tool: 'chmod', verdict: 'deny', reasons: [{ stage: 'authorization', code: 'tool_not_granted', message: 'chmod is not granted' }], argumentsDigest: `sha256:c-${i % 100}`, maskedArguments: { mode: '777' } });
    if (throttled && step < 2) expectedThrottled += 1;
    if (throttled && step < 2) Object.assign(event, { verdict: 'deny', reasons: [{ stage: 'behaviour', code: 'rate_limited', message: 'over 50 calls per second' }] });
    yield event;
    if (at >= throttleStart && i % 200_000 === 0) {
      yield { ...blank, kind: 'alert', at, tool: null, verdict: null, enforced: null, alert: { name: 'runaway_agent', severity: 'critical', message: 'call rate 40x above baseline' } };
    }
  }
  yield { ...blank, agent: 'other-agent', tool: 'read_file', at: runawayStart + hour };
}

function fill(store: AuditStore): number {
  let head = store.head();
  let batch: EncodedEvent[] = [];
  let alertsAt: number | null = null;
  for (const fields of runawayTrail()) {
    const event: AuditEvent = { ...fields, seq: head.seq + batch.length + 1 };
    if (fields.kind === 'alert' && alertsAt === null) alertsAt = fields.at;
    batch.push({ event, body: JSON.stringify(event) });
    if (batch.length === 50_000) {
      head = store.appendChained(batch, head);
      batch = [];
    }
  }
  head = store.appendChained(batch, head);
  return head.seq;
}

describe('incident report from a million-event runaway trail', () => {
  let report: IncidentReport;
  let html: string;
  let store: AuditStore;
  before(() => {
    // Bulk load: indexes dropped during the fill and rebuilt (sorted) by reopening, which runs the DDL.
    const loader = openAuditStore(join(directory, databaseFile));
    const indexes = (loader.prepare("SELECT name, origin FROM pragma_index_list('audit_events')").all() as { name: string; origin: string }[]).filter((i) => i.origin === 'c');
    loader.sqlite.exec(`PRAGMA synchronous = OFF; ${indexes.map((i) => `DROP INDEX ${i.name};`).join(' ')}`);
    const stored = fill(loader);
    loader.close();
    store = openAuditStore(join(directory, databaseFile));
    assert.equal((store.prepare("SELECT name FROM pragma_index_list('audit_events') WHERE origin = 'c'").all() as unknown[]).length, indexes.length);
    assert.ok(stored > totalCalls);
    const started = performance.now();
    report = buildIncidentReport(store, { agent, fromMs: fridayEvening, toMs: mondayMorning, nowMs: mondayMorning + hour });
    html = renderIncidentReportHtml(report);
    // Printed for the record; the bar is minutes, this is seconds.
    console.log(`report over ${report.totals.events} events built in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  });
  after(() => store.close());

  it('counts every call of the agent, and only that agent', () => {
    assert.equal(report.totals.decisions, totalCalls);
    assert.ok(expectedThrottled > 10_000);
    assert.equal(report.totals.throttled, expectedThrottled);
    assert.equal(report.totals.denied, totalCalls / 2 + expectedThrottled);
    assert.equal(report.totals.allowed + report.totals.denied, totalCalls);
    assert.equal(report.rate.buckets.reduce((n, b) => n + b.calls, 0), totalCalls);
    assert.equal(report.rate.buckets.reduce((n, b) => n + b.denied, 0), report.totals.denied);
    assert.equal(report.users[0]?.user, 'dana');
  });

  it('lists the tools and how many different arguments it cycled through', () => {
    const byTool = new Map(report.tools.map((t) => [t.tool, t]));
    assert.deepEqual([...byTool.keys()].sort(), ['chmod', 'git_commit', 'read_file', 'write_file']);
    assert.equal(byTool.get('read_file')?.distinctArguments, 5_000);
    assert.equal(byTool.get('git_commit')?.distinctArguments, 20_000);
    assert.equal(byTool.get('chmod')?.distinctArguments, 25);
    assert.equal(byTool.get('write_file')?.denied, totalCalls / 4);
    assert.deepEqual(byTool.get('chmod')?.topArguments[0]?.maskedArguments, { mode: '777' });
  });

  it('separates denials from throttling, with when each started', () => {
    const notGranted = report.denials.find((d) => d.code === 'tool_not_granted');
    const rateLimited = report.denials.find((d) => d.code === 'rate_limited');
    assert.equal(notGranted?.count, totalCalls / 2);
    assert.equal(notGranted?.throttle, false);
    assert.equal(rateLimited?.throttle, true);
    assert.equal(rateLimited?.count, report.totals.throttled);
    assert.ok(rateLimited && rateLimited.firstMs >= throttleStart && rateLimited.firstMs < throttleStart + hour);
  });

  it('shows the Persona and config version in force, the config change, and the alert', () => {
    assert.deepEqual(report.personas.map((p) => [p.persona, p.configVersions]), [['code-assistant', [12]]]);
    assert.equal(report.configChanges.length, 1);
    assert.equal(report.configChanges[0]?.admin?.afterVersion, 12);
    assert.ok(report.alerts.length >= 1);
    assert.equal(report.alerts[0]?.alert?.name, 'runaway_agent');
    const whats = report.timeline.map((e) => e.what);
    assert.ok(whats.some((w) => w.startsWith('first denial (tool_not_granted)')));
    assert.ok(whats.some((w) => w.startsWith('first throttling (rate_limited)')));
    assert.ok(whats.some((w) => w.startsWith('alert runaway_agent')));
    assert.ok(whats.some((w) => w.startsWith('config change by ops@example.com')));
  });

  it('draws a real chart: one bar per non-empty bucket, scaled to the peak, with labelled axes', () => {
    assert.equal(report.rate.bucketMs, chooseBucketMs(60 * hour));
    assert.equal(report.rate.bucketMs, 900_000);
    const svg = /<svg[\s\S]*?<\/svg>/.exec(html)?.[0] ?? '';
    assert.ok(svg.includes('Time (UTC)'));
    assert.ok(svg.includes('Calls per 15 min'));
    const bars = svg.match(/class="bar allowed"/g)?.length ?? 0;
    assert.equal(bars, report.rate.buckets.filter((b) => b.calls > 0).length);
    const peak = report.rate.peak!;
    assert.ok(svg.includes(`${peak.calls} calls`));
    assert.ok(!/<script|src=|href=/.test(html), 'the page is self-contained');
    assert.ok(html.includes('runaway_agent') && html.includes('tool_not_granted') && html.includes('code-assistant'));
  });
});
