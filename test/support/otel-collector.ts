// A real OpenTelemetry Collector for tests: built from the Go module proxy
// (test/support/otel-collector/, upstream OTLP receiver and OTLP/HTTP exporter)
// into .tools/bin on first use, started on loopback, forwarding what it
// received as OTLP/JSON to an HTTP sink the test reads.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..', '..');
const sourceDirectory = join(import.meta.dirname, 'otel-collector');
const binary = join(root, '.tools', 'bin', 'mandate-otelcol');
const stampFile = `${binary}.stamp`;

/** Why the collector cannot be had here (no Go toolchain), or null when it can. */
export function collectorUnavailableReason(): string | null {
  if (existsSync(binary) && readStamp() === sourceStamp()) return null;
  const go = spawnSync('go', ['version'], { encoding: 'utf8' });
  return go.status === 0 ? null : 'Go is not installed: the OpenTelemetry Collector cannot be built (apt-get install golang, or any Go >= 1.24)';
}

/** Builds the collector unless the binary matches the sources. Takes a few minutes the first time (module downloads). */
export function ensureCollector(): string {
  if (existsSync(binary) && readStamp() === sourceStamp()) return binary;
  mkdirSync(join(root, '.tools', 'bin'), { recursive: true });
  const build = spawnSync('go', ['build', '-o', binary, '.'], {
    cwd: sourceDirectory,
    encoding: 'utf8',
    env: { ...process.env, GOFLAGS: '-mod=mod -buildvcs=false' },
    timeout: 15 * 60_000,
  });
  if (build.status !== 0) throw new Error(`building the OpenTelemetry Collector failed: ${build.stderr || build.error?.message}`);
  writeFileSync(stampFile, sourceStamp());
  return binary;
}

function sourceStamp(): string {
  const hash = createHash('sha256');
  for (const file of ['go.mod', 'go.sum', 'main.go']) hash.update(readFileSync(join(sourceDirectory, file)));
  return hash.digest('hex');
}

function readStamp(): string | null {
  try {
    return readFileSync(stampFile, 'utf8');
  } catch {
    return null;
  }
}

/** OTLP/JSON requests the collector forwarded, by signal. */
export interface CollectorSink {
  traces: unknown[];
  logs: unknown[];
}

export interface RunningCollector {
  /** Base URL of the collector's OTLP/HTTP receiver. */
  endpoint: string;
  received: CollectorSink;
  /** Resolves once `accept` is true of what arrived, or rejects after the timeout. */
  waitFor(accept: (received: CollectorSink) => boolean, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startCollector(): Promise<RunningCollector> {
  const executable = ensureCollector();
  const received: CollectorSink = { traces: [], logs: [] };
  const sink: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as unknown;
      if (request.url === '/v1/traces') received.traces.push(body);
      else if (request.url === '/v1/logs') received.logs.push(body);
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
  const sinkPort = (sink.address() as AddressInfo).port;
  const receiverPort = await freePort();
  const directory = mkdtempSync(join(tmpdir(), 'mandate-otelcol-'));
  const config = join(directory, 'collector.yaml');
  writeFileSync(
    config,
    `receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:${receiverPort}
exporters:
  otlphttp:
    endpoint: http://127.0.0.1:${sinkPort}
    encoding: json
    compression: none
    retry_on_failure:
      enabled: false
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlphttp]
    logs:
      receivers: [otlp]
      exporters: [otlphttp]
`,
  );
  const child: ChildProcess = spawn(executable, ['--config', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  const started = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the collector did not start within 30 s:\n${log}`)), 30_000);
    child.stderr!.on('data', (chunk: Buffer) => {
      log += chunk.toString();
      if (log.includes('Everything is ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the collector exited with code ${code}:\n${log}`));
    });
  });
  try {
    await started;
  } catch (error) {
    child.kill('SIGKILL');
    await new Promise<void>((resolve) => sink.close(() => resolve()));
    rmSync(directory, { recursive: true, force: true });
    throw error;
  }
  return {
    endpoint: `http://127.0.0.1:${receiverPort}`,
    received,
    async waitFor(accept, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      while (!accept(received)) {
        if (Date.now() > deadline) throw new Error(`the collector did not forward the expected records within ${timeoutMs} ms (traces ${received.traces.length}, logs ${received.logs.length})`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
      }
      await new Promise<void>((resolve) => sink.close(() => resolve()));
      rmSync(directory, { recursive: true, force: true });
    },
  };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
