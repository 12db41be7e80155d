// Refusals as the audit trail keeps them, through the real Envoy: a tool call whose arguments are not
// an object is refused (never forwarded unread); a refused request's path, tool name or method is
// recorded with the flagged value redacted, before authentication too; and a refused answer (a blocked
// tool result, a blocked REST answer) is recorded in the call's response event with the reason and
// the status the agent received. Nothing raw is written under the gateway's data directory.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startGatewayFixture, type GatewayFixture } from './support/gateway-fixture.ts';
import { auditRows, filesContaining, type AuditRow } from './support/audit-reader.ts';
import { close, createRecordingMcpServer, listen, type RecordingMcpServer } from './support/recording-mcp-server.ts';
import { createRestEchoServer, type RestEchoServer } from './support/rest-echo-server.ts';

// Test values with valid shapes and checksums (they are not real credentials or cards).
const awsKey = 'AKIAZ3MQ7HW2XK4JLP5R';
const billingCard = '4539 1488 0343 6467';
const answerCard = '4111 1111 1111 1111';

let gateway: GatewayFixture;
let billing: RecordingMcpServer;
let restEcho: RestEchoServer;
const tokens: Record<string, string> = {};

before(async () => {
  billing = createRecordingMcpServer({ read_card: () => `Card on file: ${billingCard}`, save_note: () => 'saved' });
  restEcho = createRestEchoServer({ secretInAnswer: answerCard });
  const [billingPort, restPort] = await Promise.all([listen(billing.server), listen(restEcho.server)]);
  gateway = await startGatewayFixture({ demo: false });
  const grants = [
    { upstream: 'billing', tools: [{ name: 'read_card' }, { name: 'save_note' }] },
    { upstream: 'notes-api', operations: [{ method: 'GET', path: '/keys/{key}' }, { method: 'GET', path: '/notes' }] },
  ];
  await gateway.apply([
    { kind: 'Upstream', name: 'billing', protocol: 'mcp', url: `http://127.0.0.1:${billingPort}/mcp`, environment: 'production' },
    { kind: 'Upstream', name: 'notes-api', protocol: 'rest', url: `http://127.0.0.1:${restPort}/api`, environment: 'production' },
    { kind: 'Persona', name: 'audit-guard', description: 'Masks cards and credentials.', grants, dataProtection: { profiles: ['pci-dss', 'secrets'], defaultAction: 'mask' } },
    { kind: 'Persona', name: 'audit-block', description: 'Refuses credentials.', grants, dataProtection: { profiles: ['secrets'], defaultAction: 'block' } },
    {
      kind: 'Persona',
      name: 'audit-wildcard',
      description: 'Any tool of billing; cards and credentials masked.',
      grants: [{ upstream: 'billing', tools: [{ name: '*' }] }],
      dataProtection: { profiles: ['pci-dss', 'secrets'], defaultAction: 'mask' },
    },
    {
      kind: 'Persona',
      name: 'audit-strict',
      description: 'Card numbers may not reach the agent.',
      grants,
      dataProtection: { profiles: ['pci-dss'], rules: [{ groups: ['financial'], direction: 'response', action: 'block' }] },
    },
  ]);
  for (const persona of ['audit-guard', 'audit-block', 'audit-wildcard', 'audit-strict']) tokens[persona] = (await gateway.issueToken(persona, `${persona}-agent`)).token;
});

after(async () => {
  await gateway?.stop();
  for (const server of [billing?.server, restEcho?.server]) if (server) await close(server);
});

const endpoint = (persona: string, upstream: string) => `${gateway.gatewayUrl}/personas/${persona}/${upstream}`;

