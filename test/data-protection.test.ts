// Sensitive-data protection end to end through the real Envoy: tool arguments
// and REST bodies are masked or refused before the upstream sees them, tool
// results are masked in JSON, in a server-sent event and in a JSON-lines stream
// split across chunks,
// values read in a session cannot flow to egress tools or to development
// upstreams, monitor mode records without changing anything, and no raw value
// is ever written under the gateway's data directory.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Server } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { checksummedToken } from '../ext-proc/dlp/detectors/secrets.ts';
import { startGatewayFixture, type GatewayFixture } from './support/gateway-fixture.ts';
import { auditRows, filesContaining } from './support/audit-reader.ts';
import { close, createRecordingMcpServer, listen, type RecordingMcpServer } from './support/recording-mcp-server.ts';
import { createRestEchoServer, type RestEchoServer } from './support/rest-echo-server.ts';
import { createSplitSseUpstream } from './support/split-sse-upstream.ts';
import { imageBytes } from './support/binary-bytes.ts';
import { createFramedAnswerUpstream, resultFor, type FramedAnswer, type JsonRpcRequest } from './support/framed-answer-upstream.ts';

// Test values with valid shapes and checksums (they are not real credentials or cards).
const awsKey = 'AKIAZ3MQ7HW2XK4JLP5R';
// Made up, with a valid checksum (a ghp_ token whose checksum fails is below the default bar).
const githubToken = checksummedToken('ghp', '16C7e42F292c6912E7710c838347Ae');
const billingCard = '4539 1488 0343 6467';
const otherCard = '4111 1111 1111 1111';
const streamedCard = '4716 3915 8245 7610';

let gateway: GatewayFixture;
let billing: RecordingMcpServer;
let mailer: RecordingMcpServer;
let screens: RecordingMcpServer;
let screensStream: RecordingMcpServer;
let devbox: RecordingMcpServer;
let restEcho: RestEchoServer;
let sseUpstream: Server;
let charsetUpstream: Server;
const tokens: Record<string, string> = {};

const dataProtection = {
  profiles: ['pci-dss', 'secrets'],
  defaultAction: 'mask',
  rules: [{ detectors: ['github-personal-access-token'], direction: 'request', action: 'block' }],
};

before(async () => {
  billing = createRecordingMcpServer({
    read_card: () => `Card on file: ${billingCard}`,
    save_note: () => 'saved',
    // An archive page larger than the small-reads Persona's maxBodyBytes, with a card at its end.
    read_archive: () => `${'archived line\n'.repeat(8 * 1024)}Card on file: ${billingCard}`,
    // A customer export of about 480 KB, a card on every line: over the size (256 KiB) that ext_proc
    // inspects on its worker thread rather than on the event loop.
    read_export: () => Array.from({ length: 6000 }, (_, i) => `Customer ${i}: ${billingCard}, order ${100000 + i}, ticket T-${i}, kept for audit.`).join('\n'),
    // Takes such an export the other way, in its arguments.
    save_export: () => 'saved',
  });
  // Screenshots, as a browser tool returns them: an image content item beside a text one.
  const screenshotAnswers = {
    take_screenshot: (args: Record<string, unknown>) => ({
      content: [
        { type: 'text' as const, text: 'Screenshot of the billing page' },
        { type: 'image' as const, data: imageBytes(Number(args['id'] ?? 60_000), args['text'] === 'clean' ? '' : `\x00Card on file: ${billingCard}\x00`).toString('base64'), mimeType: 'image/png' },
      ],
    }),
  };
  screens = createRecordingMcpServer(screenshotAnswers);
  screensStream = createRecordingMcpServer(screenshotAnswers, { eventStream: true });
  mailer = createRecordingMcpServer({ send_email: () => 'sent' });
  devbox = createRecordingMcpServer({ store_note: () => 'stored' });
  restEcho = createRestEchoServer({ secretInAnswer: otherCard, streamedSecret: streamedCard });
  sseUpstream = createSplitSseUpstream({ resultText: `Card on file: ${streamedCard}`, splitInside: streamedCard, offset: 7, pauseMs: 150 });
  charsetUpstream = createFramedAnswerUpstream(charsetAnswer);
  const [billingPort, mailerPort, devboxPort, restPort, ssePort, charsetPort, screensPort, screensStreamPort] = await Promise.all([
    listen(billing.server), listen(mailer.server), listen(devbox.server), listen(restEcho.server), listen(sseUpstream), listen(charsetUpstream), listen(screens.server), listen(screensStream.server),
  ]);
  gateway = await startGatewayFixture({ demo: false });
  const upstream = (name: string, port: number, environment: string, protocol = 'mcp', path = '/mcp') => ({ kind: 'Upstream', name, protocol, url: `http://127.0.0.1:${port}${path}`, environment });
  const allTools = [
    { upstream: 'billing', tools: [{ name: 'read_card' }, { name: 'save_note' }, { name: 'read_archive' }, { name: 'read_export' }, { name: 'save_export' }] },
    { upstream: 'mailer', tools: [{ name: 'send_email' }] },
    { upstream: 'devbox', tools: [{ name: 'store_note' }] },
    { upstream: 'billing-stream', tools: [{ name: 'read_card' }] },
    { upstream: 'billing-charsets', tools: [{ name: 'read_card' }] },
    { upstream: 'screens', tools: [{ name: 'take_screenshot' }] },
    { upstream: 'screens-stream', tools: [{ name: 'take_screenshot' }] },
    { upstream: 'notes-api', operations: [{ method: 'POST', path: '/notes' }, { method: 'GET', path: '/notes' }, { method: 'GET', path: '/events' }, { method: 'GET', path: '/keys/{key}' }, { method: 'GET', path: '/download' }] },
  ];
  await gateway.apply([
    upstream('billing', billingPort!, 'production'),
    upstream('mailer', mailerPort!, 'production'),
    upstream('devbox', devboxPort!, 'development'),
    upstream('billing-stream', ssePort!, 'production'),
    upstream('billing-charsets', charsetPort!, 'production'),
    upstream('screens', screensPort!, 'production'),
    upstream('screens-stream', screensStreamPort!, 'production'),
    { ...upstream('notes-api', restPort!, 'production', 'rest', '/api'), forwardHeaders: ['x-ticket-note'] },
    { kind: 'Persona', name: 'dlp-guard', description: 'Masks cards and credentials, refuses GitHub tokens.', grants: allTools, dataProtection },
    { kind: 'Persona', name: 'dlp-monitor', description: 'Same data protection, monitored only.', mode: 'monitor', grants: allTools, dataProtection },
    { kind: 'Persona', name: 'dlp-small-reads', description: 'Same data protection, answers of at most 64 KiB.', grants: allTools, dataProtection, maxBodyBytes: 65_536 },
    {
      kind: 'Persona',
      name: 'dlp-strict',
      description: 'Card numbers may not reach the agent at all.',
      grants: allTools,
      dataProtection: { profiles: ['pci-dss'], rules: [{ groups: ['financial'], direction: 'response', action: 'block' }] },
    },
    {
      kind: 'Persona',
      name: 'dlp-answers',
      description: 'Masks cards in answers only.',
      grants: allTools,
      dataProtection: { profiles: ['pci-dss'], rules: [{ groups: ['financial'], direction: 'request', action: 'detect' }] },
    },
    {
      kind: 'Persona',
      name: 'flow-guard',
      description: 'Sees card numbers, but may not send them out or to development.',
      grants: allTools,
      dataProtection: { profiles: ['pci-dss'], defaultAction: 'detect', flow: { enabled: true } },
    },
  ]);
  for (const persona of ['dlp-guard', 'dlp-monitor', 'dlp-strict', 'flow-guard', 'dlp-small-reads', 'dlp-answers']) tokens[persona] = (await gateway.issueToken(persona, `${persona}-agent`)).token;
});

