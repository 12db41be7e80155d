// End to end through the real Envoy: the official MCP SDK client and plain HTTP
// clients talk to Persona endpoints; the control plane, ext_proc, the MCP
// reference server and a REST API run as separate processes.
import assert from 'node:assert/strict';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { verifyAuditDirectory } from '../ext-proc/audit/verify.ts';
import { adminRequest, freePort, waitForEnvoyVersion } from '../deploy/gateway-processes.ts';
import { demoDocuments, startGatewayFixture, type GatewayFixture } from './support/gateway-fixture.ts';
import { createJsonMcpServer, jsonServerTools } from './support/json-mcp-server.ts';
import { createFramedAnswerUpstream, resultFor } from './support/framed-answer-upstream.ts';

let gateway: GatewayFixture;
let jsonUpstream: Server;
let jsonUpstreamPort: number;

const support = '/personas/support-agent';
const mcpJsonHeaders = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

async function post(path: string, body: string, headers: Record<string, string>): Promise<{ status: number; headers: Headers; text: string; json: any }> {
  const response = await fetch(`${gateway.gatewayUrl}${path}`, { method: 'POST', headers, body });
  const text = await response.text();
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch {
    // SSE or empty
  }
  return { status: response.status, headers: response.headers, text, json };
}

const initialize = (id = 1, protocolVersion = '2025-06-18') =>
  JSON.stringify({ jsonrpc: '2.0', id, method: 'initialize', params: { protocolVersion, capabilities: {}, clientInfo: { name: 'raw', version: '1' } } });

before(async () => {
  jsonUpstreamPort = await freePort();
  jsonUpstream = createJsonMcpServer();
  await new Promise<void>((resolve) => jsonUpstream.listen(jsonUpstreamPort, '127.0.0.1', () => resolve()));
  gateway = await startGatewayFixture();
});

after(async () => {
  await gateway?.stop();
  await new Promise<void>((resolve) => jsonUpstream?.close(() => resolve()));
});

