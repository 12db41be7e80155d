// Builds the Envoy configuration for one node group as a pure function of the
// stored config: the same PolicySnapshot and settings always give the same
// resources. Nothing here does I/O or knows about xDS streams.
import { dirname } from 'node:path';
import { effectiveGrants, type PolicySnapshot } from '../../config/bundle.ts';
import { envoyChannelTransportSocket, isIpLiteral, verifiedUpstreamTransportSocket, type EnvoyChannelTls, type ServerTlsFiles } from '../../config/grpc-tls.ts';
import { extProcMaxMessageWaitMs } from '../../config/ext-proc-wait.ts';
import { reservedRequestHeaders, routeMetadataKeys } from '../../config/route-identity.ts';
import { personaPathPrefix, type Grant, type Persona, type Upstream } from '../../config/schema.ts';

export interface GatewaySettings {
  /** Where Envoy accepts agent traffic. */
  listener: { address: string; port: number };
  /** ext_proc replicas Envoy calls, as host:port pairs. */
  extProcEndpoints: { address: string; port: number }[];
  /** Per-message ext_proc timeout; generous because a Node process can pause for GC. */
  messageTimeoutMs: number;
  /** How long an agent may take to send a request's headers (from their first byte). */
  requestHeadersTimeoutMs: number;
  /** How long an agent may take to send a whole request (headers and body, ext_proc's decision included); answers and event streams are not limited by it. */
  requestTimeoutMs: number;
  /** Number of trusted proxies in front of Envoy that append to X-Forwarded-For (0: the peer address is the source). */
  trustedProxyHops: number;
  /** PEM bundle, on the Envoy hosts, of the CAs https:// upstreams are verified against unless an upstream names its own. */
  upstreamCaFile: string;
  /** TLS on the agents' listener (files on the Envoy hosts); with clientCaFile, agents must present a certificate it signed. Null: plain HTTP. */
  listenerTls: ServerTlsFiles | null;
  /** TLS from Envoy to the ext_proc replicas; null: plain gRPC (the replicas beside Envoy). */
  extProcTls: EnvoyChannelTls | null;
}

export const defaultGatewaySettings: GatewaySettings = {
  listener: { address: '127.0.0.1', port: 10000 },
  extProcEndpoints: [{ address: '127.0.0.1', port: 9002 }],
  messageTimeoutMs: 2000,
  requestHeadersTimeoutMs: 10_000,
  requestTimeoutMs: 60_000,
  trustedProxyHops: 0,
  upstreamCaFile: '/etc/ssl/certs/ca-certificates.crt',
  listenerTls: null,
  extProcTls: null,
};

export const typeUrls = {
  clusters: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  endpoints: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
  listeners: 'type.googleapis.com/envoy.config.listener.v3.Listener',
  routes: 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
} as const;

export type ResourceType = keyof typeof typeUrls;
/** CDS, EDS, LDS, RDS: make before break. */
export const pushOrder: ResourceType[] = ['clusters', 'endpoints', 'listeners', 'routes'];

/** A resource as a protobuf-JSON-like object; nested Any values carry "@type". */
export type ResourceObject = { name?: string; cluster_name?: string } & Record<string, unknown>;

export interface XdsSnapshot {
  configVersion: number;
  resources: Record<ResourceType, ResourceObject[]>;
}

export const extProcClusterName = 'mandate-ext-proc';
export const listenerName = 'mandate-gateway';
export const routeConfigName = 'mandate-routes';
export const extProcFilterName = 'envoy.filters.http.ext_proc';
export const rbacFilterName = 'envoy.filters.http.rbac';

export function upstreamClusterName(upstream: string): string {
  return `mandate-upstream-${upstream}`;
}

export function buildSnapshot(policy: PolicySnapshot, settings: GatewaySettings): XdsSnapshot {
  const upstreams = [...policy.bundle.upstreams].sort((a, b) => a.name.localeCompare(b.name));
  const personas = [...policy.bundle.personas].sort((a, b) => a.name.localeCompare(b.name));
  const clusters: ResourceObject[] = [extProcCluster(settings), ...upstreams.map((u) => upstreamCluster(u, settings))];
  const endpoints: ResourceObject[] = [
    loadAssignment(extProcClusterName, settings.extProcEndpoints),
    ...upstreams.filter((u) => isIpLiteral(parseUpstreamUrl(u).host)).map((u) => loadAssignment(upstreamClusterName(u.name), [endpointOf(u)])),
  ];
  return {
    configVersion: policy.version,
    resources: {
      clusters,
      endpoints,
      listeners: [gatewayListener(settings)],
      routes: [routeConfiguration(policy, personas, upstreams, settings)],
    },
  };
}

