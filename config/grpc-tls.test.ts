import assert from 'node:assert/strict';
import { test } from 'node:test';
import { envoyChannelTlsFromEnv, envoyChannelTransportSocket, grpcServerCredentials, serverTlsFromEnv } from './grpc-tls.ts';

test('server TLS settings: off by default, cert and key together, a client CA only with them, absolute paths', () => {
  assert.equal(serverTlsFromEnv({}, 'MANDATE_XDS_TLS'), null);
  assert.deepEqual(serverTlsFromEnv({ MANDATE_XDS_TLS_CERT_FILE: '/t/c.pem', MANDATE_XDS_TLS_KEY_FILE: '/t/k.pem' }, 'MANDATE_XDS_TLS'), { certFile: '/t/c.pem', keyFile: '/t/k.pem', clientCaFile: null });
  assert.throws(() => serverTlsFromEnv({ MANDATE_XDS_TLS_CERT_FILE: '/t/c.pem' }, 'MANDATE_XDS_TLS'), /set both MANDATE_XDS_TLS_CERT_FILE and MANDATE_XDS_TLS_KEY_FILE/);
  assert.throws(() => serverTlsFromEnv({ MANDATE_EXT_PROC_TLS_CLIENT_CA_FILE: '/ca.pem' }, 'MANDATE_EXT_PROC_TLS'), /MANDATE_EXT_PROC_TLS_CLIENT_CA_FILE needs/);
  assert.throws(() => serverTlsFromEnv({ MANDATE_XDS_TLS_CERT_FILE: 'c.pem', MANDATE_XDS_TLS_KEY_FILE: '/k.pem' }, 'MANDATE_XDS_TLS'), /MANDATE_XDS_TLS_CERT_FILE must be an absolute path/);
  assert.throws(() => grpcServerCredentials({ certFile: '/nonexistent/c.pem', keyFile: '/nonexistent/k.pem', clientCaFile: null }), /cannot read the certificate \/nonexistent\/c\.pem \(ENOENT\)/);
});

test('Envoy channel TLS: a CA turns it on, a server name is checked as a DNS SAN and sent as SNI, Envoy\'s certificate is presented', () => {
  assert.equal(envoyChannelTlsFromEnv({}, 'MANDATE_ENVOY_XDS'), null);
  assert.throws(() => envoyChannelTlsFromEnv({ MANDATE_ENVOY_XDS_SERVER_NAME: 'xds.internal' }, 'MANDATE_ENVOY_XDS'), /MANDATE_ENVOY_XDS_SERVER_NAME needs MANDATE_ENVOY_XDS_CA_FILE/);
  assert.throws(() => envoyChannelTlsFromEnv({ MANDATE_ENVOY_XDS_CA_FILE: '/ca.pem', MANDATE_ENVOY_XDS_SERVER_NAME: 'not a name' }, 'MANDATE_ENVOY_XDS'), /must be a DNS name/);
  assert.throws(() => envoyChannelTlsFromEnv({ MANDATE_ENVOY_XDS_CA_FILE: '/ca.pem', MANDATE_ENVOY_TLS_CERT_FILE: '/e.pem' }, 'MANDATE_ENVOY_XDS'), /set both MANDATE_ENVOY_TLS_CERT_FILE and MANDATE_ENVOY_TLS_KEY_FILE/);
  const tls = envoyChannelTlsFromEnv({ MANDATE_ENVOY_EXT_PROC_CA_FILE: '/ca.pem', MANDATE_ENVOY_EXT_PROC_SERVER_NAME: 'ext-proc.internal', MANDATE_ENVOY_TLS_CERT_FILE: '/e.pem', MANDATE_ENVOY_TLS_KEY_FILE: '/e.key' }, 'MANDATE_ENVOY_EXT_PROC')!;
  assert.deepEqual(envoyChannelTransportSocket(tls), {
    name: 'envoy.transport_sockets.tls',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
      sni: 'ext-proc.internal',
      common_tls_context: {
        alpn_protocols: ['h2'],
        tls_certificates: [{ certificate_chain: { filename: '/e.pem' }, private_key: { filename: '/e.key' } }],
        validation_context: { trusted_ca: { filename: '/ca.pem' }, match_typed_subject_alt_names: [{ san_type: 'DNS', matcher: { exact: 'ext-proc.internal' } }] },
      },
    },
  });
});