after(async () => {
  await gateway?.stop();
  for (const server of [billing?.server, screens?.server, screensStream?.server, mailer?.server, devbox?.server, restEcho?.server, sseUpstream, charsetUpstream]) if (server) await close(server);
});

const endpoint = (persona: string, upstream: string) => `/personas/${persona}/${upstream}`;

async function rawToolCall(persona: string, upstream: string, tool: string, args: Record<string, unknown>, id = 1): Promise<{ status: number; contentType: string; text: string }> {
  const response = await fetch(`${gateway.gatewayUrl}${endpoint(persona, upstream)}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${tokens[persona]}`, 'mcp-protocol-version': '2025-06-18' },
    body: JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: tool, arguments: args } }),
  });
  return { status: response.status, contentType: response.headers.get('content-type') ?? '', text: await response.text() };
}

/** billing-charsets answers read_card in the framing its `charset` argument names. */
function charsetAnswer(request: JsonRpcRequest): FramedAnswer {
  const card = request.params?.arguments?.['nbsp'] === true ? billingCard.replaceAll(' ', '\u00a0') : billingCard;
  const body = resultFor(request, { content: [{ type: 'text', text: `Card on file: ${card}` }] });
  switch (request.params?.arguments?.['charset']) {
    case 'utf-16le':
      return { status: 200, contentType: 'application/json; charset=utf-16le', body: Buffer.from(body, 'utf16le') };
    case 'utf-16le-sse':
      return { status: 200, contentType: 'text/event-stream; charset=utf-16le', body: Buffer.from(`event: message\ndata: ${body}\n\n`, 'utf16le') };
    case 'iso-8859-1':
      return { status: 200, contentType: 'application/json; charset=iso-8859-1', body: Buffer.from(body, 'latin1') };
    default:
      return { status: 200, contentType: 'application/json', body: Buffer.from(body) };
  }
}

/** A tool call answered in bytes, as the agent receives them. */
async function rawToolCallBytes(persona: string, upstream: string, args: Record<string, unknown>, id: string | number = 1): Promise<{ status: number; contentType: string; contentLength: string | null; body: Buffer }> {
  const response = await fetch(`${gateway.gatewayUrl}${endpoint(persona, upstream)}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${tokens[persona]}`, 'mcp-protocol-version': '2025-06-18' },
    body: JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'read_card', arguments: args } }),
  });
  return { status: response.status, contentType: response.headers.get('content-type') ?? '', contentLength: response.headers.get('content-length'), body: Buffer.from(await response.arrayBuffer()) };
}

function resultText(result: object): string {
  return (result as { content: { text: string }[] }).content.map((c) => c.text).join('\n');
}

describe('an image in a tool result', () => {
  test('is read as a file: a card in its bytes is masked byte for byte, the image otherwise arrives as sent; a clean one arrives untouched (JSON and SSE, inline and on the worker)', async () => {
    for (const upstream of ['screens', 'screens-stream']) {
      const client = await gateway.mcpClient(endpoint('dlp-guard', upstream), tokens['dlp-guard']!);
      // 60 KB is inspected on the event loop; 400 KB (over 256 KiB) on the worker.
      for (const size of [60_000, 400_000]) {
        const sent = imageBytes(size, `\x00Card on file: ${billingCard}\x00`);
        const result = (await client.callTool({ name: 'take_screenshot', arguments: { id: String(size) } })) as { content: { type: string; text?: string; data?: string; mimeType?: string }[] };
        assert.equal(result.content[0]!.text, 'Screenshot of the billing page', `${upstream} ${size}`);
        assert.equal(result.content[1]!.mimeType, 'image/png');
        const received = Buffer.from(result.content[1]!.data!, 'base64');
        assert.equal(received.length, sent.length, `${upstream} ${size}: the image arrived whole`);
        const at = sent.indexOf('Card on file: ');
        assert.equal(received.subarray(at, at + 33).toString('latin1'), 'Card on file: **** **** **** 6467', `${upstream} ${size}`);
        assert.ok(received.subarray(0, at).equals(sent.subarray(0, at)) && received.subarray(at + 33).equals(sent.subarray(at + 33)), `${upstream} ${size}: every other byte as sent`);
        const clean = (await client.callTool({ name: 'take_screenshot', arguments: { id: String(size), text: 'clean' } })) as { content: { data?: string }[] };
        assert.ok(Buffer.from(clean.content[1]!.data!, 'base64').equals(imageBytes(size, '')), `${upstream} ${size}: a clean image arrives untouched`);
      }
      await client.close();
    }
    // Each answer audited with what was found in it, and never the value.
    const isScreenshot = (e: { kind: string; tool?: string | null }) => e.kind === 'response' && e.tool === 'take_screenshot';
    const rows = (await auditRows(gateway, 'dlp-guard', (r) => r.filter(isScreenshot).length >= 8)).filter(isScreenshot);
    assert.equal(rows.length, 8);
    for (const row of rows) {
      const body = row.body as { maskedArguments: { text?: string }; findingTypes: string[] };
      assert.deepEqual(body.findingTypes, body.maskedArguments.text === 'clean' ? [] : ['payment-card-visa/financial'], JSON.stringify(body));
    }
    assert.ok(!JSON.stringify(rows).includes(billingCard), 'no raw card in the audit trail');
  });
});