describe('MCP through Envoy with the official SDK client', () => {
  test('tools/list shows only the Persona granted tools (SSE responses)', async () => {
    const client = await gateway.mcpClient(`${support}/everything`, gateway.tokens['support-agent']!);
    const { tools } = await client.listTools();
    assert.deepEqual(tools.map((t) => t.name).sort(), ['echo', 'get-sum']);
    await client.close();
  });

  test('an allowed tool call passes and returns the upstream result', async () => {
    const client = await gateway.mcpClient(`${support}/everything`, gateway.tokens['support-agent']!);
    const result = await client.callTool({ name: 'get-sum', arguments: { a: 2, b: 40 } });
    assert.match(JSON.stringify(result.content), /42/);
    const echoed = await client.callTool({ name: 'echo', arguments: { message: 'hello through Mandate' } });
    assert.match(JSON.stringify(echoed.content), /hello through Mandate/);
    await client.close();
  });

  test('a tool outside the Persona is refused with a policy error', async () => {
    const client = await gateway.mcpClient(`${support}/everything`, gateway.tokens['support-agent']!);
    await assert.rejects(
      () => client.callTool({ name: 'get-env', arguments: {} }),
      (error: unknown) => error instanceof McpError && error.code === -32001 && /get-env.*not granted/.test(error.message),
    );
    await client.close();
  });

  test('a granted tool whose CEL condition fails is refused', async () => {
    const client = await gateway.mcpClient(`${support}/everything`, gateway.tokens['support-agent']!);
    await assert.rejects(
      () => client.callTool({ name: 'echo', arguments: { message: 'x'.repeat(201) } }),
      (error: unknown) => error instanceof McpError && error.code === -32001 && /condition/.test(error.message),
    );
    await client.close();
  });

  test('resources are not granted to a Persona (default deny)', async () => {
    const client = await gateway.mcpClient(`${support}/everything`, gateway.tokens['support-agent']!);
    await assert.rejects(() => client.listResources(), (error: unknown) => error instanceof McpError && error.code === -32001);
    await client.close();
  });

  test('monitor mode records a denial but lets the call through', async () => {
    const client = await gateway.mcpClient('/personas/research-agent/everything', gateway.tokens['research-agent']!);
    const { tools } = await client.listTools();
    assert.ok(tools.every((t) => t.name.startsWith('get-')), 'research-agent sees only get-* tools');
    const result = await client.callTool({ name: 'echo', arguments: { message: 'monitored' } });
    assert.match(JSON.stringify(result.content), /monitored/);
    await client.close();
  });

  test('every MCP protocol revision negotiates through the gateway', async () => {
    for (const version of ['2024-11-05', '2025-03-26', '2025-06-18', '2025-11-25', '2026-07-28']) {
      const headers: Record<string, string> = { ...mcpJsonHeaders, authorization: `Bearer ${gateway.tokens['support-agent']}` };
      // 2026-07-28 clients name the method in a header, which must agree with the body.
      if (version === '2026-07-28') Object.assign(headers, { 'mcp-protocol-version': version, 'mcp-method': 'initialize' });
      const response = await post(`${support}/everything`, initialize(1, version), headers);
      assert.equal(response.status, 200, `${version}: ${response.text.slice(0, 200)}`);
      if (!response.text) throw new Error(`${version}: empty 200 answer, headers ${JSON.stringify([...response.headers])}`);
      // Newer servers prime the stream with an empty event (resumability); the answer is the event with data.
      const data = response.text.split('\n').find((line) => line.startsWith('data: ') && line.length > 6);
      const result = JSON.parse(data ? data.slice(6) : response.text).result;
      assert.equal(typeof result.protocolVersion, 'string', version);
      if (version !== '2026-07-28') assert.equal(result.protocolVersion, version, 'the reference server speaks this revision');
    }
  });

  test('a JSON (non-SSE) upstream has its tools/list filtered too, and marked private to caches', async () => {
    const version = await gateway.apply([
      { kind: 'Upstream', name: 'json-tickets', protocol: 'mcp', url: `http://127.0.0.1:${jsonUpstreamPort}/mcp` },
      {
        kind: 'Persona',
        name: 'ticket-reader',
        description: 'Reads tickets; nothing else.',
        grants: [{ upstream: 'json-tickets', tools: [{ name: 'list_tickets' }, { name: 'read_*' }] }],
      },
    ]);
    assert.ok(version > 0);
    const { token } = await gateway.issueToken('ticket-reader', 'reader-1');
    const listed = await post('/personas/ticket-reader/json-tickets', JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/list', params: {} }), {
      ...mcpJsonHeaders,
      authorization: `Bearer ${token}`,
      'mcp-protocol-version': '2025-06-18',
    });
    assert.equal(listed.status, 200);
    assert.match(listed.headers.get('content-type') ?? '', /application\/json/);
    assert.equal(listed.headers.get('cache-control'), 'private, no-store');
    assert.deepEqual(listed.json.result.tools.map((t: { name: string }) => t.name).sort(), ['list_tickets', 'read_ticket']);
    assert.equal(Number(listed.headers.get('content-length')), Buffer.byteLength(listed.text));
    assert.equal(jsonServerTools.length, 4, 'the upstream really offers four tools');
    const client = await gateway.mcpClient('/personas/ticket-reader/json-tickets', token);
    assert.deepEqual((await client.listTools()).tools.map((t) => t.name).sort(), ['list_tickets', 'read_ticket']);
    await assert.rejects(() => client.callTool({ name: 'send_email', arguments: {} }), (e: unknown) => e instanceof McpError && e.code === -32001);
    await client.close();
  });
});

