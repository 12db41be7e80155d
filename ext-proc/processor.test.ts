// The processor without Envoy: Envoy's messages in, ProcessingResponses out,
// for the stage wiring that the end-to-end suites cannot observe directly
// (chunk-by-chunk output of a streamed result, the rewritten request body).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { configBundleSchema } from '../config/bundle.ts';
import { auditEventFromDecision } from './audit/event.ts';
import type { Decision } from './decision/decision.ts';
import { checksummedToken } from './dlp/detectors/secrets.ts';
import { FlowTracker } from './dlp/flow.ts';
import type { ProcessingRequest, ProcessingResponse } from './envoy-messages.ts';
import { compilePolicy, type CompiledPolicy } from './policy/compile-policy.ts';
import { handleNow } from './processor-fixtures.ts';
import { errorWithoutMessage } from './error-description.ts';
import { createStreamProcessor, type DecisionOutcome, type ProcessorDependencies } from './processor.ts';
import { MemoryAlertSink } from './sequence/alerts.ts';
import { createBehaviourEngine } from './sequence/engine.ts';
import { InMemorySessionStateStore } from './sequence/state-store.ts';
import { randomText } from '../test/support/random-text.ts';

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

function deps(policy: CompiledPolicy, decisions: Decision[] = [], outcomes: [Decision, DecisionOutcome][] = []): ProcessorDependencies {
  return {
    currentPolicy: () => policy,
    audit: { decision: (d) => decisions.push(d), outcome: (d, o) => outcomes.push([d, o]) },
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
  assert.equal(onHeaders?.mode_override?.response_body_mode, 'BUFFERED_PARTIAL', 'the answer to tasks/result is asked for (whole, or the part Envoy holds when it declares no length)');
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
  assert.equal(xmlHeaders?.mode_override?.response_body_mode, 'BUFFERED_PARTIAL');
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
    const outcomes: [Decision, DecisionOutcome][] = [];
    const dependencies = deps(policy, decisions, outcomes);
    const processor = createStreamProcessor(route, dependencies);
    startToolCall(processor, {});
    const answer = handleNow(processor, { request: 'response_headers', response_headers: headers({ ':status': '200', 'content-type': 'application/json', 'x-card': card }) } as ProcessingRequest);
    processor.finish();
    if (mode === 'enforce') {
      assert.equal(answer?.immediate_response?.status?.code, 200, 'MCP: the answer becomes a JSON-RPC error');
      assert.match(String(answer?.immediate_response?.body), /sensitive_data_blocked/);
    } else {
      assert.equal(answer?.immediate_response, undefined);
      assert.equal(answer?.response_headers?.response?.header_mutation?.set_headers?.some((h) => h.header.key === 'x-card'), false, 'monitor mode changes nothing');
      const refusal = outcomes[0]![1].answerRefusal;
      assert.deepEqual([refusal?.reason.code, refusal?.enforced], ['sensitive_data_blocked', false], "the response event records what would have been refused");
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
  const counted: typeof pool = { ...pool, thresholdBytes: pool.thresholdBytes, inspect: (dp, subject, context) => (sentToWorker++, pool.inspect(dp, subject, context)) };
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
  // Over the tool call's request body, under the answer.
  const broken = { thresholdBytes: 1024, inspect: () => Promise.reject(new Error('worker gone')), stop: async () => {} };
  const fallback = await answer({ ...deps(policy), bodyInspection: broken, log: (event) => events.push(event) });
  assert.equal((fallback.response?.response_body?.response?.body_mutation as { body: Buffer }).body.toString('utf8'), inlineBody, 'never passed unread');
  assert.deepEqual(events, ['body_inspection_inline']);
});

test('an answer that costs more than its budget to inspect is refused (inspection_over_budget), on the event loop and on the worker; never inspected again inline; a failOpen Persona passes it; with a worker, one over its share of the event loop moves there', async () => {
  const { createBodyInspectionPool } = await import('./dlp/body-inspection.ts');
  const { inspectionBudgetMs, isOverBudget, setInspectionBudget } = await import('./dlp/budget.ts');
  // Random printable text as a tool result: every byte is new to the Sets' automata.
  const text = `card ${card} ${randomText(200_000, 3)}`;
  const result = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 9, result: { content: [{ type: 'text', text }] } }));
  const answer = (dependencies: ProcessorDependencies, persona: Record<string, unknown> = {}) => {
    const decisions: Decision[] = [];
    const processor = createStreamProcessor(route, { ...dependencies, ...deps(policyWith({ ...persona, dataProtection: { profiles: ['pci-dss', 'secrets'] } }), decisions), ...(dependencies.bodyInspection ? { bodyInspection: dependencies.bodyInspection } : {}), ...(dependencies.log ? { log: dependencies.log } : {}) });
    startToolCall(processor, { customer: 'all' });
    handleNow(processor, { request: 'response_headers', response_headers: headers({ ':status': '200', 'content-type': 'application/json' }) } as ProcessingRequest);
    const request = { request: 'response_body', response_body: { body: result, end_of_stream: true } } as ProcessingRequest;
    return { processor, request, decisions };
  };
  const policy = policyWith({});
  const before = inspectionBudgetMs();
  setInspectionBudget(1);
  try {
    const inline = answer(deps(policy));
    let thrown: unknown;
    try {
      inline.processor.handle(inline.request);
    } catch (error) {
      thrown = error;
    }
    assert.ok(isOverBudget(thrown), `inline: ${String(thrown)}`);
    // What the gRPC layer does with an exception (grpc-server.ts).
    const refused = inline.processor.internalError(inline.request, thrown);
    assert.equal(refused?.immediate_response?.status?.code, 503);
    assert.match(String(refused?.immediate_response?.body), /inspection_over_budget/);
    assert.equal(inline.decisions.at(-1)!.reasons[0]!.code, 'inspection_over_budget');
    const open = answer(deps(policy), { failOpen: true });
    assert.throws(() => open.processor.handle(open.request), isOverBudget);
    assert.equal(open.processor.internalError(open.request, new (await import('./dlp/budget.ts')).InspectionOverBudget(1))?.immediate_response, undefined, 'failOpen: passed on');
    const monitored = answer(deps(policy), { mode: 'monitor' });
    assert.throws(() => monitored.processor.handle(monitored.request), isOverBudget);
    assert.equal(monitored.processor.internalError(monitored.request, new (await import('./dlp/budget.ts')).InspectionOverBudget(1))?.immediate_response, undefined, 'monitor mode: passed on');
    assert.equal((monitored.decisions.at(-1) as { enforced?: boolean }).enforced, false, 'recorded as not enforced');
    // With a worker: over the event loop's share, the answer moves to the worker and is inspected there under its own budget.
    const roomy = createBodyInspectionPool({ thresholdBytes: result.length + 1, budgetMs: 60_000, log: () => {} });
    const moved: string[] = [];
    try {
      const offloaded = answer({ ...deps(policy), bodyInspection: roomy, log: (event) => moved.push(event) });
      const outcome = offloaded.processor.handle(offloaded.request);
      assert.ok(outcome !== null && 'deferred' in outcome, 'moved to the worker');
      const body = ((await outcome.deferred)?.response_body?.response?.body_mutation as { body: Buffer }).body.toString('utf8');
      assert.ok(body.includes('**** **** **** 6467') && !body.includes(card), 'inspected and masked on the worker');
      assert.deepEqual(moved, ['body_inspection_moved']);
    } finally {
      await roomy.stop();
    }
  } finally {
    setInspectionBudget(before);
  }
  const pool = createBodyInspectionPool({ thresholdBytes: 1024, budgetMs: 1, log: () => {} });
  const events: string[] = [];
  try {
    const offloaded = answer({ ...deps(policy), bodyInspection: pool, log: (event) => events.push(event) });
    const outcome = offloaded.processor.handle(offloaded.request);
    assert.ok(outcome !== null && 'deferred' in outcome);
    await assert.rejects(outcome.deferred, (error: unknown) => isOverBudget(error));
    assert.ok(!events.includes('body_inspection_inline'), 'not inspected again on the event loop');
  } finally {
    await pool.stop();
  }
});

test('a request body over its share of the event loop moves to the worker: its parts inspected there, the stages run once on them; an ordinary one stays inline', async () => {
  const { createBodyInspectionPool } = await import('./dlp/body-inspection.ts');
  const { inspectionBudgetMs, setInspectionBudget } = await import('./dlp/budget.ts');
  const noise = randomText(100_000, 5);
  const pool = createBodyInspectionPool({ thresholdBytes: 1 << 20, budgetMs: 60_000, log: () => {} });
  const before = inspectionBudgetMs();
  // The share of the event loop is at most its budget: 1 ms moves anything costly.
  setInspectionBudget(1);
  try {
    const events: string[] = [];
    const decisions: Decision[] = [];
    const processor = createStreamProcessor(route, { ...deps(policyWith({ dataProtection: { profiles: ['pci-dss'] } }), decisions), bodyInspection: pool, log: (event) => events.push(event) });
    startHeaders(processor);
    const outcome = processor.handle(toolCallBody({ id: 9, params: { name: 'save_note', arguments: { note: `card ${card}`, text: noise } } }));
    assert.ok(outcome !== null && 'deferred' in outcome, 'moved to the worker');
    assert.deepEqual(events, ['body_inspection_moved']);
    const mutation = (await outcome.deferred)?.request_body?.response?.body_mutation as { body: Buffer };
    const sent = JSON.parse(mutation.body.toString('utf8')) as { params: { arguments: { note: string; text: string } } };
    assert.equal(sent.params.arguments.note, 'card **** **** **** 6467', 'masked on the worker before the upstream');
    assert.equal(sent.params.arguments.text, noise);
    assert.equal(decisions.length, 1, 'one decision: the stages ran once');
    assert.deepEqual(decisions[0]!.findings.map((f) => f.detector), ['payment-card-visa']);
    // An ordinary call is inspected on the event loop, within its share.
    setInspectionBudget(before);
    const quick = createStreamProcessor(route, { ...deps(policyWith({ dataProtection: { profiles: ['pci-dss'] } })), bodyInspection: pool, log: (event) => events.push(event) });
    startHeaders(quick);
    const inline = quick.handle(toolCallBody({ id: 9, params: { name: 'save_note', arguments: { note: `card ${card}` } } }));
    assert.ok(inline !== null && !('deferred' in inline), 'answered inline');
    assert.match((inline.request_body?.response?.body_mutation as { body: Buffer }).body.toString('utf8'), /card \*\*\*\* \*\*\*\* \*\*\*\* 6467/);
    assert.deepEqual(events, ['body_inspection_moved']);
  } finally {
    setInspectionBudget(before);
    await pool.stop();
  }
});

