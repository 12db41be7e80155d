// Benchmark: how long a config write on control-plane replica A takes to reach
// replica B's policy stream (the snapshot ext_proc follows), with two control-plane
// processes sharing config over a real NATS server; and, as the baseline, a write on
// one control plane without NATS to its own policy stream. Run:
//   sh deploy/bootstrap.sh node test/bench/config-replication.ts [personas] [writes]
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, repoRoot, waitForListener } from '../../deploy/gateway-processes.ts';
import { natsServerMissing, startNatsServer } from '../support/nats-server.ts';
import { policyVersions } from '../support/policy-stream.ts';

const personaCount = Number(process.argv[2] ?? 50);
const writes = Number(process.argv[3] ?? 100);
const missing = natsServerMissing();
if (missing) {
  process.stderr.write(`${missing}\n`);
  process.exit(1);
}

const work = mkdtempSync(join(tmpdir(), 'mandate-bench-config-'));
/** Shared by the replicas: it authenticates the revisions they exchange. */
const configSecretsKey = randomBytes(32).toString('base64');
const nats = await startNatsServer();
const children: ChildProcess[] = [];

interface ControlPlaneProcess {
  adminUrl: string;
  adminToken: string;
  internalToken: string;
}

async function startControlPlane(name: string, natsUrl: string | null): Promise<ControlPlaneProcess> {
  const dataDir = join(work, name);
  mkdirSync(dataDir);
  const admin = await freePort();
  const child = spawn(process.execPath, [join(repoRoot, 'xds-server/main.ts')], {
    cwd: repoRoot,
    env: { ...process.env, MANDATE_DATA_DIR: dataDir, MANDATE_ADMIN_LISTEN: `127.0.0.1:${admin}`, MANDATE_XDS_LISTEN: `127.0.0.1:${await freePort()}`, ...(natsUrl ? { MANDATE_NATS_URL: natsUrl, MANDATE_REPLICA_ID: name, MANDATE_CONFIG_SECRETS_KEY: configSecretsKey } : {}) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let errors = '';
  for (const output of [child.stdout!, child.stderr!]) output.on('data', (chunk: Buffer) => (errors = (errors + chunk.toString()).slice(-2000)));
  await waitForListener(admin, name, 30_000, () => (child.exitCode !== null ? `${name} exited with ${child.exitCode}: ${errors}` : null));
  const secret = (file: string) => readFileSync(join(dataDir, file), 'utf8').trim();
  return { adminUrl: `http://127.0.0.1:${admin}`, adminToken: secret('admin-token'), internalToken: secret('internal-token') };
}

/** Sequential PUTs on `writer`; each is timed until `reader`'s policy stream carries its version. */
async function measure(writer: ControlPlaneProcess, reader: ControlPlaneProcess): Promise<{ committedMs: number[]; propagatedMs: number[] }> {
  const adminHeaders = { authorization: `Bearer ${writer.adminToken}`, 'content-type': 'application/json' };
  const documents: unknown[] = [{ kind: 'Upstream', name: 'tickets', protocol: 'mcp', url: 'http://127.0.0.1:3001/mcp' }];
  for (let i = 0; i < personaCount; i += 1) {
    documents.push({ kind: 'Persona', name: `persona-${i}`, description: `Persona ${i}`, grants: [{ upstream: 'tickets', tools: [{ name: 'get_*' }, { name: 'list_*' }] }] });
  }
  const setup = await fetch(`${writer.adminUrl}/v1/apply`, { method: 'POST', headers: adminHeaders, body: JSON.stringify({ documents }) });
  if (setup.status !== 200) throw new Error(`setup apply failed: ${setup.status} ${await setup.text()}`);

  const stream = await fetch(`${reader.adminUrl}/internal/v1/policy/stream`, { headers: { authorization: `Bearer ${reader.internalToken}` } });
  const versions = policyVersions(stream);
  // The stream starts with the reader's current snapshot; wait until it holds the setup version.
  const setupVersion = ((await setup.json()) as { version: number }).version;
  while ((await versions.next()) < setupVersion);

  const committedMs: number[] = [];
  const propagatedMs: number[] = [];
  for (let i = 0; i < writes; i += 1) {
    const started = performance.now();
    const response = await fetch(`${writer.adminUrl}/v1/personas/persona-0`, {
      method: 'PUT',
      headers: adminHeaders,
      body: JSON.stringify({ description: `edit ${i}`, grants: [{ upstream: 'tickets', tools: [{ name: 'get_*' }] }] }),
    });
    if (response.status !== 200) throw new Error(`PUT failed: ${response.status} ${await response.text()}`);
    const { version } = (await response.json()) as { version: number };
    committedMs.push(performance.now() - started);
    while ((await versions.next()) < version);
    propagatedMs.push(performance.now() - started);
  }
  await versions.close();
  return { committedMs, propagatedMs };
}

const quantile = (values: number[], q: number) => [...values].sort((x, y) => x - y)[Math.min(values.length - 1, Math.floor(q * values.length))]!.toFixed(2);
const line = (label: string, values: number[]) => `${label.padEnd(58)} p50 ${quantile(values, 0.5)} ms  p99 ${quantile(values, 0.99)} ms`;

try {
  const alone = await startControlPlane('control-plane-alone', null);
  const baseline = await measure(alone, alone);
  const a = await startControlPlane('control-plane-a', nats.url);
  const b = await startControlPlane('control-plane-b', nats.url);
  const replicated = await measure(a, b);
  console.log(`${personaCount} personas, ${writes} sequential PUTs of one Persona; every control plane is its own process`);
  console.log(line('one control plane, no NATS: PUT answered', baseline.committedMs));
  console.log(line('one control plane, no NATS: PUT -> its policy stream', baseline.propagatedMs));
  console.log(line('replicas on NATS: PUT on A answered (stream acked)', replicated.committedMs));
  console.log(line('replicas on NATS: PUT on A -> new snapshot on B\'s stream', replicated.propagatedMs));
} finally {
  for (const child of children) {
    if (child.exitCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
  }
  await nats.dispose();
  rmSync(work, { recursive: true, force: true });
}
