import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bulkReadThenEgress, compileOrThrow, supportPersona, testRig, ticketCall } from './fixtures.ts';
import { verdictStopsCall } from './engine.ts';

const MINUTE = 60_000;

test('200 ticket reads then an email: reads pass, the email call is blocked with the sequence in the alert', () => {
  const { engine, alerts, now } = testRig();
  const compiled = compileOrThrow(supportPersona({ rules: [bulkReadThenEgress] }));
  for (let id = 1; id <= 200; id += 1) {
    now.ms += 500;
    const verdict = engine.evaluate(compiled, ticketCall({ arguments: { id } }));
    assert.equal(verdict.action, 'allow', `read ${id} must pass`);
    assert.equal(verdict.toolClass, 'read');
  }
  assert.equal(alerts.alerts.length, 0, 'no alert before the email call');
  now.ms += 30_000;
  const email = engine.evaluate(compiled, ticketCall({ upstream: 'mail', tool: 'email.send', arguments: { to: 'x@example.com', body: 'dump' } }));
  assert.equal(email.action, 'block');
  assert.equal(email.enforced, true);
  assert.equal(email.toolClass, 'egress');
  assert.ok(verdictStopsCall(email));
  assert.ok(email.riskScore >= 0.9);
  assert.deepEqual(email.reasons.map((r) => [r.stage, r.code]), [['behaviour', 'sequence_rule_matched']]);
  assert.match(email.reasons[0]?.message ?? '', /bulk-read-then-egress.*200 matching call/);
  const alert = alerts.alerts[0];
  assert.ok(alert);
  assert.equal(alert.action, 'block');
  assert.deepEqual(alert.evidence.rules, ['bulk-read-then-egress']);
  assert.deepEqual(alert.evidence.sequence.map((run) => [run.tool, run.count]), [['tickets.get', 200], ['email.send', 1]]);
  assert.equal(alert.session, 'session-1');
});

test('the same agent reading 49 tickets, or emailing after the 10 minute window, is not blocked', () => {
  const { engine, now } = testRig();
  const compiled = compileOrThrow(supportPersona({ rules: [bulkReadThenEgress] }));
  for (let id = 1; id <= 49; id += 1) engine.evaluate(compiled, ticketCall({ arguments: { id } }));
  assert.equal(engine.evaluate(compiled, ticketCall({ upstream: 'mail', tool: 'email.send', arguments: {} })).action, 'allow');

  const other = ticketCall({ sessionId: 'session-2' });
  for (let id = 1; id <= 60; id += 1) engine.evaluate(compiled, { ...other, arguments: { id } });
  now.ms += 11 * MINUTE;
  assert.equal(engine.evaluate(compiled, { ...other, upstream: 'mail', tool: 'email.send', arguments: {} }).action, 'allow');
});

test('a benign support workload over many sessions is never blocked, throttled or alerted', () => {
  const { engine, alerts, now } = testRig();
  const compiled = compileOrThrow(
    supportPersona({
      rules: [bulkReadThenEgress],
      guardrails: {
        rateLimits: [{ key: 'agent', limit: 120, per: '1m' }],
        sessionBudget: { maxCalls: 500, maxDistinctObjects: 100 },
        circuitBreaker: { repeatedCalls: {}, errorRate: {}, novelArguments: {} },
      },
    }),
  );
  let ticket = 1;
  for (let session = 0; session < 40; session += 1) {
    const base = ticketCall({ sessionId: `benign-${session}`, agent: `agent-${session % 5}` });
    // A realistic ticket session: search, read a few, comment, update, sometimes email the customer.
    const script = [
      { tool: 'tickets.search', arguments: { query: `printer ${session}` } },
      ...Array.from({ length: 5 }, () => ({ tool: 'tickets.get', arguments: { id: ticket++ } })),
      { tool: 'tickets.comment', arguments: { id: ticket, text: 'Looking into it' } },
      { tool: 'tickets.update', arguments: { id: ticket, status: 'pending' } },
    ];
    if (session % 3 === 0) script.push({ tool: 'email.send', arguments: { to: `customer${session}@example.com`, body: 'We are on it' } as never });
    for (const step of script) {
      now.ms += 2000;
      const upstream = step.tool === 'email.send' ? 'mail' : 'tickets';
      const verdict = engine.evaluate(compiled, { ...base, upstream, tool: step.tool, arguments: step.arguments });
      assert.equal(verdict.action, 'allow', `${step.tool} in session ${session}: ${JSON.stringify(verdict.reasons)}`);
      engine.recordResult(compiled, { ...base, upstream, tool: step.tool, arguments: step.arguments }, { isError: false });
    }
  }
  assert.equal(alerts.alerts.length, 0);
});