describe('a large answer', () => {
  test('a 480 KB export with a card on every line is masked whole, inspected off the event loop while a small call goes through', async () => {
    const client = await gateway.mcpClient(endpoint('dlp-guard', 'billing'), tokens['dlp-guard']!);
    const [exported, small] = await Promise.all([client.callTool({ name: 'read_export', arguments: {} }), client.callTool({ name: 'read_card', arguments: {} })]);
    const text = resultText(exported);
    assert.ok(text.length > 400 * 1024, `the export arrived whole (${text.length} characters)`);
    assert.equal(text.split('\n').length, 6000);
    assert.ok(!text.includes(billingCard), 'no card number passed unmasked');
    assert.equal(text.match(/\*\*\*\* \*\*\*\* \*\*\*\* \d{4}/g)?.length, 6000);
    assert.match(resultText(small), /^Card on file: \*\*\*\* \*\*\*\* \*\*\*\* \d{4}$/);
    await client.close();
    const log = readFileSync(join(gateway.dataDir, 'logs', 'ext-proc.log'), 'utf8');
    assert.ok(!log.includes('body_inspection_inline') && !log.includes('body_inspection_worker_lost'), 'the worker inspected it');
  });
});

describe('a large request', () => {
  // About 480 KB with a card on every line: over the size (256 KiB) that ext_proc inspects on its worker thread.
  const largeNote = () => Array.from({ length: 6000 }, (_, i) => `Customer ${i}: ${billingCard}, order ${100000 + i}, ticket T-${i}, kept for audit.`).join('\n');

  test('a 480 KB tool argument with a card on every line is masked before the upstream sees it, inspected off the event loop while a small call goes through', async () => {
    const client = await gateway.mcpClient(endpoint('dlp-guard', 'billing'), tokens['dlp-guard']!);
    const [saved, small] = await Promise.all([client.callTool({ name: 'save_export', arguments: { note: largeNote(), id: 'large-note' } }), client.callTool({ name: 'read_card', arguments: {} })]);
    assert.equal(resultText(saved), 'saved');
    assert.match(resultText(small), /^Card on file: \*\*\*\* \*\*\*\* \*\*\*\* \d{4}$/);
    const received = billing.calls.find((c) => (c.arguments as { id?: string }).id === 'large-note')!.arguments as { note: string };
    assert.equal(received.note.split('\n').length, 6000, 'the note arrived whole');
    assert.ok(!received.note.includes(billingCard), 'no card number reached the upstream');
    assert.equal(received.note.match(/\*\*\*\* \*\*\*\* \*\*\*\* 6467/g)?.length, 6000);
    await client.close();
    const log = readFileSync(join(gateway.dataDir, 'logs', 'ext-proc.log'), 'utf8');
    assert.ok(!log.includes('body_inspection_inline') && !log.includes('body_inspection_worker_lost'), 'the worker inspected it');
  });

  test('a 480 KB REST body is masked before the upstream sees it', async () => {
    const response = await fetch(`${gateway.gatewayUrl}${endpoint('dlp-guard', 'notes-api')}/notes`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${tokens['dlp-guard']}` },
      body: JSON.stringify({ note: largeNote(), id: 'large-rest-note' }),
    });
    assert.equal(response.status, 200);
    await response.arrayBuffer();
    const received = restEcho.bodies.find((b) => b.includes('large-rest-note'))!;
    assert.ok(!received.includes(billingCard), 'no card number reached the upstream');
    assert.equal(received.match(/\*\*\*\* \*\*\*\* \*\*\*\* 6467/g)?.length, 6000);
  });
});

describe('request side: agent to tool', () => {
  test('a credential in a tool argument is masked before the upstream sees it', async () => {
    const client = await gateway.mcpClient(endpoint('dlp-guard', 'billing'), tokens['dlp-guard']!);
    const result = await client.callTool({ name: 'save_note', arguments: { note: `deploy with ${awsKey} tonight`, id: 'n-1' } });
    assert.equal(resultText(result), 'saved');
    const received = billing.calls.filter((c) => c.tool === 'save_note').at(-1)!.arguments as { note: string; id: string };
    assert.ok(!received.note.includes(awsKey), `the upstream received the raw key: ${received.note}`);
    assert.match(received.note, /^deploy with \*{8,} tonight$/);
    assert.equal(received.id, 'n-1', 'arguments without sensitive data are forwarded unchanged');
    await client.close();
  });

  test('a credential under a dotted field name, and a card used as a field name, are masked upstream and in the audit trail', async () => {
    const client = await gateway.mcpClient(endpoint('dlp-guard', 'billing'), tokens['dlp-guard']!);
    const result = await client.callTool({ name: 'save_note', arguments: { id: 'n-keys', 'deploy.key': awsKey, cards: { [otherCard]: 'primary' } } });
    assert.equal(resultText(result), 'saved');
    const received = JSON.stringify(billing.calls.filter((c) => c.tool === 'save_note').at(-1)!.arguments);
    assert.ok(!received.includes(awsKey) && !received.includes(otherCard), `the upstream received: ${received}`);
    const rows = await auditRows(gateway, 'dlp-guard', (r) => r.some((e) => e.kind === 'decision' && JSON.stringify(e.body.maskedArguments ?? null).includes('n-keys')));
    const recorded = JSON.stringify(rows.find((e) => e.kind === 'decision' && JSON.stringify(e.body.maskedArguments ?? null).includes('n-keys'))!.body.maskedArguments);
    // Not even the first characters the record keeps of an unflagged string.
    assert.ok(!recorded.includes(awsKey.slice(0, 8)) && !recorded.includes(otherCard.slice(0, 8)), `the audit trail recorded: ${recorded}`);
    assert.match(recorded, /"deploy\.key":"\[redacted:aws-access-key-id\/credentials\]"/);
    assert.match(recorded, /\[redacted-key:payment-card-visa\/financial\]#1":"primary"/);
    await client.close();
  });

  test('a credential hidden with zero-width marks or full-width letters is masked before the upstream sees it', async () => {
    const client = await gateway.mcpClient(endpoint('dlp-guard', 'billing'), tokens['dlp-guard']!);
    const hidden = [[...awsKey].join('\u200b'), [...awsKey].map((c) => String.fromCharCode(c.charCodeAt(0) + 0xfee0)).join('')];
    for (const [i, key] of hidden.entries()) {
      const result = await client.callTool({ name: 'save_note', arguments: { note: `deploy with ${key} tonight`, id: `hidden-${i}` } });
      assert.equal(resultText(result), 'saved');
      const received = billing.calls.filter((c) => c.tool === 'save_note').at(-1)!.arguments as { note: string; id: string };
      assert.equal(received.id, `hidden-${i}`);
      assert.match(received.note, /^deploy with \*{8,} tonight$/, `the upstream received: ${received.note}`);
    }
    await client.close();
  });

  test("every message the agent sends is inspected: a notification's reason is masked; a refused answer to the server is an HTTP 403 and never reaches it", async () => {
    const post = (message: unknown) =>
      fetch(`${gateway.gatewayUrl}${endpoint('dlp-guard', 'billing')}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${tokens['dlp-guard']}`, 'mcp-protocol-version': '2025-06-18' },
        body: JSON.stringify(message),
      });
    const cancelled = await post({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 41, reason: `giving up, use ${awsKey}` } });
    assert.equal(cancelled.status, 202);
    const received = billing.messages.filter((m) => (m as { method?: string }).method === 'notifications/cancelled').at(-1) as { params: { reason: string } };
    assert.match(received.params.reason, /^giving up, use \*{8,}$/);
    assert.equal(JSON.stringify(billing.messages).includes(awsKey), false);

    // A tool call's _meta and the endpoint's query string are the agent's too.
    const called = await fetch(`${gateway.gatewayUrl}${endpoint('dlp-guard', 'billing')}?ref=${awsKey}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${tokens['dlp-guard']}`, 'mcp-protocol-version': '2025-06-18' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 77, method: 'tools/call', params: { name: 'save_note', arguments: { id: 'meta' }, _meta: { progressToken: `p-${awsKey}` } } }),
    });
    assert.equal(called.status, 200);
    await called.arrayBuffer();
    const call = billing.messages.filter((m) => (m as { id?: unknown }).id === 77).at(-1) as { params: { _meta: { progressToken: string } } };
    assert.match(call.params._meta.progressToken, /^p-\*{8,}$/);
    assert.equal(billing.urls.some((u) => u.includes(awsKey)), false, `the upstream received ${billing.urls.at(-1)}`);
    assert.match(billing.urls.at(-1)!, /\?ref=\*{8,}$/);

    const before = billing.messages.length;
    // The client's answer to a server request (elicitation) with a value a block rule stops.
    const answer = await post({ jsonrpc: '2.0', id: 'elicit-1', result: { action: 'accept', content: { token: githubToken } } });
    assert.equal(answer.status, 403);
    const error = (await answer.json()) as { id: unknown; error: { code: number; data: { mandate: { code: string } } } };
    assert.equal(error.id, null);
    assert.equal(error.error.code, -32001);
    assert.equal(error.error.data.mandate.code, 'sensitive_data_blocked');
    assert.equal(billing.messages.length, before, 'the refused answer never reached the upstream');
  });

  test('a block rule refuses the call with -32001, naming the detector group, never the value', async () => {
    const before = billing.calls.length;
    const client = await gateway.mcpClient(endpoint('dlp-guard', 'billing'), tokens['dlp-guard']!);
    await assert.rejects(
      () => client.callTool({ name: 'save_note', arguments: { note: `token ${githubToken}` } }),
      (error: unknown) => {
        assert.ok(error instanceof McpError);
        assert.equal(error.code, -32001);
        assert.match(error.message, /credentials data \(github-personal-access-token\)/);
        assert.ok(!error.message.includes(githubToken));
        assert.equal((error.data as { mandate: { code: string } }).mandate.code, 'sensitive_data_blocked');
        return true;
      },
    );
    assert.equal(billing.calls.length, before, 'the refused call never reached the upstream');
    await client.close();
  });

  test('a REST JSON body is masked, with a content length that matches the new body', async () => {
    const response = await fetch(`${gateway.gatewayUrl}${endpoint('dlp-guard', 'notes-api')}/notes`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${tokens['dlp-guard']}` },
      body: JSON.stringify({ note: 'rotate', key: awsKey }),
    });
    assert.equal(response.status, 200);
    const answer = (await response.json()) as { received: { note: string; key: string }; contentLengthMatched: boolean; account: { card: string } };
    assert.equal(restEcho.bodies.at(-1)!.includes(awsKey), false, 'the upstream never saw the raw key');
    assert.match(answer.received.key, /^\*+$/);
    assert.equal(answer.received.note, 'rotate');
    assert.equal(answer.contentLengthMatched, true);
    // The REST answer is inspected too: the card the upstream returned reaches the agent masked.
    assert.equal(answer.account.card, '**** **** **** 1111');
  });

  test('headers: only protocol headers and those the upstream lists go on; a listed one is inspected (masked, or refused before the upstream)', async () => {
    const url = `${gateway.gatewayUrl}${endpoint('dlp-guard', 'notes-api')}/notes`;
    const smuggled = { 'x-card': billingCard, 'x-http-method-override': 'DELETE', cookie: 'sid=1', 'x-envoy-note': awsKey, 'x-forwarded-host': 'elsewhere', 'x-mandate-agent': 'someone' };
    const response = await fetch(url, { headers: { authorization: `Bearer ${tokens['dlp-guard']}`, 'x-ticket-note': `rotate ${awsKey} today`, 'user-agent': 'agent/1.0', ...smuggled } });
    assert.equal(response.status, 200);
    await response.arrayBuffer();
    const received = restEcho.headers.at(-1)!;
    for (const name of Object.keys(smuggled)) assert.equal(received[name], undefined, `${name} reached the upstream`);
    assert.equal(received.authorization, undefined, "the agent's Mandate credential never reaches the upstream");
    assert.equal(received['user-agent'], 'agent/1.0', 'protocol headers go on');
    assert.match(String(received['x-ticket-note']), /^rotate \*{8,} today$/, 'a listed header is masked like the body');
    assert.equal(JSON.stringify(received).includes(awsKey), false);

    // X-Forwarded-For: Envoy appends the peer's address to the agent's value; with no trusted proxy the
    // upstream receives the peer's address alone, never what the agent wrote there.
    const forwarded = await fetch(url, { headers: { authorization: `Bearer ${tokens['dlp-guard']}`, 'x-forwarded-for': `203.0.113.50, ${awsKey}` } });
    assert.equal(forwarded.status, 200);
    await forwarded.arrayBuffer();
    assert.equal(restEcho.headers.at(-1)!['x-forwarded-for'], '127.0.0.1');

    const before = restEcho.urls.length;
    const blocked = await fetch(url, { headers: { authorization: `Bearer ${tokens['dlp-guard']}`, 'x-ticket-note': `token ${githubToken}` } });
    assert.equal(blocked.status, 403);
    const problem = (await blocked.json()) as { code: string; title: string };
    assert.equal(problem.code, 'sensitive_data_blocked');
    assert.match(problem.title, /credentials data \(github-personal-access-token\)/);
    assert.equal(problem.title.includes(githubToken), false);
    assert.equal(restEcho.urls.length, before, 'the refused request never reached the upstream');
  });

  test('an HTML form body is read field by field: values written with "+" or percent-escapes are masked before the upstream sees them', async () => {
    const response = await fetch(`${gateway.gatewayUrl}${endpoint('dlp-guard', 'notes-api')}/notes`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Bearer ${tokens['dlp-guard']}` },
      body: `note=refund&card=${billingCard.replaceAll(' ', '+')}&config=key%3D${awsKey}`,
    });
    assert.equal(response.status, 200);
    const answer = (await response.json()) as { received: Record<string, string>; contentLengthMatched: boolean };
    const raw = restEcho.bodies.at(-1)!;
    assert.equal(raw.includes(awsKey) || raw.includes(billingCard.replaceAll(' ', '+')), false, `the upstream received: ${raw}`);
    assert.equal(answer.received.note, 'refund');
    assert.equal(answer.received.card, '**** **** **** 6467');
    assert.match(answer.received.config!, /^key=\*{8,}$/);
    assert.equal(answer.contentLengthMatched, true);
  });

  test('a credential in a REST query string is masked before the upstream sees it; a blocked one is refused', async () => {
    const url = `${gateway.gatewayUrl}${endpoint('dlp-guard', 'notes-api')}/notes`;
    const masked = await fetch(`${url}?q=rotate%20keys&api_key=${awsKey}`, { headers: { authorization: `Bearer ${tokens['dlp-guard']}` } });
    assert.equal(masked.status, 200);
    await masked.arrayBuffer();
    const received = new URL(restEcho.urls.at(-1)!, 'http://upstream');
    assert.equal(received.pathname, '/api/notes', 'the route and its prefix rewrite are unchanged');
    assert.equal(received.searchParams.get('q'), 'rotate keys');
    assert.match(received.searchParams.get('api_key') ?? '', /^\*+$/);
    assert.ok(!restEcho.urls.some((u) => u.includes(awsKey)), 'the upstream never saw the raw key');

    const before = restEcho.urls.length;
    const refused = await fetch(`${url}?token=${githubToken}`, { headers: { authorization: `Bearer ${tokens['dlp-guard']}` } });
    assert.equal(refused.status, 403);
    const problem = (await refused.json()) as { code: string };
    assert.equal(problem.code, 'sensitive_data_blocked');
    assert.equal(restEcho.urls.length, before, 'the refused request never reached the upstream');
  });

  test('a credential in a REST path segment is masked before the upstream sees it; a blocked one is refused and never recorded', async () => {
    const base = `${gateway.gatewayUrl}${endpoint('dlp-guard', 'notes-api')}/keys`;
    const masked = await fetch(`${base}/${awsKey}`, { headers: { authorization: `Bearer ${tokens['dlp-guard']}` } });
    assert.equal(masked.status, 200);
    await masked.arrayBuffer();
    const received = restEcho.urls.at(-1)!;
    assert.match(received, /^\/api\/keys\/\*+$/, `the upstream received ${received}`);
    const before = restEcho.urls.length;
    const refused = await fetch(`${base}/${githubToken}`, { headers: { authorization: `Bearer ${tokens['dlp-guard']}` } });
    assert.equal(refused.status, 403);
    assert.equal(((await refused.json()) as { code: string }).code, 'sensitive_data_blocked');
    assert.equal(restEcho.urls.length, before);
    // The audit names REST calls by their path: the refused one is recorded with the segment redacted.
    const rows = await auditRows(gateway, 'dlp-guard', (r) => r.some((e) => e.kind === 'decision' && e.verdict === 'deny' && (e.tool ?? '').startsWith('GET /keys/')));
    const recorded = rows.find((e) => e.kind === 'decision' && e.verdict === 'deny' && (e.tool ?? '').startsWith('GET /keys/'))!;
    assert.equal(recorded.tool, 'GET /keys/[redacted]');
  });

  test('a REST body with a blocked value is refused with an RFC 9457 403', async () => {
    const before = restEcho.bodies.length;
    const response = await fetch(`${gateway.gatewayUrl}${endpoint('dlp-guard', 'notes-api')}/notes`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${tokens['dlp-guard']}` },
      body: JSON.stringify({ note: githubToken }),
    });
    assert.equal(response.status, 403);
    assert.match(response.headers.get('content-type') ?? '', /problem\+json/);
    const problem = (await response.json()) as { code: string; title: string };
    assert.equal(problem.code, 'sensitive_data_blocked');
    assert.match(problem.title, /credentials/);
    assert.ok(!JSON.stringify(problem).includes(githubToken));
    assert.equal(restEcho.bodies.length, before);
  });
});

