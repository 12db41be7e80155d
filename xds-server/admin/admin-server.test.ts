import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { z } from 'zod';
import { personaSchema } from '../../config/schema.ts';
import type { PolicySnapshot } from '../../config/bundle.ts';
import type { XdsNodeStatus } from '../ads/node-status.ts';
import { openConfigStore, type ConfigStore } from '../store/config-store.ts';
import { parseCredentialToken } from '../store/credential-token.ts';
import { createAdminServer } from './admin-server.ts';

const adminToken = 'admin-token-for-tests';
const internalToken = 'internal-token-for-tests';
const upstreamSecret = 'sk-live-very-secret-value';

const documents = [
  { kind: 'Upstream', name: 'tickets', protocol: 'mcp', url: 'http://127.0.0.1:3001/mcp', auth: { type: 'bearer', token: { value: upstreamSecret } } },
  { kind: 'Persona', name: 'support', description: 'Answers tickets', grants: [{ upstream: 'tickets', tools: [{ name: 'get_ticket' }] }] },
];

const nackedNode: XdsNodeStatus = {
  nodeId: 'envoy-1',
  nodeCluster: 'mandate',
  envoyVersion: '1.40.0',
  connected: true,
  connectedAt: '2030-01-01T00:00:00.000Z',
  disconnectedAt: null,
  configVersion: 2,
  resources: {
    clusters: { sentVersion: '2', ackedVersion: '2', lastNack: null },
    endpoints: { sentVersion: '2', ackedVersion: '2', lastNack: null },
    listeners: { sentVersion: '2', ackedVersion: '1', lastNack: { version: '2', nonce: 'n1', message: 'bad listener', at: '2030-01-01T00:00:01.000Z' } },
    routes: { sentVersion: '2', ackedVersion: '2', lastNack: null },
  },
};

let dir: string;
let store: ConfigStore;
let server: Server;
let base: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mandate-admin-'));
  store = openConfigStore({ path: join(dir, 'config.db'), env: {} });
  server = createAdminServer({ store, adminToken, internalToken, xdsStatus: () => [nackedNode], heartbeatMs: 100 });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  await new Promise((resolve) => server.close(resolve));
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

function call(path: string, init: RequestInit & { token?: string | null } = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  const token = init.token === undefined ? adminToken : init.token;
  if (token !== null) headers.set('authorization', `Bearer ${token}`);
  if (init.body !== undefined && !headers.has('content-type')) headers.set('content-type', 'application/json');
  return fetch(`${base}${path}`, { ...init, headers });
}

async function problemOf(response: Response): Promise<{ status: number; code: string; issues?: { path: unknown[]; code: string }[] }> {
  assert.equal(response.headers.get('content-type'), 'application/problem+json');
  const body = (await response.json()) as { status: number; code: string; type: string; title: string; detail: string; issues?: { path: unknown[]; code: string }[] };
  assert.equal(body.status, response.status);
  assert.equal(typeof body.title, 'string');
  assert.equal(typeof body.detail, 'string');
  assert.equal(body.type, `urn:mandate:problem:${body.code}`);
  return body;
}

test('healthz and the OpenAPI document need no token; /v1 and /internal/v1 need their own tokens', async () => {
  assert.equal((await call('/healthz', { token: null })).status, 200);
  assert.equal((await call('/v1/openapi.json', { token: null })).status, 200);
  for (const [path, token] of [['/v1/personas', null], ['/v1/personas', 'wrong'], ['/v1/status', internalToken], ['/internal/v1/policy', adminToken], ['/internal/v1/policy', null]] as const) {
    const response = await call(path, { token });
    assert.equal(response.status, 401, `${path} with ${token}`);
    assert.equal((await problemOf(response)).code, 'unauthorized');
    assert.match(response.headers.get('www-authenticate') ?? '', /^Bearer/);
  }
  assert.equal((await call('/internal/v1/policy', { token: internalToken })).status, 200);
});

test('the OpenAPI document lists the routes and embeds the zod-generated config schemas', async () => {
  const document = (await (await call('/v1/openapi.json', { token: null })).json()) as {
    openapi: string;
    paths: Record<string, Record<string, unknown>>;
    components: { schemas: Record<string, { properties?: Record<string, { description?: string }> }> };
  };
  assert.equal(document.openapi, '3.1.0');
  for (const path of ['/v1/personas', '/v1/personas/{name}', '/v1/skills/{name}', '/v1/upstreams/{name}', '/v1/apply', '/v1/personas/{name}/credentials', '/v1/credentials/{id}', '/v1/revisions', '/v1/status', '/internal/v1/policy/stream']) {
    assert.ok(document.paths[path], `missing ${path}`);
  }
  assert.deepEqual(Object.keys(document.paths['/v1/personas/{name}'] ?? {}).sort(), ['delete', 'get', 'parameters', 'put']);
  const { $schema: _ignored, ...expected } = z.toJSONSchema(personaSchema, { io: 'input' }) as Record<string, unknown>;
  assert.deepEqual(document.components.schemas.PersonaInput, expected);
  assert.equal(document.components.schemas.Persona?.properties?.description?.description, 'The role, in natural language');
  assert.ok(document.components.schemas.Problem?.properties?.code);
});

