// The behaviour stage end to end through the real Envoy: a sequence rule blocks
// the email after bulk ticket reads (and not before), a benign workload of the
// same Persona passes, monitor mode records without blocking, rate limits
// throttle with a retry hint (JSON-RPC and REST 429), tool results feed rules
// that test them, and a quarantined agent stays out until released through
// ext_proc's authenticated quarantine API.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { startGatewayFixture, type GatewayFixture } from './support/gateway-fixture.ts';
import { auditRows } from './support/audit-reader.ts';
import { close, createRecordingMcpServer, listen, type RecordingMcpServer } from './support/recording-mcp-server.ts';

let gateway: GatewayFixture;
let helpdesk: RecordingMcpServer;
let internalToken: string;

const ticketTools = { upstream: 'helpdesk', tools: [{ name: 'list_tickets' }, { name: 'read_ticket' }, { name: 'send_email' }, { name: 'delete_ticket' }] };
const ticketsThenEmail = {
  name: 'tickets-then-email',
  description: 'Bulk ticket reads followed by anything that sends data out',
  steps: [{ match: { tool: ['list_tickets', 'read_ticket'] }, atLeast: 3 }, { match: { class: ['egress'] }, within: '10m' }],
  action: 'block',
};

before(async () => {
  helpdesk = createRecordingMcpServer({
    list_tickets: () => 'tickets 1, 2, 3',
    read_ticket: (args) => (args.id === 'missing' ? { error: 'no such ticket' } : `ticket ${String(args.id)}`),
    send_email: () => 'sent',
    delete_ticket: () => 'deleted',
  });
  const port = await listen(helpdesk.server);
  gateway = await startGatewayFixture({ demo: false });
  internalToken = readFileSync(join(gateway.dataDir, 'internal-token'), 'utf8').trim();
  const persona = (name: string, behaviour: unknown, extra: Record<string, unknown> = {}) => ({ kind: 'Persona', name, description: `${name} test persona`, grants: [ticketTools], behaviour, ...extra });
  await gateway.apply([
    { kind: 'Upstream', name: 'helpdesk', protocol: 'mcp', url: `http://127.0.0.1:${port}/mcp`, environment: 'production' },
    { kind: 'Upstream', name: 'tickets', protocol: 'rest', url: `http://127.0.0.1:${gateway.ports.restUpstream}/api` },
    persona('support', { rules: [ticketsThenEmail] }),
    persona('support-monitored', { rules: [ticketsThenEmail] }, { mode: 'monitor' }),
    persona('careful', { rules: [{ name: 'delete-quarantines', steps: [{ match: { tool: 'delete_ticket' } }], action: 'quarantine' }] }),
    persona('result-aware', {
      rules: [{ name: 'probe-then-email', steps: [{ match: { tool: 'read_ticket', result: 'result.isError' } }, { match: { tool: 'send_email' }, within: '5m' }], action: 'block' }],
    }),
    {
      kind: 'Persona',
      name: 'rationed',
      description: 'Two calls a minute',
      grants: [ticketTools, { upstream: 'tickets', operations: [{ method: 'GET', path: '/tickets/{id}' }] }],
      behaviour: { guardrails: { rateLimits: [{ key: 'agent-tool', limit: 2, per: '1m' }] } },
    },
  ]);
});

after(async () => {
  await gateway?.stop();
  if (helpdesk) await close(helpdesk.server);
});

async function agentClient(persona: string, agent: string): Promise<{ client: Client; token: string }> {
  const { token } = await gateway.issueToken(persona, agent);
  return { client: await gateway.mcpClient(`/personas/${persona}/helpdesk`, token), token };
}

const mandateError = (code: string) => (error: unknown) => {
  assert.ok(error instanceof McpError, `expected an MCP error, got ${String(error)}`);
  assert.equal(error.code, -32001);
  assert.equal((error.data as { mandate: { code: string } }).mandate.code, code);
  return true;
};

function text(result: object): string {
  return (result as { content: { text: string }[] }).content.map((c) => c.text).join('\n');
}

