// https:// upstreams through the real Envoy: the gateway verifies the upstream's
// certificate chain and name. Certificates come from openssl at test time: a test
// CA, a server certificate for localhost and one for another name. An upstream
// whose certificate the gateway cannot verify never receives the agent's request.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { startGatewayFixture, type GatewayFixture } from './support/gateway-fixture.ts';
import { createTestCertificateAuthority, type TestCertificateAuthority } from './support/test-certificates.ts';

let authority: TestCertificateAuthority;
let gateway: GatewayFixture;
let token = '';
const servers: Server[] = [];
const seen: Record<string, number> = { localhost: 0, other: 0 };

async function serve(name: string, credentials: { key: Buffer; cert: Buffer }): Promise<number> {
  const server = createServer(credentials, (request, response) => {
    seen[name]!++;
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(JSON.stringify({ ticket: { id: request.url?.split('/').pop() }, servedBy: name }));
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

before(async () => {
  authority = createTestCertificateAuthority();
  const localhostPort = await serve('localhost', authority.issue('localhost', 'DNS:localhost'));
  const otherPort = await serve('other', authority.issue('other', 'DNS:billing.internal'));
  const ca = authority.caFile;
  const upstreams = [
    { name: 'verified', url: `https://localhost:${localhostPort}/api`, tls: { caFile: ca } },
    { name: 'untrusted', url: `https://localhost:${localhostPort}/api` },
    { name: 'wrong-name', url: `https://localhost:${otherPort}/api`, tls: { caFile: ca } },
    { name: 'named', url: `https://localhost:${otherPort}/api`, tls: { caFile: ca, serverName: 'billing.internal' } },
  ];
  gateway = await startGatewayFixture({ demo: false });
  await gateway.apply([
    ...upstreams.map((u) => ({ kind: 'Upstream', protocol: 'rest', ...u })),
    { kind: 'Persona', name: 'reader', description: 'Reads tickets.', grants: upstreams.map((u) => ({ upstream: u.name, operations: [{ method: 'GET', path: '/tickets/{id}' }] })) },
  ]);
  token = (await gateway.issueToken('reader', 'tls-agent')).token;
});

after(async () => {
  await gateway?.stop();
  for (const server of servers) await new Promise((resolve) => server.close(resolve));
  authority?.dispose();
});

const get = (upstream: string) => fetch(`${gateway.gatewayUrl}/personas/reader/${upstream}/tickets/7`, { headers: { authorization: `Bearer ${token}` } });

test('an upstream whose certificate chains to its configured CA and names its host is reached', async () => {
  const response = await get('verified');
  assert.equal(response.status, 200);
  assert.deepEqual(await response.json(), { ticket: { id: '7' }, servedBy: 'localhost' });
});

test('a certificate the system CAs do not vouch for, or one for another name, stops the request at the gateway', async () => {
  const before = { ...seen };
  for (const upstream of ['untrusted', 'wrong-name']) {
    const response = await get(upstream);
    assert.equal(response.status, 503, upstream);
    await response.arrayBuffer();
  }
  // The TLS handshake fails before any request is sent: the servers saw nothing.
  assert.deepEqual(seen, before);
});

test('tls.serverName names the certificate to expect (and the SNI) when the URL host differs', async () => {
  const response = await get('named');
  assert.equal(response.status, 200);
  assert.equal(((await response.json()) as { servedBy: string }).servedBy, 'other');
});
