import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileDataProtection } from './compile.ts';
import { FlowTracker, flowSessionOf, personaOfFlowSession } from './flow.ts';
import { inspectJson } from './inspect.ts';

const key = Buffer.from('0123456789abcdef0123456789abcdef');
const compiled = compileDataProtection({ defaultAction: 'detect' } as never, { fingerprintKey: key });

function tracker(now: { t: number }, extra = {}) {
  return new FlowTracker({ now: () => now.t, maxFingerprintsPerSession: 100, ttlMs: 60_000, gradualCollectionThreshold: 5, ...extra });
}

test('a card read from billing may not flow into the email (egress) tool', () => {
  const now = { t: 0 };
  const flow = tracker(now);
  const read = inspectJson(compiled, { invoice: { card: '4111 1111 1111 1111' } }, { direction: 'response', upstream: 'billing', tool: 'get_invoice' });
  assert.equal(read.fingerprints.length, 1);
  assert.ok(!JSON.stringify(read.fingerprints).includes('4111'));
  flow.recordResponse('s1', { upstream: 'billing', environment: 'production', tool: 'get_invoice' }, read.fingerprints);

  // Same value, different formatting, in a later request.
  const send = inspectJson(compiled, { body: 'card is 4111-1111-1111-1111' }, { direction: 'request', upstream: 'mailer', tool: 'send_email' });
  const v = flow.checkRequest('s1', { upstream: 'mailer', environment: 'production', tool: 'send_email', toolClass: 'egress' }, send.fingerprints);
  assert.equal(v.length, 1);
  assert.equal(v[0]!.dataClass, 'payment-card');
  assert.equal(v[0]!.action, 'block');
  assert.ok(!v[0]!.message.includes('4111'));

  // A write tool on the same production environment is fine; another session knows nothing.
  assert.deepEqual(flow.checkRequest('s1', { upstream: 'crm', environment: 'production', tool: 'update', toolClass: 'write' }, send.fingerprints), []);
  assert.deepEqual(flow.checkRequest('s2', { upstream: 'mailer', environment: 'production', toolClass: 'egress' }, send.fingerprints), []);
});

test('production data may not reach development or external upstreams; expires after the TTL', () => {
  const now = { t: 0 };
  const flow = tracker(now);
  const read = inspectJson(compiled, { ssn: '123-45-6788' }, { direction: 'response', upstream: 'hr-prod' });
  flow.recordResponse('s', { upstream: 'hr-prod', environment: 'production' }, read.fingerprints);
  const dev = { upstream: 'hr-dev', environment: 'development' as const, toolClass: 'write' as const };
  assert.equal(flow.checkRequest('s', dev, read.fingerprints).length, 1);
  now.t = 61_000;
  assert.equal(flow.checkRequest('s', dev, read.fingerprints).length, 0);
});

test('fingerprints are keyed: another key gives other hashes', () => {
  const other = compileDataProtection({ defaultAction: 'detect' } as never, { fingerprintKey: Buffer.from('another key of 32 bytes.........') });
  const a = inspectJson(compiled, { c: '4111111111111111' }, { direction: 'response', upstream: 'x' }).fingerprints[0]!.hash;
  const b = inspectJson(other, { c: '4111111111111111' }, { direction: 'response', upstream: 'x' }).fingerprints[0]!.hash;
  assert.notEqual(a, b);
});

test('memory is bounded per session and gradual collection raises one signal', () => {
  const now = { t: 0 };
  const flow = tracker(now, { maxFingerprintsPerSession: 3 });
  const fps = Array.from({ length: 6 }, (_, i) => ({ hash: `h${i}`, dataClass: 'national-id', detector: 'us-ssn', group: 'national-id' }));
  const signals = fps.map((f) => flow.recordResponse('s', { upstream: 'hr', environment: 'production' }, [f]));
  assert.equal(signals.filter(Boolean).length, 1);
  assert.equal(signals[4]?.code, 'gradual_collection');
  const to = { upstream: 'ext', environment: 'external' as const };
  assert.equal(flow.checkRequest('s', to, [fps[0]!]).length, 0, 'oldest fingerprint evicted');
  assert.equal(flow.checkRequest('s', to, [fps[5]!]).length, 1);
});