test('monitor mode computes the same block but does not enforce it, end sessions or quarantine', () => {
  const { engine, alerts } = testRig();
  const rule = { ...bulkReadThenEgress, action: 'quarantine' };
  const compiled = compileOrThrow(supportPersona({ rules: [rule] }, 'monitor'));
  for (let id = 1; id <= 50; id += 1) engine.evaluate(compiled, ticketCall({ arguments: { id } }));
  const email = engine.evaluate(compiled, ticketCall({ upstream: 'mail', tool: 'email.send', arguments: {} }));
  assert.equal(email.action, 'quarantine');
  assert.equal(email.enforced, false);
  assert.equal(verdictStopsCall(email), false);
  assert.equal(alerts.alerts[0]?.enforced, false);
  assert.equal(engine.quarantine.isQuarantined('agent-1'), false);
  assert.equal(engine.evaluate(compiled, ticketCall({ arguments: { id: 99 } })).action, 'allow');
});

test('quarantine blocks every later call of the agent, in any session, until an admin releases it', () => {
  const { engine } = testRig();
  const rule = { ...bulkReadThenEgress, action: 'quarantine' };
  const compiled = compileOrThrow(supportPersona({ rules: [rule] }));
  for (let id = 1; id <= 50; id += 1) engine.evaluate(compiled, ticketCall({ arguments: { id } }));
  assert.equal(engine.evaluate(compiled, ticketCall({ upstream: 'mail', tool: 'email.send', arguments: {} })).action, 'quarantine');
  assert.deepEqual(engine.quarantine.list().map((q) => q.agent), ['agent-1']);
  const elsewhere = engine.evaluate(compiled, ticketCall({ sessionId: 'another', arguments: { id: 1 } }));
  assert.equal(elsewhere.action, 'block');
  assert.equal(elsewhere.reasons[0]?.code, 'agent_quarantined');
  assert.equal(engine.evaluate(compiled, ticketCall({ agent: 'agent-2', sessionId: 'x' })).action, 'allow', 'other agents are unaffected');
  assert.equal(engine.quarantine.release('agent-1'), true);
  assert.equal(engine.quarantine.release('agent-1'), false);
  assert.equal(engine.evaluate(compiled, ticketCall({ sessionId: 'fresh', arguments: { id: 1 } })).action, 'allow');
  // The session in which it happened stays ended.
  assert.equal(engine.evaluate(compiled, ticketCall({ arguments: { id: 2 } })).reasons[0]?.code, 'session_ended');
});

test('end_session stops the session only; a new session of the same agent proceeds', () => {
  const { engine } = testRig();
  const compiled = compileOrThrow(supportPersona({ rules: [{ ...bulkReadThenEgress, action: 'end_session' }] }));
  for (let id = 1; id <= 50; id += 1) engine.evaluate(compiled, ticketCall({ arguments: { id } }));
  assert.equal(engine.evaluate(compiled, ticketCall({ upstream: 'mail', tool: 'email.send', arguments: {} })).action, 'end_session');
  const after = engine.evaluate(compiled, ticketCall({ arguments: { id: 1 } }));
  assert.equal(after.action, 'block');
  assert.equal(after.reasons[0]?.code, 'session_ended');
  assert.equal(engine.evaluate(compiled, ticketCall({ sessionId: 'session-9' })).action, 'allow');
});