describe('response side: tool to agent', () => {
  test('a card number in a JSON tool result reaches the agent masked', async () => {
    const client = await gateway.mcpClient(endpoint('dlp-guard', 'billing'), tokens['dlp-guard']!);
    const result = await client.callTool({ name: 'read_card', arguments: {} });
    assert.equal(resultText(result), 'Card on file: **** **** **** 6467');
    await client.close();
  });

  test('a card number split across two chunks of a JSON-lines REST stream is masked, and every line stays valid JSON', async () => {
    const response = await fetch(`${gateway.gatewayUrl}${endpoint('dlp-guard', 'notes-api')}/events`, { headers: { authorization: `Bearer ${tokens['dlp-guard']}` } });
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /ndjson/);
    const text = await response.text();
    assert.ok(!text.includes(streamedCard) && !text.includes('4716 39'), 'no part of the card reached the agent');
    const rows = text.split('\n').filter(Boolean).map((line) => JSON.parse(line) as { seq: number; note: string });
    assert.deepEqual(rows.map((r) => r.seq), Array.from({ length: 20 }, (_, i) => i));
    assert.equal(rows[12]!.note, 'card **** **** **** 7610');
  });

  test('a spaced card number in one long JSON-lines record, written in two pieces with the cut at a space inside it, is masked', async () => {
    for (const label of ['ndjson', 'none']) {
      const response = await fetch(`${gateway.gatewayUrl}${endpoint('dlp-guard', 'notes-api')}/events?shape=long&label=${label}`, { headers: { authorization: `Bearer ${tokens['dlp-guard']}` } });
      assert.equal(response.status, 200);
      const text = await response.text();
      assert.ok(!text.includes('4716 3915') && !text.includes('8245 7610'), `${label}: no part of the card reached the agent`);
      const row = JSON.parse(text) as { seq: number; note: string };
      assert.equal(row.note, `${'z'.repeat(300)} card **** **** **** 7610 ${'y'.repeat(244)}`, label);
    }
  });

  test('a card number split across two SSE chunks is masked, and the event stays valid', async () => {
    const response = await rawToolCall('dlp-guard', 'billing-stream', 'read_card', {}, 41);
    assert.equal(response.status, 200);
    assert.match(response.contentType, /text\/event-stream/);
    assert.ok(!response.text.includes(streamedCard), 'the raw card reached the agent');
    assert.ok(!response.text.includes('4716 39'), 'no part of the card before the cut leaked');
    const data = response.text.split('\n').find((l) => l.startsWith('data: '))!;
    const message = JSON.parse(data.slice(6)) as { id: number; result: { content: { text: string }[] } };
    assert.equal(message.id, 41);
    assert.equal(message.result.content[0]!.text, 'Card on file: **** **** **** 7610');
  });
});

