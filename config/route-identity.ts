// How a route tells ext_proc which Persona and upstream it serves: gRPC initial
// metadata set by the control plane on each route (ExtProcPerRoute), never a
// header the client can set. Shared by the snapshot builder and ext_proc.

export const routeMetadataKeys = {
  persona: 'x-mandate-persona',
  upstream: 'x-mandate-upstream',
  kind: 'x-mandate-route-kind',
  pathPrefix: 'x-mandate-route-prefix',
  configVersion: 'x-mandate-config-version',
} as const;

/** Mandate's own request headers: removed at Envoy so a client can never supply them. */
export const reservedRequestHeaders = [...Object.values(routeMetadataKeys), 'x-mandate-agent', 'x-mandate-decision'];

export interface RouteIdentity {
  persona: string;
  upstream: string;
  kind: 'mcp' | 'rest';
  pathPrefix: string;
  /** The config version the route was built from (informational; ext_proc decides with its own current version). */
  configVersion: number;
}

export function routeIdentityFromMetadata(get: (key: string) => string | undefined): RouteIdentity | null {
  const persona = get(routeMetadataKeys.persona);
  const upstream = get(routeMetadataKeys.upstream);
  const kind = get(routeMetadataKeys.kind);
  const pathPrefix = get(routeMetadataKeys.pathPrefix);
  if (!persona || !upstream || !pathPrefix || (kind !== 'mcp' && kind !== 'rest')) return null;
  return { persona, upstream, kind, pathPrefix, configVersion: Number(get(routeMetadataKeys.configVersion) ?? 0) };
}