test('a large answer asks Envoy to wait for the worker and the inline external DLP, within its 30 s ceiling; the services get what the worker left', async () => {
  // A webhook that never answers: only the time it is given decides when its fail mode applies.
  const hanging = createHttpServer(() => undefined);
  await new Promise<void>((r) => hanging.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(hanging.address() as AddressInfo).port}/scan`;
  try {
    const result = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 9, result: { content: [{ type: 'text', text: 'plain '.repeat(100) }] } }));
    let skew = 0;
    const worker = (advanceMs: number) => ({
      // Over the tool call's request body, under the answer.
      thresholdBytes: 400,
      stop: async () => {},
      inspect: async <T>(_dp: unknown, body: T) => {
        skew += advanceMs;
        return { value: body, changed: false, findings: [], blocked: null, wouldBlock: null, fingerprints: [] };
      },
    });
    const answer = (timeoutMs: number, advanceMs: number) => {
      const policy = policyWith({ dataProtection: { profiles: ['pci-dss'], external: [{ type: 'webhook', url, timeoutMs, failMode: 'open', directions: ['response'] }] } });
      const processor = createStreamProcessor(route, { ...deps(policy), now: () => performance.now() + skew, bodyInspection: worker(advanceMs) });
      startToolCall(processor, {});
      handleNow(processor, { request: 'response_headers', response_headers: headers({ ':status': '200', 'content-type': 'application/json' }) } as ProcessingRequest);
      const outcome = processor.handle({ request: 'response_body', response_body: { body: result, end_of_stream: true } });
      assert.ok(outcome !== null && 'deferred' in outcome);
      return outcome;
    };
    assert.equal(answer(15_000, 0).waitMs, 10_000 + 15_000 + 1000, 'the worker, the service, and a margin');
    assert.equal(answer(25_000, 0).waitMs, 30_000, 'never past the ceiling, which Envoy would ignore');
    // The worker took 24.9 s of the 25 s the services may have: the service gets the 0.1 s left, not its 15 s.
    const started = performance.now();
    const late = answer(15_000, 24_900);
    const response = await late.deferred;
    assert.ok(performance.now() - started < 3000, `settled in ${performance.now() - started} ms`);
    assert.equal(response?.response_body?.response?.status, 'CONTINUE', 'failMode open: the answer goes on');
  } finally {
    hanging.closeAllConnections();
    hanging.close();
  }
});

test('a request body over the worker threshold is inspected on the worker thread, with what inline inspection gives: masks, blocks, flow refusals, decisions, audit records; a failed worker falls back to inline', async () => {
  const { createBodyInspectionPool } = await import('./dlp/body-inspection.ts');
  const ghToken = checksummedToken('ghp', '16C7e42F292c6912E7710c838347Ae');
  const policyFor = (mode: 'enforce' | 'monitor') =>
    withBundle(
      configBundleSchema.parse({
        upstreams: [
          { kind: 'Upstream', name: 'billing', protocol: 'mcp', url: 'http://127.0.0.1:1/mcp' },
          { kind: 'Upstream', name: 'devbox', protocol: 'rest', url: 'http://127.0.0.1:2/api', environment: 'development' },
        ],
        personas: [
          {
            kind: 'Persona',
            name: 'p',
            description: 'test',
            mode,
            grants: [{ upstream: 'billing', tools: [{ name: '*' }] }, { upstream: 'devbox', operations: [{ method: 'POST', path: '/notes' }] }],
            dataProtection: { profiles: ['pci-dss', 'secrets'], flow: { enabled: true }, rules: [{ detectors: ['github-personal-access-token'], direction: 'request', action: 'block' }] },
          },
        ],
      }),
    );
  const devRoute = { persona: 'p', upstream: 'devbox', kind: 'rest' as const, pathPrefix: '/personas/p/devbox', configVersion: 1 };
  // About 130 KB of assigned passwords, with a card and an address now and then.
  const filler = (extra = '') => Array.from({ length: 6_000 }, (_, i) => (i % 1000 === 7 ? `card ${card} ` : i % 997 === 3 ? 'mail ana@example.com ' : 'password: "hunter22x" ')).join('') + extra;
  const mcpHeaders = { ':method': 'POST', ':path': '/personas/p/billing', 'content-type': 'application/json', authorization: `Bearer ${token}`, 'mcp-protocol-version': '2025-03-26' };
  const cases: { name: string; mode: 'enforce' | 'monitor'; rest: boolean; contentType?: string; body: string; readCardFirst?: boolean }[] = [
    { name: 'mcp tool call', mode: 'enforce', rest: false, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'save_note', arguments: { note: filler(), id: 'n' }, _meta: { ref: card } } }) },
    {
      name: 'mcp batch',
      mode: 'enforce',
      rest: false,
      body: JSON.stringify([
        { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'save_note', arguments: { note: filler() } } },
        { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 0, reason: filler() } },
        { jsonrpc: '2.0', id: 'srv-1', result: { content: { text: filler() } } },
      ]),
    },
    { name: 'mcp blocked token', mode: 'enforce', rest: false, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'save_note', arguments: { note: filler(ghToken) } } }) },
    { name: 'mcp blocked token, monitored', mode: 'monitor', rest: false, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'save_note', arguments: { note: filler(ghToken) } } }) },
    { name: 'rest json', mode: 'enforce', rest: true, contentType: 'application/json', body: JSON.stringify({ note: filler() }) },
    { name: 'rest json, a card read before flows to development', mode: 'enforce', rest: true, contentType: 'application/json', body: JSON.stringify({ note: filler() }), readCardFirst: true },
    { name: 'rest form', mode: 'enforce', rest: true, contentType: 'application/x-www-form-urlencoded', body: `note=${encodeURIComponent(filler())}&id=7` },
    { name: 'rest text', mode: 'enforce', rest: true, contentType: 'text/plain', body: filler() },
  ];
  const run = async (c: (typeof cases)[number], extra: Partial<ProcessorDependencies>) => {
    const decisions: Decision[] = [];
    const dependencies = { ...deps(policyFor(c.mode), decisions), ...extra };
    if (c.readCardFirst) {
      const reader = createStreamProcessor(route, dependencies);
      startToolCall(reader, {});
      handleNow(reader, { request: 'response_headers', response_headers: headers({ ':status': '200', 'content-type': 'application/json' }) } as ProcessingRequest);
      handleNow(reader, { request: 'response_body', response_body: { body: Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 9, result: { content: [{ type: 'text', text: `card ${card}` }] } })), end_of_stream: true } });
      reader.finish();
      decisions.length = 0;
    }
    const processor = createStreamProcessor(c.rest ? devRoute : route, dependencies);
    const requestHeaders = c.rest ? { ':method': 'POST', ':path': '/personas/p/devbox/notes', 'content-type': c.contentType!, authorization: `Bearer ${token}` } : mcpHeaders;
    handleNow(processor, { request: 'request_headers', request_headers: headers(requestHeaders) });
    const outcome = processor.handle({ request: 'request_body', request_body: { body: Buffer.from(c.body), end_of_stream: true } });
    const deferred = outcome !== null && 'deferred' in outcome;
    const response = deferred ? await outcome.deferred : outcome;
    processor.finish();
    return { deferred, response: JSON.stringify(response), decisions, audit: decisions.map((d) => JSON.stringify(auditEventFromDecision(d, 'k'.repeat(32)))) };
  };
  const inline = await Promise.all(cases.map((c) => run(c, {})));
  for (const [i, c] of cases.entries()) assert.equal(inline[i]!.deferred, false, c.name);
  // The cases do what they are named for.
  assert.ok(!inline[0]!.response.includes(card) && inline[0]!.decisions[0]!.findings.length > 5_000, 'masked');
  assert.match(inline[2]!.response, /sensitive_data_blocked/);
  assert.equal(inline[3]!.decisions[0]!.enforced, false);
  assert.ok(inline[5]!.decisions[0]!.reasons.some((r) => r.code === 'sensitive_data_flow_blocked'), 'flow refusal');
  assert.ok(!inline[6]!.response.includes(encodeURIComponent(card)) && !inline[7]!.response.includes(card));

  const pool = createBodyInspectionPool({ thresholdBytes: 64 * 1024, log: () => {} });
  let sentToWorker = 0;
  const counted: typeof pool = { ...pool, thresholdBytes: pool.thresholdBytes, inspect: (dp, subject, context) => (sentToWorker++, pool.inspect(dp, subject, context)) };
  try {
    for (const [i, c] of cases.entries()) {
      const offloaded = await run(c, { bodyInspection: counted });
      assert.equal(offloaded.deferred, true, c.name);
      assert.equal(offloaded.response, inline[i]!.response, `${c.name}: the same answer to Envoy`);
      assert.deepEqual(offloaded.decisions, inline[i]!.decisions, `${c.name}: the same decisions`);
      assert.deepEqual(offloaded.audit, inline[i]!.audit, `${c.name}: the same audit records`);
    }
    assert.ok(sentToWorker >= cases.length, `${sentToWorker} parts went to the worker`);

    // Off the event loop: while the worker reads a large body, a small call on another stream is answered.
    const processor = createStreamProcessor(route, { ...deps(policyFor('enforce')), bodyInspection: counted });
    handleNow(processor, { request: 'request_headers', request_headers: headers(mcpHeaders) });
    const large = processor.handle({ request: 'request_body', request_body: { body: Buffer.from(cases[0]!.body), end_of_stream: true } });
    assert.ok(large !== null && 'deferred' in large);
    let settled = false;
    const answered = large.deferred.then((response) => ((settled = true), response));
    const small = createStreamProcessor(route, deps(policyFor('enforce')));
    const smallAnswer = startToolCall(small, { note: `pay with ${card}` });
    assert.equal(settled, false, 'the small call was answered while the large body was still being inspected');
    assert.match(String(smallAnswer?.request_body?.response?.body_mutation && 'body' in smallAnswer.request_body.response.body_mutation ? smallAnswer.request_body.response.body_mutation.body : ''), /\*\*\*\* 6467/);
    assert.equal(JSON.stringify(await answered), inline[0]!.response);
  } finally {
    await pool.stop();
  }

  // A worker that fails: every part is inspected inline, never passed unread.
  const events: string[] = [];
  const broken = { thresholdBytes: 64 * 1024, inspect: () => Promise.reject(new Error('worker gone')), stop: async () => {} };
  for (const [i, c] of cases.entries()) {
    const fallback = await run(c, { bodyInspection: broken, log: (event) => events.push(event) });
    assert.equal(fallback.response, inline[i]!.response, `${c.name}: never passed unread`);
    assert.deepEqual(fallback.decisions, inline[i]!.decisions);
  }
  assert.ok(events.length >= cases.length && events.every((e) => e === 'body_inspection_inline'), events.join());
});

test('a large request body asks Envoy to wait for the worker and the inline external DLP on requests, within its 30 s ceiling', () => {
  const body = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'save_note', arguments: { note: 'plain' } } }));
  const worker = { thresholdBytes: 1, stop: async () => {}, inspect: <T>(_dp: unknown, subject: T) => Promise.resolve({ value: subject, changed: false, findings: [], blocked: null, wouldBlock: null, fingerprints: [] }) };
  const waitFor = (timeoutMs: number) => {
    const policy = policyWith({ dataProtection: { profiles: ['pci-dss'], external: [{ type: 'webhook', url: 'http://127.0.0.1:1/scan', timeoutMs, failMode: 'open', directions: ['response'] }, { type: 'webhook', url: 'http://127.0.0.1:1/scan', timeoutMs: 2 * timeoutMs, failMode: 'open', directions: ['request'] }] } });
    const processor = createStreamProcessor(route, { ...deps(policy), bodyInspection: worker });
    handleNow(processor, { request: 'request_headers', request_headers: headers({ ':method': 'POST', ':path': '/personas/p/billing', 'content-type': 'application/json', authorization: `Bearer ${token}` }) });
    const outcome = processor.handle({ request: 'request_body', request_body: { body, end_of_stream: true } });
    assert.ok(outcome !== null && 'deferred' in outcome);
    void outcome.deferred.catch(() => {});
    return outcome.waitMs;
  };
  assert.equal(waitFor(3_000), 10_000 + 6_000 + 1000, 'the worker, the request-side services only, and a margin');
  assert.equal(waitFor(12_000), 30_000, 'never past the ceiling, which Envoy would ignore');
});

const githubToken = checksummedToken('ghp', '16C7e42F292c6912E7710c838347Ae');

function toolCallBody(message: Record<string, unknown>): ProcessingRequest {
  return { request: 'request_body', request_body: { body: Buffer.from(JSON.stringify({ jsonrpc: '2.0', method: 'tools/call', ...message })), end_of_stream: true } };
}

function startHeaders(processor: ReturnType<typeof createStreamProcessor>, extra: Record<string, string> = {}, path = '/personas/p/billing'): ProcessingResponse | null {
  return handleNow(processor, { request: 'request_headers', request_headers: { ...headers({ ':method': 'POST', ':path': path, 'content-type': 'application/json', authorization: `Bearer ${token}`, ...extra }) } });
}

test("a tool call's _meta, other params and extra members are inspected like its arguments: masked in place, or refused", () => {
  const decisions: Decision[] = [];
  const processor = createStreamProcessor(route, deps(policyWith({ dataProtection: { profiles: ['pci-dss'] } }), decisions));
  startHeaders(processor);
  const answer = handleNow(processor, toolCallBody({ id: 9, params: { name: 'save_note', arguments: { id: 'x' }, _meta: { progressToken: `card ${card}` }, note: card }, extra: { card } }));
  const mutation = answer?.request_body?.response?.body_mutation;
  assert.ok(mutation && 'body' in mutation, 'the body is rewritten');
  const forwarded = JSON.parse(Buffer.from(mutation.body!).toString('utf8'));
  assert.equal(JSON.stringify(forwarded).includes(card), false, JSON.stringify(forwarded));
  assert.equal(forwarded.params._meta.progressToken, 'card **** **** **** 6467');
  assert.equal(forwarded.params.name, 'save_note');
  assert.deepEqual(forwarded.params.arguments, { id: 'x' });
  assert.equal(forwarded.id, 9);
  assert.deepEqual(decisions.at(-1)!.findings.map((f) => f.location).sort(), ['message.extra.card', 'message.params._meta.progressToken', 'message.params.note']);

  const blocking = createStreamProcessor(route, deps(policyWith({ dataProtection: { profiles: ['secrets'], defaultAction: 'block' } }), decisions));
  startHeaders(blocking);
  const refused = handleNow(blocking, toolCallBody({ id: 10, params: { name: 'save_note', arguments: {}, _meta: { progressToken: githubToken } } }));
  assert.ok(refused?.immediate_response, 'a blocked value in _meta refuses the call');
  assert.equal(decisions.at(-1)!.reasons[0]!.code, 'sensitive_data_blocked');
});

test('a JSON-RPC id carrying sensitive data is refused, not masked (a masked id could not be matched to its answer)', () => {
  const decisions: Decision[] = [];
  const processor = createStreamProcessor(route, deps(policyWith({ dataProtection: { profiles: ['pci-dss'] } }), decisions));
  startHeaders(processor);
  const answer = handleNow(processor, toolCallBody({ id: card, params: { name: 'save_note', arguments: {} } }));
  assert.ok(answer?.immediate_response, 'refused');
  assert.equal(JSON.stringify(answer).includes(card), false, 'the refusal does not echo the value');
  assert.equal(decisions.at(-1)!.reasons[0]!.code, 'sensitive_data_blocked');
  assert.deepEqual(decisions.at(-1)!.findings.map((f) => f.location), ['message.id']);
});

test('a query string on an MCP endpoint is inspected: masked in the path the upstream receives, or refused', () => {
  const decisions: Decision[] = [];
  const processor = createStreamProcessor(route, deps(policyWith({ dataProtection: { profiles: ['pci-dss'] } }), decisions));
  const onHeaders = startHeaders(processor, {}, `/personas/p/billing?c=${encodeURIComponent(card)}&page=2`);
  const set = Object.fromEntries((onHeaders?.request_headers?.response?.header_mutation?.set_headers ?? []).map((h) => [h.header.key, Buffer.from(h.header.raw_value!).toString('latin1')]));
  assert.equal(set[':path'], '/personas/p/billing?c=****+****+****+6467&page=2');
  handleNow(processor, toolCallBody({ id: 1, params: { name: 'save_note', arguments: {} } }));
  assert.deepEqual(decisions.at(-1)!.findings.map((f) => f.location), ['query.c']);

  const blocking = createStreamProcessor(route, deps(policyWith({ dataProtection: { profiles: ['secrets'], defaultAction: 'block' } })));
  const refused = startHeaders(blocking, {}, `/personas/p/billing?t=${githubToken}`);
  assert.equal(refused?.immediate_response?.status?.code, 403);
});

test("X-Forwarded-For keeps only its entries that are IP addresses: what else the agent wrote in it never reaches the upstream", () => {
  const processor = createStreamProcessor(route, deps(policyWith({})));
  const onHeaders = startHeaders(processor, { 'x-forwarded-for': `${githubToken}, 203.0.113.9:443, card ${card},[2001:db8::1]:8443, 198.51.100.2` });
  const set = Object.fromEntries((onHeaders?.request_headers?.response?.header_mutation?.set_headers ?? []).map((h) => [h.header.key, Buffer.from(h.header.raw_value!).toString('latin1')]));
  assert.equal(set['x-forwarded-for'], '203.0.113.9:443, [2001:db8::1]:8443, 198.51.100.2');
  const clean = createStreamProcessor(route, deps(policyWith({})));
  const untouched = startHeaders(clean, { 'x-forwarded-for': '203.0.113.9, 198.51.100.2' });
  assert.equal((untouched?.request_headers?.response?.header_mutation?.set_headers ?? []).some((h) => h.header.key === 'x-forwarded-for'), false);
});

test('a body nested deeper than 128 is refused with json_too_deep, and the refusal is recorded', () => {
  const decisions: Decision[] = [];
  const processor = createStreamProcessor(route, deps(policyWith({ dataProtection: { profiles: ['pci-dss'] } }), decisions));
  startHeaders(processor);
  const deep = '['.repeat(3000) + ']'.repeat(3000);
  const body = Buffer.from(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"save_note","arguments":{"a":${deep}}}}`);
  const answer = handleNow(processor, { request: 'request_body', request_body: { body, end_of_stream: true } });
  assert.equal(answer?.immediate_response?.status?.code, 400);
  assert.match(Buffer.from(answer!.immediate_response!.body!).toString('utf8'), /json_too_deep/);
  assert.equal(decisions.at(-1)!.reasons[0]!.code, 'json_too_deep');
});

