// Gateway benchmark: the same load, in one run, through
//   - direct:  Envoy straight to the upstream (the limit);
//   - floor:   Envoy + a no-op ext_proc on Mandate's stack (grpc-js), asked for the same phases as
//              Mandate: the least any grpc-js ext_proc can add on this machine;
//   - Mandate: Envoy + Mandate's ext_proc with the policy on;
//   - Mandate + DLP: the same with data protection on (4 KiB workload).
// Throughput: wrk, closed loop, fixed connections, for a fixed time. Latency at a fixed request
// rate: vegeta (open loop), p50/p99. Prints a markdown section for docs/benchmarks.md.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { envoyBinary } from '../../envoy/run-envoy.ts';
import { adminRequest, choosePorts, freePort, repoRoot, startGateway, waitForEnvoyVersion } from '../../deploy/gateway-processes.ts';

const vegetaVersion = 'v12.13.0';
const seconds = Number(process.env.BENCH_SECONDS ?? 10);
const rate = Number(process.env.BENCH_RATE ?? 1000);
const connections = Number(process.env.BENCH_CONNECTIONS ?? 32);

export function ensureTools(): { wrk: string; vegeta: string } {
  const bin = join(repoRoot, '.tools/bin');
  mkdirSync(bin, { recursive: true });
  const vegeta = join(bin, 'vegeta');
  if (!existsSync(vegeta)) {
    process.stderr.write(`installing vegeta ${vegetaVersion} from the Go module proxy...\n`);
    execFileSync('go', ['install', `github.com/tsenart/vegeta/v12@${vegetaVersion}`], { env: { ...process.env, GOBIN: bin }, stdio: 'inherit' });
  }
  let wrk = spawnSync('sh', ['-c', 'command -v wrk'], { encoding: 'utf8' }).stdout.trim();
  if (!wrk) {
    process.stderr.write('installing wrk from Debian packages...\n');
    execFileSync('sh', ['-c', 'apt-get install -y -qq wrk >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq wrk >/dev/null)'], { stdio: 'inherit' });
    wrk = spawnSync('sh', ['-c', 'command -v wrk'], { encoding: 'utf8' }).stdout.trim();
  }
  return { wrk, vegeta };
}

export async function waitHttp(url: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    try {
      await (await fetch(url)).arrayBuffer();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`${url} did not come up`);
}

interface Workload {
  name: string;
  method: 'GET' | 'POST';
  /** Request path on every listener. */
  path: string;
  body?: string;
}

interface Target {
  label: string;
  baseUrl: string;
  token: string | null;
  /** Path to use instead of the workload's (the DLP Persona's endpoint). */
  path?: string;
}

interface Measured {
  throughput: number;
  p50Ms: number;
  p99Ms: number;
  success: number;
}

/** Runs a command and collects its output without blocking this process's event loop (see measure). */
function run(command: string, args: string[], input?: Buffer | string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'inherit'] });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(Buffer.concat(chunks)) : reject(new Error(`${command} exited with ${code}`))));
    child.stdin.end(input ?? '');
  });
}

/**
 * One workload through one path. The load generators run asynchronously: this process also
 * drains the gateway's log pipes (Envoy's access log among them), and a blocked event loop
 * would stall Envoy's log writes and measure that instead of the gateway.
 */
