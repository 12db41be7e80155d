// The enterprise DLP a customer already runs, consulted inline through the real
// gateway: an ICAP server (RFC 3507) and a webhook, each able to allow, rewrite
// or refuse; a dead service fails closed unless the Persona says fail open.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, before, test } from 'node:test';
import { freePort } from '../deploy/gateway-processes.ts';
import { auditRows } from './support/audit-reader.ts';
import { startGatewayFixture, type GatewayFixture } from './support/gateway-fixture.ts';
import { startIcapServer, type IcapServer } from './support/icap-server.ts';
import { close, createRecordingMcpServer, listen, type RecordingMcpServer } from './support/recording-mcp-server.ts';

let gateway: GatewayFixture;
let notes: RecordingMcpServer;
let streamingNotes: RecordingMcpServer;
let icap: IcapServer;
let webhook: Server;
let rest: Server;
const restSeen: string[] = [];
const webhookSeen: { direction: string; body: string; agent: string; persona: string; sourceAddress: string | null }[] = [];
const tokens: Record<string, string> = {};

/** The JSON body inside an ICAP request's chunked encapsulation. */
function encapsulatedJson(icapRequest: string): { id?: number; params?: { arguments?: { note?: string } } } {
  const start = icapRequest.indexOf('{');
  const end = icapRequest.lastIndexOf('}');
  return JSON.parse(Buffer.from(icapRequest.slice(start, end + 1), 'latin1').toString('utf8'));
}

before(async () => {
  notes = createRecordingMcpServer({ save_note: (args) => `saved: ${String(args.note)}` });
  const notesPort = await listen(notes.server);
  streamingNotes = createRecordingMcpServer({ save_note: (args) => `saved: ${String(args.note)}` }, { eventStream: true });
  const streamingNotesPort = await listen(streamingNotes.server);
  icap = await startIcapServer((request) => {
    if (request.includes('forbidden-project') || request.includes('secret-result')) return 'block';
    if (request.includes('corporate-block-page')) return { page: '<html>Blocked by corporate DLP</html>' };
    if (request.includes('rewrite-me')) {
      const message = encapsulatedJson(request);
      return { rewrite: JSON.stringify({ ...message, params: { name: 'save_note', arguments: { note: '[cleaned by enterprise DLP]' } } }) };
    }
    return 'allow';
  });
  webhook = createServer(async (request, response) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const scan = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { direction: string; body: string; agent: string; persona: string; sourceAddress: string | null };
    const body = Buffer.from(scan.body, 'base64').toString('utf8');
    webhookSeen.push({ direction: scan.direction, body, agent: scan.agent, persona: scan.persona, sourceAddress: scan.sourceAddress });
    if (request.url === '/refuse') {
      // A reason that quotes what it found, with line breaks and far too long.
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ action: 'block', reason: `card 4111 1111 1111 1111 found\r\nX-Injected: 1${'Z'.repeat(20_000)}` }));
      return;
    }
    if (scan.direction === 'response' && body.includes('confidential')) {
      const message = JSON.parse(body) as { id: number };
      const cleaned = { jsonrpc: '2.0', id: message.id, result: { content: [{ type: 'text', text: '[withheld by enterprise DLP]' }] } };
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ action: 'modify', body: Buffer.from(JSON.stringify(cleaned)).toString('base64') }));
      return;
    }
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ action: 'allow' }));
  });
  const webhookPort = await listen(webhook);
  rest = createServer(async (request, response) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    restSeen.push(Buffer.concat(chunks).toString('utf8'));
    response.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
  });
  const restPort = await listen(rest);
  const deadPort = await freePort();
  gateway = await startGatewayFixture({ demo: false });
  const grants = [{ upstream: 'notes', tools: [{ name: 'save_note' }] }, { upstream: 'streaming-notes', tools: [{ name: 'save_note' }] }, { upstream: 'api', operations: [{ method: 'POST', path: '/echo' }] }];
  const persona = (name: string, external: unknown[]) => ({ kind: 'Persona', name, description: `external DLP: ${name}`, grants, dataProtection: { external } });
  await gateway.apply([
    { kind: 'Upstream', name: 'notes', protocol: 'mcp', url: `http://127.0.0.1:${notesPort}/mcp` },
    { kind: 'Upstream', name: 'streaming-notes', protocol: 'mcp', url: `http://127.0.0.1:${streamingNotesPort}/mcp` },
    { kind: 'Upstream', name: 'api', protocol: 'rest', url: `http://127.0.0.1:${restPort}` },
    persona('icap-results', [{ type: 'icap', url: `icap://127.0.0.1:${icap.port}/respmod`, directions: ['response'], timeoutMs: 2000 }]),
    persona('icap-guarded', [{ type: 'icap', url: `icap://127.0.0.1:${icap.port}/reqmod`, directions: ['request'], timeoutMs: 2000 }]),
    persona('webhook-guarded', [{ type: 'webhook', url: `http://127.0.0.1:${webhookPort}/scan`, directions: ['response'], timeoutMs: 2000 }]),
    persona('icap-async', [{ type: 'icap', url: `icap://127.0.0.1:${icap.port}/audit`, mode: 'async', timeoutMs: 2000 }]),
    persona('dlp-down-closed', [{ type: 'icap', url: `icap://127.0.0.1:${deadPort}/reqmod`, timeoutMs: 300 }]),
    persona('dlp-down-open', [{ type: 'icap', url: `icap://127.0.0.1:${deadPort}/reqmod`, timeoutMs: 300, failMode: 'open' }]),
    persona('webhook-refuses', [{ type: 'webhook', url: `http://127.0.0.1:${webhookPort}/refuse`, directions: ['request'], timeoutMs: 2000 }]),
  ]);
  for (const name of ['icap-guarded', 'icap-results', 'icap-async', 'webhook-guarded', 'dlp-down-closed', 'dlp-down-open', 'webhook-refuses']) tokens[name] = (await gateway.issueToken(name, `${name}-agent`)).token;
});

