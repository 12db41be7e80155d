// The data path never crashes on a request: random and malformed Envoy messages,
// in random orders, through a processor with every stage on. Each message gets
// at most one well-formed answer, and nothing throws. Seeded, so a failure repeats.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { configBundleSchema } from '../config/bundle.ts';
import { FlowTracker } from './dlp/flow.ts';
import type { ProcessingRequest, ProcessingResponse } from './envoy-messages.ts';
import { compilePolicy } from './policy/compile-policy.ts';
import { handleNow } from './processor-fixtures.ts';
import { createStreamProcessor } from './processor.ts';
import { MemoryAlertSink } from './sequence/alerts.ts';
import { createBehaviourEngine } from './sequence/engine.ts';
import { InMemorySessionStateStore } from './sequence/state-store.ts';

const secret = 'B'.repeat(43);
const token = `mnd_00000000000a_${secret}`;

function random(seed: number) {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, int: (n: number) => Math.floor(next() * n), pick: <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]! };
}

const bundle = configBundleSchema.parse({
  upstreams: [
    { kind: 'Upstream', name: 'tools', protocol: 'mcp', url: 'http://127.0.0.1:1/mcp' },
    { kind: 'Upstream', name: 'api', protocol: 'rest', url: 'http://127.0.0.1:1/api' },
  ],
  personas: [
    {
      kind: 'Persona',
      name: 'p',
      description: 'fuzz',
      grants: [
        { upstream: 'tools', tools: [{ name: 'read_*' }, { name: 'send_email', when: "args.to.endsWith('@example.com')" }] },
        { upstream: 'api', operations: [{ method: 'GET', path: '/items/{id}' }, { method: 'POST', path: '/items', when: "body.kind == 'note'" }] },
      ],
      dataProtection: { profiles: ['pci-dss', 'secrets'] },
      behaviour: {},
    },
  ],
});
const credential = { id: '00000000000a', agent: 'fuzzer', persona: 'p', secretHash: createHash('sha256').update(secret).digest('hex'), createdAt: '2026-01-01T00:00:00Z', expiresAt: null };
const compiled = compilePolicy({ version: 1, createdAt: '2026-01-01T00:00:00Z', bundle, credentials: [credential], upstreamCredentials: {} }, { fingerprintKey: Buffer.alloc(32, 7) });
assert.ok(compiled.ok);
const policy = compiled.policy;

const bodies = [
  '',
  '{',
  'null',
  '[]',
  '[1,2]',
  '"x"',
  '{"jsonrpc":"2.0"}',
  '{"jsonrpc":"2.0","id":1,"method":"tools/call"}',
  '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"/etc/passwd"}}}',
  '{"jsonrpc":"2.0","id":{"a":1},"method":"tools/call","params":{"name":5}}',
  '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"send_email","arguments":{"to":7}}}',
  '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"send_email","arguments":{"to":"a@example.com","body":"card 4539 1488 0343 6467"}}}',
  '[{"jsonrpc":"2.0","id":4,"method":"tools/list"},{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","id":"s","result":{}}]',
  '{"jsonrpc":"2.0","id":5,"method":"tools/list","params":null}',
  '{"kind":"note","text":"ghp_' + 'a'.repeat(36) + '"}',
  '\u0000\u0001\u00ff binary',
  '{"jsonrpc":"2.0","id":6,"result":{"tools":[{"name":"read_x","inputSchema":{}},{"name":"rm","inputSchema":{}},7,null]}}',
  'event: message\ndata: {"jsonrpc":"2.0","id":4,"result":{"tools":[{"name":"rm"}]}}\n\n',
  'data: {"jsonrpc":"2.0","id":9,"result":{"content":[{"type":"text","text":"4539 1488',
  ' 0343 6467"}]}}\n\n',
  'x'.repeat(70_000),
];
const paths = ['/personas/p/tools', '/personas/p/api/items/1', '/personas/p/api/items', '/personas/p/api/../admin', '/personas/p/api/%zz', '/elsewhere', '', '/personas/p/api/items/1?x=%', '/personas/p/api/items?kind=note&kind=x', `/personas/p/api/items?token=ghp_${'a'.repeat(36)}&card=4539%201488%200343%206467&card=x`, '/personas/p/api/items?%F0%9F=%ZZ&=&&a=b=c&key=AKIAIOSFODNN7EXAMPLE'];
const methods = ['GET', 'POST', 'DELETE', 'PUT', 'OPTIONS', '', 'HEAD'];
const contentTypes = ['application/json', 'text/event-stream', 'text/plain', '', 'application/json; charset=utf-8', 'application/problem+json'];
const phases = ['request_headers', 'request_body', 'response_headers', 'response_body', 'request_trailers', 'response_trailers', undefined, 'bogus'] as const;
const routes = [
  { persona: 'p', upstream: 'tools', kind: 'mcp' as const, pathPrefix: '/personas/p/tools', configVersion: 1 },
  { persona: 'p', upstream: 'api', kind: 'rest' as const, pathPrefix: '/personas/p/api', configVersion: 1 },
  { persona: 'gone', upstream: 'tools', kind: 'mcp' as const, pathPrefix: '/personas/gone/tools', configVersion: 1 },
  null,
];
const responseKeys = ['request_headers', 'response_headers', 'request_body', 'response_body', 'request_trailers', 'response_trailers', 'immediate_response'];

