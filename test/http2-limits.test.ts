// HTTP/2 agents (cleartext, prior knowledge: the listener takes h2c as well as HTTP/1.1) through the
// real Envoy: the listener offers small flow-control windows and a bounded number of streams, so an
// agent that pushes bodies far over its Persona's maxBodyBytes, on many streams of one connection,
// gets 413 payload_too_large on each promptly while Envoy's memory stays flat; bodies within the limit
// pass and are masked as over HTTP/1.1; answers over the limit are refused with the codes HTTP/1.1
// agents get (502 response_too_large, or a JSON-RPC error).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type Server, type ServerResponse } from 'node:http';
import { connect, type ClientHttp2Session } from 'node:http2';
import { after, before, describe, test } from 'node:test';
import { connectionLimits } from '../xds-server/snapshot/build-snapshot.ts';
import { startGatewayFixture, type GatewayFixture } from './support/gateway-fixture.ts';
import { close, listen } from './support/recording-mcp-server.ts';

// A test value with a valid checksum (not a real card).
const card = '4539 1488 0343 6467';
const maskedCard = '**** **** **** 6467';
const limit = 65_536;
const MB = 1_000_000;
/** A refusal must not wait for the rest of the body, nor for any timeout. */
const promptMs = 5_000;

let gateway: GatewayFixture;
let upstream: Server;
let token: string;
/** Request bodies the upstream received, by path. */
const received: { path: string; body: string }[] = [];

/** `{"card":"<card>","pad":"aaa..."}` of exactly `bytes` bytes. */
function jsonOf(bytes: number): string {
  const head = `{"card":"${card}","pad":"`;
  return `${head}${'a'.repeat(bytes - head.length - 2)}"}`;
}

/** Writes `text` with no declared length (chunked), in 16 KiB writes. */
function writeChunked(response: ServerResponse, text: string): void {
  response.writeHead(200, { 'content-type': 'application/json' });
  for (let at = 0; at < text.length && !response.destroyed; at += 16_384) response.write(text.slice(at, at + 16_384));
  response.end();
}

/**
 * REST: POST /api/echo echoes the body it received; GET /api/answer?bytes=N answers JSON of N bytes
 * without a declared length. MCP: tools/call read_big with arguments {bytes} answers a result that size.
 */
function createUpstream(): Server {
  return createServer(async (request, response) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    response.on('error', () => {});
    const url = new URL(request.url ?? '/', 'http://upstream');
    const body = Buffer.concat(chunks).toString('utf8');
    received.push({ path: url.pathname, body });
    if (url.pathname === '/api/echo') {
      response.writeHead(200, { 'content-type': 'application/json' }).end(body);
      return;
    }
    if (url.pathname === '/api/answer') {
      writeChunked(response, jsonOf(Number(url.searchParams.get('bytes'))));
      return;
    }
    const message = JSON.parse(body || '{}') as { id?: unknown; method?: string; params?: { arguments?: { bytes?: number } } };
    if (message.method === 'tools/call') {
      const head = `{"jsonrpc":"2.0","id":${JSON.stringify(message.id)},"result":{"content":[{"type":"text","text":"Card on file: ${card} `;
      writeChunked(response, `${head}${'a'.repeat((message.params?.arguments?.bytes ?? 100) - head.length - 5)}"}]}}`);
      return;
    }
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ jsonrpc: '2.0', id: message.id ?? null, result: {} }));
  });
}

before(async () => {
  upstream = createUpstream();
  const port = await listen(upstream);
  gateway = await startGatewayFixture({ demo: false });
  await gateway.apply([
    { kind: 'Upstream', name: 'files-api', protocol: 'rest', url: `http://127.0.0.1:${port}/api`, environment: 'production', timeoutMs: 10_000 },
    { kind: 'Upstream', name: 'files', protocol: 'mcp', url: `http://127.0.0.1:${port}/mcp`, environment: 'production', timeoutMs: 10_000 },
    {
      kind: 'Persona',
      name: 'h2-agent',
      description: 'Bodies and answers of at most 64 KiB, cards masked.',
      grants: [
        { upstream: 'files-api', operations: [{ method: 'POST', path: '/echo' }, { method: 'GET', path: '/answer' }] },
        { upstream: 'files', tools: [{ name: 'read_big' }] },
      ],
      dataProtection: { profiles: ['pci-dss'], defaultAction: 'mask' },
      maxBodyBytes: limit,
    },
  ]);
  token = (await gateway.issueToken('h2-agent', 'h2-agent-1')).token;
});

