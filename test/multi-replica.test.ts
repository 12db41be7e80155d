// Mandate scaled out: two ext_proc replicas behind one real Envoy, sharing
// behaviour state over a real NATS server. Envoy spreads a session's calls over
// both replicas, and the sequence is still scored as one: the email after bulk
// ticket reads is blocked whichever replica sees it. A quarantine made on one
// replica holds on the other, and a release on either lifts it everywhere. A card
// number read through one replica cannot be emailed through the other (data-flow
// memory is shared too, keyed by the secret the operator gives every replica),
// and forged or replayed data-flow messages on NATS change nothing.
import assert from 'node:assert/strict';
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { connect, headers, type Msg } from 'nats';
import { fingerprint } from '../ext-proc/dlp/fingerprint.ts';
import { flowKeySetting } from '../ext-proc/dlp/flow-key.ts';
import { flowSubject } from '../ext-proc/dlp/flow-replication.ts';
import { startGatewayFixture, type GatewayFixture } from './support/gateway-fixture.ts';
import { startNatsServer, type NatsServer } from './support/nats-server.ts';
import { close, createRecordingMcpServer, listen, type RecordingMcpServer } from './support/recording-mcp-server.ts';

let nats: NatsServer;
let gateway: GatewayFixture;
let helpdesk: RecordingMcpServer;
let mailer: RecordingMcpServer;
const refundCard = '4539 1488 0343 6467';
/** The operator's data-flow secret: one file every ext_proc replica is given (MANDATE_FLOW_KEY_FILE). */
const secrets = mkdtempSync(join(tmpdir(), 'mandate-secrets-'));
const flowKeyFile = join(secrets, 'flow-key');

before(async () => {
  writeFileSync(flowKeyFile, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 });
  nats = await startNatsServer();
  helpdesk = createRecordingMcpServer({
    read_ticket: (args) => `ticket ${String(args.id)}`,
    send_email: () => 'sent',
    delete_ticket: () => 'deleted',
    read_refund: () => `Refund to card ${refundCard}`,
  });
  mailer = createRecordingMcpServer({ send_email: () => 'sent' });
  const port = await listen(helpdesk.server);
  const mailerPort = await listen(mailer.server);
  gateway = await startGatewayFixture({ demo: false, extProcReplicas: 2, natsUrl: nats.url, env: { MANDATE_FLOW_KEY_FILE: flowKeyFile } });
  const grants = [{ upstream: 'helpdesk', tools: [{ name: 'read_ticket' }, { name: 'send_email' }, { name: 'delete_ticket' }, { name: 'read_refund' }] }];
  await gateway.apply([
    { kind: 'Upstream', name: 'helpdesk', protocol: 'mcp', url: `http://127.0.0.1:${port}/mcp` },
    { kind: 'Upstream', name: 'mailer', protocol: 'mcp', url: `http://127.0.0.1:${mailerPort}/mcp` },
    {
      kind: 'Persona',
      name: 'support',
      description: 'Reads tickets; bulk reads then email is exfiltration.',
      grants,
      behaviour: {
        rules: [
          { name: 'tickets-then-email', steps: [{ match: { tool: ['read_ticket'] }, atLeast: 6 }, { match: { class: ['egress'] }, within: '10m' }], action: 'block' },
          { name: 'delete-quarantines', steps: [{ match: { tool: 'delete_ticket' } }], action: 'quarantine' },
        ],
      },
    },
    {
      kind: 'Persona',
      name: 'refunds',
      description: 'Reads refunds; card numbers it reads may not leave by email.',
      grants: [{ upstream: 'helpdesk', tools: [{ name: 'read_refund' }] }, { upstream: 'mailer', tools: [{ name: 'send_email' }] }],
      dataProtection: { profiles: ['pci-dss'], defaultAction: 'detect', flow: { enabled: true } },
    },
  ]);
  // Both replicas must hold the new config before traffic.
  for (const healthPort of gateway.extProcHealthPorts) {
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline) {
      const ready = (await (await fetch(`http://127.0.0.1:${healthPort}/readyz`)).json()) as { configVersion?: number };
      if ((ready.configVersion ?? 0) >= (await gateway.configVersion())) break;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
});

after(async () => {
  await gateway?.stop();
  if (helpdesk) await close(helpdesk.server);
  if (mailer) await close(mailer.server);
  await nats?.dispose();
  rmSync(secrets, { recursive: true, force: true });
});

const blockedWith = (code: string) => (error: unknown) => error instanceof McpError && error.code === -32001 && (error.data as { mandate: { code: string } }).mandate.code === code;

