import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { startControlPlane } from './control-plane.ts';
import { defaultGatewaySettings } from './snapshot/build-snapshot.ts';

test('a data directory that does not exist yet is created, private to the control plane', async () => {
  const parent = mkdtempSync(join(tmpdir(), 'mandate-cp-'));
  const dataDir = join(parent, 'nested', 'data');
  try {
    const controlPlane = await startControlPlane({ dataDir, xds: { address: '127.0.0.1', port: 0 }, admin: { address: '127.0.0.1', port: 0 }, gateway: defaultGatewaySettings, log: () => {}, env: {} });
    try {
      assert.equal(statSync(dataDir).mode & 0o777, 0o700);
      assert.ok(statSync(join(dataDir, 'config.db')).isFile());
      const status = await fetch(`http://127.0.0.1:${controlPlane.adminPort}/v1/status`, { headers: { authorization: `Bearer ${controlPlane.adminToken}` } });
      assert.equal(status.status, 200);
      assert.equal(((await status.json()) as { configVersion: number }).configVersion, 1);
    } finally {
      await controlPlane.stop();
    }
  } finally {
    rmSync(parent, { recursive: true, force: true });
  }
});

test('replicas share the admin and internal tokens an operator gives (MANDATE_*_TOKEN or _FILE); a weak or unreadable one stops startup', async () => {
  const parent = mkdtempSync(join(tmpdir(), 'mandate-cp-'));
  const adminToken = randomBytes(32).toString('base64');
  const internalToken = randomBytes(32).toString('base64url');
  const internalFile = join(parent, 'internal-token.secret');
  writeFileSync(internalFile, `${internalToken}\n`, { mode: 0o600 });
  const env = { MANDATE_ADMIN_TOKEN: adminToken, MANDATE_INTERNAL_TOKEN_FILE: internalFile };
  const start = (name: string, environment: Record<string, string>) =>
    startControlPlane({ dataDir: join(parent, name), xds: { address: '127.0.0.1', port: 0 }, admin: { address: '127.0.0.1', port: 0 }, gateway: defaultGatewaySettings, log: () => {}, env: environment });
  try {
    const replicas = [await start('a', env), await start('b', env)];
    try {
      for (const replica of replicas) {
        assert.equal(replica.adminToken, adminToken);
        assert.equal(replica.adminTokenPath, null);
        assert.ok(!existsSync(join(parent, replica === replicas[0] ? 'a' : 'b', 'admin-token')), 'no token of its own is written');
        const base = `http://127.0.0.1:${replica.adminPort}`;
        assert.equal((await fetch(`${base}/v1/status`, { headers: { authorization: `Bearer ${adminToken}` } })).status, 200);
        assert.equal((await fetch(`${base}/v1/status`, { headers: { authorization: `Bearer ${internalToken}` } })).status, 401, 'the internal token is not an admin token');
        const policy = await fetch(`${base}/internal/v1/policy`, { headers: { authorization: `Bearer ${internalToken}` } });
        assert.equal(policy.status, 200, 'the internal API takes the shared internal token');
        assert.equal(((await policy.json()) as { version: number }).version, 1);
        assert.equal((await fetch(`${base}/internal/v1/policy`, { headers: { authorization: `Bearer ${adminToken}` } })).status, 401);
      }
    } finally {
      for (const replica of replicas) await replica.stop();
    }
    await assert.rejects(start('c', { MANDATE_ADMIN_TOKEN: 'admin' }), /MANDATE_ADMIN_TOKEN: the token must be at least 32 characters/);
    await assert.rejects(start('d', { MANDATE_INTERNAL_TOKEN_FILE: join(parent, 'absent') }), /MANDATE_INTERNAL_TOKEN_FILE: cannot read .*absent \(ENOENT\)/);
    await assert.rejects(start('e', { MANDATE_ADMIN_TOKEN: adminToken, MANDATE_ADMIN_TOKEN_FILE: internalFile }), /set MANDATE_ADMIN_TOKEN or MANDATE_ADMIN_TOKEN_FILE, not both/);
    await assert.rejects(start('f', { MANDATE_ADMIN_TOKEN: `${adminToken.slice(0, 20)} ${adminToken.slice(20)}` }), /must not contain whitespace/);
  } finally {
    rmSync(parent, { recursive: true, force: true });
  }
});