describe('response blocks', () => {
  test('a blocked tool result is replaced by a JSON-RPC error for that call (JSON and SSE)', async () => {
    const client = await gateway.mcpClient(endpoint('dlp-strict', 'billing'), tokens['dlp-strict']!);
    await assert.rejects(
      () => client.callTool({ name: 'read_card', arguments: {} }),
      (error: unknown) => error instanceof McpError && error.code === -32001 && /the tool result holds financial data \(payment-card-visa\) that this Persona may not receive; it was withheld/.test(error.message) && !error.message.includes(billingCard),
    );
    await client.close();
    const streamed = await rawToolCall('dlp-strict', 'billing-stream', 'read_card', {}, 77);
    assert.ok(!streamed.text.includes(streamedCard) && !streamed.text.includes('4716 39'));
    const data = JSON.parse(streamed.text.split('\n').find((l) => l.startsWith('data: '))!.slice(6)) as { id: number; error: { code: number; data: { mandate: { code: string } } } };
    assert.equal(data.id, 77);
    assert.equal(data.error.data.mandate.code, 'sensitive_data_blocked');
  });

  test('an answer too large to read is refused with response_too_large, never passed on unread', async () => {
    const client = await gateway.mcpClient(endpoint('dlp-small-reads', 'billing'), tokens['dlp-small-reads']!);
    await assert.rejects(
      () => client.callTool({ name: 'read_archive', arguments: {} }),
      (error: unknown) => {
        assert.ok(error instanceof McpError, String(error));
        assert.equal(error.code, -32001);
        assert.equal((error.data as { mandate: { code: string } }).mandate.code, 'response_too_large');
        assert.match(error.message, /this Persona reads at most 65536/);
        return true;
      },
    );
    // The same Persona still reads answers within its limit, masked.
    assert.equal(resultText(await client.callTool({ name: 'read_card', arguments: {} })), 'Card on file: **** **** **** 6467');
    await client.close();
    // The default limit (4 MiB) reads the same archive page, card masked.
    const whole = await rawToolCall('dlp-guard', 'billing', 'read_archive', {}, 9);
    assert.equal(whole.status, 200);
    assert.ok(!whole.text.includes(billingCard) && whole.text.includes('Card on file: **** **** **** 6467'));
  });

  test("the upstream's answer headers are inspected: a card in a header is masked, or refuses the answer under a block rule", async () => {
    const masked = await fetch(`${gateway.gatewayUrl}${endpoint('dlp-guard', 'notes-api')}/notes?debug=1`, { headers: { authorization: `Bearer ${tokens['dlp-guard']}` } });
    assert.equal(masked.status, 200);
    assert.equal(masked.headers.get('x-debug-token'), '**** **** **** 1111');
    assert.equal(masked.headers.get('x-trace'), 'plain');
    await masked.arrayBuffer();
    const strict = await fetch(`${gateway.gatewayUrl}${endpoint('dlp-strict', 'notes-api')}/notes?debug=1`, { headers: { authorization: `Bearer ${tokens['dlp-strict']}` } });
    assert.equal(strict.status, 502);
    assert.equal(((await strict.json()) as { code: string }).code, 'sensitive_data_blocked');
  });

  test('an answer with no or the wrong content type is read as text unless its bytes are binary', async () => {
    const get = async (kind: string) => {
      const response = await fetch(`${gateway.gatewayUrl}${endpoint('dlp-guard', 'notes-api')}/download?kind=${kind}`, { headers: { authorization: `Bearer ${tokens['dlp-guard']}` } });
      assert.equal(response.status, 200, kind);
      return Buffer.from(await response.arrayBuffer());
    };
    for (const kind of ['unlabelled', 'octet']) {
      const body = (await get(kind)).toString('utf8');
      assert.equal(body.includes(otherCard), false, `${kind}: ${body}`);
      assert.deepEqual(JSON.parse(body), { account: { card: '**** **** **** 1111' } }, kind);
    }
    for (const kind of ['binary', 'png']) {
      const body = await get(kind);
      assert.ok(body.includes(Buffer.from(otherCard)), `${kind}: binary bytes pass as they are`);
      assert.equal(body.length, 8 + otherCard.length + 2 + 64);
    }
  });

  test('a blocked REST answer becomes a 502 problem', async () => {
    const response = await fetch(`${gateway.gatewayUrl}${endpoint('dlp-strict', 'notes-api')}/notes`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${tokens['dlp-strict']}` },
      body: JSON.stringify({ note: 'hello' }),
    });
    assert.equal(response.status, 502);
    const text = await response.text();
    assert.ok(!text.includes(otherCard));
    assert.equal((JSON.parse(text) as { code: string }).code, 'sensitive_data_blocked');
  });
});

describe('answers in another charset, and the JSON-RPC id', () => {
  const digitsIn = (body: Buffer) => ['utf8', 'utf16le', 'latin1'].some((encoding) => /4539\D{0,2}1488\D{0,2}0343\D{0,2}6467/.test(body.toString(encoding as BufferEncoding)));

  test('an answer in UTF-16, JSON or an event stream, is refused with unsupported_charset; the card never reaches the agent', async () => {
    for (const charset of ['utf-16le', 'utf-16le-sse']) {
      const answer = await rawToolCallBytes('dlp-guard', 'billing-charsets', { charset }, 4);
      assert.equal(answer.status, 200, charset);
      assert.equal(digitsIn(answer.body), false, charset);
      const error = JSON.parse(answer.body.toString('utf8')) as { id: number; error: { code: number; data: { mandate: { code: string } } } };
      assert.equal(error.id, 4);
      assert.equal(error.error.code, -32001);
      assert.equal(error.error.data.mandate.code, 'unsupported_charset', charset);
    }
  });

  test('an ISO-8859-1 answer with no-break spaces in a card reaches the agent masked, still ISO-8859-1', async () => {
    const answer = await rawToolCallBytes('dlp-guard', 'billing-charsets', { charset: 'iso-8859-1', nbsp: true });
    assert.equal(answer.status, 200);
    assert.equal(answer.contentType, 'application/json; charset=iso-8859-1');
    assert.equal(answer.contentLength, String(answer.body.length));
    assert.equal(digitsIn(answer.body), false);
    assert.ok(answer.body.includes(Buffer.from([0x2a, 0xa0, 0x2a])), 'the no-break spaces are single ISO-8859-1 bytes');
    const decoded = JSON.parse(answer.body.toString('latin1')) as { result: { content: { text: string }[] } };
    assert.equal(decoded.result.content[0]!.text, 'Card on file: ****\u00a0****\u00a0****\u00a06467');
  });

  test("the client's JSON-RPC id comes back as sent, even when it looks like a card; the card in the result is masked", async () => {
    const answer = await rawToolCallBytes('dlp-answers', 'billing-charsets', {}, billingCard);
    assert.equal(answer.status, 200);
    const decoded = JSON.parse(answer.body.toString('utf8')) as { id: string; result: { content: { text: string }[] } };
    assert.equal(decoded.id, billingCard);
    assert.equal(decoded.result.content[0]!.text, 'Card on file: **** **** **** 6467');
  });
});

describe('the detector catalogue API', () => {
  test('GET /v1/data-protection/detectors lists every detector with its metadata; filters are checked', async () => {
    const internalToken = readFileSync(join(gateway.dataDir, 'internal-token'), 'utf8').trim();
    const api = (query: string, token: string | null = internalToken) =>
      fetch(`http://127.0.0.1:${gateway.ports.extProcHealth}/v1/data-protection/detectors${query}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
    const all = (await (await api('')).json()) as { count: number; detectors: { id: string; group: string; validation: string; profiles: string[]; examples: string[] }[] };
    assert.ok(all.count >= 200, `${all.count} detectors`);
    assert.equal(all.detectors.length, all.count);
    const visa = all.detectors.find((d) => d.id === 'payment-card-visa');
    assert.equal(visa?.group, 'financial');
    assert.equal(visa?.validation, 'checksum');
    assert.equal(all.detectors.find((d) => d.id === 'us-ein')?.validation, 'structure', 'no check digit: not claimed as one');
    assert.ok(visa!.examples.length > 0);
    const pci = (await (await api('?profile=pci-dss&group=financial')).json()) as { detectors: { group: string; profiles: string[] }[] };
    assert.ok(pci.detectors.length > 0 && pci.detectors.every((d) => d.group === 'financial' && d.profiles.includes('pci-dss')));
    const bad = await api('?group=nonsense');
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { code: string }).code, 'invalid_query');
    assert.equal((await api('', null)).status, 401);
  });
});

