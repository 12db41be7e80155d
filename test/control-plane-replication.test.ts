// Control-plane replicas sharing config over a real NATS server, with real Envoy.
// Envoy and ext_proc follow replica B; an admin configures replica A. The Persona,
// upstreams and credential made on A reach Envoy and ext_proc through B, and the
// traffic works. With NATS gone, A refuses writes while the data path keeps serving
// what it has; when NATS is back, a revoke made on A takes effect through B. The
// replicas share their tokens and the key that seals inline secrets on NATS.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { adminRequest, waitForEnvoyVersion, type ControlPlaneReplica } from '../deploy/gateway-processes.ts';
import { demoDocuments, startGatewayFixture, type GatewayFixture } from './support/gateway-fixture.ts';
import { natsServerMissing, startNatsServer, type NatsServer } from './support/nats-server.ts';
import { waitForExtProcVersion } from './support/policy-stream.ts';

const skip = natsServerMissing();
const support = '/personas/support-agent';

describe('control-plane replicas over NATS, with real Envoy', { skip: skip ?? false }, () => {
  let nats: NatsServer;
  let gateway: GatewayFixture;
  let replicaA: ControlPlaneReplica;
  let replicaB: ControlPlaneReplica;
  let token: { id: string; token: string };

  before(async () => {
    nats = await startNatsServer();
    gateway = await startGatewayFixture({ demo: false, controlPlaneReplicas: 2, natsUrl: nats.url });
    [replicaB, replicaA] = gateway.controlPlanes as [ControlPlaneReplica, ControlPlaneReplica];
  });

  after(async () => {
    await gateway?.stop();
    await nats?.dispose();
  });

  test('a Persona, its upstreams and a credential made through replica A serve traffic through the Envoy that follows replica B', async () => {
    const applied = await adminRequest(replicaA, 'POST', '/v1/apply', { documents: demoDocuments(gateway.ports) });
    assert.equal(applied.status, 200, JSON.stringify(applied.body));
    const issued = await adminRequest(replicaA, 'POST', '/v1/personas/support-agent/credentials', { agent: 'agent-007' });
    assert.equal(issued.status, 201, JSON.stringify(issued.body));
    token = { id: issued.body.id, token: issued.body.token };
    // Envoy, attached to B only, ACKs routes built from A's version.
    await waitForEnvoyVersion(replicaB, issued.body.version as number);
    const onB = await adminRequest(replicaB, 'GET', '/v1/revisions?limit=3');
    assert.deepEqual(
      onB.body.items.map((r: { version: number }) => r.version),
      [issued.body.version, applied.body.version, 1],
    );
    const onA = await adminRequest(replicaA, 'GET', '/v1/revisions?limit=2');
    assert.deepEqual(onB.body.items.slice(0, 2), onA.body.items, 'the same revisions, byte for byte, on both');
    const status = await adminRequest(replicaB, 'GET', '/v1/status');
    assert.equal(status.body.replication.replica, 'control-plane-0');
    assert.equal(status.body.replication.connected, true);

    // ext_proc follows B's policy stream; wait until it holds the version, then call through Envoy.
    await waitForExtProcVersion(gateway.extProcHealthPorts[0]!, issued.body.version as number);
    const client = await gateway.mcpClient(`${support}/everything`, token.token);
    const result = await client.callTool({ name: 'echo', arguments: { message: 'through replica B' } });
    assert.match(JSON.stringify(result.content), /through replica B/);
    await client.close();
    // The tickets upstream's backend token is an inline secret: it crossed NATS sealed
    // (MANDATE_CONFIG_SECRETS_KEY), B opened it, and ext_proc injects it on B's behalf.
    const ticket = await fetch(`${gateway.gatewayUrl}${support}/tickets/tickets/1`, { headers: { authorization: `Bearer ${token.token}` } });
    assert.equal(ticket.status, 200);
    assert.equal(((await ticket.json()) as { received: { authorization: string } }).received.authorization, 'Bearer demo-backend-token');
  });

  test('without NATS, replica A refuses writes and the data path keeps serving; once NATS is back, a revoke on A takes effect through B', async () => {
    await nats.stop();
    await waitForReplication(replicaA, false);
    const refused = await adminRequest(replicaA, 'DELETE', `/v1/credentials/${token.id}`);
    assert.equal(refused.status, 503);
    assert.equal(refused.body.code, 'config_replication_unavailable');
    const readiness = await fetch(`${replicaA.adminUrl}/readyz`);
    assert.equal(readiness.status, 503, 'not ready for writes while cut off');
    assert.equal(((await readiness.json()) as { ready: boolean }).ready, false);
    const metricsWhileDown = await (await fetch(`${replicaA.adminUrl}/metrics`)).text();
    assert.match(metricsWhileDown, /^mandate_config_replication_connected 0$/m, 'a scraper sees the replica cut off');
    assert.match(metricsWhileDown, /^mandate_config_replication_halted 0$/m);
    assert.match(metricsWhileDown, /^mandate_admin_responses_total\{method="DELETE",status="503"\} 1$/m);
    // Fail static: the credential still works through Envoy and B.
    const client = await gateway.mcpClient(`${support}/everything`, token.token);
    const result = await client.callTool({ name: 'echo', arguments: { message: 'still serving' } });
    assert.match(JSON.stringify(result.content), /still serving/);
    await client.close();

    await nats.start();
    await waitForReplication(replicaA, true);
    await waitForReplication(replicaB, true);
    assert.match(await (await fetch(`${replicaA.adminUrl}/metrics`)).text(), /^mandate_config_replication_connected 1$/m);
    assert.equal((await fetch(`${replicaA.adminUrl}/readyz`)).status, 200);
    const revoked = await adminRequest(replicaA, 'DELETE', `/v1/credentials/${token.id}`);
    assert.equal(revoked.status, 200, JSON.stringify(revoked.body));
    await waitForEnvoyVersion(replicaB, revoked.body.version as number);
    await waitForExtProcVersion(gateway.extProcHealthPorts[0]!, revoked.body.version as number);
    const refusedCall = await fetch(`${gateway.gatewayUrl}${support}/everything`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token.token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '1' } } }),
    });
    assert.equal(refusedCall.status, 401);
    assert.equal(((await refusedCall.json()) as { code: string }).code, 'credential_invalid');
  });
});

async function waitForReplication(replica: ControlPlaneReplica, connected: boolean): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const status = await adminRequest(replica, 'GET', '/v1/status');
    if (status.body?.replication?.connected === connected) return;
    if (Date.now() > deadline) throw new Error(`${replica.name} did not become ${connected ? 'connected' : 'disconnected'}: ${JSON.stringify(status.body?.replication)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