describe('sequence rules', () => {
  test('tickets-then-email: the reads pass, the email after them is blocked', async () => {
    const { client } = await agentClient('support', 'exfil-agent');
    await client.callTool({ name: 'list_tickets', arguments: {} });
    await client.callTool({ name: 'read_ticket', arguments: { id: '1' } });
    await client.callTool({ name: 'read_ticket', arguments: { id: '2' } });
    const emailsBefore = helpdesk.calls.filter((c) => c.tool === 'send_email').length;
    await assert.rejects(() => client.callTool({ name: 'send_email', arguments: { to: 'out@example.com', text: 'all tickets' } }), (error: unknown) => {
      mandateError('sequence_rule_matched')(error);
      assert.match((error as Error).message, /tickets-then-email/);
      return true;
    });
    assert.equal(helpdesk.calls.filter((c) => c.tool === 'send_email').length, emailsBefore, 'the email never reached the upstream');
    await client.close();

    const rows = await auditRows(gateway, 'support', (r) => r.some((e) => e.verdict === 'deny'));
    const decisions = rows.filter((r) => r.kind === 'decision' && r.tool !== null && r.body.agent === 'exfil-agent');
    assert.deepEqual(
      decisions.map((d) => [d.tool, d.verdict]),
      [
        ['list_tickets', 'allow'],
        ['read_ticket', 'allow'],
        ['read_ticket', 'allow'],
        ['send_email', 'deny'],
      ],
    );
    const blocked = decisions.at(-1)!;
    assert.equal(blocked.body.reasons[0]!.stage, 'behaviour');
    assert.ok((blocked.body.riskScore ?? 0) >= 0.9, `risk score ${blocked.body.riskScore}`);
  });

  test('a benign workload of the same Persona is never blocked', async () => {
    const { client } = await agentClient('support', 'benign-agent');
    assert.equal(text(await client.callTool({ name: 'read_ticket', arguments: { id: '7' } })), 'ticket 7');
    assert.equal(text(await client.callTool({ name: 'send_email', arguments: { to: 'customer@example.com', text: 'fixed' } })), 'sent');
    assert.equal(text(await client.callTool({ name: 'read_ticket', arguments: { id: '8' } })), 'ticket 8');
    assert.equal(text(await client.callTool({ name: 'send_email', arguments: { to: 'customer@example.com', text: 'also fixed' } })), 'sent');
    await client.close();
  });

  test('monitor mode records the would-be block and lets the email through', async () => {
    const { client } = await agentClient('support-monitored', 'watched-agent');
    for (const id of ['1', '2', '3']) await client.callTool({ name: 'read_ticket', arguments: { id } });
    assert.equal(text(await client.callTool({ name: 'send_email', arguments: { to: 'out@example.com', text: 'all tickets' } })), 'sent');
    await client.close();
    const rows = await auditRows(gateway, 'support-monitored', (r) => r.some((e) => e.kind === 'decision' && e.tool === 'send_email'));
    const email = rows.find((r) => r.kind === 'decision' && r.tool === 'send_email')!;
    assert.equal(email.verdict, 'deny');
    assert.equal(email.body.enforced, false);
    assert.equal(email.body.reasons[0]!.code, 'sequence_rule_matched');
  });

  test('tool results feed the engine: an error result advances a rule that tests results', async () => {
    const probing = await agentClient('result-aware', 'prober');
    const failed = await probing.client.callTool({ name: 'read_ticket', arguments: { id: 'missing' } });
    assert.equal(failed.isError, true);
    await assert.rejects(() => probing.client.callTool({ name: 'send_email', arguments: { to: 'x@example.com' } }), mandateError('sequence_rule_matched'));
    await probing.client.close();
    // The same calls with a successful read: the result condition is false, nothing fires.
    const honest = await agentClient('result-aware', 'honest');
    await honest.client.callTool({ name: 'read_ticket', arguments: { id: '4' } });
    assert.equal(text(await honest.client.callTool({ name: 'send_email', arguments: { to: 'x@example.com' } })), 'sent');
    await honest.client.close();
  });
});

