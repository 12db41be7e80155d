import { test, after, type TestContext } from 'node:test';
import { natsSettingsFromEnv } from '../../config/nats-connection.ts';
import assert from 'node:assert/strict';
import { MemoryAlertSink } from './alerts.ts';
import { createBehaviourEngine, type BehaviourEngine } from './engine.ts';
import { bulkReadThenEgress, compileOrThrow, supportPersona, ticketCall } from './fixtures.ts';
import { counterKindOf, decodeSession, encodeSession, mergeCounter, mergeSessionConservatively, openNatsSessionStateStore, type NatsSessionStateStore } from './nats-state-store.ts';
import { InMemorySessionStateStore, type ScopeCounter, type SessionState, type SessionStateStore } from './state-store.ts';
import { natsServerMissing, startNatsServer, type NatsServer } from '../../test/support/nats-server.ts';

const T0 = Date.parse('2026-01-05T09:00:00Z');
const emailCall = (overrides = {}) => ticketCall({ upstream: 'mail', tool: 'email.send', arguments: { to: 'x@example.com', body: 'dump' }, ...overrides });

// --- pure parts --------------------------------------------------------------------------

function sessionAfterCalls(): SessionState {
  const store = new InMemorySessionStateStore();
  const engine = createBehaviourEngine({ clock: () => T0, store, alertSink: new MemoryAlertSink() });
  const compiled = compileOrThrow(
    supportPersona({ rules: [bulkReadThenEgress], guardrails: { circuitBreaker: { repeatedCalls: { threshold: 3 }, novelArguments: {} } } }),
  );
  for (let id = 1; id <= 5; id += 1) engine.evaluate(compiled, ticketCall({ arguments: { id }, timeMs: T0 + id }));
  for (let i = 0; i < 3; i += 1) engine.evaluate(compiled, ticketCall({ tool: 'tickets.search', arguments: { q: 'same' }, timeMs: T0 + 10 + i }));
  const state = store.getSession(engine.evaluate(compiled, ticketCall({ arguments: { id: 9 }, timeMs: T0 + 20 })).sessionKey);
  assert.ok(state);
  return state;
}

test('a session survives encoding with its Sets and Maps, and the object set is bounded', () => {
  const state = sessionAfterCalls();
  assert.ok(state.breaker && state.breaker.seen.size > 0 && state.breaker.trips === 1);
  const { encoded, cut } = encodeSession(state, 1000);
  assert.equal(cut, false);
  const decoded = decodeSession(JSON.parse(JSON.stringify(encoded)) as typeof encoded);
  assert.deepEqual(decoded, state);

  const big = { ...state, objects: new Set(Array.from({ length: 5000 }, (_, i) => i * 7919)) };
  const bounded = encodeSession(big, 100);
  assert.equal(bounded.cut, true);
  assert.equal(decodeSession(bounded.encoded).objects?.size, 100);
});

test('counter kinds are read from the keys the engine really writes', () => {
  const keys: string[] = [];
  const store = new InMemorySessionStateStore();
  const recording: SessionStateStore = {
    getSession: (key) => store.getSession(key),
    setSession: (key, state) => store.setSession(key, state),
    deleteSession: (key) => store.deleteSession(key),
    getCounter: (key) => store.getCounter(key),
    setCounter: (key: string, counter: ScopeCounter) => {
      keys.push(key);
      store.setCounter(key, counter);
    },
    quarantined: (agent) => store.quarantined(agent),
    quarantine: (record) => store.quarantine(record),
    release: (agent) => store.release(agent),
    listQuarantined: () => store.listQuarantined(),
    get sessionCount() {
      return store.sessionCount;
    },
  };
  const engine = createBehaviourEngine({ clock: () => T0, store: recording, alertSink: new MemoryAlertSink() });
  const compiled = compileOrThrow(
    supportPersona({
      guardrails: {
        rateLimits: [
          { key: 'agent', limit: 10, per: '1m' },
          { key: 'agent-tool', limit: 10, per: '1m' },
          { key: 'tool', limit: 10, per: '1m' },
          { key: 'session', limit: 10, per: '1m' },
        ],
        quotas: [
          { key: 'agent', limit: 10, period: '1d' },
          { key: 'session', limit: 10, period: '1d' },
        ],
      },
    }),
  );
  // An agent and a user named like counter kinds must not confuse the parser.
  engine.evaluate(compiled, ticketCall({ agent: 'q1', user: 'a:rl0' }));
  assert.deepEqual(keys.map(counterKindOf), ['bucket', 'bucket', 'bucket', 'bucket', 'window', 'window']);
});

