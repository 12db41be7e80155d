// Two replicas' data-flow memory over a real nats-server (deploy/run-tests.sh installs it).
import assert from 'node:assert/strict';
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { connect, headers, type Msg } from 'nats';
import { startNatsServer } from '../../test/support/nats-server.ts';
import { protectRequestJson } from '../pipeline/data-protection.ts';
import { compileDataProtection, type CompiledDataProtectionOk } from './compile.ts';
import { flowSessionOf, type FlowLimits } from './flow.ts';
import { flowKeySetting } from './flow-key.ts';
import { flowMacKey, flowMessageMaxAgeMs, flowSubject, openFlowMessage, ReplayGuard, ReplicatedFlowTracker, sealFlowMessage, type FlowMessage } from './flow-replication.ts';
import { inspectBody } from './inspect.ts';

/** The wire format, written out here so that a change to it shows: HMAC-SHA256 of the message bytes, keyed by a key derived from the fingerprint key. */
function signed(fingerprintKey: Buffer, bytes: Uint8Array) {
  const macKey = createHmac('sha256', fingerprintKey).update('mandate flow replication mac v4').digest();
  return macHeaders(createHmac('sha256', macKey).update(bytes).digest('base64'));
}
function macHeaders(mac: string) {
  const h = headers();
  h.set('Mandate-Flow-Mac', mac);
  return h;
}

/** Waits until `done` holds (replication is asynchronous), for at most two seconds. */
async function until(done: () => boolean): Promise<boolean> {
  const deadline = Date.now() + 2000;
  while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  return done();
}

const mailer = { upstream: 'mailer', environment: 'production' as const, tool: 'send_email', toolClass: 'egress' as const };
const billing = { upstream: 'billing', environment: 'production' as const };
const synthetic = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => ({ hash: `${prefix}${String(i).padStart(4, '0')}`, dataClass: 'payment-card', detector: 'payment-card-visa', group: 'financial' }));

/** The fingerprint key of a replica given this key file, as ext_proc's main reads it. */
function provisionedKey(file: string): Buffer {
  const setting = flowKeySetting({ MANDATE_FLOW_KEY_FILE: file }, { required: true });
  assert.ok(setting.ok && setting.key !== null, JSON.stringify(setting));
  return setting.key;
}

/** A message a replica would publish, dated now, with a fresh id. */
function messageOf(session: string, fingerprints: FlowMessage['fingerprints'], overrides: Partial<FlowMessage> = {}): FlowMessage {
  return { id: randomUUID(), sentAt: Date.now(), replica: 'replica-x', session, origin: billing, fingerprints, ...overrides };
}

