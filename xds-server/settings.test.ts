import assert from 'node:assert/strict';
import { test } from 'node:test';
import { extProcMaxMessageWaitMs } from '../config/ext-proc-wait.ts';
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

test('request timeouts pushed to Envoy: defaults, and whole milliseconds from 100 ms to an hour', () => {
  const defaults = parseGatewaySettings({});
  assert.equal(defaults.requestHeadersTimeoutMs, 10_000);
  assert.equal(defaults.requestTimeoutMs, 60_000);
  const set = parseGatewaySettings({ MANDATE_GATEWAY_REQUEST_HEADERS_TIMEOUT_MS: '500', MANDATE_GATEWAY_REQUEST_TIMEOUT_MS: '120000' });
  assert.equal(set.requestHeadersTimeoutMs, 500);
  assert.equal(set.requestTimeoutMs, 120_000);
  for (const value of ['0', '99', '1.5', 'ten', '3600001']) {
    assert.throws(() => parseGatewaySettings({ MANDATE_GATEWAY_REQUEST_TIMEOUT_MS: value }), /MANDATE_GATEWAY_REQUEST_TIMEOUT_MS must be an integer 100-3600000/);
    assert.throws(() => parseGatewaySettings({ MANDATE_GATEWAY_REQUEST_HEADERS_TIMEOUT_MS: value }), /MANDATE_GATEWAY_REQUEST_HEADERS_TIMEOUT_MS must be/);
  }
});

test("ext_proc's per-message timeout is within Envoy's max_message_timeout, which the capped per-message overrides may not pass", () => {
  assert.equal(parseGatewaySettings({}).messageTimeoutMs, 2000);
  assert.equal(parseGatewaySettings({ MANDATE_EXT_PROC_MESSAGE_TIMEOUT_MS: '50' }).messageTimeoutMs, 50);
  assert.equal(parseGatewaySettings({ MANDATE_EXT_PROC_MESSAGE_TIMEOUT_MS: String(extProcMaxMessageWaitMs) }).messageTimeoutMs, extProcMaxMessageWaitMs);
  for (const value of ['49', '1.5', 'ten', '', String(extProcMaxMessageWaitMs + 1), '60000']) {
    assert.throws(
      () => parseGatewaySettings({ MANDATE_EXT_PROC_MESSAGE_TIMEOUT_MS: value }),
      new RegExp(`^Error: MANDATE_EXT_PROC_MESSAGE_TIMEOUT_MS must be an integer 50-${extProcMaxMessageWaitMs} \\(milliseconds\\), not "${value}": `),
      value,
    );
  }
});
