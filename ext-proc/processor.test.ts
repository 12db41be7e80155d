// The processor without Envoy: Envoy's messages in, ProcessingResponses out,
// for the stage wiring that the end-to-end suites cannot observe directly
// (chunk-by-chunk output of a streamed result, the rewritten request body).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { configBundleSchema } from '../config/bundle.ts';
import type { Decision } from './decision/decision.ts';
import { FlowTracker } from './dlp/flow.ts';
import type { ProcessingRequest, ProcessingResponse } from './envoy-messages.ts';
import { compilePolicy, type CompiledPolicy } from './policy/compile-policy.ts';
import { handleNow } from './processor-fixtures.ts';
import { createStreamProcessor, type ProcessorDependencies } from './processor.ts';
import { MemoryAlertSink } from './sequence/alerts.ts';
import { createBehaviourEngine } from './sequence/engine.ts';
import { InMemorySessionStateStore } from './sequence/state-store.ts';

const secret = 'A'.repeat(43);
const token = `mnd_0123456789ab_${secret}`;
const card = '4539 1488 0343 6467';

function policyWith(persona: Record<string, unknown>): CompiledPolicy {
  return withBundle(
    configBundleSchema.parse({
      upstreams: [{ kind: 'Upstream', name: 'billing', protocol: 'mcp', url: 'http://127.0.0.1:1/mcp' }],
      personas: [{ kind: 'Persona', name: 'p', description: 'test', grants: [{ upstream: 'billing', tools: [{ name: '*' }] }], ...persona }],
    }),
  );
}

/** The bundle compiled at version 1, with agent-1's credential for Persona p. */
function withBundle(bundle: ReturnType<typeof configBundleSchema.parse>): CompiledPolicy {
  const credential = { id: '0123456789ab', agent: 'agent-1', persona: 'p', secretHash: createHash('sha256').update(secret).digest('hex'), createdAt: '2026-01-01T00:00:00Z', expiresAt: null };
  const compiled = compilePolicy({ version: 1, createdAt: '2026-01-01T00:00:00Z', bundle, credentials: [credential], upstreamCredentials: {} }, { fingerprintKey: Buffer.alloc(32, 1) });
  assert.ok(compiled.ok);
  return compiled.policy;
}

/** Persona p reads the production MCP upstream billing and may GET /notes on the development REST upstream devbox. */
function billingAndDevbox(mode: 'enforce' | 'monitor', dataProtection: Record<string, unknown>, devbox: Record<string, unknown> = {}): CompiledPolicy {
  return withBundle(
    configBundleSchema.parse({
      upstreams: [
        { kind: 'Upstream', name: 'billing', protocol: 'mcp', url: 'http://127.0.0.1:1/mcp' },
        { kind: 'Upstream', name: 'devbox', protocol: 'rest', url: 'http://127.0.0.1:2/api', environment: 'development', ...devbox },
      ],
      personas: [
        {
          kind: 'Persona',
          name: 'p',
          description: 'test',
          mode,
          grants: [{ upstream: 'billing', tools: [{ name: '*' }] }, { upstream: 'devbox', operations: [{ method: 'GET', path: '/notes' }] }],
          dataProtection,
        },
      ],
    }),
  );
}

function deps(policy: CompiledPolicy, decisions: Decision[] = []): ProcessorDependencies {
  return {
    currentPolicy: () => policy,
    audit: { decision: (d) => decisions.push(d), outcome: () => {} },
    now: () => performance.now(),
    wallClock: () => Date.now(),
    flow: new FlowTracker({ now: () => Date.now(), maxFingerprintsPerSession: 64, ttlMs: 60_000, gradualCollectionThreshold: 50 }),
    behaviour: createBehaviourEngine({ clock: () => Date.now(), store: new InMemorySessionStateStore(), alertSink: new MemoryAlertSink() }),
  };
}