describe('data-flow control', () => {
  test('a card read from billing cannot be sent to an email tool in the same session; an unseen card can', async () => {
    const client = await gateway.mcpClient(endpoint('flow-guard', 'billing'), tokens['flow-guard']!);
    const read = await client.callTool({ name: 'read_card', arguments: {} });
    assert.equal(resultText(read), `Card on file: ${billingCard}`, 'detect-only: the agent may see the card');
    await client.close();

    const mail = await gateway.mcpClient(endpoint('flow-guard', 'mailer'), tokens['flow-guard']!);
    const before = mailer.calls.length;
    await assert.rejects(
      () => mail.callTool({ name: 'send_email', arguments: { to: 'x@example.com', text: `the card is ${billingCard}` } }),
      (error: unknown) => error instanceof McpError && error.code === -32001 && (error.data as { mandate: { code: string } }).mandate.code === 'sensitive_data_flow_blocked',
    );
    assert.equal(mailer.calls.length, before, 'the blocked email never reached the mailer');
    // Respelled to slip past: zero-width spaces between the digits, Arabic-Indic digits, mathematical bold digits.
    const digits = billingCard.replaceAll(' ', '');
    const respellings = [
      [...digits].join('\u200b'),
      [...digits].map((d) => String.fromCharCode(0x0660 + Number(d))).join(''),
      [...digits].map((d) => String.fromCodePoint(0x1d7ce + Number(d))).join(''),
    ];
    for (const respelled of respellings) {
      await assert.rejects(
        () => mail.callTool({ name: 'send_email', arguments: { to: 'x@example.com', text: `the card is ${respelled}` } }),
        (error: unknown) => error instanceof McpError && (error.data as { mandate: { code: string } }).mandate.code === 'sensitive_data_flow_blocked',
        respelled,
      );
    }
    assert.equal(mailer.calls.length, before, 'no respelled email reached the mailer');
    // Spelled so that no detector finds it: underscores and no card word, also in base64. The search by
    // the remembered values' canonical form finds it all the same.
    const groups = billingCard.split(' ');
    for (const evasive of [groups.join('_'), `ref ${digits}x`, Buffer.from(groups.join('_')).toString('base64')]) {
      await assert.rejects(
        () => mail.callTool({ name: 'send_email', arguments: { to: 'x@example.com', text: evasive } }),
        (error: unknown) => error instanceof McpError && (error.data as { mandate: { code: string } }).mandate.code === 'sensitive_data_flow_blocked',
        evasive,
      );
    }
    assert.equal(mailer.calls.length, before, 'no evasive email reached the mailer');
    const unseen = await mail.callTool({ name: 'send_email', arguments: { to: 'x@example.com', text: `a different card ${otherCard}` } });
    assert.equal(resultText(unseen), 'sent', 'a value the session never read from another upstream is not a flow');
    await mail.close();
  });

  test('a value read from a production upstream cannot be written to a development upstream', async () => {
    const client = await gateway.mcpClient(endpoint('flow-guard', 'billing'), tokens['flow-guard']!);
    await client.callTool({ name: 'read_card', arguments: {} });
    await client.close();
    const dev = await gateway.mcpClient(endpoint('flow-guard', 'devbox'), tokens['flow-guard']!);
    await assert.rejects(
      () => dev.callTool({ name: 'store_note', arguments: { note: billingCard } }),
      (error: unknown) => error instanceof McpError && /production\) may not be sent to tool "store_note" on upstream "devbox" \(development\)/.test(error.message),
    );
    assert.equal(devbox.calls.length, 0);
    const clean = await dev.callTool({ name: 'store_note', arguments: { note: 'nothing sensitive' } });
    assert.equal(resultText(clean), 'stored');
    await dev.close();
  });
});