test('replicas given one key file share one fingerprint key, and a value read on one is refused on the other', async (t) => {
  // The operator's secret, one file every replica reads (a Kubernetes or compose secret).
  const secrets = mkdtempSync(join(tmpdir(), 'mandate-flow-key-'));
  t.after(() => rmSync(secrets, { recursive: true, force: true }));
  const keyFile = join(secrets, 'flow-key');
  writeFileSync(keyFile, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 });
  const server = await startNatsServer();
  const a = await connect({ servers: server.url });
  const b = await connect({ servers: server.url });
  try {
    const [keyA, keyB] = [provisionedKey(keyFile), provisionedKey(keyFile)];
    assert.ok(keyA.equals(keyB), 'both replicas hash with the same key');

    const options = { now: () => Date.now(), maxFingerprintsPerSession: 64, ttlMs: 60_000, gradualCollectionThreshold: 50 };
    const log = () => {};
    // A result of thousands of values is read under the Persona "bulk", which remembers them all.
    const roomy = { maxFingerprintsPerSession: 10_000, ttlMs: 60_000, gradualCollectionThreshold: 20_000 };
    const trust = { fingerprintKey: keyA, personaFlowLimits: (persona: string) => (persona === 'bulk' ? roomy : options) };
    const replicaA = new ReplicatedFlowTracker(options, a, 'replica-a', log, trust);
    const replicaB = new ReplicatedFlowTracker(options, b, 'replica-b', log, trust);
    replicaA.start();
    replicaB.start();
    await Promise.all([a.flush(), b.flush()]);

    // Each replica compiles the same policy with the shared key, as ext_proc does.
    const policy = { profiles: ['pci-dss'], defaultAction: 'detect', flow: { enabled: true } } as never;
    const onA = compileDataProtection(policy, { fingerprintKey: keyA });
    const onB = compileDataProtection(policy, { fingerprintKey: keyB });
    const card = '4539 1488 0343 6467';
    const session1 = flowSessionOf('refunds', 'agent-1');
    const session4 = flowSessionOf('bulk', 'agent-4');
    const result = inspectBody(onA, Buffer.from(JSON.stringify({ text: `refund to ${card}` })), { direction: 'response', upstream: 'billing' });
    assert.equal(result.fingerprints.length, 1);
    replicaA.recordResponse(session1, { upstream: 'billing', environment: 'production' }, result.fingerprints);

    const outgoing = inspectBody(onB, Buffer.from(JSON.stringify({ to: 'x@example.com', text: `card ${card}` })), { direction: 'request', upstream: 'mailer' });
    const deadline = Date.now() + 2000;
    let violations = replicaB.checkRequest(session1, mailer, outgoing.fingerprints);
    while (violations.length === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
      violations = replicaB.checkRequest(session1, mailer, outgoing.fingerprints);
    }
    assert.deepEqual(violations.map((v) => [v.code, v.action, v.from.upstream]), [['sensitive_data_flow_blocked', 'block', 'billing']]);
    // Another session on replica B knows nothing of it.
    assert.deepEqual(replicaB.checkRequest(flowSessionOf('refunds', 'agent-2'), mailer, outgoing.fingerprints), []);
    // The shape travels with the fingerprint: replica B finds the card spelled so no detector does.
    const evasive = protectRequestJson(onB as CompiledDataProtectionOk, replicaB, session1, { text: '4539_1488_0343_6467' }, mailer, 'tool arguments');
    assert.equal(evasive.findings.length, 0);
    assert.equal(evasive.denial?.code, 'sensitive_data_flow_blocked');

    // Malformed messages, even with a valid MAC, are counted and logged (once) and dropped; the replica keeps working.
    const bad: string[] = [];
    const replicaC = new ReplicatedFlowTracker(options, b, 'replica-c', (event) => bad.push(event), trust);
    replicaC.start();
    await b.flush();
    const session3 = flowSessionOf('refunds', 'agent-3');
    const dated = () => `"id":"${randomUUID()}","sentAt":${Date.now()}`;
    for (const junk of [
      'not json',
      `{${dated()},"replica":"x","session":"${session3}","fingerprints":[{"hash":"h","dataClass":"payment-card","detector":"d","group":"financial"}]}`,
      `{${dated()},"replica":"x","session":"${session3}","origin":{"upstream":"u","environment":"mars"},"fingerprints":[]}`,
    ]) {
      const bytes = new TextEncoder().encode(junk);
      a.publish(flowSubject, bytes, { headers: signed(keyA, bytes) });
    }
    await a.flush();
    const until = Date.now() + 2000;
    while (replicaC.replicationCounts().dropped.bad_message < 3 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    assert.equal(replicaC.replicationCounts().dropped.bad_message, 3);
    assert.deepEqual(bad, ['flow_replication_bad_message']);
    assert.deepEqual(replicaC.checkRequest(session3, mailer, outgoing.fingerprints), []);
    replicaC.stop();

    // A result too large for one NATS message (8,000 fingerprints are over 1 MiB as JSON) reaches the other replica whole.
    const many = Array.from({ length: 8000 }, (_, i) => ({ hash: `${'0'.repeat(58)}${String(i).padStart(6, '0')}`, dataClass: 'payment-card', detector: 'payment-card-visa', group: 'financial' }));
    replicaA.recordResponse(session4, { upstream: 'billing', environment: 'production' }, many, roomy);
    const last = [many[7999]!];
    const by = Date.now() + 2000;
    while (replicaB.checkRequest(session4, mailer, last, undefined, roomy).length === 0 && Date.now() < by) await new Promise((r) => setTimeout(r, 10));
    assert.equal(replicaB.checkRequest(session4, mailer, [many[0]!, many[4000]!, many[7999]!], undefined, roomy).length, 3);
    replicaA.stop();
    replicaB.stop();
  } finally {
    await a.close();
    await b.close();
    await server.dispose();
  }
});