/** Starts an MCP request with this JSON-RPC body on a processor. */
function startMcp(processor: ReturnType<typeof createStreamProcessor>, message: unknown): ProcessingResponse | null {
  handleNow(processor, { request: 'request_headers', request_headers: { ...headers({ ':method': 'POST', ':path': '/personas/p/billing', 'content-type': 'application/json', authorization: `Bearer ${token}` }) } });
  return handleNow(processor, { request: 'request_body', request_body: { body: Buffer.from(JSON.stringify(message)), end_of_stream: true } });
}

function answerHeaders(processor: ReturnType<typeof createStreamProcessor>, status: string, contentType: string | null): ProcessingResponse | null {
  return handleNow(processor, { request: 'response_headers', response_headers: headers({ ':status': status, ...(contentType === null ? {} : { 'content-type': contentType }) }) } as ProcessingRequest);
}

function answerBody(processor: ReturnType<typeof createStreamProcessor>, body: Buffer): { body: Buffer | null; headers: Record<string, string> } {
  const response = handleNow(processor, { request: 'response_body', response_body: { body, end_of_stream: true } })?.response_body?.response;
  const mutation = response?.body_mutation;
  const set = Object.fromEntries((response?.header_mutation?.set_headers ?? []).map((h) => [h.header.key, Buffer.from(h.header.raw_value!).toString('latin1')]));
  return { body: mutation && 'body' in mutation ? mutation.body : null, headers: set };
}

