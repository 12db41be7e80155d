// Staleness of behaviour state shared over NATS: the time from a write on replica A (the
// engine's setSession/setCounter) to its application on replica B's local store.
// Replica B runs in a worker thread (its own event loop and NATS connection); the bench starts
// its own `nats-server -js` on a free loopback port with a temporary store directory.
// Run: sh deploy/bootstrap.sh node test/bench/sequence-replication.ts
import { spawnSync } from 'node:child_process';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { natsSettingsFromEnv } from '../../config/nats-connection.ts';
import { MemoryAlertSink } from '../../ext-proc/sequence/alerts.ts';
import { createBehaviourEngine, type BehaviourCall } from '../../ext-proc/sequence/engine.ts';
import { bulkReadThenEgress, compileOrThrow, supportPersona } from '../../ext-proc/sequence/fixtures.ts';
import { openNatsSessionStateStore, type ReplicatedKind } from '../../ext-proc/sequence/nats-state-store.ts';
import { InMemorySessionStateStore, type SessionStateStore } from '../../ext-proc/sequence/state-store.ts';
import { natsServerMissing, startNatsServer } from '../support/nats-server.ts';

const behaviour = {
  rules: [bulkReadThenEgress],
  guardrails: {
    rateLimits: [{ key: 'agent', limit: 100_000, per: '1m' }],
    quotas: [{ key: 'agent', limit: 10_000_000, period: '1d' }],
    sessionBudget: { maxCalls: 100_000, maxDistinctObjects: 50_000 },
    circuitBreaker: { repeatedCalls: {}, errorRate: {}, novelArguments: {} },
  },
};

interface WorkerReport {
  delays: Record<ReplicatedKind, number[]>;
  applied: number;
}

if (!isMainThread) {
  // Replica B: applies what A writes and records each update's propagation delay.
  const { url } = workerData as { url: string };
  const delays: Record<ReplicatedKind, number[]> = { session: [], counter: [], quarantine: [] };
  const store = await openNatsSessionStateStore({
    nats: natsSettingsFromEnv({ MANDATE_NATS_URL: url })!,
    bucketPrefix: 'bench',
    replicaId: 'bench-b',
    log: () => undefined,
    onRemoteApplied: (kind, delayMs) => delays[kind].push(delayMs),
  });
  parentPort?.on('message', (message: string) => {
    if (message === 'report') {
      const report: WorkerReport = { delays: { ...delays }, applied: store.stats().applied };
      delays.session = [];
      delays.counter = [];
      delays.quarantine = [];
      parentPort?.postMessage(report);
    } else if (message === 'close') {
      void store.close(100).then(() => process.exit(0));
    }
  });
  parentPort?.postMessage('ready');
} else {
  await main();
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? Number.NaN;
}

function describe(values: number[], unit = 'ms'): string {
  const sorted = [...values].sort((a, b) => a - b);
  const f = (n: number) => n.toFixed(2);
  return `n=${sorted.length} p50 ${f(percentile(sorted, 50))} ${unit}, p90 ${f(percentile(sorted, 90))}, p99 ${f(percentile(sorted, 99))}, max ${f(sorted.at(-1) ?? Number.NaN)}`;
}


function call(session: number, i: number, now: number): BehaviourCall {
  return {
    persona: 'support',
    agent: `agent-${session % 50}`,
    user: `user-${session % 200}`,
    sessionId: `session-${session}`,
    credentialId: null,
    upstream: 'tickets',
    tool: i % 5 === 0 ? 'tickets.search' : 'tickets.get',
    arguments: i % 5 === 0 ? { query: `q${i}` } : { id: i },
    timeMs: now,
  };
}

