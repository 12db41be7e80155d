// Mandate scaled out over a NATS server locked down as production would have it:
// TLS only, clients must present a certificate the CA signed (mutual TLS), and only
// known users may connect (an NKey for Mandate, a user and password for an operator).
// Two control-plane replicas and two ext_proc replicas, with real Envoy, reach it
// through the MANDATE_NATS_* file settings: a config written on one control-plane
// replica reaches the other and the traffic through it, and a quarantine made on
// one ext_proc replica holds on the other. A process without credentials, or that
// trusts another CA, is refused: ext_proc stops at startup and says why; a control
// plane serves its local config, refuses writes and shows the reason in its status.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { nkeys } from 'nats';
import { connectToNats, NatsConnectError, natsSettingsFromEnv } from '../config/nats-connection.ts';
import { adminRequest, freePort, repoRoot, waitForEnvoyVersion, type ControlPlaneReplica } from '../deploy/gateway-processes.ts';
import { startGatewayFixture, type GatewayFixture } from './support/gateway-fixture.ts';
import { natsServerMissing, startNatsServer, type NatsServer } from './support/nats-server.ts';
import { close, createRecordingMcpServer, listen, type RecordingMcpServer } from './support/recording-mcp-server.ts';
import { createTestCertificateAuthority, type TestCertificateAuthority } from './support/test-certificates.ts';
import { waitForExtProcVersion } from './support/policy-stream.ts';

const skip = natsServerMissing();