test('configured rules replace the defaults', () => {
  const now = { t: 0 };
  const flow = tracker(now, { rules: [{ dataClasses: ['credential'], toTools: ['post_message'], crossUpstreamOnly: false, action: 'detect' }] });
  const fp = [{ hash: 'k', dataClass: 'credential', detector: 'aws-access-key-id', group: 'credentials' }];
  flow.recordResponse('s', { upstream: 'vault', environment: 'production' }, fp);
  assert.equal(flow.checkRequest('s', { upstream: 'vault', environment: 'production', tool: 'post_message' }, fp)[0]?.action, 'detect');
  assert.equal(flow.checkRequest('s', { upstream: 'ext', environment: 'external', toolClass: 'egress' }, fp).length, 0);
});

test('fingerprints are a keyed SHA3-256 of the value in canonical form (letters and digits, lower case)', async () => {
  const { hash } = await import('node:crypto');
  const { fingerprint } = await import('./fingerprint.ts');
  const expected = hash('sha3-256', `${key.toString('hex')}\u00004111111111111111`, 'hex').slice(0, 32);
  assert.equal(fingerprint(key, '4111 1111-1111.1111'), expected);
  assert.equal(fingerprint(key, '4111_1111_1111_1111'), expected);
  const r = inspectJson(compiled, { c: '4111 1111 1111 1111' }, { direction: 'response', upstream: 'x' });
  assert.equal(r.fingerprints[0]!.hash, expected);
  assert.notEqual(fingerprint(Buffer.alloc(32, 1), '4111111111111111'), expected, 'another key, another hash');
  assert.equal(fingerprint(key, 'Jane.Doe@Example.org'), fingerprint(key, 'JANE DOE example.ORG'));
});

test("a Persona's own limits (memory, TTL, gradual-collection threshold) win over the tracker's", () => {
  const now = { t: 0 };
  const flow = tracker(now); // tracker: 100 fingerprints, 60 s, signal at 5
  const personaLimits = { maxFingerprintsPerSession: 16, ttlMs: 5_000, gradualCollectionThreshold: 20 };
  const cards = ['4111 1111 1111 1111', '4539 1488 0343 6467', '4716 3915 8245 7610', '5555 5555 5555 4444', '4012 8888 8888 1881', '4000 0566 5566 5556'];
  const fingerprintsOf = (card: string) => inspectJson(compiled, { card }, { direction: 'response', upstream: 'billing' }).fingerprints;
  const origin = { upstream: 'billing', environment: 'production' as const };
  const egress = { upstream: 'mailer', environment: 'production' as const, toolClass: 'egress' as const };
  // Six distinct values: past the tracker's threshold of 5, not the Persona's 20.
  const signals = cards.map((card) => flow.recordResponse('s', origin, fingerprintsOf(card), personaLimits));
  assert.deepEqual(signals.filter(Boolean), [], 'no signal below the Persona threshold');
  assert.equal(flow.checkRequest('s', egress, fingerprintsOf(cards[0]!), undefined, personaLimits).length, 1);
  // After the Persona's 5 s TTL (the tracker's is 60 s) the value is forgotten.
  now.t += 6_000;
  assert.equal(flow.checkRequest('s', egress, fingerprintsOf(cards[1]!), undefined, personaLimits).length, 0);
  assert.equal(flow.checkRequest('s', egress, fingerprintsOf(cards[2]!)).length, 1, "the tracker's own TTL still remembers");
  // The Persona's memory bound (16) evicts the oldest values.
  const flow2 = tracker(now);
  const synthetic = (i: number) => [{ hash: `h${i}`, dataClass: 'payment-card', detector: 'payment-card-visa', group: 'financial' }];
  for (let i = 0; i < 20; i++) flow2.recordResponse('t', origin, synthetic(i), personaLimits);
  assert.equal(flow2.checkRequest('t', egress, synthetic(3), undefined, personaLimits).length, 0, 'the oldest values were evicted');
  assert.equal(flow2.checkRequest('t', egress, synthetic(4), undefined, personaLimits).length, 1, 'the newest 16 are kept');
  assert.equal(flow2.checkRequest('t', egress, synthetic(19), undefined, personaLimits).length, 1);
});

