// The ADS protocol state machine against a scripted stream: what a real Envoy
// sends (node on the first request, ACKs with the nonce, NACKs with error_detail).
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import { typeUrls, type XdsSnapshot } from '../snapshot/build-snapshot.ts';
import { createSnapshotCache } from '../snapshot/snapshot-cache.ts';
import { createAdsServer } from './ads-server.ts';

interface Sent {
  version_info: string;
  type_url: string;
  nonce: string;
  resources: { type_url: string; value: Buffer }[];
}

function fakeStream() {
  const stream = new EventEmitter() as EventEmitter & { write(m: Sent): void; end(): void; sent: Sent[] };
  stream.sent = [];
  stream.write = (m) => void stream.sent.push(m);
  stream.end = () => {};
  return stream;
}

/** A trivial encoder: the resource's JSON as bytes, enough to exercise the protocol. */
const cache = () => createSnapshotCache((_type, r) => ({ name: String(r.name ?? r.cluster_name), any: { type_url: 'x', value: Buffer.from(JSON.stringify(r)) } }));

function snapshot(version: number, clusterNames: string[], routeBody = 'r'): XdsSnapshot {
  return {
    configVersion: version,
    resources: {
      clusters: clusterNames.map((name) => ({ name })),
      endpoints: clusterNames.map((name) => ({ cluster_name: name })),
      listeners: [{ name: 'l' }],
      routes: [{ name: 'routes', body: routeBody }],
    },
  };
}

const node = { id: 'envoy-1', cluster: 'edge' };

function setup() {
  const snapshots = cache();
  const logs: { event: string; fields: Record<string, unknown> }[] = [];
  const ads = createAdsServer({ cache: snapshots, nodeGroup: () => 'g', log: (event, fields) => logs.push({ event, fields }) });
  const stream = fakeStream();
  ads.implementation.StreamAggregatedResources(stream as never);
  return { snapshots, ads, stream, logs };
}

test('answers subscriptions, filters EDS by name, and records ACKs per node and type', () => {
  const { snapshots, ads, stream } = setup();
  snapshots.set('g', snapshot(1, ['a', 'b']));
  stream.emit('data', { node, type_url: typeUrls.clusters, resource_names: [] });
  assert.equal(stream.sent.length, 1);
  assert.equal(stream.sent[0]!.resources.length, 2);
  stream.emit('data', { type_url: typeUrls.clusters, version_info: stream.sent[0]!.version_info, response_nonce: stream.sent[0]!.nonce });
  stream.emit('data', { type_url: typeUrls.endpoints, resource_names: ['a'] });
  assert.equal(stream.sent.length, 2);
  assert.equal(stream.sent[1]!.resources.length, 1, 'EDS answers only the names asked for');
  const status = ads.nodeStatuses()[0]!;
  assert.equal(status.nodeId, 'envoy-1');
  assert.equal(status.resources.clusters.ackedVersion, stream.sent[0]!.version_info);
  assert.equal(status.resources.endpoints.ackedVersion, null);
});

test('a NACK is recorded with Envoy\'s message and the same version is not sent again', () => {
  const { snapshots, ads, stream, logs } = setup();
  snapshots.set('g', snapshot(1, ['a']));
  stream.emit('data', { node, type_url: typeUrls.routes, resource_names: ['routes'] });
  const first = stream.sent[0]!;
  stream.emit('data', { type_url: typeUrls.routes, resource_names: ['routes'], version_info: '', response_nonce: first.nonce, error_detail: { code: 3, message: 'bad route' } });
  assert.equal(stream.sent.length, 1, 'no re-send of the rejected version');
  const nack = ads.nodeStatuses()[0]!.resources.routes.lastNack;
  assert.deepEqual({ version: nack?.version, message: nack?.message }, { version: first.version_info, message: 'bad route' });
  assert.ok(logs.some((l) => l.event === 'xds_nack'));
  // A newer version is sent, and its ACK clears the NACK.
  snapshots.set('g', snapshot(2, ['a'], 'fixed'));
  assert.equal(stream.sent.length, 2);
  stream.emit('data', { type_url: typeUrls.routes, resource_names: ['routes'], version_info: stream.sent[1]!.version_info, response_nonce: stream.sent[1]!.nonce });
  assert.equal(ads.nodeStatuses()[0]!.resources.routes.lastNack, null);
});

test('requests carrying a stale nonce are ignored', () => {
  const { snapshots, stream } = setup();
  snapshots.set('g', snapshot(1, ['a']));
  stream.emit('data', { node, type_url: typeUrls.clusters });
  snapshots.set('g', snapshot(2, ['a', 'b']));
  assert.equal(stream.sent.length, 2);
  // An ACK of the first response arrives after the second was sent: stale.
  stream.emit('data', { type_url: typeUrls.clusters, version_info: stream.sent[0]!.version_info, response_nonce: stream.sent[0]!.nonce });
  assert.equal(stream.sent.length, 2);
});

test('a change is pushed in CDS, EDS, LDS, RDS order, and EDS is re-sent after CDS even when unchanged', () => {
  const { snapshots, stream } = setup();
  snapshots.set('g', snapshot(1, ['a']));
  stream.emit('data', { node, type_url: typeUrls.clusters });
  stream.emit('data', { type_url: typeUrls.clusters, version_info: stream.sent[0]!.version_info, response_nonce: stream.sent[0]!.nonce });
  stream.emit('data', { type_url: typeUrls.endpoints, resource_names: ['a'] });
  stream.emit('data', { type_url: typeUrls.listeners });
  stream.emit('data', { type_url: typeUrls.routes, resource_names: ['routes'] });
  const before = stream.sent.length;
  // New cluster config (a field changes) but identical endpoints and routes.
  snapshots.set('g', { ...snapshot(2, ['a']), resources: { ...snapshot(2, ['a']).resources, clusters: [{ name: 'a', connect_timeout: 2 }] } });
  const pushed = stream.sent.slice(before).map((m) => m.type_url);
  assert.deepEqual(pushed, [typeUrls.clusters, typeUrls.endpoints]);
});

test('the first request must carry a node id', () => {
  const snapshots = cache();
  const ads = createAdsServer({ cache: snapshots, nodeGroup: () => 'g', log: () => {} });
  const stream = fakeStream();
  const errors: unknown[] = [];
  stream.on('error', (e) => errors.push(e));
  ads.implementation.StreamAggregatedResources(stream as never);
  stream.emit('data', { type_url: typeUrls.clusters });
  assert.equal(errors.length, 1);
  assert.equal(stream.sent.length, 0);
});