test('counter merges are never looser than either view', () => {
  // Quotas count up: the higher count of the same window, or the later window.
  assert.deepEqual(mergeCounter('window', { value: 5, at: 100 }, { value: 7, at: 100 }, 250), { value: 7, at: 100 });
  assert.deepEqual(mergeCounter('window', { value: 9, at: 100 }, { value: 7, at: 100 }, 250), { value: 9, at: 100 });
  assert.deepEqual(mergeCounter('window', { value: 9, at: 100 }, { value: 1, at: 200 }, 250), { value: 1, at: 200 });
  assert.deepEqual(mergeCounter('window', { value: 1, at: 200 }, { value: 9, at: 100 }, 250), { value: 1, at: 200 });
  // Token buckets count down: concurrent views keep the lower balance; a stale view does not drain a refilled one.
  assert.deepEqual(mergeCounter('bucket', { value: 4, at: 1000 }, { value: 2, at: 1100 }, 250), { value: 2, at: 1100 });
  assert.deepEqual(mergeCounter('bucket', { value: 2, at: 1100 }, { value: 4, at: 1000 }, 250), { value: 2, at: 1100 });
  assert.deepEqual(mergeCounter('bucket', { value: 10, at: 60_000 }, { value: 0, at: 1000 }, 250), { value: 10, at: 60_000 });
});

test('a concurrent session view keeps the end, the furthest rule progress and the stopped breaker', () => {
  const base = sessionAfterCalls();
  const mine = decodeSession(encodeSession(base, 1000).encoded);
  const theirs = decodeSession(encodeSession(base, 1000).encoded);
  theirs.ended = { stage: 'behaviour', code: 'sequence_rule_matched', message: 'ended there' };
  const theirRule = theirs.rules?.[0];
  assert.ok(theirRule);
  theirRule.count += 10;
  if (theirs.breaker) theirs.breaker.stopped = true;
  theirs.objects?.add(123456);
  mergeSessionConservatively(mine, theirs);
  assert.equal(mine.ended?.message, 'ended there');
  assert.equal(mine.rules?.[0]?.count, theirRule.count);
  assert.equal(mine.breaker?.stopped, true);
  assert.ok(mine.objects?.has(123456));
  // A new incarnation of the session (a later startedAt) is not polluted by the old one.
  const fresh = decodeSession(encodeSession(base, 1000).encoded);
  fresh.startedAt += 1;
  fresh.ended = null;
  mergeSessionConservatively(fresh, theirs);
  assert.equal(fresh.ended, null);
});

// --- against a real nats-server -js --------------------------------------------------------

const skip = natsServerMissing() ?? false;
if (skip) console.log(`# SKIP ${skip}`);

/** A real nats-server -js, disposed when the test ends. */
async function startNats(cleanup: (fn: () => Promise<void>) => void): Promise<NatsServer> {
  const server = await startNatsServer();
  cleanup(() => server.dispose());
  return server;
}