test('one session across two replicas: the email after bulk reads is blocked', async () => {
  const { token } = await gateway.issueToken('support', 'agent-1');
  const client = await gateway.mcpClient('/personas/support/helpdesk', token);
  for (let i = 0; i < 6; i++) await client.callTool({ name: 'read_ticket', arguments: { id: String(i) } });
  await new Promise((r) => setTimeout(r, 300)); // well above the measured replication staleness
  await assert.rejects(() => client.callTool({ name: 'send_email', arguments: { to: 'someone@example.com' } }), blockedWith('sequence_rule_matched'));
  assert.ok(!helpdesk.calls.some((c) => c.tool === 'send_email'), 'the email never reached the upstream');
  // Both replicas served part of this session (Envoy spreads ext_proc streams over them).
  const perReplica = await Promise.all(gateway.extProcHealthPorts.map((port) => decisionsOf(port, 'agent-1')));
  assert.ok(perReplica.every((n) => n > 0), `both replicas decided calls of the session: ${perReplica.join(', ')}`);
  await client.close();
});

test('a quarantine made on one replica holds on the other; release lifts it everywhere', async () => {
  const internalToken = readFileSync(join(gateway.dataDir, 'internal-token'), 'utf8').trim();
  const { token } = await gateway.issueToken('support', 'agent-2');
  const client = await gateway.mcpClient('/personas/support/helpdesk', token);
  await assert.rejects(() => client.callTool({ name: 'delete_ticket', arguments: { id: '1' } }), blockedWith('sequence_rule_matched'));
  await new Promise((r) => setTimeout(r, 300));
  // Whichever replica takes the next calls, the agent is out.
  for (let i = 0; i < 4; i++) await assert.rejects(() => client.callTool({ name: 'read_ticket', arguments: { id: String(i) } }), blockedWith('agent_quarantined'));
  // Every replica now lists the agent.
  for (const port of gateway.extProcHealthPorts) {
    const list = (await (await fetch(`http://127.0.0.1:${port}/v1/quarantine`, { headers: { authorization: `Bearer ${internalToken}` } })).json()) as { agents: { agent: string }[] };
    assert.ok(list.agents.some((a) => a.agent === 'agent-2'), `replica on ${port} knows the quarantine`);
  }
  // Release on the second replica.
  const released = await fetch(`http://127.0.0.1:${gateway.extProcHealthPorts[1]}/v1/quarantine/agent-2`, { method: 'DELETE', headers: { authorization: `Bearer ${internalToken}` } });
  assert.equal(released.status, 200);
  await new Promise((r) => setTimeout(r, 300));
  for (const port of gateway.extProcHealthPorts) {
    const list = (await (await fetch(`http://127.0.0.1:${port}/v1/quarantine`, { headers: { authorization: `Bearer ${internalToken}` } })).json()) as { agents: { agent: string }[] };
    assert.ok(!list.agents.some((a) => a.agent === 'agent-2'), `replica on ${port} saw the release`);
  }
  await client.close();
});

test('a card number read through one replica cannot be emailed through the other', async () => {
  const { token } = await gateway.issueToken('refunds', 'agent-3');
  const reader = await gateway.mcpClient('/personas/refunds/helpdesk', token);
  const read = await reader.callTool({ name: 'read_refund', arguments: {} });
  assert.match(JSON.stringify(read), /4539 1488 0343 6467/, 'detect only: the agent sees the card');
  await reader.close();
  await new Promise((r) => setTimeout(r, 300));
  // Consecutive calls alternate between the replicas: every one of them is refused.
  const mail = await gateway.mcpClient('/personas/refunds/mailer', token);
  for (let i = 0; i < 4; i++) {
    await assert.rejects(() => mail.callTool({ name: 'send_email', arguments: { to: 'someone@example.com', text: `card ${refundCard}` } }), blockedWith('sensitive_data_flow_blocked'));
  }
  assert.equal(mailer.calls.length, 0, 'no email with the card reached the upstream');
  // A card never read in the session still goes out.
  await mail.callTool({ name: 'send_email', arguments: { to: 'someone@example.com', text: 'card 4111 1111 1111 1111' } });
  assert.equal(mailer.calls.length, 1);
  const perReplica = await Promise.all(gateway.extProcHealthPorts.map((port) => decisionsOf(port, 'agent-3')));
  assert.ok(perReplica.every((n) => n > 0), `both replicas decided calls of the session: ${perReplica.join(', ')}`);
  await mail.close();
});

