import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect } from 'nats';
import { alertSubject, FanOutAlertSink, LogAlertSink, MemoryAlertSink, NatsAlertSink, WebhookAlertSink, type BehaviourAlert } from './alerts.ts';
import { bulkReadThenEgress, compileOrThrow, supportPersona, ticketCall } from './fixtures.ts';
import { createBehaviourEngine } from './engine.ts';
import { InMemorySessionStateStore } from './state-store.ts';
import { natsServerMissing, startNatsServer } from '../../test/support/nats-server.ts';

function sampleAlert(persona = 'support'): BehaviourAlert {
  return {
    id: `${persona}-1-1`,
    time: '2026-01-05T09:00:00.000Z',
    persona,
    agent: 'agent-1',
    user: 'alice',
    session: 'session-1',
    upstream: 'mail',
    tool: 'email.send',
    toolClass: 'egress',
    action: 'block',
    enforced: true,
    riskScore: 0.9,
    reasons: [{ stage: 'behaviour', code: 'sequence_rule_matched', message: 'sequence rule "x" matched' }],
    evidence: { sequence: [{ tool: 'tickets.get', toolClass: 'read', count: 200, from: '2026-01-05T08:50:00.000Z', to: '2026-01-05T08:59:00.000Z' }], sessionCalls: 201, rules: ['x'], baselineVersion: null },
  };
}

test('log sink writes one JSON line per alert, and a failing writer does not throw', () => {
  const lines: string[] = [];
  new LogAlertSink((line) => lines.push(line)).emit(sampleAlert());
  assert.equal(lines.length, 1);
  const parsed = JSON.parse(lines[0] ?? '{}') as Record<string, unknown>;
  assert.equal(parsed.type, 'mandate.behaviour.alert');
  assert.equal(parsed.tool, 'email.send');
  assert.doesNotThrow(() =>
    new LogAlertSink(() => {
      throw new Error('disk full');
    }).emit(sampleAlert()),
  );
});

test('webhook sink POSTs alerts in order and retries a 503', async () => {
  const received: BehaviourAlert[] = [];
  let failuresLeft = 1;
  const server = createHttpServer((request, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString()));
    request.on('end', () => {
      if (failuresLeft > 0) {
        failuresLeft -= 1;
        response.writeHead(503).end();
        return;
      }
      assert.equal(request.headers['content-type'], 'application/json');
      assert.equal(request.headers.authorization, 'Bearer hook-token');
      received.push(JSON.parse(body) as BehaviourAlert);
      response.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const sink = new WebhookAlertSink({ url: `http://127.0.0.1:${port}/alerts`, headers: { authorization: 'Bearer hook-token' } });
  sink.emit({ ...sampleAlert(), id: 'first' });
  sink.emit({ ...sampleAlert(), id: 'second' });
  await sink.close();
  server.close();
  assert.deepEqual(received.map((a) => a.id), ['first', 'second']);
  assert.equal(sink.delivered, 2);
  assert.equal(sink.failed, 0);
});

test('webhook sink drops beyond its queue bound instead of growing', async () => {
  const sink = new WebhookAlertSink({ url: 'http://127.0.0.1:9/never', maxQueue: 2, attempts: 1, timeoutMs: 200, fetch: async () => new Response(null, { status: 400 }) });
  for (let i = 0; i < 5; i += 1) sink.emit(sampleAlert());
  await sink.close();
  assert.ok(sink.dropped >= 2);
  assert.equal(sink.failed + sink.dropped + sink.delivered, 5);
});


test('NATS sink publishes engine alerts on mandate.alerts.<persona> to a real nats-server', { skip: natsServerMissing() ?? false, timeout: 20_000 }, async () => {
  const server = await startNatsServer();
  try {
    const connection = await connect({ servers: server.url, reconnect: false });
    const subscription = connection.subscribe('mandate.alerts.>', { max: 1 });
    const sink = new FanOutAlertSink([new NatsAlertSink(connection), new MemoryAlertSink()]);
    const engine = createBehaviourEngine({ clock: () => Date.parse('2026-01-05T09:00:00Z'), store: new InMemorySessionStateStore(), alertSink: sink });
    const compiled = compileOrThrow(supportPersona({ rules: [bulkReadThenEgress] }));
    for (let id = 0; id < 50; id += 1) engine.evaluate(compiled, ticketCall({ arguments: { id } }));
    assert.equal(engine.evaluate(compiled, ticketCall({ upstream: 'mail', tool: 'email.send', arguments: {} })).action, 'block');
    await sink.close();
    for await (const message of subscription) {
      assert.equal(message.subject, alertSubject('support'));
      assert.equal(message.subject, 'mandate.alerts.support');
      const alert = JSON.parse(new TextDecoder().decode(message.data)) as BehaviourAlert;
      assert.equal(alert.tool, 'email.send');
      assert.deepEqual(alert.evidence.rules, ['bulk-read-then-egress']);
    }
    await connection.close();
  } finally {
    await server.dispose();
  }
});