test('an answer in UTF-16 or another charset Mandate cannot read is refused with unsupported_charset, JSON and event streams alike', () => {
  for (const contentType of ['application/json; charset=utf-16le', 'text/event-stream; charset=UTF-16', 'text/plain; charset=shift_jis', 'application/x-ndjson; charset=iso-8859-1']) {
    const outcomes: [Decision, DecisionOutcome][] = [];
    const processor = createStreamProcessor(route, deps(policyWith({ dataProtection: { profiles: ['pci-dss'] } }), [], outcomes));
    startToolCall(processor, {});
    const answer = answerHeaders(processor, '200', contentType);
    assert.equal(answer?.immediate_response?.status?.code, 200, contentType);
    const error = JSON.parse(String(answer.immediate_response.body));
    assert.equal(error.id, 9);
    assert.equal(error.error.data.mandate.code, 'unsupported_charset', contentType);
    processor.finish();
    assert.equal(outcomes[0]![1].answerRefusal?.reason.code, 'unsupported_charset', 'the response event records the refusal');
  }
  // REST: a 502 problem.
  const policy = billingAndDevbox('enforce', { profiles: ['pci-dss'] });
  const devRoute = { persona: 'p', upstream: 'devbox', kind: 'rest' as const, pathPrefix: '/personas/p/devbox', configVersion: 1 };
  const rest = createStreamProcessor(devRoute, deps(policy));
  handleNow(rest, { request: 'request_headers', request_headers: { ...headers({ ':method': 'GET', ':path': '/personas/p/devbox/notes', authorization: `Bearer ${token}` }), end_of_stream: true } });
  const refused = answerHeaders(rest, '200', 'application/json; charset=utf-16le');
  assert.equal(refused?.immediate_response?.status?.code, 502);
  assert.equal(JSON.parse(String(refused.immediate_response.body)).code, 'unsupported_charset');
  // Without data protection, nothing reads a tool result: it is not Mandate's to refuse.
  const plain = createStreamProcessor(route, deps(policyWith({})));
  startToolCall(plain, {});
  assert.equal(answerHeaders(plain, '200', 'application/json; charset=utf-16le')?.immediate_response, undefined);
});

test('an answer in ISO-8859-1 or windows-1252 is read decoded, masked, and written back in its own charset', () => {
  const nbspCard = card.replaceAll(' ', '\u00a0');
  const cases: [string, string, string][] = [
    ['application/json; charset=iso-8859-1', 'latin1', 'café'],
    ['application/json; charset=windows-1252', 'windows-1252', '€ café'],
    ['text/plain; charset="ISO-8859-1"', 'latin1', 'naïve'],
  ];
  for (const [contentType, encoding, prose] of cases) {
    const processor = createStreamProcessor(route, deps(policyWith({ dataProtection: { profiles: ['pci-dss'], maskCharacter: '█' } })));
    startToolCall(processor, {});
    assert.equal(answerHeaders(processor, '200', contentType)?.mode_override?.response_body_mode, 'BUFFERED_PARTIAL');
    const json = contentType.includes('json');
    const text = json ? JSON.stringify({ jsonrpc: '2.0', id: 9, result: { content: [{ type: 'text', text: `${prose}: ${nbspCard}` }] } }) : `${prose}: ${nbspCard}`;
    // The euro sign is byte 0x80 in windows-1252; everything else here is the same byte in both charsets.
    const sent = Buffer.from(text.replace('€', '\x80'), 'latin1');
    const out = answerBody(processor, sent);
    assert.ok(out.body, contentType);
    assert.equal(out.headers['content-length'], String(out.body.length));
    const decoded = new TextDecoder(encoding).decode(out.body);
    assert.ok(!decoded.includes(nbspCard) && !decoded.includes('4539'), decoded);
    assert.ok(out.body.includes(Buffer.from([0xa0])), 'the no-break spaces are still single bytes');
    assert.ok(decoded.startsWith(json ? `{"jsonrpc":"2.0","id":9,"result":{"content":[{"type":"text","text":"${prose}: ` : `${prose}: `), decoded);
    // The mask character is outside both charsets: JSON carries it escaped, text as "?".
    if (json) assert.equal(JSON.parse(decoded).result.content[0].text, `${prose}: ████\u00a0████\u00a0████\u00a06467`);
    else assert.equal(decoded, `${prose}: ????\u00a0????\u00a0????\u00a06467`);
  }
});

test("the JSON-RPC id the client sent comes back unmasked, while a card in the result is masked (JSON, batch, SSE)", () => {
  // Cards the agent sends are only recorded here: a card-like id it sends may then reach the upstream (with a mask rule it would be refused).
  const dataProtection = { profiles: ['pci-dss'], rules: [{ groups: ['financial'], direction: 'request', action: 'detect' }] };
  const result = { content: [{ type: 'text', text: `card ${card}` }] };
  const call = (id: unknown) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'read_card', arguments: {} } });
  // one call, answered as JSON
  const single = createStreamProcessor(route, deps(policyWith({ dataProtection })));
  startMcp(single, call(card));
  answerHeaders(single, '200', 'application/json');
  const one = JSON.parse(answerBody(single, Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: card, result }))).body!.toString('utf8'));
  assert.equal(one.id, card);
  assert.equal(one.result.content[0].text, 'card **** **** **** 6467');
  // a batch (2025-03-26), answered as JSON
  const batch = createStreamProcessor(route, deps(policyWith({ dataProtection })));
  handleNow(batch, { request: 'request_headers', request_headers: { ...headers({ ':method': 'POST', ':path': '/personas/p/billing', 'content-type': 'application/json', 'mcp-protocol-version': '2025-03-26', authorization: `Bearer ${token}` }) } });
  handleNow(batch, { request: 'request_body', request_body: { body: Buffer.from(JSON.stringify([call(card), call(4539148803436467)])), end_of_stream: true } });
  answerHeaders(batch, '200', 'application/json');
  const both = JSON.parse(answerBody(batch, Buffer.from(JSON.stringify([{ jsonrpc: '2.0', id: card, result }, { jsonrpc: '2.0', id: 4539148803436467, result }]))).body!.toString('utf8'));
  assert.deepEqual(both.map((m: { id: unknown }) => m.id), [card, 4539148803436467]);
  assert.ok(both.every((m: { result: typeof result }) => m.result.content[0]!.text === 'card **** **** **** 6467'));
  // one call, answered as an event stream; an id the client did not send is masked
  const stream = createStreamProcessor(route, deps(policyWith({ dataProtection })));
  startMcp(stream, call(card));
  answerHeaders(stream, '200', 'text/event-stream');
  const events = [{ jsonrpc: '2.0', id: '4111 1111 1111 1111', method: 'elicitation/create', params: {} }, { jsonrpc: '2.0', id: card, result }];
  const sse = answerBody(stream, Buffer.from(events.map((e) => `event: message\ndata: ${JSON.stringify(e)}\n\n`).join(''))).body!.toString('utf8');
  const [request, answer] = sse.split('\n\n').filter(Boolean).map((e) => JSON.parse(e.split('\n').find((l) => l.startsWith('data: '))!.slice(6)));
  assert.equal(request.id, '**** **** **** 1111', "the server's own id is inspected");
  assert.equal(answer.id, card);
  assert.equal(answer.result.content[0].text, 'card **** **** **** 6467');
});