test('rules match on CEL over arguments, and result conditions advance on the response side', () => {
  const { engine } = testRig();
  const compiled = compileOrThrow(
    supportPersona({
      rules: [
        {
          name: 'probe-then-write',
          steps: [
            { match: { tool: 'tickets.update', result: 'result.isError == true' }, atLeast: 3 },
            { match: { class: ['write', 'destructive'], when: "has(args.status) && args.status == 'closed'" } },
          ],
          action: 'block',
        },
      ],
    }),
  );
  const update = ticketCall({ tool: 'tickets.update', arguments: { id: 5, status: 'open' } });
  for (let i = 0; i < 3; i += 1) {
    assert.equal(engine.evaluate(compiled, update).action, 'allow');
    engine.recordResult(compiled, update, { isError: true, content: [{ type: 'text', text: 'forbidden' }] });
  }
  assert.equal(engine.evaluate(compiled, update).action, 'allow', 'status is not closed: the CEL condition is false');
  const close = engine.evaluate(compiled, ticketCall({ tool: 'tickets.update', arguments: { id: 5, status: 'closed' } }));
  assert.equal(close.action, 'block');
});

test('a windowed count needs its matches inside the window', () => {
  const { engine, now } = testRig();
  const compiled = compileOrThrow(
    supportPersona({ rules: [{ name: 'burst-then-egress', steps: [{ match: { class: ['read'] }, atLeast: 10, window: '1m' }, { match: { class: ['egress'] } }] }] }),
  );
  for (let id = 0; id < 30; id += 1) {
    now.ms += 10_000; // 6 per minute: never 10 inside one minute
    engine.evaluate(compiled, ticketCall({ arguments: { id } }));
  }
  assert.equal(engine.evaluate(compiled, ticketCall({ upstream: 'mail', tool: 'email.send', arguments: {} })).action, 'allow');
  for (let id = 0; id < 10; id += 1) {
    now.ms += 1000;
    engine.evaluate(compiled, ticketCall({ arguments: { id } }));
  }
  assert.equal(engine.evaluate(compiled, ticketCall({ upstream: 'mail', tool: 'email.send', arguments: {} })).action, 'block');
});

test('rate limits throttle with a retry hint and refill over time; quotas block per period', () => {
  const { engine, now } = testRig();
  const compiled = compileOrThrow(
    supportPersona({
      guardrails: {
        rateLimits: [{ key: 'agent-tool', limit: 5, per: '10s' }],
        quotas: [{ key: 'agent', match: { class: ['egress'] }, limit: 2, period: '1h' }],
      },
    }),
  );
  for (let i = 0; i < 5; i += 1) assert.equal(engine.evaluate(compiled, ticketCall()).action, 'allow');
  const throttled = engine.evaluate(compiled, ticketCall());
  assert.equal(throttled.action, 'throttle');
  assert.equal(throttled.retryAfterSeconds, 2);
  assert.equal(throttled.reasons[0]?.code, 'rate_limited');
  assert.equal(engine.evaluate(compiled, ticketCall({ tool: 'tickets.search' })).action, 'allow', 'another tool has its own bucket');
  now.ms += 2000;
  assert.equal(engine.evaluate(compiled, ticketCall()).action, 'allow');

  const email = ticketCall({ upstream: 'mail', tool: 'email.send', arguments: {} });
  assert.equal(engine.evaluate(compiled, email).action, 'allow');
  assert.equal(engine.evaluate(compiled, { ...email, sessionId: 'other' }).action, 'allow');
  const third = engine.evaluate(compiled, { ...email, sessionId: 'third' });
  assert.equal(third.action, 'block');
  assert.equal(third.reasons[0]?.code, 'quota_exceeded');
  now.ms += 61 * MINUTE;
  assert.equal(engine.evaluate(compiled, { ...email, sessionId: 'fourth' }).action, 'allow');
});

test('session budget on distinct objects ends the session', () => {
  const { engine } = testRig();
  const compiled = compileOrThrow(supportPersona({ guardrails: { sessionBudget: { maxDistinctObjects: 20 } } }));
  for (let id = 1; id <= 20; id += 1) assert.equal(engine.evaluate(compiled, ticketCall({ arguments: { id } })).action, 'allow');
  assert.equal(engine.evaluate(compiled, ticketCall({ arguments: { id: 3 } })).action, 'allow', 'a re-read is not a new object');
  const over = engine.evaluate(compiled, ticketCall({ arguments: { id: 21 } }));
  assert.equal(over.action, 'end_session');
  assert.equal(over.reasons[0]?.code, 'session_budget_exceeded');
});