test('a request is searched beyond its findings only when the session remembers values its destination may not receive', () => {
  const now = { t: 0 };
  const flow = tracker(now, { maxFingerprintsPerSession: 2 });
  const egress = { upstream: 'mailer', environment: 'production' as const, toolClass: 'egress' as const };
  const origin = { upstream: 'billing', environment: 'production' as const };
  assert.equal(flow.restrictedValues('s', egress), null, 'a session that read nothing');
  const read = (value: unknown) => inspectJson(compiled, value, { direction: 'response', upstream: 'billing' }).fingerprints;
  const card = read({ card: '4539 1488 0343 6467' });
  assert.deepEqual(card[0]!.shape && { length: card[0]!.shape.length, digitsOnly: card[0]!.shape.digitsOnly }, { length: 16, digitsOnly: true });
  flow.recordResponse('s', origin, card);
  assert.equal(flow.restrictedValues('s', { upstream: 'billing', environment: 'production', toolClass: 'egress' }), null, 'the same upstream may receive it');
  assert.equal(flow.restrictedValues('s', { upstream: 'crm', environment: 'production', toolClass: 'write' }), null, 'so may a write tool in production');
  assert.deepEqual([...flow.restrictedValues('s', egress)!.lengths], [[16, 1]]);
  flow.recordResponse('s', origin, read({ email: 'jane.doe@example.org' }));
  assert.deepEqual([...flow.restrictedValues('s', egress)!.lengths].sort(), [[16, 1], [17, 2]]);
  // The memory bound (2) evicts the card: its length and probe go with it.
  flow.recordResponse('s', origin, read({ ssn: '123-45-6788' }));
  const restricted = flow.restrictedValues('s', egress)!;
  assert.deepEqual([...restricted.lengths].sort(), [[17, 2], [9, 1]]);
  assert.equal(restricted.probes.size, 2);
  assert.ok(!restricted.probes.has(card[0]!.shape!.probe));
});

test('values too short or too uniform to find without their detector get no shape', async () => {
  const { canonicalShape, canonicalForm } = await import('./fingerprint.ts');
  assert.equal(canonicalShape(key, canonicalForm('12-34-56')), null, 'six characters');
  assert.equal(canonicalShape(key, canonicalForm('1111 1111 1111 1111')), null, 'one character repeated');
  assert.equal(canonicalShape(key, canonicalForm('123-45-6788'))?.length, 9);
  assert.equal(canonicalShape(key, canonicalForm('AKIAZ3MQ7HW2XK4JLP5R'))?.probe, canonicalShape(key, canonicalForm('akiaz3mq7hw2xk4jlp5r'))?.probe);
  assert.notEqual(canonicalShape(key, '123456788')?.probe, canonicalShape(Buffer.alloc(32, 9), '123456788')?.probe, 'the probe is keyed');
});

test('the search of a request is bounded: a megabyte of digits and separators is searched in bounded time', async () => {
  const { spannedFingerprints, maxSpansPerRequest } = await import('./flow-candidates.ts');
  const { canonicalShape } = await import('./fingerprint.ts');
  const lengths = new Map([[8, 1], [9, 1], [16, 1], [17, 2], [20, 2], [22, 2]]);
  const probes = new Map([[canonicalShape(key, '123456788')!.probe, 1]]);
  const text = '1 2-3 4_5 6 7 8 9 '.repeat(60_000);
  const started = performance.now();
  const found = spannedFingerprints(key, [text + ' 123456788'], { lengths, probes });
  const elapsed = performance.now() - started;
  assert.ok(elapsed < 1000, `${elapsed} ms`);
  assert.ok(maxSpansPerRequest < text.length * lengths.size, 'the bound was reached');
  assert.deepEqual(found, [], 'past the bound the rest is left to the detectors');
  assert.equal(spannedFingerprints(key, ['x 123456788'], { lengths, probes }).length, 1);
});

test('values from other replicas count toward the gradual-collection threshold, but only a local read raises the signal', () => {
  const now = { t: 0 };
  const flow = tracker(now); // signal at 5
  const origin = { upstream: 'hr', environment: 'production' as const };
  const fps = Array.from({ length: 8 }, (_, i) => ({ hash: `h${i}`, dataClass: 'national-id', detector: 'us-ssn', group: 'national-id' }));
  // Another replica's Persona config said "signal at 1": the receiver's own limits apply, and replication never signals.
  flow.recordReplicated('s', origin, fps.slice(0, 6), { maxFingerprintsPerSession: 100, ttlMs: 60_000, gradualCollectionThreshold: 5 });
  const signal = flow.recordResponse('s', origin, [fps[6]!]);
  assert.equal(signal?.code, 'gradual_collection');
  assert.equal(signal?.distinctValues, 7);
  assert.equal(flow.recordResponse('s', origin, [fps[7]!]), null, 'once per session');
});

