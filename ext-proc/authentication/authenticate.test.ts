// Which credentials a Persona takes: Mandate tokens, JWTs from its issuer, or both.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { personaSchema } from '../../config/schema.ts';
import { newSigningKey, signJwt } from '../../test/support/test-identity-provider.ts';
import { authenticateCaller } from './authenticate.ts';
import { parseJwks, type JwksCache } from './jwks.ts';

const now = Date.parse('2026-11-26T09:00:00Z');
const key = newSigningKey('k1', 'ES256');
const jwksUri = 'https://idp.example.com/jwks.json';
const secret = 'S'.repeat(43);
const credentials = new Map([['0123456789ab', { id: '0123456789ab', agent: 'token-bot', persona: 'p', secretHash: createHash('sha256').update(secret).digest('hex'), createdAt: '2026-01-01T00:00:00Z', expiresAt: null }]]);
const mandateToken = `Bearer mnd_0123456789ab_${secret}`;
const jwt = `Bearer ${signJwt(key, { iss: 'https://idp.example.com/', aud: 'mandate', sub: 'sso-bot', exp: now / 1000 + 60 })}`;
const persona = (authentication: unknown) => personaSchema.parse({ kind: 'Persona', name: 'p', description: 'd', authentication });
const jwtConfig = { issuer: 'https://idp.example.com/', audiences: ['mandate'], jwksUri, algorithms: ['ES256'] };

function cache(loaded: boolean): JwksCache & { refreshes: number } {
  const keys = parseJwks({ keys: [key.publicJwk] }).keys;
  const fake = { refreshes: 0, keys: () => (loaded ? keys : null), track() {}, refreshSoon() { fake.refreshes += 1; }, settled: async () => {}, status: () => [], stop() {} };
  return fake;
}

test('a Persona with both takes a Mandate token and a JWT; with tokens off, only the JWT', () => {
  const both = persona({ jwt: jwtConfig });
  const jwks = cache(true);
  assert.deepEqual(authenticateCaller(mandateToken, both, credentials, now, jwks), { ok: true, identity: { agent: 'token-bot', id: '0123456789ab' } });
  const viaJwt = authenticateCaller(jwt, both, credentials, now, jwks);
  assert.ok(viaJwt.ok && viaJwt.identity.agent === 'sso-bot');
  const jwtOnly = persona({ tokens: false, jwt: jwtConfig });
  const refused = authenticateCaller(mandateToken, jwtOnly, credentials, now, jwks);
  assert.ok(!refused.ok && refused.status === 401 && refused.reason.code === 'credential_malformed');
  assert.ok(authenticateCaller(jwt, jwtOnly, credentials, now, jwks).ok);
  // Without authentication.jwt a JWT is just not a Mandate token.
  const tokensOnly = persona(undefined);
  const plain = authenticateCaller(jwt, tokensOnly, credentials, now, jwks);
  assert.ok(!plain.ok && plain.reason.code === 'credential_malformed');
  assert.throws(() => persona({ tokens: false }), /accept Mandate tokens, JWTs, or both/);
});

test('before the issuer\'s keys are loaded a JWT gets 503 jwks_unavailable and a refetch is asked for', () => {
  const jwks = cache(false);
  const answer = authenticateCaller(jwt, persona({ jwt: jwtConfig }), credentials, now, jwks);
  assert.ok(!answer.ok && answer.status === 503 && answer.reason.code === 'jwks_unavailable');
  assert.equal(jwks.refreshes, 1);
  const noCache = authenticateCaller(jwt, persona({ jwt: jwtConfig }), credentials, now, null);
  assert.ok(!noCache.ok && noCache.status === 503);
});