function headerList(r: ReturnType<typeof random>, extra: Record<string, string>) {
  const entries: { key: string; value?: string; raw_value?: Buffer }[] = Object.entries(extra).map(([key, value]) => ({ key, raw_value: Buffer.from(value, 'latin1') }));
  if (r.next() < 0.2) entries.push({ key: r.pick(['mcp-method', 'mcp-name', 'mcp-protocol-version', 'mcp-session-id']), value: r.pick(['tools/call', 'read_x', '2026-07-28', '2025-03-26', '']) });
  if (r.next() < 0.1) entries.push({ key: 'authorization', value: r.pick(['Bearer', 'Bearer mnd_', `Bearer ${token}x`, 'Basic x']) });
  return { headers: entries };
}

function randomMessage(r: ReturnType<typeof random>): ProcessingRequest {
  const phase = r.pick(phases);
  const body = Buffer.from(r.pick(bodies), 'utf8');
  const endOfStream = r.next() < 0.6;
  switch (phase) {
    case 'request_headers':
      return {
        request: phase,
        request_headers: {
          headers: headerList(r, {
            ':method': r.pick(methods),
            ':path': r.pick(paths),
            'content-type': r.pick(contentTypes),
            ...(r.next() < 0.8 ? { authorization: `Bearer ${token}` } : {}),
          }),
          end_of_stream: r.next() < 0.2,
        },
        ...(r.next() < 0.3 ? { attributes: [{ key: 'envoy.filters.http.ext_proc', value: { fields: [{ key: 'source.address', value: { string_value: '127.0.0.1:1' } }] } }] } : {}),
      };
    case 'response_headers':
      return { request: phase, response_headers: { headers: headerList(r, { ':status': r.pick(['200', '500', '202', 'abc', '']), 'content-type': r.pick(contentTypes) }), end_of_stream: r.next() < 0.2 } };
    case 'request_body':
      return { request: phase, request_body: { body, end_of_stream: endOfStream } };
    case 'response_body':
      return { request: phase, response_body: { body, end_of_stream: endOfStream } };
    default:
      return { request: phase as ProcessingRequest['request'], observability_mode: r.next() < 0.05 };
  }
}

function assertWellFormed(response: ProcessingResponse | null, context: string): void {
  if (response === null) return;
  const keys = Object.keys(response).filter((k) => k !== 'mode_override');
  assert.equal(keys.length, 1, `${context}: exactly one answer, got ${keys.join(',')}`);
  assert.ok(responseKeys.includes(keys[0]!), `${context}: unknown answer ${keys[0]}`);
  const immediate = response.immediate_response;
  if (immediate) {
    assert.ok(immediate.status.code >= 200 && immediate.status.code < 600, `${context}: status ${immediate.status.code}`);
    assert.ok(Buffer.isBuffer(immediate.body));
  }
}

test('20,000 random streams: no throw, one well-formed answer per message', () => {
  let answered = 0;
  for (let stream = 0; stream < 20_000; stream++) {
    const r = random(stream + 1);
    const decisions: unknown[] = [];
    const processor = createStreamProcessor(r.pick(routes), {
      currentPolicy: () => (r.next() < 0.05 ? null : policy),
      audit: {
        decision: (d) => {
          if (r.next() < 0.02) throw new Error('audit backlog full');
          decisions.push(d);
        },
        outcome: () => {},
      },
      now: () => performance.now(),
      wallClock: () => Date.now(),
      flow: new FlowTracker({ now: () => Date.now(), maxFingerprintsPerSession: 64, ttlMs: 60_000, gradualCollectionThreshold: 50 }),
      behaviour: createBehaviourEngine({ clock: () => Date.now(), store: new InMemorySessionStateStore(), alertSink: new MemoryAlertSink() }),
    });
    // A plausible start most of the time, then anything in any order.
    const messages: ProcessingRequest[] = [];
    const length = 1 + r.int(6);
    for (let i = 0; i < length; i++) messages.push(randomMessage(r));
    if (r.next() < 0.7) messages.unshift({ request: 'request_headers', request_headers: { headers: headerList(r, { ':method': 'POST', ':path': '/personas/p/tools', 'content-type': 'application/json', authorization: `Bearer ${token}` }) } });
    for (const [index, message] of messages.entries()) {
      const context = `seed ${stream + 1}, message ${index} (${message.request})`;
      let response: ProcessingResponse | null;
      try {
        response = handleNow(processor, message);
      } catch (error) {
        assert.fail(`${context}: threw ${(error as Error).stack}`);
      }
      assertWellFormed(response, context);
      if (response) answered += 1;
    }
    processor.finish();
    processor.finish();
  }
  assert.ok(answered > 20_000, `answered ${answered} messages`);
});