const headers = (entries: Record<string, string>) => ({ headers: { headers: Object.entries(entries).map(([key, value]) => ({ key, value })) } });
const route = { persona: 'p', upstream: 'billing', kind: 'mcp' as const, pathPrefix: '/personas/p/billing', configVersion: 1 };

function startToolCall(processor: ReturnType<typeof createStreamProcessor>, args: unknown): ProcessingResponse | null {
  handleNow(processor, { request: 'request_headers', request_headers: { ...headers({ ':method': 'POST', ':path': '/personas/p/billing', 'content-type': 'application/json', authorization: `Bearer ${token}` }) } });
  const body = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name: 'save_note', arguments: args } }));
  return handleNow(processor, { request: 'request_body', request_body: { body, end_of_stream: true } });
}

test('a streamed result is held only until the split value is whole, then sent masked', () => {
  const processor = createStreamProcessor(route, deps(policyWith({ dataProtection: { profiles: ['pci-dss'] } })));
  startToolCall(processor, {});
  const onHeaders = handleNow(processor, { request: 'response_headers', response_headers: headers({ ':status': '200', 'content-type': 'text/event-stream' }) } as ProcessingRequest);
  assert.equal(onHeaders?.mode_override?.response_body_mode, 'STREAMED');
  const event = `event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', id: 9, result: { content: [{ type: 'text', text: `card ${card}` }] } })}\n\n`;
  const cut = event.indexOf(card) + 7;
  const first = handleNow(processor, { request: 'response_body', response_body: { body: Buffer.from(event.slice(0, cut)), end_of_stream: false } });
  const firstOut = first?.response_body?.response?.body_mutation;
  assert.ok(firstOut && 'clear_body' in firstOut, 'nothing of the incomplete event is released');
  const second = handleNow(processor, { request: 'response_body', response_body: { body: Buffer.from(event.slice(cut)), end_of_stream: true } });
  const secondOut = second?.response_body?.response?.body_mutation;
  assert.ok(secondOut && 'body' in secondOut);
  const text = secondOut.body.toString('utf8');
  assert.ok(!text.includes(card));
  assert.match(text, /"card \*\*\*\* \*\*\*\* \*\*\*\* 6467"/);
});

test('masked arguments replace the request body, with the new content length', () => {
  const decisions: Decision[] = [];
  const processor = createStreamProcessor(route, deps(policyWith({ dataProtection: { profiles: ['pci-dss'] } }), decisions));
  const response = startToolCall(processor, { note: `pay with ${card}`, id: 'x' });
  const mutation = response?.request_body?.response;
  assert.ok(mutation?.body_mutation && 'body' in mutation.body_mutation);
  const forwarded = JSON.parse(mutation.body_mutation.body.toString('utf8'));
  assert.deepEqual(forwarded.params.arguments, { note: 'pay with **** **** **** 6467', id: 'x' });
  assert.equal(forwarded.id, 9);
  const length = mutation.header_mutation?.set_headers?.find((h) => h.header.key === 'content-length');
  assert.equal(length?.header.raw_value.toString(), String(mutation.body_mutation.body.length));
  assert.deepEqual(decisions.at(-1)!.findings.map((f) => [f.detector, f.action, f.direction]), [['payment-card-visa', 'mask', 'request']]);
});

test('without data protection or behaviour, tool results are not asked for', () => {
  const processor = createStreamProcessor(route, deps(policyWith({})));
  const response = startToolCall(processor, { note: `pay with ${card}` });
  assert.deepEqual(response, { request_body: { response: { status: 'CONTINUE' } } });
  const onHeaders = handleNow(processor, { request: 'response_headers', response_headers: headers({ ':status': '200', 'content-type': 'application/json' }) } as ProcessingRequest);
  assert.equal(onHeaders?.mode_override, undefined);
});