after(async () => {
  await gateway?.stop();
  await close(notes.server);
  await close(streamingNotes.server);
  await icap.close().catch(() => undefined);
  await close(webhook);
  await close(rest);
});

/** A tools/call through the gateway; an event-stream answer is read as the data of its message event. */
async function saveNote(persona: string, id: number, note: string, upstream = 'notes'): Promise<{ status: number; json: any; eventStream: boolean }> {
  const response = await fetch(`${gateway.gatewayUrl}/personas/${persona}/${upstream}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${tokens[persona]}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-06-18' },
    body: JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'save_note', arguments: { note } } }),
  });
  const text = await response.text();
  if (!text) throw new Error(`${persona}: HTTP ${response.status} with an empty body (${JSON.stringify([...response.headers])})`);
  const eventStream = (response.headers.get('content-type') ?? '').startsWith('text/event-stream');
  const data = eventStream ? text.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)) : [text];
  assert.equal(data.length, 1, `one message expected: ${text}`);
  return { status: response.status, json: JSON.parse(data[0]!), eventStream };
}

test('ICAP: allowed as is, rewritten before the upstream sees it, or refused', async () => {
  const plain = await saveNote('icap-guarded', 1, 'hello');
  assert.equal(plain.status, 200);
  assert.match(JSON.stringify(plain.json.result), /saved: hello/);

  const rewritten = await saveNote('icap-guarded', 2, 'please rewrite-me now');
  assert.equal(rewritten.status, 200);
  assert.equal(notes.calls.at(-1)?.arguments && (notes.calls.at(-1)!.arguments as { note: string }).note, '[cleaned by enterprise DLP]');
  assert.ok(!notes.calls.some((c) => JSON.stringify(c.arguments).includes('rewrite-me')), 'the original never reached the upstream');

  const before = notes.calls.length;
  const refused = await saveNote('icap-guarded', 3, 'about the forbidden-project');
  assert.equal(refused.json.error.code, -32001);
  assert.equal(refused.json.error.data.mandate.code, 'external_dlp_blocked');
  assert.equal(notes.calls.length, before, 'a refused call never reaches the upstream');
  assert.ok(icap.seen.some((r) => r.startsWith('REQMOD ')), 'the gateway spoke REQMOD');
});

test('webhook: a tool result is rewritten before the agent sees it', async () => {
  const answer = await saveNote('webhook-guarded', 4, 'confidential numbers');
  assert.equal(answer.status, 200);
  assert.equal(answer.json.result.content[0].text, '[withheld by enterprise DLP]');
  const seen = webhookSeen.find((s) => s.direction === 'response' && s.body.includes('confidential'));
  assert.ok(seen);
  assert.equal(seen.agent, 'webhook-guarded-agent');
  assert.equal(seen.persona, 'webhook-guarded');
  assert.match(seen.sourceAddress ?? '', /^127\.0\.0\.1:\d+$/);
});

test('an unreachable DLP service fails closed by default, open when the Persona says so', async () => {
  const closed = await saveNote('dlp-down-closed', 5, 'anything');
  assert.equal(closed.json.error.data.mandate.code, 'external_dlp_unavailable');
  const open = await saveNote('dlp-down-open', 6, 'anything');
  assert.match(JSON.stringify(open.json.result), /saved: anything/);
  // Passing uninspected is never silent: the audit trail and the metrics say so.
  const rows = await auditRows(gateway, 'dlp-down-open', (r) => r.some((e) => e.kind === 'response' && e.body.reasons.some((x) => x.code === 'external_dlp_unavailable')));
  const response = rows.find((e) => e.kind === 'response')!;
  assert.equal(response.verdict, 'allow');
  assert.match(response.body.reasons.find((x) => x.code === 'external_dlp_unavailable')!.message, /passed uninspected by this service, which fails open/);
  const metrics = await (await fetch(`http://127.0.0.1:${gateway.ports.extProcHealth}/metrics`)).text();
  assert.match(metrics, /^mandate_external_dlp_total\{persona="dlp-down-open",code="external_dlp_unavailable"\} [1-9]/m);
  assert.match(metrics, /^mandate_external_dlp_total\{persona="dlp-down-closed",code="external_dlp_unavailable"\} [1-9]/m);
});