describe('NATS with mutual TLS and credentials', { skip: skip ?? false }, () => {
  let authority: TestCertificateAuthority;
  let otherAuthority: TestCertificateAuthority;
  let secrets: string;
  let nats: NatsServer;
  let helpdesk: RecordingMcpServer;
  let gateway: GatewayFixture;
  let replicaA: ControlPlaneReplica;
  let replicaB: ControlPlaneReplica;
  /** What every Mandate process of the gateway is given: the CA, its client certificate, its NKey seed. */
  let natsEnv: Record<string, string>;
  const internalToken = randomBytes(32).toString('base64url');
  const operatorPassword = randomBytes(18).toString('base64url');
  const started: ChildProcess[] = [];

  before(async () => {
    authority = createTestCertificateAuthority();
    otherAuthority = createTestCertificateAuthority();
    const serverCert = authority.issue('nats', 'DNS:localhost,IP:127.0.0.1');
    const clientCert = authority.issue('mandate', 'DNS:mandate', 'clientAuth');
    secrets = mkdtempSync(join(tmpdir(), 'mandate-nats-secrets-'));
    const mandateUser = nkeys.createUser();
    writeFileSync(join(secrets, 'mandate.nk'), `${new TextDecoder().decode(mandateUser.getSeed())}\n`, { mode: 0o600 });
    writeFileSync(join(secrets, 'operator-password'), `${operatorPassword}\n`, { mode: 0o600 });
    writeFileSync(join(secrets, 'wrong-password'), 'not-the-password\n', { mode: 0o600 });
    nats = await startNatsServer({
      tls: { certFile: serverCert.certFile, keyFile: serverCert.keyFile, clientCaFile: authority.caFile },
      users: [{ nkey: mandateUser.getPublicKey() }, { user: 'operator', password: operatorPassword }],
    });
    assert.match(nats.url, /^tls:\/\//);
    natsEnv = {
      MANDATE_NATS_URL: nats.url,
      MANDATE_NATS_TLS_CA_FILE: authority.caFile,
      MANDATE_NATS_TLS_CERT_FILE: clientCert.certFile,
      MANDATE_NATS_TLS_KEY_FILE: clientCert.keyFile,
      MANDATE_NATS_NKEY_SEED_FILE: join(secrets, 'mandate.nk'),
      // The keys the replicas share, as a deployment gives them: the data-flow key (ext_proc) and the
      // config secrets key (control plane); without them a replica does not start at all.
      MANDATE_FLOW_KEY: randomBytes(32).toString('base64'),
      MANDATE_CONFIG_SECRETS_KEY: randomBytes(32).toString('base64'),
    };
    helpdesk = createRecordingMcpServer({ read_ticket: (args) => `ticket ${String(args.id)}`, delete_ticket: () => 'deleted' });
    const helpdeskPort = await listen(helpdesk.server);
    gateway = await startGatewayFixture({ demo: false, controlPlaneReplicas: 2, extProcReplicas: 2, natsUrl: nats.url, env: { ...natsEnv, MANDATE_INTERNAL_TOKEN: internalToken } });
    // Envoy and the ext_proc replicas follow replica B; the admin writes through replica A.
    [replicaB, replicaA] = gateway.controlPlanes as [ControlPlaneReplica, ControlPlaneReplica];
    const applied = await adminRequest(replicaA, 'POST', '/v1/apply', {
      documents: [
        { kind: 'Upstream', name: 'helpdesk', protocol: 'mcp', url: `http://127.0.0.1:${helpdeskPort}/mcp` },
        {
          kind: 'Persona',
          name: 'support',
          description: 'Reads tickets; deleting one quarantines the agent.',
          grants: [{ upstream: 'helpdesk', tools: [{ name: 'read_ticket' }, { name: 'delete_ticket' }] }],
          behaviour: { rules: [{ name: 'delete-quarantines', steps: [{ match: { tool: 'delete_ticket' } }], action: 'quarantine' }] },
        },
      ],
    });
    assert.equal(applied.status, 200, JSON.stringify(applied.body));
  });

  after(async () => {
    for (const child of started) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await gateway?.stop();
    if (helpdesk) await close(helpdesk.server);
    await nats?.dispose();
    authority?.dispose();
    otherAuthority?.dispose();
    if (secrets) rmSync(secrets, { recursive: true, force: true });
  });

  test('a config written on control-plane replica A reaches replica B, its Envoy and both ext_proc replicas, which share a quarantine', async () => {
    const issued = await adminRequest(replicaA, 'POST', '/v1/personas/support/credentials', { agent: 'agent-1' });
    assert.equal(issued.status, 201, JSON.stringify(issued.body));
    const version = issued.body.version as number;
    await waitForEnvoyVersion(replicaB, version);
    const onA = await adminRequest(replicaA, 'GET', '/v1/revisions?limit=2');
    const onB = await adminRequest(replicaB, 'GET', '/v1/revisions?limit=2');
    assert.deepEqual(onB.body.items, onA.body.items, 'the same revisions on both replicas');
    for (const replica of [replicaA, replicaB]) {
      const status = await adminRequest(replica, 'GET', '/v1/status');
      assert.equal(status.body.replication.connected, true);
      assert.equal(status.body.replication.connectError, undefined);
    }
    for (const port of gateway.extProcHealthPorts) await waitForExtProcVersion(port, version);

    const client = await gateway.mcpClient('/personas/support/helpdesk', issued.body.token as string);
    const read = await client.callTool({ name: 'read_ticket', arguments: { id: '7' } });
    assert.match(JSON.stringify(read.content), /ticket 7/);
    await assert.rejects(() => client.callTool({ name: 'delete_ticket', arguments: { id: '7' } }), blockedWith('sequence_rule_matched'));
    await client.close();
    // The quarantine crossed NATS (JetStream KV): every ext_proc replica lists the agent.
    for (const port of gateway.extProcHealthPorts) {
      const deadline = Date.now() + 5000;
      for (;;) {
        const list = (await (await fetch(`http://127.0.0.1:${port}/v1/quarantine`, { headers: { authorization: `Bearer ${internalToken}` } })).json()) as { agents: { agent: string }[] };
        if (list.agents.some((a) => a.agent === 'agent-1')) break;
        if (Date.now() > deadline) assert.fail(`the ext_proc replica on ${port} did not learn the quarantine`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  });

  test('a user with a password file reaches the shared stream; a wrong password or no client certificate is refused', async () => {
    const tls = { MANDATE_NATS_URL: nats.url, MANDATE_NATS_TLS_CA_FILE: authority.caFile, MANDATE_NATS_TLS_CERT_FILE: natsEnv.MANDATE_NATS_TLS_CERT_FILE!, MANDATE_NATS_TLS_KEY_FILE: natsEnv.MANDATE_NATS_TLS_KEY_FILE! };
    const operator = await connectToNats(natsSettingsFromEnv({ ...tls, MANDATE_NATS_USER: 'operator', MANDATE_NATS_PASSWORD_FILE: join(secrets, 'operator-password') })!, { name: 'test-operator' });
    const stream = await (await operator.jetstreamManager()).streams.info('MANDATE_CONFIG');
    assert.ok(stream.state.messages >= 2, 'the control planes created the config stream and published to it');
    await operator.close();

    const wrongPassword = natsSettingsFromEnv({ ...tls, MANDATE_NATS_USER: 'operator', MANDATE_NATS_PASSWORD_FILE: join(secrets, 'wrong-password') })!;
    const refused = await connectToNats(wrongPassword, { name: 'test-wrong' }).then(
      () => assert.fail('connected with a wrong password'),
      (error: unknown) => error,
    );
    assert.ok(refused instanceof NatsConnectError);
    assert.equal(refused.code, 'nats_auth_refused');
    assert.match(refused.message, /check MANDATE_NATS_USER and MANDATE_NATS_PASSWORD_FILE/);
    assert.ok(!refused.message.includes('not-the-password'));

    // With TLS 1.3 the server refuses a missing client certificate after the handshake: the client sees no answer.
    const { MANDATE_NATS_TLS_CERT_FILE: _cert, MANDATE_NATS_TLS_KEY_FILE: _key, ...withoutCertificate } = tls;
    const noCertificate = natsSettingsFromEnv({ ...withoutCertificate, MANDATE_NATS_USER: 'operator', MANDATE_NATS_PASSWORD_FILE: join(secrets, 'operator-password') })!;
    const unanswered = await connectToNats(noCertificate, { name: 'test-no-certificate', timeout: 1500 }).then(
      () => assert.fail('connected without a client certificate'),
      (error: unknown) => error,
    );
    assert.ok(unanswered instanceof NatsConnectError);
    assert.match(unanswered.message, /if the server verifies clients, set MANDATE_NATS_TLS_CERT_FILE and MANDATE_NATS_TLS_KEY_FILE/);
  });

  test('ext_proc without credentials, or trusting another CA, stops at startup and says why', async () => {
    const withoutCredentials = { ...natsEnv, MANDATE_NATS_NKEY_SEED_FILE: '' };
    const otherCa = { ...natsEnv, MANDATE_NATS_TLS_CA_FILE: otherAuthority.caFile };
    const [noCredentials, untrusted] = await Promise.all([runExtProcUntilExit(withoutCredentials), runExtProcUntilExit(otherCa)]);
    assert.equal(noCredentials.code, 1, noCredentials.output);
    assert.match(startFailure(noCredentials.output), /refused the connection .*requires authentication: set MANDATE_NATS_CREDS_FILE.*\(nats_auth_refused\)/);
    assert.equal(untrusted.code, 1, untrusted.output);
    assert.match(startFailure(untrusted.output), /^TLS with NATS at tls:\/\/127\.0\.0\.1:\d+ failed .*MANDATE_NATS_TLS_CA_FILE.*\(nats_tls_failed\)$/);
  });

  test('a control plane without credentials, or trusting another CA, serves its local config, refuses writes and shows why', async () => {
    const [noCredentials, untrusted] = await Promise.all([
      startLoneControlPlane('cp-no-credentials', { ...natsEnv, MANDATE_NATS_NKEY_SEED_FILE: '' }),
      startLoneControlPlane('cp-other-ca', { ...natsEnv, MANDATE_NATS_TLS_CA_FILE: otherAuthority.caFile }),
    ]);
    for (const [replica, code] of [
      [noCredentials, 'nats_auth_refused'],
      [untrusted, 'nats_tls_failed'],
    ] as const) {
      const status = await adminRequest(replica, 'GET', '/v1/status');
      assert.equal(status.body.replication.connected, false);
      assert.match(status.body.replication.connectError, new RegExp(`\\(${code}\\)$`));
      const write = await adminRequest(replica, 'POST', '/v1/apply', { documents: [{ kind: 'Upstream', name: 'x', protocol: 'mcp', url: 'http://127.0.0.1:1/mcp' }] });
      assert.equal(write.status, 503);
      assert.equal(write.body.code, 'config_replication_unavailable');
      assert.equal((await fetch(`${replica.adminUrl}/readyz`)).status, 503);
      assert.match(replica.output(), new RegExp(`"event":"config_replication_connect_failed".*"code":"${code}"`));
    }
  });

  /** Runs one ext_proc against the locked-down NATS until it exits (it should not get far). */
  async function runExtProcUntilExit(env: Record<string, string>): Promise<{ code: number | null; output: string }> {
    const dataDir = mkdtempSync(join(tmpdir(), 'mandate-ext-proc-'));
    try {
      const child = launch('ext-proc/main.ts', {
        ...env,
        MANDATE_DATA_DIR: dataDir,
        MANDATE_INTERNAL_TOKEN: internalToken,
        MANDATE_CONTROL_PLANE_URL: replicaB.adminUrl,
        MANDATE_EXT_PROC_LISTEN: `127.0.0.1:${await freePort()}`,
        MANDATE_EXT_PROC_HEALTH_LISTEN: `127.0.0.1:${await freePort()}`,
        MANDATE_REPLICA_ID: 'refused',
      });
      const timer = setTimeout(() => child.process.kill('SIGKILL'), 30_000);
      const code = await new Promise<number | null>((resolve) => child.process.once('exit', resolve));
      clearTimeout(timer);
      return { code, output: child.output() };
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }

  /** A control plane of its own (an empty data dir) on the locked-down NATS. */
  async function startLoneControlPlane(name: string, env: Record<string, string>): Promise<{ adminUrl: string; adminToken: string; output(): string }> {
    const dataDir = mkdtempSync(join(tmpdir(), `mandate-${name}-`));
    after(() => rmSync(dataDir, { recursive: true, force: true }));
    const admin = await freePort();
    const adminToken = randomBytes(32).toString('base64url');
    const child = launch('xds-server/main.ts', {
      ...env,
      MANDATE_DATA_DIR: dataDir,
      MANDATE_ADMIN_TOKEN: adminToken,
      MANDATE_ADMIN_LISTEN: `127.0.0.1:${admin}`,
      MANDATE_XDS_LISTEN: `127.0.0.1:${await freePort()}`,
      MANDATE_REPLICA_ID: name,
    });
    const adminUrl = `http://127.0.0.1:${admin}`;
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (child.process.exitCode !== null) assert.fail(`${name} exited: ${child.output()}`);
      const up = await fetch(`${adminUrl}/healthz`).then((r) => r.ok, () => false);
      if (up) break;
      if (Date.now() > deadline) assert.fail(`${name} did not start: ${child.output()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    return { adminUrl, adminToken, output: child.output };
  }

  function launch(script: string, env: Record<string, string>): { process: ChildProcess; output(): string } {
    const child = spawn(process.execPath, [join(repoRoot, script)], { cwd: repoRoot, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    started.push(child);
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    return { process: child, output: () => output };
  }
});

const blockedWith = (code: string) => (error: unknown) => error instanceof McpError && (error.data as { mandate?: { code?: string } } | undefined)?.mandate?.code === code;

/** The error of a process's start_failed log line. */
function startFailure(output: string): string {
  const line = output.split('\n').find((l) => l.includes('"event":"start_failed"'));
  assert.ok(line, `no start_failed in: ${output}`);
  return (JSON.parse(line) as { error: string }).error;
}
