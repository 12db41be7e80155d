// Envoy's heap protection (the overload manager in envoy/bootstrap.yaml, sized by
// MANDATE_ENVOY_MAX_HEAP_MIB), through the real Envoy: with the default 1 GiB a gateway at rest is far
// below every threshold and requests pass; with a heap limit Envoy is already over (1 MiB), every
// action is saturated and each new request is refused by Envoy itself with 503 gateway_overloaded,
// before ext_proc or the upstream sees it; with a limit that HTTP/2 bodies held for data protection
// reach (64 MiB), Envoy resets the streams holding them and recovers. The bootstraps Mandate ships pass
// Envoy's own validation.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { connect } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SettingError } from '../config/envoy-memory.ts';
import { choosePorts, freePort, repoRoot, startGateway } from '../deploy/gateway-processes.ts';
import { envoyBinary, renderBootstrap } from '../envoy/run-envoy.ts';
import { startGatewayFixture, type GatewayFixture } from './support/gateway-fixture.ts';

const MiB = 1024 * 1024;
const heapMonitor = 'envoy.resource_monitors.fixed_heap';
const actions = ['reset_high_memory_stream', 'shrink_heap', 'disable_http_keepalive', 'stop_accepting_requests'].map((a) => `envoy.overload_actions.${a}`);

let upstream: Server;
let upstreamPort: number;
/** Request targets the upstream received, oldest first. */
const received: string[] = [];

before(async () => {
  upstreamPort = await freePort();
  upstream = createServer(async (request, response) => {
    received.push(request.url ?? '');
    const chunks: Buffer[] = [];
    try {
      for await (const chunk of request) chunks.push(chunk as Buffer);
    } catch {
      return; // the request was cut
    }
    response.writeHead(200, { 'content-type': 'application/json' }).end(Buffer.concat(chunks).toString('utf8') || '{}');
  });
  await new Promise<void>((resolve) => upstream.listen(upstreamPort, '127.0.0.1', () => resolve()));
});

after(async () => {
  await new Promise<void>((resolve) => (upstream ? upstream.close(() => resolve()) : resolve()));
});

/** A gateway with one REST Persona in front of the test's upstream, and that Persona's token. */
async function gatewayWith(env: Record<string, string>, persona: Record<string, unknown> = {}): Promise<{ gateway: GatewayFixture; token: string }> {
  const gateway = await startGatewayFixture({ demo: false, env });
  try {
    await gateway.apply([
      { kind: 'Upstream', name: 'echo-api', protocol: 'rest', url: `http://127.0.0.1:${upstreamPort}/api`, environment: 'production' },
      { kind: 'Persona', name: 'heap-agent', description: 'One REST operation.', grants: [{ upstream: 'echo-api', operations: [{ method: 'POST', path: '/echo' }] }], ...persona },
    ]);
    return { gateway, token: (await gateway.issueToken('heap-agent', 'heap-agent-1')).token };
  } catch (error) {
    await gateway.stop();
    throw error;
  }
}

/** Envoy's overload statistics (gauges and counters), by name without the `overload.` prefix. */
async function overloadStats(gateway: GatewayFixture): Promise<Record<string, number>> {
  const text = await (await fetch(`${gateway.envoy.adminUrl}/stats?filter=${encodeURIComponent('^overload\\.')}`)).text();
  const stats: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const match = /^overload\.(\S+): (\d+)$/.exec(line.trim());
    if (match) stats[match[1]!] = Number(match[2]);
  }
  return stats;
}

/** The overload manager as Envoy loaded it (the bootstrap in /config_dump). */
async function loadedOverloadManager(gateway: GatewayFixture): Promise<{ resource_monitors: { name: string; typed_config: Record<string, unknown> }[]; actions: { name: string }[] }> {
  const dump = (await (await fetch(`${gateway.envoy.adminUrl}/config_dump`)).json()) as { configs: { '@type': string; bootstrap?: { overload_manager: never } }[] };
  return dump.configs.find((c) => c['@type'].endsWith('.BootstrapConfigDump'))!.bootstrap!.overload_manager;
}

async function post(gateway: GatewayFixture, token: string): Promise<{ status: number; headers: Headers; text: string }> {
  const response = await fetch(`${gateway.gatewayUrl}/personas/heap-agent/echo-api/echo`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ note: 'hello' }),
  });
  return { status: response.status, headers: response.headers, text: await response.text() };
}