function extProcCluster(settings: GatewaySettings): ResourceObject {
  return {
    name: extProcClusterName,
    ...(settings.extProcTls ? { transport_socket: envoyChannelTransportSocket(settings.extProcTls) } : {}),
    type: 'EDS',
    eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' } },
    connect_timeout: duration(1000),
    typed_extension_protocol_options: {
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
        '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
        explicit_http_config: {
          http2_protocol_options: { connection_keepalive: { interval: duration(30_000), timeout: duration(5_000) } },
        },
      },
    },
    // Every in-flight request holds one ext_proc stream; the default of 1024 overflows under load.
    circuit_breakers: { thresholds: [{ max_connections: 100_000, max_pending_requests: 1_000_000, max_requests: 1_000_000 }] },
  };
}

function upstreamCluster(upstream: Upstream, settings: GatewaySettings): ResourceObject {
  const url = parseUpstreamUrl(upstream);
  const common: ResourceObject = {
    name: upstreamClusterName(upstream.name),
    connect_timeout: duration(5_000),
    circuit_breakers: { thresholds: [{ max_connections: 100_000, max_pending_requests: 100_000, max_requests: 100_000 }] },
    // An upstream's answer waits in the stream's buffer (the route's limit), not in its connection's.
    per_connection_buffer_limit_bytes: connectionLimits.connectionBufferBytes,
  };
  if (url.tls) {
    // Envoy verifies nothing unless told to: the chain against the CAs, and the name the URL (or tls.serverName) gives.
    common.transport_socket = verifiedUpstreamTransportSocket({ caFile: upstream.tls?.caFile ?? settings.upstreamCaFile, serverName: upstream.tls?.serverName ?? url.host });
  }
  if (isIpLiteral(url.host)) {
    return { ...common, type: 'EDS', eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' } } };
  }
  return {
    ...common,
    type: 'STRICT_DNS',
    dns_lookup_family: 'V4_PREFERRED',
    load_assignment: loadAssignment(common.name as string, [endpointOf(upstream)]),
  };
}

function loadAssignment(clusterName: string, addresses: { address: string; port: number }[]): ResourceObject {
  return {
    cluster_name: clusterName,
    endpoints: [
      {
        lb_endpoints: addresses.map(({ address, port }) => ({
          endpoint: { address: { socket_address: { address, port_value: port } } },
        })),
      },
    ],
  };
}

/**
 * What Envoy may hold for one connection or stream before it stops reading, whatever the protocol
 * (Envoy's edge-proxy guidance). Envoy's defaults suit a service mesh, not an edge: a 1 MiB connection
 * buffer and, for HTTP/2 (which the listener takes without TLS too), 16 MiB stream and 24 MiB
 * connection windows and 1024 streams, so one agent made Envoy take in about 17 MiB per stream
 * before a body over the Persona's limit was refused (20 streams: about 200 MiB of RSS). The Persona
 * routes' request_body_buffer_limit (maxBodyBytes) raises a stream's buffer above the connection's,
 * so what Envoy buffers for inspection is the Persona's limit, not these.
 * Fixed, not settings: nothing in a deployment calls for other values, and larger ones only raise
 * what an agent (or an upstream) can make Envoy hold.
 */
export const connectionLimits = {
  /** The listener's per-connection read and write buffers (and every stream's floor). */
  connectionBufferBytes: 32 * 1024,
  /** HTTP/2: what an agent may send on one stream before Envoy has passed it on. */
  http2StreamWindowBytes: 64 * 1024,
  /** HTTP/2: the same for all of one connection's streams together. */
  http2ConnectionWindowBytes: 1024 * 1024,
  /** HTTP/2: streams open at once on one connection. */
  http2MaxConcurrentStreams: 100,
} as const;

function gatewayListener(settings: GatewaySettings): ResourceObject {
  return {
    name: listenerName,
    address: { socket_address: { address: settings.listener.address, port_value: settings.listener.port } },
    per_connection_buffer_limit_bytes: connectionLimits.connectionBufferBytes,
    filter_chains: [
      {
        ...(settings.listenerTls ? { transport_socket: listenerTransportSocket(settings.listenerTls) } : {}),
        filters: [
          {
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
              stat_prefix: 'mandate_gateway',
              codec_type: 'AUTO',
              use_remote_address: true,
              xff_num_trusted_hops: settings.trustedProxyHops,
              // Routes are chosen by path prefix (the Persona's endpoint): "..", "." and "//" are resolved
              // first (RFC 3986), so no path can reach one endpoint's route while naming another's place.
              // Encoded slashes stay as they are: inside one segment they are data (ext_proc decodes segments).
              normalize_path: true,
              merge_slashes: true,
              path_with_escaped_slashes_action: 'KEEP_UNCHANGED',
              generate_request_id: true,
              // A client that stops sending part-way would otherwise hold its connection and an ext_proc
              // stream until the 5-minute stream idle timeout. Both end when the request is in: a long
              // answer or event stream is bounded by the route's timeouts, not these.
              request_headers_timeout: duration(settings.requestHeadersTimeoutMs),
              request_timeout: duration(settings.requestTimeoutMs),
              http2_protocol_options: {
                max_concurrent_streams: connectionLimits.http2MaxConcurrentStreams,
                initial_stream_window_size: connectionLimits.http2StreamWindowBytes,
                initial_connection_window_size: connectionLimits.http2ConnectionWindowBytes,
              },
              local_reply_config: localReplyConfig(),
              // A request refused because Envoy is short of memory (above) also carries x-envoy-local-overloaded: true.
              append_local_overload: true,
              // CONNECT reaches the route that refuses it (405) instead of a bare 403 "upgrade_failed".
              upgrade_configs: [{ upgrade_type: 'CONNECT' }],
              rds: { route_config_name: routeConfigName, config_source: { ads: {}, resource_api_version: 'V3' } },
              http_filters: [
                // No rules at filter level: enforcement comes only from per-route RBAC (Persona CIDR rules).
                { name: rbacFilterName, typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC' } },
                { name: extProcFilterName, typed_config: extProcFilterConfig(settings) },
                { name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } },
              ],
              access_log: [
                {
                  name: 'envoy.access_loggers.stdout',
                  typed_config: {
                    '@type': 'type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog',
                    log_format: { text_format_source: { inline_string: accessLogFormat } },
                  },
                },
              ],
            },
          },
        ],
      },
    ],
  };
}