test('apply commits a version; /v1 masks upstream secrets, /internal/v1 resolves them', async () => {
  const applied = await call('/v1/apply', { method: 'POST', body: JSON.stringify({ documents }), headers: { 'x-mandate-actor': 'alice' } });
  assert.equal(applied.status, 200);
  const result = (await applied.json()) as { version: number; changed: string[] };
  assert.deepEqual(result.changed, ['Persona/support', 'Upstream/tickets']);
  assert.equal(store.history()[0]?.actor, 'admin:alice');

  const publicBodies = await Promise.all(['/v1/upstreams', '/v1/upstreams/tickets', '/v1/personas', '/v1/revisions', '/v1/credentials', '/v1/status'].map(async (path) => (await call(path)).text()));
  for (const body of publicBodies) assert.ok(!body.includes(upstreamSecret), body);
  const upstream = JSON.parse(publicBodies[1] ?? '{}') as { auth: unknown };
  assert.deepEqual(upstream.auth, { type: 'bearer', token: { value: '***' } });

  const policy = (await (await call('/internal/v1/policy', { token: internalToken })).json()) as PolicySnapshot;
  assert.equal(policy.version, result.version);
  assert.deepEqual(policy.upstreamCredentials.tickets, { header: 'authorization', value: `Bearer ${upstreamSecret}` });

  // Applying what GET returned (masked) changes nothing: the stored secret is kept.
  const roundTrip = await call('/v1/apply', { method: 'POST', body: JSON.stringify({ documents: [upstream] }) });
  assert.deepEqual(((await roundTrip.json()) as { changed: string[] }).changed, []);
});

test('bad config is rejected as problem+json with the path of the offending field, nothing applied', async () => {
  const before = store.current().version;
  const bad = [documents[0], { ...documents[1], name: 'other', endpoint: { pathPrefix: '/agents/other' }, grants: [{ upstream: 'missing', tools: [{ name: 'x' }] }] }];
  const response = await call('/v1/apply', { method: 'POST', body: JSON.stringify({ documents: bad }) });
  assert.equal(response.status, 422);
  const body = await problemOf(response);
  assert.equal(body.code, 'invalid_config');
  assert.deepEqual(body.issues?.map((i) => [i.path, i.code]), [[['documents', 1, 'grants', 0, 'upstream'], 'unknown_upstream']]);
  assert.equal(store.current().version, before);

  const put = await call('/v1/personas/support', { method: 'PUT', body: JSON.stringify({ description: 'x', mode: 'loud' }) });
  assert.equal(put.status, 422);
  assert.deepEqual((await problemOf(put)).issues?.map((i) => i.path), [['mode']]);
  const mismatch = await call('/v1/personas/support', { method: 'PUT', body: JSON.stringify({ name: 'other', description: 'x' }) });
  assert.deepEqual((await problemOf(mismatch)).issues?.map((i) => i.code), ['name_mismatch']);
});

test('YAML bodies: multi-document apply, and syntax errors with line and column', async () => {
  const yamlText = ['kind: Skill', 'name: read-tickets', 'grants:', '  - upstream: tickets', '    tools: [{name: "list_*"}]', '---', 'kind: Persona', 'name: triage', 'description: Sorts tickets', 'endpoint: {pathPrefix: /agents/triage}', 'skills: [read-tickets]', ''].join('\n');
  const applied = await call('/v1/apply?dryRun=true', { method: 'POST', body: yamlText, headers: { 'content-type': 'application/yaml' } });
  assert.equal(applied.status, 200);
  assert.deepEqual(await applied.json(), { version: store.current().version + 1, changed: ['Persona/triage', 'Skill/read-tickets'], dryRun: true });
  assert.equal(store.current().bundle.skills.length, 0);

  const broken = await call('/v1/apply', { method: 'POST', body: 'kind: Persona\nname: [unclosed\n', headers: { 'content-type': 'application/yaml' } });
  assert.equal(broken.status, 400);
  const problem = await problemOf(broken);
  assert.equal(problem.code, 'invalid_yaml');
  assert.match(JSON.stringify(problem.issues), /line \d+, column \d+/);
});