test("a replica takes no limits from the wire: its own Persona's apply, and messages without the replicas' MAC are dropped", async () => {
  const server = await startNatsServer();
  const a = await connect({ servers: server.url });
  const b = await connect({ servers: server.url });
  const attacker = await connect({ servers: server.url });
  try {
    const key = randomBytes(32);
    const tracker = { now: () => Date.now(), maxFingerprintsPerSession: 4096, ttlMs: 3_600_000, gradualCollectionThreshold: 50 };
    // Replica A's Personas: "refunds" remembers 4096 values and signals at 5, "small" remembers 16; "ghost" is unknown to it.
    const onA: Record<string, FlowLimits> = {
      refunds: { maxFingerprintsPerSession: 4096, ttlMs: 3_600_000, gradualCollectionThreshold: 5 },
      small: { maxFingerprintsPerSession: 16, ttlMs: 3_600_000, gradualCollectionThreshold: 1000 },
    };
    const logged: string[] = [];
    const replicaA = new ReplicatedFlowTracker(tracker, a, 'replica-a', (event) => logged.push(event), { fingerprintKey: key, personaFlowLimits: (p) => onA[p] ?? null });
    // Replica B runs another config version: other limits for every Persona, and it knows "ghost".
    const onB: FlowLimits = { maxFingerprintsPerSession: 16, ttlMs: 1000, gradualCollectionThreshold: 2 };
    const replicaB = new ReplicatedFlowTracker(tracker, b, 'replica-b', () => {}, { fingerprintKey: key, personaFlowLimits: () => onB });
    replicaA.start();
    replicaB.start();
    await Promise.all([a.flush(), b.flush()]);

    const session = flowSessionOf('refunds', 'agent-1');
    const card = synthetic('card', 1);
    replicaA.recordResponse(session, billing, card, onA.refunds);
    assert.equal(replicaA.checkRequest(session, mailer, card).length, 1);

    // Forged: the shape replicas publish (and v2's limits), with no MAC, then with a MAC under another key.
    const forged = new TextEncoder().encode(
      JSON.stringify({ ...messageOf(session, synthetic('junk', 20)), replica: 'evil', limits: { maxFingerprintsPerSession: 1, ttlMs: 1, gradualCollectionThreshold: 1 } }),
    );
    attacker.publish(flowSubject, forged);
    const wrongKey = createHmac('sha256', Buffer.alloc(32, 7)).update(forged).digest('base64');
    attacker.publish(flowSubject, forged, { headers: macHeaders(wrongKey) });
    await attacker.flush();
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(replicaA.checkRequest(session, mailer, card).length, 1, 'the forged messages made the replica forget nothing');

    // Signed by a replica whose limits are smaller: replica A keeps its own 4096.
    replicaB.recordResponse(session, billing, synthetic('from-b', 20), onB);
    assert.ok(await until(() => replicaA.checkRequest(session, mailer, synthetic('from-b', 20).slice(19)).length === 1), 'the signed message arrived');
    assert.equal(replicaA.checkRequest(session, mailer, card).length, 1, 'the card is still remembered');

    // Signed by a replica whose limits are larger: replica A keeps at most its own 16 for "small".
    const small = flowSessionOf('small', 'agent-1');
    const roomy = { maxFingerprintsPerSession: 100_000, ttlMs: 3_600_000, gradualCollectionThreshold: 1_000_000 };
    replicaB.recordResponse(small, billing, synthetic('many', 100), roomy);
    assert.ok(await until(() => replicaA.checkRequest(small, mailer, synthetic('many', 100).slice(99)).length === 1));
    assert.equal(replicaA.checkRequest(small, mailer, synthetic('many', 84)).length, 0, 'the oldest 84 were evicted');
    assert.equal(replicaA.checkRequest(small, mailer, synthetic('many', 100).slice(84)).length, 16);

    // A Persona replica A does not know (or has flow off for): the message is dropped.
    const ghost = flowSessionOf('ghost', 'agent-1');
    replicaB.recordResponse(ghost, billing, card, onB);
    await b.flush();
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(replicaA.checkRequest(ghost, mailer, card), []);

    // Gradual collection: B's values count toward A's threshold (5), B's threshold (2) never sets A's signal.
    const collector = flowSessionOf('refunds', 'agent-2');
    replicaB.recordResponse(collector, billing, synthetic('read-on-b', 4), onB);
    assert.ok(await until(() => replicaA.checkRequest(collector, mailer, synthetic('read-on-b', 4).slice(3)).length === 1));
    const signal = replicaA.recordResponse(collector, billing, synthetic('read-on-a', 1), onA.refunds);
    assert.equal(signal?.code, 'gradual_collection');
    assert.equal(signal?.distinctValues, 5);

    assert.deepEqual(replicaA.replicationCounts(), { applied: 3, dropped: { bad_message: 0, bad_mac: 2, stale: 0, replayed: 0, unknown_persona: 1 } });
    assert.deepEqual(logged.sort(), ['flow_replication_bad_mac', 'flow_replication_unknown_persona'], 'one line per reason, not one per message');
    replicaA.stop();
    replicaB.stop();
  } finally {
    await Promise.all([a.close(), b.close(), attacker.close()]);
    await server.dispose();
  }
});

