// A real NATS server with JetStream on a free loopback port, for the tests and
// benchmarks that run Mandate scaled out. deploy/run-tests.sh installs Debian's
// nats-server. stop() and start() again keep the port and the JetStream store,
// so a test can take NATS away and bring it back. Locked down (TLS, users), the
// server is configured through a file, as a deployment's would be.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitForListener } from '../../deploy/gateway-processes.ts';
import { natsSettingsFromEnv, type NatsSettings } from '../../config/nats-connection.ts';

export interface NatsServerOptions {
  /** TLS required of every client; with clientCaFile, clients must also present a certificate that CA signed. */
  tls?: { certFile: string; keyFile: string; clientCaFile?: string };
  /** Only these users may connect: a user and password, or an NKey (its public key, U...). */
  users?: ({ user: string; password: string } | { nkey: string })[];
}

export interface NatsServer {
  /** nats:// or, with TLS, tls:// (no credentials: those go in MANDATE_NATS_* files). */
  url: string;
  port: number;
  /** The connection settings of a client given only the URL (MANDATE_NATS_URL). */
  settings: NatsSettings;
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

export async function startNatsServer(options: NatsServerOptions = {}): Promise<NatsServer> {
  const port = await freePort();
  const storeDir = mkdtempSync(join(tmpdir(), 'mandate-nats-'));
  const locked = options.tls !== undefined || options.users !== undefined;
  const configFile = join(storeDir, 'nats-server.conf');
  if (locked) {
    mkdirSync(join(storeDir, 'jetstream'));
    writeFileSync(configFile, natsServerConfig(port, join(storeDir, 'jetstream'), options), { mode: 0o600 });
  }
  const args = locked ? ['-c', configFile] : ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', storeDir];
  const url = `${options.tls ? 'tls' : 'nats'}://127.0.0.1:${port}`;
  let child: ChildProcess | null = null;
  const server: NatsServer = {
    url,
    port,
    settings: natsSettingsFromEnv({ MANDATE_NATS_URL: url })!,
    async start() {
      const started = spawn('nats-server', args, { stdio: 'ignore' });
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

/** nats-server's configuration file (strings quoted as JSON, which its parser reads). */
function natsServerConfig(port: number, storeDir: string, options: NatsServerOptions): string {
  const lines = [`listen: "127.0.0.1:${port}"`, `jetstream { store_dir: ${JSON.stringify(storeDir)} }`];
  if (options.tls) {
    const { certFile, keyFile, clientCaFile } = options.tls;
    const verify = clientCaFile ? ` ca_file: ${JSON.stringify(clientCaFile)}, verify: true,` : '';
    lines.push(`tls { cert_file: ${JSON.stringify(certFile)}, key_file: ${JSON.stringify(keyFile)},${verify} timeout: 2 }`);
  }
  if (options.users) {
    const users = options.users.map((u) => ('nkey' in u ? `{ nkey: ${JSON.stringify(u.nkey)} }` : `{ user: ${JSON.stringify(u.user)}, password: ${JSON.stringify(u.password)} }`));
    lines.push(`authorization { users: [ ${users.join(', ')} ] }`);
  }
  return `${lines.join('\n')}\n`;
}
