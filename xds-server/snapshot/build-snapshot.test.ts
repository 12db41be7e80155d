import assert from 'node:assert/strict';
import { test } from 'node:test';
import { configBundleSchema, type PolicySnapshot } from '../../config/bundle.ts';
import { loadEnvoyApi } from '../../proto/envoy-api.ts';
import { connectionLimits, buildSnapshot, defaultGatewaySettings, upstreamClusterName } from './build-snapshot.ts';
import { createResourceEncoder } from './encode-resources.ts';
import { createSnapshotCache } from './snapshot-cache.ts';

function policy(version: number, personaOverrides: Record<string, unknown> = {}): PolicySnapshot {
  const bundle = configBundleSchema.parse({
    upstreams: [
      { kind: 'Upstream', name: 'mcp-a', protocol: 'mcp', url: 'http://10.0.0.5:3001/mcp' },
      { kind: 'Upstream', name: 'rest-b', protocol: 'rest', url: 'https://api.example.com/v2' },
    ],
    skills: [{ kind: 'Skill', name: 'reader', grants: [{ upstream: 'rest-b', operations: [{ method: 'POST', path: '/search', when: "body.scope == 'public'" }] }] }],
    personas: [
      { kind: 'Persona', name: 'support', description: 'd', skills: ['reader'], grants: [{ upstream: 'mcp-a', tools: [{ name: 'echo' }] }], ...personaOverrides },
    ],
  });
  return { version, createdAt: '2026-01-01T00:00:00Z', bundle, credentials: [], upstreamCredentials: {} };
}

const api = loadEnvoyApi();

test('one route per Persona and granted upstream, with the route identity in ext_proc metadata', () => {
  const snapshot = buildSnapshot(policy(3), defaultGatewaySettings);
  const routes = (snapshot.resources.routes[0]!.virtual_hosts as { routes: Record<string, any>[] }[])[0]!.routes;
  assert.deepEqual(routes.map((r) => r.name), ['support/mcp-a', 'support/rest-b', 'connect-refused', 'not-found']);
  const mcp = routes[0]!;
  assert.deepEqual(mcp.match, { path_separated_prefix: '/personas/support/mcp-a' });
  assert.equal(mcp.route.prefix_rewrite, '/mcp');
  assert.equal(mcp.route.cluster, upstreamClusterName('mcp-a'));
  const overrides = mcp.typed_per_filter_config['envoy.filters.http.ext_proc'].overrides;
  assert.equal(overrides.processing_mode.request_body_mode, 'BUFFERED');
  assert.deepEqual(
    Object.fromEntries(overrides.grpc_initial_metadata.map((m: { key: string; value: string }) => [m.key, m.value])),
    { 'x-mandate-persona': 'support', 'x-mandate-upstream': 'mcp-a', 'x-mandate-route-kind': 'mcp', 'x-mandate-route-prefix': '/personas/support/mcp-a', 'x-mandate-config-version': '3' },
  );
  // A REST grant whose condition reads the body makes that route buffer bodies.
  assert.equal(routes[1]!.typed_per_filter_config['envoy.filters.http.ext_proc'].overrides.processing_mode.request_body_mode, 'BUFFERED');
  assert.ok((snapshot.resources.routes[0]!.request_headers_to_remove as string[]).includes('x-mandate-persona'));
});

test('ext_proc asks for response headers only on Mandate routes: Envoy\'s replies to requests on no route pass it by', () => {
  const snapshot = buildSnapshot(policy(1, { authentication: { tokens: true, jwt: { issuer: 'https://idp.example', jwksUri: 'https://idp.example/jwks', audiences: ['a'] } } }), defaultGatewaySettings);
  const hcm = (snapshot.resources.listeners[0]!.filter_chains as any[])[0].filters[0].typed_config;
  const extProc = hcm.http_filters.find((f: { name: string }) => f.name === 'envoy.filters.http.ext_proc').typed_config;
  // Still consulted (and refusing) for a request on a route without its own config: fail closed.
  assert.equal(extProc.processing_mode.request_header_mode, 'SEND');
  assert.equal(extProc.processing_mode.response_header_mode, 'SKIP');
  assert.equal(extProc.failure_mode_allow, false);
  const routes = (snapshot.resources.routes[0]!.virtual_hosts as { routes: Record<string, any>[] }[])[0]!.routes;
  const mandateRoutes = routes.filter((r) => r.route);
  assert.deepEqual(mandateRoutes.map((r) => r.name), ['support/mcp-a', 'support/mcp-a/resource-metadata', 'support/rest-b', 'support/rest-b/resource-metadata']);
  for (const route of mandateRoutes) {
    const mode = route.typed_per_filter_config['envoy.filters.http.ext_proc'].overrides.processing_mode;
    assert.equal(mode.request_header_mode, 'SEND', route.name);
    assert.equal(mode.response_header_mode, 'SEND', route.name);
  }
  // The rest Envoy answers itself, without ext_proc: CONNECT (405) and every other path (404).
  for (const route of routes.filter((r) => !r.route)) {
    assert.equal(route.typed_per_filter_config['envoy.filters.http.ext_proc'].disabled, true, route.name);
    assert.equal(JSON.parse(route.direct_response.body.inline_string).code, route.name === 'connect-refused' ? 'method_not_allowed' : 'unknown_endpoint');
  }
});