test('sessions known only from other replicas are evicted before the ones a replica serves', async () => {
  const server = await startNatsServer();
  const a = await connect({ servers: server.url });
  const b = await connect({ servers: server.url });
  try {
    const key = randomBytes(32);
    const limits: FlowLimits = { maxFingerprintsPerSession: 4096, ttlMs: 3_600_000, gradualCollectionThreshold: 50 };
    const trust = { fingerprintKey: key, personaFlowLimits: () => limits };
    const replicaA = new ReplicatedFlowTracker({ now: () => Date.now(), ...limits, maxSessions: 8 }, a, 'replica-a', () => {}, trust);
    const replicaB = new ReplicatedFlowTracker({ now: () => Date.now(), ...limits }, b, 'replica-b', () => {}, trust);
    replicaA.start();
    replicaB.start();
    await Promise.all([a.flush(), b.flush()]);
    const session = flowSessionOf('refunds', 'agent-1');
    const card = synthetic('card', 1);
    replicaA.recordResponse(session, billing, card, limits);
    // Twenty sessions from replica B, each with a value: more than replica A holds.
    for (let i = 0; i < 20; i++) replicaB.recordResponse(flowSessionOf('refunds', `flood-${i}`), billing, synthetic(`flood-${i}-`, 1), limits);
    assert.ok(await until(() => replicaA.checkRequest(flowSessionOf('refunds', 'flood-19'), mailer, synthetic('flood-19-', 1)).length === 1));
    assert.equal(replicaA.checkRequest(session, mailer, card).length, 1, "the session replica A serves was kept");
    assert.equal(replicaA.checkRequest(flowSessionOf('refunds', 'flood-0'), mailer, synthetic('flood-0-', 1)).length, 0, 'the oldest replicated one went');
    replicaA.stop();
    replicaB.stop();
  } finally {
    await Promise.all([a.close(), b.close()]);
    await server.dispose();
  }
});

test('a message opens only with the MAC of its bytes under the replicas\' key; its date and id are signed with it', () => {
  const fingerprintKey = randomBytes(32);
  const macKey = flowMacKey(fingerprintKey);
  const message = messageOf(flowSessionOf('refunds', 'agent-1'), synthetic('card', 1));
  const sealed = sealFlowMessage(macKey, message);
  assert.equal(signed(fingerprintKey, sealed.data).get('Mandate-Flow-Mac'), sealed.mac, 'the wire format as written out above');
  assert.deepEqual(openFlowMessage(macKey, sealed.data, sealed.mac), { ok: true, message });
  assert.deepEqual(openFlowMessage(flowMacKey(randomBytes(32)), sealed.data, sealed.mac), { ok: false, reason: 'bad_mac' }, 'another key');
  assert.deepEqual(openFlowMessage(macKey, sealed.data, undefined), { ok: false, reason: 'bad_mac' }, 'no MAC');
  const redated = new TextEncoder().encode(JSON.stringify({ ...message, sentAt: message.sentAt + 60_000 }));
  assert.deepEqual(openFlowMessage(macKey, redated, sealed.mac), { ok: false, reason: 'bad_mac' }, 'a new date needs a new MAC');
  const { id: _id, ...withoutId } = message;
  const undated = sealFlowMessage(macKey, withoutId as FlowMessage);
  assert.deepEqual(openFlowMessage(macKey, undated.data, undated.mac), { ok: false, reason: 'bad_message' }, 'signed, but without an id (as v3 published)');
});

test('the replay guard admits an id once within the window and nothing dated outside it, and stays exact when full', () => {
  const guard = new ReplayGuard(1000, 3);
  const t0 = 1_000_000;
  assert.equal(guard.admit('a', t0, t0), 'fresh');
  assert.equal(guard.admit('a', t0, t0 + 500), 'replayed');
  assert.equal(guard.admit('b', t0 - 1001, t0), 'stale', 'dated too long ago');
  assert.equal(guard.admit('c', t0 + 1001, t0), 'stale', 'dated too far ahead');
  assert.equal(guard.admit('a', t0, t0 + 1001), 'stale', 'past the window a replay is stale, and its id is forgotten');
  assert.equal(guard.size, 0);
  // Full: the earliest id is forgotten, and whatever is dated no later than it is stale from then on.
  const t1 = t0 + 10_000;
  for (const [id, at] of [['d', t1], ['e', t1 + 10], ['f', t1 + 20], ['g', t1 + 30]] as const) assert.equal(guard.admit(id, at, at), 'fresh');
  assert.equal(guard.size, 3);
  assert.equal(guard.admit('d', t1, t1 + 40), 'stale', 'd was forgotten, and still cannot pass again');
  assert.equal(guard.admit('late', t1 - 5, t1 + 40), 'stale', 'dated before what was forgotten');
  assert.equal(guard.admit('e', t1 + 10, t1 + 40), 'replayed');
  assert.equal(guard.admit('h', t1 + 35, t1 + 40), 'fresh');
});