test('a session that reads many distinct card numbers is signalled to the behaviour stage, whose rule then stops egress', async () => {
  const { luhnCheckDigit } = await import('./dlp/checksums.ts');
  const policy = policyWith({
    dataProtection: { profiles: ['pci-dss'], flow: { enabled: true } },
    behaviour: { rules: [{ name: 'collector-egress', steps: [{ match: { class: ['egress'], when: '"gradual_collection" in signals' } }], action: 'block' }] },
  });
  const alerts = new MemoryAlertSink();
  const dependencies = { ...deps(policy), behaviour: createBehaviourEngine({ clock: () => Date.now(), store: new InMemorySessionStateStore(), alertSink: alerts }) };
  const call = (tool: string) => {
    const processor = createStreamProcessor(route, dependencies);
    handleNow(processor, { request: 'request_headers', request_headers: { ...headers({ ':method': 'POST', ':path': '/personas/p/billing', 'content-type': 'application/json', authorization: `Bearer ${token}` }) } });
    const body = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: tool, arguments: {} } }));
    return { processor, answer: handleNow(processor, { request: 'request_body', request_body: { body, end_of_stream: true } }) };
  };
  assert.deepEqual(call('send_email').answer, { request_body: { response: { status: 'CONTINUE' } } }, 'egress is allowed before the session collected anything');

  const cards = Array.from({ length: 60 }, (_, i) => {
    const partial = `453914880${String(100000 + i)}`;
    return partial + luhnCheckDigit(partial);
  });
  const { processor } = call('list_customers');
  handleNow(processor, { request: 'response_headers', response_headers: headers({ ':status': '200', 'content-type': 'application/json' }) } as ProcessingRequest);
  const result = { jsonrpc: '2.0', id: 1, result: { content: [{ type: 'text', text: JSON.stringify(cards.map((card, i) => ({ customer: i, card }))) }] } };
  const masked = handleNow(processor, { request: 'response_body', response_body: { body: Buffer.from(JSON.stringify(result)), end_of_stream: true } });
  const mutation = masked?.response_body?.response?.body_mutation;
  assert.ok(mutation && 'body' in mutation && !mutation.body.toString().includes(cards[0]!), 'the cards are masked on the way to the agent');
  processor.finish();
  assert.deepEqual(alerts.alerts.map((a) => [a.action, a.reasons[0]?.code]), [['alert', 'gradual_collection']]);

  const refused = call('send_email').answer;
  assert.ok(refused?.immediate_response, 'egress after gradual collection is refused');
  assert.match(String(refused.immediate_response.body), /collector-egress/);
});

test('every answer is inspected, not only tool results: a task result carrying a card number is masked', () => {
  const processor = createStreamProcessor(route, deps(policyWith({ dataProtection: { profiles: ['pci-dss'] } })));
  handleNow(processor, { request: 'request_headers', request_headers: { ...headers({ ':method': 'POST', ':path': '/personas/p/billing', 'content-type': 'application/json', authorization: `Bearer ${token}` }) } });
  const body = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 'poll-1', method: 'tasks/result', params: { taskId: 't-1' } }));
  assert.deepEqual(handleNow(processor, { request: 'request_body', request_body: { body, end_of_stream: true } }), { request_body: { response: { status: 'CONTINUE' } } });
  const onHeaders = handleNow(processor, { request: 'response_headers', response_headers: headers({ ':status': '200', 'content-type': 'application/json' }) } as ProcessingRequest);
  assert.equal(onHeaders?.mode_override?.response_body_mode, 'BUFFERED', 'the answer to tasks/result is asked for');
  const result = { jsonrpc: '2.0', id: 'poll-1', result: { content: [{ type: 'text', text: `card ${card}` }] } };
  const answer = handleNow(processor, { request: 'response_body', response_body: { body: Buffer.from(JSON.stringify(result)), end_of_stream: true } });
  const mutation = answer?.response_body?.response?.body_mutation;
  assert.ok(mutation && 'body' in mutation);
  const forwarded = JSON.parse(mutation.body.toString('utf8'));
  assert.equal(forwarded.id, 'poll-1');
  assert.equal(forwarded.result.content[0].text, 'card **** **** **** 6467');
});