async function mcpPost(persona: string, message: unknown): Promise<{ status: number; body: any }> {
  const response = await fetch(endpoint(persona, 'billing'), {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${tokens[persona]}`, 'mcp-protocol-version': '2025-06-18' },
    body: JSON.stringify(message),
  });
  return { status: response.status, body: JSON.parse(await response.text()) };
}

/** Raw through node's fetch: a path with a percent-escaped dot segment goes out as written. */
async function restGet(persona: string, path: string, authorized = true): Promise<number> {
  const response = await fetch(`${endpoint(persona, 'notes-api')}${path}`, { headers: authorized ? { authorization: `Bearer ${tokens[persona]}` } : {} });
  await response.arrayBuffer();
  return response.status;
}

const hasReason = (row: AuditRow, code: string) => row.body.reasons.some((r) => r.code === code);

test('a tool call whose arguments are a string is refused with invalid_params, recorded, and never reaches the upstream', async () => {
  const before = billing.calls.length;
  const answer = await mcpPost('audit-block', { jsonrpc: '2.0', id: 'a1', method: 'tools/call', params: { name: 'save_note', arguments: `key ${awsKey}` } });
  assert.equal(answer.status, 200);
  assert.equal(answer.body.id, 'a1');
  assert.equal(answer.body.error.code, -32602);
  assert.equal(answer.body.error.data.mandate.code, 'invalid_params');
  assert.equal(billing.calls.length, before, 'nothing was forwarded');
  const rows = await auditRows(gateway, 'audit-block', (r) => r.some((e) => e.kind === 'decision' && hasReason(e, 'invalid_params')));
  const refused = rows.find((e) => e.kind === 'decision' && hasReason(e, 'invalid_params'))!;
  assert.deepEqual([refused.verdict, refused.body.enforced, refused.tool], ['deny', true, 'save_note']);
  assert.ok(!JSON.stringify(refused.body).includes(awsKey));
});

test('refusals record a flagged path segment or tool name as [redacted]: before authentication, on a bad path, for a tool not granted', async () => {
  assert.equal(await restGet('audit-guard', `/keys/${awsKey}/missing-credential`, false), 401);
  assert.equal(await restGet('audit-guard', `/keys/${awsKey}/%2e%2e%2fbad-path`), 400);
  const notGranted = await mcpPost('audit-guard', { jsonrpc: '2.0', id: 'b1', method: 'tools/call', params: { name: `pay ${billingCard}`, arguments: {} } });
  assert.equal(notGranted.body.error.data.mandate.code, 'tool_not_granted');
  const codes = ['credential_missing', 'invalid_path', 'tool_not_granted'];
  const rows = await auditRows(gateway, 'audit-guard', (r) => codes.every((code) => r.some((e) => e.kind === 'decision' && hasReason(e, code))));
  for (const code of codes) {
    const row = rows.find((e) => e.kind === 'decision' && hasReason(e, code));
    assert.ok(row, `${code} is recorded`);
    const recorded = JSON.stringify(row.body);
    assert.ok(!recorded.includes(awsKey) && !recorded.includes(billingCard), `${code}: ${recorded}`);
    assert.ok((row.tool ?? '').includes('[redacted]'), `${code}: ${row.tool}`);
  }
  assert.equal(rows.find((e) => hasReason(e, 'credential_missing'))!.tool, 'GET /personas/audit-guard/notes-api/keys/[redacted]/missing-credential');
  assert.equal(rows.find((e) => hasReason(e, 'tool_not_granted'))!.tool, '[redacted]');
  // Neither the journal nor the database (nor any log) holds the values.
  for (const secret of [awsKey, billingCard]) assert.deepEqual(filesContaining(gateway.dataDir, secret), [], `"${secret.slice(0, 4)}…" was written to disk`);
});

test("a refused answer is recorded in the call's response event: the reason, verdict deny, and the status the agent got", async () => {
  const result = await mcpPost('audit-strict', { jsonrpc: '2.0', id: 'c1', method: 'tools/call', params: { name: 'read_card', arguments: {} } });
  assert.equal(result.status, 200);
  assert.equal(result.body.error.data.mandate.code, 'sensitive_data_blocked');
  assert.equal(await restGet('audit-strict', '/notes'), 502);
  const refusedResponse = (tool: string) => (r: AuditRow[]) => r.find((e) => e.kind === 'response' && e.tool === tool && hasReason(e, 'sensitive_data_blocked'));
  const rows = await auditRows(gateway, 'audit-strict', (r) => Boolean(refusedResponse('read_card')(r) && refusedResponse('GET /notes')(r)));
  for (const [tool, agentStatus] of [['read_card', 200], ['GET /notes', 502]] as const) {
    const response = refusedResponse(tool)(rows);
    assert.ok(response, `${tool}: a response event with the refusal`);
    const body = response.body as AuditRow['body'] & { upstreamStatus: number; agentStatus?: number };
    assert.deepEqual([response.verdict, body.enforced, body.reasons[0]!.code, body.upstreamStatus, body.agentStatus], ['deny', true, 'sensitive_data_blocked', 200, agentStatus], tool);
    // The call itself was allowed: its decision event says so, and there is no other event for the answer.
    const decisions = rows.filter((e) => e.kind === 'decision' && e.tool === tool);
    assert.deepEqual(decisions.map((e) => e.verdict), ['allow'], tool);
  }
});

test('with a * grant, a card in the tool name is refused with sensitive_data_blocked, recorded without it, and never reaches the upstream', async () => {
  const before = billing.messages.length;
  const answer = await mcpPost('audit-wildcard', { jsonrpc: '2.0', id: 'd1', method: 'tools/call', params: { name: `pay ${billingCard}`, arguments: {} } });
  assert.equal(answer.status, 200);
  assert.equal(answer.body.id, 'd1');
  assert.equal(answer.body.error.data.mandate.code, 'sensitive_data_blocked');
  assert.ok(!JSON.stringify(answer.body).includes(billingCard), 'the refusal does not echo the value');
  assert.equal(billing.messages.length, before, 'nothing was forwarded');
  const refusedRow = (r: AuditRow[]) => r.find((e) => e.kind === 'decision' && hasReason(e, 'sensitive_data_blocked'));
  const rows = await auditRows(gateway, 'audit-wildcard', (r) => Boolean(refusedRow(r)));
  const refused = refusedRow(rows)!;
  assert.deepEqual([refused.verdict, refused.body.enforced, refused.tool], ['deny', true, '[redacted]']);
  assert.ok(!JSON.stringify(refused.body).includes(billingCard), JSON.stringify(refused.body));
  assert.deepEqual(filesContaining(gateway.dataDir, billingCard), [], 'the card was written to disk');
});
