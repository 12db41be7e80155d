// Starts the real Envoy binary (installed by deploy/bootstrap.sh) with the
// bootstrap in this folder, pointed at a given control plane, and waits until
// its admin endpoint answers.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { envoyChannelTransportSocket, type EnvoyChannelTls } from '../config/grpc-tls.ts';

export interface EnvoyOptions {
  xds: { address: string; port: number };
  adminPort: number;
  nodeId: string;
  /** TLS to the control plane's ADS server (MANDATE_ENVOY_XDS_*); absent: plain gRPC. */
  xdsTls?: EnvoyChannelTls | null;
  /**
   * The heap (bytes) the overload manager measures Envoy's against (MANDATE_ENVOY_MAX_HEAP_MIB, see
   * config/envoy-memory.ts); absent: the bootstrap's own value.
   */
  maxHeapBytes?: number;
  /** Where Envoy's own log and access log go; inherit prints them. */
  logFile?: string;
  baseId?: number;
}

export interface EnvoyProcess {
  child: ChildProcess;
  adminUrl: string;
  stop(): Promise<void>;
}

export const bootstrapPath = fileURLToPath(new URL('./bootstrap.yaml', import.meta.url));

export function envoyBinary(): string {
  const bin = process.env.MANDATE_ENVOY_BIN;
  if (!bin) throw new Error('MANDATE_ENVOY_BIN is not set: run through deploy/bootstrap.sh (npm start / npm test), which installs Envoy');
  return bin;
}

export function renderBootstrap(options: EnvoyOptions): Record<string, unknown> {
  const bootstrap = parse(readFileSync(bootstrapPath, 'utf8')) as {
    node: { id: string };
    static_resources: { clusters: { load_assignment: { endpoints: { lb_endpoints: { endpoint: { address: { socket_address: { address: string; port_value: number } } } }[] }[] } }[] };
    admin: { address: { socket_address: { port_value: number } } };
    overload_manager?: { resource_monitors?: { name: string; typed_config: { max_heap_size_bytes?: number } }[] };
  };
  bootstrap.node.id = options.nodeId;
  const socket = bootstrap.static_resources.clusters[0]!.load_assignment.endpoints[0]!.lb_endpoints[0]!.endpoint.address.socket_address;
  socket.address = options.xds.address;
  socket.port_value = options.xds.port;
  if (options.xdsTls) (bootstrap.static_resources.clusters[0] as Record<string, unknown>).transport_socket = envoyChannelTransportSocket(options.xdsTls);
  bootstrap.admin.address.socket_address.port_value = options.adminPort;
  // Every Envoy Mandate starts protects its heap: the bootstrap must keep its fixed_heap monitor.
  const heap = bootstrap.overload_manager?.resource_monitors?.find((m) => m.name === 'envoy.resource_monitors.fixed_heap');
  if (!heap) throw new Error(`${bootstrapPath} has no envoy.resource_monitors.fixed_heap in overload_manager.resource_monitors`);
  if (options.maxHeapBytes !== undefined) heap.typed_config.max_heap_size_bytes = options.maxHeapBytes;
  return bootstrap as unknown as Record<string, unknown>;
}

export async function startEnvoy(options: EnvoyOptions): Promise<EnvoyProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'mandate-envoy-'));
  const configPath = join(dir, 'bootstrap.json');
  writeFileSync(configPath, JSON.stringify(renderBootstrap(options)));
  const args = ['-c', configPath, '--base-id', String(options.baseId ?? options.adminPort), '--log-level', 'warn', '--concurrency', '2', '--drain-time-s', '5'];
  const child = spawn(envoyBinary(), args, { stdio: ['ignore', 'pipe', 'pipe'] });
  if (options.logFile) {
    const out = createWriteStream(options.logFile, { flags: 'a' });
    child.stdout!.pipe(out, { end: false });
    child.stderr!.pipe(out, { end: false });
    child.once('close', () => out.end());
  } else {
    child.stdout!.pipe(process.stdout);
    child.stderr!.pipe(process.stderr);
  }
  const adminUrl = `http://127.0.0.1:${options.adminPort}`;
  // The rendered bootstrap lives as long as this Envoy.
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve())).then(() => rmSync(dir, { recursive: true, force: true }));
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`Envoy exited with code ${child.exitCode} during start (log: ${options.logFile ?? 'stdout'})`);
    try {
      const response = await fetch(`${adminUrl}/ready`);
      if (response.status === 200 || response.status === 503) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error('Envoy admin endpoint did not come up within 20 s');
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    child,
    adminUrl,
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
    },
  };
}
