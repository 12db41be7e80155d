// Control-plane replicas sharing config over a real NATS JetStream server:
// replication, concurrent writes, late and restarted replicas, the migration of
// an existing history, an outage, a malformed message on the subject, and
// messages not written by a replica (no MAC, a forged one, a replayed one).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { connect, headers, type NatsConnection } from 'nats';
import { natsServerMissing, startNatsServer, type NatsServer } from '../../test/support/nats-server.ts';
import { createAdminServer } from '../admin/admin-server.ts';
import { findCredentialForToken } from '../store/credential-token.ts';
import { resolveUpstreamCredentials } from '../store/upstream-secrets.ts';
import { openConfigStore, type ConfigStore } from '../store/config-store.ts';
import { startConfigReplication, type ReplicatedConfigStore } from './config-replication.ts';
import { configStream, encodeRevisionMessage, revisionSubject } from './revision-message.ts';
import { revisionMacHeader, signRevision } from './revision-mac.ts';
import { secretsKeyringFromEnv } from './sealed-secrets.ts';

const skip = natsServerMissing();
/** The config secrets key the replicas of a deployment share (they need one to authenticate revisions). */
const sharedKey = { MANDATE_CONFIG_SECRETS_KEY: randomBytes(32).toString('base64') };
const tickets = { kind: 'Upstream', name: 'tickets', protocol: 'mcp', url: 'http://127.0.0.1:3001/mcp' };
const persona = (name: string, description = `Persona ${name}`) => ({ kind: 'Persona', name, description, grants: [{ upstream: 'tickets', tools: [{ name: 'get_*' }] }] });

interface Replica {
  name: string;
  store: ConfigStore;
  replicated: ReplicatedConfigStore;
  events: { event: string; fields: Record<string, unknown> }[];
  stop(): Promise<void>;
}

let nats: NatsServer;
const dirs: string[] = [];
const running = new Set<Replica>();

function newDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'mandate-replication-'));
  dirs.push(dir);
  return dir;
}

async function startReplica(name: string, dir = newDir(), options: { firstConnectWaitMs?: number; maxWriteAttempts?: number; env?: Record<string, string> } = {}): Promise<Replica> {
  const env = options.env ?? sharedKey;
  const store = openConfigStore({ path: join(dir, 'config.db'), env });
  const events: Replica['events'] = [];
  let replicated: ReplicatedConfigStore;
  try {
    replicated = await startConfigReplication({ store, nats: nats.settings, replicaId: name, log: (event, fields) => events.push({ event, fields }), pollIntervalMs: 200, ...options, env });
  } catch (error) {
    store.close();
    throw error;
  }
  const replica: Replica = {
    name,
    store,
    replicated,
    events,
    async stop() {
      running.delete(replica);
      await replicated.stop();
      store.close();
    },
  };
  running.add(replica);
  return replica;
}

/** The MAC header a replica holding sharedKey gives the message that takes `sequence`. */
function macHeaders(sequence: number, data: Uint8Array) {
  const h = headers();
  h.set(revisionMacHeader, signRevision(secretsKeyringFromEnv(sharedKey), sequence, data));
  return h;
}

