import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseGatewaySettings } from './settings.ts';

test('gateway TLS and CA settings: defaults, the pairs that go together, absolute paths only', () => {
  const defaults = parseGatewaySettings({});
  assert.equal(defaults.listenerTls, null);
  assert.equal(defaults.upstreamCaFile, '/etc/ssl/certs/ca-certificates.crt');
  assert.deepEqual(parseGatewaySettings({ MANDATE_GATEWAY_TLS_CERT_FILE: '/tls/crt.pem', MANDATE_GATEWAY_TLS_KEY_FILE: '/tls/key.pem', MANDATE_UPSTREAM_CA_FILE: '/ca/bundle.pem' }).listenerTls, { certFile: '/tls/crt.pem', keyFile: '/tls/key.pem', clientCaFile: null });
  assert.equal(parseGatewaySettings({ MANDATE_UPSTREAM_CA_FILE: '/ca/bundle.pem' }).upstreamCaFile, '/ca/bundle.pem');
  const refused: [Record<string, string>, RegExp][] = [
    [{ MANDATE_GATEWAY_TLS_CERT_FILE: '/tls/crt.pem' }, /set both MANDATE_GATEWAY_TLS_CERT_FILE and MANDATE_GATEWAY_TLS_KEY_FILE, or neither/],
    [{ MANDATE_GATEWAY_TLS_CLIENT_CA_FILE: '/ca.pem' }, /MANDATE_GATEWAY_TLS_CLIENT_CA_FILE needs/],
    [{ MANDATE_GATEWAY_TLS_CERT_FILE: 'crt.pem', MANDATE_GATEWAY_TLS_KEY_FILE: '/tls/key.pem' }, /MANDATE_GATEWAY_TLS_CERT_FILE must be an absolute path/],
    [{ MANDATE_UPSTREAM_CA_FILE: 'bundle.pem' }, /MANDATE_UPSTREAM_CA_FILE must be an absolute path/],
  ];
  for (const [env, message] of refused) assert.throws(() => parseGatewaySettings(env), message, JSON.stringify(env));
});
