// Sequence scoring benchmark: per-call latency of the behaviour core, memory of
// 100,000 live sessions, and how fast runaway agents are stopped.
// Run: sh deploy/bootstrap.sh node --expose-gc test/bench/sequence.ts
import { MemoryAlertSink } from '../../ext-proc/sequence/alerts.ts';
import { createBehaviourEngine, type BehaviourCall, type BehaviourEngine } from '../../ext-proc/sequence/engine.ts';
import { InMemorySessionStateStore } from '../../ext-proc/sequence/state-store.ts';
import { bulkReadThenEgress, compileOrThrow, supportPersona } from '../../ext-proc/sequence/fixtures.ts';
import type { CompiledBehaviour } from '../../ext-proc/sequence/compile.ts';

const gc = (globalThis as { gc?: () => void }).gc;
const START = Date.parse('2026-01-05T09:00:00Z');

const fullBehaviour = {
  rules: [
    bulkReadThenEgress,
    { name: 'read-secrets-then-egress', steps: [{ match: { tool: 'tickets.get', when: "has(args.id) && args.id > 999999" } }, { match: { class: ['egress'] }, within: '5m' }] },
    { name: 'mass-delete', steps: [{ match: { class: ['destructive'] }, atLeast: 20, window: '1m' }], action: 'end_session' },
  ],
  guardrails: {
    rateLimits: [{ key: 'agent', limit: 600, per: '1m' }, { key: 'agent-tool', match: { class: ['egress'] }, limit: 10, per: '1m' }],
    quotas: [{ key: 'agent', limit: 100_000, period: '1d' }],
    sessionBudget: { maxCalls: 10_000, maxDistinctObjects: 5000 },
    circuitBreaker: { repeatedCalls: {}, errorRate: {}, novelArguments: {}, stopAction: 'quarantine' },
  },
  baseline: { minObservations: 100 },
};

function rig(compiled: CompiledBehaviour): { engine: BehaviourEngine; store: InMemorySessionStateStore; clock: { ms: number } } {
  const clock = { ms: START };
  const store = new InMemorySessionStateStore({ maxSessions: 200_000 });
  const engine = createBehaviourEngine({ clock: () => clock.ms, store, alertSink: new MemoryAlertSink() });
  return { engine, store, clock };
}

const TOOLS = ['tickets.search', 'tickets.get', 'tickets.get', 'tickets.get', 'tickets.comment', 'tickets.update'];

function benignCall(session: number, i: number, time: number): BehaviourCall {
  const tool = TOOLS[i % TOOLS.length] ?? 'tickets.get';
  return {
    persona: 'support',
    agent: `agent-${session % 500}`,
    user: `user-${session % 2000}`,
    sessionId: `session-${session}`,
    credentialId: `cred-${session % 500}`,
    upstream: 'tickets',
    tool,
    arguments: tool === 'tickets.search' ? { query: `printer jam ${session}` } : { id: session * 100 + i, status: 'open' },
    timeMs: time,
  };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? Number.NaN;
}

function latency(): void {
  // Learn a baseline first (monitor mode) so scoring runs in the measured path.
  const monitor = compileOrThrow(supportPersona(fullBehaviour, 'monitor'));
  const compiled = compileOrThrow(supportPersona(fullBehaviour));
  const { engine } = rig(compiled);
  let time = START;
  for (let i = 0; i < 5000; i += 1) engine.evaluate(monitor, benignCall(i % 200, i, (time += 100)));
  const sessions = 1000;
  const calls = 200_000;
  const samples: number[] = [];
  for (let i = 0; i < calls; i += 1) {
    const call = benignCall(10_000 + (i % sessions), Math.floor(i / sessions), (time += 5));
    const begin = process.hrtime.bigint();
    engine.evaluate(compiled, call);
    const elapsed = Number(process.hrtime.bigint() - begin) / 1000;
    if (i >= 20_000) samples.push(elapsed);
    if (i % 4 === 0) engine.recordResult(compiled, call, { isError: false });
  }
  samples.sort((a, b) => a - b);
  console.log(
    `evaluate() per call, full policy (3 rules incl. CEL, 2 rate limits, quota, budget, breaker, baseline): ` +
      `p50 ${percentile(samples, 50).toFixed(1)} µs, p90 ${percentile(samples, 90).toFixed(1)} µs, p99 ${percentile(samples, 99).toFixed(1)} µs (${samples.length} calls over ${sessions} sessions)`,
  );
}