test('a JSON-lines response is masked as it streams, a card split across chunks included; XML is read whole', () => {
  const processor = createStreamProcessor(route, deps(policyWith({ dataProtection: { profiles: ['pci-dss'] } })));
  startToolCall(processor, {});
  const onHeaders = handleNow(processor, { request: 'response_headers', response_headers: headers({ ':status': '200', 'content-type': 'application/x-ndjson' }) } as ProcessingRequest);
  assert.equal(onHeaders?.mode_override?.response_body_mode, 'STREAMED', 'never buffered whole');
  const lines = Array.from({ length: 20 }, (_, i) => JSON.stringify({ row: i, note: i === 12 ? `card ${card}` : 'nothing to see here' })).join('\n') + '\n';
  const cut = lines.indexOf(card) + 9;
  const out: string[] = [];
  for (const [piece, last] of [[lines.slice(0, cut), false], [lines.slice(cut), true]] as const) {
    const answer = handleNow(processor, { request: 'response_body', response_body: { body: Buffer.from(piece), end_of_stream: last } });
    const mutation = answer?.response_body?.response?.body_mutation;
    assert.ok(mutation);
    out.push('body' in mutation ? mutation.body.toString('utf8') : '');
  }
  assert.ok(out[0]!.length > 0, 'the lines before the split value flow at once');
  assert.ok(!out[0]!.includes('4539'), 'no part of the split card is released early');
  const all = out.join('');
  assert.ok(!all.includes(card));
  assert.equal(all.split('\n').filter(Boolean).map((l) => JSON.parse(l)).find((r) => r.row === 12)?.note, 'card **** **** **** 6467');

  const xml = createStreamProcessor(route, deps(policyWith({ dataProtection: { profiles: ['pci-dss'] } })));
  startToolCall(xml, {});
  const xmlHeaders = handleNow(xml, { request: 'response_headers', response_headers: headers({ ':status': '200', 'content-type': 'application/soap+xml; charset=utf-8' }) } as ProcessingRequest);
  assert.equal(xmlHeaders?.mode_override?.response_body_mode, 'BUFFERED');
  const xmlAnswer = handleNow(xml, { request: 'response_body', response_body: { body: Buffer.from(`<account><card>${card}</card></account>`), end_of_stream: true } });
  const xmlMutation = xmlAnswer?.response_body?.response?.body_mutation;
  assert.ok(xmlMutation && 'body' in xmlMutation);
  assert.equal(xmlMutation.body.toString('utf8'), '<account><card>**** **** **** 6467</card></account>');
});

test('a blocked value in a JSON-lines stream ends the stream with one error line in its place; the lines before it go out', () => {
  const processor = createStreamProcessor(route, deps(policyWith({ dataProtection: { profiles: ['pci-dss'], rules: [{ groups: ['financial'], direction: 'response', action: 'block' }] } })));
  startToolCall(processor, {});
  handleNow(processor, { request: 'response_headers', response_headers: headers({ ':status': '200', 'content-type': 'application/jsonl' }) } as ProcessingRequest);
  const head = Array.from({ length: 10 }, (_, i) => JSON.stringify({ row: i })).join('\n') + '\n';
  const first = handleNow(processor, { request: 'response_body', response_body: { body: Buffer.from(head + JSON.stringify({ row: 10, card }) + '\n' + ' '.repeat(400)), end_of_stream: false } });
  const firstMutation = first?.response_body?.response?.body_mutation;
  assert.ok(firstMutation && 'body' in firstMutation);
  const text = firstMutation.body.toString('utf8');
  assert.ok(!text.includes(card) && !text.includes('4539'));
  const lines = text.trim().split('\n');
  assert.deepEqual(lines.slice(0, -1).map((l) => JSON.parse(l).row), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 'the lines before the blocked one still go out, whole');
  assert.equal(JSON.parse(lines.at(-1)!).error.code, 'sensitive_data_blocked');
  const rest = handleNow(processor, { request: 'response_body', response_body: { body: Buffer.from(JSON.stringify({ row: 11 }) + '\n'), end_of_stream: true } });
  assert.deepEqual(rest?.response_body?.response?.body_mutation, { clear_body: true }, 'nothing after the refusal');
});

