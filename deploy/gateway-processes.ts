// Starts a whole Mandate gateway as separate processes, the way it runs in
// production on one machine: control plane, ext_proc, real Envoy, and
// optionally the demo upstreams. Used by `npm start` and the integration tests.
import { randomBytes } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { configuredToken } from '../config/configured-token.ts';
import { envoyMaxHeapBytesFromEnv } from '../config/envoy-memory.ts';
import { envoyChannelTlsFromEnv } from '../config/grpc-tls.ts';
import { startEnvoy, type EnvoyProcess } from '../envoy/run-envoy.ts';

export const repoRoot = fileURLToPath(new URL('..', import.meta.url));

export interface GatewayPorts {
  gateway: number;
  xds: number;
  admin: number;
  extProc: number;
  extProcHealth: number;
  envoyAdmin: number;
  mcpUpstream: number;
  restUpstream: number;
}

export interface Gateway {
  ports: GatewayPorts;
  dataDir: string;
  adminUrl: string;
  gatewayUrl: string;
  adminToken: string;
  envoy: EnvoyProcess;
  processes: Map<string, ChildProcess>;
  /** Health ports of the ext_proc replicas, replica 0 first. */
  extProcHealthPorts: number[];
  /**
   * Control-plane replicas, replica 0 first: the one Envoy and ext_proc follow (its admin API is
   * adminUrl). Further replicas share its config over NATS; nothing attaches to them.
   */
  controlPlanes: ControlPlaneReplica[];
  /** Stops one process (kill -9 with hard) and returns when it has exited. */
  stopProcess(name: string, hard?: boolean): Promise<void>;
  startExtProc(): Promise<void>;
  stop(): Promise<void>;
}

export interface ControlPlaneReplica {
  name: string;
  dataDir: string;
  adminUrl: string;
  adminToken: string;
  xdsPort: number;
}

/**
 * Ports this process handed out. A port is free when chosen and bound only later, so the kernel can
 * offer the same one again to the next call: two services of one gateway would then share a port (the
 * second fails to bind, and its traffic reaches the first).
 */
const handedOut = new Set<number>();

export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = createServer();
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const address = server.address();
        const chosen = typeof address === 'object' && address ? address.port : 0;
        server.close(() => resolve(chosen));
      });
    });
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    return port;
  }
}

/**
 * Returns once something accepts TCP connections on 127.0.0.1:port. `failure` says why waiting is
 * pointless (the process exited), or null; `name` goes into the time-out message.
 */