test('named admin tokens (MANDATE_ADMIN_TOKENS_FILE): the revision names the token\'s admin, a viewer only reads, the file is reread when it changes', async () => {
  const parent = mkdtempSync(join(tmpdir(), 'mandate-cp-'));
  const tokenOf = () => randomBytes(32).toString('base64url');
  const [alice, grafana, shared] = [tokenOf(), tokenOf(), tokenOf()];
  const sha = (token: string) => createHash('sha256').update(token).digest('hex');
  const file = join(parent, 'admins.yaml');
  const write = (text: string) => {
    writeFileSync(file, text);
    utimesSync(file, new Date(), new Date(Date.now() + Math.floor(Math.random() * 1e6)));
  };
  write(`admins:\n  - { name: alice, role: admin, tokenSha256: ${sha(alice)} }\n  - { name: grafana, role: viewer, tokenSha256: ${sha(grafana)} }\n`);
  const start = (name: string, path = file) =>
    startControlPlane({ dataDir: join(parent, name), xds: { address: '127.0.0.1', port: 0 }, admin: { address: '127.0.0.1', port: 0 }, gateway: defaultGatewaySettings, log: () => {}, env: { MANDATE_ADMIN_TOKEN: shared, MANDATE_ADMIN_TOKENS_FILE: path } });
  const controlPlane = await start('a');
  try {
    const base = `http://127.0.0.1:${controlPlane.adminPort}`;
    const call = (token: string, method: string, path: string, body?: unknown) =>
      fetch(`${base}${path}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'x-mandate-actor': 'mallory' }, ...(body ? { body: JSON.stringify(body) } : {}) });
    const upstream = { kind: 'Upstream', name: 'tickets', protocol: 'mcp', url: 'http://127.0.0.1:3001/mcp' };
    assert.equal((await call(alice, 'PUT', '/v1/upstreams/tickets', upstream)).status, 200);
    const actors = async () => ((await (await call(grafana, 'GET', '/v1/revisions?limit=1')).json()) as { items: { actor: string }[] }).items[0]!.actor;
    assert.equal(await actors(), 'admin:alice', 'the token names the admin; x-mandate-actor cannot');
    const refused = await call(grafana, 'PUT', '/v1/upstreams/tickets', { ...upstream, description: 'changed' });
    assert.equal(refused.status, 403);
    assert.equal(((await refused.json()) as { code: string }).code, 'forbidden');
    assert.equal(controlPlane.store.current().version, 2, 'nothing changed');
    assert.equal((await call(shared, 'DELETE', '/v1/upstreams/tickets')).status, 200);
    assert.equal(await actors(), 'admin:mallory', 'the shared token\'s holder names themself, as before');

    // alice leaves: her token stops working without a restart; a broken edit keeps the last good list.
    write(`admins:\n  - { name: grafana, role: viewer, tokenSha256: ${sha(grafana)} }\n`);
    assert.equal((await call(alice, 'GET', '/v1/personas')).status, 401);
    write('admins: [ { name: grafana, role: superuser } ]\n');
    assert.equal((await call(grafana, 'GET', '/v1/personas')).status, 200);
  } finally {
    await controlPlane.stop();
  }
  try {
    const broken = join(parent, 'broken.yaml');
    writeFileSync(broken, `admins:\n  - { name: alice, role: admin, tokenSha256: ${sha(alice)} }\n  - { name: alice, role: viewer, tokenSha256: ${sha(grafana)} }\n`);
    await assert.rejects(start('b', broken), /broken\.yaml: admins\.1\.name: "alice" is listed twice/);
    await assert.rejects(start('c', join(parent, 'absent.yaml')), /ENOENT/);
  } finally {
    rmSync(parent, { recursive: true, force: true });
  }
});

test('HTTPS on the admin listener (MANDATE_ADMIN_TLS_*): ext_proc follows the policy stream over TLS when it trusts the CA, and not otherwise', async () => {
  const { createTestCertificateAuthority } = await import('../test/support/test-certificates.ts');
  const { freePort } = await import('../deploy/gateway-processes.ts');
  const { spawn } = await import('node:child_process');
  const { request } = await import('node:https');
  const authority = createTestCertificateAuthority();
  const parent = mkdtempSync(join(tmpdir(), 'mandate-cp-'));
  const server = authority.issue('control-plane', 'IP:127.0.0.1,DNS:localhost');
  const internalToken = randomBytes(32).toString('base64url');
  const controlPlane = await startControlPlane({
    dataDir: join(parent, 'cp'), xds: { address: '127.0.0.1', port: 0 }, admin: { address: '127.0.0.1', port: 0 }, gateway: defaultGatewaySettings, log: () => {},
    env: { MANDATE_INTERNAL_TOKEN: internalToken }, adminTls: { certFile: server.certFile, keyFile: server.keyFile, clientCaFile: null },
  });
  const children: ReturnType<typeof spawn>[] = [];
  try {
    const adminUrl = `https://127.0.0.1:${controlPlane.adminPort}`;
    const status = await new Promise<number>((resolve, reject) => request(`${adminUrl}/healthz`, { ca: authority.ca }, (res) => (res.resume(), resolve(res.statusCode ?? 0))).on('error', reject).end());
    assert.equal(status, 200);
    await assert.rejects(fetch(`http://127.0.0.1:${controlPlane.adminPort}/healthz`), 'plain HTTP gets no answer');

    const startExtProc = async (name: string, extraEnv: Record<string, string>) => {
      const health = await freePort();
      const child = spawn(process.execPath, [join(import.meta.dirname, '..', 'ext-proc', 'main.ts')], {
        env: { ...process.env, MANDATE_DATA_DIR: join(parent, name), MANDATE_CONTROL_PLANE_URL: adminUrl, MANDATE_INTERNAL_TOKEN: internalToken, MANDATE_EXT_PROC_LISTEN: `127.0.0.1:${await freePort()}`, MANDATE_EXT_PROC_HEALTH_LISTEN: `127.0.0.1:${health}`, ...extraEnv },
        stdio: ['ignore', 'ignore', 'ignore'],
      });
      children.push(child);
      return health;
    };
    const readiness = async (port: number) => {
      try {
        return (await (await fetch(`http://127.0.0.1:${port}/readyz`)).json()) as { ready: boolean; configVersion: number | null };
      } catch {
        return null;
      }
    };
    const trusting = await startExtProc('trusting', { NODE_EXTRA_CA_CERTS: authority.caFile });
    const untrusting = await startExtProc('untrusting', {});
    const deadline = Date.now() + 20_000;
    while ((await readiness(trusting))?.configVersion !== 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(await readiness(trusting), { ready: true, configVersion: 1 }, 'the policy arrived over HTTPS');
    // A change reaches it over the same stream.
    await controlPlane.store.apply([{ kind: 'Upstream', name: 'tickets', protocol: 'mcp', url: 'http://127.0.0.1:3001/mcp' }], { actor: 'test' });
    while ((await readiness(trusting))?.configVersion !== 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.equal((await readiness(trusting))?.configVersion, 2);
    // Without the CA, the certificate is not trusted: no policy, not ready (fail closed). Its health
    // listener may still be starting on a slow machine: wait for it to answer.
    while ((await readiness(untrusting)) === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(await readiness(untrusting), { ready: false, configVersion: null });
  } finally {
    for (const child of children) child.kill('SIGKILL');
    await controlPlane.stop();
    authority.dispose();
    rmSync(parent, { recursive: true, force: true });
  }
});
