// Two replicas' data-flow memory over a real nats-server (deploy/run-tests.sh installs it).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { connect } from 'nats';
import { startNatsServer } from '../../test/support/nats-server.ts';
import { protectRequestJson } from '../pipeline/data-protection.ts';
import { compileDataProtection, type CompiledDataProtectionOk } from './compile.ts';
import { flowSubject, ReplicatedFlowTracker, sharedFingerprintKey } from './flow-replication.ts';
import { inspectBody } from './inspect.ts';

test('replicas share one fingerprint key, and a value read on one is refused on the other', async () => {
  const server = await startNatsServer();
  const a = await connect({ servers: server.url });
  const b = await connect({ servers: server.url });
  try {
    const [keyA, keyB] = await Promise.all([sharedFingerprintKey(a), sharedFingerprintKey(b)]);
    assert.ok(keyA.equals(keyB), 'both replicas hash with the same key');
    assert.equal(keyA.length, 32);
    assert.ok(keyA.equals(await sharedFingerprintKey(a)), 'the key stays the same');

    const options = { now: () => Date.now(), maxFingerprintsPerSession: 64, ttlMs: 60_000, gradualCollectionThreshold: 50 };
    const log = () => {};
    const replicaA = new ReplicatedFlowTracker(options, a, 'replica-a', log);
    const replicaB = new ReplicatedFlowTracker(options, b, 'replica-b', log);
    replicaA.start();
    replicaB.start();
    await Promise.all([a.flush(), b.flush()]);

    // Each replica compiles the same policy with the shared key, as ext_proc does.
    const policy = { profiles: ['pci-dss'], defaultAction: 'detect', flow: { enabled: true } } as never;
    const onA = compileDataProtection(policy, { fingerprintKey: keyA });
    const onB = compileDataProtection(policy, { fingerprintKey: keyB });
    const card = '4539 1488 0343 6467';
    const result = inspectBody(onA, Buffer.from(JSON.stringify({ text: `refund to ${card}` })), { direction: 'response', upstream: 'billing' });
    assert.equal(result.fingerprints.length, 1);
    replicaA.recordResponse('session-1', { upstream: 'billing', environment: 'production' }, result.fingerprints);

    const outgoing = inspectBody(onB, Buffer.from(JSON.stringify({ to: 'x@example.com', text: `card ${card}` })), { direction: 'request', upstream: 'mailer' });
    const mailer = { upstream: 'mailer', environment: 'production' as const, tool: 'send_email', toolClass: 'egress' as const };
    const deadline = Date.now() + 2000;
    let violations = replicaB.checkRequest('session-1', mailer, outgoing.fingerprints);
    while (violations.length === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
      violations = replicaB.checkRequest('session-1', mailer, outgoing.fingerprints);
    }
    assert.deepEqual(violations.map((v) => [v.code, v.action, v.from.upstream]), [['sensitive_data_flow_blocked', 'block', 'billing']]);
    // Another session on replica B knows nothing of it.
    assert.deepEqual(replicaB.checkRequest('session-2', mailer, outgoing.fingerprints), []);
    // The shape travels with the fingerprint: replica B finds the card spelled so no detector does.
    const evasive = protectRequestJson(onB as CompiledDataProtectionOk, replicaB, 'session-1', { text: '4539_1488_0343_6467' }, mailer, 'tool arguments');
    assert.equal(evasive.findings.length, 0);
    assert.equal(evasive.denial?.code, 'sensitive_data_flow_blocked');

    // Malformed messages on the subject are logged and dropped; the replica keeps working.
    const bad: string[] = [];
    const replicaC = new ReplicatedFlowTracker(options, b, 'replica-c', (event) => bad.push(event));
    replicaC.start();
    await b.flush();
    for (const junk of ['not json', '{"replica":"x","session":"session-3","fingerprints":[{"hash":"h","dataClass":"payment-card","detector":"d","group":"financial"}]}', '{"replica":"x","session":"session-3","origin":{"upstream":"u","environment":"mars"},"fingerprints":[],"limits":null}']) {
      a.publish(flowSubject, new TextEncoder().encode(junk));
    }
    await a.flush();
    const until = Date.now() + 2000;
    while (bad.length < 3 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(bad, ['flow_replication_bad_message', 'flow_replication_bad_message', 'flow_replication_bad_message']);
    assert.deepEqual(replicaC.checkRequest('session-3', mailer, outgoing.fingerprints), []);
    replicaC.stop();

    // A result too large for one NATS message (8,000 fingerprints are over 1 MiB as JSON) reaches the other replica whole.
    const many = Array.from({ length: 8000 }, (_, i) => ({ hash: `${'0'.repeat(58)}${String(i).padStart(6, '0')}`, dataClass: 'payment-card', detector: 'payment-card-visa', group: 'financial' }));
    const roomy = { maxFingerprintsPerSession: 10_000, ttlMs: 60_000, gradualCollectionThreshold: 20_000 };
    replicaA.recordResponse('session-4', { upstream: 'billing', environment: 'production' }, many, roomy);
    const last = [many[7999]!];
    const by = Date.now() + 2000;
    while (replicaB.checkRequest('session-4', mailer, last, undefined, roomy).length === 0 && Date.now() < by) await new Promise((r) => setTimeout(r, 10));
    assert.equal(replicaB.checkRequest('session-4', mailer, [many[0]!, many[4000]!, many[7999]!], undefined, roomy).length, 3);
    replicaA.stop();
    replicaB.stop();
  } finally {
    await a.close();
    await b.close();
    await server.dispose();
  }
});