test('the upstream is never invited to compress: accept-encoding and the agent credential are removed on the way', () => {
  const processor = createStreamProcessor(route, deps(policyWith({})));
  const onHeaders = handleNow(processor, {
    request: 'request_headers',
    request_headers: { ...headers({ ':method': 'POST', ':path': '/personas/p/billing', 'content-type': 'application/json', 'accept-encoding': 'gzip, br', authorization: `Bearer ${token}` }) },
  });
  assert.deepEqual(onHeaders?.request_headers?.response?.header_mutation?.remove_headers, ['authorization', 'accept-encoding']);
});

test('headers the upstream does not list are dropped; a listed one is inspected and its findings join the first decision', () => {
  const bundle = configBundleSchema.parse({
    upstreams: [{ kind: 'Upstream', name: 'billing', protocol: 'mcp', url: 'http://127.0.0.1:1/mcp', forwardHeaders: ['x-note'] }],
    personas: [{ kind: 'Persona', name: 'p', description: 'test', grants: [{ upstream: 'billing', tools: [{ name: '*' }] }], dataProtection: { profiles: ['pci-dss'] } }],
  });
  const decisions: Decision[] = [];
  const processor = createStreamProcessor(route, deps(withBundle(bundle), decisions));
  const onHeaders = handleNow(processor, {
    request: 'request_headers',
    request_headers: { ...headers({ ':method': 'POST', ':path': '/personas/p/billing', 'content-type': 'application/json', authorization: `Bearer ${token}`, 'x-note': `card ${card}`, 'x-other': card, 'x-http-method-override': 'DELETE', traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' }) },
  });
  const mutation = onHeaders?.request_headers?.response?.header_mutation;
  assert.deepEqual(new Set(mutation?.remove_headers), new Set(['authorization', 'accept-encoding', 'x-other', 'x-http-method-override']));
  const set = Object.fromEntries((mutation?.set_headers ?? []).map((h) => [h.header.key, Buffer.from(h.header.raw_value!).toString('latin1')]));
  assert.deepEqual(set, { 'x-note': 'card **** **** **** 6467' }, 'the listed header is masked; traceparent passes as it is');
  const body = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name: 'save_note', arguments: {} } }));
  handleNow(processor, { request: 'request_body', request_body: { body, end_of_stream: true } });
  assert.equal(decisions.length, 1);
  assert.deepEqual(decisions[0]!.findings.map((f) => [f.detector, f.location, f.action]), [['payment-card-visa', 'headers["x-note"]', 'mask']]);
});