test('circuit breaker: a retry loop is throttled, recovers through half-open, and is stopped when it keeps looping', () => {
  const { engine, now } = testRig();
  const compiled = compileOrThrow(
    supportPersona({ guardrails: { circuitBreaker: { repeatedCalls: { threshold: 5, window: '1m' }, openFor: '10s', maxTrips: 2, maxRejectedWhileOpen: 1000 } } }),
  );
  const loop = ticketCall({ tool: 'tickets.get', arguments: { id: 'T-7', requestId: 'a' } });
  for (let i = 0; i < 4; i += 1) assert.equal(engine.evaluate(compiled, { ...loop, arguments: { id: 'T-7', requestId: `r${i}` } }).action, 'allow');
  const tripped = engine.evaluate(compiled, { ...loop, arguments: { id: ' t-7 ', requestId: 'new' } });
  assert.equal(tripped.action, 'throttle', 'near-identical (volatile key, whitespace) counts as a repeat');
  assert.equal(tripped.retryAfterSeconds, 10);
  now.ms += 5000;
  assert.equal(engine.evaluate(compiled, loop).action, 'throttle');
  now.ms += 6000;
  // Half-open: one probe goes through; its success closes the breaker.
  const probe = engine.evaluate(compiled, ticketCall({ arguments: { id: 8 } }));
  assert.equal(probe.action, 'allow');
  assert.equal(engine.evaluate(compiled, ticketCall({ arguments: { id: 9 } })).action, 'throttle', 'no second probe before the first returns');
  engine.recordResult(compiled, ticketCall({ arguments: { id: 8 } }), { isError: false });
  assert.equal(engine.evaluate(compiled, ticketCall({ arguments: { id: 10 } })).action, 'allow');
  // Loops again: second trip reaches maxTrips and stops the session.
  let last = 'allow';
  for (let i = 0; i < 5; i += 1) last = engine.evaluate(compiled, loop).action;
  assert.equal(last, 'end_session');
  assert.equal(engine.evaluate(compiled, ticketCall({ arguments: { id: 11 } })).reasons.some((r) => r.code === 'session_ended'), true);
});

test('circuit breaker: fabricated paths (novel arguments that fail) and ignored retry hints stop the agent', () => {
  const { engine, now } = testRig();
  const compiled = compileOrThrow(
    supportPersona({ guardrails: { circuitBreaker: { novelArguments: { threshold: 10 }, maxRejectedWhileOpen: 20, stopAction: 'quarantine' } } }),
  );
  let calls = 0;
  let action = 'allow';
  while (action !== 'quarantine' && calls < 1000) {
    now.ms += 50;
    calls += 1;
    const call = ticketCall({ tool: 'files.read', arguments: { path: `/data/report-${calls}.csv` } });
    action = engine.evaluate(compiled, call).action;
    engine.recordResult(compiled, call, { isError: true });
  }
  assert.equal(action, 'quarantine');
  assert.equal(calls, 10 + 21);
  assert.equal(engine.quarantine.isQuarantined('agent-1'), true);
});

test('error-rate spike trips the breaker on the response side', () => {
  const { engine } = testRig();
  const compiled = compileOrThrow(supportPersona({ guardrails: { circuitBreaker: { errorRate: { minCalls: 10, maxRatio: 0.5 } } } }));
  for (let i = 0; i < 10; i += 1) {
    const call = ticketCall({ tool: 'tickets.update', arguments: { id: i } });
    assert.equal(engine.evaluate(compiled, call).action, 'allow');
    engine.recordResult(compiled, call, { isError: i % 4 !== 0 });
  }
  const next = engine.evaluate(compiled, ticketCall({ arguments: { id: 100 } }));
  assert.equal(next.action, 'throttle');
  assert.match(next.reasons[0]?.message ?? '', /7 of 10 calls failed/);
});

