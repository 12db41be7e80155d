import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { compileDataProtection, type CompiledDataProtectionOk } from './compile.ts';
import { inspectBody, inspectJson, type InspectContext, type InspectResult } from './inspect.ts';
import { createBodyInspectionPool, maxInspectionWorkers, packResult, parseInspectionWorkers, unpackResult } from './body-inspection.ts';
import { packFindings, packFingerprints, unpackFindings, unpackFingerprints } from './packed-findings.ts';

const card = '4539 1488 0343 6467';
const request: InspectContext = { direction: 'request', upstream: 'devbox', tool: 'save_note' };
const response: InspectContext = { direction: 'response', upstream: 'billing' };

function compile(monitor = false): CompiledDataProtectionOk {
  const c = compileDataProtection({ profiles: ['pci-dss', 'secrets', 'gdpr-pii'], flow: { enabled: true } } as never, { fingerprintKey: randomBytes(32), monitor });
  assert.ok(c.ok);
  return c;
}

/** Distinct passwords, cards and addresses, so findings and fingerprints differ from one another. */
function body(items: number): Buffer {
  const rows = Array.from({ length: items }, (_, i) => (i % 7 === 0 ? { card, note: `mail ana${i}@example.com` } : { note: `password: "hunter${i}x"`, n: i }));
  return Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 3, result: { rows } }));
}

/** What a caller can tell apart: the same records with their keys in the same order. */
const same = <T>(a: InspectResult<T>, b: InspectResult<T>) => {
  assert.equal(JSON.stringify(a.findings), JSON.stringify(b.findings));
  assert.equal(JSON.stringify(a.fingerprints), JSON.stringify(b.fingerprints));
  assert.deepEqual({ ...a, findings: [], fingerprints: [] }, { ...b, findings: [], fingerprints: [] });
};

test('findings and fingerprints come back from packing as they were, to the order of their keys, with and without a shape', () => {
  const dp = compile();
  for (const context of [request, response]) {
    const result = inspectBody(dp, body(300), context);
    assert.ok(result.findings.length > 300 && result.fingerprints.length > 250, `${result.findings.length} findings, ${result.fingerprints.length} fingerprints`);
    assert.equal(result.fingerprints.some((f) => f.shape !== undefined), context === response, 'answers have shapes, requests none');
    assert.equal(JSON.stringify(unpackFindings(packFindings(result.findings))), JSON.stringify(result.findings));
    assert.equal(JSON.stringify(unpackFingerprints(packFingerprints(result.fingerprints))), JSON.stringify(result.fingerprints));
    assert.deepEqual(unpackFingerprints(packFingerprints(result.fingerprints)), result.fingerprints);
  }
  assert.deepEqual(unpackFindings(packFindings([])), []);
  // More distinct values in turn than the packer remembers: some stored twice, every record still right.
  const cycling = Array.from({ length: 100 }, (_, i) => ({ detector: `d${i % 13}`, group: `g${i % 3}`, location: `$[${i % 17}]`, confidence: i / 100, action: i % 2 ? 'mask' : 'detect', direction: 'response' }) as const);
  assert.equal(JSON.stringify(unpackFindings(packFindings(cycling))), JSON.stringify(cycling));
  const prints = cycling.map((f, i) => ({ hash: `h${i % 5}`, dataClass: 'c', detector: f.detector, group: f.group, ...(i % 4 ? { shape: { length: i, digitsOnly: i % 3 === 0, probe: 4294967295 - i } } : {}) }));
  assert.equal(JSON.stringify(unpackFingerprints(packFingerprints(prints))), JSON.stringify(prints));
});

test('the worker sends findings and fingerprints as a string table and columns it moves, not one object each', () => {
  const dp = compile();
  const result = inspectBody(dp, body(300), response);
  const { result: packed, transfer } = packResult({ ...result, value: new Uint8Array(result.value) });
  assert.ok(packed.findings.packed && packed.fingerprints.packed);
  assert.equal(packed.findings.count, result.findings.length);
  // Few detectors, groups, actions: each once in the table, not once a finding.
  for (const s of new Set(result.findings.flatMap((f) => [f.detector, f.group, f.action, f.direction]))) {
    assert.equal(packed.findings.strings.filter((t) => t === s).length, 1, s);
  }
  assert.equal(packed.findings.slots.length, 6 * result.findings.length);
  assert.deepEqual(transfer, [packed.findings.slots.buffer, packed.fingerprints.slots.buffer]);
  // What postMessage does with it: the columns move, the rest is copied.
  const received = structuredClone(packed, { transfer });
  assert.equal(packed.findings.slots.byteLength, 0, 'moved, not copied');
  const unpacked = unpackResult(received);
  same({ ...unpacked, value: Buffer.from(unpacked.value as Uint8Array) }, result);
});

test('a body inspected on the worker gives what inline inspection gives: bytes, findings, fingerprints, a block, monitor mode, a JSON value', async () => {
  const pool = createBodyInspectionPool({ thresholdBytes: 0, log: () => {} });
  try {
    for (const monitor of [false, true]) {
      const dp = compile(monitor);
      for (const context of [request, response]) {
        const subject = body(1000);
        const inline = inspectBody(dp, subject, context);
        assert.ok(inline.findings.length > 1000);
        same(await pool.inspect(dp, subject, context), inline);
        const clean = Buffer.from(JSON.stringify({ note: 'nothing to see here '.repeat(100) }));
        const unchanged = await pool.inspect(dp, clean, context);
        same(unchanged, inspectBody(dp, clean, context));
        assert.equal(unchanged.value, clean, 'unchanged: the caller keeps its own bytes');
        const json = JSON.parse(subject.toString('utf8')) as unknown;
        same(await pool.inspect(dp, json, context), inspectJson(dp, json, context));
      }
    }
    const blocking = compileDataProtection({ profiles: ['pci-dss'], rules: [{ groups: ['financial'], action: 'block' }] } as never);
    assert.ok(blocking.ok);
    const blocked = await pool.inspect(blocking, body(50), request);
    assert.ok(blocked.blocked !== null);
    same(blocked, inspectBody(blocking, body(50), request));
  } finally {
    await pool.stop();
  }
});