test('the agents\' listener bounds how long a request may take to arrive, and Envoy\'s own replies carry a Mandate code', () => {
  const encode = createResourceEncoder(api.root);
  const listener = buildSnapshot(policy(1), { ...defaultGatewaySettings, requestHeadersTimeoutMs: 1500, requestTimeoutMs: 45_000 }).resources.listeners[0]!;
  encode('listeners', listener);
  const hcm = (listener.filter_chains as any[])[0].filters[0].typed_config;
  assert.deepEqual(hcm.request_headers_timeout, { seconds: 1, nanos: 500_000_000 });
  assert.deepEqual(hcm.request_timeout, { seconds: 45, nanos: 0 });
  const mappers = hcm.local_reply_config.mappers as Record<string, any>[];
  // Replies ext_proc and the routes made pass unchanged; they match first.
  assert.match(mappers[0]!.filter.extension_filter.typed_config.expression, /startsWith\('mandate_'\).*direct_response/);
  assert.equal(mappers[0]!.body_format_override, undefined);
  const codes = mappers.slice(1).map((m) => m.body_format_override.json_format.fields.find((f: { key: string }) => f.key === 'code').value.string_value);
  // Envoy's own cut of an answer that outgrew its buffer (a bare 500) is Mandate's 502 response_too_large.
  const tooLarge = mappers.find((m) => m.filter.extension_filter?.typed_config.expression === "response.code_details == 'response_payload_too_large'")!;
  assert.equal(tooLarge.status_code, 502);
  // Envoy's overload manager's refusal (envoy/bootstrap.yaml) is not an upstream failure; it is marked by a header too.
  const overloaded = mappers.find((m) => m.filter.extension_filter?.typed_config.expression === "response.code_details == 'overload'")!;
  assert.equal(overloaded.status_code, undefined);
  assert.ok(mappers.indexOf(overloaded) < codes.indexOf('upstream_unavailable') + 1, 'before the 502/503 upstream_unavailable mapper');
  assert.equal(hcm.append_local_overload, true);
  assert.deepEqual(codes, ['malformed_request', 'request_headers_too_large', 'unsupported_http_version', 'payload_too_large', 'request_timeout', 'response_too_large', 'upgrade_not_supported', 'unknown_endpoint', 'policy_service_unavailable', 'gateway_overloaded', 'upstream_timeout', 'upstream_unavailable']);
});

test('what Envoy holds per agent connection and stream is bounded, whatever the protocol; the Persona route still raises its stream buffer to maxBodyBytes', () => {
  const encode = createResourceEncoder(api.root);
  const snapshot = buildSnapshot(policy(1), defaultGatewaySettings);
  const listener = snapshot.resources.listeners[0]!;
  encode('listeners', listener);
  assert.equal(listener.per_connection_buffer_limit_bytes, 32 * 1024);
  const hcm = (listener.filter_chains as any[])[0].filters[0].typed_config;
  assert.deepEqual(hcm.http2_protocol_options, { max_concurrent_streams: 100, initial_stream_window_size: 64 * 1024, initial_connection_window_size: 1024 * 1024 });
  assert.deepEqual(connectionLimits, { connectionBufferBytes: 32 * 1024, http2StreamWindowBytes: 64 * 1024, http2ConnectionWindowBytes: 1024 * 1024, http2MaxConcurrentStreams: 100 });
  for (const name of [upstreamClusterName('mcp-a'), upstreamClusterName('rest-b')]) {
    assert.equal(snapshot.resources.clusters.find((c) => c.name === name)!.per_connection_buffer_limit_bytes, 32 * 1024, name);
  }
  const personaRoutes = (snapshot.resources.routes[0]!.virtual_hosts as any[])[0].routes.filter((r: any) => r.route);
  assert.ok(personaRoutes.length > 0);
  for (const route of personaRoutes) assert.equal(route.request_body_buffer_limit, 4 * 1024 * 1024, route.name);
});

