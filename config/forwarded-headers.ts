// Which request headers an agent may send on to an upstream. A Persona is a default-deny grant, and
// headers are part of what an agent sends: a header the upstream reads can change what a granted
// call does (X-HTTP-Method-Override turns a granted GET into a DELETE in many frameworks), and any
// header is a channel out of the gateway for data the body inspection would have caught. So the
// gateway passes on the headers HTTP and MCP need, plus those an upstream lists in
// `forwardHeaders`, and drops every other header the agent sends. With data protection on, the
// values of the headers it passes on are inspected like the body.

import { isIP } from 'node:net';

/** Passed on to every upstream: content negotiation, conditional requests, MCP sessions, trace context. */
export const protocolRequestHeaders: ReadonlySet<string> = new Set([
  'accept',
  'accept-language',
  'cache-control',
  'content-encoding',
  'content-language',
  'content-length',
  'content-type',
  'if-match',
  'if-modified-since',
  'if-none-match',
  'if-range',
  'if-unmodified-since',
  'last-event-id',
  'mcp-method',
  'mcp-name',
  'mcp-protocol-version',
  'mcp-session-id',
  'pragma',
  'range',
  'user-agent',
  'x-request-id',
  // Trace context, so a mesh's distributed traces continue through the gateway (W3C, B3, and the
  // other propagation formats Envoy's tracers and Istio use).
  'traceparent',
  'tracestate',
  'baggage',
  'b3',
  'x-b3-traceid',
  'x-b3-spanid',
  'x-b3-parentspanid',
  'x-b3-sampled',
  'x-b3-flags',
  'x-ot-span-context',
  'x-cloud-trace-context',
  'grpc-trace-bin',
  'uber-trace-id',
  'x-datadog-trace-id',
  'x-datadog-parent-id',
  'x-datadog-sampling-priority',
  'x-datadog-origin',
  'x-amzn-trace-id',
]);

/**
 * Set by Envoy itself before ext_proc runs (an agent's own value is replaced or, for the client
 * certificate, sanitised by default): kept as they are. X-Forwarded-For is the exception: Envoy
 * appends to the agent's value, so ext_proc keeps only its entries that are IP addresses
 * (forwardedForAddresses), and with no trusted proxy the routes replace it with the peer's address. In an Istio mesh the inbound sidecar sets
 * x-forwarded-client-cert for the workload behind it.
 */
export const gatewaySetRequestHeaders: ReadonlySet<string> = new Set(['x-forwarded-for', 'x-forwarded-proto', 'x-envoy-external-address', 'x-envoy-internal', 'x-forwarded-client-cert']);

/** Never inspected for sensitive data: set by Envoy, or a number. */
export const uninspectedRequestHeaders: ReadonlySet<string> = new Set([...gatewaySetRequestHeaders, 'content-length']);

/** Answer headers data protection does not read: numbers, dates, and how the body is framed. */
export const uninspectedResponseHeaders: ReadonlySet<string> = new Set(['content-length', 'content-encoding', 'transfer-encoding', 'date', 'last-modified', 'expires', 'age']);

/**
 * Headers an upstream may not list in `forwardHeaders`, with the reason: the gateway owns them
 * (credentials, routing, connection handling), or they change what the authorized call does.
 */
export function unforwardableHeaderReason(name: string): string | null {
  if (name === 'authorization' || name === 'proxy-authorization') return 'the agent\'s credential is valid only at the gateway; upstream credentials are configured with "auth"';
  if (name === 'host' || name === 'forwarded' || name.startsWith('x-forwarded-') || name === 'x-real-ip') return 'routing and client-address headers are set by the gateway';
  if (name.startsWith('x-envoy-') || name.startsWith('x-mandate-')) return 'the gateway\'s own headers';
  if (['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'expect'].includes(name)) return 'connection handling is the gateway\'s';
  if (name === 'accept-encoding') return 'answers are read by the gateway and must not be compressed';
  if (['x-http-method-override', 'x-http-method', 'x-method-override'].includes(name)) return 'it would change the method the gateway authorized';
  if (protocolRequestHeaders.has(name)) return 'it is always passed on';
  return null;
}

/**
 * The agent's headers to drop before the request goes upstream: every one that is not a pseudo-header,
 * `host`, a protocol header, one set by Envoy, or one the upstream lists.
 */
export function droppedRequestHeaders(names: Iterable<string>, listed: ReadonlySet<string>): ReadonlySet<string> {
  const dropped = new Set<string>();
  for (const name of names) {
    if (name.startsWith(':') || name === 'host' || protocolRequestHeaders.has(name) || gatewaySetRequestHeaders.has(name) || listed.has(name)) continue;
    dropped.add(name);
  }
  return dropped;
}

/**
 * X-Forwarded-For with only the entries that are IP addresses ("203.0.113.7", "2001:db8::1", with or
 * without a port), or null when every entry is one. Envoy appends the peer's address to the value an
 * agent sent; anything else the agent wrote there (a token, a card number) is dropped rather than
 * forwarded uninspected. An agent can still name a false address; only trusted proxies' entries count.
 */
export function forwardedForAddresses(value: string): string | null {
  const entries = value.split(',').map((entry) => entry.trim());
  const addresses = entries.filter(isAddressEntry);
  return addresses.length === entries.length ? null : addresses.join(', ');
}

function isAddressEntry(entry: string): boolean {
  if (isIP(entry) !== 0) return true;
  // "[2001:db8::1]:443" and "203.0.113.7:443"
  if (entry.startsWith('[')) {
    const close = entry.indexOf(']');
    return close > 0 && isIP(entry.slice(1, close)) === 6 && isPort(entry.slice(close + 1));
  }
  const colon = entry.lastIndexOf(':');
  return colon > 0 && isIP(entry.slice(0, colon)) === 4 && isPort(entry.slice(colon));
}

function isPort(text: string): boolean {
  if (text.length < 2 || text.length > 6 || text.charCodeAt(0) !== 58 /* : */) return false;
  for (let i = 1; i < text.length; i++) if (text.charCodeAt(i) < 48 || text.charCodeAt(i) > 57) return false;
  return Number(text.slice(1)) <= 65535;
}
