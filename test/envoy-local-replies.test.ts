// Envoy's own answers on the agents' listener, through the real Envoy with raw sockets: malformed
// requests are refused at once with a Mandate code (ext_proc never holds them), requests on no
// Persona endpoint are answered by Envoy, and a client that stalls is cut at the request timeouts
// while answers and event streams are not.
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { freePort } from '../deploy/gateway-processes.ts';
import { startGatewayFixture, type GatewayFixture } from './support/gateway-fixture.ts';

const headersTimeoutMs = 1000;
const requestTimeoutMs = 2000;
/** Envoy's answer to a request it refuses by itself must not wait for anything. */
const promptMs = 500;

let gateway: GatewayFixture;
let upstream: Server;
let token: string;
/** Every request the upstream saw (its request line), in order. */
let received: string[] = [];

const endpoint = '/personas/probe/sink';
const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' });

interface RawAnswer {
  /** Milliseconds from sending the first byte to the first byte of the answer (-1: none). */
  firstByteMs: number;
  status: number;
  headers: string;
  body: string;
}

/** Writes the parts over one connection (gapMs apart) and reads until the peer closes or waitMs passes. */
function exchange(parts: string[], options: { gapMs?: number; waitMs?: number } = {}): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const socket = connect(gateway.ports.gateway, '127.0.0.1');
    const chunks: Buffer[] = [];
    const started = Date.now();
    let firstByteMs = -1;
    socket.on('data', (chunk) => {
      if (firstByteMs < 0) firstByteMs = Date.now() - started;
      chunks.push(chunk);
      // An answer with a length is complete without waiting for Envoy to close the connection.
      const text = Buffer.concat(chunks).toString('latin1');
      const split = text.indexOf('\r\n\r\n');
      const length = /\r\ncontent-length: *(\d+)/i.exec(text.slice(0, split))?.[1];
      if (split >= 0 && length !== undefined && Buffer.byteLength(text.slice(split + 4), 'latin1') >= Number(length)) socket.destroy();
    });
    socket.on('error', () => {});
    const timer = setTimeout(() => socket.destroy(), options.waitMs ?? 3000);
    socket.on('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('latin1');
      const split = text.indexOf('\r\n\r\n');
      resolve({ firstByteMs, status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), headers: text.slice(0, split).toLowerCase(), body: split < 0 ? '' : text.slice(split + 4) });
    });
    void (async () => {
      for (const part of parts) {
        if (socket.destroyed) return;
        socket.write(part);
        if (options.gapMs) await new Promise((r) => setTimeout(r, options.gapMs));
      }
    })();
  });
}

function post(extraHeaders: string, version = '1.1'): string {
  return `POST ${endpoint} HTTP/${version}\r\nhost: gateway\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\nauthorization: Bearer ${token}\r\n${extraHeaders}\r\n`;
}

/** A prompt problem document from Envoy with this status and code; nothing reached the upstream. */
function assertRefused(answer: RawAnswer, status: number, code: string): void {
  assert.equal(answer.status, status, `${answer.headers}\n${answer.body}`);
  assert.ok(answer.firstByteMs >= 0 && answer.firstByteMs < promptMs, `answered after ${answer.firstByteMs} ms`);
  assert.match(answer.headers, /content-type: application\/problem\+json/);
  const problem = JSON.parse(answer.body);
  assert.equal(problem.code, code);
  assert.equal(problem.status, status);
  assert.equal(problem.type, `https://mandate.dev/errors/${code}`);
  assert.deepEqual(received, []);
}

/** The upstream: JSON answers to POSTs; a GET is an event stream that sends an event every 250 ms for 3 s. */
function upstreamHandler(request: IncomingMessage, response: import('node:http').ServerResponse): void {
  received.push(`${request.method} ${request.url}`);
  request.resume();
  if (request.method === 'GET') {
    response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
    let sent = 0;
    const timer = setInterval(() => {
      response.write(`event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: `tick ${sent}` } })}\n\n`);
      if (++sent === 12) {
        clearInterval(timer);
        response.end();
      }
    }, 250);
    response.on('close', () => clearInterval(timer));
    return;
  }
  request.on('end', () => {
    const answer = JSON.stringify({ jsonrpc: '2.0', id: 1, result: { tools: [] } });
    response.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(answer)) }).end(answer);
  });
}