test('CIDR rules become per-route RBAC; no rules means no RBAC on the route', () => {
  const without = buildSnapshot(policy(1), defaultGatewaySettings);
  const plainRoute = (without.resources.routes[0]!.virtual_hosts as any[])[0].routes[0];
  assert.equal(plainRoute.typed_per_filter_config['envoy.filters.http.rbac'], undefined);
  const withRules = buildSnapshot(policy(2, { network: { allow: ['10.0.0.0/8'], deny: ['10.9.0.0/16'] } }), defaultGatewaySettings);
  const rbac = (withRules.resources.routes[0]!.virtual_hosts as any[])[0].routes[0].typed_per_filter_config['envoy.filters.http.rbac'];
  const principal = rbac.rbac.rules.policies['persona-network-support'].principals[0];
  assert.deepEqual(principal.and_ids.ids[0], { or_ids: { ids: [{ remote_ip: { address_prefix: '10.0.0.0', prefix_len: 8 } }] } });
  assert.deepEqual(principal.and_ids.ids[1], { not_id: { or_ids: { ids: [{ remote_ip: { address_prefix: '10.9.0.0', prefix_len: 16 } }] } } });
});

test('IP upstreams use EDS; host names use STRICT_DNS with TLS and SNI for https', () => {
  const snapshot = buildSnapshot(policy(1), defaultGatewaySettings);
  const clusters = Object.fromEntries(snapshot.resources.clusters.map((c) => [c.name, c]));
  assert.equal(clusters[upstreamClusterName('mcp-a')]!.type, 'EDS');
  const rest = clusters[upstreamClusterName('rest-b')]!;
  assert.equal(rest.type, 'STRICT_DNS');
  assert.equal((rest.transport_socket as any).typed_config.sni, 'api.example.com');
  assert.deepEqual(snapshot.resources.endpoints.map((e) => e.cluster_name).sort(), ['mandate-ext-proc', upstreamClusterName('mcp-a')]);
});

test('https upstreams are verified: the chain against the system CAs or the upstream\'s own, the name against the URL host or tls.serverName', () => {
  const tlsOf = (upstream: Record<string, unknown>, settings = defaultGatewaySettings) => {
    const bundle = configBundleSchema.parse({ upstreams: [{ kind: 'Upstream', name: 'u', protocol: 'rest', ...upstream }], skills: [], personas: [] });
    const cluster = buildSnapshot({ version: 1, createdAt: '2026-01-01T00:00:00Z', bundle, credentials: [], upstreamCredentials: {} }, settings).resources.clusters.find((c) => c.name === upstreamClusterName('u'))!;
    createResourceEncoder(api.root)('clusters', cluster);
    return (cluster.transport_socket as { typed_config: Record<string, any> } | undefined)?.typed_config;
  };
  assert.deepEqual(tlsOf({ url: 'https://api.example.com:8443/v2' }), {
    '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
    sni: 'api.example.com',
    common_tls_context: {
      validation_context: {
        trusted_ca: { filename: '/etc/ssl/certs/ca-certificates.crt' },
        match_typed_subject_alt_names: [{ san_type: 'DNS', matcher: { exact: 'api.example.com' } }],
      },
    },
  });
  const own = tlsOf({ url: 'https://10.1.2.3/api', tls: { caFile: '/etc/mandate/internal-ca.pem', serverName: 'billing.internal' } }, { ...defaultGatewaySettings, upstreamCaFile: '/opt/ca.pem' });
  assert.equal(own?.sni, 'billing.internal');
  assert.deepEqual(own?.common_tls_context.validation_context, {
    trusted_ca: { filename: '/etc/mandate/internal-ca.pem' },
    match_typed_subject_alt_names: [{ san_type: 'DNS', matcher: { exact: 'billing.internal' } }],
  });
  const ip = tlsOf({ url: 'https://10.1.2.3/api' }, { ...defaultGatewaySettings, upstreamCaFile: '/opt/ca.pem' });
  assert.equal(ip?.sni, undefined, 'no SNI for an IP address');
  assert.deepEqual(ip?.common_tls_context.validation_context, { trusted_ca: { filename: '/opt/ca.pem' }, match_typed_subject_alt_names: [{ san_type: 'IP_ADDRESS', matcher: { exact: '10.1.2.3' } }] });
  assert.equal(tlsOf({ url: 'http://api.example.com/' }), undefined);
  const refused = configBundleSchema.safeParse({ upstreams: [{ kind: 'Upstream', name: 'u', protocol: 'rest', url: 'http://api.example.com/', tls: { caFile: '/ca.pem' } }], skills: [], personas: [] });
  assert.equal(refused.success, false);
  assert.match(JSON.stringify(refused.error?.issues), /applies to https:\/\/ upstreams only/);
  for (const tls of [{ caFile: 'relative/ca.pem' }, { serverName: 'not a name' }, { insecure: true }]) {
    assert.equal(configBundleSchema.safeParse({ upstreams: [{ kind: 'Upstream', name: 'u', protocol: 'rest', url: 'https://a.example/', tls }], skills: [], personas: [] }).success, false, JSON.stringify(tls));
  }
});

