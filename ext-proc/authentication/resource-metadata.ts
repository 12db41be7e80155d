// OAuth 2.0 Protected Resource Metadata (RFC 9728) for a Persona endpoint whose agents
// sign in with the enterprise's identity provider (authentication.jwt): MCP clients
// that get a 401 follow the `resource_metadata` URL in the challenge, learn which
// authorization server issues tokens for this endpoint, and come back with one.
import type { Persona } from '../../config/schema.ts';

export const resourceMetadataSuffix = '/.well-known/oauth-protected-resource';

/** Whether a request path asks for the metadata of the endpoint at `endpointPath`: below it, or in RFC 9728's well-known form. */
export function isResourceMetadataPath(path: string, endpointPath: string): boolean {
  const bare = path.split('?')[0] ?? '';
  return bare === `${endpointPath}${resourceMetadataSuffix}` || bare === `${resourceMetadataSuffix}${endpointPath}`;
}

/** The endpoint's URL as the agent addressed it (scheme and authority from the request). */
export function resourceUrl(scheme: string, authority: string, endpointPath: string): string {
  return `${scheme === 'https' ? 'https' : 'http'}://${authority}${endpointPath}`;
}

export function resourceMetadataUrl(resource: string): string {
  return `${resource}${resourceMetadataSuffix}`;
}

export function resourceMetadata(persona: Persona, resource: string): Record<string, unknown> {
  const jwt = persona.authentication.jwt!;
  const scope = jwt.requiredClaims.scope ?? jwt.requiredClaims.scp;
  return {
    resource,
    authorization_servers: [jwt.issuer],
    bearer_methods_supported: ['header'],
    ...(scope ? { scopes_supported: scope.split(' ') } : {}),
    resource_name: `Mandate Persona ${persona.name}`,
  };
}
