// CPU time per request at a fixed request rate, read from /proc for each
// process: why per-request cost on this machine falls as the rate rises.
//   1. A plain Node HTTP server that does no work (the baseline of a wake-up).
//   2. The 4 KiB tools/call through the real gateway, with and without data
//      protection: ext_proc's and Envoy's CPU per request.
// vegeta (open loop) sends the load; it runs in its own process, whose CPU is
// not counted. Prints markdown for docs/benchmarks.md.
// Run: sh deploy/bootstrap.sh node test/bench/cpu-per-request.ts
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { adminRequest, choosePorts, freePort, repoRoot, startGateway, waitForEnvoyVersion } from '../../deploy/gateway-processes.ts';
import { ensureTools, fourKibArguments, waitHttp } from './gateway.ts';

const seconds = Number(process.env.BENCH_SECONDS ?? 10);
const rates = [100, 300, 1000];

/** User plus system CPU of a process so far, in milliseconds (clock ticks of 10 ms). */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

interface Attack {
  method: string;
  url: string;
  headers: Record<string, string>;
  body?: string;
}

/** Runs vegeta at the rate; returns the CPU each pid used per request (µs), and p50/p99 (ms). */
async function attack(vegeta: string, target: Attack, rate: number, pids: number[]): Promise<{ cpuUs: number[]; p50: number; p99: number; success: number }> {
  const line = JSON.stringify({
    method: target.method,
    url: target.url,
    header: Object.fromEntries(Object.entries(target.headers).map(([k, v]) => [k, [v]])),
    ...(target.body ? { body: Buffer.from(target.body).toString('base64') } : {}),
  });
  const before = pids.map(cpuMs);
  const child = spawn(vegeta, ['attack', '-format=json', `-rate=${rate}/s`, `-duration=${seconds}s`, '-max-workers=256'], { stdio: ['pipe', 'pipe', 'inherit'] });
  child.stdin.end(`${line}\n`);
  const out: Buffer[] = [];
  child.stdout.on('data', (d: Buffer) => out.push(d));
  await new Promise((resolve) => child.once('exit', resolve));
  const after = pids.map(cpuMs);
  const report = JSON.parse(execFileSync(vegeta, ['report', '-type=json'], { input: Buffer.concat(out) }).toString('utf8')) as { latencies: { '50th': number; '99th': number }; success: number };
  const requests = rate * seconds;
  return {
    cpuUs: pids.map((_, i) => ((after[i]! - before[i]!) * 1000) / requests),
    p50: report.latencies['50th'] / 1e6,
    p99: report.latencies['99th'] / 1e6,
    success: report.success,
  };
}

const { vegeta } = ensureTools();
const loadBefore = loadavg()[0]!;
const lines: string[] = [];

// 1. A plain Node HTTP server in a child process (so that only its own CPU is counted).
const plainPort = await freePort();
const plain = spawn(
  process.execPath,
  ['-e', `require('node:http').createServer((q, s) => { q.resume(); q.on('end', () => s.end('{"ok":true}')); }).listen(${plainPort}, '127.0.0.1')`],
  { stdio: 'ignore' },
);
try {
  await waitHttp(`http://127.0.0.1:${plainPort}/`);
  lines.push('| rate (req/s) | plain Node HTTP server, CPU µs per request |', '|---:|---:|');
  for (const rate of [...rates, 3000]) {
    const m = await attack(vegeta, { method: 'GET', url: `http://127.0.0.1:${plainPort}/`, headers: {} }, rate, [plain.pid!]);
    lines.push(`| ${rate} | ${m.cpuUs[0]!.toFixed(0)} |`);
  }
} finally {
  plain.kill();
}

// 2. The gateway: the 4 KiB tools/call with and without data protection.
const work = mkdtempSync(join(tmpdir(), 'mandate-cpu-'));
const upstreamPort = await freePort();
const children: ChildProcess[] = [spawn(process.execPath, [join(repoRoot, 'test/bench/fast-upstream.ts')], { env: { ...process.env, PORT: String(upstreamPort) }, stdio: 'ignore' })];
const gateway = await startGateway({ dataDir: join(work, 'data'), ports: await choosePorts(), demoUpstreams: false, logDir: join(work, 'logs') });
try {
  await waitHttp(`http://127.0.0.1:${upstreamPort}/api/items/42`);
  const grants = [{ upstream: 'bench-mcp', tools: [{ name: 'read_thread', when: "args.id != ''" }] }];
  const applied = await adminRequest(gateway, 'POST', '/v1/apply', {
    documents: [
      { kind: 'Upstream', name: 'bench-mcp', protocol: 'mcp', url: `http://127.0.0.1:${upstreamPort}/mcp` },
      { kind: 'Persona', name: 'bench', description: 'Benchmark persona.', grants },
      { kind: 'Persona', name: 'bench-dlp', description: 'The same, with every compliance profile on.', grants, dataProtection: { profiles: ['pci-dss', 'hipaa', 'soc2', 'gdpr-pii', 'secrets'] } },
    ],
  });
  if (applied.status !== 200) throw new Error(`bench config rejected: ${JSON.stringify(applied.body)}`);
  const tokens: Record<string, string> = {};
  for (const persona of ['bench', 'bench-dlp']) {
    const issued = await adminRequest(gateway, 'POST', `/v1/personas/${persona}/credentials`, { agent: `${persona}-agent` });
    await waitForEnvoyVersion(gateway, issued.body.version as number);
    tokens[persona] = issued.body.token as string;
  }
  const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'read_thread', arguments: fourKibArguments() } });
  const extProc = gateway.processes.get('ext-proc')!.pid!;
  const envoy = gateway.envoy.child.pid!;
  lines.push('', '| path | rate (req/s) | ext_proc CPU µs per request | Envoy CPU µs per request | p50 / p99 ms | success |', '|---|---:|---:|---:|---:|---:|');
  for (const persona of ['bench', 'bench-dlp']) {
    const target = { method: 'POST', url: `${gateway.gatewayUrl}/personas/${persona}/bench-mcp`, headers: { authorization: `Bearer ${tokens[persona]}`, 'content-type': 'application/json' }, body };
    for (let i = 0; i < 300; i++) await (await fetch(target.url, { method: 'POST', headers: target.headers, body })).text();
    for (const rate of rates) {
      const m = await attack(vegeta, target, rate, [extProc, envoy]);
      const label = persona === 'bench' ? 'mcp-4kib, Mandate' : 'mcp-4kib, Mandate + data protection';
      lines.push(`| ${label} | ${rate} | ${m.cpuUs[0]!.toFixed(0)} | ${m.cpuUs[1]!.toFixed(0)} | ${m.p50.toFixed(2)} / ${m.p99.toFixed(2)} | ${(m.success * 100).toFixed(1)}% |`);
    }
  }
} finally {
  await gateway.stop();
  for (const child of children) child.kill();
}

console.log(`Command: \`sh deploy/bootstrap.sh node test/bench/cpu-per-request.ts\`, ${seconds} s per row, vegeta at a fixed rate; ${cpus().length} cores, 1-minute load average before the run ${loadBefore.toFixed(2)}.\n`);
console.log(lines.join('\n'));