test('stateless calls (no Mcp-Session-Id) share a session per credential until a quiet gap', () => {
  const { engine, now } = testRig();
  const compiled = compileOrThrow(supportPersona({ rules: [bulkReadThenEgress], session: { statelessGap: '5m' } }));
  const rest = ticketCall({ sessionId: null, credentialId: 'cred-rest', tool: 'GET /tickets/{id}', upstream: 'tickets' });
  const restRule = compileOrThrow(
    supportPersona({ rules: [{ ...bulkReadThenEgress, steps: [{ match: { class: ['read'] }, atLeast: 50 }, { match: { class: ['egress'] } }] }], session: { statelessGap: '5m' } }),
  );
  for (let id = 0; id < 50; id += 1) {
    now.ms += 1000;
    assert.equal(engine.evaluate(restRule, { ...rest, arguments: { id } }).toolClass, 'read');
  }
  const email = { ...rest, upstream: 'mail', tool: 'email.send', arguments: {} };
  assert.equal(engine.evaluate(restRule, email).action, 'block', 'same credential, no gap: one session');
  now.ms += 6 * MINUTE;
  assert.equal(engine.evaluate(restRule, email).action, 'allow', 'after a 6 minute gap a new session starts');
  assert.equal(compiled.statelessGapMs, 5 * MINUTE);
});

test('a Persona without a behaviour block allows everything without keeping state', () => {
  const { engine, store } = testRig();
  const compiled = compileOrThrow(supportPersona(undefined));
  for (let i = 0; i < 100; i += 1) assert.equal(engine.evaluate(compiled, ticketCall({ upstream: 'mail', tool: 'email.send' })).action, 'allow');
  assert.equal(store.sessionCount, 0);
});

test('baseline learned in monitor mode scores a never-seen egress after bulk reads as a deviation', () => {
  const { engine, alerts, now } = testRig();
  const monitor = compileOrThrow(supportPersona({ baseline: { minObservations: 200 } }, 'monitor'));
  let ticket = 0;
  for (let session = 0; session < 60; session += 1) {
    const base = ticketCall({ sessionId: `learn-${session}`, user: `user-${session % 4}` });
    for (const tool of ['tickets.search', 'tickets.get', 'tickets.get', 'tickets.get', 'tickets.comment', 'tickets.update']) {
      now.ms += 3000;
      const call = { ...base, tool, arguments: { id: ticket++ } };
      engine.evaluate(monitor, call);
      engine.recordResult(monitor, call, { isError: false });
    }
    now.ms += 11 * MINUTE; // close the session's object window
    engine.evaluate(monitor, { ...base, tool: 'tickets.search', arguments: { query: 'x' } });
  }
  assert.equal(alerts.alerts.length, 0, 'learning raises no alerts');
  const snapshot = engine.baselines.export('support', new Date(now.ms));
  assert.ok(snapshot && snapshot.observations >= 360);

  const enforce = compileOrThrow(supportPersona({ baseline: { minObservations: 200, blockAbove: 0.95 } }));
  const base = ticketCall({ sessionId: 'suspicious', user: 'user-1' });
  const normal = engine.evaluate(enforce, { ...base, tool: 'tickets.search', arguments: { query: 'printer' } });
  assert.equal(normal.action, 'allow');
  for (let id = 0; id < 200; id += 1) {
    now.ms += 200;
    engine.evaluate(enforce, { ...base, tool: 'tickets.get', arguments: { id: 10_000 + id } });
  }
  const email = engine.evaluate(enforce, { ...base, upstream: 'mail', tool: 'email.send', arguments: {} });
  const codes = email.reasons.map((r) => r.code);
  assert.ok(codes.includes('baseline_unseen_tool'), codes.join());
  assert.ok(codes.includes('baseline_distinct_objects_spike'), codes.join());
  assert.ok(codes.includes('baseline_unseen_class_transition'), codes.join());
  assert.ok(email.riskScore >= 0.6);
  assert.ok(email.action === 'alert' || email.action === 'block');
  assert.equal(alerts.alerts.at(-1)?.evidence.baselineVersion, 2);
});