test('transport errors: media type, size, JSON syntax, method and route', async () => {
  const cases: [Promise<Response>, number, string][] = [
    [call('/v1/apply', { method: 'POST', body: 'documents=1', headers: { 'content-type': 'application/x-www-form-urlencoded' } }), 415, 'unsupported_media_type'],
    [call('/v1/apply', { method: 'POST', body: JSON.stringify({ documents: ['x'.repeat(1024 * 1024 + 1)] }) }), 413, 'payload_too_large'],
    [call('/v1/apply', { method: 'POST', body: '{"documents": [' }), 400, 'invalid_json'],
    [call('/v1/apply', { method: 'POST', body: '{"docs": []}' }), 400, 'invalid_request'],
    [call('/v1/apply', { method: 'GET' }), 405, 'method_not_allowed'],
    [call('/v1/nothing-here'), 404, 'not_found'],
    [call('/v1/personas/ghost'), 404, 'not_found'],
  ];
  for (const [pending, status, code] of cases) {
    const response = await pending;
    assert.equal(response.status, status, code);
    assert.equal((await problemOf(response)).code, code);
  }
  assert.equal((await call('/v1/apply', { method: 'GET' })).headers.get('allow'), 'POST');
});

test('delete: a referenced upstream is a conflict with the referencing path', async () => {
  const response = await call('/v1/upstreams/tickets', { method: 'DELETE' });
  assert.equal(response.status, 409);
  const body = await problemOf(response);
  assert.equal(body.code, 'conflict');
  assert.deepEqual(body.issues?.map((i) => i.path), [['personas', 'support', 'grants', 0, 'upstream']]);
});

test('credentials: issued once with the token, listed without secrets, revoked', async () => {
  const issued = await call('/v1/personas/support/credentials', { method: 'POST', body: JSON.stringify({ agent: 'bot-7' }) });
  assert.equal(issued.status, 201);
  const credential = (await issued.json()) as { id: string; token: string; version: number };
  assert.match(credential.token, new RegExp(`^mnd_${credential.id}_`));
  const listed = await (await call('/v1/credentials?persona=support')).text();
  assert.ok(listed.includes(credential.id));
  assert.ok(!listed.includes(parseCredentialToken(credential.token)?.secret ?? '-'));
  const snapshot = (await (await call('/internal/v1/policy', { token: internalToken })).json()) as PolicySnapshot;
  assert.ok(snapshot.credentials.some((c) => c.id === credential.id));

  assert.equal((await call('/v1/personas/ghost/credentials', { method: 'POST', body: JSON.stringify({ agent: 'x' }) })).status, 404);
  assert.equal((await call('/v1/personas/support/credentials', { method: 'POST', body: JSON.stringify({ agent: '' }) })).status, 400);
  const revoked = await call(`/v1/credentials/${credential.id}`, { method: 'DELETE' });
  assert.deepEqual(((await revoked.json()) as { changed: string[] }).changed, [`Credential/${credential.id}`]);
  assert.equal((await call('/v1/credentials/ffffffffffff', { method: 'DELETE' })).status, 404);
});

test('status reports the config version and each node, NACKs included', async () => {
  const status = (await (await call('/v1/status')).json()) as { configVersion: number; nodes: XdsNodeStatus[] };
  assert.equal(status.configVersion, store.current().version);
  assert.equal(status.nodes[0]?.resources.listeners.lastNack?.message, 'bad listener');
});

test('the policy stream sends the snapshot now, each change, and heartbeats', async () => {
  const controller = new AbortController();
  const response = await call('/internal/v1/policy/stream', { token: internalToken, signal: controller.signal });
  assert.equal(response.headers.get('content-type'), 'application/x-ndjson');
  const reader = response.body?.getReader();
  assert.ok(reader);
  const decoder = new TextDecoder();
  let buffered = '';
  const nextLine = async (): Promise<Record<string, unknown>> => {
    while (!buffered.includes('\n')) {
      const chunk = await reader.read();
      assert.ok(!chunk.done, 'stream ended early');
      buffered += decoder.decode(chunk.value, { stream: true });
    }
    const index = buffered.indexOf('\n');
    const line = buffered.slice(0, index);
    buffered = buffered.slice(index + 1);
    return JSON.parse(line) as Record<string, unknown>;
  };
  const first = await nextLine();
  assert.equal(first.version, store.current().version);
  const changed = await call('/v1/personas/support', { method: 'PUT', body: JSON.stringify({ description: 'Answers tickets, carefully', grants: [{ upstream: 'tickets', tools: [{ name: 'get_ticket' }] }] }) });
  const { version } = (await changed.json()) as { version: number };
  let line = await nextLine();
  while (line.heartbeat === true) line = await nextLine();
  assert.equal(line.version, version);
  assert.equal((line as unknown as PolicySnapshot).bundle.personas[0]?.description, 'Answers tickets, carefully');
  assert.deepEqual(await nextLine(), { heartbeat: true });
  controller.abort();
});
