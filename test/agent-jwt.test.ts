// Agents that authenticate with a JWT from the enterprise's identity provider, through
// the real Envoy, with the official MCP SDK client. The Persona trusts one issuer and
// audience, requires a scope, and accepts no Mandate tokens; ext_proc fetches the
// issuer's JWKS itself. The agent's identity in decisions and the audit trail is the
// token's subject. An OAuth-capable client finds the issuer through the 401's
// resource_metadata (RFC 9728), as the MCP SDK's discovery does.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { discoverOAuthProtectedResourceMetadata, extractResourceMetadataUrl } from '@modelcontextprotocol/sdk/client/auth.js';
import { startGatewayFixture, type GatewayFixture } from './support/gateway-fixture.ts';
import { newSigningKey, signJwt, startTestIdentityProvider, type TestIdentityProvider } from './support/test-identity-provider.ts';

const key = newSigningKey('idp-2026-11', 'RS256');
let idp: TestIdentityProvider;
let gateway: GatewayFixture;
let mandateToken = '';
const path = '/personas/sso-agent/everything';

function jwt(overrides: Record<string, unknown> = {}): string {
  const now = Math.floor(Date.now() / 1000);
  return signJwt(key, { iss: idp.issuer, aud: 'mandate', sub: 'billing-bot@corp', scope: 'openid mcp:echo', exp: now + 300, iat: now, jti: `t-${now}`, ...overrides });
}

async function initialize(authorization: string): Promise<Response> {
  return fetch(`${gateway.gatewayUrl}${path}`, {
    method: 'POST',
    headers: { authorization, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'curl', version: '1' } } }),
  });
}

before(async () => {
  idp = await startTestIdentityProvider([key]);
  gateway = await startGatewayFixture();
  await gateway.apply([
    {
      kind: 'Persona',
      name: 'sso-agent',
      description: 'An agent that signs in with the corporate identity provider.',
      grants: [{ upstream: 'everything', tools: [{ name: 'echo' }] }],
      authentication: { tokens: false, jwt: { issuer: idp.issuer, audiences: ['mandate'], jwksUri: idp.jwksUri, requiredClaims: { scope: 'mcp:echo' } } },
    },
  ]);
  mandateToken = (await gateway.issueToken('sso-agent', 'token-agent')).token;
  // ext_proc fetches the issuer's keys when the Persona arrives; until then such calls get 503 jwks_unavailable.
  const deadline = Date.now() + 10_000;
  for (;;) {
    const answer = await initialize(`Bearer ${jwt()}`);
    await answer.arrayBuffer();
    if (answer.status !== 503 || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 100));
  }
});

after(async () => {
  await gateway?.stop();
  await idp?.close();
});

