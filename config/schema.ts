// The Mandate config model. These zod schemas are the single source of truth:
// the admin API validates with them, the OpenAPI document is generated from
// them, the store persists what they accept, and both the xDS snapshot builder
// and the ext_proc policy compiler read the types inferred from them.
import { z } from 'zod';
import { dataProtectionSchema } from './data-protection-schema.ts';
import { behaviourSchema } from './behaviour-schema.ts';
import { unforwardableHeaderReason } from './forwarded-headers.ts';

export const resourceNameSchema = z
  .string()
  .regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 'must be lower-case letters, digits and dashes, 1-63 characters, starting and ending with a letter or digit');

/** Where an upstream runs. Data-flow rules speak in these labels. */
export const environmentSchema = z.enum(['production', 'pre-production', 'development', 'external']);

/** A secret the control plane keeps; agents never see it. */
export const secretValueSchema = z.union([
  z.object({ value: z.string().min(1) }).strict(),
  z.object({ env: z.string().regex(/^[A-Z_][A-Z0-9_]*$/, 'must be an environment variable name') }).strict(),
]);

export const upstreamAuthSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('none') }).strict(),
  z.object({ type: z.literal('bearer'), token: secretValueSchema }).strict(),
  z
    .object({
      type: z.literal('header'),
      header: z.string().regex(/^[a-z0-9-]+$/, 'must be a lower-case header name'),
      value: secretValueSchema,
    })
    .strict(),
]);

export const toolClassSchema = z.enum(['read', 'write', 'destructive', 'egress', 'admin']);

/** An admin's override of how a tool or operation is classified. */
export const toolClassificationSchema = z
  .object({
    tool: z.string().min(1).describe('MCP tool name, or "METHOD /path/template" for a REST operation'),
    class: toolClassSchema,
    risk: z.enum(['low', 'medium', 'high', 'critical']).optional(),
  })
  .strict();

