import assert from 'node:assert/strict';
import { test } from 'node:test';
import { configBundleSchema, validateBundleReferences } from './bundle.ts';
import { personaSchema, upstreamSchema } from './schema.ts';

test('upstream URLs must be plain http(s) base URLs', () => {
  const base = { kind: 'Upstream', name: 'u', protocol: 'rest' };
  assert.ok(upstreamSchema.safeParse({ ...base, url: 'https://api.example.com:8443/v1' }).success);
  for (const url of ['ftp://x/', 'http://x:0/', 'http://x/?a=1', 'http://x/#f', 'http://user:pw@x/', 'not a url']) {
    assert.equal(upstreamSchema.safeParse({ ...base, url }).success, false, url);
  }
});

test('an upstream lists the agent headers it receives; headers the gateway owns or that change the authorized call cannot be listed', () => {
  const base = { kind: 'Upstream', name: 'u', protocol: 'rest', url: 'http://x/' };
  const parsed = upstreamSchema.parse({ ...base, forwardHeaders: ['x-tenant', 'if-match-etag'] });
  assert.deepEqual(parsed.forwardHeaders, ['x-tenant', 'if-match-etag']);
  assert.deepEqual(upstreamSchema.parse(base).forwardHeaders, [], 'none by default');
  for (const name of ['authorization', 'Host', 'x-http-method-override', 'x-forwarded-host', 'x-envoy-retry-on', 'x-mandate-agent', 'transfer-encoding', 'accept-encoding', 'content-type', 'bad header']) {
    const result = upstreamSchema.safeParse({ ...base, forwardHeaders: [name] });
    assert.equal(result.success, false, name);
    assert.match(result.error!.issues[0]!.message, /cannot be listed|lower case/, name);
  }
});

test('CIDR rules are checked for range and shape', () => {
  const persona = (allow: string[]) => personaSchema.safeParse({ kind: 'Persona', name: 'p', description: 'd', network: { allow } });
  assert.ok(persona(['10.0.0.0/8', '::1/128', 'fd00::/8']).success);
  for (const cidr of ['10.0.0.0/33', '300.0.0.0/8', '10.0.0/8', 'fd00::/129', '10.0.0.0']) assert.equal(persona([cidr]).success, false, cidr);
});

test('a Persona is default deny with enforce mode and a 4 MiB body limit', () => {
  const parsed = personaSchema.parse({ kind: 'Persona', name: 'p', description: 'd' });
  assert.deepEqual(parsed.grants, []);
  assert.equal(parsed.mode, 'enforce');
  assert.equal(parsed.failOpen, false);
  assert.equal(parsed.maxBodyBytes, 4 * 1024 * 1024);
});

test('cross-references are checked with the path of the offending field', () => {
  const bundle = configBundleSchema.parse({
    upstreams: [{ kind: 'Upstream', name: 'mcp', protocol: 'mcp', url: 'http://10.0.0.1/mcp' }],
    skills: [],
    personas: [
      { kind: 'Persona', name: 'a', description: 'd', skills: ['nope'], grants: [{ upstream: 'mcp', operations: [{ method: 'GET', path: '/x' }] }] },
      { kind: 'Persona', name: 'b', description: 'd', endpoint: { pathPrefix: '/personas/a/sub' }, grants: [{ upstream: 'missing', tools: [{ name: 't' }] }] },
    ],
  });
  const issues = validateBundleReferences(bundle).map((i) => `${i.path.join('.')}:${i.code}`);
  assert.deepEqual(issues.sort(), [
    'personas.0.grants.0.operations:protocol_mismatch',
    'personas.0.skills.0:unknown_skill',
    'personas.1.endpoint.pathPrefix:endpoint_conflict',
    'personas.1.grants.0.upstream:unknown_upstream',
  ]);
});
