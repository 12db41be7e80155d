// Gateway benchmark: the same load through Envoy straight to the upstream (the
// limit) and through Envoy + Mandate's ext_proc with the policy on, in one run.
//   - throughput: wrk, closed loop, fixed connections, for a fixed time
//   - latency at a fixed request rate: vegeta (open loop), p50/p99
// Workloads: an MCP tools/call (JSON-RPC POST, body inspected) and a REST GET
// (headers only). Prints a markdown section for docs/benchmarks.md.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { envoyBinary } from '../../envoy/run-envoy.ts';
import { adminRequest, choosePorts, freePort, repoRoot, startGateway, waitForEnvoyVersion } from '../../deploy/gateway-processes.ts';

const vegetaVersion = 'v12.13.0';
const seconds = Number(process.env.BENCH_SECONDS ?? 10);
const rate = Number(process.env.BENCH_RATE ?? 1000);
const connections = Number(process.env.BENCH_CONNECTIONS ?? 32);

function ensureTools(): { wrk: string; vegeta: string } {
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

async function waitHttp(url: string): Promise<void> {
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
  path: string;
  body?: string;
}

interface Measured {
  throughput: number;
  p50Ms: number;
  p99Ms: number;
  success: number;
}

function measure(tools: { wrk: string; vegeta: string }, baseUrl: string, workload: Workload, token: string | null, work: string): Measured {
  const headers: Record<string, string> = { ...(workload.body ? { 'content-type': 'application/json' } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}) };
  const lua = join(work, `${workload.name}-${token ? 'mandate' : 'direct'}.lua`);
  writeFileSync(
    lua,
    [`wrk.method = "${workload.method}"`, ...(workload.body ? [`wrk.body = '${workload.body}'`] : []), ...Object.entries(headers).map(([k, v]) => `wrk.headers["${k}"] = "${v}"`)].join('\n'),
  );
  const wrkOut = execFileSync(tools.wrk, ['-t1', `-c${connections}`, `-d${seconds}s`, '-s', lua, `${baseUrl}${workload.path}`], { encoding: 'utf8' });
  const throughput = Number(/Requests\/sec:\s+([\d.]+)/.exec(wrkOut)?.[1] ?? 0);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(wrkOut)?.[1] ?? 0);
  if (non2xx > 0) throw new Error(`${workload.name}: ${non2xx} non-2xx responses under wrk:\n${wrkOut}`);
  const target = JSON.stringify({
    method: workload.method,
    url: `${baseUrl}${workload.path}`,
    header: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, [v]])),
    ...(workload.body ? { body: Buffer.from(workload.body).toString('base64') } : {}),
  });
  const attack = spawnSync(tools.vegeta, ['attack', '-format=json', `-rate=${rate}/s`, `-duration=${seconds}s`, '-max-workers=256'], { input: `${target}\n`, maxBuffer: 1 << 30 });
  const report = JSON.parse(execFileSync(tools.vegeta, ['report', '-type=json'], { input: attack.stdout, encoding: 'utf8' })) as {
    latencies: { '50th': number; '99th': number };
    success: number;
  };
  return { throughput, p50Ms: report.latencies['50th'] / 1e6, p99Ms: report.latencies['99th'] / 1e6, success: report.success };
}

function directEnvoyConfig(listenPort: number, adminPort: number, upstreamPort: number): unknown {
  const route = (prefix: string, rewrite: string) => ({ match: { path_separated_prefix: prefix }, route: { cluster: 'upstream', prefix_rewrite: rewrite } });
  return {
    static_resources: {
      listeners: [
        {
          name: 'direct',
          address: { socket_address: { address: '127.0.0.1', port_value: listenPort } },
          filter_chains: [
            {
              filters: [
                {
                  name: 'envoy.filters.network.http_connection_manager',
                  typed_config: {
                    '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
                    stat_prefix: 'direct',
                    route_config: { virtual_hosts: [{ name: 'direct', domains: ['*'], routes: [route('/personas/bench/bench-mcp', '/mcp'), route('/personas/bench/bench-rest', '/api')] }] },
                    http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } }],
                  },
                },
              ],
            },
          ],
        },
      ],
      clusters: [
        {
          name: 'upstream',
          type: 'STATIC',
          connect_timeout: '1s',
          load_assignment: { cluster_name: 'upstream', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: upstreamPort } } } }] }] },
        },
      ],
    },
    admin: { address: { socket_address: { address: '127.0.0.1', port_value: adminPort } } },
  };
}