test('an agent with a valid JWT works through the MCP SDK client; it sees its grant and is audited by its subject', async () => {
  const client = await gateway.mcpClient(path, jwt());
  const tools = await client.listTools();
  assert.deepEqual(tools.tools.map((t) => t.name), ['echo']);
  const result = await client.callTool({ name: 'echo', arguments: { message: 'signed in with SSO' } });
  assert.match(JSON.stringify(result.content), /signed in with SSO/);
  await client.close();
  assert.ok(idp.fetches >= 1, 'ext_proc fetched the JWKS');
  const metrics = await (await fetch(`http://127.0.0.1:${gateway.extProcHealthPorts[0]}/metrics`)).text();
  assert.ok(metrics.includes(`mandate_jwks_keys{uri="${idp.jwksUri}"} 1\n`), 'the key set shows in the metrics');
  assert.match(metrics, /^mandate_jwks_last_success_timestamp_seconds\{uri="[^"]+"\} [1-9]\d{9}$/m);

  // The audit API reads committed events; the commit runs on the audit worker, just behind the answer.
  const internalToken = readFileSync(join(gateway.dataDir, 'internal-token'), 'utf8').trim();
  type Event = { agent: string | null; credentialId: string | null; tool: string | null; verdict: string };
  let call: Event | undefined;
  for (const deadline = Date.now() + 10_000; call === undefined && Date.now() < deadline; await new Promise((r) => setTimeout(r, 100))) {
    const page = (await (await fetch(`http://127.0.0.1:${gateway.extProcHealthPorts[0]}/v1/audit/events?persona=sso-agent&kind=decision&limit=50`, { headers: { authorization: `Bearer ${internalToken}` } })).json()) as { events: Event[] };
    call = page.events.find((e) => e.tool === 'echo' && e.verdict === 'allow');
  }
  assert.equal(call?.agent, 'billing-bot@corp');
  assert.match(call?.credentialId ?? '', /^jwt:t-\d+$/);
});

test('expired, mis-addressed, under-scoped and forged JWTs, and Mandate tokens this Persona does not accept, get 401 with their own code', async () => {
  const forged = jwt().split('.');
  forged[1] = Buffer.from(JSON.stringify({ iss: idp.issuer, aud: 'mandate', sub: 'admin', scope: 'mcp:echo', exp: Math.floor(Date.now() / 1000) + 300 })).toString('base64url');
  const cases: [string, string][] = [
    [`Bearer ${jwt({ exp: Math.floor(Date.now() / 1000) - 3600 })}`, 'jwt_expired'],
    [`Bearer ${jwt({ aud: 'another-service' })}`, 'jwt_wrong_audience'],
    [`Bearer ${jwt({ scope: 'openid' })}`, 'jwt_claim_missing'],
    [`Bearer ${jwt({ iss: 'https://evil.example/' })}`, 'jwt_wrong_issuer'],
    [`Bearer ${forged.join('.')}`, 'jwt_signature_invalid'],
    [`Bearer ${signJwt(newSigningKey('idp-2026-11', 'RS256'), { iss: idp.issuer, aud: 'mandate', sub: 'x', scope: 'mcp:echo', exp: Math.floor(Date.now() / 1000) + 60 })}`, 'jwt_signature_invalid'],
    [`Bearer ${mandateToken}`, 'credential_malformed'],
  ];
  for (const [authorization, code] of cases) {
    const answer = await initialize(authorization);
    assert.equal(answer.status, 401, code);
    assert.match(answer.headers.get('www-authenticate') ?? '', /^Bearer realm="mandate", error="invalid_token"/);
    const body = JSON.stringify(await answer.json());
    assert.ok(body.includes(code), `${code}: ${body}`);
  }
  // The other demo Personas still take their Mandate tokens.
  const tickets = await fetch(`${gateway.gatewayUrl}/personas/support-agent/tickets/tickets/1`, { headers: { authorization: `Bearer ${gateway.tokens['support-agent']}` } });
  assert.equal(tickets.status, 200);
});

test('an MCP client without a token learns where to get one: the 401 points at the resource metadata, which names the issuer (RFC 9728, read by the MCP SDK)', async () => {
  const refused = await initialize('');
  assert.equal(refused.status, 401);
  const metadataUrl = extractResourceMetadataUrl(refused);
  const endpoint = `${gateway.gatewayUrl}${path}`;
  assert.equal(metadataUrl?.href, `${endpoint}/.well-known/oauth-protected-resource`);
  const metadata = await discoverOAuthProtectedResourceMetadata(endpoint, { resourceMetadataUrl: metadataUrl });
  assert.deepEqual(metadata, { resource: endpoint, authorization_servers: [idp.issuer], bearer_methods_supported: ['header'], scopes_supported: ['mcp:echo'], resource_name: 'Mandate Persona sso-agent' });
  // The RFC's own well-known location (the SDK's fallback) answers the same, through its own Envoy route.
  const wellKnown = await discoverOAuthProtectedResourceMetadata(endpoint);
  assert.deepEqual(wellKnown, metadata);
  assert.equal((await fetch(`${endpoint}/.well-known/oauth-protected-resource`, { method: 'POST' })).status, 405);
  // A Persona on Mandate tokens publishes none.
  const plain = await fetch(`${gateway.gatewayUrl}/.well-known/oauth-protected-resource/personas/support-agent/everything`);
  assert.equal(plain.status, 404);
  await plain.arrayBuffer();
});
