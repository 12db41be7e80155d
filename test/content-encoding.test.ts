// Compressed bodies and data protection, through the real Envoy: a compressed
// answer would carry a card number past the inspection unread, and a filtered
// tool list would be unreadable. Persona routes drop the agent's
// accept-encoding, so upstreams answer uncompressed and are read as usual; an
// upstream that compresses anyway, and an agent that sends a compressed body,
// are refused with unsupported_content_encoding, never passed on unread.
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { after, before, test } from 'node:test';
import { gunzipSync, gzipSync } from 'node:zlib';
import { createCompressingUpstream, type CompressingUpstream } from './support/compressing-upstream.ts';
import { startGatewayFixture, type GatewayFixture } from './support/gateway-fixture.ts';
import { close, listen } from './support/recording-mcp-server.ts';

const card = '4539 1488 0343 6467';
let gateway: GatewayFixture;
let polite: CompressingUpstream;
let pushy: CompressingUpstream;
let token = '';

before(async () => {
  polite = createCompressingUpstream({ resultText: `Card on file: ${card}`, always: false });
  pushy = createCompressingUpstream({ resultText: `Card on file: ${card}`, always: true });
  const [politePort, pushyPort] = await Promise.all([listen(polite.server), listen(pushy.server)]);
  gateway = await startGatewayFixture({ demo: false });
  const upstreams = (name: string, port: number) => [
    { kind: 'Upstream', name: `${name}-mcp`, protocol: 'mcp', url: `http://127.0.0.1:${port}/mcp` },
    { kind: 'Upstream', name: `${name}-api`, protocol: 'rest', url: `http://127.0.0.1:${port}/api` },
  ];
  const grants = ['polite', 'pushy'].flatMap((name) => [
    { upstream: `${name}-mcp`, tools: [{ name: 'read_card' }] },
    { upstream: `${name}-api`, operations: [{ method: 'GET', path: '/notes/{id}' }, { method: 'POST', path: '/notes' }] },
  ]);
  await gateway.apply([
    ...upstreams('polite', politePort!),
    ...upstreams('pushy', pushyPort!),
    { kind: 'Persona', name: 'card-reader', description: 'Reads cards, masked.', grants, dataProtection: { profiles: ['pci-dss'] } },
  ]);
  token = (await gateway.issueToken('card-reader', 'card-agent')).token;
});

after(async () => {
  await gateway?.stop();
  for (const upstream of [polite, pushy]) if (upstream) await close(upstream.server);
});

/** A raw HTTP exchange (fetch would decompress, and hide what went over the wire). */
function send(path: string, init: { method?: string; headers?: Record<string, string>; body?: Buffer | string } = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${gateway.gatewayUrl}${path}`, { method: init.method ?? 'GET', headers: { authorization: `Bearer ${token}`, 'accept-encoding': 'gzip, deflate, br', ...init.headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(init.body);
  });
}

const mcpHeaders = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-06-18' };
const mcp = (id: number, method: string, params?: unknown) => JSON.stringify({ jsonrpc: '2.0', id, method, ...(params ? { params } : {}) });

/** The body as the agent's client would read it (decompressed when it says it is compressed). */
function readable(answer: { headers: Record<string, string | string[] | undefined>; body: Buffer }): string {
  return (answer.headers['content-encoding'] === 'gzip' ? gunzipSync(answer.body) : answer.body).toString('utf8');
}

test('an agent that accepts gzip still gets inspected answers: the upstream is not asked to compress', async () => {
  const before = polite.seen.length;
  const call = await send('/personas/card-reader/polite-mcp', { method: 'POST', headers: mcpHeaders, body: mcp(1, 'tools/call', { name: 'read_card', arguments: {} }) });
  assert.equal(call.status, 200);
  assert.equal(JSON.parse(readable(call)).result.content[0].text, 'Card on file: **** **** **** 6467');
  const list = await send('/personas/card-reader/polite-mcp', { method: 'POST', headers: mcpHeaders, body: mcp(2, 'tools/list') });
  assert.deepEqual((JSON.parse(readable(list)).result.tools as { name: string }[]).map((t) => t.name), ['read_card'], 'the tool list is filtered');
  const rest = await send('/personas/card-reader/polite-api/notes/7');
  assert.equal(JSON.parse(readable(rest)).note, 'Card on file: **** **** **** 6467');
  const received = polite.seen.slice(before);
  assert.equal(received.length, 3);
  assert.ok(received.every((r) => r.acceptEncoding === null), `the upstream was asked to compress: ${JSON.stringify(received)}`);
});

test('an upstream that compresses unasked is refused (MCP error, REST 502), never passed on unread', async () => {
  const call = await send('/personas/card-reader/pushy-mcp', { method: 'POST', headers: mcpHeaders, body: mcp(3, 'tools/call', { name: 'read_card', arguments: {} }) });
  const text = readable(call);
  assert.equal(call.headers['content-encoding'], undefined, 'the refusal is plain JSON');
  assert.ok(!text.includes(card));
  const error = JSON.parse(text) as { id: number; error: { code: number; data: { mandate: { code: string } } } };
  assert.equal(error.id, 3);
  assert.equal(error.error.code, -32001);
  assert.equal(error.error.data.mandate.code, 'unsupported_content_encoding');

  const list = JSON.parse(readable(await send('/personas/card-reader/pushy-mcp', { method: 'POST', headers: mcpHeaders, body: mcp(4, 'tools/list') })));
  assert.equal(list.error.data.mandate.code, 'unsupported_content_encoding', 'an unfiltered tool list never reaches the agent');

  const rest = await send('/personas/card-reader/pushy-api/notes/7');
  assert.equal(rest.status, 502);
  assert.equal(rest.headers['content-type'], 'application/problem+json');
  assert.equal(JSON.parse(rest.body.toString('utf8')).code, 'unsupported_content_encoding');
});

test('a compressed request body is refused with 415 before the upstream sees it', async () => {
  const before = polite.seen.length;
  const call = await send('/personas/card-reader/polite-mcp', {
    method: 'POST',
    headers: { ...mcpHeaders, 'content-encoding': 'gzip' },
    body: gzipSync(mcp(5, 'tools/call', { name: 'read_card', arguments: { note: card } })),
  });
  assert.equal(call.status, 415);
  assert.equal(JSON.parse(call.body.toString('utf8')).code, 'unsupported_content_encoding');
  const rest = await send('/personas/card-reader/polite-api/notes', {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
    body: gzipSync(JSON.stringify({ note: `card ${card}` })),
  });
  assert.equal(rest.status, 415);
  assert.equal(JSON.parse(rest.body.toString('utf8')).code, 'unsupported_content_encoding');
  assert.equal(polite.seen.length, before, 'neither reached the upstream');
});
