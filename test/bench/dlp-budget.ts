// Bodies built to cost the most, with and without the inspection budget (ext-proc/dlp/budget.ts):
// how long each holds the thread that inspects it, and whether it is inspected or refused.
// Run: sh deploy/bootstrap.sh node test/bench/dlp-budget.ts
import { randomBytes } from 'node:crypto';
import { compileDataProtection } from '../../ext-proc/dlp/compile.ts';
import { inspectBody } from '../../ext-proc/dlp/inspect.ts';
import { isOverBudget, setInspectionBudget } from '../../ext-proc/dlp/budget.ts';
import { createBodyInspectionPool } from '../../ext-proc/dlp/body-inspection.ts';
import { defaultInspectionBudgetMs, defaultWorkerInspectionBudgetMs } from '../../ext-proc/service.ts';

const context = { direction: 'response' as const, upstream: 'u' };
const kinds: Record<string, (n: number) => Buffer> = {
  'random printable ASCII': (n) => Buffer.from(randomBytes(n).map((x) => 0x20 + (x % 0x5f))),
  'random bytes 0x20-0xff': (n) => Buffer.from(randomBytes(n).map((x) => 0x20 + (x % 0xe0))),
  'random bytes (binary: a compressed file)': (n) => randomBytes(n),
  'MCP image result (base64 of random bytes)': (n) => Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 1, result: { content: [{ type: 'image', mimeType: 'image/png', data: randomBytes(Math.floor((n * 3) / 4)).toString('base64') }] } })),
};

const rows: string[] = [];
// On the event loop: bodies under the worker threshold (256 KiB), a fresh config per body (no state built).
for (const [kind, make] of Object.entries(kinds)) {
  for (const budget of [Infinity, defaultInspectionBudgetMs]) {
    setInspectionBudget(budget);
    const body = make(250 * 1024);
    const compiled = compileDataProtection({} as never);
    const t = performance.now();
    let outcome = 'inspected';
    try {
      inspectBody(compiled, body, context);
    } catch (error) {
      if (!isOverBudget(error)) throw error;
      outcome = 'refused (over budget)';
    }
    rows.push(`| ${kind}, ${(body.length / 1024).toFixed(0)} KiB | event loop | ${Number.isFinite(budget) ? `${budget} ms` : 'none'} | ${(performance.now() - t).toFixed(0)} | ${outcome} |`);
  }
}
setInspectionBudget(Infinity);
// On the worker: 4 MiB (a Persona's default maxBodyBytes), one pool per run (a fresh worker: no state built).
for (const [kind, make] of Object.entries(kinds)) {
  for (const budget of [Infinity, defaultWorkerInspectionBudgetMs]) {
    const pool = createBodyInspectionPool({ thresholdBytes: 0, budgetMs: budget, log: () => {} });
    const compiled = compileDataProtection({} as never);
    if (!compiled.ok) throw new Error('compile failed');
    await pool.inspect(compiled, Buffer.from('{"warm":"up"}'), context); // the worker starts and compiles
    const body = make(4 * 1024 * 1024);
    const t = performance.now();
    let outcome = 'inspected';
    try {
      await pool.inspect(compiled, body, context);
    } catch (error) {
      if (!isOverBudget(error)) throw error;
      outcome = 'refused (over budget)';
    }
    rows.push(`| ${kind}, ${(body.length / 1048576).toFixed(1)} MiB | worker | ${Number.isFinite(budget) ? `${budget} ms` : 'none'} | ${(performance.now() - t).toFixed(0)} | ${outcome} |`);
    await pool.stop();
  }
}
console.log('| body | inspected on | budget | ms until answered | outcome |\n|---|---|---|---:|---|');
console.log(rows.join('\n'));

// A browser tool's screenshots: one config, a new image each call (an image is random bytes to the
// engine, so every one meets states not built yet). 250 KiB results, each beside a line of text.
const screenshots = compileDataProtection({} as never);
const perImage: number[] = [];
for (let i = 0; i < 12; i++) {
  const body = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: i, result: { content: [{ type: 'text', text: `Screenshot ${i} of https://example.com/account` }, { type: 'image', mimeType: 'image/png', data: randomBytes(192 * 1024).toString('base64') }] } }));
  const t = performance.now();
  inspectBody(screenshots, body, context);
  perImage.push(performance.now() - t);
}
const later = perImage.slice(1).sort((a, b) => a - b);
console.log(`\n| 12 screenshots (MCP image results of 250 KiB), one config | ms |\n|---|---:|\n| the first | ${perImage[0]!.toFixed(1)} |\n| the other 11, median | ${later[5]!.toFixed(1)} |\n| the other 11, slowest | ${later[10]!.toFixed(1)} |`);