describe('with the default MANDATE_ENVOY_MAX_HEAP_MIB (1 GiB)', () => {
  let gateway: GatewayFixture;
  let token: string;
  before(async () => {
    ({ gateway, token } = await gatewayWith({}));
  });
  after(async () => {
    await gateway?.stop();
  });

  test('Envoy watches its heap against 1 GiB beside the connection limit, and has the four heap actions', async () => {
    const manager = await loadedOverloadManager(gateway);
    const monitors = Object.fromEntries(manager.resource_monitors.map((m) => [m.name, m.typed_config]));
    assert.equal(Number(monitors[heapMonitor]?.max_heap_size_bytes), 1024 * MiB);
    assert.equal(Number(monitors['envoy.resource_monitors.global_downstream_max_connections']?.max_active_downstream_connections), 50_000);
    assert.deepEqual(manager.actions.map((a) => a.name).sort(), [...actions].sort());
  });

  test('at rest the heap is far below every threshold: nothing is active and requests pass', async () => {
    const stats = await overloadStats(gateway);
    assert.ok(`${heapMonitor}.pressure` in stats, `no heap pressure statistic: ${JSON.stringify(stats)}`);
    assert.ok(stats[`${heapMonitor}.pressure`]! < 50, `heap pressure ${stats[`${heapMonitor}.pressure`]}%`);
    for (const action of actions) assert.equal(stats[`${action}.scale_percent`], 0, action);
    const before = received.length;
    const extProcBefore = await extProcRequests(gateway);
    for (let i = 0; i < 3; i++) {
      const answer = await post(gateway, token);
      assert.equal(answer.status, 200, answer.text.slice(0, 300));
      assert.equal(answer.headers.get('x-envoy-local-overloaded'), null);
    }
    assert.equal(received.length, before + 3);
    assert.equal(await extProcRequests(gateway), extProcBefore + 3, 'each went through ext_proc');
  });
});