before(async () => {
  const port = await freePort();
  upstream = createServer(upstreamHandler);
  await new Promise<void>((resolve) => upstream.listen(port, '127.0.0.1', () => resolve()));
  gateway = await startGatewayFixture({
    demo: false,
    env: { MANDATE_GATEWAY_REQUEST_HEADERS_TIMEOUT_MS: String(headersTimeoutMs), MANDATE_GATEWAY_REQUEST_TIMEOUT_MS: String(requestTimeoutMs) },
  });
  await gateway.apply([
    { kind: 'Upstream', name: 'sink', protocol: 'mcp', url: `http://127.0.0.1:${port}/mcp` },
    { kind: 'Upstream', name: 'gone', protocol: 'mcp', url: `http://127.0.0.1:${await freePort()}/mcp` },
    { kind: 'Persona', name: 'probe', description: 'raw-socket tests', grants: [{ upstream: 'sink', tools: [{ name: '*' }] }, { upstream: 'gone', tools: [{ name: '*' }] }] },
  ]);
  token = (await gateway.issueToken('probe', 'agent-raw')).token;
});

after(async () => {
  await gateway?.stop();
  await new Promise<void>((resolve) => upstream?.close(() => resolve()));
});

describe('malformed requests get Envoy\'s answer at once, with a Mandate code', () => {
  test('Content-Length with Transfer-Encoding: chunked: 400 malformed_request, nothing upstream', async () => {
    received = [];
    const chunked = `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`;
    const answer = await exchange([post(`content-length: ${chunked.length}\r\ntransfer-encoding: chunked\r\n`) + chunked]);
    assertRefused(answer, 400, 'malformed_request');
    assert.equal(JSON.parse(answer.body).detail, 'http1.content_length_and_chunked_not_allowed');
  });

  test('an unsupported transfer coding, a NUL in a header, HTTP/1.0, too many or too large headers', async () => {
    const chunked = `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`;
    const cases: [string, string, number, string][] = [
      ['TE: chunked, identity', post('transfer-encoding: chunked, identity\r\n') + chunked, 501, 'malformed_request'],
      ['NUL in a header', post(`content-length: ${body.length}\r\nx-note: a\u0000b\r\n`) + body, 400, 'malformed_request'],
      ['HTTP/1.0', post(`content-length: ${body.length}\r\n`, '1.0') + body, 426, 'unsupported_http_version'],
      ['101 headers', post(`${Array.from({ length: 101 }, (_, i) => `x-h${i}: v\r\n`).join('')}content-length: ${body.length}\r\n`) + body, 431, 'request_headers_too_large'],
      ['a 100 KB header', post(`x-big: ${'a'.repeat(100_000)}\r\ncontent-length: ${body.length}\r\n`) + body, 431, 'request_headers_too_large'],
    ];
    for (const [name, request, status, code] of cases) {
      received = [];
      await test(name, async () => assertRefused(await exchange([request]), status, code));
    }
  });

  test('a body over the Persona limit: 413 payload_too_large, nothing upstream', async () => {
    received = [];
    const size = 5 * 1024 * 1024;
    const answer = await exchange([post(`content-length: ${size}\r\n`), 'x'.repeat(size)]);
    assert.equal(answer.status, 413);
    assert.match(answer.headers, /content-type: application\/problem\+json/);
    assert.equal(JSON.parse(answer.body).code, 'payload_too_large');
    assert.deepEqual(received, []);
  });
});

