// The audit API over real HTTP, on a real ext_proc service's HTTP server (no
// control plane: the policy stream just keeps retrying in the background).
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startExtProc, type ExtProcService } from '../service.ts';
import type { AuditEvent } from './event.ts';
import type { IncidentReport } from './report.ts';
import { openAuditLog } from './log.ts';

const token = 'test-internal-token-0123456789';
const dataDir = mkdtempSync(join(tmpdir(), 'mandate-audit-api-'));
const auditDir = join(dataDir, 'audit');
let service: ExtProcService;
let base: string;
let firstAt = 0;
let lastAt = 0;

before(async () => {
  mkdirSync(auditDir, { recursive: true });
  // A trail written earlier: ext_proc serves the log it reopens.
  const log = openAuditLog({ directory: auditDir });
  for (let i = 0; i < 120; i += 1) {
    const event = log.append({
      kind: 'decision', agent: i % 3 === 0 ? 'agent-b' : 'agent-a', user: 'dana', persona: 'coder', tool: i % 2 ? 'read_file' : 'write_file',
      verdict: i % 4 === 0 ? 'deny' : 'allow', enforced: true, latencyMs: 0.5,
      reasons: i % 4 === 0 ? [{ stage: 'authorization', code: 'tool_not_granted', message: 'not granted' }] : [],
    });
    if (i === 0) firstAt = event.at;
    lastAt = event.at;
  }
  log.appendAlert({ name: 'behaviour.block', severity: 'critical', message: 'runaway' }, { agent: 'agent-a' });
  await log.close();
  service = await startExtProc({
    listen: { address: '127.0.0.1', port: 0 },
    health: { address: '127.0.0.1', port: 0 },
    controlPlaneUrl: 'http://127.0.0.1:1',
    internalToken: token,
    auditDir,
    log: () => {},
  });
  base = `http://127.0.0.1:${service.healthPort}`;
});
after(async () => {
  await service?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

const get = (path: string, headers: Record<string, string> = { authorization: `Bearer ${token}` }) => fetch(`${base}${path}`, { headers });
const problemOf = async (response: Response) => {
  assert.equal(response.headers.get('content-type'), 'application/problem+json');
  return (await response.json()) as { status: number; code: string; title: string; type: string };
};

describe('GET /v1/audit/events', () => {
  it('needs the internal token', async () => {
    const missing = await get('/v1/audit/events', {});
    assert.equal(missing.status, 401);
    assert.equal((await problemOf(missing)).code, 'unauthorized');
    const wrong = await get('/v1/audit/events', { authorization: 'Bearer nope' });
    assert.equal(wrong.status, 401);
  });

  it('filters and pages with the cursor through every match, newest first', async () => {
    const seen: AuditEvent[] = [];
    let cursor: string | null = null;
    do {
      const response = await get(`/v1/audit/events?agent=agent-a&verdict=deny&limit=7${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      assert.equal(response.status, 200);
      const page = (await response.json()) as { events: AuditEvent[]; nextCursor: string | null };
      assert.ok(page.events.length <= 7);
      seen.push(...page.events);
      cursor = page.nextCursor;
    } while (cursor);
    // i % 4 === 0 and i % 3 !== 0, for i < 120: 30 multiples of 4, minus 10 multiples of 12.
    assert.equal(seen.length, 20);
    assert.ok(seen.every((e) => e.agent === 'agent-a' && e.verdict === 'deny'));
    assert.deepEqual(seen.map((e) => e.seq), seen.map((e) => e.seq).sort((a, b) => b - a));
  });

  it('takes kind, tool, time (ISO or ms) and oldest-first order', async () => {
    const alerts = (await (await get('/v1/audit/events?kind=alert')).json()) as { events: AuditEvent[] };
    assert.deepEqual(alerts.events.map((e) => e.alert?.name), ['behaviour.block']);
    const window = (await (await get(`/v1/audit/events?tool=read_file&from=${new Date(firstAt).toISOString()}&to=${lastAt + 1}&order=oldest&limit=1000`)).json()) as { events: AuditEvent[] };
    assert.equal(window.events.length, 60);
    assert.ok(window.events.every((e) => e.tool === 'read_file'));
    assert.ok(window.events[0]!.seq < window.events[1]!.seq);
  });

  it('answers bad input with problems that carry stable codes', async () => {
    const cases: [string, number, string][] = [
      ['/v1/audit/events?verdict=maybe', 400, 'invalid_audit_query'],
      ['/v1/audit/events?limit=5000', 400, 'invalid_audit_query'],
      ['/v1/audit/events?limit=ten', 400, 'invalid_audit_query'],
      ['/v1/audit/events?colour=blue', 400, 'invalid_audit_query'],
      ['/v1/audit/events?agent=a&agent=b', 400, 'invalid_audit_query'],
      ['/v1/audit/events?from=yesterday', 400, 'invalid_audit_query'],
      ['/v1/audit/events?from=2000&to=1000', 400, 'invalid_time_window'],
      ['/v1/audit/events?cursor=bm90LWEtY3Vyc29y', 400, 'invalid_cursor'],
    ];
    for (const [path, status, code] of cases) {
      const response = await get(path);
      assert.equal(response.status, status, path);
      const problem = await problemOf(response);
      assert.equal(problem.code, code, path);
      assert.equal(problem.type, `https://mandate.dev/errors/${code}`);
    }
    const unknown = await problemOf(await get('/v1/audit/events?colour=blue'));
    assert.match(unknown.title, /colour/);
    const post = await fetch(`${base}/v1/audit/events`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET');
  });
});

describe('GET /v1/audit/report', () => {
  it('builds the incident report for an agent and window, as JSON or HTML', async () => {
    const response = await get(`/v1/audit/report?agent=agent-b&from=${firstAt}&to=${lastAt + 1}`);
    assert.equal(response.status, 200);
    const report = (await response.json()) as IncidentReport;
    assert.equal(report.agent, 'agent-b');
    assert.equal(report.totals.events, 40);
    assert.equal(report.totals.denied, 10);
    assert.deepEqual(report.denials.map((d) => [d.code, d.count]), [['tool_not_granted', 10]]);

    const html = await get(`/v1/audit/report?agent=agent-b&from=${firstAt}&to=${lastAt + 1}&format=html`);
    assert.equal(html.status, 200);
    assert.match(html.headers.get('content-type') ?? '', /^text\/html/);
    const text = await html.text();
    assert.match(text, /agent-b/);
    assert.match(text, /<svg/);
  });

  it('needs agent, from and to, and a known format', async () => {
    for (const path of ['/v1/audit/report?from=1&to=2', `/v1/audit/report?agent=a&from=1`, `/v1/audit/report?agent=a&from=1&to=2&format=pdf`]) {
      const response = await get(path);
      assert.equal(response.status, 400, path);
      assert.equal((await problemOf(response)).code, 'invalid_audit_query');
    }
    assert.equal((await get('/v1/audit/report?agent=a&from=1&to=2', {})).status, 401);
  });
});