test('a tool list is filtered whatever the status and the content type; a successful answer that is not JSON is replaced, an error page passes', () => {
  const grants = [{ upstream: 'billing', tools: [{ name: 'read_card' }] }];
  const list = JSON.stringify({ jsonrpc: '2.0', id: 3, result: { tools: ['read_card', 'admin_console'].map((name) => ({ name, inputSchema: { type: 'object' } })) } });
  const listRequest = { jsonrpc: '2.0', id: 3, method: 'tools/list', params: {} };
  for (const dataProtection of [undefined, { profiles: ['pci-dss'] }]) {
    for (const [status, contentType, framed] of [
      ['201', 'text/event-stream', `event: message\ndata: ${list}\n\n`],
      ['200', 'application/octet-stream', list],
      ['200', null, list],
      ['200', 'image/png', list],
      ['203', 'text/plain', list],
      ['200', 'application/x-ndjson', list],
      ['200', 'application/json; charset=iso-8859-1', list],
      ['500', 'application/json', list],
    ] as const) {
      const processor = createStreamProcessor(route, deps(policyWith({ grants, ...(dataProtection ? { dataProtection } : {}) })));
      startMcp(processor, listRequest);
      const onHeaders = answerHeaders(processor, status, contentType);
      assert.ok(onHeaders?.mode_override, `${status} ${contentType}: the body is asked for`);
      if (onHeaders.mode_override.response_body_mode === 'STREAMED') {
        assert.deepEqual(onHeaders.response_headers?.response?.header_mutation?.remove_headers, ['content-length'], 'a streamed answer is rewritten: its declared length goes');
      }
      const out = answerBody(processor, Buffer.from(framed)).body?.toString('utf8') ?? '';
      assert.ok(out.includes('read_card') && !out.includes('admin_console'), `${status} ${contentType} (${dataProtection ? 'with' : 'without'} data protection): ${out}`);
    }
  }
  for (const [status, body, replaced] of [['200', '\x89PNG not a tool list', true], ['502', '<html>bad gateway</html>', false]] as const) {
    const outcomes: [Decision, DecisionOutcome][] = [];
    const processor = createStreamProcessor(route, deps(policyWith({ grants }), [], outcomes));
    startMcp(processor, listRequest);
    answerHeaders(processor, status, 'image/png');
    const out = answerBody(processor, Buffer.from(body));
    if (!replaced) {
      assert.equal(out.body, null, 'an error page passes as it came');
      continue;
    }
    const error = JSON.parse(out.body!.toString('utf8'));
    assert.equal(error.id, 3);
    assert.equal(error.error.data.mandate.code, 'upstream_invalid_response');
    assert.equal(out.headers['content-type'], 'application/json');
    processor.finish();
    assert.equal(outcomes[0]![1].answerRefusal?.reason.code, 'upstream_invalid_response');
  }
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

/** What reaches the agent of an answer sent in chunks cut at `cuts`. */
function answerChunks(processor: ReturnType<typeof createStreamProcessor>, text: string, cuts: number[]): string {
  let out = '';
  let from = 0;
  for (const [i, cut] of [...cuts, text.length].entries()) {
    const chunk = Buffer.from(text.slice(from, cut));
    from = cut;
    const mutation = handleNow(processor, { request: 'response_body', response_body: { body: chunk, end_of_stream: i === cuts.length } })?.response_body?.response?.body_mutation;
    out += mutation === undefined ? chunk.toString('utf8') : 'body' in mutation ? mutation.body.toString('utf8') : '';
  }
  return out;
}

test('an event stream is framed as clients read it: CR-only or mixed line ends, a final event without its blank line, data over several lines', () => {
  const grants = [{ upstream: 'billing', tools: [{ name: 'read_card' }] }];
  const listRequest = { jsonrpc: '2.0', id: 3, method: 'tools/list', params: {} };
  const list = JSON.stringify({ jsonrpc: '2.0', id: 3, result: { tools: ['read_card', 'admin_console'].map((name) => ({ name, description: `reads ${card}`, inputSchema: { type: 'object' } })) } });
  const notice = JSON.stringify({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: `card ${card}` } });
  const halfway = list.indexOf('"result"');
  const framings: [string, string][] = [
    ['CR-only', `event: message\rdata: ${notice}\r\revent: message\rdata: ${list}\r\r`],
    ['no blank line after the last event', `event: message\ndata: ${notice}\n\nevent: message\ndata: ${list}`],
    ['a lone CR after the last event', `data: ${notice}\r\n\r\ndata: ${list}\r`],
    ['mixed line ends', `event: message\r\ndata: ${notice}\r\n\revent: message\rdata: ${list}\n\r\n`],
    ['JSON over two data: lines', `event: message\r\ndata: ${notice}\n\nevent: message\rdata: ${list.slice(0, halfway)}\rdata: ${list.slice(halfway)}\r\r`],
  ];
  for (const dataProtection of [undefined, { profiles: ['pci-dss'] }]) {
    for (const [label, text] of framings) {
      for (let cut = 0; cut <= text.length; cut += label === 'mixed line ends' ? 1 : 97) {
        const processor = createStreamProcessor(route, deps(policyWith({ grants, ...(dataProtection ? { dataProtection } : {}) })));
        startMcp(processor, listRequest);
        answerHeaders(processor, '200', 'text/event-stream');
        const out = answerChunks(processor, text, cut === 0 ? [] : [cut]);
        const where = `${label}, cut at ${cut}, ${dataProtection ? 'with' : 'without'} data protection: ${JSON.stringify(out)}`;
        assert.ok(out.includes('read_card') && !out.includes('admin_console'), where);
        if (dataProtection) assert.ok(!out.includes(card) && !out.includes('4539'), where);
        assert.ok(out.endsWith('\n\n'), `${where}: every event goes out complete`);
      }
    }
  }
});

test('in an answer to tools/list, an event that is not JSON is replaced by an error, as a whole answer that is not JSON is', () => {
  const outcomes: [Decision, DecisionOutcome][] = [];
  const processor = createStreamProcessor(route, deps(policyWith({ grants: [{ upstream: 'billing', tools: [{ name: 'read_card' }] }] }), [], outcomes));
  startMcp(processor, { jsonrpc: '2.0', id: 3, method: 'tools/list', params: {} });
  answerHeaders(processor, '200', 'text/event-stream');
  // JSON.parse refuses NaN; a lenient client (Python's json module) reads this tool list.
  const out = answerChunks(processor, `id: 0\ndata: \n\nevent: message\ndata: {"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"admin_console","x":NaN}]}}\n\n`, []);
  assert.ok(!out.includes('admin_console'), out);
  const [priming, event] = out.split('\n\n');
  assert.equal(priming, 'id: 0\ndata: ', "a server's priming event (empty data) passes");
  const error = JSON.parse(event!.split('\n').find((l) => l.startsWith('data: '))!.slice(6));
  assert.equal(error.id, 3);
  assert.equal(error.error.data.mandate.code, 'upstream_invalid_response');
  processor.finish();
  assert.equal(outcomes[0]![1].answerRefusal?.reason.code, 'upstream_invalid_response');
});

test('a tools/call whose arguments are not an object is refused with invalid_params (-32602), recorded, and never forwarded; absent arguments pass', () => {
  const awsKey = 'AKIAZ3MQ7HW2XK4JLP5R';
  const dataProtection = { profiles: ['secrets'], defaultAction: 'block' };
  for (const args of [`key ${awsKey}`, [awsKey], 4539148803436467, null]) {
    const decisions: Decision[] = [];
    const processor = createStreamProcessor(route, deps(policyWith({ dataProtection }), decisions));
    const answer = startMcp(processor, { jsonrpc: '2.0', id: 4, method: 'tools/call', params: { name: 'save_note', arguments: args } });
    const reply = answer?.immediate_response;
    assert.equal(reply?.status?.code, 200, JSON.stringify(args));
    const error = JSON.parse(Buffer.from(reply!.body!).toString('utf8'));
    assert.equal(error.id, 4);
    assert.equal(error.error.code, -32602);
    assert.equal(error.error.data.mandate.code, 'invalid_params');
    assert.equal(decisions.length, 1);
    assert.equal(decisions[0]!.verdict, 'deny');
    assert.equal(decisions[0]!.enforced, true);
    assert.equal(decisions[0]!.reasons[0]!.code, 'invalid_params');
    assert.ok(!JSON.stringify(auditEventFromDecision(decisions[0]!, 'k'.repeat(32))).includes(awsKey), 'the audit record does not keep the value');
  }
  // Monitor mode cannot forward a malformed call either.
  const monitored = createStreamProcessor(route, deps(policyWith({ mode: 'monitor', dataProtection })));
  const refused = startMcp(monitored, { jsonrpc: '2.0', id: 5, method: 'tools/call', params: { name: 'save_note', arguments: `key ${awsKey}` } });
  assert.equal(JSON.parse(Buffer.from(refused!.immediate_response!.body!).toString('utf8')).error.data.mandate.code, 'invalid_params');
  const absent = createStreamProcessor(route, deps(policyWith({ dataProtection })));
  assert.deepEqual(startMcp(absent, { jsonrpc: '2.0', id: 6, method: 'tools/call', params: { name: 'save_note' } }), { request_body: { response: { status: 'CONTINUE' } } });
});

/** The audit event a decision becomes, as text: what the journal and the database keep. */
const recorded = (decision: Decision, extra: Parameters<typeof auditEventFromDecision>[2] = {}) => JSON.stringify(auditEventFromDecision(decision, 'k'.repeat(32), extra));

test('refusals record the path, tool and method with flagged segments redacted, before authentication too', () => {
  const awsKey = 'AKIAZ3MQ7HW2XK4JLP5R';
  const bundle = configBundleSchema.parse({
    upstreams: [
      { kind: 'Upstream', name: 'notes', protocol: 'rest', url: 'http://127.0.0.1:2/api' },
      { kind: 'Upstream', name: 'billing', protocol: 'mcp', url: 'http://127.0.0.1:1/mcp' },
    ],
    personas: [
      {
        kind: 'Persona',
        name: 'p',
        description: 'test',
        grants: [{ upstream: 'notes', operations: [{ method: 'GET', path: '/keys/{key}' }, { method: 'POST', path: '/keys/{key}' }] }, { upstream: 'billing', tools: [{ name: 'read_card' }] }],
        dataProtection: { profiles: ['pci-dss', 'secrets'], defaultAction: 'detect' },
      },
    ],
  });
  const restRoute = { persona: 'p', upstream: 'notes', kind: 'rest' as const, pathPrefix: '/personas/p/notes', configVersion: 1 };
  const rest = (method: string, path: string, extra: Record<string, string>, endOfStream = true): Decision => {
    const decisions: Decision[] = [];
    const processor = createStreamProcessor(restRoute, deps(withBundle(bundle), decisions));
    const answer = handleNow(processor, { request: 'request_headers', request_headers: { ...headers({ ':method': method, ':path': path, ...extra }), end_of_stream: endOfStream } });
    assert.ok(answer?.immediate_response, `${method} ${path} is refused`);
    assert.equal(decisions.length, 1);
    return decisions[0]!;
  };
  const cases: [string, Decision][] = [
    ['credential_missing', rest('GET', `/personas/p/notes/keys/${awsKey}/x`, {})],
    ['credential_malformed', rest('GET', `/personas/p/notes/keys/${awsKey}/x`, { authorization: 'Bearer nope' })],
    ['invalid_path', rest('GET', `/personas/p/notes/keys/${awsKey}/%2e%2e%2fx`, { authorization: `Bearer ${token}` })],
    ['unsupported_content_encoding', rest('POST', `/personas/p/notes/keys/${awsKey}`, { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-encoding': 'gzip' }, false)],
    ['operation_not_granted', rest('DELETE', `/personas/p/notes/keys/${awsKey}`, { authorization: `Bearer ${token}` })],
  ];
  for (const [code, decision] of cases) {
    assert.equal(decision.reasons[0]!.code, code);
    const text = recorded(decision);
    assert.ok(!text.includes(awsKey), `${code}: ${text}`);
    assert.match(JSON.parse(text).tool, /\/keys\/\[redacted\]/, code);
  }
  // MCP: a tool name or a method carrying a value is recorded redacted, in the reason's message too.
  const mcp = (message: unknown): Decision => {
    const decisions: Decision[] = [];
    const processor = createStreamProcessor(route, deps(withBundle(bundle), decisions));
    startMcp(processor, message);
    return decisions.at(-1)!;
  };
  const tool = mcp({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: `pay ${card}`, arguments: {} } });
  assert.equal(tool.reasons[0]!.code, 'tool_not_granted');
  assert.ok(!recorded(tool).includes('4539'), recorded(tool));
  assert.equal(JSON.parse(recorded(tool)).tool, '[redacted]');
  const method = mcp({ jsonrpc: '2.0', id: 2, method: `x/${awsKey}`, params: {} });
  assert.equal(method.reasons[0]!.code, 'method_not_granted');
  assert.ok(!recorded(method).includes(awsKey), recorded(method));
  assert.equal(JSON.parse(recorded(method)).operation, 'x/[redacted]');
});

test('without a Persona to inspect with (none known at this config version), a refused path is recorded redacted below the endpoint', () => {
  const awsKey = 'AKIAZ3MQ7HW2XK4JLP5R';
  const decisions: Decision[] = [];
  const goneRoute = { persona: 'gone', upstream: 'notes', kind: 'rest' as const, pathPrefix: '/personas/gone/notes', configVersion: 1 };
  const processor = createStreamProcessor(goneRoute, deps(policyWith({}), decisions));
  const answer = handleNow(processor, { request: 'request_headers', request_headers: { ...headers({ ':method': 'GET', ':path': `/personas/gone/notes/keys/${awsKey}` }), end_of_stream: true } });
  assert.equal(answer?.immediate_response?.status?.code, 404);
  assert.equal(decisions[0]!.reasons[0]!.code, 'persona_unknown');
  assert.equal(JSON.parse(recorded(decisions[0]!)).tool, 'GET /personas/gone/notes/[redacted]');
});

test("the response event of a call whose answer was refused records the refusal and the status the agent got; the answer's headers alike", () => {
  const dataProtection = { profiles: ['pci-dss'], rules: [{ groups: ['financial'], direction: 'response', action: 'block' }] };
  const result = JSON.stringify({ jsonrpc: '2.0', id: 9, result: { content: [{ type: 'text', text: `card ${card}` }] } });
  const responseEvent = (outcomes: [Decision, DecisionOutcome][]) => {
    assert.equal(outcomes.length, 1);
    const [decision, outcome] = outcomes[0]!;
    return JSON.parse(recorded(decision, { kind: 'response', upstreamStatus: outcome.upstreamStatus, answerRefusal: outcome.answerRefusal }));
  };
  // MCP: a blocked tool result becomes a JSON-RPC error in a 200 answer.
  {
    const decisions: Decision[] = [];
    const outcomes: [Decision, DecisionOutcome][] = [];
    const processor = createStreamProcessor(route, deps(policyWith({ dataProtection }), decisions, outcomes));
    startToolCall(processor, {});
    answerHeaders(processor, '200', 'application/json');
    const out = answerBody(processor, Buffer.from(result));
    assert.match(out.body!.toString('utf8'), /sensitive_data_blocked/);
    processor.finish();
    const event = responseEvent(outcomes);
    assert.equal(event.verdict, 'deny');
    assert.equal(event.enforced, true);
    assert.equal(event.reasons[0].code, 'sensitive_data_blocked');
    assert.equal(event.upstreamStatus, 200);
    assert.equal(event.agentStatus, 200);
    assert.equal(decisions.length, 1, 'one decision, one response: no extra event');
  }
  // The same card in an answer header: refused at the headers, recorded the same way.
  {
    const decisions: Decision[] = [];
    const outcomes: [Decision, DecisionOutcome][] = [];
    const processor = createStreamProcessor(route, deps(policyWith({ dataProtection }), decisions, outcomes));
    startToolCall(processor, {});
    const answer = handleNow(processor, { request: 'response_headers', response_headers: headers({ ':status': '200', 'content-type': 'application/json', 'x-card': card }) } as ProcessingRequest);
    assert.equal(answer?.immediate_response?.status?.code, 200);
    processor.finish();
    const event = responseEvent(outcomes);
    assert.equal(event.verdict, 'deny');
    assert.equal(event.reasons[0].code, 'sensitive_data_blocked');
    assert.equal(event.agentStatus, 200);
    assert.equal(decisions.length, 1, 'no separate decision event for the answer');
  }
  // A JSON-lines stream cut by a blocked value.
  {
    const outcomes: [Decision, DecisionOutcome][] = [];
    const processor = createStreamProcessor(route, deps(policyWith({ dataProtection }), [], outcomes));
    startToolCall(processor, {});
    answerHeaders(processor, '200', 'application/jsonl');
    answerBody(processor, Buffer.from(`${JSON.stringify({ row: 1 })}\n${JSON.stringify({ row: 2, card })}\n`));
    processor.finish();
    const event = responseEvent(outcomes);
    assert.equal(event.verdict, 'deny');
    assert.equal(event.reasons[0].code, 'sensitive_data_blocked');
    assert.equal(event.agentStatus, 200);
  }
  // REST: a blocked answer is a 502.
  {
    const bundle = configBundleSchema.parse({
      upstreams: [{ kind: 'Upstream', name: 'notes', protocol: 'rest', url: 'http://127.0.0.1:2/api' }],
      personas: [{ kind: 'Persona', name: 'p', description: 'test', grants: [{ upstream: 'notes', operations: [{ method: 'GET', path: '/notes' }] }], dataProtection }],
    });
    const outcomes: [Decision, DecisionOutcome][] = [];
    const restRoute = { persona: 'p', upstream: 'notes', kind: 'rest' as const, pathPrefix: '/personas/p/notes', configVersion: 1 };
    const processor = createStreamProcessor(restRoute, deps(withBundle(bundle), [], outcomes));
    handleNow(processor, { request: 'request_headers', request_headers: { ...headers({ ':method': 'GET', ':path': '/personas/p/notes/notes', authorization: `Bearer ${token}` }), end_of_stream: true } });
    answerHeaders(processor, '200', 'application/json');
    const answer = handleNow(processor, { request: 'response_body', response_body: { body: Buffer.from(JSON.stringify({ card })), end_of_stream: true } });
    assert.equal(answer?.immediate_response?.status?.code, 502);
    processor.finish();
    const event = responseEvent(outcomes);
    assert.equal(event.verdict, 'deny');
    assert.equal(event.reasons[0].code, 'sensitive_data_blocked');
    assert.equal(event.upstreamStatus, 200);
    assert.equal(event.agentStatus, 502);
  }
});

test('a blocked message names what was blocked, the group and the detector, never the value', () => {
  const awsKey = 'AKIAZ3MQ7HW2XK4JLP5R';
  const bundle = configBundleSchema.parse({
    upstreams: [
      { kind: 'Upstream', name: 'notes', protocol: 'rest', url: 'http://127.0.0.1:2/api', forwardHeaders: ['x-note'] },
      { kind: 'Upstream', name: 'billing', protocol: 'mcp', url: 'http://127.0.0.1:1/mcp' },
    ],
    personas: [
      {
        kind: 'Persona',
        name: 'p',
        description: 'test',
        grants: [{ upstream: 'notes', operations: [{ method: 'POST', path: '/notes' }, { method: 'GET', path: '/notes' }] }, { upstream: 'billing', tools: [{ name: '*' }] }],
        dataProtection: { profiles: ['secrets', 'pci-dss'], defaultAction: 'block' },
      },
    ],
  });
  const restRoute = { persona: 'p', upstream: 'notes', kind: 'rest' as const, pathPrefix: '/personas/p/notes', configVersion: 1 };
  const messageOf = (answer: ProcessingResponse | null) => {
    const body = JSON.parse(Buffer.from(answer!.immediate_response!.body!).toString('utf8'));
    const message: string = body.title ?? body.error?.message ?? body[0]?.error?.message;
    assert.ok(!message.includes(awsKey) && !message.includes('4539'), message);
    return message;
  };
  const restProcessor = () => createStreamProcessor(restRoute, deps(withBundle(bundle)));
  const onBody = restProcessor();
  handleNow(onBody, { request: 'request_headers', request_headers: { ...headers({ ':method': 'POST', ':path': '/personas/p/notes/notes', 'content-type': 'application/json', authorization: `Bearer ${token}` }) } });
  assert.equal(messageOf(handleNow(onBody, { request: 'request_body', request_body: { body: Buffer.from(JSON.stringify({ key: awsKey })), end_of_stream: true } })), 'the request body holds credentials data (aws-access-key-id) that this Persona may not send; remove it and retry');
  const inHeader = handleNow(restProcessor(), { request: 'request_headers', request_headers: { ...headers({ ':method': 'GET', ':path': '/personas/p/notes/notes', authorization: `Bearer ${token}`, 'x-note': awsKey }), end_of_stream: true } });
  assert.match(messageOf(inHeader), /^a request header holds credentials data \(aws-access-key-id\) that this Persona may not send; remove it and retry$/);
  const inQuery = handleNow(restProcessor(), { request: 'request_headers', request_headers: { ...headers({ ':method': 'GET', ':path': `/personas/p/notes/notes?k=${awsKey}`, authorization: `Bearer ${token}` }), end_of_stream: true } });
  assert.match(messageOf(inQuery), /^the query string holds credentials data/);
  const mcp = createStreamProcessor(route, deps(withBundle(bundle)));
  assert.match(messageOf(startToolCall(mcp, { key: awsKey })), /^Mandate: the tool arguments hold credentials data \(aws-access-key-id\) that this Persona may not send; remove it and retry$/);
  const result = createStreamProcessor(route, deps(withBundle(bundle)));
  startToolCall(result, {});
  answerHeaders(result, '200', 'application/json');
  const withheld = JSON.parse(answerBody(result, Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 9, result: { content: [{ type: 'text', text: `card ${card}` }] } }))).body!.toString('utf8'));
  assert.equal(withheld.error.message, 'Mandate: the tool result holds financial data (payment-card-visa) that this Persona may not receive; it was withheld');
  const answer = restProcessor();
  handleNow(answer, { request: 'request_headers', request_headers: { ...headers({ ':method': 'GET', ':path': '/personas/p/notes/notes', authorization: `Bearer ${token}` }), end_of_stream: true } });
  answerHeaders(answer, '200', 'application/json');
  const refused = handleNow(answer, { request: 'response_body', response_body: { body: Buffer.from(JSON.stringify({ card })), end_of_stream: true } });
  assert.equal(messageOf(refused), 'the answer holds financial data (payment-card-visa) that this Persona may not receive; it was withheld');
});