describe('tools/list whatever its framing', () => {
  let framed: Server;
  let framedPort: number;
  const offered = ['list_tickets', 'read_ticket', 'delete_ticket', 'admin_console'].map((name) => ({ name, inputSchema: { type: 'object' } }));
  before(async () => {
    framedPort = await freePort();
    // The upstream URL's last segment names how the tool list is framed.
    framed = createFramedAnswerUpstream((request, path) => {
      const list = resultFor(request, { tools: offered });
      switch (path.split('/').pop()) {
        case 'created-sse':
          return { status: 201, contentType: 'text/event-stream', body: Buffer.from(`event: message\ndata: ${list}\n\n`) };
        // Lines of an event stream may end with CR alone, and a client may read a last event left without its blank line.
        case 'sse-cr':
          return { status: 200, contentType: 'text/event-stream', body: Buffer.from(`event: message\rdata: ${list}\r\r`) };
        case 'sse-unterminated':
          return { status: 200, contentType: 'text/event-stream', body: Buffer.from(`: ready\n\nevent: message\ndata: ${list}`) };
        case 'sse-data-lines': {
          const halfway = list.indexOf('"result"');
          return { status: 200, contentType: 'text/event-stream', body: Buffer.from(`event: message\r\ndata: ${list.slice(0, halfway)}\rdata: ${list.slice(halfway)}\n`) };
        }
        case 'octet':
          return { status: 200, contentType: 'application/octet-stream', body: Buffer.from(list) };
        case 'unlabelled':
          return { status: 200, body: Buffer.from(list) };
        case 'png':
          return { status: 200, contentType: 'image/png', body: Buffer.from(list) };
        default:
          return { status: 200, contentType: 'image/png', body: Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0]) };
      }
    });
    await new Promise<void>((resolve) => framed.listen(framedPort, '127.0.0.1', () => resolve()));
  });
  after(async () => {
    await new Promise<void>((resolve) => framed?.close(() => resolve()));
  });

  test('a tool list answered with status 201, or labelled application/octet-stream, image/png or nothing, is filtered; one that is not JSON is refused', async () => {
    const framings = ['created-sse', 'sse-cr', 'sse-unterminated', 'sse-data-lines', 'octet', 'unlabelled', 'png', 'real-png'];
    await gateway.apply([
      ...framings.map((framing) => ({ kind: 'Upstream', name: `framed-${framing}`, protocol: 'mcp', url: `http://127.0.0.1:${framedPort}/mcp/${framing}` })),
      {
        kind: 'Persona',
        name: 'framed-reader',
        description: 'Reads tickets from upstreams that frame their answers oddly.',
        grants: framings.map((framing) => ({ upstream: `framed-${framing}`, tools: [{ name: 'list_tickets' }, { name: 'read_*' }] })),
      },
    ]);
    const { token } = await gateway.issueToken('framed-reader', 'framed-1');
    for (const framing of framings) {
      const listed = await post(`/personas/framed-reader/framed-${framing}`, JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/list', params: {} }), {
        ...mcpJsonHeaders,
        authorization: `Bearer ${token}`,
        'mcp-protocol-version': '2025-06-18',
      });
      assert.equal(listed.text.includes('admin_console') || listed.text.includes('delete_ticket'), false, `${framing}: ${listed.text}`);
      if (framing === 'real-png') {
        assert.equal(listed.status, 200);
        assert.equal(listed.json.id, 7);
        assert.equal(listed.json.error.data.mandate.code, 'upstream_invalid_response');
        continue;
      }
      assert.equal(listed.status, framing === 'created-sse' ? 201 : 200, `${framing}: ${listed.status} ${listed.text}`);
      const message = framing.includes('sse') ? JSON.parse(listed.text.split('\n').find((line) => line.startsWith('data: '))!.slice(6)) : listed.json;
      assert.deepEqual(message.result.tools.map((t: { name: string }) => t.name).sort(), ['list_tickets', 'read_ticket'], framing);
      assert.equal(listed.headers.get('cache-control'), 'private, no-store');
    }
  });
});

