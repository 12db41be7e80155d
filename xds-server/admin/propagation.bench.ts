// Benchmark: how long an admin edit takes to commit and to reach an ext_proc
// replica over /internal/v1/policy/stream. Run:
//   sh deploy/bootstrap.sh node xds-server/admin/propagation.bench.ts [personas] [edits]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { openConfigStore } from '../store/config-store.ts';
import { policyVersions } from '../../test/support/policy-stream.ts';
import { createAdminServer } from './admin-server.ts';

const personaCount = Number(process.argv[2] ?? 50);
const edits = Number(process.argv[3] ?? 200);
const dir = mkdtempSync(join(tmpdir(), 'mandate-bench-'));
const store = openConfigStore({ path: join(dir, 'config.db'), env: {} });
const server = createAdminServer({ store, adminToken: 'a', internalToken: 'i', xdsStatus: () => [] });
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

const documents: unknown[] = [{ kind: 'Upstream', name: 'tickets', protocol: 'mcp', url: 'http://127.0.0.1:3001/mcp' }];
for (let i = 0; i < personaCount; i += 1) {
  documents.push({ kind: 'Persona', name: `persona-${i}`, description: `Persona ${i}`, grants: [{ upstream: 'tickets', tools: [{ name: 'get_*' }, { name: 'list_*' }] }] });
}
store.apply(documents, { actor: 'bench' });

const stream = await fetch(`${base}/internal/v1/policy/stream`, { headers: { authorization: 'Bearer i' } });
const versions = policyVersions(stream);
await versions.next();

const commitMs: number[] = [];
const propagationMs: number[] = [];
for (let i = 0; i < edits; i += 1) {
  const started = performance.now();
  const response = await fetch(`${base}/v1/personas/persona-0`, {
    method: 'PUT',
    headers: { authorization: 'Bearer a', 'content-type': 'application/json' },
    body: JSON.stringify({ description: `edit ${i}`, grants: [{ upstream: 'tickets', tools: [{ name: 'get_*' }] }] }),
  });
  const { version } = (await response.json()) as { version: number };
  commitMs.push(performance.now() - started);
  while ((await versions.next()) !== version);
  propagationMs.push(performance.now() - started);
}

const quantile = (values: number[], q: number) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(q * values.length))]!.toFixed(2);
console.log(`${personaCount} personas, ${edits} edits`);
console.log(`PUT committed (HTTP round trip):   p50 ${quantile(commitMs, 0.5)} ms  p99 ${quantile(commitMs, 0.99)} ms`);
console.log(`PUT -> snapshot on policy stream:  p50 ${quantile(propagationMs, 0.5)} ms  p99 ${quantile(propagationMs, 0.99)} ms`);
await versions.close();
await new Promise((resolve) => server.close(resolve));
store.close();
rmSync(dir, { recursive: true, force: true });