/**
 * TLS for agents. The key pair is read from files whose directory Envoy watches, so a rotation that
 * swaps the directory (a Kubernetes secret, cert-manager) takes effect without a restart.
 */
function listenerTransportSocket(tls: NonNullable<GatewaySettings['listenerTls']>): ResourceObject {
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
      common_tls_context: {
        alpn_protocols: ['h2', 'http/1.1'],
        tls_params: { tls_minimum_protocol_version: 'TLSv1_2' },
        tls_certificates: [{ certificate_chain: { filename: tls.certFile }, private_key: { filename: tls.keyFile }, watched_directory: { path: dirname(tls.certFile) } }],
        ...(tls.clientCaFile ? { validation_context: { trusted_ca: { filename: tls.clientCaFile }, watched_directory: { path: dirname(tls.clientCaFile) } } } : {}),
      },
      ...(tls.clientCaFile ? { require_client_certificate: true } : {}),
    },
  };
}

/**
 * Envoy's default access log line, with the route's name (Persona/upstream) in place of the path:
 * agents put credentials in paths and queries ("/tokens/ghp_...", "?api_key=..."), and data protection
 * masks them on the way upstream, not in Envoy's log. The audit trail has each call, masked.
 */
const accessLogFormat =
  '[%START_TIME%] "%REQ(:METHOD)% route=%ROUTE_NAME% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% ' +
  '%BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%UPSTREAM_HOST%"\n';

/**
 * Filter-wide defaults, for requests on no Mandate route (which ext_proc refuses): request headers
 * only. Each Mandate route asks for the phases it needs, response headers included. Envoy's own
 * replies to malformed requests pass the encoder filters while the connection is being closed: an
 * ext_proc asked for their headers then never answers in time, and the agent would get nothing.
 */