async function measure(tools: { wrk: string; vegeta: string }, target: Target, workload: Workload, work: string): Promise<Measured> {
  const url = `${target.baseUrl}${target.path ?? workload.path}`;
  const headers: Record<string, string> = { ...(workload.body ? { 'content-type': 'application/json' } : {}), ...(target.token ? { authorization: `Bearer ${target.token}` } : {}) };
  const lua = join(work, `${workload.name}-${target.label.replace(/\W+/g, '-')}.lua`);
  writeFileSync(
    lua,
    [`wrk.method = "${workload.method}"`, ...(workload.body ? [`wrk.body = [==[${workload.body}]==]`] : []), ...Object.entries(headers).map(([k, v]) => `wrk.headers["${k}"] = "${v}"`)].join('\n'),
  );
  const wrkOut = (await run(tools.wrk, ['-t1', `-c${connections}`, `-d${seconds}s`, '-s', lua, url])).toString('utf8');
  const throughput = Number(/Requests\/sec:\s+([\d.]+)/.exec(wrkOut)?.[1] ?? 0);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(wrkOut)?.[1] ?? 0);
  if (non2xx > 0) throw new Error(`${workload.name} via ${target.label}: ${non2xx} non-2xx responses under wrk:\n${wrkOut}`);
  const attackTarget = JSON.stringify({
    method: workload.method,
    url,
    header: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, [v]])),
    ...(workload.body ? { body: Buffer.from(workload.body).toString('base64') } : {}),
  });
  const results = await run(tools.vegeta, ['attack', '-format=json', `-rate=${rate}/s`, `-duration=${seconds}s`, '-max-workers=256'], `${attackTarget}\n`);
  const report = JSON.parse((await run(tools.vegeta, ['report', '-type=json'], results)).toString('utf8')) as {
    latencies: { '50th': number; '99th': number };
    success: number;
  };
  return { throughput, p50Ms: report.latencies['50th'] / 1e6, p99Ms: report.latencies['99th'] / 1e6, success: report.success };
}

const benchPrefixes = ['/personas/bench/bench-mcp', '/personas/bench/bench-rest', '/personas/bench-dlp/bench-mcp'] as const;

/**
 * One static Envoy with two listeners: "direct" routes straight to the upstream; "floor" puts an
 * ext_proc filter (the no-op server) in front, asking per route for the phases Mandate asks for:
 * MCP request headers + buffered body + response headers; REST headers only; with data protection,
 * the response body too.
 */
function directEnvoyConfig(directPort: number, floorPort: number, adminPort: number, upstreamPort: number, noopPort: number): unknown {
  const rewrite = (prefix: string) => (prefix.endsWith('bench-rest') ? '/api' : '/mcp');
  const mode = (requestBody: string, responseBody: string) => ({
    '@type': 'type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute',
    overrides: { processing_mode: { request_header_mode: 'SEND', response_header_mode: 'SEND', request_body_mode: requestBody, response_body_mode: responseBody } },
  });
  const floorModes: Record<string, unknown> = {
    '/personas/bench/bench-mcp': mode('BUFFERED', 'NONE'),
    '/personas/bench/bench-rest': mode('NONE', 'NONE'),
    '/personas/bench-dlp/bench-mcp': mode('BUFFERED', 'BUFFERED'),
  };
  const routes = (withModes: boolean) =>
    benchPrefixes.map((prefix) => ({
      match: { path_separated_prefix: prefix },
      route: { cluster: 'upstream', prefix_rewrite: rewrite(prefix) },
      ...(withModes ? { typed_per_filter_config: { 'envoy.filters.http.ext_proc': floorModes[prefix] } } : {}),
    }));
  const router = { name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } };
  const listener = (name: string, port: number, filters: unknown[], withModes: boolean) => ({
    name,
    address: { socket_address: { address: '127.0.0.1', port_value: port } },
    filter_chains: [
      {
        filters: [
          {
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
              stat_prefix: name,
              route_config: { virtual_hosts: [{ name, domains: ['*'], routes: routes(withModes) }] },
              http_filters: filters,
            },
          },
        ],
      },
    ],
  });
  const extProc = {
    name: 'envoy.filters.http.ext_proc',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor',
      grpc_service: { envoy_grpc: { cluster_name: 'noop-ext-proc' } },
      message_timeout: '2s',
      processing_mode: { request_header_mode: 'SEND', response_header_mode: 'SEND' },
    },
  };
  const staticCluster = (name: string, port: number, extra: Record<string, unknown> = {}) => ({
    name,
    type: 'STATIC',
    connect_timeout: '1s',
    load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } }] }] },
    ...extra,
  });
  return {
    static_resources: {
      listeners: [listener('direct', directPort, [router], false), listener('floor', floorPort, [extProc, router], true)],
      clusters: [
        staticCluster('upstream', upstreamPort),
        staticCluster('noop-ext-proc', noopPort, {
          typed_extension_protocol_options: {
            'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
              '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
              explicit_http_config: { http2_protocol_options: {} },
            },
          },
          circuit_breakers: { thresholds: [{ max_connections: 100_000, max_pending_requests: 1_000_000, max_requests: 1_000_000 }] },
        }),
      ],
    },
    // As in envoy/bootstrap.yaml: ext_proc streams are half-closed, not reset.
    layered_runtime: { layers: [{ name: 'static', static_layer: { 'envoy.reloadable_features.ext_proc_graceful_grpc_close': true } }] },
    admin: { address: { socket_address: { address: '127.0.0.1', port_value: adminPort } } },
  };
}