test('sessions known only from other replicas are evicted before the ones this replica serves', () => {
  const now = { t: 0 };
  const flow = tracker(now, { maxSessions: 3 });
  const origin = { upstream: 'hr', environment: 'production' as const };
  const to = { upstream: 'ext', environment: 'external' as const };
  const value = (i: number) => [{ hash: `h${i}`, dataClass: 'national-id', detector: 'us-ssn', group: 'national-id' }];
  const limits = { maxFingerprintsPerSession: 100, ttlMs: 60_000, gradualCollectionThreshold: 5 };
  flow.recordResponse('local-1', origin, value(1));
  flow.recordReplicated('served-later', origin, value(2), limits);
  // A request through this replica makes the session its own.
  assert.equal(flow.checkRequest('served-later', to, value(2)).length, 1);
  for (let i = 0; i < 10; i++) flow.recordReplicated(`remote-${i}`, origin, value(100 + i), limits);
  assert.equal(flow.checkRequest('local-1', to, value(1)).length, 1, 'kept');
  assert.equal(flow.checkRequest('served-later', to, value(2)).length, 1, 'kept');
  assert.equal(flow.checkRequest('remote-8', to, value(108)).length, 0, 'the older replicated session went');
  assert.equal(flow.checkRequest('remote-9', to, value(109)).length, 1, 'one replicated session fits (and is now served here)');
  // Sessions this replica serves go least recently used first.
  flow.checkRequest('local-1', to, value(1));
  flow.recordResponse('local-2', origin, value(3));
  assert.equal(flow.checkRequest('served-later', to, value(2)).length, 0, 'the least recently used went');
  assert.equal(flow.checkRequest('local-1', to, value(1)).length, 1);
});

test('the data-flow session names its Persona', () => {
  const session = flowSessionOf('refunds', 'agent-1');
  assert.equal(personaOfFlowSession(session), 'refunds');
  assert.equal(personaOfFlowSession('no-persona'), null);
});

const nationalIds = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => ({ hash: `${prefix}${i}`, dataClass: 'national-id', detector: 'us-ssn', group: 'national-id' }));

test('gradual collection counts the distinct values read within the TTL, not since the agent first called', () => {
  const now = { t: 0 };
  const flow = tracker(now); // signal at 5, TTL 60 s
  const origin = { upstream: 'hr', environment: 'production' as const };
  // Four values an hour apart from the fifth: never five within one TTL.
  for (const f of nationalIds('old', 4)) assert.equal(flow.recordResponse('s', origin, [f]), null);
  now.t += 3_600_000;
  assert.equal(flow.recordResponse('s', origin, nationalIds('new', 1)), null, 'the four read an hour ago are forgotten');
  const signal = flow.recordResponse('s', origin, nationalIds('more', 4));
  assert.equal(signal?.code, 'gradual_collection');
  assert.equal(signal?.distinctValues, 5);
  assert.match(signal?.message ?? '', /within 60 s/);
});

test('gradual collection is signalled again once the count has fallen to half the threshold, not on every value past it', () => {
  const now = { t: 0 };
  const flow = tracker(now); // signal at 5, TTL 60 s: re-armed at 2 or fewer
  const origin = { upstream: 'hr', environment: 'production' as const };
  // a0..a4 read at 10, 20, 30, 40 and 50 s.
  const signals = nationalIds('a', 5).map((f) => {
    now.t += 10_000;
    return flow.recordResponse('s', origin, [f]);
  });
  assert.deepEqual(signals.map((s) => s?.distinctValues ?? null), [null, null, null, null, 5]);
  // A steady reader: a0 has expired as b0 arrives, the count is back at the threshold.
  now.t = 71_000;
  assert.equal(flow.recordResponse('s', origin, nationalIds('b', 1)), null, 'still collecting: no second signal');
  // At 101 s only a4 and b0 are within the last 60 s: the count fell to 2, and climbs back to 5.
  now.t = 101_000;
  assert.equal(flow.recordResponse('s', origin, nationalIds('c', 1)), null);
  assert.equal(flow.recordResponse('s', origin, nationalIds('d', 2))?.distinctValues, 5, 'signalled again');
  assert.equal(flow.recordResponse('s', origin, nationalIds('e', 1)), null, 'once per episode');
});