describe('guardrails', () => {
  test('a rate limit throttles with a retry hint over MCP', async () => {
    const { client } = await agentClient('rationed', 'hasty');
    await client.callTool({ name: 'read_ticket', arguments: { id: '1' } });
    await client.callTool({ name: 'read_ticket', arguments: { id: '2' } });
    await assert.rejects(() => client.callTool({ name: 'read_ticket', arguments: { id: '3' } }), (error: unknown) => {
      mandateError('rate_limited')(error);
      const retry = (error as McpError & { data: { mandate: { retryAfterSeconds: number } } }).data.mandate.retryAfterSeconds;
      assert.ok(retry >= 1 && retry <= 60, `retryAfterSeconds ${retry}`);
      assert.match((error as Error).message, /retry after \d+ s/);
      return true;
    });
    await client.close();
  });

  test('a rate limit on a REST operation answers 429 with Retry-After', async () => {
    const { token } = await gateway.issueToken('rationed', 'hasty-rest');
    const get = () => fetch(`${gateway.gatewayUrl}/personas/rationed/tickets/tickets/1`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal((await get()).status, 200);
    assert.equal((await get()).status, 200);
    const throttled = await get();
    assert.equal(throttled.status, 429);
    assert.ok(Number(throttled.headers.get('retry-after')) >= 1);
    assert.equal(((await throttled.json()) as { code: string }).code, 'rate_limited');
  });
});

describe('quarantine', () => {
  const quarantineApi = (path: string, method = 'GET', token: string | null = internalToken) =>
    fetch(`http://127.0.0.1:${gateway.ports.extProcHealth}${path}`, { method, headers: token ? { authorization: `Bearer ${token}` } : {} });

  test('a quarantined agent stays out, in every session, until released through the authenticated API', async () => {
    const first = await agentClient('careful', 'reckless');
    await first.client.callTool({ name: 'read_ticket', arguments: { id: '1' } });
    await assert.rejects(() => first.client.callTool({ name: 'delete_ticket', arguments: { id: '1' } }), mandateError('sequence_rule_matched'));
    assert.equal(helpdesk.calls.filter((c) => c.tool === 'delete_ticket').length, 0);
    await assert.rejects(() => first.client.callTool({ name: 'read_ticket', arguments: { id: '2' } }), mandateError('agent_quarantined'));
    await first.client.close();
    // A new connection of the same agent is still out.
    const second = await gateway.mcpClient('/personas/careful/helpdesk', first.token);
    await assert.rejects(() => second.callTool({ name: 'read_ticket', arguments: { id: '3' } }), mandateError('agent_quarantined'));

    assert.equal((await quarantineApi('/v1/quarantine', 'GET', null)).status, 401);
    assert.equal((await quarantineApi('/v1/quarantine', 'GET', 'wrong-token')).status, 401);
    assert.equal((await quarantineApi('/v1/quarantine/reckless', 'DELETE', 'wrong-token')).status, 401);
    const listed = (await (await quarantineApi('/v1/quarantine')).json()) as { agents: { agent: string; persona: string; reason: { code: string } }[] };
    assert.deepEqual(
      listed.agents.map((a) => [a.agent, a.persona, a.reason.code]),
      [['reckless', 'careful', 'sequence_rule_matched']],
    );
    const released = await quarantineApi('/v1/quarantine/reckless', 'DELETE');
    assert.equal(released.status, 200);
    assert.equal((await quarantineApi('/v1/quarantine/reckless', 'DELETE')).status, 404, 'releasing twice: not quarantined');
    assert.deepEqual(((await (await quarantineApi('/v1/quarantine')).json()) as { agents: unknown[] }).agents, []);
    // Released: a fresh session works (the old one was ended with the quarantine).
    const { token } = await gateway.issueToken('careful', 'reckless');
    const third = await gateway.mcpClient('/personas/careful/helpdesk', token);
    assert.equal(text(await third.callTool({ name: 'read_ticket', arguments: { id: '4' } })), 'ticket 4');
    await third.close();
    await second.close();
  });
});

describe('baselines', () => {
  const baselineUrl = (persona: string) => `http://127.0.0.1:${gateway.ports.extProcHealth}/v1/baselines/${persona}`;
  const auth = () => ({ authorization: `Bearer ${internalToken}` });

  test('a baseline learned in monitor mode is exported as a version, kept across a restart, and imported back', async () => {
    const { client } = await agentClient('support-monitored', 'learning-agent');
    for (let i = 0; i < 5; i++) await client.callTool({ name: 'read_ticket', arguments: { id: String(i) } });
    await client.close();
    const exported = await fetch(baselineUrl('support-monitored'), { headers: auth() });
    assert.equal(exported.status, 200);
    const snapshot = (await exported.json()) as { persona: string; version: number };
    assert.equal(snapshot.persona, 'support-monitored');

    // ext_proc restarts: the baseline comes back from disk, one version on.
    await gateway.stopProcess('ext-proc');
    await gateway.startExtProc();
    const again = await fetch(baselineUrl('support-monitored'), { headers: auth() });
    assert.equal(again.status, 200);
    const reloaded = (await again.json()) as { persona: string; version: number };
    assert.ok(reloaded.version > snapshot.version, `version ${reloaded.version} after ${snapshot.version}`);

    // Importing it for another Persona is refused; for its own it is accepted.
    const wrong = await fetch(baselineUrl('support'), { method: 'PUT', headers: { ...auth(), 'content-type': 'application/json' }, body: JSON.stringify(reloaded) });
    assert.equal(wrong.status, 422);
    assert.equal(((await wrong.json()) as { code: string }).code, 'invalid_baseline');
    const imported = await fetch(baselineUrl('support-monitored'), { method: 'PUT', headers: { ...auth(), 'content-type': 'application/json' }, body: JSON.stringify(reloaded) });
    assert.equal(imported.status, 200);
  });

  test('the baseline API needs the internal token and answers unknown Personas with 404', async () => {
    assert.equal((await fetch(baselineUrl('support-monitored'))).status, 401);
    const unknown = await fetch(baselineUrl('nobody'), { headers: auth() });
    assert.equal(unknown.status, 404);
    assert.equal(((await unknown.json()) as { code: string }).code, 'no_baseline');
  });
});
