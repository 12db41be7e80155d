// Large bodies on the inspection worker (ext-proc/dlp/body-inspection.ts) against the same
// inspectBody inline, alternating, with how long the event loop was held while the worker had
// the body. Prints medians (the first round, cold, left out). ROUNDS=n to change the count.
// Run: sh deploy/bootstrap.sh node test/bench/dlp-worker.ts
import os from 'node:os';
import { compileDataProtection, type CompiledDataProtectionOk } from '../../ext-proc/dlp/compile.ts';
import { inspectBody, type InspectContext } from '../../ext-proc/dlp/inspect.ts';
import { createBodyInspectionPool } from '../../ext-proc/dlp/body-inspection.ts';
import { cleanToolResult, denseToolResult } from '../dlp-corpus/generate.ts';

// As ext_proc runs it: with a fingerprint key, so every finding also yields a fingerprint.
const key = Buffer.alloc(32, 7);
const compile = (policy: object): CompiledDataProtectionOk => {
  const c = compileDataProtection(policy as never, { fingerprintKey: key });
  if (!c.ok) throw new Error('compile failed');
  return c;
};
const requestPolicy = compile({ profiles: ['pci-dss', 'secrets'], flow: { enabled: true } });
const allDetectors = compile({});
const request: InspectContext = { direction: 'request', upstream: 'devbox' };
const response: InspectContext = { direction: 'response', upstream: 'tracker' };

const cases: { name: string; body: Buffer; dp: CompiledDataProtectionOk; context: InspectContext }[] = [
  { name: 'passwords, 172,727 alike', body: Buffer.from(JSON.stringify({ note: 'password: "hunter22x" '.repeat(172_727) })), dp: requestPolicy, context: request },
  // The same values as plain text (not JSON): the engine's text path.
  { name: 'passwords, 172,727 alike, plain text', body: Buffer.from('password: "hunter22x" '.repeat(172_727)), dp: requestPolicy, context: request },
  { name: 'passwords, 160,000 distinct', body: Buffer.from(JSON.stringify({ note: Array.from({ length: 160_000 }, (_, i) => `password: "hunter${i}x" `).join('') })), dp: requestPolicy, context: request },
  { name: 'dense tool result', body: Buffer.from(JSON.stringify(denseToolResult(2, 2000))), dp: allDetectors, context: response },
  { name: 'clean tool result', body: Buffer.from(JSON.stringify(cleanToolResult(1, 2000))), dp: allDetectors, context: response },
];

const pool = createBodyInspectionPool({ thresholdBytes: 0, log: () => {} });
let last = performance.now();
let held = 0;
const ticker = setInterval(() => {
  const now = performance.now();
  held = Math.max(held, now - last);
  last = now;
}, 1);
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

const rounds = Number(process.env.ROUNDS ?? 11);
const load = os.loadavg();
console.log('| body | size | findings | inline ms | worker ms | event loop held while on the worker, ms |');
console.log('|---|---:|---:|---:|---:|---:|');
for (const c of cases) {
  const findings = inspectBody(c.dp, c.body, c.context).findings.length;
  const inline: number[] = [];
  const worker: number[] = [];
  const heldMs: number[] = [];
  for (let round = 0; round < rounds; round++) {
    for (const where of round % 2 === 0 ? ['inline', 'worker'] : ['worker', 'inline']) {
      await pause(10);
      last = performance.now();
      held = 0;
      const started = performance.now();
      if (where === 'inline') inspectBody(c.dp, c.body, c.context);
      else await pool.inspect(c.dp, c.body, c.context);
      const ms = performance.now() - started;
      await pause(3);
      if (round === 0) continue;
      if (where === 'inline') inline.push(ms);
      else {
        worker.push(ms);
        heldMs.push(held);
      }
    }
  }
  console.log(`| ${c.name} | ${(c.body.length / 1048576).toFixed(2)} MiB | ${findings} | ${median(inline).toFixed(0)} | ${median(worker).toFixed(0)} | ${median(heldMs).toFixed(0)} |`);
}
clearInterval(ticker);
await pool.stop();
console.log(`\nload average before ${load.map((l) => l.toFixed(2)).join(' ')}, after ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}; ${os.cpus().length} CPUs`);
