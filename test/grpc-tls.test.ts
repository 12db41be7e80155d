// Mutual TLS on the two gRPC channels between the real Envoy and Mandate: ADS to the
// control plane and ext_proc to the policy service. With the MANDATE_*_TLS_* settings
// on, Envoy takes its config and sends every request through ext_proc over TLS with
// its own certificate; a client without a certificate the CA signed, or without TLS,
// reaches neither server. Certificates come from openssl at test time.
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { after, before, test } from 'node:test';
import { startGatewayFixture, type GatewayFixture } from './support/gateway-fixture.ts';
import { createTestCertificateAuthority, type IssuedCertificate, type TestCertificateAuthority } from './support/test-certificates.ts';

let authority: TestCertificateAuthority;
let stranger: TestCertificateAuthority;
let envoyCertificate: IssuedCertificate;
let gateway: GatewayFixture;

before(async () => {
  authority = createTestCertificateAuthority();
  stranger = createTestCertificateAuthority();
  const xds = authority.issue('xds', 'DNS:xds.mandate.internal');
  const extProc = authority.issue('ext-proc', 'DNS:ext-proc.mandate.internal');
  envoyCertificate = authority.issue('envoy', 'DNS:envoy.mandate.internal', 'clientAuth');
  gateway = await startGatewayFixture({
    env: {
      MANDATE_XDS_TLS_CERT_FILE: xds.certFile,
      MANDATE_XDS_TLS_KEY_FILE: xds.keyFile,
      MANDATE_XDS_TLS_CLIENT_CA_FILE: authority.caFile,
      MANDATE_EXT_PROC_TLS_CERT_FILE: extProc.certFile,
      MANDATE_EXT_PROC_TLS_KEY_FILE: extProc.keyFile,
      MANDATE_EXT_PROC_TLS_CLIENT_CA_FILE: authority.caFile,
      MANDATE_ENVOY_TLS_CERT_FILE: envoyCertificate.certFile,
      MANDATE_ENVOY_TLS_KEY_FILE: envoyCertificate.keyFile,
      MANDATE_ENVOY_XDS_CA_FILE: authority.caFile,
      MANDATE_ENVOY_XDS_SERVER_NAME: 'xds.mandate.internal',
      MANDATE_ENVOY_EXT_PROC_CA_FILE: authority.caFile,
      MANDATE_ENVOY_EXT_PROC_SERVER_NAME: 'ext-proc.mandate.internal',
    },
  });
});

after(async () => {
  await gateway?.stop();
  authority?.dispose();
  stranger?.dispose();
});

test('Envoy takes its config over mutual TLS and every request passes ext_proc over mutual TLS', async () => {
  // The fixture waited for Envoy to ACK the demo config, which came over ADS.
  const allowed = await fetch(`${gateway.gatewayUrl}/personas/support-agent/tickets/tickets/4`, { headers: { authorization: `Bearer ${gateway.tokens['support-agent']}` } });
  assert.equal(allowed.status, 200);
  assert.match(await allowed.text(), /\*\*\*\* \*\*\*\* \*\*\*\* 6467/, 'ext_proc inspected and masked the answer');
  const refused = await fetch(`${gateway.gatewayUrl}/personas/support-agent/tickets/tickets?project=INTERNAL`, { headers: { authorization: `Bearer ${gateway.tokens['support-agent']}` } });
  assert.equal(refused.status, 403, 'ext_proc decided');
  await refused.arrayBuffer();
});

/** Whether a gRPC channel to the port becomes ready within a second with these credentials. */
async function connects(port: number, credentials: grpc.ChannelCredentials, serverName: string): Promise<boolean> {
  const client = new grpc.Client(`127.0.0.1:${port}`, credentials, { 'grpc.ssl_target_name_override': serverName, 'grpc.default_authority': serverName });
  try {
    await new Promise<void>((resolve, reject) => client.waitForReady(Date.now() + 1500, (error) => (error ? reject(error) : resolve())));
    return true;
  } catch {
    return false;
  } finally {
    client.close();
  }
}

test('neither server takes a client without TLS, without a certificate, or with one another CA signed', async () => {
  const intruder = stranger.issue('intruder', 'DNS:intruder.example', 'clientAuth');
  for (const [port, name] of [[gateway.ports.xds, 'xds.mandate.internal'], [gateway.ports.extProc, 'ext-proc.mandate.internal']] as const) {
    assert.equal(await connects(port, grpc.credentials.createSsl(authority.ca, envoyCertificate.key, envoyCertificate.cert), name), true, `${name}: the CA's client certificate connects`);
    assert.equal(await connects(port, grpc.credentials.createInsecure(), name), false, `${name}: plain gRPC`);
    assert.equal(await connects(port, grpc.credentials.createSsl(authority.ca), name), false, `${name}: TLS without a client certificate`);
    assert.equal(await connects(port, grpc.credentials.createSsl(authority.ca, intruder.key, intruder.cert), name), false, `${name}: another CA's certificate`);
  }
});