function extProcFilterConfig(settings: GatewaySettings): Record<string, unknown> {
  return {
    '@type': 'type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor',
    grpc_service: { envoy_grpc: { cluster_name: extProcClusterName } },
    failure_mode_allow: false,
    // 503 rather than 500 when the policy service fails: the request may be retried, it was not the agent's fault.
    status_on_error: { code: 'ServiceUnavailable' },
    message_timeout: duration(settings.messageTimeoutMs),
    max_message_timeout: duration(extProcMaxMessageWaitMs),
    processing_mode: { ...processingMode('NONE', 'NONE'), response_header_mode: 'SKIP' },
    allow_mode_override: true,
    request_attributes: ['source.address'],
    // ext_proc sees every request header: it drops those the upstream may not receive (a Persona is a
    // default-deny grant; see config/forwarded-headers.ts) and inspects the values of the others.
    // Dropping an agent's own x-envoy-* header needs the mutation rules' consent.
    mutation_rules: { allow_envoy: true },
    stat_prefix: 'mandate',
  };
}

function processingMode(requestBody: 'NONE' | 'BUFFERED', responseBody: 'NONE' | 'BUFFERED' | 'STREAMED'): Record<string, unknown> {
  return {
    request_header_mode: 'SEND',
    response_header_mode: 'SEND',
    request_body_mode: requestBody,
    response_body_mode: responseBody,
    request_trailer_mode: 'SKIP',
    response_trailer_mode: 'SKIP',
  };
}