test('forged and replayed data-flow messages on NATS are dropped; the key is not on NATS; a signed one cannot shrink a replica\'s memory', async () => {
  const { token } = await gateway.issueToken('refunds', 'agent-4');
  const intruder = await connect({ servers: nats.url });
  // Whoever may subscribe on NATS records what the replicas publish.
  const recorded: Msg[] = [];
  const tap = intruder.subscribe(flowSubject, { callback: (_error, message) => recorded.push(message) });
  await intruder.flush();
  const reader = await gateway.mcpClient('/personas/refunds/helpdesk', token);
  await reader.callTool({ name: 'read_refund', arguments: {} });
  await reader.close();
  await new Promise((r) => setTimeout(r, 300));
  tap.unsubscribe(); // what is published from here on is the intruder's own
  const mail = await gateway.mcpClient('/personas/refunds/mailer', token);
  const cardIsRefused = async (card: string) => {
    for (let i = 0; i < 4; i++) {
      await assert.rejects(() => mail.callTool({ name: 'send_email', arguments: { to: 'someone@example.com', text: `card ${card}` } }), blockedWith('sensitive_data_flow_blocked'));
    }
  };
  const emailsBefore = mailer.calls.length;
  try {
    // The key is the operator's: no replica keeps it, or anything else, in a KV bucket of its own.
    const streams = await (await intruder.jetstreamManager()).streams.names().next();
    assert.ok(!streams.includes('KV_mandate-flow'), `no mandate-flow bucket: ${streams.join(', ')}`);

    // What a replica publishes, with the limits v2 carried (keep one value per session): whoever can publish on NATS sends it.
    const junk = Array.from({ length: 20 }, (_, i) => ({ hash: `forged${i}`, dataClass: 'payment-card', detector: 'payment-card-visa', group: 'financial' }));
    const message = (fingerprints: unknown[]) =>
      new TextEncoder().encode(
        JSON.stringify({
          id: randomUUID(),
          sentAt: Date.now(),
          replica: 'intruder',
          session: 'refunds\u0000agent-4',
          origin: { upstream: 'helpdesk', environment: 'production' },
          fingerprints,
          limits: { maxFingerprintsPerSession: 1, ttlMs: 1, gradualCollectionThreshold: 1 },
        }),
      );
    intruder.publish(flowSubject, message(junk));
    await intruder.flush();
    await new Promise((r) => setTimeout(r, 300));
    await cardIsRefused(refundCard);
    for (const port of gateway.extProcHealthPorts) assert.ok((await flowMessages(port, 'bad_mac')) >= 1, `replica on ${port} dropped the unsigned message`);

    // The replica that read the card published its values; replayed as recorded, MAC and all, they are dropped
    // by the replica that applied them (the sender ignores its own).
    assert.ok(recorded.length >= 1, 'the reading replica published the card\'s fingerprint');
    for (const m of recorded) intruder.publish(flowSubject, m.data, { headers: m.headers! });
    await intruder.flush();
    await new Promise((r) => setTimeout(r, 300));
    const replayed = await Promise.all(gateway.extProcHealthPorts.map((port) => flowMessages(port, 'replayed')));
    assert.ok(replayed.reduce((sum, n) => sum + n, 0) >= recorded.length, `the replays were dropped: ${replayed.join(', ')}`);

    // Signed with the MAC key derived from the operator's secret (only holders of the secret can): applied,
    // under each replica's own limits for the Persona, not the message's.
    const setting = flowKeySetting({ MANDATE_FLOW_KEY_FILE: flowKeyFile }, { required: true });
    assert.ok(setting.ok && setting.key !== null);
    const fingerprintKey = setting.key;
    const macKey = createHmac('sha256', fingerprintKey).update('mandate flow replication mac v4').digest();
    const otherCard = '4000 0566 5566 5556';
    const bytes = message([...junk, { hash: fingerprint(fingerprintKey, otherCard), dataClass: 'payment-card', detector: 'payment-card-visa', group: 'financial' }]);
    const signed = headers();
    signed.set('Mandate-Flow-Mac', createHmac('sha256', macKey).update(bytes).digest('base64'));
    const appliedBefore = await Promise.all(gateway.extProcHealthPorts.map((port) => flowMessages(port, 'applied')));
    intruder.publish(flowSubject, bytes, { headers: signed });
    await intruder.flush();
    await new Promise((r) => setTimeout(r, 300));
    for (const [i, port] of gateway.extProcHealthPorts.entries()) assert.equal(await flowMessages(port, 'applied'), appliedBefore[i]! + 1, `replica on ${port} applied the signed message`);
    await cardIsRefused(otherCard);
    await cardIsRefused(refundCard);
    assert.equal(mailer.calls.length, emailsBefore, 'no email with either card reached the upstream');
  } finally {
    await intruder.close();
    await mail.close();
  }
});

/** One replica's count of data-flow messages from other replicas with this outcome, from its /metrics. */
async function flowMessages(healthPort: number, outcome: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${healthPort}/metrics`)).text();
  return Number(new RegExp(`^mandate_flow_replication_messages_total\\{outcome="${outcome}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
}

/** Decision events of an agent in one replica's audit log, through its audit API (it commits in batches, so wait a little). */
async function decisionsOf(healthPort: number, agent: string): Promise<number> {
  const token = readFileSync(join(gateway.dataDir, 'internal-token'), 'utf8').trim();
  const deadline = Date.now() + 3000;
  let count = 0;
  while (Date.now() < deadline) {
    const response = await fetch(`http://127.0.0.1:${healthPort}/v1/audit/events?kind=decision&agent=${agent}&limit=1000`, { headers: { authorization: `Bearer ${token}` } });
    count = ((await response.json()) as { events: unknown[] }).events.length;
    if (count > 0) return count;
    await new Promise((r) => setTimeout(r, 100));
  }
  return count;
}