after(async () => {
  await gateway?.stop();
  if (upstream) await close(upstream);
});

/** A prior-knowledge HTTP/2 connection to the gateway, its SETTINGS from Envoy received. */
async function h2Session(): Promise<ClientHttp2Session> {
  // The client's own cap on what it queues (10 MB by default) would reset the test's streams itself.
  const session = connect(gateway.gatewayUrl, { maxSessionMemory: 1024 });
  session.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    session.once('remoteSettings', () => resolve());
    session.once('error', reject);
  });
  return session;
}

interface H2Answer {
  status: number;
  contentType: string;
  text: string;
  /** From the request's first byte to the end of the answer. */
  ms: number;
  /** Set when the stream ended without an answer. */
  error?: string;
}

const chunk = Buffer.alloc(1024 * 1024, 'a');

/** One request on the session; a body of `bytes` is written as fast as flow control lets it (`body` as given otherwise). */
function h2Request(session: ClientHttp2Session, method: string, path: string, options: { body?: string; bytes?: number; contentType?: string } = {}): Promise<H2Answer> {
  return new Promise((resolve) => {
    const started = Date.now();
    const headers: Record<string, string> = { ':method': method, ':path': path, authorization: `Bearer ${token}` };
    if (options.contentType) headers['content-type'] = options.contentType;
    if (path.startsWith('/personas/h2-agent/files') && !path.includes('files-api')) {
      Object.assign(headers, { accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-06-18' });
    }
    const stream = session.request(headers, { endStream: method === 'GET' });
    let status = 0;
    let contentType = '';
    const parts: Buffer[] = [];
    let settled = false;
    const finish = (error?: string) => {
      if (settled) return;
      settled = true;
      resolve({ status, contentType, text: Buffer.concat(parts).toString('utf8'), ms: Date.now() - started, ...(error ? { error } : {}) });
    };
    stream.on('response', (h) => {
      status = Number(h[':status']);
      contentType = String(h['content-type'] ?? '');
    });
    stream.on('data', (d: Buffer) => parts.push(d));
    stream.on('end', () => finish(status === 0 ? 'ended without an answer' : undefined));
    stream.on('error', (e: Error) => finish(e.message));
    stream.on('close', () => finish(status === 0 ? `closed (${stream.rstCode})` : undefined));
    if (method === 'GET') return;
    if (options.body !== undefined) {
      stream.end(options.body);
      return;
    }
    let sent = 0;
    const total = options.bytes ?? 0;
    const write = () => {
      while (sent < total && !stream.destroyed && !stream.closed) {
        const n = Math.min(chunk.length, total - sent);
        sent += n;
        const more = stream.write(n === chunk.length ? chunk : chunk.subarray(0, n));
        if (sent >= total) {
          stream.end();
          return;
        }
        if (!more) {
          stream.once('drain', write);
          return;
        }
      }
    };
    write();
  });
}

function envoyRssBytes(): number {
  const status = readFileSync(`/proc/${gateway.envoy.child.pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
}

/** A prompt problem document with this status and code. */
function assertProblem(answer: H2Answer, status: number, code: string, label: string): void {
  assert.equal(answer.status, status, `${label}: ${answer.error ?? ''} ${answer.text.slice(0, 200)}`);
  assert.match(answer.contentType, /^application\/problem\+json/, label);
  const problem = JSON.parse(answer.text) as { type: string; status: number; code: string };
  assert.deepEqual([problem.type, problem.status, problem.code], [`https://mandate.dev/errors/${code}`, status, code], label);
  assert.ok(answer.ms < promptMs, `${label}: answered after ${answer.ms} ms`);
}

describe('an HTTP/2 agent sending bodies over its Persona\'s maxBodyBytes', () => {
  // First in the file: Envoy's heap has not yet grown for anything else.
  test('20 streams of 20 MB on one connection: each gets 413 payload_too_large, Envoy\'s memory stays flat, nothing goes upstream', async () => {
    const session = await h2Session();
    try {
      const before = envoyRssBytes();
      let peak = before;
      const sampler = setInterval(() => (peak = Math.max(peak, envoyRssBytes())), 10);
      const answers = await Promise.all(Array.from({ length: 20 }, () => h2Request(session, 'POST', '/personas/h2-agent/files-api/echo', { bytes: 20 * MB, contentType: 'application/json' })));
      clearInterval(sampler);
      peak = Math.max(peak, envoyRssBytes());
      answers.forEach((answer, i) => assertProblem(answer, 413, 'payload_too_large', `stream ${i}`));
      const growthMiB = (peak - before) / 1024 / 1024;
      // Measured on Envoy 1.40: about 3 MiB; with Envoy's defaults (16 MiB stream windows) 186 to 205 MiB.
      assert.ok(growthMiB < 64, `Envoy's RSS grew by ${growthMiB.toFixed(1)} MiB`);
      assert.equal(received.filter((r) => r.path === '/api/echo').length, 0, 'nothing reached the upstream');
    } finally {
      session.close();
    }
  });

  test('Envoy offers a 64 KiB stream window and at most 100 concurrent streams', async () => {
    const session = await h2Session();
    try {
      assert.equal(session.remoteSettings.initialWindowSize, connectionLimits.http2StreamWindowBytes);
      assert.equal(session.remoteSettings.maxConcurrentStreams, connectionLimits.http2MaxConcurrentStreams);
      assert.deepEqual([connectionLimits.http2StreamWindowBytes, connectionLimits.http2MaxConcurrentStreams], [65_536, 100]);
    } finally {
      session.close();
    }
  });

  test('one stream of 100 MB gets 413 payload_too_large promptly; so does an MCP message over the limit', async () => {
    const session = await h2Session();
    try {
      assertProblem(await h2Request(session, 'POST', '/personas/h2-agent/files-api/echo', { bytes: 100 * MB, contentType: 'application/json' }), 413, 'payload_too_large', 'REST, 100 MB');
      assertProblem(await h2Request(session, 'POST', '/personas/h2-agent/files', { bytes: 2 * MB, contentType: 'application/json' }), 413, 'payload_too_large', 'MCP, 2 MB');
      // The connection is still usable afterwards.
      const ok = await h2Request(session, 'POST', '/personas/h2-agent/files-api/echo', { body: jsonOf(1000), contentType: 'application/json' });
      assert.equal(ok.status, 200, ok.text.slice(0, 200));
    } finally {
      session.close();
    }
  });
});

describe('an HTTP/2 agent within the limit', () => {
  test('a body of exactly maxBodyBytes passes, its card masked, as over HTTP/1.1', async () => {
    const session = await h2Session();
    try {
      const body = jsonOf(limit);
      const answer = await h2Request(session, 'POST', '/personas/h2-agent/files-api/echo', { body, contentType: 'application/json' });
      assert.equal(answer.status, 200, answer.text.slice(0, 200));
      const overH2 = received.at(-1)!.body;
      const overH1 = await fetch(`${gateway.gatewayUrl}/personas/h2-agent/files-api/echo`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body });
      assert.equal(overH1.status, 200);
      await overH1.text();
      assert.ok(overH2.startsWith(`{"card":"${maskedCard}"`) && !overH2.includes(card), 'the upstream got the card masked');
      assert.equal(overH2, received.at(-1)!.body, 'the same body reached the upstream over HTTP/2 and HTTP/1.1');
      assert.ok(!answer.text.includes(card));
    } finally {
      session.close();
    }
  });

  test('an answer of exactly maxBodyBytes is read and masked; larger ones get 502 response_too_large, or a JSON-RPC error for a tool result', async () => {
    const session = await h2Session();
    try {
      const whole = await h2Request(session, 'GET', `/personas/h2-agent/files-api/answer?bytes=${limit}`);
      assert.equal(whole.status, 200, whole.text.slice(0, 200));
      assert.equal(whole.text.length, limit);
      assert.ok(whole.text.startsWith(`{"card":"${maskedCard}"`));
      for (const bytes of [limit + 1, 3 * MB]) {
        const answer = await h2Request(session, 'GET', `/personas/h2-agent/files-api/answer?bytes=${bytes}`);
        assertProblem(answer, 502, 'response_too_large', `${bytes} bytes`);
        assert.ok(!answer.text.includes(card) && !answer.text.includes('aaaa'), 'nothing of the answer reached the agent');
      }
      const call = JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'read_big', arguments: { bytes: 100_000 } } });
      const result = await h2Request(session, 'POST', '/personas/h2-agent/files', { body: call, contentType: 'application/json' });
      assert.equal(result.status, 200, result.text.slice(0, 200));
      assert.ok(!result.text.includes(card) && !result.text.includes('aaaa'), 'nothing of the result reached the agent');
      const error = JSON.parse(result.text) as { id: number; error: { code: number; data: { mandate: { code: string } } } };
      assert.deepEqual([error.id, error.error.code, error.error.data.mandate.code], [7, -32001, 'response_too_large']);
    } finally {
      session.close();
    }
  });
});