test('values the memory bound dropped still count toward the threshold while within the TTL', () => {
  const now = { t: 0 };
  const flow = tracker(now, { maxFingerprintsPerSession: 16, gradualCollectionThreshold: 40 });
  const origin = { upstream: 'hr', environment: 'production' as const };
  const signals = nationalIds('v', 40).map((f) => flow.recordResponse('s', origin, [f]));
  assert.deepEqual(signals.findIndex(Boolean), 39, 'a threshold above the memory bound is still reached');
  // After the TTL the dropped values no longer count: the signal is re-armed and 39 new values stay below it.
  now.t += 61_000;
  assert.deepEqual(nationalIds('w', 39).map((f) => flow.recordResponse('s', origin, [f])).filter(Boolean), []);
  assert.equal(flow.recordResponse('s', origin, nationalIds('x', 1))?.distinctValues, 40);
});

test('a replicated message neither raises the signal nor keeps it from being raised again', () => {
  const now = { t: 0 };
  const flow = tracker(now); // signal at 5, TTL 60 s
  const origin = { upstream: 'hr', environment: 'production' as const };
  const limits = { maxFingerprintsPerSession: 100, ttlMs: 60_000, gradualCollectionThreshold: 5 };
  assert.equal(flow.recordResponse('s', origin, nationalIds('a', 5))?.distinctValues, 5);
  now.t += 61_000;
  // Values read on other replicas after the window passed: they count, but do not signal...
  flow.recordReplicated('s', origin, nationalIds('remote', 6), limits);
  // ...and the first value read here is signalled: the window had emptied, so the signal was re-armed.
  assert.equal(flow.recordResponse('s', origin, nationalIds('b', 1))?.distinctValues, 7);
});

test('a value repeated in one result is fingerprinted once; its spellings share the fingerprint', () => {
  const read = inspectJson(compiled, { orders: [{ card: '4539 1488 0343 6467' }, { card: '4539-1488-0343-6467' }, { card: '4539148803436467' }, { card: '5500 0000 0000 0004' }] }, { direction: 'response', upstream: 'billing' });
  assert.equal(read.findings.length, 4);
  assert.equal(read.fingerprints.length, 2, 'one per distinct value');
  assert.notEqual(read.fingerprints[0]!.hash, read.fingerprints[1]!.hash);
  assert.ok(read.fingerprints.every((f) => f.shape?.length === 16 && f.shape.digitsOnly));
  // The remembered value still blocks each of its spellings later.
  const flow = tracker({ t: 0 });
  flow.recordResponse('s', { upstream: 'billing', environment: 'production' }, read.fingerprints);
  const send = inspectJson(compiled, { body: 'card 4539_1488_0343_6467' }, { direction: 'request', upstream: 'mailer' });
  assert.equal(flow.checkRequest('s', { upstream: 'mailer', environment: 'production', toolClass: 'egress' }, send.fingerprints).length, 1);
});

test('the shape of a canonical form counts three distinct characters the same way for any order', async () => {
  const { canonicalShape } = await import('./fingerprint.ts');
  assert.equal(canonicalShape(key, '1212121212'), null, 'two distinct characters');
  assert.equal(canonicalShape(key, '1111111112'), null);
  assert.ok(canonicalShape(key, '1111111123'));
  assert.ok(canonicalShape(key, '3111111112'));
  assert.equal(canonicalShape(key, '12345678')?.digitsOnly, true);
  assert.equal(canonicalShape(key, '1234567a')?.digitsOnly, false);
  // The scratch units of one call never leak into the next call's probe.
  const long = canonicalShape(key, 'abcdefghijklmnopqrstuvwxyz0123456789')!.probe;
  assert.equal(canonicalShape(key, 'abcdefghij')!.probe, canonicalShape(key, 'abcdefghij')!.probe);
  assert.notEqual(canonicalShape(key, 'abcdefghij')!.probe, long);
});
