// JWT verification against a Persona's authentication.jwt, and the JWKS cache.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { test } from 'node:test';
import { jwtAuthenticationSchema } from '../../config/schema.ts';
import { newSigningKey, signJwt, startTestIdentityProvider } from '../../test/support/test-identity-provider.ts';
import { createJwksCache, parseJwks } from './jwks.ts';
import { verifyJwt } from './jwt.ts';

const now = Date.parse('2026-11-26T09:00:00Z');
const seconds = Math.floor(now / 1000);
const rsa = newSigningKey('rsa-1', 'RS256');
const ec = newSigningKey('ec-1', 'ES256');
const ed = newSigningKey('ed-1', 'EdDSA');
const pss = newSigningKey('pss-1', 'PS256');
const config = jwtAuthenticationSchema.parse({
  issuer: 'https://idp.example.com/',
  audiences: ['mandate-support'],
  jwksUri: 'https://idp.example.com/.well-known/jwks.json',
  requiredClaims: { scope: 'tickets:read', groups: 'support' },
  algorithms: ['RS256', 'PS256', 'ES256', 'EdDSA'],
});
const keys = parseJwks({ keys: [rsa.publicJwk, ec.publicJwk, ed.publicJwk, pss.publicJwk] }).keys;
const claims = { iss: 'https://idp.example.com/', aud: ['mandate-support', 'other'], sub: 'billing-bot', exp: seconds + 300, nbf: seconds - 10, scope: 'openid tickets:read', groups: ['support', 'ops'], jti: 'a1b2c3' };

test('a token signed by any published key type verifies, and names the agent and the token', () => {
  for (const key of [rsa, ec, ed, pss]) {
    assert.deepEqual(verifyJwt(signJwt(key, claims), config, keys, now), { ok: true, agent: 'billing-bot', credentialId: 'jwt:a1b2c3' }, key.alg);
  }
  const { jti: _jti, ...withoutJti } = claims;
  const verified = verifyJwt(signJwt(rsa, withoutJti), config, keys, now);
  assert.ok(verified.ok && /^jwt:[0-9a-f]{16}$/.test(verified.credentialId), 'without a jti, a digest names the token');
});

test('every way a token can be wrong has its own code', () => {
  const token = signJwt(rsa, claims);
  const [h, p, s] = token.split('.') as [string, string, string];
  const tamperedClaims = Buffer.from(JSON.stringify({ ...claims, sub: 'admin' })).toString('base64url');
  const cases: [string, string][] = [
    ['not.a.jwt!', 'jwt_malformed'],
    [`${h}.${p}`, 'jwt_malformed'],
    [`${h}.${tamperedClaims}.${s}`, 'jwt_signature_invalid'],
    [signJwt(rsa, claims, { alg: 'none' }), 'jwt_algorithm_refused'],
    [signJwt(rsa, claims, { alg: 'HS256' }), 'jwt_algorithm_refused'],
    [signJwt(rsa, claims, { kid: 'rotated-away' }), 'jwt_key_unknown'],
    [signJwt(rsa, claims, { kid: 'ec-1' }), 'jwt_signature_invalid'],
    [signJwt(newSigningKey('rsa-1', 'RS256'), claims), 'jwt_signature_invalid'],
    [signJwt(rsa, { ...claims, exp: seconds - 61 }), 'jwt_expired'],
    [signJwt(rsa, { ...claims, exp: undefined }), 'jwt_malformed'],
    [signJwt(rsa, { ...claims, nbf: seconds + 61 }), 'jwt_not_yet_valid'],
    [signJwt(rsa, { ...claims, iss: 'https://evil.example/' }), 'jwt_wrong_issuer'],
    [signJwt(rsa, { ...claims, aud: 'mandate-billing' }), 'jwt_wrong_audience'],
    [signJwt(rsa, { ...claims, scope: 'openid tickets:write' }), 'jwt_claim_missing'],
    [signJwt(rsa, { ...claims, groups: 'ops' }), 'jwt_claim_missing'],
    [signJwt(rsa, { ...claims, sub: '' }), 'jwt_claim_missing'],
    [signJwt(rsa, claims, { crit: ['exp'] }), 'jwt_malformed'],
  ];
  for (const [bad, code] of cases) {
    const result = verifyJwt(bad, config, keys, now);
    assert.equal(result.ok ? 'ok' : result.code, code, bad.slice(0, 60));
  }
  // Within the skew, an expiry just past still passes.
  assert.equal(verifyJwt(signJwt(rsa, { ...claims, exp: seconds - 30 }), config, keys, now).ok, true);
  // An algorithm the Persona does not list is refused even with a valid signature.
  assert.equal((verifyJwt(signJwt(ed, claims), { ...config, algorithms: ['RS256'] }, keys, now) as { code: string }).code, 'jwt_algorithm_refused');
});