const httpUrlSchema = z
  .string()
  .url()
  .refine((value) => /^https?:\/\//.test(value), 'must be an http:// or https:// URL')
  .refine((value) => {
    const url = URL.canParse(value) ? new URL(value) : null;
    return url !== null && url.port !== '0' && url.search === '' && url.hash === '' && url.username === '' && url.password === '';
  }, 'must not carry a query, a fragment, credentials or port 0 (put credentials in auth)');

/** A request header name an upstream may receive from agents (lower case; see config/forwarded-headers.ts). */
export const forwardableHeaderSchema = z
  .string()
  .regex(/^[a-z0-9!#$%&'*+.^_`|~-]{1,100}$/, 'must be a header name in lower case')
  .superRefine((name, ctx) => {
    const reason = unforwardableHeaderReason(name);
    if (reason !== null) ctx.addIssue({ code: 'custom', message: `"${name}" cannot be listed: ${reason}` });
  });

/** A DNS host name (letters, digits and dashes in dot-separated labels of at most 63). */
export const dnsNamePattern = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** How the gateway verifies an https:// upstream's certificate. Verification is always on. */
export const upstreamTlsSchema = z
  .object({
    caFile: z
      .string()
      .regex(/^\/[^\0]*$/, 'must be an absolute path')
      .max(1024)
      .optional()
      .describe('PEM file, on the Envoy hosts, of the CAs that may sign the upstream certificate; default: the gateway\'s MANDATE_UPSTREAM_CA_FILE (the system bundle)'),
    serverName: z
      .string()
      .regex(dnsNamePattern, 'must be a DNS name')
      .max(253)
      .optional()
      .describe('The name sent as SNI and required in the certificate\'s subject alternative names; default: the URL\'s host'),
  })
  .strict();

export const upstreamSchema = z
  .object({
    kind: z.literal('Upstream'),
    name: resourceNameSchema,
    description: z.string().max(2000).default(''),
    protocol: z.enum(['mcp', 'rest']).describe('mcp: an MCP server over Streamable HTTP; rest: an HTTP API'),
    url: httpUrlSchema.describe('Base URL. For MCP, the Streamable HTTP endpoint, e.g. http://10.0.0.5:3001/mcp'),
    environment: environmentSchema.default('production'),
    auth: upstreamAuthSchema.default({ type: 'none' }),
    timeoutMs: z.number().int().min(100).max(3_600_000).default(30_000),
    classifications: z.array(toolClassificationSchema).default([]),
    forwardHeaders: z
      .array(forwardableHeaderSchema)
      .max(64)
      .default([])
      .describe(
        'Request headers of the agent passed on to this upstream besides the protocol ones (content type, accept, conditional requests, tracing, MCP session headers). Every other header the agent sends is dropped. With data protection on, the values are inspected like the body.',
      ),
    tls: upstreamTlsSchema.optional().describe('https:// upstreams only: which CAs and name the certificate is checked against (it always is)'),
  })
  .strict()
  .superRefine((upstream, ctx) => {
    if (upstream.tls && !upstream.url.startsWith('https://')) ctx.addIssue({ code: 'custom', path: ['tls'], message: 'applies to https:// upstreams only' });
  });

/** A REST path template: literal segments and {param} segments; a trailing {rest*} matches the remainder. */
export const pathTemplateSchema = z
  .string()
  .regex(/^\/([A-Za-z0-9._~!$&'()*+,;=:@-]+|\{[A-Za-z_][A-Za-z0-9_]*\*?\})?(\/([A-Za-z0-9._~!$&'()*+,;=:@-]+|\{[A-Za-z_][A-Za-z0-9_]*\*?\}))*$/, 'must be a path template such as /tickets/{id}');

export const httpMethodSchema = z.enum(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/** A CEL expression evaluated against the call; the grant applies only when it is true. */
export const celConditionSchema = z.string().min(1).max(4096);

export const toolGrantSchema = z
  .object({
    name: z
      .string()
      .min(1)
      .max(128)
      .regex(/^[A-Za-z0-9_.\-/*]+$/, 'must be a tool name; * matches any run of characters'),
    when: celConditionSchema.optional().describe('CEL over `args` (the tool arguments), `agent` and `persona`'),
  })
  .strict();

export const operationGrantSchema = z
  .object({
    method: httpMethodSchema,
    path: pathTemplateSchema,
    when: celConditionSchema.optional().describe('CEL over `params` (path template values), `query`, `body`, `agent` and `persona`'),
  })
  .strict();

/** A grant names what a Persona may use on one upstream. Anything not granted is refused. */
export const grantSchema = z
  .object({
    upstream: resourceNameSchema,
    tools: z.array(toolGrantSchema).default([]),
    operations: z.array(operationGrantSchema).default([]),
  })
  .strict();

export const skillSchema = z
  .object({
    kind: z.literal('Skill'),
    name: resourceNameSchema,
    description: z.string().max(4000).default(''),
    grants: z.array(grantSchema).min(1),
  })
  .strict();

const cidrSchema = z
  .string()
  .regex(/^(\d{1,3}\.){3}\d{1,3}\/\d{1,2}$|^[0-9a-fA-F:]+\/\d{1,3}$/, 'must be a CIDR such as 10.0.0.0/8 or fd00::/8')
  .refine(isValidCidr, 'is not a valid CIDR (octets 0-255, prefix 0-32 for IPv4, 0-128 for IPv6)');

export const networkRulesSchema = z
  .object({
    allow: z.array(cidrSchema).default([]).describe('If non-empty, only these source ranges may use the Persona'),
    deny: z.array(cidrSchema).default([]).describe('These source ranges are refused even if allowed'),
  })
  .strict();

/** JWS algorithms an agent's JWT may be signed with (asymmetric only: Mandate holds no shared secrets for agents). */
export const jwtAlgorithmSchema = z.enum(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA']);

const claimNameSchema = z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/, 'must be a claim name');

/** Agents that present a JWT from the enterprise's identity provider (OAuth 2.1 access tokens, workload identities). */
export const jwtAuthenticationSchema = z
  .object({
    issuer: z.string().min(1).max(1024).describe('The `iss` the token must carry, exactly'),
    audiences: z.array(z.string().min(1).max(1024)).min(1).max(16).describe('The token\'s `aud` must contain one of these'),
    jwksUri: httpUrlSchema
      .refine((value) => value.startsWith('https://') || /^http:\/\/(127\.0\.0\.1|localhost|\[::1\])(:\d+)?\//.test(value), 'must be https:// (http:// only on loopback)')
      .describe('Where the issuer publishes its signing keys (JWKS); ext_proc fetches and refreshes them'),
    agentClaim: claimNameSchema.default('sub').describe('The claim whose value is the agent\'s identity in decisions and the audit trail'),
    requiredClaims: z
      .record(claimNameSchema, z.string().min(1).max(256))
      .default({})
      .describe('Claims the token must carry: equal to the value, or containing it (an array, or the space-separated `scope`/`scp`)'),
    algorithms: z.array(jwtAlgorithmSchema).min(1).default(['RS256', 'ES256', 'EdDSA']),
    clockSkewSeconds: z.number().int().min(0).max(300).default(60),
  })
  .strict();

export const personaAuthenticationSchema = z
  .object({
    tokens: z.boolean().default(true).describe('Accept agent tokens issued by Mandate (mnd_...)'),
    jwt: jwtAuthenticationSchema.optional(),
  })
  .strict()
  .refine((a) => a.tokens || a.jwt !== undefined, 'accept Mandate tokens, JWTs, or both');

export const personaSchema = z
  .object({
    kind: z.literal('Persona'),
    name: resourceNameSchema,
    description: z.string().min(1).max(8000).describe('The role, in natural language'),
    mode: z.enum(['enforce', 'monitor']).default('enforce'),
    endpoint: z
      .object({
        pathPrefix: z
          .string()
          .regex(/^(\/[a-z0-9][a-z0-9._-]*)+$/, 'must be a path prefix such as /agents/support')
          .optional()
          .describe('Defaults to /personas/<name>; each upstream is served below it at /<upstream>'),
      })
      .strict()
      .default({}),
    skills: z.array(resourceNameSchema).default([]),
    grants: z.array(grantSchema).default([]),
    network: networkRulesSchema.default({ allow: [], deny: [] }),
    authentication: personaAuthenticationSchema.default({ tokens: true }).describe('How agents prove who they are: Mandate tokens, JWTs from an identity provider, or both'),
    failOpen: z.boolean().default(false).describe('If true, requests continue when the policy service is unreachable'),
    maxBodyBytes: z.number().int().min(1024).max(64 * 1024 * 1024).default(4 * 1024 * 1024),
    dataProtection: dataProtectionSchema.optional(),
    behaviour: behaviourSchema.optional(),
  })
  .strict();

export const configDocumentSchema = z.discriminatedUnion('kind', [upstreamSchema, skillSchema, personaSchema]);

export type Upstream = z.infer<typeof upstreamSchema>;
export type Skill = z.infer<typeof skillSchema>;
export type Persona = z.infer<typeof personaSchema>;
export type Grant = z.infer<typeof grantSchema>;
export type ToolGrant = z.infer<typeof toolGrantSchema>;
export type OperationGrant = z.infer<typeof operationGrantSchema>;
export type ConfigDocument = z.infer<typeof configDocumentSchema>;
export type ConfigKind = ConfigDocument['kind'];
export type SecretValue = z.infer<typeof secretValueSchema>;
export type Environment = z.infer<typeof environmentSchema>;
export type JwtAuthentication = z.infer<typeof jwtAuthenticationSchema>;
export type ToolClass = z.infer<typeof toolClassSchema>;

export function personaPathPrefix(persona: Persona): string {
  return persona.endpoint.pathPrefix ?? `/personas/${persona.name}`;
}

function isValidCidr(cidr: string): boolean {
  const [address, prefixText] = cidr.split('/');
  const prefix = Number(prefixText);
  if (address === undefined || !Number.isInteger(prefix)) return false;
  if (address.includes(':')) return prefix >= 0 && prefix <= 128 && /^[0-9a-fA-F:]+$/.test(address) && address.split('::').length <= 2;
  const octets = address.split('.').map(Number);
  return prefix >= 0 && prefix <= 32 && octets.length === 4 && octets.every((o) => Number.isInteger(o) && o >= 0 && o <= 255);
}