describe('monitor mode and the audit trail', () => {
  test('a monitor-mode Persona records findings but neither masks nor blocks', async () => {
    const client = await gateway.mcpClient(endpoint('dlp-monitor', 'billing'), tokens['dlp-monitor']!);
    const saved = await client.callTool({ name: 'save_note', arguments: { note: `token ${githubToken}` } });
    assert.equal(resultText(saved), 'saved');
    assert.equal((billing.calls.at(-1)!.arguments as { note: string }).note, `token ${githubToken}`, 'monitor mode forwards the value unchanged');
    const read = await client.callTool({ name: 'read_card', arguments: {} });
    assert.equal(resultText(read), `Card on file: ${billingCard}`);
    await client.close();

    const rows = await auditRows(gateway, 'dlp-monitor', (r) => r.some((e) => e.kind === 'response' && e.tool === 'read_card'));
    const blocked = rows.find((r) => r.kind === 'decision' && r.tool === 'save_note')!;
    assert.equal(blocked.verdict, 'deny');
    assert.equal(blocked.body.enforced, false);
    assert.equal(blocked.body.reasons[0]!.code, 'sensitive_data_blocked');
    assert.deepEqual(blocked.body.findingTypes, ['github-personal-access-token/credentials']);
    const response = rows.find((r) => r.kind === 'response' && r.tool === 'read_card')!;
    assert.deepEqual(response.body.findingTypes, ['payment-card-visa/financial']);
  });

  test('findings reach the audit trail as types; no raw value is stored anywhere under the data dir', async () => {
    const rows = await auditRows(gateway, 'dlp-guard', (r) => r.some((e) => e.kind === 'response' && e.tool === 'read_card'));
    const masked = rows.find((r) => r.kind === 'decision' && r.tool === 'save_note' && r.verdict === 'allow')!;
    assert.deepEqual(masked.body.findingTypes, ['aws-access-key-id/credentials']);
    assert.match(JSON.stringify(masked.body.maskedArguments), /\[redacted:aws-access-key-id\/credentials\]/);
    const refused = rows.find((r) => r.kind === 'decision' && r.verdict === 'deny' && r.tool === 'save_note')!;
    assert.equal(refused.body.reasons[0]!.code, 'sensitive_data_blocked');
    // Envoy writes its access log in batches: wait until a marked request's line is in it (so the lines
    // of every earlier request, query strings included, are too), then search every file: databases,
    // journals, process logs.
    const marker = `log-marker-${Date.now()}`;
    await (await fetch(`${gateway.gatewayUrl}${endpoint('dlp-guard', 'notes-api')}/notes`, { headers: { authorization: `Bearer ${tokens['dlp-guard']}`, 'user-agent': marker } })).arrayBuffer();
    for (let waited = 0; filesContaining(gateway.dataDir, marker).length === 0; waited += 100) {
      assert.ok(waited < 10_000, 'Envoy wrote no access log line for the marked request');
      await new Promise((r) => setTimeout(r, 100));
    }
    for (const secret of [awsKey, githubToken, billingCard, streamedCard, otherCard]) {
      assert.deepEqual(filesContaining(gateway.dataDir, secret), [], `"${secret.slice(0, 4)}…" was written to disk`);
    }
  });
});
