// TLS for agents on the real Envoy: MANDATE_GATEWAY_TLS_CERT_FILE and _KEY_FILE make the
// gateway listener speak only TLS; with MANDATE_GATEWAY_TLS_CLIENT_CA_FILE, an agent
// without a certificate that CA signed cannot connect at all. Certificates come from
// openssl at test time.
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { after, before, describe, test } from 'node:test';
import { startGatewayFixture, type GatewayFixture } from './support/gateway-fixture.ts';
import { createTestCertificateAuthority, type IssuedCertificate, type TestCertificateAuthority } from './support/test-certificates.ts';

let authority: TestCertificateAuthority;
let server: IssuedCertificate;
let agent: IssuedCertificate;
let stranger: TestCertificateAuthority;

before(() => {
  authority = createTestCertificateAuthority();
  server = authority.issue('gateway', 'DNS:localhost,IP:127.0.0.1');
  agent = authority.issue('agent-007', 'DNS:agent-007.agents.internal', 'clientAuth');
  stranger = createTestCertificateAuthority();
});

after(() => {
  authority?.dispose();
  stranger?.dispose();
});

function get(gateway: GatewayFixture, options: RequestOptions & { secure?: boolean }): Promise<{ status: number; body: string; protocol: string | null }> {
  const { secure = true, ...rest } = options;
  return new Promise((resolve, reject) => {
    const send = secure ? httpsRequest : httpRequest;
    const req = send(
      { host: '127.0.0.1', port: gateway.ports.gateway, path: '/personas/support-agent/tickets/tickets/1', headers: { authorization: `Bearer ${gateway.tokens['support-agent']}` }, ...rest },
      (res) => {
        const socket = res.socket as { getProtocol?: () => string | null } | null;
        const protocol = socket?.getProtocol?.() ?? null;
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, protocol }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('TLS on the agents\' listener', () => {
  let gateway: GatewayFixture;
  before(async () => {
    gateway = await startGatewayFixture({ env: { MANDATE_GATEWAY_TLS_CERT_FILE: server.certFile, MANDATE_GATEWAY_TLS_KEY_FILE: server.keyFile } });
  });
  after(async () => {
    await gateway?.stop();
  });

  test('an agent that trusts the gateway\'s CA gets through over TLS 1.2 or later; Mandate decides as before', async () => {
    const answer = await get(gateway, { ca: authority.ca, servername: 'localhost' });
    assert.equal(answer.status, 200);
    assert.equal((JSON.parse(answer.body) as { ticket: { id: string } }).ticket.id, '1');
    assert.match(answer.protocol ?? '', /^TLSv1\.[23]$/);
    const refused = await get(gateway, { ca: authority.ca, servername: 'localhost', headers: {} });
    assert.equal(refused.status, 401, 'authentication still applies');
  });

  test('plain HTTP to the TLS listener and a client that does not trust its certificate get nowhere', async () => {
    await assert.rejects(get(gateway, { secure: false }), (error: NodeJS.ErrnoException) => ['ECONNRESET', 'HPE_INVALID_CONSTANT', 'HPE_INVALID_HEADER_TOKEN'].includes(error.code ?? '') || /socket hang up|Parse Error/.test(error.message));
    await assert.rejects(get(gateway, { ca: stranger.ca, servername: 'localhost' }), /self-signed certificate in certificate chain|unable to verify|UNABLE_TO_VERIFY_LEAF_SIGNATURE/);
  });
});

describe('mutual TLS: agents must present a certificate the client CA signed', () => {
  let gateway: GatewayFixture;
  before(async () => {
    gateway = await startGatewayFixture({
      env: { MANDATE_GATEWAY_TLS_CERT_FILE: server.certFile, MANDATE_GATEWAY_TLS_KEY_FILE: server.keyFile, MANDATE_GATEWAY_TLS_CLIENT_CA_FILE: authority.caFile },
    });
  });
  after(async () => {
    await gateway?.stop();
  });

  test('with the agent\'s certificate the call goes through; without one, or with one from another CA, the handshake fails', async () => {
    const answer = await get(gateway, { ca: authority.ca, servername: 'localhost', cert: agent.cert, key: agent.key });
    assert.equal(answer.status, 200);
    await assert.rejects(get(gateway, { ca: authority.ca, servername: 'localhost' }), (error: NodeJS.ErrnoException) => /alert|socket hang up|ECONNRESET|certificate required/i.test(`${error.code} ${error.message}`));
    const foreign = stranger.issue('intruder', 'DNS:intruder.example', 'clientAuth');
    await assert.rejects(get(gateway, { ca: authority.ca, servername: 'localhost', cert: foreign.cert, key: foreign.key }), (error: NodeJS.ErrnoException) => /alert|socket hang up|ECONNRESET|unknown ca/i.test(`${error.code} ${error.message}`));
  });
});