describe('the session GET event stream', () => {
  test('a tool list arriving on the GET stream is filtered too', async () => {
    const port = await freePort();
    const tools = ['echo', 'get-env', 'delete-everything'].map((name) => ({ name, inputSchema: { type: 'object' } }));
    const upstream = createServer((request, response) => {
      if (request.method !== 'GET') {
        response.writeHead(405).end();
        return;
      }
      response.writeHead(200, { 'content-type': 'text/event-stream' });
      response.write(`event: message\nid: 1\ndata: ${JSON.stringify({ jsonrpc: '2.0', id: 99, result: { tools } })}\n\n`);
      response.end(`event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/tools/list_changed' })}\n\n`);
    });
    await new Promise<void>((resolve) => upstream.listen(port, '127.0.0.1', () => resolve()));
    try {
      await gateway.apply([
        { kind: 'Upstream', name: 'events', protocol: 'mcp', url: `http://127.0.0.1:${port}/mcp` },
        { kind: 'Persona', name: 'listener', description: 'Uses echo only.', grants: [{ upstream: 'events', tools: [{ name: 'echo' }] }] },
      ]);
      const { token } = await gateway.issueToken('listener', 'listener-1');
      const response = await fetch(`${gateway.gatewayUrl}/personas/listener/events`, { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' } });
      assert.equal(response.status, 200);
      const text = await response.text();
      const data = text.split('\n').filter((line) => line.startsWith('data: ')).map((line) => JSON.parse(line.slice(6)));
      assert.deepEqual(data[0].result.tools.map((t: { name: string }) => t.name), ['echo']);
      assert.equal(data[1].method, 'notifications/tools/list_changed', 'other events pass unchanged');
    } finally {
      await new Promise<void>((resolve) => upstream.close(() => resolve()));
    }
  });
});

describe('REST upstream', () => {
  test('an allowed operation passes, with the backend credential injected and the agent credential removed', async () => {
    const response = await fetch(`${gateway.gatewayUrl}${support}/tickets/tickets/1`, {
      headers: { authorization: `Bearer ${gateway.tokens['support-agent']}`, 'x-mandate-persona': 'research-agent' },
    });
    assert.equal(response.status, 200);
    const body = (await response.json()) as any;
    assert.equal(body.ticket.title, 'Printer on fire');
    assert.equal(body.received.authorization, 'Bearer demo-backend-token');
    assert.deepEqual(body.received.mandateHeaders, {}, 'client-supplied x-mandate-* headers never reach the upstream');
  });

  test('an operation not granted is refused with an RFC 9457 problem', async () => {
    const response = await fetch(`${gateway.gatewayUrl}${support}/tickets/tickets/1`, { method: 'DELETE', headers: { authorization: `Bearer ${gateway.tokens['support-agent']}` } });
    assert.equal(response.status, 403);
    assert.match(response.headers.get('content-type') ?? '', /application\/problem\+json/);
    const problem = (await response.json()) as any;
    assert.equal(problem.code, 'operation_not_granted');
    assert.equal(problem.status, 403);
  });

  test('a CEL condition on the query string decides', async () => {
    const headers = { authorization: `Bearer ${gateway.tokens['support-agent']}` };
    const allowed = await fetch(`${gateway.gatewayUrl}${support}/tickets/tickets?project=DEMO`, { headers });
    assert.equal(allowed.status, 200);
    const listed = ((await allowed.json()) as any).tickets as { id: string; project: string; body?: string }[];
    assert.deepEqual(listed.map((t) => [t.id, t.project]), [['1', 'DEMO'], ['2', 'DEMO'], ['4', 'DEMO']]);
    assert.equal(listed[2]!.body, 'Please refund the charge on card **** **** **** 6467.', "the demo Persona's data protection masks the card");
    const refused = await fetch(`${gateway.gatewayUrl}${support}/tickets/tickets?project=INTERNAL`, { headers });
    assert.equal(refused.status, 403);
    assert.equal(((await refused.json()) as any).code, 'condition_not_met');
  });

  test('path traversal cannot reach an ungranted operation', async () => {
    const response = await fetch(`${gateway.gatewayUrl}${support}/tickets/tickets/%2e%2e/admin`, { headers: { authorization: `Bearer ${gateway.tokens['support-agent']}` } });
    assert.ok(response.status === 400 || response.status === 403, `got ${response.status}`);
  });
});

describe('agent credentials and network rules', () => {
  test('no credential: 401 with a WWW-Authenticate challenge', async () => {
    const response = await post(`${support}/everything`, initialize(), mcpJsonHeaders);
    assert.equal(response.status, 401);
    assert.match(response.headers.get('www-authenticate') ?? '', /^Bearer realm="mandate", error="invalid_request"/);
    assert.equal(response.json.code, 'credential_missing');
  });

  test('a bad or foreign credential: 401', async () => {
    const forged = await post(`${support}/everything`, initialize(), { ...mcpJsonHeaders, authorization: 'Bearer mnd_0123456789ab_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' });
    assert.equal(forged.status, 401);
    assert.equal(forged.json.code, 'credential_invalid');
    const otherPersona = await post(`${support}/everything`, initialize(), { ...mcpJsonHeaders, authorization: `Bearer ${gateway.tokens['research-agent']}` });
    assert.equal(otherPersona.status, 401);
    assert.equal(otherPersona.json.code, 'credential_wrong_persona');
  });

  test('a revoked credential stops working', async () => {
    const { id, token } = await gateway.issueToken('support-agent', 'short-lived');
    const ok = await post(`${support}/everything`, initialize(), { ...mcpJsonHeaders, authorization: `Bearer ${token}` });
    assert.equal(ok.status, 200);
    const revoked = await adminRequest(gateway, 'DELETE', `/v1/credentials/${id}`);
    assert.equal(revoked.status, 200);
    await waitForEnvoyVersion(gateway, revoked.body.version);
    await waitForExtProcVersion(revoked.body.version);
    const refused = await post(`${support}/everything`, initialize(), { ...mcpJsonHeaders, authorization: `Bearer ${token}` });
    assert.equal(refused.status, 401);
  });

  test('a source address outside the Persona CIDR rules is refused by Envoy before ext_proc', async () => {
    await gateway.apply([
      {
        kind: 'Persona',
        name: 'office-only',
        description: 'Only from the office network.',
        grants: [{ upstream: 'tickets', operations: [{ method: 'GET', path: '/tickets/{id}' }] }],
        network: { allow: ['10.20.0.0/16'] },
      },
    ]);
    const { token } = await gateway.issueToken('office-only', 'office-agent');
    const response = await fetch(`${gateway.gatewayUrl}/personas/office-only/tickets/tickets/1`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(response.status, 403);
    // Envoy's RBAC filter answers itself; ext_proc's answers are problem+json.
    assert.equal(await response.text(), 'RBAC: access denied');
  });
});

describe('live configuration changes', () => {
  test('a Persona edit takes effect in Envoy and ext_proc within a second, without dropping an in-flight call', async () => {
    const client = await gateway.mcpClient(`${support}/everything`, gateway.tokens['support-agent']!);
    const persona = demoDocuments(gateway.ports).find((d) => d.kind === 'Persona' && d.name === 'support-agent')!;
    // An in-flight call that outlives the change.
    const inFlight = fetchSlowTicketList();
    const started = Date.now();
    const edited = { ...persona, grants: [...(persona.grants as unknown[]), { upstream: 'everything', tools: [{ name: 'get-env' }] }] };
    const result = await adminRequest(gateway, 'POST', '/v1/apply', { documents: [edited] });
    assert.equal(result.status, 200);
    await waitForEnvoyVersion(gateway, result.body.version);
    await waitForExtProcVersion(result.body.version);
    const elapsed = Date.now() - started;
    assert.ok(elapsed < 1000, `the change took ${elapsed} ms to reach Envoy and ext_proc`);
    const { tools } = await client.listTools();
    assert.ok(tools.some((t) => t.name === 'get-env'));
    const env = await client.callTool({ name: 'get-env', arguments: {} });
    assert.ok(Array.isArray(env.content));
    assert.equal((await inFlight).status, 200, 'the in-flight request completed');
    await client.close();
    // Put the demo Persona back for the other tests.
    const restored = await gateway.apply([persona]);
    await waitForExtProcVersion(restored);
  });
});

describe('bad input', () => {
  const auth = () => ({ ...mcpJsonHeaders, authorization: `Bearer ${gateway.tokens['support-agent']}` });

  test('malformed JSON: 400 with a JSON-RPC parse error', async () => {
    const response = await post(`${support}/everything`, '{"jsonrpc":', auth());
    assert.equal(response.status, 400);
    assert.equal(response.json.error.code, -32700);
    assert.equal(response.json.error.data.mandate.code, 'invalid_json');
  });

  test('invalid JSON-RPC: 400 with -32600', async () => {
    const response = await post(`${support}/everything`, JSON.stringify({ jsonrpc: '1.0', id: 1, method: 'x' }), auth());
    assert.equal(response.status, 400);
    assert.equal(response.json.error.code, -32600);
  });

  test('a batch is refused on a protocol version without batching', async () => {
    const response = await post(`${support}/everything`, `[${initialize(1)}]`, { ...auth(), 'mcp-protocol-version': '2025-06-18' });
    assert.equal(response.status, 400);
    assert.equal(response.json.error.data.mandate.code, 'batch_not_supported');
  });

  test('a 2025-03-26 batch with one denied call is refused whole, each entry answered', async () => {
    const batch = JSON.stringify([
      { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { message: 'a' } } },
      { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'get-env', arguments: {} } },
    ]);
    const response = await post(`${support}/everything`, batch, { ...auth(), 'mcp-protocol-version': '2025-03-26' });
    assert.equal(response.status, 200);
    assert.deepEqual(
      response.json.map((r: { id: number; error: { data: { mandate: { code: string } } } }) => [r.id, r.error.data.mandate.code]),
      [
        [1, 'batch_refused'],
        [2, 'tool_not_granted'],
      ],
    );
  });

  test('Mcp-Method and Mcp-Name headers must agree with the body (2026-07-28)', async () => {
    const body = JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'get-env', arguments: {} } });
    const response = await post(`${support}/everything`, body, { ...auth(), 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/call', 'mcp-name': 'echo' });
    assert.equal(response.status, 400);
    assert.equal(response.json.error.data.mandate.code, 'header_body_mismatch');
  });

  test('a wrong content type: 415', async () => {
    const response = await post(`${support}/everything`, initialize(), { ...auth(), 'content-type': 'text/plain' });
    assert.equal(response.status, 415);
    assert.equal(response.json.code, 'unsupported_media_type');
  });

  test('an oversized body: 413', async () => {
    const huge = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { message: 'x'.repeat(5 * 1024 * 1024) } } });
    const response = await post(`${support}/everything`, huge, auth());
    assert.equal(response.status, 413);
    // Envoy's own answer past the route's buffer limit, as a problem document.
    assert.equal(response.json.code, 'payload_too_large');
  });

  test('an unsupported HTTP method: 405', async () => {
    const response = await fetch(`${gateway.gatewayUrl}${support}/everything`, { method: 'PUT', headers: auth(), body: '{}' });
    assert.equal(response.status, 405);
    assert.equal(((await response.json()) as any).code, 'method_not_allowed');
  });

  test('an unknown path: 404 problem from Envoy', async () => {
    const response = await fetch(`${gateway.gatewayUrl}/nowhere`);
    assert.equal(response.status, 404);
    assert.equal(((await response.json()) as any).code, 'unknown_endpoint');
  });

  test('a dead ext_proc fails closed with 503 (status_on_error), and service resumes when it is back', async () => {
    await gateway.stopProcess('ext-proc', true);
    const refused = await post(`${support}/everything`, initialize(), auth());
    assert.equal(refused.status, 503);
    assert.equal(refused.json.code, 'policy_service_unavailable');
    await gateway.startExtProc();
    await waitForExtProcVersion(await gateway.configVersion());
    const deadline = Date.now() + 10_000;
    let status = 0;
    while (Date.now() < deadline) {
      status = (await post(`${support}/everything`, initialize(), auth())).status;
      if (status === 200) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(status, 200);
  });

  test('a stalled ext_proc times out and fails closed', async () => {
    const child = gateway.processes.get('ext-proc')!;
    child.kill('SIGSTOP');
    try {
      const started = Date.now();
      const refused = await post(`${support}/everything`, initialize(), auth());
      assert.ok(refused.status >= 500, `got ${refused.status}`);
      assert.ok(Date.now() - started < 10_000);
    } finally {
      child.kill('SIGCONT');
    }
  });
});

