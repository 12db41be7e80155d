// A configuration that Envoy rejects (NACKs) is visible to the admin with
// Envoy's own error, and the control plane does not re-send it in a loop.
// The rejection here is a real one: the gateway port is already taken, which no
// schema can check in advance.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { adminRequest, choosePorts } from '../deploy/gateway-processes.ts';
import { startGatewayFixture, type GatewayFixture } from './support/gateway-fixture.ts';

let gateway: GatewayFixture;
let blocker: Server;

before(async () => {
  const ports = await choosePorts();
  blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(ports.gateway, '127.0.0.1', () => resolve()));
  gateway = await startGatewayFixture({ demo: false, ports });
});

after(async () => {
  await gateway?.stop();
  await new Promise<void>((resolve) => blocker?.close(() => resolve()));
});

test('a NACKed listener shows Envoy\'s error in the admin status and is not retried in a loop', async () => {
  const deadline = Date.now() + 15_000;
  let nack: { version: string; message: string } | null = null;
  let listeners: { sentVersion: string; ackedVersion: string | null } | null = null;
  while (Date.now() < deadline && !nack) {
    const status = await adminRequest(gateway, 'GET', '/v1/status');
    listeners = status.body.nodes?.[0]?.resources?.listeners ?? null;
    nack = status.body.nodes?.[0]?.resources?.listeners?.lastNack ?? null;
    if (!nack) await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(nack, 'the listener NACK reached the admin status');
  assert.match(nack.message, /address already in use|cannot bind/i);
  assert.equal(nack.version, listeners!.sentVersion);
  assert.notEqual(listeners!.ackedVersion, listeners!.sentVersion);

  // Wait, then count how often the listener was pushed: once.
  await new Promise((r) => setTimeout(r, 2000));
  const log = readFileSync(join(gateway.dataDir, 'logs', 'xds-server.log'), 'utf8');
  const listenerPushes = log.split('\n').filter((line) => line.includes('"event":"xds_push"') && line.includes('"type":"listeners"'));
  assert.equal(listenerPushes.length, 1, 'the rejected version was sent once, not retried');
  assert.ok(log.includes('"event":"xds_nack"'), 'the NACK is logged');
  // Prometheus sees it too: the node rejects its listeners and nothing else.
  const metrics = await (await fetch(`${gateway.adminUrl}/metrics`)).text();
  assert.match(metrics, /^mandate_xds_node_nacked\{node="mandate-gateway-1",type="listeners"\} 1$/m);
  assert.match(metrics, /^mandate_xds_node_nacked\{node="mandate-gateway-1",type="clusters"\} 0$/m);
});