async function main(): Promise<void> {
  const missing = natsServerMissing();
  if (missing) {
    console.log(`${missing}: nothing measured`);
    return;
  }
  const server = await startNatsServer();
  const url = server.url;
  try {
    const a = await openNatsSessionStateStore({ nats: natsSettingsFromEnv({ MANDATE_NATS_URL: url })!, bucketPrefix: 'bench', replicaId: 'bench-a', log: (event, fields) => console.error(event, fields) });
    const worker = new Worker(new URL(import.meta.url), { workerData: { url } });
    await new Promise((resolve) => worker.once('message', resolve));
    const report = (): Promise<WorkerReport> => {
      worker.postMessage('report');
      return new Promise((resolve) => worker.once('message', (m: WorkerReport) => resolve(m)));
    };
    const compiled = compileOrThrow(supportPersona(behaviour));
    const engineOn = (store: SessionStateStore) => createBehaviourEngine({ clock: () => Date.now(), store, alertSink: new MemoryAlertSink() });
    const engineA = engineOn(a);
    const settle = async () => {
      while (a.stats().pendingWrites > 0 || a.stats().inFlight > 0) await new Promise((resolve) => setTimeout(resolve, 5));
      await new Promise((resolve) => setTimeout(resolve, 300));
    };

    console.log(`nats-server ${spawnSync('nats-server', ['--version']).stdout.toString().trim()}, replica B in a worker thread, coalescing 2 ms`);

    // 1. Paced: 3,000 calls at about 1,000 a second over 500 sessions (each call writes a session,
    //    a rate-limit bucket and a quota counter).
    const paced = 3000;
    let sent = 0;
    const started = performance.now();
    while (sent < paced) {
      const due = Math.floor(performance.now() - started);
      while (sent < Math.min(due, paced)) {
        engineA.evaluate(compiled, call(sent % 500, sent, Date.now()));
        sent += 1;
      }
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    await settle();
    const pacedReport = await report();
    const pacedStats = a.stats();
    console.log(`paced ${paced} calls at ~1,000/s: published ${pacedStats.published}, B applied ${pacedReport.applied}, dropped ${pacedStats.dropped}`);
    console.log(`  session staleness  ${describe(pacedReport.delays.session)}`);
    console.log(`  counter staleness  ${describe(pacedReport.delays.counter)}`);

    // 2. Saturating: 20,000 calls as fast as the engine goes, yielding every 500 calls.
    const burst = 20_000;
    const before = a.stats().published;
    const burstStart = performance.now();
    for (let i = 0; i < burst; i += 1) {
      engineA.evaluate(compiled, call(i % 2000, paced + i, Date.now()));
      if (i % 500 === 499) await new Promise((resolve) => setImmediate(resolve));
    }
    const burstMs = performance.now() - burstStart;
    await settle();
    const burstReport = await report();
    const burstStats = a.stats();
    console.log(
      `burst ${burst} calls in ${burstMs.toFixed(0)} ms (${Math.round((burst / burstMs) * 1000)}/s): ${burstStats.published - before} KV writes after coalescing (3 writes per call uncoalesced), B applied ${burstReport.applied - pacedReport.applied}, dropped ${burstStats.dropped}`,
    );
    console.log(`  session staleness  ${describe(burstReport.delays.session)}`);
    console.log(`  counter staleness  ${describe(burstReport.delays.counter)}`);

    // 3. The cost of replication on the hot path: evaluate() with the NATS store vs the in-memory one.
    const timeEvaluate = (engine: ReturnType<typeof engineOn>): number[] => {
      const samples: number[] = [];
      for (let i = 0; i < 20_000; i += 1) {
        const t = performance.now();
        engine.evaluate(compiled, call(10_000 + (i % 1000), i, Date.now()));
        samples.push((performance.now() - t) * 1000);
      }
      return samples;
    };
    const memory = timeEvaluate(engineOn(new InMemorySessionStateStore()));
    const replicated = timeEvaluate(engineA);
    console.log(`evaluate() in-memory store:  ${describe(memory, 'µs')}`);
    console.log(`evaluate() NATS store:       ${describe(replicated, 'µs')}`);
    await settle();

    worker.postMessage('close');
    await new Promise((resolve) => worker.once('exit', resolve));
    await a.close(500);
  } finally {
    await server.dispose();
  }
}
