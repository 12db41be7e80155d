// Sensitive-data engine throughput. Prints a markdown table.
// Run: sh deploy/bootstrap.sh node test/bench/dlp.ts
import { compileDataProtection } from '../../ext-proc/dlp/compile.ts';
import { inspectBody, inspectJson } from '../../ext-proc/dlp/inspect.ts';
import { cleanToolResult, customerRecordsToolResult, denseToolResult } from '../dlp-corpus/generate.ts';
import { listDetectors } from '../../ext-proc/dlp/catalogue.ts';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { distinctBodies, installedFiles } from './installed-texts.ts';
import { join } from 'node:path';

const compiled = compileDataProtection({} as never);
if (!compiled.ok || !compiled.active) throw new Error('compile failed');
// As the data path runs it: with the service's key, every finding also yields a data-flow fingerprint.
const keyed = compileDataProtection({} as never, { fingerprintKey: Buffer.alloc(32, 7) });
const ctx = { direction: 'response' as const, upstream: 'tracker' };

function measure(name: string, bytes: number, fn: () => void, minMs = 1500): { name: string; mbps: number; iterations: number } {
  for (let i = 0; i < 3; i++) fn();
  let iterations = 0;
  const start = performance.now();
  while (performance.now() - start < minMs) {
    fn();
    iterations++;
  }
  const seconds = (performance.now() - start) / 1000;
  return { name, mbps: (bytes * iterations) / seconds / 1e6, iterations };
}

const clean = cleanToolResult(1, 2000);
const cleanBuf = Buffer.from(JSON.stringify(clean));
// Clean too, with words that abbreviate an identifier somewhere and are something else far more often
// (".org" URLs, "run", "ui", "vs", "cc" in prose): as context words in text they once
// put every word near them to a stdnum check.
const everyday = Buffer.from(JSON.stringify(Array.from({ length: 5000 }, (_, i) => ({ id: `u-${i}`, url: `https://docs.example.org/page/${i}`, state: 'done', note: 'run the ui tests vs the cc list again' }))));
// And a field name that labels an identifier (the Swiss and Austrian UID) on every record, holding user ids.
const uidFields = Buffer.from(JSON.stringify(Array.from({ length: 5000 }, (_, i) => ({ uid: `u-${i}`, url: `https://docs.example.com/page/${i}`, state: 'done', note: 'the build finished' }))));
const dense = denseToolResult(2, 2000);
const denseBuf = Buffer.from(JSON.stringify(dense));

// Not one of the bars' bodies: customer records with one or two sensitive values per ~400 bytes.
const records = customerRecordsToolResult(3, 2000);
const recordsBuf = Buffer.from(JSON.stringify(records));

// Real prose: the READMEs of the installed packages (package-lock.json fixes them), each as an MCP tool
// result, stdnum's own left out (it lists identifiers). Unlike the generated bodies, no two are alike:
// the Set's automaton meets new states. Timed over all of them, after three rounds to warm it.
const readmes = readdirSync('node_modules')
  .filter((name) => name !== 'stdnum' && !name.startsWith('.') && !name.startsWith('@'))
  .flatMap((name) => ['README.md', 'readme.md'].map((file) => join('node_modules', name, file)))
  .filter((path) => existsSync(path) && statSync(path).size < 200_000)
  .map((path) => Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 1, result: { content: [{ type: 'text', text: readFileSync(path, 'utf8') }] } })));
const readmeBytes = readmes.reduce((sum, b) => sum + b.length, 0);
for (let round = 0; round < 3; round++) for (const b of readmes) inspectBody(compiled, b, ctx);