export async function waitForListener(port: number, name: string, timeoutMs: number, failure: () => string | null): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const failed = failure();
    if (failed !== null) throw new Error(failed);
    const up = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (up) return;
    if (Date.now() > deadline) throw new Error(`${name} did not listen within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function choosePorts(fixed?: Partial<GatewayPorts>): Promise<GatewayPorts> {
  const ports = {} as GatewayPorts;
  for (const key of ['gateway', 'xds', 'admin', 'extProc', 'extProcHealth', 'envoyAdmin', 'mcpUpstream', 'restUpstream'] as const) {
    ports[key] = fixed?.[key] ?? (await freePort());
  }
  return ports;
}

async function waitFor(url: string, timeoutMs: number, accept: (status: number) => boolean = (s) => s === 200): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const response = await fetch(url);
      await response.arrayBuffer();
      if (accept(response.status)) return;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`${url} did not become ready within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface GatewayOptions {
  dataDir: string;
  ports: GatewayPorts;
  demoUpstreams: boolean;
  logDir: string;
  /** ext_proc replicas behind Envoy (default 1); with more than one, pass natsUrl so they share behaviour state. */
  extProcReplicas?: number;
  /** Control-plane replicas (default 1); with more than one, pass natsUrl so they share config. */
  controlPlaneReplicas?: number;
  /** Scaled out: ext_proc replicas and control-plane replicas each share their state over this NATS server. */
  natsUrl?: string;
  /** More environment for every Mandate process (e.g. MANDATE_OTLP_ENDPOINT). */
  env?: Record<string, string>;
}

export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  const { ports, dataDir } = options;
  // Replica 0 uses the named ports; further replicas get their own gRPC and health ports and audit directory.
  const replicas = [{ grpc: ports.extProc, health: ports.extProcHealth }];
  for (let i = 1; i < (options.extProcReplicas ?? 1); i++) replicas.push({ grpc: await freePort(), health: await freePort() });
  mkdirSync(dataDir, { recursive: true });
  mkdirSync(options.logDir, { recursive: true });
  const processes = new Map<string, ChildProcess>();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    MANDATE_DATA_DIR: dataDir,
    MANDATE_XDS_LISTEN: `127.0.0.1:${ports.xds}`,
    MANDATE_ADMIN_LISTEN: `127.0.0.1:${ports.admin}`,
    MANDATE_GATEWAY_LISTEN: `127.0.0.1:${ports.gateway}`,
    MANDATE_EXT_PROC_ENDPOINTS: replicas.map((r) => `127.0.0.1:${r.grpc}`).join(','),
    MANDATE_CONTROL_PLANE_URL: `http://127.0.0.1:${ports.admin}`,
    ...(options.natsUrl ? { MANDATE_NATS_URL: options.natsUrl } : {}),
    // Control-plane replicas share their tokens.
    ...((options.controlPlaneReplicas ?? 1) > 1
      ? {
          MANDATE_ADMIN_TOKEN: randomBytes(32).toString('base64url'),
          MANDATE_INTERNAL_TOKEN: randomBytes(32).toString('base64url'),
        }
      : {}),
    ...options.env,
  };
  // Envoy's settings are checked before anything starts: a bad one stops the gateway with its code.
  const envoyXdsTls = envoyChannelTlsFromEnv(env, 'MANDATE_ENVOY_XDS');
  const envoyMaxHeapBytes = envoyMaxHeapBytesFromEnv(env);
  // Scaled out, the replicas need the keys they share, provisioned as an operator would: secret files every
  // replica reads (kept in the data dir, so restarts keep them; the shared config history is signed with
  // one). Keys given in the environment win. ext_proc: the data-flow key; the control plane: the config
  // secrets key, which authenticates the revisions shared on NATS and seals inline secrets.
  if (options.natsUrl && !env.MANDATE_FLOW_KEY && !env.MANDATE_FLOW_KEY_FILE) env.MANDATE_FLOW_KEY_FILE = provisionKeyFile(dataDir, 'flow-key');
  if (options.natsUrl && !env.MANDATE_CONFIG_SECRETS_KEY && !env.MANDATE_CONFIG_SECRETS_KEY_FILE) env.MANDATE_CONFIG_SECRETS_KEY_FILE = provisionKeyFile(dataDir, 'config-secrets-key');
  const launch = (name: string, args: string[], extraEnv: Record<string, string> = {}) => {
    const child = spawn(process.execPath, args, { cwd: repoRoot, env: { ...env, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
    const log = createWriteStream(join(options.logDir, `${name}.log`), { flags: 'a' });
    child.stdout!.pipe(log, { end: false });
    child.stderr!.pipe(log, { end: false });
    // Two sources share one file: end it once both have closed, not when the first ends.
    child.once('close', () => log.end());
    processes.set(name, child);
    return child;
  };
  const stopProcess = async (name: string, hard = false) => {
    const child = processes.get(name);
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill(hard ? 'SIGKILL' : 'SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };

  const startReplica = async (index: number) => {
    const replica = replicas[index]!;
    launch(index === 0 ? 'ext-proc' : `ext-proc-${index}`, [join(repoRoot, 'ext-proc/main.ts')], {
      MANDATE_EXT_PROC_LISTEN: `127.0.0.1:${replica.grpc}`,
      MANDATE_EXT_PROC_HEALTH_LISTEN: `127.0.0.1:${replica.health}`,
      MANDATE_REPLICA_ID: `replica-${index}`,
      ...(index === 0 ? {} : { MANDATE_AUDIT_DIR: join(dataDir, `audit-${index}`) }),
    });
    await waitFor(`http://127.0.0.1:${replica.health}/healthz`, 30_000);
  };
  const startExtProc = () => startReplica(0);
  const controlPlanes: ControlPlaneReplica[] = [];
  let envoy: EnvoyProcess | undefined;
  try {
    if (options.demoUpstreams) {
      launch('mcp-upstream', [join(repoRoot, 'node_modules/@modelcontextprotocol/server-everything/dist/index.js'), 'streamableHttp'], { PORT: String(ports.mcpUpstream) });
      launch('rest-upstream', [join(repoRoot, 'deploy/demo/tickets-api.ts')], { PORT: String(ports.restUpstream) });
    }
    // Control-plane replica 0 uses the named ports and data dir; further replicas get their own.
    for (let index = 0; index < (options.controlPlaneReplicas ?? 1); index++) {
      const name = index === 0 ? 'xds-server' : `xds-server-${index}`;
      const replicaDir = index === 0 ? dataDir : join(dataDir, `control-plane-${index}`);
      mkdirSync(replicaDir, { recursive: true });
      const admin = index === 0 ? ports.admin : await freePort();
      const xds = index === 0 ? ports.xds : await freePort();
      launch(name, [join(repoRoot, 'xds-server/main.ts')], {
        MANDATE_DATA_DIR: replicaDir,
        MANDATE_XDS_LISTEN: `127.0.0.1:${xds}`,
        MANDATE_ADMIN_LISTEN: `127.0.0.1:${admin}`,
        ...(options.natsUrl ? { MANDATE_REPLICA_ID: `control-plane-${index}` } : {}),
      });
      await waitFor(`http://127.0.0.1:${admin}/healthz`, 30_000);
      controlPlanes.push({ name, dataDir: replicaDir, adminUrl: `http://127.0.0.1:${admin}`, adminToken: configuredToken(env, 'MANDATE_ADMIN_TOKEN') ?? readFileSync(join(replicaDir, 'admin-token'), 'utf8').trim(), xdsPort: xds });
    }
    for (let i = 0; i < replicas.length; i++) await startReplica(i);
    envoy = await startEnvoy({
      xds: { address: '127.0.0.1', port: ports.xds },
      xdsTls: envoyXdsTls,
      maxHeapBytes: envoyMaxHeapBytes,
      adminPort: ports.envoyAdmin,
      nodeId: 'mandate-gateway-1',
      logFile: join(options.logDir, 'envoy.log'),
    });
    if (options.demoUpstreams) {
      await waitFor(`http://127.0.0.1:${ports.restUpstream}/api/tickets`, 30_000);
      await waitFor(`http://127.0.0.1:${ports.mcpUpstream}/mcp`, 30_000, (s) => s > 0);
    }
  } catch (error) {
    // Leave nothing running behind a gateway that failed to start.
    await envoy?.stop();
    for (const name of [...processes.keys()].reverse()) await stopProcess(name);
    throw error;
  }
  const adminToken = controlPlanes[0]!.adminToken;
  const started = envoy;
  return {
    ports,
    dataDir,
    adminUrl: `http://127.0.0.1:${ports.admin}`,
    gatewayUrl: `http://127.0.0.1:${ports.gateway}`,
    adminToken,
    envoy: started,
    processes,
    extProcHealthPorts: replicas.map((r) => r.health),
    controlPlanes,
    stopProcess,
    startExtProc,
    async stop() {
      await started.stop();
      for (const name of [...processes.keys()].reverse()) await stopProcess(name);
    },
  };
}

/** A key file in the data dir: made once (32 random bytes, base64, mode 0600), then kept. */
function provisionKeyFile(dataDir: string, name: string): string {
  const file = join(dataDir, name);
  try {
    writeFileSync(file, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  return file;
}

/** Admin API call with the admin token; throws with the problem's code on an error status. */
export async function adminRequest(gateway: Pick<Gateway, 'adminUrl' | 'adminToken'>, method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<{ status: number; body: any }> {
  const response = await fetch(`${gateway.adminUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${gateway.adminToken}`, ...(body !== undefined ? { 'content-type': contentType } : {}) },
    ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
  });
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: response.status, body: parsed };
}

/** Waits until Envoy has ACKed routes built from at least this config version. */
export async function waitForEnvoyVersion(gateway: Pick<Gateway, 'adminUrl' | 'adminToken'>, version: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const status = await adminRequest(gateway, 'GET', '/v1/status');
    const nodes = (status.body?.nodes ?? []) as { configVersion: number | null; resources: Record<string, { sentVersion: string | null; ackedVersion: string | null }> }[];
    const routes = nodes[0]?.resources.routes;
    if (nodes[0] && (nodes[0].configVersion ?? 0) >= version && routes?.ackedVersion && routes.ackedVersion === routes.sentVersion) return;
    if (Date.now() > deadline) throw new Error(`Envoy did not ACK config version ${version} within ${timeoutMs} ms: ${JSON.stringify(status.body)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
