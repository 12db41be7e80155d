// The Persona's maxBodyBytes on upstream answers that Mandate reads whole, through the real Envoy,
// for answers that declare no length (chunked): one within the limit is read whole and masked; one
// byte over, or far past Envoy's own buffer, is refused with 502 response_too_large (MCP: a JSON-RPC
// error), promptly, whether the upstream writes it at once or slowly; nothing of it reaches the agent,
// and the call's response event records the refusal. A monitor-mode Persona records it and passes it.
import assert from 'node:assert/strict';
import { createServer, type Server, type ServerResponse } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { startGatewayFixture, type GatewayFixture } from './support/gateway-fixture.ts';
import { auditRows, type AuditRow } from './support/audit-reader.ts';
import { close, listen } from './support/recording-mcp-server.ts';

// A test value with a valid checksum (not a real card).
const card = '4539 1488 0343 6467';
const maskedCard = '**** **** **** 6467';
const smallLimit = 65_536;
const defaultLimit = 4 * 1024 * 1024;
/** The upstream's timeout: an answer Envoy stalls on would come back only after it (504). */
const upstreamTimeoutMs = 10_000;
/** A refusal must not wait for anything. */
const promptMs = 5_000;

let gateway: GatewayFixture;
let upstream: Server;
const tokens: Record<string, string> = {};

/** `{"card":"<card>","pad":"aaa..."}` of exactly `bytes` bytes. */
function jsonOf(bytes: number): string {
  const head = `{"card":"${card}","pad":"`;
  return `${head}${'a'.repeat(bytes - head.length - 2)}"}`;
}

/** A JSON-RPC tools/call result of exactly `bytes` bytes, the card at its start. */
function resultOf(id: unknown, bytes: number): string {
  const head = `{"jsonrpc":"2.0","id":${JSON.stringify(id)},"result":{"content":[{"type":"text","text":"Card on file: ${card} `;
  return `${head}${'a'.repeat(bytes - head.length - 5)}"}]}}`;
}

/** Writes `text` with no content-length (chunked), in 16 KiB writes, `delayMs` apart (0: all at once). */
async function writeChunked(response: ServerResponse, text: string, delayMs: number): Promise<void> {
  response.writeHead(200, { 'content-type': 'application/json' });
  for (let at = 0; at < text.length; at += 16_384) {
    if (response.destroyed) return;
    response.write(text.slice(at, at + 16_384));
    if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
  }
  response.end();
}

/**
 * REST: GET /api/answer?bytes=N[&delay=ms] answers JSON of N bytes without a declared length.
 * MCP: tools/call read_big with arguments {bytes} answers a result of that many bytes the same way.
 */
function createSizedUpstream(): Server {
  return createServer(async (request, response) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    response.on('error', () => {});
    const url = new URL(request.url ?? '/', 'http://upstream');
    if (url.pathname === '/api/answer') {
      await writeChunked(response, jsonOf(Number(url.searchParams.get('bytes'))), Number(url.searchParams.get('delay') ?? 0));
      return;
    }
    const message = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as { id?: unknown; method?: string; params?: { arguments?: { bytes?: number } } };
    if (message.id === undefined) {
      response.writeHead(202).end();
      return;
    }
    if (message.method === 'tools/call') {
      await writeChunked(response, resultOf(message.id, message.params?.arguments?.bytes ?? 100), 0);
      return;
    }
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ jsonrpc: '2.0', id: message.id, result: {} }));
  });
}

before(async () => {
  upstream = createSizedUpstream();
  const port = await listen(upstream);
  gateway = await startGatewayFixture({ demo: false });
  const grants = [
    { upstream: 'archive-api', operations: [{ method: 'GET', path: '/answer' }] },
    { upstream: 'archive', tools: [{ name: 'read_big' }] },
  ];
  const dataProtection = { profiles: ['pci-dss'], defaultAction: 'mask' };
  await gateway.apply([
    { kind: 'Upstream', name: 'archive-api', protocol: 'rest', url: `http://127.0.0.1:${port}/api`, environment: 'production', timeoutMs: upstreamTimeoutMs },
    { kind: 'Upstream', name: 'archive', protocol: 'mcp', url: `http://127.0.0.1:${port}/mcp`, environment: 'production', timeoutMs: upstreamTimeoutMs },
    { kind: 'Persona', name: 'size-small', description: 'Reads answers of at most 64 KiB.', grants, dataProtection, maxBodyBytes: smallLimit },
    { kind: 'Persona', name: 'size-default', description: 'Reads answers up to the default 4 MiB.', grants, dataProtection },
    { kind: 'Persona', name: 'size-monitor', description: 'Same 64 KiB limit, monitored only.', mode: 'monitor', grants, dataProtection, maxBodyBytes: smallLimit },
  ]);
  for (const persona of ['size-small', 'size-default', 'size-monitor']) tokens[persona] = (await gateway.issueToken(persona, `${persona}-agent`)).token;
});

after(async () => {
  await gateway?.stop();
  if (upstream) await close(upstream);
});

async function getAnswer(persona: string, bytes: number, delayMs = 0): Promise<{ status: number; contentType: string; text: string; ms: number }> {
  const started = Date.now();
  const response = await fetch(`${gateway.gatewayUrl}/personas/${persona}/archive-api/answer?bytes=${bytes}&delay=${delayMs}`, { headers: { authorization: `Bearer ${tokens[persona]}` } });
  const text = await response.text();
  return { status: response.status, contentType: response.headers.get('content-type') ?? '', text, ms: Date.now() - started };
}