test('a value read in the session cannot leave in a header for a development upstream; in monitor mode it is recorded, not refused', () => {
  for (const mode of ['enforce', 'monitor'] as const) {
    const policy = billingAndDevbox(mode, { profiles: ['pci-dss'], defaultAction: 'detect', flow: { enabled: true } }, { forwardHeaders: ['x-note'] });
    const decisions: Decision[] = [];
    const dependencies = deps(policy, decisions);
    const read = createStreamProcessor(route, dependencies);
    startToolCall(read, {});
    handleNow(read, { request: 'response_headers', response_headers: headers({ ':status': '200', 'content-type': 'application/json' }) } as ProcessingRequest);
    handleNow(read, { request: 'response_body', response_body: { body: Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 9, result: { content: [{ type: 'text', text: `card ${card}` }] } })), end_of_stream: true } });
    const devRoute = { persona: 'p', upstream: 'devbox', kind: 'rest' as const, pathPrefix: '/personas/p/devbox', configVersion: 1 };
    const send = createStreamProcessor(devRoute, dependencies);
    const answer = handleNow(send, { request: 'request_headers', request_headers: { ...headers({ ':method': 'GET', ':path': '/personas/p/devbox/notes', authorization: `Bearer ${token}`, 'x-note': card }), end_of_stream: true } });
    const last = decisions.at(-1)!;
    if (mode === 'enforce') {
      assert.equal(answer?.immediate_response?.status?.code, 403);
      assert.equal(last.reasons[0]!.code, 'sensitive_data_flow_blocked');
    } else {
      assert.equal(answer?.immediate_response, undefined, 'monitor mode forwards');
      assert.equal(last.verdict, 'allow');
      assert.ok(last.reasons.some((r) => r.code === 'sensitive_data_flow_blocked'), 'and records what it would have refused');
    }
    assert.deepEqual(last.findings.map((f) => f.location), ['headers["x-note"]']);
  }
});

test('a REST query parameter named __proto__ is inspected and masked like any other', () => {
  const bundle = configBundleSchema.parse({
    upstreams: [{ kind: 'Upstream', name: 'notes', protocol: 'rest', url: 'http://127.0.0.1:2/api' }],
    personas: [{ kind: 'Persona', name: 'p', description: 'test', grants: [{ upstream: 'notes', operations: [{ method: 'GET', path: '/notes' }] }], dataProtection: { profiles: ['pci-dss'] } }],
  });
  const decisions: Decision[] = [];
  const restRoute = { persona: 'p', upstream: 'notes', kind: 'rest' as const, pathPrefix: '/personas/p/notes', configVersion: 1 };
  const processor = createStreamProcessor(restRoute, deps(withBundle(bundle), decisions));
  const digits = card.replaceAll(' ', '');
  const answer = handleNow(processor, { request: 'request_headers', request_headers: { ...headers({ ':method': 'GET', ':path': `/personas/p/notes/notes?__proto__=${digits}&q=1`, authorization: `Bearer ${token}` }), end_of_stream: true } });
  const path = answer?.request_headers?.response?.header_mutation?.set_headers?.find((h) => h.header.key === ':path');
  assert.ok(path, 'the query was rewritten');
  const rewritten = Buffer.from(path.header.raw_value!).toString('latin1');
  assert.equal(rewritten.includes(digits), false, rewritten);
  assert.equal(new URL(rewritten, 'http://x').searchParams.get('__proto__'), '************6467');
  assert.deepEqual(decisions.at(-1)!.findings.map((f) => f.detector), ['payment-card-visa']);
});

test('a CEL condition reads the fields of an HTML form body like a JSON body', () => {
  const bundle = configBundleSchema.parse({
    upstreams: [{ kind: 'Upstream', name: 'notes', protocol: 'rest', url: 'http://127.0.0.1:2/api' }],
    personas: [{ kind: 'Persona', name: 'p', description: 'test', grants: [{ upstream: 'notes', operations: [{ method: 'POST', path: '/refunds', when: "body.currency == 'EUR'" }] }] }],
  });
  const restRoute = { persona: 'p', upstream: 'notes', kind: 'rest' as const, pathPrefix: '/personas/p/notes', configVersion: 1 };
  for (const [form, allowed] of [['amount=5&currency=EUR', true], ['amount=5&currency=USD', false], ['currency=EUR&currency=USD', false]] as const) {
    const processor = createStreamProcessor(restRoute, deps(withBundle(bundle)));
    handleNow(processor, { request: 'request_headers', request_headers: { ...headers({ ':method': 'POST', ':path': '/personas/p/notes/refunds', 'content-type': 'application/x-www-form-urlencoded', authorization: `Bearer ${token}` }) } });
    const answer = handleNow(processor, { request: 'request_body', request_body: { body: Buffer.from(form), end_of_stream: true } });
    assert.equal(answer?.immediate_response === undefined, allowed, form);
  }
});