const set = compiled.set!;
const rows = [
  measure('clean JSON, the RE2.Set passes alone (ceiling)', cleanBuf.length, () => set.match(cleanBuf)),
  measure(`clean JSON, raw body (inspectBody), ${(cleanBuf.length / 1e6).toFixed(1)} MB`, cleanBuf.length, () => inspectBody(compiled, cleanBuf, ctx)),
  measure(`installed packages' READMEs as tool results (${readmes.length} bodies, ${(readmeBytes / 1e6).toFixed(1)} MB), the RE2.Set passes alone`, readmeBytes, () => {
    for (const b of readmes) set.match(b);
  }),
  measure(`installed packages' READMEs as tool results, raw bodies (inspectBody)`, readmeBytes, () => {
    for (const b of readmes) inspectBody(compiled, b, ctx);
  }),
  measure(`clean JSON with everyday abbreviations (.org URLs, "run", "ui", "vs", "cc"), raw body, ${(everyday.length / 1e6).toFixed(1)} MB`, everyday.length, () => inspectBody(compiled, everyday, ctx)),
  measure(`clean JSON with a "uid" field (user ids) on every record, raw body, ${(uidFields.length / 1e6).toFixed(1)} MB`, uidFields.length, () => inspectBody(compiled, uidFields, ctx)),
  measure('clean JSON, parsed (JSON.parse + inspectJson)', cleanBuf.length, () => inspectJson(compiled, JSON.parse(cleanBuf.toString()), ctx)),
  measure('clean JSON, inspectJson on an already-parsed value', cleanBuf.length, () => inspectJson(compiled, clean, ctx)),
  measure(`dense JSON, raw body (inspectBody), ${(denseBuf.length / 1e6).toFixed(1)} MB`, denseBuf.length, () => inspectBody(compiled, denseBuf, ctx)),
  measure('dense JSON, raw body, with data-flow fingerprints (fingerprintKey set, as in the data path)', denseBuf.length, () => inspectBody(keyed, denseBuf, ctx)),
  measure('dense JSON, inspectJson on an already-parsed value', denseBuf.length, () => inspectJson(compiled, dense, ctx)),
  measure(`realistic density (extra case, not a bar's body), raw body (inspectBody), ${(recordsBuf.length / 1e6).toFixed(1)} MB`, recordsBuf.length, () => inspectBody(compiled, recordsBuf, ctx)),
];
// Small bodies, as the data path mostly sees them (an MCP tool call's arguments and result, a few KiB):
// the cost per call, with the five compliance profiles on.
const profiles = compileDataProtection({ profiles: ['pci-dss', 'hipaa', 'soc2', 'gdpr-pii', 'secrets'] } as never);
if (!profiles.ok) throw new Error('compile failed');
const thread = Array.from({ length: 28 }, (_, i) => `Comment ${i + 1}: the printer on floor ${(i % 7) + 1} jams again after the firmware update; tray two is empty.`);
const cleanSmall = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 1, result: { content: [{ type: 'text', text: thread.join('\n') }] } }));
thread[5] = 'Comment 6: customer jane.doe@example.com asked for a refund to the card on file.';
thread[17] = 'Comment 18: card 4539 1488 0343 6467 was charged twice for the same repair.';
const dirtySmall = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 1, result: { content: [{ type: 'text', text: thread.join('\n') }], isError: false } }));
const argLines = Array.from({ length: 30 }, (_, i) => `Line ${i + 1}: the customer reports that the printer on floor ${(i % 7) + 1} still jams after the update.`);
argLines[12] = 'Line 13: reply to the customer at jane.doe@example.com once the part has arrived.';
const smallArgs = { id: '42', comment: argLines.join('\n') };
const request = { direction: 'request' as const, upstream: 'tracker' };
const perCall = (name: string, fn: () => void) => {
  for (let i = 0; i < 200; i++) fn();
  let iterations = 0;
  const start = performance.now();
  while (performance.now() - start < 1500) {
    fn();
    iterations++;
  }
  return { name, microseconds: ((performance.now() - start) * 1000) / iterations, iterations };
};
const smallRows = [
  perCall(`multi-line tool result, ${(cleanSmall.length / 1024).toFixed(1)} KiB, the RE2.Set passes alone (floor)`, () => profiles.set!.match(cleanSmall)),
  perCall(`the same, clean (inspectBody)`, () => inspectBody(profiles, cleanSmall, ctx)),
  perCall(`tool result with 2 findings (an e-mail, a card), ${(dirtySmall.length / 1024).toFixed(1)} KiB (inspectBody)`, () => inspectBody(profiles, dirtySmall, ctx)),
  perCall(`tool arguments with 1 finding (an e-mail), ${(JSON.stringify(smallArgs).length / 1024).toFixed(1)} KiB (inspectJson)`, () => inspectJson(profiles, smallArgs, request)),
];

// Text the engine meets for the first time, as most traffic is. RE2 builds the states of a Set's
// automaton as texts need them and keeps them: a body like one seen before runs on built states, a new
// one pays for building its own. Each of these bodies is inspected once, by a config compiled for
// this (no state built before). Docs and sources of the installed packages (.md .js .ts .txt of 2-100
// KB) as MCP tool results, and their JSON files (0.3-100 KB) as raw bodies; package-lock.json fixes them.
function firstTime(name: string, bodies: Buffer[], setOnly: boolean): { name: string; mbps: number; iterations: number } {
  const fresh = compileDataProtection({} as never);
  if (!fresh.ok || !fresh.active) throw new Error('compile failed');
  const bytes = bodies.reduce((sum, b) => sum + b.length, 0);
  const start = performance.now();
  for (const b of bodies) {
    if (setOnly) fresh.set!.match(b);
    else inspectBody(fresh, b, ctx);
  }
  return { name: `${name} (${bodies.length} bodies, ${(bytes / 1e6).toFixed(1)} MB)`, mbps: bytes / (performance.now() - start) / 1e3, iterations: 1 };
}
const docs = distinctBodies(installedFiles(/\.(md|js|ts|txt)$/, 2000), 6e6, true);
const jsonFiles = distinctBodies(installedFiles(/\.json$/, 300), 4e6, false);
rows.push(
  firstTime('first-time text: installed docs and sources as tool results, each once, the RE2.Set passes alone', docs, true),
  firstTime('first-time text: installed docs and sources as tool results, each once, raw bodies (inspectBody)', docs, false),
  firstTime('first-time JSON: installed packages\' JSON files as raw bodies, each once, the RE2.Set passes alone', jsonFiles, true),
  firstTime('first-time JSON: installed packages\' JSON files as raw bodies, each once, raw bodies (inspectBody)', jsonFiles, false),
);

const findings = inspectJson(compiled, dense, ctx).findings.length;
const recordFindings = inspectJson(compiled, records, ctx).findings.length;
console.log(`load average ${(await import('node:os')).loadavg().map((x) => x.toFixed(2)).join(' ')} on ${(await import('node:os')).cpus().length} cores`);
console.log(`${listDetectors().length} detectors, ${compiled.detectors.length} active, RE2.Set entries: ${compiled.setEntries.length} (in two Sets); dense body: ${findings} findings (one per ${Math.round(denseBuf.length / findings)} bytes); realistic-density body: ${recordFindings} findings (one per ${Math.round(recordsBuf.length / recordFindings)} bytes)\n`);
console.log('| case | MB/s | iterations |');
console.log('|---|---:|---:|');
for (const r of rows) console.log(`| ${r.name} | ${r.mbps.toFixed(r.mbps < 10 ? 1 : 0)} | ${r.iterations} |`);
console.log('\nSmall bodies, five compliance profiles on (the data path\'s usual case):\n');
console.log('| case | µs per call | iterations |');
console.log('|---|---:|---:|');
for (const r of smallRows) console.log(`| ${r.name} | ${r.microseconds.toFixed(1)} | ${r.iterations} |`);