test('a JWKS keeps public signing keys only', () => {
  const encryption = { ...rsa.publicJwk, kid: 'enc', use: 'enc' };
  const privateJwk = { ...generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' }), kid: 'leaked' };
  const parsed = parseJwks({ keys: [rsa.publicJwk, encryption, privateJwk, { kty: 'oct', k: 'c2VjcmV0', kid: 'hmac' }, 'junk', { kty: 'RSA', kid: 'broken', n: 'x', e: 'AQAB' }] });
  assert.deepEqual([...parsed.keys.byKid.keys()], ['rsa-1']);
  assert.equal(parsed.skipped, 5);
  assert.throws(() => parseJwks({ notKeys: [] }), /not a JWKS document/);
});

test('the JWKS cache fetches tracked key sets, picks up a rotation on an unknown kid, and rate-limits early refreshes', async () => {
  const provider = await startTestIdentityProvider([rsa]);
  const events: string[] = [];
  let clock = now;
  const cache = createJwksCache({ log: (event) => events.push(event), minRefreshMs: 1000, now: () => clock });
  try {
    assert.equal(cache.keys(provider.jwksUri), null);
    cache.track([provider.jwksUri]);
    await cache.settled();
    assert.deepEqual([...cache.keys(provider.jwksUri)!.byKid.keys()], ['rsa-1']);
    assert.equal(provider.fetches, 1);
    assert.deepEqual(cache.status(), [{ uri: provider.jwksUri, keys: 1, lastSuccessMs: clock }]);

    provider.publish([rsa, ec]);
    clock += 1001;
    cache.refreshSoon(provider.jwksUri);
    await cache.settled();
    assert.deepEqual([...cache.keys(provider.jwksUri)!.byKid.keys()].sort(), ['ec-1', 'rsa-1']);
    // Another unknown kid right away waits for the interval instead of fetching again.
    cache.refreshSoon(provider.jwksUri);
    await cache.settled();
    assert.equal(provider.fetches, 2);

    // A failing issuer keeps the keys it had.
    await provider.close();
    clock += 1001;
    cache.refreshSoon(provider.jwksUri);
    await cache.settled();
    assert.ok(cache.keys(provider.jwksUri)!.byKid.has('ec-1'));
    assert.deepEqual(events, ['jwks_loaded', 'jwks_loaded', 'jwks_fetch_failed']);
    cache.track([]);
    assert.equal(cache.keys(provider.jwksUri), null, 'untracked key sets are dropped');
  } finally {
    cache.stop();
  }
});

test('20,000 random mutations of a valid token never throw and never verify', () => {
  const token = signJwt(ec, claims);
  let seed = 7;
  const random = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ';
  for (let i = 0; i < 20_000; i++) {
    const chars = [...token];
    for (let k = 0, edits = 1 + random(4); k < edits; k++) {
      const at = random(chars.length);
      const op = random(3);
      if (op === 0) chars[at] = alphabet[random(alphabet.length)]!;
      else if (op === 1) chars.splice(at, 1);
      else chars.splice(at, 0, alphabet[random(alphabet.length)]!);
    }
    const mutated = chars.join('');
    if (mutated === token) continue;
    const result = verifyJwt(mutated, config, keys, now);
    // base64url has unused low bits in a part's last character: a flip there decodes to the same bytes.
    if (result.ok) assert.equal(Buffer.from(mutated.split('.')[2] ?? '', 'base64url').equals(Buffer.from(token.split('.')[2]!, 'base64url')) && mutated.split('.').slice(0, 2).join('.') === token.split('.').slice(0, 2).join('.'), true, mutated);
  }
});

test("a refusal quotes no header text the agent chose: an unregistered alg is not named, the kid never", () => {
  const awsKey = 'AKIAZ3MQ7HW2XK4JLP5R';
  const message = (token: string) => {
    const result = verifyJwt(token, config, keys, now);
    assert.ok(!result.ok);
    return (result as { message: string }).message;
  };
  assert.match(message(signJwt(rsa, claims, { alg: 'HS256' })), /^the JWT is signed with HS256;/);
  assert.match(message(signJwt(rsa, claims, { alg: awsKey })), /^the JWT is signed with an unregistered algorithm;/);
  assert.equal(message(signJwt(rsa, claims, { kid: awsKey })), "the issuer publishes no key with the JWT's kid");
});