test('async (audit only) ICAP: the call goes on unchanged, and what the service would have done is in its audit record', async () => {
  const answer = await saveNote('icap-async', 7, 'about the forbidden-project');
  assert.match(JSON.stringify(answer.json.result), /saved: about the forbidden-project/);
  assert.ok(notes.calls.some((c) => JSON.stringify(c.arguments).includes('forbidden-project')), 'the upstream got the call as sent');
  const rows = await auditRows(gateway, 'icap-async', (r) => r.some((e) => e.kind === 'response' && e.body.reasons.filter((x) => x.code === 'external_dlp_async_verdict').length === 2));
  const response = rows.find((e) => e.kind === 'response')!;
  assert.equal(response.verdict, 'allow');
  const verdicts = response.body.reasons.filter((x) => x.code === 'external_dlp_async_verdict').map((x) => x.message);
  assert.deepEqual(verdicts.map((m) => m.replace(/^icap icap:\/\/127\.0\.0\.1:\d+\/audit: /, '')).sort(), [
    'audit only, this request went on unchanged: verdict=would-block icap-status=200 http-status=403',
    'audit only, this response went on unchanged: verdict=would-block icap-status=200 http-status=403',
  ]);
  assert.ok(icap.seen.some((r) => r.startsWith('REQMOD icap://127.0.0.1:') && r.includes('/audit ICAP/1.0')));
});

test('an event-stream answer goes to external DLP message by message: rewritten, or refused for its request', async () => {
  // The webhook rewrites a result that mentions "confidential"; the ICAP service refuses one that mentions "secret-result".
  const rewritten = await saveNote('webhook-guarded', 21, 'confidential numbers', 'streaming-notes');
  assert.equal(rewritten.eventStream, true, 'the upstream answered with an event stream');
  assert.equal(rewritten.json.id, 21);
  assert.equal(rewritten.json.result.content[0].text, '[withheld by enterprise DLP]');
  assert.ok(webhookSeen.some((s) => s.direction === 'response' && s.body.includes('"id":21') && s.body.includes('confidential')), 'the webhook saw the message itself');

  const plain = await saveNote('icap-results', 22, 'hello', 'streaming-notes');
  assert.equal(plain.eventStream, true);
  assert.match(JSON.stringify(plain.json.result), /saved: hello/);
  const refused = await saveNote('icap-results', 23, 'the secret-result', 'streaming-notes');
  assert.equal(refused.eventStream, true);
  assert.equal(refused.json.id, 23);
  assert.equal(refused.json.error.data.mandate.code, 'external_dlp_blocked');
  assert.equal(JSON.stringify(refused.json).includes('secret-result'), false, 'the refused result never reached the agent');
  assert.ok(icap.seen.some((r) => r.startsWith('RESPMOD ') && r.includes('secret-result')), 'the gateway spoke RESPMOD for the streamed result');
});

test('ICAP REQMOD answered with a block page (an HTTP response): the REST call is refused, the page never goes upstream', async () => {
  const before = restSeen.length;
  const response = await fetch(`${gateway.gatewayUrl}/personas/icap-guarded/api/echo`, {
    method: 'POST',
    headers: { authorization: `Bearer ${tokens['icap-guarded']}`, 'content-type': 'application/json' },
    body: JSON.stringify({ note: 'corporate-block-page please' }),
  });
  const problem = (await response.json()) as { code?: string; detail?: string };
  assert.equal(response.status, 403);
  assert.equal(problem.code, 'external_dlp_blocked', JSON.stringify(problem));
  assert.equal(restSeen.length, before, 'nothing reached the upstream');
  assert.ok(!restSeen.some((b) => b.includes('Blocked by corporate DLP')));
});

test('a webhook\'s block reason reaches the agent and the audit trail cleaned: one line, cut short, the card it quotes masked', async () => {
  const refused = await saveNote('webhook-refuses', 31, 'hello');
  assert.equal(refused.json.error.data.mandate.code, 'external_dlp_blocked');
  const message = refused.json.error.message as string;
  assert.ok(!message.includes('4111 1111 1111 1111') && !/[\r\n]/.test(message) && message.length < 250, message);
  assert.match(message, /refused this request: card \*{4} \*{4} \*{4} 1111 found  X-Injected: 1Z+~$/);
  const rows = await auditRows(gateway, 'webhook-refuses', (r) => r.some((e) => e.kind === 'decision'));
  const recorded = JSON.stringify(rows);
  assert.ok(!recorded.includes('4111 1111 1111 1111') && !recorded.includes('ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ'), 'the audit trail holds the same cleaned reason');
});