test('over NATS a signed message is applied once; replayed, dated outside the window or signed with another key, it is dropped', async () => {
  const server = await startNatsServer();
  const a = await connect({ servers: server.url });
  const b = await connect({ servers: server.url });
  const eavesdropper = await connect({ servers: server.url });
  try {
    const key = randomBytes(32);
    const limits: FlowLimits = { maxFingerprintsPerSession: 4096, ttlMs: 3_600_000, gradualCollectionThreshold: 50 };
    const tracker = { now: () => Date.now(), ...limits };
    const trust = { fingerprintKey: key, personaFlowLimits: () => limits };
    const logged: string[] = [];
    const replicaA = new ReplicatedFlowTracker(tracker, a, 'replica-a', () => {}, trust);
    const replicaB = new ReplicatedFlowTracker(tracker, b, 'replica-b', (event) => logged.push(event), trust);
    // Whoever may subscribe to the subject records what the replicas publish.
    const recorded: Msg[] = [];
    eavesdropper.subscribe(flowSubject, { callback: (_error, message) => recorded.push(message) });
    replicaA.start();
    replicaB.start();
    await Promise.all([a.flush(), b.flush(), eavesdropper.flush()]);

    const session = flowSessionOf('refunds', 'agent-1');
    replicaA.recordResponse(session, billing, synthetic('card', 1), limits);
    assert.ok(await until(() => replicaB.checkRequest(session, mailer, synthetic('card', 1)).length === 1), 'the signed message was applied');
    assert.ok(await until(() => recorded.length === 1));

    // Replayed as recorded, bytes and MAC: dropped.
    eavesdropper.publish(flowSubject, recorded[0]!.data, { headers: recorded[0]!.headers! });
    await eavesdropper.flush();
    assert.ok(await until(() => replicaB.replicationCounts().dropped.replayed === 1), 'the replay was dropped');
    assert.equal(replicaB.replicationCounts().applied, 1);

    // Signed with the replicas' key but dated outside the window, behind and ahead (a replica whose clock is that far off).
    for (const [name, skew] of [['behind', -flowMessageMaxAgeMs - 1000], ['ahead', flowMessageMaxAgeMs + 1000]] as const) {
      const skewed = new ReplicatedFlowTracker({ ...tracker, now: () => Date.now() + skew }, a, `replica-${name}`, () => {}, trust);
      skewed.recordResponse(flowSessionOf('refunds', name), billing, synthetic(name, 1), limits);
    }
    await a.flush();
    assert.ok(await until(() => replicaB.replicationCounts().dropped.stale === 2), 'both were dropped as stale');
    assert.deepEqual(replicaB.checkRequest(flowSessionOf('refunds', 'behind'), mailer, synthetic('behind', 1)), []);
    assert.deepEqual(replicaB.checkRequest(flowSessionOf('refunds', 'ahead'), mailer, synthetic('ahead', 1)), []);

    // A replica given another secret (misprovisioned, or someone guessing): its messages are not signed with the replicas' key.
    const stranger = new ReplicatedFlowTracker(tracker, a, 'replica-stranger', () => {}, { ...trust, fingerprintKey: randomBytes(32) });
    stranger.recordResponse(flowSessionOf('refunds', 'agent-3'), billing, synthetic('stranger', 1), limits);
    await a.flush();
    assert.ok(await until(() => replicaB.replicationCounts().dropped.bad_mac === 1));
    assert.deepEqual(replicaB.checkRequest(flowSessionOf('refunds', 'agent-3'), mailer, synthetic('stranger', 1)), []);

    assert.deepEqual(replicaB.replicationCounts(), { applied: 1, dropped: { bad_mac: 1, bad_message: 0, stale: 2, replayed: 1, unknown_persona: 0 } });
    assert.deepEqual(logged.sort(), ['flow_replication_bad_mac', 'flow_replication_replayed', 'flow_replication_stale'], 'one line per reason');
    replicaA.stop();
    replicaB.stop();
  } finally {
    await Promise.all([a.close(), b.close(), eavesdropper.close()]);
    await server.dispose();
  }
});