describe('requests on no Persona endpoint are answered by Envoy', () => {
  test('an unknown path: 404 unknown_endpoint', async () => {
    received = [];
    assertRefused(await exchange(['GET /nowhere HTTP/1.1\r\nhost: gateway\r\n\r\n']), 404, 'unknown_endpoint');
  });

  test('CONNECT: 405 method_not_allowed, nothing tunnelled', async () => {
    received = [];
    assertRefused(await exchange(['CONNECT 127.0.0.1:22 HTTP/1.1\r\nhost: 127.0.0.1:22\r\n\r\n']), 405, 'method_not_allowed');
  });
});

describe('upgrades', () => {
  test('a WebSocket upgrade on a Persona endpoint: 403 upgrade_not_supported, nothing upstream', async () => {
    received = [];
    const answer = await exchange([`GET ${endpoint} HTTP/1.1\r\nhost: gateway\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nauthorization: Bearer ${token}\r\n\r\n`]);
    assertRefused(answer, 403, 'upgrade_not_supported');
  });
});

describe('upstream failures', () => {
  test('an upstream nobody listens at: 503 upstream_unavailable', async () => {
    const answer = await exchange([post(`content-length: ${body.length}\r\n`).replace(endpoint, '/personas/probe/gone') + body]);
    assert.equal(answer.status, 503, answer.body);
    assert.match(answer.headers, /content-type: application\/problem\+json/);
    assert.equal(JSON.parse(answer.body).code, 'upstream_unavailable');
  });
});

describe('request timeouts', () => {
  /** The gateway answered 408 request_timeout once the timeout ran out, and nothing reached the upstream. */
  const assertCutAt = (answer: { status: number; body: string; firstByteMs: number }, timeoutMs: number) => {
    assert.equal(answer.status, 408);
    assert.equal(JSON.parse(answer.body).code, 'request_timeout');
    assert.ok(answer.firstByteMs >= timeoutMs - 50 && answer.firstByteMs < timeoutMs + promptMs, `cut after ${answer.firstByteMs} ms`);
    assert.deepEqual(received, []);
  };

  test('a client that stalls in its headers is cut at request_headers_timeout: 408 request_timeout', async () => {
    received = [];
    const answer = await exchange([`GET ${endpoint} HTTP/1.1\r\nhost: gateway\r\n`, 'x-slow: 1\r\n'], { waitMs: headersTimeoutMs + 3000 });
    assertCutAt(answer, headersTimeoutMs);
  });

  test('a client that stalls in its body is cut at request_timeout: 408 request_timeout, nothing upstream', async () => {
    received = [];
    const answer = await exchange([post(`content-length: ${body.length}\r\n`) + body.slice(0, 10)], { waitMs: requestTimeoutMs + 3000 });
    assertCutAt(answer, requestTimeoutMs);
  });

  test('an upload that keeps arriving within request_timeout passes', async () => {
    received = [];
    const call = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'save', arguments: { text: 'y'.repeat(3_500_000) } } });
    const pieces = Array.from({ length: 10 }, (_, i) => call.slice((i * call.length) / 10, ((i + 1) * call.length) / 10));
    const answer = await exchange([post(`content-length: ${call.length}\r\nconnection: close\r\n`), ...pieces], { gapMs: 120, waitMs: 10_000 });
    assert.equal(answer.status, 200, answer.body.slice(0, 300));
    assert.deepEqual(received, ['POST /mcp']);
  });

  test('an event stream outlives request_timeout: it bounds receiving the request, not the answer', async () => {
    received = [];
    const started = Date.now();
    const answer = await exchange([`GET ${endpoint} HTTP/1.1\r\nhost: gateway\r\naccept: text/event-stream\r\nauthorization: Bearer ${token}\r\nconnection: close\r\n\r\n`], { waitMs: 10_000 });
    assert.equal(answer.status, 200);
    assert.ok(Date.now() - started > requestTimeoutMs + 500, 'the stream lasted past request_timeout');
    assert.match(answer.body, /tick 11/, 'every event arrived');
  });
});