test('answer headers: a card is remembered for data-flow control; in monitor mode a blocked header is recorded and passes unchanged', () => {
  for (const mode of ['enforce', 'monitor'] as const) {
    const policy = billingAndDevbox(mode, { profiles: ['pci-dss'], rules: [{ groups: ['financial'], direction: 'response', action: 'block' }], flow: { enabled: true } });
    const decisions: Decision[] = [];
    const dependencies = deps(policy, decisions);
    const processor = createStreamProcessor(route, dependencies);
    startToolCall(processor, {});
    const answer = handleNow(processor, { request: 'response_headers', response_headers: headers({ ':status': '200', 'content-type': 'application/json', 'x-card': card }) } as ProcessingRequest);
    if (mode === 'enforce') {
      assert.equal(answer?.immediate_response?.status?.code, 200, 'MCP: the answer becomes a JSON-RPC error');
      assert.match(String(answer?.immediate_response?.body), /sensitive_data_blocked/);
    } else {
      assert.equal(answer?.immediate_response, undefined);
      assert.equal(answer?.response_headers?.response?.header_mutation?.set_headers?.some((h) => h.header.key === 'x-card'), false, 'monitor mode changes nothing');
      assert.ok(decisions.some((d) => d.enforced === false && d.reasons[0]?.code === 'sensitive_data_blocked'));
    }
    // Either way the card was revealed to the session: sending it to a development upstream is a flow.
    const devRoute = { persona: 'p', upstream: 'devbox', kind: 'rest' as const, pathPrefix: '/personas/p/devbox', configVersion: 1 };
    const send = createStreamProcessor(devRoute, dependencies);
    const sent = handleNow(send, { request: 'request_headers', request_headers: { ...headers({ ':method': 'GET', ':path': `/personas/p/devbox/notes?q=${encodeURIComponent(card)}`, authorization: `Bearer ${token}` }), end_of_stream: true } });
    assert.ok(decisions.at(-1)!.reasons.some((r) => r.code === 'sensitive_data_flow_blocked'), mode);
    assert.equal(sent?.immediate_response?.status?.code, mode === 'enforce' ? 403 : undefined);
  }
});

test('a batch: the tool arguments and a notification are masked in place, each in its own part of the body', () => {
  const processor = createStreamProcessor(route, deps(policyWith({ dataProtection: { profiles: ['pci-dss'] } })));
  handleNow(processor, { request: 'request_headers', request_headers: { ...headers({ ':method': 'POST', ':path': '/personas/p/billing', 'content-type': 'application/json', authorization: `Bearer ${token}`, 'mcp-protocol-version': '2025-03-26' }) } });
  const batch = [
    { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'save_note', arguments: { note: `card ${card}` } } },
    { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 0, reason: `card ${card}` } },
    { jsonrpc: '2.0', id: 'srv-1', result: { content: { text: 'nothing here' } } },
  ];
  const answer = handleNow(processor, { request: 'request_body', request_body: { body: Buffer.from(JSON.stringify(batch)), end_of_stream: true } });
  const mutation = answer?.request_body?.response?.body_mutation;
  assert.ok(mutation && 'body' in mutation);
  const forwarded = JSON.parse(Buffer.from(mutation.body!).toString('utf8')) as typeof batch;
  assert.equal((forwarded[0]!.params as { arguments: { note: string } }).arguments.note, 'card **** **** **** 6467');
  assert.equal((forwarded[1]!.params as { reason: string }).reason, 'card **** **** **** 6467');
  assert.deepEqual(forwarded[2], batch[2], 'a clean message is forwarded as it was');
});