export async function runGatewayBenchmark(): Promise<string> {
  const tools = ensureTools();
  const work = mkdtempSync(join(tmpdir(), 'mandate-bench-'));
  const ports = await choosePorts();
  const upstreamPort = await freePort();
  const upstream = spawn(process.execPath, [join(repoRoot, 'test/bench/fast-upstream.ts')], { env: { ...process.env, PORT: String(upstreamPort) }, stdio: 'ignore' });
  const directPort = await freePort();
  const directAdmin = await freePort();
  writeFileSync(join(work, 'direct.json'), JSON.stringify(directEnvoyConfig(directPort, directAdmin, upstreamPort)));
  const direct = spawn(envoyBinary(), ['-c', join(work, 'direct.json'), '--base-id', String(directAdmin), '--concurrency', '2', '--log-level', 'error'], { stdio: 'ignore' });
  const gateway = await startGateway({ dataDir: join(work, 'data'), ports, demoUpstreams: false, logDir: join(work, 'logs') });
  try {
    await waitHttp(`http://127.0.0.1:${upstreamPort}/api/items/42`);
    await waitHttp(`http://127.0.0.1:${directPort}/personas/bench/bench-rest/items/42`);
    const applied = await adminRequest(gateway, 'POST', '/v1/apply', {
      documents: [
        { kind: 'Upstream', name: 'bench-mcp', protocol: 'mcp', url: `http://127.0.0.1:${upstreamPort}/mcp` },
        { kind: 'Upstream', name: 'bench-rest', protocol: 'rest', url: `http://127.0.0.1:${upstreamPort}/api` },
        {
          kind: 'Persona',
          name: 'bench',
          description: 'Benchmark persona: one tool, one operation.',
          grants: [
            { upstream: 'bench-mcp', tools: [{ name: 'read_ticket', when: "args.id != ''" }] },
            { upstream: 'bench-rest', operations: [{ method: 'GET', path: '/items/{id}' }] },
          ],
        },
      ],
    });
    if (applied.status !== 200) throw new Error(`bench config rejected: ${JSON.stringify(applied.body)}`);
    const issued = await adminRequest(gateway, 'POST', '/v1/personas/bench/credentials', { agent: 'bench-agent' });
    await waitForEnvoyVersion(gateway, issued.body.version as number);
    const token = issued.body.token as string;
    const workloads: Workload[] = [
      {
        name: 'mcp-tools-call',
        method: 'POST',
        path: '/personas/bench/bench-mcp',
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'read_ticket', arguments: { id: '42' } } }),
      },
      { name: 'rest-get', method: 'GET', path: '/personas/bench/bench-rest/items/42' },
    ];
    // Warm both paths (connections, JIT).
    for (const w of workloads) {
      for (let i = 0; i < 200; i++) {
        const init = { method: w.method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, ...(w.body ? { body: w.body } : {}) };
        const r = await fetch(`${gateway.gatewayUrl}${w.path}`, init);
        if (r.status !== 200) throw new Error(`${w.name} through Mandate answered ${r.status}: ${await r.text()}`);
        await r.arrayBuffer();
        await (await fetch(`http://127.0.0.1:${directPort}${w.path}`, init)).arrayBuffer();
      }
    }
    const rows: string[] = [];
    for (const w of workloads) {
      const d = measure(tools, `http://127.0.0.1:${directPort}`, w, null, work);
      const m = measure(tools, gateway.gatewayUrl, w, token, work);
      rows.push(
        `| ${w.name} | ${d.throughput.toFixed(0)} | ${m.throughput.toFixed(0)} | ${((m.throughput / d.throughput) * 100).toFixed(0)}% | ${d.p50Ms.toFixed(2)} / ${d.p99Ms.toFixed(2)} | ${m.p50Ms.toFixed(2)} / ${m.p99Ms.toFixed(2)} | +${(m.p50Ms - d.p50Ms).toFixed(2)} / +${(m.p99Ms - d.p99Ms).toFixed(2)} | ${(d.success * 100).toFixed(1)}% / ${(m.success * 100).toFixed(1)}% |`,
      );
      process.stderr.write(`${rows[rows.length - 1]}\n`);
    }
    return [
      `Command: \`npm run bench\` (gateway part: \`sh deploy/bootstrap.sh node test/bench/run.ts gateway\`), ${seconds} s per measurement, wrk with 1 thread and ${connections} connections for throughput, vegeta at a fixed ${rate} req/s for latency. Everything (Envoy with 2 workers, ext_proc, control plane, the upstream and the load generator) shares the 2 cores.`,
      '',
      '| workload | direct req/s | Mandate req/s | kept | direct p50 / p99 ms | Mandate p50 / p99 ms | added p50 / p99 ms | success direct / Mandate |',
      '|---|---:|---:|---:|---:|---:|---:|---:|',
      ...rows,
    ].join('\n');
  } finally {
    await gateway.stop();
    direct.kill('SIGTERM');
    upstream.kill('SIGTERM');
  }
}