function memory(): void {
  const compiled = compileOrThrow(supportPersona(fullBehaviour));
  gc?.();
  const before = process.memoryUsage().heapUsed;
  const { engine, store } = rig(compiled);
  const sessions = 100_000;
  let time = START;
  // Every session is live: 12 calls each, touching rules, buckets, breaker and objects.
  for (let i = 0; i < 12; i += 1) {
    for (let s = 0; s < sessions; s += 1) engine.evaluate(compiled, benignCall(s, i, (time += 1)));
  }
  gc?.();
  const after = process.memoryUsage().heapUsed;
  const mib = (after - before) / 1024 / 1024;
  console.log(`memory: ${store.sessionCount} live sessions (12 calls each) hold ${mib.toFixed(0)} MiB of heap, ${((after - before) / sessions).toFixed(0)} bytes per session${gc ? '' : ' (run with --expose-gc for an exact figure)'}`);
}

interface Runaway {
  name: string;
  call: (i: number) => BehaviourCall;
  isError: (i: number) => boolean;
}

function runaway(): void {
  const compiled = compileOrThrow(supportPersona(fullBehaviour));
  const base = { persona: 'support', agent: 'runaway', user: 'bob', credentialId: 'cred-r', upstream: 'tickets' } as const;
  const kinds: Runaway[] = [
    { name: 'retry loop (identical call, succeeds)', call: () => ({ ...base, sessionId: 'r1', tool: 'tickets.get', arguments: { id: 42 } }), isError: () => false },
    { name: 'retry loop (identical call, fails)', call: () => ({ ...base, sessionId: 'r2', tool: 'tickets.update', arguments: { id: 42, status: 'closed' } }), isError: () => true },
    { name: 'fabricated file paths', call: (i) => ({ ...base, sessionId: 'r3', tool: 'files.read', arguments: { path: `/srv/data/report-${i}.csv` } }), isError: () => true },
    { name: 'altered hashes', call: (i) => ({ ...base, sessionId: 'r4', tool: 'artifacts.get', arguments: { sha256: (i * 2654435761).toString(16).padStart(64, '0') } }), isError: () => true },
    { name: 'probing for write permission', call: (i) => ({ ...base, sessionId: 'r5', tool: ['tickets.update', 'tickets.delete', 'users.grant_role'][i % 3] ?? 'x', arguments: { id: i % 7 } }), isError: () => true },
  ];
  for (const kind of kinds) {
    const { engine, clock } = rig(compiled);
    let firstThrottle: number | null = null;
    let stoppedAt: number | null = null;
    let stopAction = '';
    // 20 calls a second, ignoring every retry hint, for up to a million calls.
    for (let i = 1; i <= 1_000_000 && stoppedAt === null; i += 1) {
      clock.ms += 50;
      const call = { ...kind.call(i), timeMs: clock.ms };
      const verdict = engine.evaluate(compiled, call);
      if (verdict.action === 'throttle' && firstThrottle === null) firstThrottle = i;
      if (verdict.action === 'block' || verdict.action === 'end_session' || verdict.action === 'quarantine') {
        stoppedAt = i;
        stopAction = `${verdict.action} (${verdict.reasons.map((r) => r.code).join(', ')})`;
      }
      if (verdict.action === 'allow') engine.recordResult(compiled, call, { isError: kind.isError(i) });
    }
    console.log(`runaway: ${kind.name}: first throttled at call ${firstThrottle ?? '-'}, stopped at call ${stoppedAt ?? 'never'} by ${stopAction}`);
  }
}

latency();
memory();
runaway();
