// Cost of the data-protection and behaviour stages on the hot path, measured on
// the processor itself (no Envoy, no gRPC): one tools/call request and its JSON
// result per iteration, for a Persona without stages, with data protection
// (pci-dss + secrets, mask), and with both stages plus a sequence rule.
// Run: sh deploy/bootstrap.sh node test/bench/data-path.ts
import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { configBundleSchema } from '../../config/bundle.ts';
import { FlowTracker } from '../../ext-proc/dlp/flow.ts';
import { createBodyInspectionPool } from '../../ext-proc/dlp/body-inspection.ts';
import { defaultBodyInspectionThresholdBytes } from '../../ext-proc/service.ts';
import { compilePolicy } from '../../ext-proc/policy/compile-policy.ts';
import { createStreamProcessor, type ProcessorDependencies } from '../../ext-proc/processor.ts';
import { MemoryAlertSink } from '../../ext-proc/sequence/alerts.ts';
import { createBehaviourEngine } from '../../ext-proc/sequence/engine.ts';
import { InMemorySessionStateStore } from '../../ext-proc/sequence/state-store.ts';
import { installedTextSlices } from './installed-texts.ts';

const secret = 'B'.repeat(43);
const token = `mnd_0123456789ab_${secret}`;
const dataProtection = { profiles: ['pci-dss', 'secrets'], defaultAction: 'mask', flow: { enabled: true } };
const behaviour = { rules: [{ name: 'reads-then-send', steps: [{ match: { class: ['read'] }, atLeast: 50 }, { match: { class: ['egress'] }, within: '10m' }], action: 'block' }] };

/** `worker`: with the inspection worker as ext_proc runs (small bodies stay on the event loop, a request's parts inspected first). */
function setup(extra: Record<string, unknown>, worker = false) {
  const bundle = configBundleSchema.parse({
    upstreams: [{ kind: 'Upstream', name: 'tickets', protocol: 'mcp', url: 'http://127.0.0.1:1/mcp' }],
    personas: [{ kind: 'Persona', name: 'p', description: 'bench', grants: [{ upstream: 'tickets', tools: [{ name: '*' }] }], ...extra }],
  });
  const credential = { id: '0123456789ab', agent: 'a', persona: 'p', secretHash: createHash('sha256').update(secret).digest('hex'), createdAt: '2026-01-01T00:00:00Z', expiresAt: null };
  const compiled = compilePolicy({ version: 1, createdAt: '', bundle, credentials: [credential], upstreamCredentials: {} }, { fingerprintKey: Buffer.alloc(32, 3) });
  if (!compiled.ok) throw new Error(JSON.stringify(compiled.issues));
  const deps: ProcessorDependencies = {
    currentPolicy: () => compiled.policy,
    audit: { decision: () => {}, outcome: () => {} },
    now: () => performance.now(),
    wallClock: () => Date.now(),
    flow: new FlowTracker({ now: () => Date.now(), maxFingerprintsPerSession: 4096, ttlMs: 3_600_000, gradualCollectionThreshold: 1_000_000 }),
    behaviour: createBehaviourEngine({ clock: () => Date.now(), store: new InMemorySessionStateStore(), alertSink: new MemoryAlertSink() }),
    ...(worker ? { bodyInspection: createBodyInspectionPool({ thresholdBytes: defaultBodyInspectionThresholdBytes, log: () => {} }) } : {}),
  };
  return deps;
}

const route = { persona: 'p', upstream: 'tickets', kind: 'mcp' as const, pathPrefix: '/personas/p/tickets', configVersion: 1 };
const headerList = (o: Record<string, string>) => ({ headers: { headers: Object.entries(o).map(([key, value]) => ({ key, value })) } });
const requestHeaders = headerList({ ':method': 'POST', ':path': '/personas/p/tickets', 'content-type': 'application/json', authorization: `Bearer ${token}`, 'mcp-session-id': 's1' });
const responseHeaders = headerList({ ':status': '200', 'content-type': 'application/json' });

function run(label: string, deps: ProcessorDependencies, withCard: boolean, iterations: number, quiet = false, resultTexts: string[] = []): void {
  const argText = withCard ? 'refund card 4539 1488 0343 6467 please' : 'customer asks about the printer on floor 3';
  const sameResult = JSON.stringify({ ticket: { id: 42, title: 'Printer on fire', body: 'The printer on floor 3 is on fire again. '.repeat(20) } });
  const samples: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const body = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: i, method: 'tools/call', params: { name: 'tickets.get', arguments: { id: String(i % 500), note: argText } } }));
    const resultText = resultTexts.length > 0 ? resultTexts[i % resultTexts.length]! : sameResult;
    const result = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: i, result: { content: [{ type: 'text', text: resultText }] } }));
    const t0 = performance.now();
    const p = createStreamProcessor(route, deps);
    p.handle({ request: 'request_headers', request_headers: requestHeaders });
    p.handle({ request: 'request_body', request_body: { body, end_of_stream: true } });
    p.handle({ request: 'response_headers', response_headers: responseHeaders });
    p.handle({ request: 'response_body', response_body: { body: result, end_of_stream: true } });
    p.finish();
    samples.push(performance.now() - t0);
  }
  const warm = samples.slice(Math.floor(iterations / 5)).sort((a, b) => a - b);
  const q = (f: number) => (warm[Math.min(warm.length - 1, Math.floor(f * warm.length))]! * 1000).toFixed(0);
  if (!quiet) process.stdout.write(`${label.padEnd(44)} p50 ${q(0.5).padStart(5)} µs   p99 ${q(0.99).padStart(5)} µs   (${iterations} request+response pairs)\n`);
}

const n = Number(process.argv[2] ?? 5000);
// Warm the JIT on every path first, so the order of the runs does not decide the numbers.
run('', setup({ dataProtection, behaviour }), true, 2000, true);
run('', setup({}), false, 2000, true);
run('', setup({ dataProtection }, true), true, 2000, true);
run('no stages', setup({}), false, n);
run('data protection, clean payload', setup({ dataProtection }), false, n);
run('data protection, card in arguments (masked)', setup({ dataProtection }), true, n);
run('data protection + behaviour, clean payload', setup({ dataProtection, behaviour }), false, n);
run('data protection, clean payload, with the worker', setup({ dataProtection }, true), false, n);
run('data protection, card in arguments, with the worker', setup({ dataProtection }, true), true, n);
// Tool results the engine has not met: each a different 4 KiB slice of the installed packages' docs
// and sources (the payloads above repeat, so the RE2.Sets run on states built for them).
const slices = installedTextSlices(4096, n);
run(`data protection, first-time 4 KiB results (${slices.length} distinct)`, setup({ dataProtection }), false, slices.length, false, slices);