async function waitFor(what: string, condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

interface Replica {
  store: NatsSessionStateStore;
  engine: BehaviourEngine;
  logs: string[];
}

async function replica(t: TestContext, url: string, bucketPrefix: string, replicaId: string): Promise<Replica> {
  const logs: string[] = [];
  const store = await openNatsSessionStateStore({ nats: natsSettingsFromEnv({ MANDATE_NATS_URL: url })!, bucketPrefix, replicaId, log: (event, fields) => { logs.push(event); if (process.env.DEBUG_NATS_STORE) console.log(event, fields); } });
  t.after(() => store.close(200));
  const engine = createBehaviourEngine({ clock: () => T0, store, alertSink: new MemoryAlertSink() });
  return { store, engine, logs };
}

// One server for the tests that do not stop it; each test uses its own buckets.
let shared: NatsServer | null = null;
const sharedCleanup: (() => Promise<void>)[] = [];
after(async () => {
  for (const cleanup of sharedCleanup) await cleanup();
});
async function sharedServer(): Promise<NatsServer> {
  shared ??= await startNats((fn) => sharedCleanup.push(fn));
  return shared;
}

test('tickets read on replica A, then the email on replica B: B blocks it', { skip, timeout: 20_000 }, async (t) => {
  const server = await sharedServer();
  const a = await replica(t, server.url, 'seq', 'replica-a');
  const b = await replica(t, server.url, 'seq', 'replica-b');
  const compiled = compileOrThrow(supportPersona({ rules: [bulkReadThenEgress] }));

  for (let id = 1; id <= 60; id += 1) {
    assert.equal(a.engine.evaluate(compiled, ticketCall({ arguments: { id }, timeMs: T0 + id * 500 })).action, 'allow');
  }
  const key = a.engine.evaluate(compiled, ticketCall({ arguments: { id: 61 }, timeMs: T0 + 61 * 500 })).sessionKey;
  await waitFor('B to hold the session with 61 calls', () => b.store.peekSession(key)?.calls === 61);

  const email = b.engine.evaluate(compiled, emailCall({ timeMs: T0 + 40_000 }));
  assert.equal(email.action, 'block');
  assert.match(email.reasons[0]?.message ?? '', /bulk-read-then-egress.*61 matching call/);
  // Control: a replica that does not share state would have let the same email through.
  const alone = createBehaviourEngine({ clock: () => T0, store: new InMemorySessionStateStore(), alertSink: new MemoryAlertSink() });
  assert.equal(alone.evaluate(compiled, emailCall({ timeMs: T0 + 40_000 })).action, 'allow');

  // The block on B is replicated back: a second email on A is blocked too (the sequence keeps holding).
  await waitFor('A to see B\'s write', () => (a.store.peekSession(key)?.recent.at(-1)?.tool ?? '') === 'email.send');
  assert.equal(a.engine.evaluate(compiled, emailCall({ timeMs: T0 + 41_000 })).action, 'block');
  assert.ok(b.store.stats().applied > 0 && a.store.stats().published > 0);
  assert.equal(a.store.stats().dropped, 0);
  assert.ok((b.store.stats().lastPropagationDelayMs ?? -1) >= 0);
});

test('a quarantine on A is seen on B, and a release on B lifts it on A', { skip, timeout: 20_000 }, async (t) => {
  const server = await sharedServer();
  const a = await replica(t, server.url, 'quarantine', 'replica-a');
  const b = await replica(t, server.url, 'quarantine', 'replica-b');
  const compiled = compileOrThrow(supportPersona({ rules: [{ ...bulkReadThenEgress, action: 'quarantine' }] }));
  for (let id = 1; id <= 50; id += 1) a.engine.evaluate(compiled, ticketCall({ arguments: { id } }));
  assert.equal(a.engine.evaluate(compiled, emailCall()).action, 'quarantine');

  await waitFor('B to see the quarantine', () => b.engine.quarantine.isQuarantined('agent-1'));
  const other = b.engine.evaluate(compiled, ticketCall({ sessionId: 'another-session' }));
  assert.equal(other.action, 'block');
  assert.deepEqual(other.reasons.map((r) => r.code), ['agent_quarantined']);
  assert.equal(b.engine.quarantine.list()[0]?.reason.code, 'sequence_rule_matched');

  assert.equal(b.engine.quarantine.release('agent-1'), true);
  await waitFor('A to see the release', () => !a.engine.quarantine.isQuarantined('agent-1'));
  assert.equal(a.engine.evaluate(compiled, ticketCall({ sessionId: 'fresh-session' })).action, 'allow');
  // A replica that starts later reads the (now empty) quarantine list from the bucket.
  const c = await replica(t, server.url, 'quarantine', 'replica-c');
  assert.deepEqual(c.engine.quarantine.list(), []);
});

test('a rate limit and a quota shared by two replicas are not looser than on one', { skip, timeout: 20_000 }, async (t) => {
  const server = await sharedServer();
  const a = await replica(t, server.url, 'limits', 'replica-a');
  const b = await replica(t, server.url, 'limits', 'replica-b');
  const compiled = compileOrThrow(
    supportPersona({ guardrails: { rateLimits: [{ key: 'agent', limit: 20, per: '1m' }], quotas: [{ key: 'agent', limit: 15, period: '1d' }] } }),
  );
  const single = createBehaviourEngine({ clock: () => T0, store: new InMemorySessionStateStore(), alertSink: new MemoryAlertSink() });
  const allowedOnOne = Array.from({ length: 30 }, (_, i) => single.evaluate(compiled, ticketCall({ agent: 'solo', arguments: { id: i } }))).filter((v) => v.action === 'allow').length;

  // Calls alternate between replicas (no session affinity); each waits for the previous write to arrive.
  const bucketKey = 'support\u0000rl0\u0000a:agent-1';
  const quotaKey = 'support\u0000q0\u0000a:agent-1';
  let allowed = 0;
  for (let i = 0; i < 30; i += 1) {
    const [here, there] = i % 2 === 0 ? [a, b] : [b, a];
    if (here.engine.evaluate(compiled, ticketCall({ arguments: { id: i } })).action === 'allow') allowed += 1;
    const spent = here.store.getCounter(quotaKey)?.value;
    await waitFor(`call ${i} replicated`, () => there.store.getCounter(quotaKey)?.value === spent && there.store.getCounter(bucketKey)?.value === here.store.getCounter(bucketKey)?.value);
  }
  assert.equal(allowedOnOne, 15, 'the quota (15/day) binds before the rate limit (20/min)');
  assert.equal(allowed, allowedOnOne);

  // Worst case, no propagation at all (both replicas spend in the same tick): each admits at most one
  // replica's budget, and once the writes cross, both sides hold the stricter view.
  let burst = 0;
  for (let i = 0; i < 20; i += 1) {
    for (const r of [a, b]) if (r.engine.evaluate(compiled, ticketCall({ agent: 'bursty', arguments: { id: i } })).action === 'allow') burst += 1;
  }
  assert.ok(burst <= 2 * allowedOnOne, `burst admitted ${burst}`);
  const burstQuota = 'support\u0000q0\u0000a:bursty';
  await waitFor('burst counters to converge', () => a.store.getCounter(burstQuota)?.value === b.store.getCounter(burstQuota)?.value);
  assert.equal(a.engine.evaluate(compiled, ticketCall({ agent: 'bursty' })).action, 'block');
  assert.equal(b.engine.evaluate(compiled, ticketCall({ agent: 'bursty' })).action, 'block');
});

test('killing nats-server mid-run: evaluation keeps working locally, and after a restart the replicas resync', { skip, timeout: 30_000 }, async (t) => {
  const server = await startNats((fn) => t.after(fn));
  const a = await replica(t, server.url, 'outage', 'replica-a');
  const b = await replica(t, server.url, 'outage', 'replica-b');
  const compiled = compileOrThrow(supportPersona({ rules: [bulkReadThenEgress, { ...bulkReadThenEgress, name: 'export-then-quarantine', steps: [{ match: { tool: 'tickets.export' } }], action: 'quarantine' }] }));
  const key = a.engine.evaluate(compiled, ticketCall({ arguments: { id: 0 }, timeMs: T0 })).sessionKey;
  await waitFor('B to hold the session', () => b.store.peekSession(key) !== undefined);

  await server.stop();
  await waitFor('both replicas to notice the outage', () => !a.store.stats().connected && !b.store.stats().connected);
  const started = performance.now();
  for (let id = 1; id <= 60; id += 1) {
    assert.equal(a.engine.evaluate(compiled, ticketCall({ arguments: { id }, timeMs: T0 + id * 100 })).action, 'allow');
  }
  // A quarantine decided during the outage holds locally at once.
  assert.equal(a.engine.evaluate(compiled, ticketCall({ agent: 'agent-2', sessionId: 's-2', tool: 'tickets.export', arguments: {} })).action, 'quarantine');
  assert.ok(a.engine.quarantine.isQuarantined('agent-2'));
  assert.ok(performance.now() - started < 1000, 'evaluation did not wait for NATS');
  // What the outage loses: B cannot see A's reads meanwhile.
  assert.equal(b.store.peekSession(key)?.calls, 1);
  assert.ok(a.store.stats().pendingWrites > 0);

  await server.start();
  await waitFor('both replicas to resync', () => a.store.stats().resyncs >= 1 && b.store.stats().resyncs >= 1, 15_000);
  await waitFor('B to receive the reads made during the outage', () => b.store.peekSession(key)?.calls === 61, 10_000);
  await waitFor('B to receive the quarantine made during the outage', () => b.engine.quarantine.isQuarantined('agent-2'), 10_000);
  assert.equal(b.engine.evaluate(compiled, emailCall({ timeMs: T0 + 10_000 })).action, 'block');
  assert.ok(a.logs.includes('behaviour_replication_disconnected') && a.logs.includes('behaviour_replication_resynced'));
});
