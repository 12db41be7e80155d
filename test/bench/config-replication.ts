// Benchmark: how long a config write on control-plane replica A takes to reach
// replica B's policy stream (the snapshot ext_proc follows), with two control-plane
// processes sharing config over a real NATS server. Run:
//   sh deploy/bootstrap.sh node test/bench/config-replication.ts [personas] [writes]
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, repoRoot, waitForListener } from '../../deploy/gateway-processes.ts';
import { natsServerMissing, startNatsServer } from '../support/nats-server.ts';

const personaCount = Number(process.argv[2] ?? 50);
const writes = Number(process.argv[3] ?? 100);
const missing = natsServerMissing();
if (missing) {
  process.stderr.write(`${missing}\n`);
  process.exit(1);
}

const work = mkdtempSync(join(tmpdir(), 'mandate-bench-config-'));
const nats = await startNatsServer();
const children: ChildProcess[] = [];

async function startControlPlane(name: string): Promise<{ adminUrl: string; adminToken: string; internalToken: string }> {
  const dataDir = join(work, name);
  mkdirSync(dataDir);
  const admin = await freePort();
  const child = spawn(process.execPath, [join(repoRoot, 'xds-server/main.ts')], {
    cwd: repoRoot,
    env: { ...process.env, MANDATE_DATA_DIR: dataDir, MANDATE_ADMIN_LISTEN: `127.0.0.1:${admin}`, MANDATE_XDS_LISTEN: `127.0.0.1:${await freePort()}`, MANDATE_NATS_URL: nats.url, MANDATE_REPLICA_ID: name },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let errors = '';
  for (const output of [child.stdout!, child.stderr!]) output.on('data', (chunk: Buffer) => (errors = (errors + chunk.toString()).slice(-2000)));
  await waitForListener(admin, name, 30_000, () => (child.exitCode !== null ? `${name} exited with ${child.exitCode}: ${errors}` : null));
  const secret = (file: string) => readFileSync(join(dataDir, file), 'utf8').trim();
  return { adminUrl: `http://127.0.0.1:${admin}`, adminToken: secret('admin-token'), internalToken: secret('internal-token') };
}

try {
  const a = await startControlPlane('control-plane-a');
  const b = await startControlPlane('control-plane-b');
  const adminHeaders = { authorization: `Bearer ${a.adminToken}`, 'content-type': 'application/json' };

  const documents: unknown[] = [{ kind: 'Upstream', name: 'tickets', protocol: 'mcp', url: 'http://127.0.0.1:3001/mcp' }];
  for (let i = 0; i < personaCount; i += 1) {
    documents.push({ kind: 'Persona', name: `persona-${i}`, description: `Persona ${i}`, grants: [{ upstream: 'tickets', tools: [{ name: 'get_*' }, { name: 'list_*' }] }] });
  }
  const setup = await fetch(`${a.adminUrl}/v1/apply`, { method: 'POST', headers: adminHeaders, body: JSON.stringify({ documents }) });
  if (setup.status !== 200) throw new Error(`setup apply failed: ${setup.status} ${await setup.text()}`);

  const stream = await fetch(`${b.adminUrl}/internal/v1/policy/stream`, { headers: { authorization: `Bearer ${b.internalToken}` } });
  const reader = stream.body!.getReader();
  const decoder = new TextDecoder();
  let buffered = '';
  const nextVersion = async (): Promise<number> => {
    for (;;) {
      const newline = buffered.indexOf('\n');
      if (newline >= 0) {
        const line = JSON.parse(buffered.slice(0, newline)) as { version?: number };
        buffered = buffered.slice(newline + 1);
        if (typeof line.version === 'number') return line.version;
        continue;
      }
      const chunk = await reader.read();
      if (chunk.done) throw new Error('policy stream ended');
      buffered += decoder.decode(chunk.value, { stream: true });
    }
  };
  // B's stream starts with its current snapshot; wait until it holds the setup version.
  const setupVersion = ((await setup.json()) as { version: number }).version;
  while ((await nextVersion()) < setupVersion);

  const committedMs: number[] = [];
  const propagatedMs: number[] = [];
  for (let i = 0; i < writes; i += 1) {
    const started = performance.now();
    const response = await fetch(`${a.adminUrl}/v1/personas/persona-0`, {
      method: 'PUT',
      headers: adminHeaders,
      body: JSON.stringify({ description: `edit ${i}`, grants: [{ upstream: 'tickets', tools: [{ name: 'get_*' }] }] }),
    });
    const { version } = (await response.json()) as { version: number };
    committedMs.push(performance.now() - started);
    while ((await nextVersion()) < version);
    propagatedMs.push(performance.now() - started);
  }
  await reader.cancel();

  const quantile = (values: number[], q: number) => [...values].sort((x, y) => x - y)[Math.min(values.length - 1, Math.floor(q * values.length))]!.toFixed(2);
  console.log(`two control-plane processes on one NATS server, ${personaCount} personas, ${writes} sequential writes on A`);
  console.log(`PUT on A acknowledged (published, committed on A):  p50 ${quantile(committedMs, 0.5)} ms  p99 ${quantile(committedMs, 0.99)} ms`);
  console.log(`PUT on A -> new snapshot on B's policy stream:      p50 ${quantile(propagatedMs, 0.5)} ms  p99 ${quantile(propagatedMs, 0.99)} ms`);
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