test('every resource encodes against the Envoy descriptors, and the build is deterministic', () => {
  const encode = createResourceEncoder(api.root);
  const a = buildSnapshot(policy(5, { network: { allow: ['fd00::/8'], deny: [] } }), defaultGatewaySettings);
  const b = buildSnapshot(policy(5, { network: { allow: ['fd00::/8'], deny: [] } }), defaultGatewaySettings);
  for (const type of ['clusters', 'endpoints', 'listeners', 'routes'] as const) {
    const left = a.resources[type].map((r) => encode(type, r).any.value.toString('hex'));
    const right = b.resources[type].map((r) => encode(type, r).any.value.toString('hex'));
    assert.deepEqual(left, right);
  }
});

test('the encoder refuses a field Envoy does not have, naming its path', () => {
  const encode = createResourceEncoder(api.root);
  assert.throws(() => encode('clusters', { name: 'x', conect_timeout: { seconds: 1 } }), /clusters\[x\]\.conect_timeout: no such field in envoy\.config\.cluster\.v3\.Cluster/);
});

test('per-type versions change only when that type changes', () => {
  const cache = createSnapshotCache(createResourceEncoder(api.root));
  const first = cache.set('g', buildSnapshot(policy(1), defaultGatewaySettings));
  const second = cache.set('g', buildSnapshot(policy(2, { description: 'edited' }), defaultGatewaySettings));
  // A description edit changes the config version in route metadata only.
  assert.equal(second.types.clusters.version, first.types.clusters.version);
  assert.equal(second.types.listeners.version, first.types.listeners.version);
  assert.notEqual(second.types.routes.version, first.types.routes.version);
  assert.equal(second.configVersion, 2);
});

test('with TLS settings the agents\' listener terminates TLS from watched files, and with a client CA requires a client certificate', () => {
  const encode = createResourceEncoder(api.root);
  const listenerOf = (listenerTls: typeof defaultGatewaySettings.listenerTls) => {
    const listener = buildSnapshot(policy(1), { ...defaultGatewaySettings, listenerTls }).resources.listeners[0]!;
    encode('listeners', listener);
    return (listener.filter_chains as { transport_socket?: { typed_config: Record<string, any> } }[])[0]!.transport_socket?.typed_config;
  };
  assert.equal(listenerOf(null), undefined, 'plain HTTP by default');
  const tls = listenerOf({ certFile: '/etc/mandate/tls/tls.crt', keyFile: '/etc/mandate/tls/tls.key', clientCaFile: null })!;
  assert.deepEqual(tls.common_tls_context.tls_certificates, [{ certificate_chain: { filename: '/etc/mandate/tls/tls.crt' }, private_key: { filename: '/etc/mandate/tls/tls.key' }, watched_directory: { path: '/etc/mandate/tls' } }]);
  assert.equal(tls.require_client_certificate, undefined);
  assert.equal(tls.common_tls_context.validation_context, undefined);
  const mutual = listenerOf({ certFile: '/etc/mandate/tls/tls.crt', keyFile: '/etc/mandate/tls/tls.key', clientCaFile: '/etc/mandate/agents/ca.pem' })!;
  assert.equal(mutual.require_client_certificate, true);
  assert.deepEqual(mutual.common_tls_context.validation_context, { trusted_ca: { filename: '/etc/mandate/agents/ca.pem' }, watched_directory: { path: '/etc/mandate/agents' } });
});