test('data-flow memory is the agent\'s: a value read under one Mcp-Session-Id (or none) cannot leave under another', () => {
  for (const [readSession, sendSession] of [['sess-A', 'sess-B'], [undefined, 'made-up'], ['sess-A', undefined]] as const) {
    const policy = billingAndDevbox('enforce', { profiles: ['pci-dss'], defaultAction: 'detect', flow: { enabled: true } }, { forwardHeaders: ['x-note'] });
    const decisions: Decision[] = [];
    const dependencies = deps(policy, decisions);
    const read = createStreamProcessor(route, dependencies);
    const session = (id: string | undefined): Record<string, string> => (id === undefined ? {} : { 'mcp-session-id': id });
    handleNow(read, { request: 'request_headers', request_headers: { ...headers({ ':method': 'POST', ':path': '/personas/p/billing', 'content-type': 'application/json', authorization: `Bearer ${token}`, ...session(readSession) }) } });
    handleNow(read, { request: 'request_body', request_body: { body: Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name: 'save_note', arguments: {} } })), end_of_stream: true } });
    handleNow(read, { request: 'response_headers', response_headers: headers({ ':status': '200', 'content-type': 'application/json' }) } as ProcessingRequest);
    handleNow(read, { request: 'response_body', response_body: { body: Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 9, result: { content: [{ type: 'text', text: `card ${card}` }] } })), end_of_stream: true } });
    const devRoute = { persona: 'p', upstream: 'devbox', kind: 'rest' as const, pathPrefix: '/personas/p/devbox', configVersion: 1 };
    const send = createStreamProcessor(devRoute, dependencies);
    const answer = handleNow(send, { request: 'request_headers', request_headers: { ...headers({ ':method': 'GET', ':path': '/personas/p/devbox/notes', authorization: `Bearer ${token}`, 'x-note': card, ...session(sendSession) }), end_of_stream: true } });
    assert.equal(answer?.immediate_response?.status?.code, 403, `read in ${readSession ?? 'no session'}, sent in ${sendSession ?? 'no session'}`);
    assert.equal(decisions.at(-1)!.reasons[0]!.code, 'sensitive_data_flow_blocked');
  }
});