function routeConfiguration(policy: PolicySnapshot, personas: Persona[], upstreams: Upstream[], settings: GatewaySettings): ResourceObject {
  const upstreamByName = new Map(upstreams.map((u) => [u.name, u]));
  const routes: ResourceObject[] = [];
  for (const persona of personas) {
    const grants = effectiveGrants(persona, policy.bundle);
    for (const upstreamName of [...new Set(grants.map((g) => g.upstream))].sort()) {
      const upstream = upstreamByName.get(upstreamName);
      if (!upstream) continue;
      const route = personaRoute(persona, upstream, grants, policy.version);
      routes.push(route);
      if (persona.authentication.jwt) routes.push(resourceMetadataRoute(route));
    }
  }
  routes.push(connectRoute(), notFoundRoute());
  return {
    name: routeConfigName,
    virtual_hosts: [
      {
        name: 'mandate',
        domains: ['*'],
        routes,
      },
    ],
    request_headers_to_remove: reservedRequestHeaders,
    // Envoy appends the peer's address to the agent's own X-Forwarded-For. With no trusted proxy in
    // front, everything before that address is the agent's to write (a fake client address, or data
    // smuggled past inspection): upstreams receive the peer's address alone.
    ...(settings.trustedProxyHops === 0
      ? { request_headers_to_add: [{ header: { key: 'x-forwarded-for', value: '%DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT%' }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' }] }
      : {}),
  };
}

function personaRoute(persona: Persona, upstream: Upstream, grants: Grant[], configVersion: number): ResourceObject {
  const url = parseUpstreamUrl(upstream);
  const prefix = `${personaPathPrefix(persona)}/${upstream.name}`;
  const perFilter: Record<string, unknown> = {
    [extProcFilterName]: {
      '@type': 'type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute',
      overrides: {
        // MCP: the JSON-RPC body decides everything. REST: method and path decide; bodies only for CEL
        // conditions and for data protection, which inspects (and may rewrite) what the agent sends.
        processing_mode: processingMode(upstream.protocol === 'mcp' || restNeedsBody(grants, upstream) || persona.dataProtection !== undefined ? 'BUFFERED' : 'NONE', 'NONE'),
        grpc_initial_metadata: [
          { key: routeMetadataKeys.persona, value: persona.name },
          { key: routeMetadataKeys.upstream, value: upstream.name },
          { key: routeMetadataKeys.kind, value: upstream.protocol },
          { key: routeMetadataKeys.pathPrefix, value: prefix },
          { key: routeMetadataKeys.configVersion, value: String(configVersion) },
        ],
        failure_mode_allow: persona.failOpen,
      },
    },
  };
  const rbac = networkRbac(persona);
  if (rbac) perFilter[rbacFilterName] = rbac;
  return {
    name: `${persona.name}/${upstream.name}`,
    match: { path_separated_prefix: prefix },
    route: {
      cluster: upstreamClusterName(upstream.name),
      prefix_rewrite: url.path,
      ...(isIpLiteral(url.host) ? { host_rewrite_literal: url.authority } : { auto_host_rewrite: true }),
      // MCP GET streams (server-sent events) stay open: no overall timeout, an idle timeout instead.
      timeout: duration(upstream.protocol === 'mcp' ? 0 : upstream.timeoutMs),
      idle_timeout: duration(upstream.timeoutMs),
    },
    // The whole body is buffered for inspection; beyond this Envoy answers 413. It raises this route's
    // stream buffer (requests and answers) above the listener's 32 KiB, never below it.
    request_body_buffer_limit: persona.maxBodyBytes,
    // Answers are read (tool lists filtered, data protection): upstreams must not compress them.
    // ext_proc refuses one that is compressed anyway (unsupported_content_encoding).
    request_headers_to_remove: ['accept-encoding'],
    typed_per_filter_config: perFilter,
  };
}

/**
 * RFC 9728's well-known location of an endpoint's OAuth resource metadata (for Personas whose agents
 * sign in with a JWT): /.well-known/oauth-protected-resource<endpoint path>. It carries the endpoint's
 * identity to ext_proc, which answers it from the Persona's config; nothing reaches the upstream.
 */
function resourceMetadataRoute(personaRoute: ResourceObject): ResourceObject {
  const prefix = (personaRoute.match as { path_separated_prefix: string }).path_separated_prefix;
  const perFilter = structuredClone(personaRoute.typed_per_filter_config) as Record<string, { overrides?: { processing_mode?: unknown } }>;
  perFilter[extProcFilterName]!.overrides!.processing_mode = processingMode('NONE', 'NONE');
  return {
    ...personaRoute,
    name: `${personaRoute.name}/resource-metadata`,
    match: { path: `/.well-known/oauth-protected-resource${prefix}` },
    typed_per_filter_config: perFilter,
  };
}

function notFoundRoute(): ResourceObject {
  return envoyAnswerRoute('not-found', { prefix: '/' }, 404, 'unknown_endpoint', 'No Persona endpoint at this path');
}

/** CONNECT (a tunnel request) matches no path route; the gateway tunnels nothing. */
function connectRoute(): ResourceObject {
  return envoyAnswerRoute('connect-refused', { connect_matcher: {} }, 405, 'method_not_allowed', 'The gateway does not tunnel (CONNECT)');
}

/** A route Envoy answers itself with a problem document; ext_proc is not consulted. */
function envoyAnswerRoute(name: string, match: Record<string, unknown>, status: number, code: string, title: string): ResourceObject {
  return {
    name,
    match,
    direct_response: { status, body: { inline_string: JSON.stringify({ type: `${problemTypeBase}${code}`, title, status, code }) } },
    response_headers_to_add: [{ header: { key: 'content-type', value: 'application/problem+json' }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' }],
    typed_per_filter_config: {
      [extProcFilterName]: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute', disabled: true },
    },
  };
}

const problemTypeBase = 'https://mandate.dev/errors/';

/**
 * Envoy's own answers on the agents' listener (malformed requests, bodies over the route's limit,
 * timeouts, ext_proc or upstream failures) as problem documents with a stable code, like Mandate's.
 * Replies ext_proc makes (details "mandate_<code>") and the routes' direct responses stay as they are;
 * so does RBAC's 403. The first mapper that matches applies.
 */
const envoyReplyCodes: { code: string; title: string; filter: Record<string, unknown>; status?: number }[] = [
  { code: 'malformed_request', title: 'The request is not valid HTTP', filter: { or_filter: { filters: [status(400), status(501)] } } },
  { code: 'request_headers_too_large', title: 'The request headers are too large or too many', filter: status(431) },
  { code: 'unsupported_http_version', title: 'HTTP/1.1 or later is required', filter: status(426) },
  { code: 'payload_too_large', title: "The request body exceeds the endpoint's size limit", filter: status(413) },
  { code: 'request_timeout', title: 'The request was not received in time', filter: status(408) },
  // An answer to be read whole that outgrew Envoy's stream buffer, if Envoy ever cuts one itself (a
  // bare 500): ext_proc refuses those first (BUFFERED_PARTIAL, see ext-proc/processor.ts), so this is
  // the same refusal by the same code should Envoy get there before it. Nothing of the answer was sent.
  {
    code: 'response_too_large',
    title: "The upstream's answer exceeds the size this Persona reads (maxBodyBytes)",
    filter: cel("response.code_details == 'response_payload_too_large'"),
    status: 502,
  },
  { code: 'upgrade_not_supported', title: 'The gateway does not upgrade connections (WebSocket and the like)', filter: cel("response.code_details == 'upgrade_failed'") },
  { code: 'unknown_endpoint', title: 'No Persona endpoint at this path', filter: status(404) },
  { code: 'policy_service_unavailable', title: 'The policy service could not be reached; refused (fail closed)', filter: cel("response.code_details.startsWith('ext_proc')") },
  // Envoy's overload manager refuses new requests while its heap is near MANDATE_ENVOY_MAX_HEAP_MIB
  // (envoy/bootstrap.yaml); without this the 503 would read as upstream_unavailable.
  { code: 'gateway_overloaded', title: 'The gateway is short of memory; retry later', filter: cel("response.code_details == 'overload'") },
  { code: 'upstream_timeout', title: 'The upstream did not answer in time', filter: status(504) },
  { code: 'upstream_unavailable', title: 'The upstream could not be reached', filter: { or_filter: { filters: [status(502), status(503)] } } },
];

function localReplyConfig(): Record<string, unknown> {
  return {
    mappers: [
      // First: what ext_proc and the routes answered themselves passes unchanged.
      { filter: cel("response.code_details.startsWith('mandate_') || response.code_details == 'direct_response'") },
      ...envoyReplyCodes.map(({ code, title, filter, status }) => ({
        filter,
        ...(status !== undefined ? { status_code: status } : {}),
        body_format_override: {
          json_format: jsonStruct({ type: `${problemTypeBase}${code}`, title, status: '%RESPONSE_CODE%', code, detail: '%RESPONSE_CODE_DETAILS%' }),
          content_type: 'application/problem+json',
        },
      })),
    ],
  };
}

function status(code: number): Record<string, unknown> {
  return { status_code_filter: { comparison: { op: 'EQ', value: { default_value: code, runtime_key: `mandate.local_reply.status_${code}` } } } };
}

/** A google.protobuf.Struct of strings, in the shape the descriptor-built encoder takes. */
function jsonStruct(values: Record<string, string>): Record<string, unknown> {
  return { fields: Object.entries(values).map(([key, value]) => ({ key, value: { string_value: value } })) };
}

function cel(expression: string): Record<string, unknown> {
  return {
    extension_filter: {
      name: 'envoy.access_loggers.extension_filters.cel',
      typed_config: { '@type': 'type.googleapis.com/envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter', expression },
    },
  };
}

/** Persona CIDR rules as Envoy RBAC on the route: enforced before ext_proc is consulted. */
function networkRbac(persona: Persona): Record<string, unknown> | null {
  const { allow, deny } = persona.network;
  if (allow.length === 0 && deny.length === 0) return null;
  const cidr = (value: string) => {
    const [address, prefix] = value.split('/');
    return { remote_ip: { address_prefix: address, prefix_len: Number(prefix) } };
  };
  const ids: Record<string, unknown>[] = [];
  if (allow.length > 0) ids.push({ or_ids: { ids: allow.map(cidr) } });
  if (deny.length > 0) ids.push({ not_id: { or_ids: { ids: deny.map(cidr) } } });
  return {
    '@type': 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute',
    rbac: {
      rules: {
        action: 'ALLOW',
        policies: { [`persona-network-${persona.name}`]: { permissions: [{ any: true }], principals: [{ and_ids: { ids } }] } },
      },
    },
  };
}

/** A REST route buffers request bodies only if a grant's CEL condition reads `body`. */
function restNeedsBody(grants: Grant[], upstream: Upstream): boolean {
  return grants.some((g) => g.upstream === upstream.name && g.operations.some((op) => op.when !== undefined && /\bbody\b/.test(op.when)));
}

interface ParsedUpstreamUrl {
  host: string;
  port: number;
  path: string;
  authority: string;
  tls: boolean;
}

export function parseUpstreamUrl(upstream: Upstream): ParsedUpstreamUrl {
  const url = new URL(upstream.url);
  const tls = url.protocol === 'https:';
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const port = url.port ? Number(url.port) : tls ? 443 : 80;
  return { host, port, path: url.pathname || '/', authority: url.host, tls };
}

function endpointOf(upstream: Upstream): { address: string; port: number } {
  const url = parseUpstreamUrl(upstream);
  return { address: url.host, port: url.port };
}

export function duration(ms: number): { seconds: number; nanos: number } {
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 };
}