/** Random printable text: what costs the worker the most per byte (each body meets new automaton states). */
function costly(bytes: number): Buffer {
  return Buffer.from(randomBytes(bytes).map((x) => 0x20 + (x % 0x5f)));
}

test('the worker takes senders in turn: a sender of costly bodies delays at most one body of another sender', async () => {
  // Each costly body is stopped at the worker's budget (150 ms); the other sender's body is small.
  const pool = createBodyInspectionPool({ thresholdBytes: 0, budgetMs: 150, log: () => {} });
  try {
    const dp = compile();
    await pool.inspect(dp, Buffer.from('{"warm":"up"}'), response); // the worker starts and compiles
    const done: string[] = [];
    const settle = (name: string, p: Promise<unknown>) => p.then(() => done.push(name), () => done.push(name));
    const hostile = [1, 2, 3].map((i) => settle(`hostile ${i}`, pool.inspect(dp, costly(256 * 1024), request, 'agent a')));
    const other = settle('other', pool.inspect(dp, Buffer.from(JSON.stringify({ note: `card ${card}` })), request, 'agent b'));
    await Promise.all([...hostile, other]);
    assert.deepEqual(done, ['hostile 1', 'other', 'hostile 2', 'hostile 3']);
    // Without a sender every body is in one queue, first come first served.
    const order: string[] = [];
    await Promise.all([
      ...[1, 2].map((i) => pool.inspect(dp, costly(256 * 1024), request).then(() => order.push(`costly ${i}`), () => order.push(`costly ${i}`))),
      pool.inspect(dp, Buffer.from('{"note":"ok"}'), request).then(() => order.push('small')),
    ]);
    assert.deepEqual(order, ['costly 1', 'costly 2', 'small']);
  } finally {
    await pool.stop();
  }
});

test('a body that waited for the worker as long as Envoy waits is refused unread, as over budget', async () => {
  const events: string[] = [];
  const pool = createBodyInspectionPool({ thresholdBytes: 0, budgetMs: 300, queueWaitMs: 200, log: (event) => events.push(event) });
  try {
    const dp = compile();
    await pool.inspect(dp, Buffer.from('{"warm":"up"}'), response);
    const first = pool.inspect(dp, costly(256 * 1024), request, 'agent a');
    const queued = pool.inspect(dp, Buffer.from(JSON.stringify({ note: `card ${card}` })), request, 'agent b');
    await assert.rejects(first, (error: Error & { code?: string }) => error.code === 'inspection_over_budget');
    const firstRefused = performance.now();
    await assert.rejects(queued, (error: Error & { code?: string; name?: string }) => error.code === 'inspection_over_budget' && error.name === 'InspectionQueueExpired' && /waited \d+ ms for the inspection worker/.test(error.message));
    assert.ok(performance.now() - firstRefused < 50, 'refused when its turn came, not sent to the worker');
    assert.deepEqual(events, ['body_inspection_expired']);
    // The worker is free again: a body sent now is inspected.
    const after = await pool.inspect(dp, Buffer.from(JSON.stringify({ note: `card ${card}` })), request, 'agent b');
    assert.equal(after.findings[0]?.detector, 'payment-card-visa');
  } finally {
    await pool.stop();
  }
});

test('with two workers two bodies are inspected at once: neither waits in the queue', async () => {
  for (const workers of [1, 2]) {
    const pool = createBodyInspectionPool({ thresholdBytes: 0, budgetMs: 200, queueWaitMs: 100, workers, log: () => {} });
    try {
      const dp = compile();
      const outcomes = await Promise.allSettled([pool.inspect(dp, costly(256 * 1024), request, 'agent a'), pool.inspect(dp, costly(256 * 1024), request, 'agent b')]);
      const names = outcomes.map((o) => (o.status === 'rejected' ? (o.reason as Error).name : 'inspected'));
      // One worker: the second body waited for the first (200 ms, past the 100 ms it may wait) and was refused unread.
      assert.deepEqual(names, workers === 1 ? ['InspectionOverBudget', 'InspectionQueueExpired'] : ['InspectionOverBudget', 'InspectionOverBudget'], `${workers} worker(s)`);
      // Both workers stay usable.
      const again = await Promise.all([1, 2].map(() => pool.inspect(dp, Buffer.from(JSON.stringify({ note: `card ${card}` })), request)));
      assert.deepEqual(again.map((r) => r.findings[0]?.detector), ['payment-card-visa', 'payment-card-visa']);
    } finally {
      await pool.stop();
    }
  }
});

test('MANDATE_DLP_WORKERS takes a whole number of threads from 1 to 64; anything else stops startup with invalid_inspection_workers', () => {
  assert.equal(parseInspectionWorkers('1'), 1);
  assert.equal(parseInspectionWorkers('4'), 4);
  assert.equal(parseInspectionWorkers(String(maxInspectionWorkers)), maxInspectionWorkers);
  for (const bad of ['0', '-1', '1.5', '65', '', ' ', 'two', '1e1', '0x2']) {
    assert.throws(() => parseInspectionWorkers(bad), (error: Error & { code?: string }) => error.code === 'invalid_inspection_workers' && error.message.includes(`not "${bad}"`), JSON.stringify(bad));
  }
});