test('a tool name, method or resource URI carrying sensitive data is inspected before forwarding: a finding to mask, redact or block refuses the message, a detect finding is recorded', () => {
  const awsKey = 'AKIAZ3MQ7HW2XK4JLP5R';
  const refusedWith = (dataProtection: Record<string, unknown>, message: Record<string, unknown>) => {
    const decisions: Decision[] = [];
    const processor = createStreamProcessor(route, deps(policyWith({ dataProtection }), decisions));
    const answer = startMcp(processor, { jsonrpc: '2.0', ...message });
    return { answer, decision: decisions.at(-1)! };
  };
  const cases: [string, Record<string, unknown>, Record<string, unknown>, string][] = [
    ['a card in the tool name (mask)', { profiles: ['pci-dss'] }, { id: 1, method: 'tools/call', params: { name: `pay ${card}`, arguments: {} } }, 'message.params.name'],
    ['a key in the tool name (redact)', { profiles: ['secrets'], defaultAction: 'redact' }, { id: 2, method: 'tools/call', params: { name: `use/${awsKey}`, arguments: {} } }, 'message.params.name'],
    ['a key in the tool name (block)', { profiles: ['secrets'], defaultAction: 'block' }, { id: 3, method: 'tools/call', params: { name: awsKey, arguments: {} } }, 'message.params.name'],
    ['a key in a notification method', { profiles: ['secrets'] }, { method: `notifications/${awsKey}` }, 'message.method'],
    ['a card in a resource URI', { profiles: ['pci-dss'] }, { method: 'notifications/x', params: { uri: `file:///cards/${card}` } }, 'params.uri'],
  ];
  for (const [what, dataProtection, message, location] of cases) {
    const { answer, decision } = refusedWith(dataProtection, message);
    assert.ok(answer?.immediate_response, `${what}: refused, never forwarded`);
    assert.ok(!JSON.stringify(answer).includes(awsKey) && !JSON.stringify(answer).includes('4539'), `${what}: the refusal does not echo the value`);
    assert.equal(decision.verdict, 'deny', what);
    assert.equal(decision.enforced, true, what);
    assert.equal(decision.reasons[0]!.code, 'sensitive_data_blocked', what);
    assert.ok(decision.findings.some((f) => f.location === location), `${what}: ${JSON.stringify(decision.findings)}`);
    const text = recorded(decision);
    assert.ok(!text.includes(awsKey) && !text.includes('4539'), `${what}: ${text}`);
  }
  // A JSON-RPC error for a request, with the stable code.
  const { answer } = refusedWith({ profiles: ['pci-dss'] }, { id: 7, method: 'tools/call', params: { name: `pay ${card}`, arguments: {} } });
  const error = JSON.parse(Buffer.from(answer!.immediate_response!.body!).toString('utf8'));
  assert.equal(error.id, 7);
  assert.equal(error.error.data.mandate.code, 'sensitive_data_blocked');
  assert.match(error.error.message, /tool name/);
  // Detect only: forwarded as sent, the finding recorded, the name recorded redacted.
  const detected = refusedWith({ profiles: ['pci-dss'], defaultAction: 'detect' }, { id: 8, method: 'tools/call', params: { name: `pay ${card}`, arguments: {} } });
  assert.deepEqual(detected.answer, { request_body: { response: { status: 'CONTINUE' } } });
  assert.equal(detected.decision.verdict, 'allow');
  assert.deepEqual(detected.decision.findings.map((f) => [f.location, f.action]), [['message.params.name', 'detect']]);
  assert.equal(JSON.parse(recorded(detected.decision)).tool, '[redacted]');
  // Monitor mode records what would have been refused and forwards the call.
  const monitor = (() => {
    const decisions: Decision[] = [];
    const processor = createStreamProcessor(route, deps(policyWith({ mode: 'monitor', dataProtection: { profiles: ['pci-dss'] } }), decisions));
    return { answer: startMcp(processor, { jsonrpc: '2.0', id: 10, method: 'tools/call', params: { name: `pay ${card}`, arguments: {} } }), decision: decisions.at(-1)! };
  })();
  assert.equal(monitor.answer?.immediate_response, undefined);
  assert.deepEqual([monitor.decision.verdict, monitor.decision.enforced, monitor.decision.reasons[0]!.code], ['deny', false, 'sensitive_data_blocked']);
});

test('refusal messages never store agent text raw: a key in the content type, the content encoding, a body that is not JSON, or a CEL condition that fails on it is absent from the audit record', () => {
  const awsKey = 'AKIAZ3MQ7HW2XK4JLP5R';
  const bundle = configBundleSchema.parse({
    upstreams: [
      { kind: 'Upstream', name: 'notes', protocol: 'rest', url: 'http://127.0.0.1:2/api' },
      { kind: 'Upstream', name: 'billing', protocol: 'mcp', url: 'http://127.0.0.1:1/mcp' },
    ],
    personas: [
      {
        kind: 'Persona',
        name: 'p',
        description: 'test',
        grants: [
          { upstream: 'notes', operations: [{ method: 'POST', path: '/notes', when: 'int(body.n) > 1' }, { method: 'GET', path: '/notes', when: 'int(query.n) > 1' }] },
          { upstream: 'billing', tools: [{ name: 'count', when: 'int(args.n) > 1' }, { name: 'match', when: "args.text.matches(args.pattern)" }] },
        ],
        dataProtection: { profiles: ['secrets'], defaultAction: 'detect' },
      },
    ],
  });
  const restRoute = { persona: 'p', upstream: 'notes', kind: 'rest' as const, pathPrefix: '/personas/p/notes', configVersion: 1 };
  const refusal = (processorRoute: typeof route | typeof restRoute, requestHeaders: Record<string, string>, body: string | null): Decision => {
    const decisions: Decision[] = [];
    const processor = createStreamProcessor(processorRoute, deps(withBundle(bundle), decisions));
    let answer = handleNow(processor, { request: 'request_headers', request_headers: { ...headers({ authorization: `Bearer ${token}`, ...requestHeaders }), end_of_stream: body === null } });
    if (!answer?.immediate_response && body !== null) answer = handleNow(processor, { request: 'request_body', request_body: { body: Buffer.from(body), end_of_stream: true } });
    assert.ok(answer?.immediate_response, JSON.stringify(requestHeaders));
    assert.equal(decisions.length, 1);
    return decisions[0]!;
  };
  const mcpPost = { ':method': 'POST', ':path': '/personas/p/billing', 'content-type': 'application/json' };
  const cases: [string, Decision][] = [
    ['unsupported_media_type', refusal(route, { ...mcpPost, 'content-type': `text/plain; key=${awsKey}` }, '{}')],
    ['unsupported_content_encoding', refusal(route, { ...mcpPost, 'content-encoding': `gzip, ${awsKey}` }, '{}')],
    ['unsupported_content_encoding', refusal(restRoute, { ':method': 'POST', ':path': '/personas/p/notes/notes', 'content-type': 'application/json', 'content-encoding': awsKey }, '{}')],
    ['invalid_json', refusal(route, mcpPost, `{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "count", "arguments": {"n": ${awsKey}}}}`)],
    ['invalid_json', refusal(route, mcpPost, awsKey)],
    ['condition_error', refusal(route, mcpPost, JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'count', arguments: { n: awsKey } } }))],
    ['condition_error', refusal(route, mcpPost, JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'match', arguments: { text: 'x', pattern: `${awsKey}(` } } }))],
    // A REST operation whose condition fails is refused as not meeting it (authorizeOperation), in words of its own.
    ['condition_not_met', refusal(restRoute, { ':method': 'POST', ':path': '/personas/p/notes/notes', 'content-type': 'application/json' }, JSON.stringify({ n: awsKey }))],
    ['condition_not_met', refusal(restRoute, { ':method': 'GET', ':path': `/personas/p/notes/notes?n=${awsKey}` }, null)],
  ];
  for (const [code, decision] of cases) {
    assert.equal(decision.reasons[0]!.code, code);
    const text = recorded(decision);
    // Not the key (in any case: media types and codings are read in lower case); the reasons not even a part
    // of it, as a parser's message would quote it (the masked arguments keep 8 characters of a string by design).
    assert.ok(!text.toLowerCase().includes(awsKey.toLowerCase()), `${code}: ${text}`);
    const reasons = JSON.stringify(JSON.parse(text).reasons);
    assert.ok(!reasons.toLowerCase().includes(awsKey.slice(0, 8).toLowerCase()), `${code}: ${reasons}`);
  }
  // A quoted text is cut: a long content type does not fill the record.
  const long = refusal(route, { ...mcpPost, 'content-type': `text/plain; x=${'y'.repeat(5000)}` }, '{}');
  assert.ok(long.reasons[0]!.message.length < 300, long.reasons[0]!.message);
});