describe('control plane', () => {
  test('Envoy ACKed every resource type, including an ext_proc filter with status_on_error (a field of recent Envoy)', async () => {
    const status = await adminRequest(gateway, 'GET', '/v1/status');
    const node = status.body.nodes[0];
    assert.equal(node.envoyVersion, '1.40.0');
    for (const type of ['clusters', 'endpoints', 'listeners', 'routes']) {
      assert.equal(node.resources[type].ackedVersion, node.resources[type].sentVersion, `${type} acked`);
      assert.equal(node.resources[type].lastNack, null);
    }
    const dump = await (await fetch(`${gateway.envoy.adminUrl}/config_dump?resource=dynamic_listeners`)).text();
    assert.match(dump, /status_on_error/);
    assert.match(dump, /ServiceUnavailable/);
  });

  test('/metrics (Prometheus) says what /v1/status says: the version served, the connected Envoy at that version, no NACK, the ext_proc stream', async () => {
    const status = await adminRequest(gateway, 'GET', '/v1/status');
    const response = await fetch(`${gateway.adminUrl}/metrics`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const metrics = await response.text();
    const sample = (line: RegExp) => Number(line.exec(metrics)?.[1] ?? Number.NaN);
    assert.equal(sample(/^mandate_config_version (\d+)$/m), status.body.configVersion);
    assert.equal(sample(/^mandate_xds_nodes\{state="connected"\} (\d+)$/m), 1);
    assert.equal(sample(/^mandate_xds_node_config_version\{node="mandate-gateway-1"\} (\d+)$/m), status.body.configVersion);
    assert.equal((metrics.match(/^mandate_xds_node_nacked\{node="mandate-gateway-1",type="\w+"\} 0$/gm) ?? []).length, 4);
    assert.equal(sample(/^mandate_policy_streams (\d+)$/m), 1, 'the ext_proc replica follows the policy stream');
    assert.ok(sample(/^mandate_admin_responses_total\{method="GET",status="200"\} (\d+)$/m) >= 1);
    assert.doesNotMatch(metrics, /mandate_config_replication_/, 'one control plane: no replication metrics');
    assert.equal((await fetch(`${gateway.adminUrl}/metrics`, { method: 'POST' })).status, 405);
    const ready = await fetch(`${gateway.adminUrl}/readyz`);
    assert.equal(ready.status, 200);
    assert.deepEqual(await ready.json(), { ready: true, configVersion: status.body.configVersion });
  });
});

describe('audit trail', () => {
  test('decisions and every config change are in the hash chain, which verifies', async () => {
    const version = await gateway.configVersion();
    const deadline = Date.now() + 5000;
    const internalToken = readFileSync(join(gateway.dataDir, 'internal-token'), 'utf8').trim();
    let admin: { admin: { actor: string; afterVersion: number; detail: string } }[] = [];
    while (Date.now() < deadline) {
      const response = await fetch(`http://127.0.0.1:${gateway.ports.extProcHealth}/v1/audit/events?kind=admin&order=oldest&limit=1000`, { headers: { authorization: `Bearer ${internalToken}` } });
      assert.equal(response.status, 200);
      admin = ((await response.json()) as { events: typeof admin }).events;
      if (admin.some((a) => a.admin.afterVersion === version)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const versions = admin.map((a) => a.admin.afterVersion);
    assert.ok(versions.includes(version), `the latest config version ${version} is recorded (got ${versions.join(', ')})`);
    assert.deepEqual(versions, [...new Set(versions)].sort((a, b) => a - b), 'each version once, in order');
    assert.ok(admin.some((a) => /Persona\/office-only/.test(a.admin.detail)), 'the summary says what changed');
    assert.ok(admin.every((a) => a.admin.actor.length > 0));
    const verified = verifyAuditDirectory(join(gateway.dataDir, 'audit'));
    assert.equal(verified.firstBad, null);
    assert.equal(verified.ok, true);
    assert.ok(verified.recordsChecked > 50);
  });
});

async function waitForExtProcVersion(version: number): Promise<void> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const ready = (await (await fetch(`http://127.0.0.1:${gateway.ports.extProcHealth}/readyz`)).json()) as { configVersion?: number };
    if ((ready.configVersion ?? 0) >= version) return;
    if (Date.now() > deadline) throw new Error(`ext_proc did not reach config version ${version}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A REST call held open by a slow upstream response is not dropped by a config change. */
async function fetchSlowTicketList(): Promise<Response> {
  return fetch(`${gateway.gatewayUrl}${support}/tickets/tickets?project=DEMO&delayMs=1500`, { headers: { authorization: `Bearer ${gateway.tokens['support-agent']}` } });
}

describe('paths: a route is chosen by the path after normalisation, and nothing below an MCP endpoint is forwarded', () => {
  /** A request with the path exactly as written (fetch would resolve dot segments itself). */
  const raw = (path: string, method = 'GET', body?: string): Promise<{ status: number; body: string }> =>
    new Promise((resolve, reject) => {
      const req = httpRequest(
        { host: '127.0.0.1', port: gateway.ports.gateway, path, method, headers: { authorization: `Bearer ${gateway.tokens['support-agent']}`, ...(body ? { 'content-type': 'application/json', accept: 'application/json, text/event-stream' } : {}) } },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        },
      );
      req.on('error', reject);
      req.end(body);
    });

  test('dot segments and doubled slashes are resolved before routing: a path cannot sit under one endpoint and name another', async () => {
    const viaMcpPrefix = await raw('/personas/support-agent/everything/../tickets/tickets/1');
    assert.equal(viaMcpPrefix.status, 200, viaMcpPrefix.body);
    assert.equal((JSON.parse(viaMcpPrefix.body) as { received: { path: string } }).received.path, '/api/tickets/1', 'routed as the tickets path it resolves to');
    const merged = await raw('/personas/support-agent//tickets//tickets/1');
    assert.equal(merged.status, 200, merged.body);
    // Climbing into another Persona's endpoint is judged as that endpoint: this agent's token is not valid there.
    const climbed = await raw('/personas/support-agent/tickets/tickets/../../../research-agent/everything', 'POST', JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }));
    assert.equal(climbed.status, 401);
    assert.match(climbed.body, /credential_wrong_persona/);
  });

  test('an MCP endpoint forwards nothing below it, and dot segments behind encoded slashes are refused', async () => {
    const below = await raw('/personas/support-agent/everything/admin', 'POST', JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }));
    assert.equal(below.status, 404);
    assert.match(below.body, /unknown_endpoint/);
    const encoded = await raw('/personas/support-agent/tickets/tickets/..%2F..%2Fadmin');
    assert.equal(encoded.status, 400);
    assert.match(encoded.body, /invalid_path/);
  });
});