describe('with a heap limit Envoy is already over (MANDATE_ENVOY_MAX_HEAP_MIB=1)', () => {
  let gateway: GatewayFixture;
  let token: string;
  before(async () => {
    ({ gateway, token } = await gatewayWith({ MANDATE_ENVOY_MAX_HEAP_MIB: '1' }));
  });
  after(async () => {
    await gateway?.stop();
  });

  test('the limit reaches Envoy, and every heap action is saturated', async () => {
    const manager = await loadedOverloadManager(gateway);
    assert.equal(Number(manager.resource_monitors.find((m) => m.name === heapMonitor)?.typed_config.max_heap_size_bytes), MiB);
    // The overload manager refreshes every 250 ms; on a busy machine its first reading may still be due.
    let stats = await overloadStats(gateway);
    for (const deadline = Date.now() + 10_000; !(stats[`${heapMonitor}.pressure`]! > 100) && Date.now() < deadline; stats = await overloadStats(gateway)) {
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(stats[`${heapMonitor}.pressure`]! > 100, `heap pressure ${stats[`${heapMonitor}.pressure`]}%`);
    for (const action of actions) assert.equal(stats[`${action}.scale_percent`], 100, action);
    assert.equal(stats['envoy.overload_actions.stop_accepting_requests.active'], 1);
  });

  test('each new request gets Envoy\'s overload answer at once, 503 gateway_overloaded; neither ext_proc nor the upstream sees it', async () => {
    const before = received.length;
    const extProcBefore = await extProcRequests(gateway);
    for (const credential of [token, 'not-a-token']) {
      const started = Date.now();
      const answer = await post(gateway, credential);
      assert.equal(answer.status, 503, answer.text.slice(0, 300));
      assert.ok(Date.now() - started < 2000, `answered after ${Date.now() - started} ms`);
      assert.match(answer.headers.get('content-type') ?? '', /^application\/problem\+json/);
      assert.equal(answer.headers.get('x-envoy-local-overloaded'), 'true');
      const problem = JSON.parse(answer.text) as { type: string; status: number | string; code: string; detail: string };
      assert.deepEqual([problem.type, Number(problem.status), problem.code, problem.detail], ['https://mandate.dev/errors/gateway_overloaded', 503, 'gateway_overloaded', 'overload']);
      // Keep-alive is off while the heap is pressed: Envoy closes the connection after its answer.
      assert.equal(answer.headers.get('connection'), 'close');
    }
    assert.equal(received.length, before, 'nothing reached the upstream');
    assert.equal(await extProcRequests(gateway), extProcBefore, 'ext_proc was not asked');
    const counters = await (await fetch(`${gateway.envoy.adminUrl}/stats?filter=${encodeURIComponent('^http\\.mandate_gateway\\.downstream_rq_overload_close$')}`)).text();
    assert.match(counters, /downstream_rq_overload_close: [2-9]/);
  });
});

describe('with a heap limit buffered bodies can reach (MANDATE_ENVOY_MAX_HEAP_MIB=64, a Persona with data protection)', () => {
  let gateway: GatewayFixture;
  let token: string;
  before(async () => {
    ({ gateway, token } = await gatewayWith({ MANDATE_ENVOY_MAX_HEAP_MIB: '64' }, { dataProtection: { profiles: ['pci-dss'], defaultAction: 'mask' } }));
  });
  after(async () => {
    await gateway?.stop();
  });

  test('HTTP/2 streams holding the bodies Envoy buffers for data protection are reset as the heap nears the limit; then requests pass again', async () => {
    const before = received.length;
    const session = connect(gateway.gatewayUrl, { maxSessionMemory: 1024 });
    session.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      session.once('remoteSettings', () => resolve());
      session.once('error', reject);
    });
    // 20 streams, each sending 3.9 MB of a JSON body (within the Persona's 4 MiB maxBodyBytes) and never
    // ending it: Envoy holds each body for ext_proc, about 78 MB in all against a 64 MiB heap limit.
    const piece = Buffer.alloc(64 * 1024, 'a');
    const outcomes = Array.from({ length: 20 }, () => {
      const stream = session.request({ ':method': 'POST', ':path': '/personas/heap-agent/echo-api/echo', authorization: `Bearer ${token}`, 'content-type': 'application/json' });
      const outcome = new Promise<{ status: number; rstCode: number }>((resolve) => {
        let status = 0;
        stream.on('response', (headers) => (status = Number(headers[':status'])));
        stream.on('error', () => {});
        stream.on('close', () => resolve({ status, rstCode: stream.rstCode ?? 0 }));
        stream.resume();
      });
      stream.write('{"note":"');
      let sent = 0;
      const write = () => {
        while (sent < 3_900_000 && !stream.destroyed) {
          sent += piece.length;
          if (!stream.write(piece)) {
            stream.once('drain', write);
            return;
          }
        }
      };
      write();
      return outcome;
    });
    try {
      // Streams Envoy resets end without an answer (RST_STREAM); a stream that slipped under the threshold would wait for its body's end.
      const reset = await new Promise<{ status: number; rstCode: number }[]>((resolve) => {
        const done: { status: number; rstCode: number }[] = [];
        const timer = setTimeout(() => resolve(done), 15_000);
        for (const outcome of outcomes) {
          void outcome.then((o) => {
            done.push(o);
            if (done.length === outcomes.length) {
              clearTimeout(timer);
              resolve(done);
            }
          });
        }
      });
      assert.ok(reset.length > 0, 'no stream was reset within 15 s');
      for (const outcome of reset) assert.deepEqual(outcome, { status: 0, rstCode: 2 }, 'reset by Envoy (INTERNAL_ERROR), no answer');
      const counted = await (await fetch(`${gateway.envoy.adminUrl}/stats?filter=${encodeURIComponent('^envoy\\.overload_actions\\.reset_high_memory_stream\\.count$')}`)).text();
      assert.ok(Number(/: (\d+)/.exec(counted)?.[1]) >= reset.length, `Envoy counted its resets: ${counted}`);
    } finally {
      session.destroy();
    }
    assert.equal(received.length, before, 'no body reached the upstream');
    // The buffers are freed: the heap falls back under the thresholds and Envoy takes requests again.
    const deadline = Date.now() + 30_000;
    for (;;) {
      const stats = await overloadStats(gateway);
      if (stats['envoy.overload_actions.stop_accepting_requests.active'] === 0 && stats['envoy.overload_actions.reset_high_memory_stream.scale_percent'] === 0) break;
      assert.ok(Date.now() < deadline, `the heap stayed pressed: ${JSON.stringify(stats)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    const answer = await post(gateway, token);
    assert.equal(answer.status, 200, answer.text.slice(0, 300));
    assert.equal(received.length, before + 1);
  });
});

/** How many ext_proc streams Envoy opened on the agents' listener so far. */
async function extProcRequests(gateway: GatewayFixture): Promise<number> {
  const text = await (await fetch(`${gateway.envoy.adminUrl}/stats?filter=${encodeURIComponent('ext_proc.*streams_started')}`)).text();
  return [...text.matchAll(/: (\d+)/g)].reduce((sum, m) => sum + Number(m[1]), 0);
}

test('a MANDATE_ENVOY_MAX_HEAP_MIB that is not a whole number of MiB stops the gateway before anything starts', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'mandate-heap-'));
  try {
    const started = Date.now();
    await assert.rejects(
      startGateway({ dataDir, ports: await choosePorts(), demoUpstreams: false, logDir: join(dataDir, 'logs'), env: { MANDATE_ENVOY_MAX_HEAP_MIB: '2G' } }),
      (error: unknown) => error instanceof SettingError && error.code === 'envoy_max_heap_invalid' && /MANDATE_ENVOY_MAX_HEAP_MIB .* not "2G"/.test(error.message),
    );
    assert.ok(Date.now() - started < 1000, 'refused without starting the control plane');
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('the bootstraps Mandate ships pass the real Envoy\'s validation: the launcher\'s as rendered, and the compose one', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mandate-validate-'));
  try {
    const rendered = join(dir, 'rendered.json');
    writeFileSync(rendered, JSON.stringify(renderBootstrap({ xds: { address: '127.0.0.1', port: 18000 }, adminPort: 9901, nodeId: 'validate', maxHeapBytes: 1536 * MiB })));
    for (const file of [rendered, join(repoRoot, 'deploy/docker/envoy-bootstrap.yaml')]) {
      const baseId = await freePort();
      const result = await new Promise<{ code: number; output: string }>((resolve) =>
        execFile(envoyBinary(), ['--mode', 'validate', '-c', file, '--base-id', String(baseId), '--log-level', 'error'], (error, stdout, stderr) =>
          resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, output: `${stdout}${stderr}` }),
        ),
      );
      assert.equal(result.code, 0, `${file}: ${result.output}`);
      assert.match(result.output, /OK/, file);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