test('masking a form body or a query rewrites only the values it edited: every other byte goes on as sent', () => {
  const digits = card.replaceAll(' ', '');
  const bundle = configBundleSchema.parse({
    upstreams: [{ kind: 'Upstream', name: 'notes', protocol: 'rest', url: 'http://127.0.0.1:2/api' }],
    personas: [{ kind: 'Persona', name: 'p', description: 'test', grants: [{ upstream: 'notes', operations: [{ method: 'POST', path: '/notes' }, { method: 'GET', path: '/notes' }] }], dataProtection: { profiles: ['pci-dss'] } }],
  });
  const restRoute = { persona: 'p', upstream: 'notes', kind: 'rest' as const, pathPrefix: '/personas/p/notes', configVersion: 1 };
  const forwardedForm = (form: string): string => {
    const processor = createStreamProcessor(restRoute, deps(withBundle(bundle)));
    handleNow(processor, { request: 'request_headers', request_headers: headers({ ':method': 'POST', ':path': '/personas/p/notes/notes', 'content-type': 'application/x-www-form-urlencoded', authorization: `Bearer ${token}` }) });
    const mutation = handleNow(processor, { request: 'request_body', request_body: { body: Buffer.from(form), end_of_stream: true } })?.request_body?.response?.body_mutation;
    assert.ok(mutation && 'body' in mutation, `${form}: rewritten`);
    return Buffer.from(mutation.body!).toString('utf8');
  };
  assert.equal(forwardedForm(`a=1;card=${digits}`), 'a=1;card=************6467');
  assert.equal(forwardedForm(`a=%zz&b=x+y&c=x%20y&card=${digits}&d=%7E`), 'a=%zz&b=x+y&c=x%20y&card=************6467&d=%7E');
  const forwardedPath = (path: string): string => {
    const processor = createStreamProcessor(restRoute, deps(withBundle(bundle)));
    const answer = handleNow(processor, { request: 'request_headers', request_headers: { ...headers({ ':method': 'GET', ':path': path, authorization: `Bearer ${token}` }), end_of_stream: true } });
    const set = answer?.request_headers?.response?.header_mutation?.set_headers?.find((h) => h.header.key === ':path');
    assert.ok(set, `${path}: rewritten`);
    return Buffer.from(set.header.raw_value!).toString('latin1');
  };
  assert.equal(forwardedPath(`/personas/p/notes/notes?q=a;b&x=%zz&c=${digits}&s=x%20y`), '/personas/p/notes/notes?q=a;b&x=%zz&c=************6467&s=x%20y');
  const mcp = createStreamProcessor(route, deps(policyWith({ dataProtection: { profiles: ['pci-dss'] } })));
  const onHeaders = startHeaders(mcp, {}, `/personas/p/billing?k=%7e;x&c=${digits}`);
  const mcpPath = onHeaders?.request_headers?.response?.header_mutation?.set_headers?.find((h) => h.header.key === ':path');
  assert.equal(Buffer.from(mcpPath!.header.raw_value!).toString('latin1'), '/personas/p/billing?k=%7e;x&c=************6467');
});

test('behaviour reasons and alerts name the tool as the audit trail records it, never with a flagged value in it', () => {
  const decisions: Decision[] = [];
  const alerts = new MemoryAlertSink();
  const policy = policyWith({
    dataProtection: { profiles: ['pci-dss'], defaultAction: 'detect' },
    behaviour: {
      rules: [{ name: 'pay-twice', steps: [{ match: { tool: 'pay*' } }, { match: { tool: 'pay*' }, within: '10m' }], action: 'alert' }],
      guardrails: { circuitBreaker: { repeatedCalls: { threshold: 2 } } },
    },
  });
  const dependencies = { ...deps(policy, decisions), behaviour: createBehaviourEngine({ clock: () => Date.now(), store: new InMemorySessionStateStore(), alertSink: alerts }) };
  for (const id of [1, 2]) {
    const processor = createStreamProcessor(route, dependencies);
    const answer = startMcp(processor, { jsonrpc: '2.0', id, method: 'tools/call', params: { name: `pay ${card}`, arguments: {} } });
    // A detect finding in the name lets the call through; the second is throttled by the circuit breaker.
    if (id === 1) assert.equal(answer?.immediate_response, undefined);
  }
  assert.ok(alerts.alerts.length > 0, 'the behaviour stage alerted');
  const alertText = JSON.stringify(alerts.alerts);
  assert.ok(!alertText.includes('4539'), alertText);
  assert.equal(alerts.alerts.at(-1)!.tool, '[redacted]');
  const reasons = decisions.at(-1)!.reasons;
  assert.ok(reasons.some((r) => r.stage === 'behaviour'), JSON.stringify(reasons));
  assert.ok(!recorded(decisions.at(-1)!).includes('4539'), recorded(decisions.at(-1)!));
});

test("a whole answer of no declared length is asked for as BUFFERED_PARTIAL and refused once it is over maxBodyBytes, or handed over unfinished", () => {
  const limit = 2048;
  const result = (bytes: number) => {
    const head = `{"jsonrpc":"2.0","id":9,"result":{"content":[{"type":"text","text":"card ${card} `;
    return Buffer.from(`${head}${'a'.repeat(bytes - head.length - 5)}"}]}}`);
  };
  const start = (mode: 'enforce' | 'monitor', outcomes: [Decision, DecisionOutcome][] = []) => {
    const processor = createStreamProcessor(route, deps(policyWith({ mode, maxBodyBytes: limit, dataProtection: { profiles: ['pci-dss'] } }), [], outcomes));
    startToolCall(processor, {});
    return processor;
  };
  // A declared length is checked at the headers; an answer within it is buffered whole.
  const declared = start('enforce');
  const declaredHeaders = handleNow(declared, { request: 'response_headers', response_headers: headers({ ':status': '200', 'content-type': 'application/json', 'content-length': String(limit) }) } as ProcessingRequest);
  assert.equal(declaredHeaders?.mode_override?.response_body_mode, 'BUFFERED');
  // Exactly the limit, whole: read and masked.
  const within = start('enforce');
  assert.equal(answerHeaders(within, '200', 'application/json')?.mode_override?.response_body_mode, 'BUFFERED_PARTIAL');
  const masked = answerBody(within, result(limit));
  assert.ok(masked.body && !masked.body.includes(card) && masked.body.includes('**** **** **** 6467'));
  // One byte over, whole; or the part Envoy held of a longer answer (no end_of_stream): refused, nothing passes.
  for (const [bytes, endOfStream, size] of [[limit + 1, true, `is ${limit + 1} bytes`], [limit + 500, false, `is more than ${limit + 500} bytes (it declared no length)`], [100, false, 'did not arrive whole within 100 bytes']] as const) {
    const outcomes: [Decision, DecisionOutcome][] = [];
    const processor = start('enforce', outcomes);
    answerHeaders(processor, '200', 'application/json');
    const answer = handleNow(processor, { request: 'response_body', response_body: { body: result(Math.max(bytes, 100)), end_of_stream: endOfStream } });
    assert.equal(answer?.immediate_response?.status?.code, 200, size);
    const error = JSON.parse(String(answer.immediate_response.body));
    assert.deepEqual([error.id, error.error.code, error.error.data.mandate.code], [9, -32001, 'response_too_large']);
    assert.ok(error.error.message.includes(`the upstream's answer ${size}; this Persona reads at most ${limit} (maxBodyBytes)`), error.error.message);
    assert.ok(!String(answer.immediate_response.body).includes(card));
    processor.finish();
    assert.deepEqual([outcomes[0]![1].answerRefusal?.reason.code, outcomes[0]![1].answerRefusal?.enforced], ['response_too_large', true]);
  }
  // Monitor mode: recorded, and the answer passes as it came.
  const outcomes: [Decision, DecisionOutcome][] = [];
  const monitored = start('monitor', outcomes);
  answerHeaders(monitored, '200', 'application/json');
  assert.deepEqual(handleNow(monitored, { request: 'response_body', response_body: { body: result(limit + 500), end_of_stream: false } }), { response_body: { response: { status: 'CONTINUE' } } });
  assert.deepEqual(handleNow(monitored, { request: 'response_body', response_body: { body: result(200), end_of_stream: true } }), { response_body: { response: { status: 'CONTINUE' } } });
  monitored.finish();
  assert.deepEqual([outcomes[0]![1].answerRefusal?.reason.code, outcomes[0]![1].answerRefusal?.enforced], ['response_too_large', false]);
});

test('an answer labelled as media, a font, an archive, PDF, wasm or protobuf is not asked for under data protection; octet-stream, unknown, office and missing types are sniffed', () => {
  const policy = policyWith({ dataProtection: { profiles: ['pci-dss'] } });
  const binary = [
    'image/png', 'IMAGE/JPEG', 'audio/mpeg', 'video/mp4; codecs="avc1"', 'font/woff2', 'application/pdf',
    'application/zip', 'application/gzip', 'application/x-gzip', 'application/x-tar', 'application/x-7z-compressed', 'application/x-rar-compressed',
    'application/x-bzip2', 'application/x-xz', 'application/zstd', 'application/wasm', 'application/x-protobuf', 'application/protobuf', 'application/grpc+proto',
  ];
  for (const contentType of binary) {
    const processor = createStreamProcessor(route, deps(policy));
    startToolCall(processor, {});
    const onHeaders = answerHeaders(processor, '200', contentType);
    assert.equal(onHeaders?.mode_override?.response_body_mode ?? 'NONE', 'NONE', `${contentType}: its bytes never cross ext_proc`);
    assert.equal(onHeaders?.response_headers?.response?.header_mutation?.remove_headers?.includes('content-length') ?? false, false, `${contentType}: its length stands`);
  }
  const sniffed = [
    'application/octet-stream', null, 'application/x-something-new', 'application/vnd.ms-excel', 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
    'application/csv', 'application/x-zipper-notes', 'image-ish/png',
  ];
  for (const contentType of sniffed) {
    const processor = createStreamProcessor(route, deps(policy));
    startToolCall(processor, {});
    assert.equal(answerHeaders(processor, '200', contentType)?.mode_override?.response_body_mode, 'STREAMED', `${contentType}: sniffed`);
    const out = answerBody(processor, Buffer.from(`name,card\njane,${card}\n`)).body?.toString('utf8') ?? '';
    assert.ok(out.includes('**** **** **** 6467') && !out.includes(card), `${contentType}: read as text (${out})`);
  }
  // image/svg+xml is text: read whole, as any +xml type is.
  const svg = createStreamProcessor(route, deps(policy));
  startToolCall(svg, {});
  assert.equal(answerHeaders(svg, '200', 'image/svg+xml')?.mode_override?.response_body_mode, 'BUFFERED_PARTIAL');
});

test("an unexpected exception is recorded and logged by its class and place, never by its message (which may quote the body)", () => {
  const awsKey = 'AKIAZ3MQ7HW2XK4JLP5R';
  const decisions: Decision[] = [];
  const processor = createStreamProcessor(route, deps(policyWith({}), decisions));
  const request = { request: 'request_headers', request_headers: { ...headers({ ':method': 'POST', ':path': '/personas/p/billing', 'content-type': 'application/json', authorization: `Bearer ${token}` }) } } as ProcessingRequest;
  handleNow(processor, request);
  const error = new SyntaxError(`Unexpected token 'A', "${awsKey}" is not valid JSON`);
  const answer = processor.internalError(request, error);
  assert.equal(answer?.immediate_response?.status?.code, 500);
  const recorded = decisions.at(-1)!.reasons[0]!;
  assert.equal(recorded.code, 'internal_error');
  assert.ok(!recorded.message.includes(awsKey), recorded.message);
  assert.match(recorded.message, /SyntaxError/);
  assert.ok(!errorWithoutMessage(error).includes(awsKey));
  assert.match(errorWithoutMessage(error), /^SyntaxError\n {2}at /);
});
