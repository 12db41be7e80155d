// A real NATS server with JetStream on a free loopback port, for the tests and
// benchmarks that run Mandate scaled out. deploy/run-tests.sh installs Debian's
// nats-server. stop() and start() again keep the port and the JetStream store,
// so a test can take NATS away and bring it back.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitForListener } from '../../deploy/gateway-processes.ts';

export interface NatsServer {
  url: string;
  port: number;
  start(): Promise<void>;
  /** SIGKILL by default: the abrupt loss a replica must survive. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Stops the server and deletes its store. */
  dispose(): Promise<void>;
}

/** Why NATS tests cannot run here, or null when nats-server is on PATH. */
export function natsServerMissing(): string | null {
  return spawnSync('nats-server', ['--version']).error ? 'nats-server binary not found on PATH (deploy/run-tests.sh installs it)' : null;
}

export async function startNatsServer(): Promise<NatsServer> {
  const port = await freePort();
  const storeDir = mkdtempSync(join(tmpdir(), 'mandate-nats-'));
  let child: ChildProcess | null = null;
  const server: NatsServer = {
    url: `nats://127.0.0.1:${port}`,
    port,
    async start() {
      const started = spawn('nats-server', ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', storeDir], { stdio: 'ignore' });
      child = started;
      let spawnError: string | null = null;
      started.once('error', (error) => (spawnError = `nats-server could not start: ${error.message}`));
      await waitForListener(port, 'nats-server', 10_000, () => spawnError);
    },
    async stop(signal = 'SIGKILL') {
      const running = child;
      if (!running || running.exitCode !== null || running.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => running.once('exit', () => resolve()));
      running.kill(signal);
      await exited;
    },
    async dispose() {
      await server.stop('SIGTERM');
      rmSync(storeDir, { recursive: true, force: true });
    },
  };
  await server.start();
  return server;
}