/** About 4 KiB of tool arguments: a ticket comment with a customer's e-mail address in it. */
export function fourKibArguments(): Record<string, string> {
  const lines = Array.from({ length: 46 }, (_, i) => `Line ${i + 1}: the customer reports that the printer on floor ${(i % 7) + 1} still jams after the update.`);
  lines[12] = 'Line 13: reply to the customer at jane.doe@example.com once the part has arrived.';
  return { id: '42', comment: lines.join('\n') };
}

export async function runGatewayBenchmark(): Promise<string> {
  const tools = ensureTools();
  const loadBefore = loadavg()[0]!;
  const work = mkdtempSync(join(tmpdir(), 'mandate-bench-'));
  const ports = await choosePorts();
  const [upstreamPort, noopPort, directPort, floorPort, directAdmin] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
  const children: ChildProcess[] = [];
  children.push(spawn(process.execPath, [join(repoRoot, 'test/bench/fast-upstream.ts')], { env: { ...process.env, PORT: String(upstreamPort) }, stdio: 'ignore' }));
  children.push(spawn(process.execPath, [join(repoRoot, 'test/bench/noop-ext-proc.ts')], { env: { ...process.env, PORT: String(noopPort) }, stdio: 'ignore' }));
  writeFileSync(join(work, 'direct.json'), JSON.stringify(directEnvoyConfig(directPort, floorPort, directAdmin, upstreamPort, noopPort)));
  children.push(spawn(envoyBinary(), ['-c', join(work, 'direct.json'), '--base-id', String(directAdmin), '--concurrency', '2', '--log-level', 'error'], { stdio: 'ignore' }));
  const gateway = await startGateway({ dataDir: join(work, 'data'), ports, demoUpstreams: false, logDir: join(work, 'logs') });
  try {
    await waitHttp(`http://127.0.0.1:${upstreamPort}/api/items/42`);
    await waitHttp(`http://127.0.0.1:${directPort}/personas/bench/bench-rest/items/42`);
    await waitHttp(`http://127.0.0.1:${floorPort}/personas/bench/bench-rest/items/42`);
    const grants = [
      { upstream: 'bench-mcp', tools: [{ name: 'read_ticket', when: "args.id != ''" }, { name: 'read_thread', when: "args.id != ''" }] },
      { upstream: 'bench-rest', operations: [{ method: 'GET', path: '/items/{id}' }] },
    ];
    const applied = await adminRequest(gateway, 'POST', '/v1/apply', {
      documents: [
        { kind: 'Upstream', name: 'bench-mcp', protocol: 'mcp', url: `http://127.0.0.1:${upstreamPort}/mcp` },
        { kind: 'Upstream', name: 'bench-rest', protocol: 'rest', url: `http://127.0.0.1:${upstreamPort}/api` },
        { kind: 'Persona', name: 'bench', description: 'Benchmark persona: two tools, one operation.', grants },
        {
          kind: 'Persona',
          name: 'bench-dlp',
          description: 'The same grants, with every compliance profile of data protection on.',
          grants,
          dataProtection: { profiles: ['pci-dss', 'hipaa', 'soc2', 'gdpr-pii', 'secrets'] },
        },
      ],
    });
    if (applied.status !== 200) throw new Error(`bench config rejected: ${JSON.stringify(applied.body)}`);
    const token = (await adminRequest(gateway, 'POST', '/v1/personas/bench/credentials', { agent: 'bench-agent' })).body.token as string;
    const issued = await adminRequest(gateway, 'POST', '/v1/personas/bench-dlp/credentials', { agent: 'bench-dlp-agent' });
    await waitForEnvoyVersion(gateway, issued.body.version as number);
    const dlpToken = issued.body.token as string;

    const mcpCall = (tool: string, args: unknown) => JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: tool, arguments: args } });
    const direct = `http://127.0.0.1:${directPort}`;
    const floor = `http://127.0.0.1:${floorPort}`;
    const plan: { workload: Workload; targets: Target[] }[] = [
      {
        workload: { name: 'mcp-tools-call', method: 'POST', path: '/personas/bench/bench-mcp', body: mcpCall('read_ticket', { id: '42' }) },
        targets: [
          { label: 'direct', baseUrl: direct, token: null },
          { label: 'floor (no-op ext_proc)', baseUrl: floor, token: null },
          { label: 'Mandate', baseUrl: gateway.gatewayUrl, token },
        ],
      },
      {
        workload: { name: 'rest-get', method: 'GET', path: '/personas/bench/bench-rest/items/42' },
        targets: [
          { label: 'direct', baseUrl: direct, token: null },
          { label: 'floor (no-op ext_proc)', baseUrl: floor, token: null },
          { label: 'Mandate', baseUrl: gateway.gatewayUrl, token },
        ],
      },
      {
        workload: { name: 'mcp-4kib', method: 'POST', path: '/personas/bench-dlp/bench-mcp', body: mcpCall('read_thread', fourKibArguments()) },
        targets: [
          { label: 'direct', baseUrl: direct, token: null },
          { label: 'floor (no-op ext_proc)', baseUrl: floor, token: null },
          { label: 'Mandate, no data protection', baseUrl: gateway.gatewayUrl, token, path: '/personas/bench/bench-mcp' },
          { label: 'Mandate + data protection', baseUrl: gateway.gatewayUrl, token: dlpToken },
        ],
      },
    ];
    // Warm every path (connections, JIT, the DLP engine), and check that data protection really acts.
    for (const { workload, targets } of plan) {
      for (const target of targets) {
        for (let i = 0; i < 200; i++) {
          const r = await fetch(`${target.baseUrl}${target.path ?? workload.path}`, {
            method: workload.method,
            headers: { ...(target.token ? { authorization: `Bearer ${target.token}` } : {}), 'content-type': 'application/json' },
            ...(workload.body ? { body: workload.body } : {}),
          });
          const text = await r.text();
          if (r.status !== 200) throw new Error(`${workload.name} via ${target.label} answered ${r.status}: ${text}`);
          if (i === 0 && target.token === dlpToken && (text.includes('4539 1488 0343 6467') || !text.includes('**** **** **** 6467'))) {
            throw new Error(`data protection did not mask the card in the 4 KiB result: ${text.slice(0, 300)}`);
          }
        }
      }
    }
    const rows: string[] = [];
    for (const { workload, targets } of plan) {
      let base: Measured | null = null;
      for (const target of targets) {
        const m = await measure(tools, target, workload, work);
        base ??= m;
        const added = target.label === 'direct' ? '—' : `+${(m.p50Ms - base.p50Ms).toFixed(2)} / +${(m.p99Ms - base.p99Ms).toFixed(2)}`;
        rows.push(
          `| ${workload.name} | ${target.label} | ${m.throughput.toFixed(0)} | ${((m.throughput / base.throughput) * 100).toFixed(0)}% | ${m.p50Ms.toFixed(2)} / ${m.p99Ms.toFixed(2)} | ${added} | ${(m.success * 100).toFixed(1)}% |`,
        );
        process.stderr.write(`${rows[rows.length - 1]}\n`);
      }
    }
    return [
      `Command: \`npm run bench\` (gateway part: \`sh deploy/bootstrap.sh node test/bench/run.ts gateway\`), ${seconds} s per measurement, wrk with 1 thread and ${connections} connections for throughput, vegeta at a fixed ${rate} req/s for latency. Everything (both Envoys with 2 workers each, ext_proc, the no-op ext_proc, the control plane, the upstream and the load generator) shares the machine's cores; 1-minute load average before the run: ${loadBefore.toFixed(2)}, after: ${loadavg()[0]!.toFixed(2)}.`,
      '',
      `| workload | path | req/s (wrk) | of direct | p50 / p99 ms at ${rate} req/s | added p50 / p99 ms vs direct | success at ${rate} req/s |`,
      '|---|---|---:|---:|---:|---:|---:|',
      ...rows,
    ].join('\n');
  } finally {
    await gateway.stop();
    for (const child of children) child.kill('SIGTERM');
  }
}