async function eventually(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Everything a replica would report about its config, version 1 (the local initial row) aside. */
function sharedState(store: ConfigStore) {
  return {
    version: store.current().version,
    bundle: store.current().bundle,
    history: store.history(1000).filter((r) => r.version > 1),
    credentials: store.current().credentials,
    credentialList: store.listCredentials(),
  };
}

/** A stream per test file run: delete what an earlier test left so each starts from an empty history. */
async function resetStream(): Promise<void> {
  const connection: NatsConnection = await connect({ servers: nats.url });
  try {
    const jsm = await connection.jetstreamManager();
    await jsm.streams.delete(configStream).catch(() => undefined);
  } finally {
    await connection.close();
  }
}

describe('control-plane replication over NATS', { skip: skip ?? false }, () => {
  before(async () => {
    nats = await startNatsServer();
  });

  after(async () => {
    for (const replica of [...running]) await replica.stop();
    await nats?.dispose();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  test('a write through A appears on B with the same version, bundle and history; a credential issued on A authenticates on B', async () => {
    await resetStream();
    const a = await startReplica('a');
    const b = await startReplica('b');
    const applied = await a.replicated.apply([tickets, persona('support')], { actor: 'admin:alice' });
    assert.deepEqual(applied, { ok: true, version: 2, changed: ['Persona/support', 'Upstream/tickets'] });
    await eventually(() => b.store.current().version === 2, 'B to apply version 2');
    assert.deepEqual(sharedState(b.store), sharedState(a.store));
    assert.equal(b.store.history(1)[0]?.actor, 'admin:alice');

    const issued = await a.replicated.issueCredential({ persona: 'support', agent: 'agent-7' }, 'admin:alice');
    assert.ok(issued.ok);
    await eventually(() => b.store.current().version === issued.version, 'B to apply the credential');
    const onB = new Map(b.store.current().credentials.map((c) => [c.id, c]));
    assert.equal(findCredentialForToken(onB, issued.token, new Date())?.agent, 'agent-7', 'the token authenticates against B');
    // Only the hash crossed: B's snapshot has the same record as A's, and no token anywhere.
    assert.deepEqual(b.store.current().credentials, a.store.current().credentials);

    // A revoke on B is seen on A.
    const revoked = await b.replicated.revokeCredential(issued.id, 'admin:bob');
    assert.deepEqual(revoked, { ok: true, version: issued.version + 1, changed: [`Credential/${issued.id}`] });
    await eventually(() => a.store.current().version === revoked.version, 'A to apply the revoke');
    assert.equal(findCredentialForToken(new Map(a.store.current().credentials.map((c) => [c.id, c])), issued.token, new Date()), null);
    assert.deepEqual(sharedState(a.store), sharedState(b.store));
    assert.deepEqual(a.replicated.status(), { replica: 'a', connected: true, streamSequence: 3, halted: null, unauthenticatedMessages: 0 });
    await a.stop();
    await b.stop();
  });

  test('concurrent writes on A and B all land, in one linear history that is identical on both', async () => {
    await resetStream();
    // A tight loop of writes on both replicas loses more races than admins do: allow more attempts.
    const a = await startReplica('a', newDir(), { maxWriteAttempts: 50 });
    const b = await startReplica('b', newDir(), { maxWriteAttempts: 50 });
    assert.ok((await a.replicated.apply([tickets], { actor: 'setup' })).ok);
    await eventually(() => b.store.current().version === 2, 'B to see the upstream');
    const writes = [];
    for (let i = 0; i < 15; i++) {
      writes.push(a.replicated.apply([persona(`from-a-${i}`)], { actor: 'admin:a' }));
      writes.push(b.replicated.apply([persona(`from-b-${i}`)], { actor: 'admin:b' }));
    }
    const results = await Promise.all(writes);
    const versions = results.map((r) => (r.ok ? r.version : assert.fail(`a write was refused: ${JSON.stringify(r)}`))).sort((x, y) => x - y);
    assert.deepEqual(versions, Array.from({ length: 30 }, (_, i) => i + 3), 'versions 3..32, each once');
    await eventually(() => a.store.current().version === 32 && b.store.current().version === 32, 'both at version 32');
    assert.deepEqual(sharedState(a.store), sharedState(b.store));
    assert.equal(a.store.current().bundle.personas.length, 30, 'no write lost');
    // The replicas really raced: writes were refused by the stream and planned again on top.
    const replanned = [...a.events, ...b.events].filter((e) => e.event === 'config_write_replanned').length;
    assert.ok(replanned > 0, 'some writes lost a race and were planned again');
    const history = a.store.history(1000).filter((r) => r.version > 2);
    assert.ok(history.some((r) => r.actor === 'admin:a') && history.some((r) => r.actor === 'admin:b'));
    await a.stop();
    await b.stop();
  });

  test('a replica started later, or restarted, catches up on what it missed', async () => {
    await resetStream();
    const a = await startReplica('a');
    await a.replicated.apply([tickets, persona('support')], { actor: 'admin' });
    const token = await a.replicated.issueCredential({ persona: 'support', agent: 'agent-1' }, 'admin');
    assert.ok(token.ok);
    const late = await startReplica('late');
    // Startup catches up before it returns.
    assert.deepEqual(sharedState(late.store), sharedState(a.store));

    const bDir = newDir();
    let b = await startReplica('b', bDir);
    await b.stop();
    await a.replicated.apply([persona('billing')], { actor: 'admin' });
    await a.replicated.remove('Persona', 'support', 'admin');
    b = await startReplica('b', bDir);
    assert.deepEqual(sharedState(b.store), sharedState(a.store));
    assert.deepEqual(b.store.current().credentials, [], 'the deleted Persona took its credential with it');
    await eventually(() => late.store.current().version === a.store.current().version, 'the running late replica to follow');
    for (const replica of [a, b, late]) await replica.stop();
  });

  test('an existing local history is published once as the base; fresh replicas adopt it; a diverging one refuses to start', async () => {
    await resetStream();
    // An embedded control plane's history, before NATS.
    const legacyDir = newDir();
    const legacy = openConfigStore({ path: join(legacyDir, 'config.db'), env: {} });
    legacy.apply([tickets, persona('support')], { actor: 'admin' });
    const kept = legacy.issueCredential({ persona: 'support', agent: 'agent-1' }, 'admin');
    const dropped = legacy.issueCredential({ persona: 'support', agent: 'agent-2' }, 'admin');
    assert.ok(kept.ok && dropped.ok);
    legacy.revokeCredential(dropped.id, 'admin');
    const before = sharedState(legacy);
    legacy.close();

    const migrated = await startReplica('migrated', legacyDir);
    assert.equal(migrated.events.filter((e) => e.event === 'config_replication_base_published').length, 1);
    assert.deepEqual(sharedState(migrated.store), before, 'migrating changes nothing locally');
    const fresh = await startReplica('fresh');
    assert.equal(fresh.store.current().version, 5);
    assert.deepEqual(fresh.store.current().bundle, before.bundle);
    assert.deepEqual(fresh.store.current().credentials, before.credentials);
    assert.deepEqual(fresh.store.listCredentials(), before.credentialList, 'revoked credentials too, with their times');
    assert.equal(findCredentialForToken(new Map(fresh.store.current().credentials.map((c) => [c.id, c])), kept.token, new Date())?.agent, 'agent-1');

    // Restarting the migrated replica publishes nothing again; writes continue the one history.
    await migrated.stop();
    const again = await startReplica('migrated', legacyDir);
    assert.equal(again.events.filter((e) => e.event === 'config_replication_base_published').length, 0);
    const edit = await fresh.replicated.apply([persona('billing')], { actor: 'admin' });
    assert.deepEqual(edit, { ok: true, version: 6, changed: ['Persona/billing'] });
    await eventually(() => again.store.current().version === 6, 'the migrated replica to follow');
    const connection = await connect({ servers: nats.url });
    assert.equal((await (await connection.jetstreamManager()).streams.info(configStream)).state.messages, 2, 'the base and one change');
    await connection.close();

    // A second store with a history of its own cannot join silently.
    const otherDir = newDir();
    const other = openConfigStore({ path: join(otherDir, 'config.db'), env: {} });
    other.apply([tickets], { actor: 'someone-else' });
    other.close();
    await assert.rejects(() => startReplica('other', otherDir), /own history up to version 2/);
    for (const replica of [again, fresh]) await replica.stop();
  });

  test('with NATS down, writes are refused with config_replication_unavailable and nothing is committed; reads work; afterwards writes work and replicas catch up', async () => {
    await resetStream();
    const a = await startReplica('a');
    const b = await startReplica('b');
    await a.replicated.apply([tickets, persona('support')], { actor: 'admin' });
    await eventually(() => b.store.current().version === 2, 'B at version 2');
    const admin = createAdminServer({ store: a.replicated, adminToken: 'admin-token', internalToken: 'internal-token', xdsStatus: () => [], replicationStatus: a.replicated.status });
    await new Promise<void>((resolve) => admin.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(admin.address() as AddressInfo).port}`;
    const headers = { authorization: 'Bearer admin-token', 'content-type': 'application/json' };
    try {
      await nats.stop();
      await eventually(() => !a.replicated.status().connected && !b.replicated.status().connected, 'both replicas to notice');

      const refused = await fetch(`${base}/v1/personas/billing`, { method: 'PUT', headers, body: JSON.stringify(persona('billing')) });
      assert.equal(refused.status, 503);
      assert.equal(refused.headers.get('content-type'), 'application/problem+json');
      const problem = (await refused.json()) as { code: string; type: string; detail: string };
      assert.equal(problem.code, 'config_replication_unavailable');
      assert.equal(problem.type, 'urn:mandate:problem:config_replication_unavailable');
      assert.match(problem.detail, /nothing was changed/);
      const credential = await fetch(`${base}/v1/personas/support/credentials`, { method: 'POST', headers, body: JSON.stringify({ agent: 'agent-9' }) });
      assert.equal(credential.status, 503);
      assert.equal(((await credential.json()) as { code: string }).code, 'config_replication_unavailable');
      assert.equal((await b.replicated.remove('Persona', 'support', 'admin')).ok, false);
      // Nothing committed locally, anywhere.
      assert.equal(a.store.current().version, 2);
      assert.equal(a.store.history(10).length, 2);
      assert.equal(b.store.current().version, 2);
      assert.deepEqual(a.store.listCredentials(), []);
      // Reads still serve the last applied config; so do invalid or no-op writes, which need no NATS.
      const read = await fetch(`${base}/v1/personas/support`, { headers });
      assert.equal(read.status, 200);
      const status = (await (await fetch(`${base}/v1/status`, { headers })).json()) as { configVersion: number; replication: { connected: boolean } };
      assert.deepEqual([status.configVersion, status.replication.connected], [2, false]);
      assert.equal((await fetch(`${base}/v1/personas/support`, { method: 'PUT', headers, body: JSON.stringify(persona('support')) })).status, 200, 'a no-op write is answered');
      assert.equal((await fetch(`${base}/v1/personas/support`, { method: 'PUT', headers, body: JSON.stringify({ grants: 'nope' }) })).status, 422, 'bad config is still rejected as such');

      await nats.start();
      await eventually(() => a.replicated.status().connected && b.replicated.status().connected, 'both replicas to reconnect', 15_000);
      const accepted = await fetch(`${base}/v1/personas/billing`, { method: 'PUT', headers, body: JSON.stringify(persona('billing')) });
      assert.equal(accepted.status, 200);
      assert.equal(((await accepted.json()) as { version: number }).version, 3);
      await eventually(() => b.store.current().version === 3, 'B to catch up');
      assert.deepEqual(sharedState(b.store), sharedState(a.store));
    } finally {
      admin.closeAllConnections();
      await new Promise((resolve) => admin.close(resolve));
      await a.stop();
      await b.stop();
    }
  });

  test('a replica that starts while NATS is down serves its local config and catches up when NATS arrives', async () => {
    await resetStream();
    const a = await startReplica('a');
    const bDir = newDir();
    const b0 = await startReplica('b', bDir);
    await a.replicated.apply([tickets, persona('support')], { actor: 'admin' });
    await eventually(() => b0.store.current().version === 2, 'B at version 2');
    await b0.stop();
    await nats.stop();
    const b = await startReplica('b', bDir, { firstConnectWaitMs: 300 });
    assert.equal(b.store.current().version, 2, 'the local config is served');
    assert.ok(b.events.some((e) => e.event === 'config_replication_unavailable_at_start'));
    assert.equal((await b.replicated.apply([persona('billing')], { actor: 'admin' })).ok, false);
    await nats.start();
    await eventually(() => a.replicated.status().connected, 'A to reconnect', 15_000);
    await a.replicated.apply([persona('billing')], { actor: 'admin' });
    await eventually(() => b.store.current().version === 3 && b.replicated.status().connected, 'B to connect and catch up', 15_000);
    assert.deepEqual(sharedState(b.store), sharedState(a.store));
    await a.stop();
    await b.stop();
  });

  test('a replica whose stream was deleted and recreated halts: it keeps its config and refuses writes rather than fork', async () => {
    await resetStream();
    const a = await startReplica('a');
    await a.replicated.apply([tickets, persona('support')], { actor: 'admin' });
    await resetStream();
    const b = await startReplica('b'); // creates the stream anew
    const refused = await a.replicated.apply([persona('billing')], { actor: 'admin' });
    assert.equal(refused.ok, false);
    assert.equal(!refused.ok && refused.issues[0]?.code, 'config_replication_unavailable');
    assert.match(a.replicated.status().halted ?? '', /deleted or replaced/);
    assert.equal(a.store.current().version, 2);
    assert.ok(a.events.some((e) => e.event === 'config_replication_halted'));
    await a.stop();
    await b.stop();
  });

  test('a malformed message on the subject is logged and skipped; replication goes on', async () => {
    await resetStream();
    const a = await startReplica('a');
    const b = await startReplica('b');
    await a.replicated.apply([tickets], { actor: 'admin' });
    await eventually(() => b.store.current().version === 2, 'B at version 2');
    // Written with the replicas' key (so they pass the MAC) but not revisions.
    const connection = await connect({ servers: nats.url });
    const js = connection.jetstream();
    const junk = new TextEncoder().encode('not json at all');
    await js.publish(revisionSubject, junk, { headers: macHeaders(2, junk) });
    const wrongShape = new TextEncoder().encode(JSON.stringify({ format: 1, replica: 'x', change: { kind: 'change', version: 3, bundleJson: '{}' } }));
    await js.publish(revisionSubject, wrongShape, { headers: macHeaders(3, wrongShape) });
    await connection.close();
    // A has not seen them: its write is refused by the stream first, then it catches up, skips them and writes on top.
    const applied = await a.replicated.apply([persona('support')], { actor: 'admin' });
    assert.deepEqual(applied, { ok: true, version: 3, changed: ['Persona/support'] });
    await eventually(() => b.store.current().version === 3, 'B to apply the next good revision');
    for (const replica of [a, b]) {
      const bad = replica.events.filter((e) => e.event === 'config_replication_bad_message');
      assert.deepEqual(bad.map((e) => e.fields.sequence), [2, 3], `${replica.name} logged both bad messages`);
      assert.equal(replica.replicated.status().unauthenticatedMessages, 0);
      assert.equal(replica.replicated.status().streamSequence, 4);
      assert.equal(replica.replicated.status().halted, null);
    }
    assert.deepEqual(sharedState(a.store), sharedState(b.store));
    await a.stop();
    await b.stop();
  });

  test('a bundle over max_payload as JSON replicates compressed; one over it even compressed is refused with config_revision_too_large and nothing is committed', async () => {
    await resetStream();
    const a = await startReplica('a');
    const b = await startReplica('b');
    // 3,000 Personas: over the server's 1 MiB max_payload as JSON, far under it compressed.
    const many = Array.from({ length: 3000 }, (_, i) => persona(`team-${i}`, `Reads the tickets of team ${i}, answers its customers and escalates what it cannot answer to the on-call engineer`));
    const applied = await a.replicated.apply([tickets, ...many], { actor: 'admin' });
    assert.ok(applied.ok, JSON.stringify(applied).slice(0, 500));
    const change = a.store.history(1)[0]!;
    assert.ok(a.store.current().bundle.personas.length === 3000 && JSON.stringify(a.store.current().bundle).length > 1024 * 1024, 'the bundle alone is over 1 MiB as JSON');
    await eventually(() => b.store.current().version === change.version, 'B to apply the large revision', 20_000);
    assert.deepEqual(sharedState(b.store), sharedState(a.store));

    // Incompressible descriptions (random, 8,000 characters): the revision outgrows max_payload.
    const noisy = (i: number) => persona(`noisy-${i}`, randomBytes(6000).toString('base64'));
    const bulk = await a.replicated.apply(Array.from({ length: 160 }, (_, i) => noisy(i)), { actor: 'admin' });
    assert.ok(bulk.ok, JSON.stringify(bulk).slice(0, 500));
    let refused: Awaited<ReturnType<ReplicatedConfigStore['apply']>> | null = null;
    for (let i = 160; i < 400 && refused === null; i += 10) {
      const result = await a.replicated.apply(Array.from({ length: 10 }, (_, k) => noisy(i + k)), { actor: 'admin' });
      if (!result.ok) refused = result;
    }
    assert.ok(refused && !refused.ok, 'a write was refused before 400 noisy Personas');
    assert.equal(refused.issues[0]?.code, 'config_revision_too_large');
    assert.match(refused.issues[0]!.message, /bytes compressed, over the NATS server's max_payload of 1048576 bytes.*nothing was changed/);
    // Through the admin API, one Persona at a time up to the edge: 200 until the revision no longer
    // fits, then 413 with the stable code, and nothing committed on either replica.
    const admin = createAdminServer({ store: a.replicated, adminToken: 'admin-token', internalToken: 'internal-token', xdsStatus: () => [], replicationStatus: a.replicated.status });
    await new Promise<void>((resolve) => admin.listen(0, '127.0.0.1', resolve));
    let versionBefore = a.store.current().version;
    try {
      const base = `http://127.0.0.1:${(admin.address() as AddressInfo).port}`;
      let problem: { code: string; detail: string } | null = null;
      for (let i = 1000; i < 1010 && problem === null; i++) {
        versionBefore = a.store.current().version;
        const response = await fetch(`${base}/v1/personas/noisy-${i}`, { method: 'PUT', headers: { authorization: 'Bearer admin-token', 'content-type': 'application/json' }, body: JSON.stringify(noisy(i)) });
        if (response.status === 413) problem = (await response.json()) as { code: string; detail: string };
        else assert.equal(response.status, 200, await response.text());
      }
      assert.ok(problem, 'one of 10 more Personas was refused');
      assert.equal(problem.code, 'config_revision_too_large');
      assert.match(problem.detail, /raise max_payload/);
    } finally {
      await new Promise((resolve) => admin.close(resolve));
    }
    await eventually(() => b.store.current().version === versionBefore, 'B to reach the last accepted version', 20_000);
    assert.equal(a.store.current().version, versionBefore);
    assert.equal(a.store.history(1)[0]!.version, versionBefore);
    assert.equal(a.replicated.status().halted, null);
    assert.deepEqual(sharedState(a.store), sharedState(b.store));
    await a.stop();
    await b.stop();
  });

  test('messages on the wire are gzip; plain JSON messages of the first format are still applied', async () => {
    await resetStream();
    const a = await startReplica('a');
    await a.replicated.apply([tickets], { actor: 'admin' });
    const connection = await connect({ servers: nats.url });
    try {
      const jsm = await connection.jetstreamManager();
      const stored = await jsm.streams.getMessage(configStream, { seq: 1 });
      assert.deepEqual([...stored.data.subarray(0, 2)], [0x1f, 0x8b], 'gzip magic');
    } finally {
      await connection.close();
    }
    // A revision published as plain JSON (by a replica of an earlier release) is read too.
    const b = await startReplica('b');
    await eventually(() => b.store.current().version === 2, 'B at version 2');
    const planned = b.store.plan.apply([persona('support')], { actor: 'admin:old-replica' });
    assert.ok(planned.change);
    const plain = await connect({ servers: nats.url });
    try {
      const data = new TextEncoder().encode(JSON.stringify({ format: 1, replica: 'old', change: planned.change }));
      await plain.jetstream().publish(revisionSubject, data, { expect: { lastSubjectSequence: 1 }, headers: macHeaders(2, data) });
    } finally {
      await plain.close();
    }
    await eventually(() => a.store.current().version === 3 && b.store.current().version === 3, 'both to apply the plain JSON revision');
    assert.ok(a.store.current().bundle.personas.some((p) => p.name === 'support'));
    assert.deepEqual(sharedState(a.store), sharedState(b.store));
    await a.stop();
    await b.stop();
  });

  test('an inline upstream secret crosses NATS only sealed with the config secrets key; a replica with another key halts; without a key a replica does not start', async () => {
    await resetStream();
    const key = { MANDATE_CONFIG_SECRETS_KEY: randomBytes(32).toString('base64') };
    const secret = 'sk-live-5e2d9c8b7a6f4e3d2c1b0a99';
    const billing = { kind: 'Upstream', name: 'billing', protocol: 'mcp', url: 'http://127.0.0.1:3002/mcp', auth: { type: 'bearer', token: { value: secret } } };
    const a = await startReplica('a', newDir(), { env: key });
    const b = await startReplica('b', newDir(), { env: key });
    const applied = await a.replicated.apply([tickets, billing], { actor: 'admin' });
    assert.ok(applied.ok, JSON.stringify(applied));
    await eventually(() => b.store.current().version === applied.version, 'B to apply the sealed revision');
    assert.deepEqual(sharedState(b.store), sharedState(a.store));
    assert.deepEqual(resolveUpstreamCredentials(b.store.current().bundle, {}).headers.billing, { header: 'authorization', value: `Bearer ${secret}` });

    // What NATS keeps (forever) has no trace of the secret.
    const connection = await connect({ servers: nats.url });
    try {
      const stored = await (await connection.jetstreamManager()).streams.getMessage(configStream, { seq: 1 });
      const text = gunzipSync(stored.data).toString('utf8');
      assert.ok(!text.includes(secret) && !text.includes(Buffer.from(secret).toString('base64')));
      assert.match(text, /"sealedSecrets":\[\{"upstream":"billing","field":"token"/);
    } finally {
      await connection.close();
    }

    // A replica with another key cannot apply the revision: it refuses to start, saying why. One that
    // holds the key only among its previous keys (a rotation) reads it.
    await assert.rejects(
      startReplica('c2', newDir(), { env: { MANDATE_CONFIG_SECRETS_KEY: randomBytes(32).toString('hex') } }),
      /sequence 1 cannot be applied: its MAC is under config secrets key [0-9a-f]{16}, which this replica does not have/,
    );
    const rotated = await startReplica('c3', newDir(), { env: { MANDATE_CONFIG_SECRETS_KEY: randomBytes(32).toString('base64'), MANDATE_CONFIG_SECRETS_PREVIOUS_KEYS: key.MANDATE_CONFIG_SECRETS_KEY } });
    assert.deepEqual(sharedState(rotated.store), sharedState(a.store));
    await rotated.stop();
    // A running replica that meets a revision under a key it lacks halts and keeps its config.
    await a.stop();
    await b.stop();
    await resetStream();
    const e = await startReplica('e');
    const e2 = await startReplica('e2', newDir(), { env: key });
    await e.replicated.catchUp();
    assert.ok((await e2.replicated.apply([billing], { actor: 'admin' })).ok);
    await eventually(() => e.replicated.status().halted !== null, 'E to halt');
    assert.match(e.replicated.status().halted!, /which this replica does not have/);
    assert.equal(e.store.current().version, 1);
    await e.stop();
    await e2.stop();
    // Without a key a replica cannot authenticate revisions: it does not start.
    await assert.rejects(startReplica('d', newDir(), { env: { BILLING_TOKEN: 'from-the-environment' } }), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'config_secrets_key_missing');
      assert.match(error.message, /scaled out \(MANDATE_NATS_URL\), every control-plane replica needs the same MANDATE_CONFIG_SECRETS_KEY/);
      return true;
    });
  });

  test('a revision without a valid MAC (none, forged, replayed at another sequence) is skipped by every replica; the history goes on', async () => {
    await resetStream();
    const a = await startReplica('a');
    const b = await startReplica('b');
    assert.ok((await a.replicated.apply([tickets, persona('support')], { actor: 'admin' })).ok);
    await eventually(() => b.store.current().version === 2, 'B at version 2');
    // What someone allowed to publish on the subject, without the key, could try: a well-formed revision
    // that grants every tool, unsigned; the same signed with another key's id and MAC; and a genuine
    // signed revision taken from the stream and published again.
    const planned = a.store.plan.apply([{ ...persona('support'), grants: [{ upstream: 'tickets', tools: [{ name: '*' }] }] }], { actor: 'intruder' });
    assert.ok(planned.change);
    const forged = encodeRevisionMessage('intruder', planned.change);
    const connection = await connect({ servers: nats.url });
    try {
      const js = connection.jetstream();
      await js.publish(revisionSubject, forged);
      const otherKey = secretsKeyringFromEnv({ MANDATE_CONFIG_SECRETS_KEY: randomBytes(32).toString('base64') });
      const ownId = secretsKeyringFromEnv(sharedKey).current!.id;
      const wrongMac = headers();
      wrongMac.set(revisionMacHeader, `${ownId}:${signRevision(otherKey, 3, forged).split(':')[1]}`);
      await js.publish(revisionSubject, forged, { headers: wrongMac });
      const genuine = await (await connection.jetstreamManager()).streams.getMessage(configStream, { seq: 1 });
      const replayed = headers();
      replayed.set(revisionMacHeader, genuine.header!.get(revisionMacHeader));
      await js.publish(revisionSubject, genuine.data, { headers: replayed });
    } finally {
      await connection.close();
    }
    // A's next write lands on top of the three skipped messages; both replicas agree, none was applied.
    const next = await a.replicated.apply([persona('billing-agent')], { actor: 'admin' });
    assert.deepEqual(next, { ok: true, version: 3, changed: ['Persona/billing-agent'] });
    await eventually(() => b.store.current().version === 3, 'B at version 3');
    for (const replica of [a, b]) {
      const skipped = replica.events.filter((e) => e.event === 'config_replication_unauthenticated_message');
      assert.deepEqual(skipped.map((e) => e.fields.sequence), [2, 3, 4], `${replica.name} skipped the three messages`);
      assert.match(String(skipped[0]!.fields.reason), /carries no MAC/);
      assert.match(String(skipped[1]!.fields.reason), /does not verify/);
      assert.match(String(skipped[2]!.fields.reason), /moved to another sequence/);
      assert.equal(replica.replicated.status().unauthenticatedMessages, 3);
      assert.equal(replica.replicated.status().streamSequence, 5);
      assert.equal(replica.replicated.status().halted, null);
      assert.deepEqual(replica.store.current().bundle.personas.find((p) => p.name === 'support')?.grants.flatMap((g) => g.tools?.map((t) => t.name) ?? []), ['get_*']);
      assert.ok(!replica.store.history(100).some((r) => r.actor === 'intruder'));
    }
    assert.deepEqual(sharedState(a.store), sharedState(b.store));
    await a.stop();
    await b.stop();
  });
});