/** A 502 response_too_large problem document, given promptly, holding nothing of the answer. */
function assertRefusedTooLarge(answer: { status: number; contentType: string; text: string; ms: number }, limit: number, label: string): void {
  assert.equal(answer.status, 502, `${label}: ${answer.status} ${answer.text.slice(0, 200)}`);
  assert.match(answer.contentType, /^application\/problem\+json/, label);
  const problem = JSON.parse(answer.text) as { type: string; status: number; code: string; title: string; stage: string };
  assert.deepEqual([problem.type, problem.status, problem.code, problem.stage], ['https://mandate.dev/errors/response_too_large', 502, 'response_too_large', 'data-protection'], label);
  assert.match(problem.title, new RegExp(`this Persona reads at most ${limit} \\(maxBodyBytes\\)`), label);
  assert.ok(!answer.text.includes(card) && !answer.text.includes('aaaa'), `${label}: nothing of the answer reached the agent`);
  assert.ok(answer.ms < promptMs, `${label}: refused after ${answer.ms} ms`);
}

describe('an answer without a declared length, Persona limit 64 KiB', () => {
  test('exactly maxBodyBytes (65,536 bytes) is read whole and masked', async () => {
    for (const delay of [0, 10]) {
      const answer = await getAnswer('size-small', smallLimit, delay);
      assert.equal(answer.status, 200, `delay ${delay}: ${answer.text.slice(0, 200)}`);
      assert.equal(answer.text.length, smallLimit);
      assert.ok(!answer.text.includes(card) && answer.text.startsWith(`{"card":"${maskedCard}"`), `delay ${delay}`);
    }
  });

  test('one byte over, 200 KB, and 3 MB (far past Envoy\'s stream buffer) are refused with 502 response_too_large, written at once or slowly', async () => {
    for (const bytes of [smallLimit + 1, 200_000, 3_000_000]) {
      assertRefusedTooLarge(await getAnswer('size-small', bytes), smallLimit, `${bytes} bytes at once`);
    }
    for (const bytes of [smallLimit + 1, 1_200_000]) {
      assertRefusedTooLarge(await getAnswer('size-small', bytes, 5), smallLimit, `${bytes} bytes slowly`);
    }
  });

  test("the refusal is recorded in the call's response event, with the status the agent got", async () => {
    assertRefusedTooLarge(await getAnswer('size-small', 150_000), smallLimit, '150 KB');
    const refused = (r: AuditRow[]) => r.find((e) => e.kind === 'response' && e.body.reasons.some((reason) => reason.code === 'response_too_large'));
    const rows = await auditRows(gateway, 'size-small', (r) => Boolean(refused(r)));
    const response = refused(rows);
    assert.ok(response, 'a response event with the refusal');
    const body = response.body as AuditRow['body'] & { upstreamStatus: number; agentStatus?: number };
    assert.deepEqual([response.verdict, body.enforced, body.upstreamStatus, body.agentStatus], ['deny', true, 200, 502]);
  });

  test('an MCP tool result over the limit is refused with a JSON-RPC error naming response_too_large', async () => {
    const response = await fetch(`${gateway.gatewayUrl}/personas/size-small/archive`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${tokens['size-small']}`, 'mcp-protocol-version': '2025-06-18' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'read_big', arguments: { bytes: 100_000 } } }),
    });
    const text = await response.text();
    assert.equal(response.status, 200, text.slice(0, 200));
    assert.ok(!text.includes(card) && !text.includes('aaaa'), 'nothing of the result reached the agent');
    const error = (JSON.parse(text) as { id: number; error: { code: number; message: string; data: { mandate: { code: string } } } });
    assert.deepEqual([error.id, error.error.code, error.error.data.mandate.code], [7, -32001, 'response_too_large']);
    assert.match(error.error.message, /this Persona reads at most 65536/);
  });

  test('a monitor-mode Persona records the refusal and passes the answer', async () => {
    const answer = await getAnswer('size-monitor', 100_000);
    assert.equal(answer.status, 200);
    assert.equal(answer.text.length, 100_000);
    const recorded = (r: AuditRow[]) => r.find((e) => e.kind === 'response' && e.body.reasons.some((reason) => reason.code === 'response_too_large'));
    const response = recorded(await auditRows(gateway, 'size-monitor', (r) => Boolean(recorded(r))));
    assert.ok(response, 'a response event with the refusal');
    assert.equal(response.body.enforced, false);
  });
});

describe('an answer without a declared length, default limit (4 MiB)', () => {
  test('exactly 4 MiB is read whole and masked; one byte over and 6 MB are refused with 502 response_too_large', async () => {
    const whole = await getAnswer('size-default', defaultLimit);
    assert.equal(whole.status, 200, whole.text.slice(0, 200));
    assert.equal(whole.text.length, defaultLimit);
    assert.ok(!whole.text.includes(card) && whole.text.startsWith(`{"card":"${maskedCard}"`));
    for (const bytes of [defaultLimit + 1, 6_000_000]) {
      assertRefusedTooLarge(await getAnswer('size-default', bytes), defaultLimit, `${bytes} bytes`);
    }
  });
});