test('a whole answer over the worker threshold is inspected on the worker thread, with the answer inline inspection gives; a failed worker falls back to inline', async () => {
  const { createBodyInspectionPool } = await import('./dlp/body-inspection.ts');
  const policy = policyWith({ dataProtection: { profiles: ['pci-dss', 'secrets'], flow: { enabled: true } } });
  const rows = Array.from({ length: 400 }, (_, i) => ({ id: i, name: `Customer ${i}`, card: i % 3 === 0 ? card : `order ${1000 + i}`, key: i % 50 === 0 ? 'AKIAZ3MQ7HW2XK4JLP5R' : 'none' }));
  const result = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 9, result: { content: [{ type: 'text', text: JSON.stringify(rows) }] } }));
  const answer = async (dependencies: ProcessorDependencies) => {
    const processor = createStreamProcessor(route, dependencies);
    startToolCall(processor, { customer: 'all' });
    handleNow(processor, { request: 'response_headers', response_headers: headers({ ':status': '200', 'content-type': 'application/json' }) } as ProcessingRequest);
    const outcome = processor.handle({ request: 'response_body', response_body: { body: result, end_of_stream: true } });
    return { deferred: outcome !== null && 'deferred' in outcome, response: outcome !== null && 'deferred' in outcome ? await outcome.deferred : outcome };
  };
  const inline = await answer(deps(policy));
  assert.equal(inline.deferred, false);
  const inlineBody = (inline.response?.response_body?.response?.body_mutation as { body: Buffer }).body.toString('utf8');
  assert.ok(!inlineBody.includes(card) && inlineBody.includes('6467'));

  const pool = createBodyInspectionPool({ thresholdBytes: 1024, log: () => {} });
  let sentToWorker = 0;
  const counted = { ...pool, thresholdBytes: pool.thresholdBytes, inspect: (...args: Parameters<typeof pool.inspect>) => (sentToWorker++, pool.inspect(...args)) };
  try {
    const offloaded = await answer({ ...deps(policy), bodyInspection: counted });
    assert.equal(offloaded.deferred, true);
    assert.equal(sentToWorker, 1);
    assert.equal((offloaded.response?.response_body?.response?.body_mutation as { body: Buffer }).body.toString('utf8'), inlineBody, 'the same bytes as inline');
    // Under the threshold, inline as before.
    const small = await answer({ ...deps(policy), bodyInspection: { ...counted, thresholdBytes: result.length + 1 } });
    assert.equal(small.deferred, false);
  } finally {
    await pool.stop();
  }
  const events: string[] = [];
  const broken = { thresholdBytes: 1, inspect: () => Promise.reject(new Error('worker gone')), stop: async () => {} };
  const fallback = await answer({ ...deps(policy), bodyInspection: broken, log: (event) => events.push(event) });
  assert.equal((fallback.response?.response_body?.response?.body_mutation as { body: Buffer }).body.toString('utf8'), inlineBody, 'never passed unread');
  assert.deepEqual(events, ['body_inspection_inline']);
});

test('a request on no Mandate route is answered 404 unknown_endpoint, logged, and not audited (no Persona, no agent action)', () => {
  const decisions: Decision[] = [];
  const logged: [string, Record<string, unknown>][] = [];
  const processor = createStreamProcessor(null, { ...deps(policyWith({}), decisions), log: (event, fields) => logged.push([event, fields]) });
  const response = handleNow(processor, { request: 'request_headers', request_headers: headers({ ':method': 'GET', ':path': '/elsewhere', 'x-request-id': 'r-1' }) });
  const reply = response?.immediate_response;
  assert.equal(reply?.status.code, 404);
  assert.equal(reply?.details, 'mandate_unknown_endpoint');
  assert.equal(JSON.parse(reply!.body!.toString('utf8')).code, 'unknown_endpoint');
  assert.equal(decisions.length, 0);
  assert.deepEqual(logged, [['request_without_route', { method: 'GET', requestId: 'r-1' }]]);
});