test('data protection feeds rules: results with sensitive values count, and a session signal is visible to `when`', () => {
  const { engine, alerts } = testRig();
  const compiled = compileOrThrow(
    supportPersona({
      rules: [
        {
          name: 'hoard-then-egress',
          steps: [
            { match: { class: ['read'], result: 'result.sensitive.values > 0 && "financial" in result.sensitive.groups' }, atLeast: 3 },
            { match: { class: ['egress'] } },
          ],
          action: 'block',
        },
        { name: 'collector-egress', steps: [{ match: { class: ['egress'], when: '"gradual_collection" in signals' } }], action: 'block' },
      ],
    }),
  );
  const read = ticketCall({ arguments: { id: 1 } });
  const email = ticketCall({ upstream: 'mail', tool: 'email.send', arguments: { to: 'x@example.com' } });
  // Results without findings, or with findings of another group, do not count.
  for (let i = 0; i < 3; i += 1) {
    engine.evaluate(compiled, read);
    engine.recordResult(compiled, read, { isError: false, sensitive: { values: 0, groups: [] } });
    engine.evaluate(compiled, read);
    engine.recordResult(compiled, read, { isError: false, sensitive: { values: 2, groups: ['contact'] } });
  }
  assert.equal(engine.evaluate(compiled, email).action, 'allow');
  for (let i = 0; i < 3; i += 1) {
    engine.evaluate(compiled, read);
    engine.recordResult(compiled, read, { isError: false, sensitive: { values: 1, groups: ['financial'] } });
  }
  const blocked = engine.evaluate(compiled, email);
  assert.equal(blocked.action, 'block');
  assert.match(blocked.reasons[0]?.message ?? '', /hoard-then-egress/);

  // A second session: no hoarding, but data protection signals gradual collection.
  const other = { ...read, sessionId: 'session-2' };
  engine.evaluate(compiled, other);
  assert.equal(engine.evaluate(compiled, { ...email, sessionId: 'session-2' }).action, 'allow', 'no signal yet');
  const before = alerts.alerts.length;
  engine.signal(compiled, other, { code: 'gradual_collection', message: 'session read 50 distinct sensitive values from tool results' });
  engine.signal(compiled, other, { code: 'gradual_collection', message: 'again' });
  assert.equal(alerts.alerts.length, before + 1, 'one alert per session and signal');
  const alert = alerts.alerts[before]!;
  assert.equal(alert.action, 'alert');
  assert.deepEqual(alert.reasons.map((r) => [r.stage, r.code]), [['data-protection', 'gradual_collection']]);
  const after = engine.evaluate(compiled, { ...email, sessionId: 'session-2' });
  assert.equal(after.action, 'block');
  assert.match(after.reasons[0]?.message ?? '', /collector-egress/);
  // The first session never got the signal.
  assert.equal(engine.evaluate(compiled, { ...email, sessionId: 'session-3' }).action, 'allow');
});

test('reasons and alerts quote the recorded tool name; rules and counters read the tool as called', () => {
  const { engine, alerts } = testRig();
  const compiled = compileOrThrow(supportPersona({ rules: [bulkReadThenEgress] }));
  for (let id = 1; id <= 50; id += 1) engine.evaluate(compiled, ticketCall({ tool: 'tickets.get/AKIAZ3MQ7HW2XK4JLP5R', recordedTool: 'tickets.get/[redacted]', arguments: { id } }));
  const email = engine.evaluate(compiled, ticketCall({ upstream: 'mail', tool: 'email.send/AKIAZ3MQ7HW2XK4JLP5R', recordedTool: 'email.send/[redacted]', toolClass: 'egress', arguments: {} }));
  assert.equal(email.action, 'block', 'the rule matched the tools as called');
  assert.match(email.reasons[0]?.message ?? '', /then email\.send\/\[redacted\] \(egress\)$/);
  const alert = alerts.alerts.at(-1)!;
  assert.equal(alert.tool, 'email.send/[redacted]');
  assert.deepEqual(alert.evidence.sequence.map((run) => run.tool), ['tickets.get/[redacted]', 'email.send/[redacted]']);
  assert.ok(!JSON.stringify(alert).includes('AKIA'));
});
