// An agent's JWT (JWS compact serialisation) checked against a Persona's
// `authentication.jwt`: the signature with the issuer's published key (by `kid`),
// an allowed asymmetric algorithm, `iss`, `aud`, `exp`/`nbf` with the configured
// skew, the required claims, and the claim that names the agent. Pure: the keys
// come from the JWKS cache (jwks.ts), the time from the caller.
import { createHash, verify, type KeyObject } from 'node:crypto';
import type { JwtAuthentication } from '../../config/schema.ts';

export type JwtVerification =
  | { ok: true; agent: string; credentialId: string }
  | { ok: false; code: JwtFailureCode; message: string };

export type JwtFailureCode = 'jwt_malformed' | 'jwt_algorithm_refused' | 'jwt_key_unknown' | 'jwt_signature_invalid' | 'jwt_expired' | 'jwt_not_yet_valid' | 'jwt_wrong_issuer' | 'jwt_wrong_audience' | 'jwt_claim_missing';

/** The issuer's keys as the cache holds them: by `kid`, each with the algorithms its JWK allows. */
export interface IssuerKeys {
  byKid: ReadonlyMap<string, VerificationKey>;
  /** Keys without a `kid`; used only when the token names none. */
  unnamed: readonly VerificationKey[];
}

export interface VerificationKey {
  key: KeyObject;
  /** The JWK's `alg`, when it pins one. */
  alg: string | null;
}

/** Whether a bearer value has the shape of a JWS: three base64url parts. */
export function looksLikeJwt(token: string): boolean {
  return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(token);
}

const fail = (code: JwtFailureCode, message: string): JwtVerification => ({ ok: false, code, message });

function decodeJson(part: string): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** How node:crypto verifies each algorithm: the digest, and the padding or signature encoding. */
function verifyOptions(alg: string, key: KeyObject): { digest: string | null; options: Record<string, unknown> } | null {
  const digest = { '256': 'sha256', '384': 'sha384', '512': 'sha512' }[alg.slice(2)] ?? null;
  if (alg.startsWith('RS') && key.asymmetricKeyType === 'rsa') return { digest, options: { key } };
  if (alg.startsWith('PS') && (key.asymmetricKeyType === 'rsa' || key.asymmetricKeyType === 'rsa-pss')) {
    return { digest, options: { key, padding: 6 /* RSA_PKCS1_PSS_PADDING */, saltLength: Number(alg.slice(2)) / 8 } };
  }
  if (alg.startsWith('ES') && key.asymmetricKeyType === 'ec') {
    const curve = { ES256: 'prime256v1', ES384: 'secp384r1', ES512: 'secp521r1' }[alg];
    if (key.asymmetricKeyDetails?.namedCurve !== curve) return null;
    return { digest, options: { key, dsaEncoding: 'ieee-p1363' } };
  }
  if (alg === 'EdDSA' && (key.asymmetricKeyType === 'ed25519' || key.asymmetricKeyType === 'ed448')) return { digest: null, options: { key } };
  return null;
}

function claimHolds(value: unknown, name: string, expected: string): boolean {
  if (typeof value === 'string') return value === expected || ((name === 'scope' || name === 'scp') && value.split(' ').includes(expected));
  if (Array.isArray(value)) return value.includes(expected);
  return false;
}

/** JWS algorithm names (RFC 7518 and RFC 8037), the only header text a refusal quotes. */
const registeredJwsAlgorithms: ReadonlySet<string> = new Set(['none', 'HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'ES512', 'ES256K', 'PS256', 'PS384', 'PS512', 'EdDSA', 'Ed25519', 'Ed448']);

export function verifyJwt(token: string, config: JwtAuthentication, keys: IssuerKeys, nowMs: number): JwtVerification {
  const parts = token.split('.');
  if (parts.length !== 3 || !looksLikeJwt(token)) return fail('jwt_malformed', 'the bearer token is not a JWT');
  const header = decodeJson(parts[0]!);
  const claims = decodeJson(parts[1]!);
  if (!header || !claims) return fail('jwt_malformed', 'the JWT header or claims are not a JSON object');
  const alg = header.alg;
  if (typeof alg !== 'string' || !(config.algorithms as string[]).includes(alg)) {
    // The header is the agent's text, recorded in the audit trail: only a registered algorithm name is quoted.
    const named = typeof alg !== 'string' ? 'no algorithm' : registeredJwsAlgorithms.has(alg) ? alg : 'an unregistered algorithm';
    return fail('jwt_algorithm_refused', `the JWT is signed with ${named}; this Persona accepts ${config.algorithms.join(', ')}`);
  }
  if (header.crit !== undefined) return fail('jwt_malformed', 'the JWT has critical header parameters Mandate does not understand');
  const kid = typeof header.kid === 'string' ? header.kid : null;
  const candidates = kid !== null ? [keys.byKid.get(kid)].filter((k): k is VerificationKey => k !== undefined) : keys.unnamed;
  if (candidates.length === 0) return fail('jwt_key_unknown', kid !== null ? "the issuer publishes no key with the JWT's kid" : 'the JWT names no key and the issuer publishes no unnamed one');
  const signed = Buffer.from(`${parts[0]}.${parts[1]}`);
  const signature = Buffer.from(parts[2]!, 'base64url');
  const valid = candidates.some((candidate) => {
    if (candidate.alg !== null && candidate.alg !== alg) return false;
    const how = verifyOptions(alg, candidate.key);
    if (!how) return false;
    try {
      return verify(how.digest, signed, how.options as never, signature);
    } catch {
      return false;
    }
  });
  if (!valid) return fail('jwt_signature_invalid', 'the JWT signature does not verify with the issuer\'s key');

  const skewMs = config.clockSkewSeconds * 1000;
  if (typeof claims.exp !== 'number') return fail('jwt_malformed', 'the JWT has no expiry (exp)');
  if (claims.exp * 1000 + skewMs <= nowMs) return fail('jwt_expired', 'the JWT has expired');
  if (typeof claims.nbf === 'number' && claims.nbf * 1000 - skewMs > nowMs) return fail('jwt_not_yet_valid', 'the JWT is not valid yet (nbf)');
  if (claims.iss !== config.issuer) return fail('jwt_wrong_issuer', 'the JWT comes from another issuer');
  const audiences = typeof claims.aud === 'string' ? [claims.aud] : Array.isArray(claims.aud) ? claims.aud : [];
  if (!config.audiences.some((a) => audiences.includes(a))) return fail('jwt_wrong_audience', 'the JWT is not meant for this Persona (aud)');
  for (const [name, expected] of Object.entries(config.requiredClaims)) {
    if (!claimHolds(claims[name], name, expected)) return fail('jwt_claim_missing', `the JWT lacks the required claim ${name}`);
  }
  const agent = claims[config.agentClaim];
  if (typeof agent !== 'string' || agent === '' || agent.length > 256) return fail('jwt_claim_missing', `the JWT has no ${config.agentClaim} naming the agent`);
  // The audit names the token without keeping it: its jti, or a digest of it.
  const jti = typeof claims.jti === 'string' && claims.jti.length <= 128 ? claims.jti : null;
  return { ok: true, agent, credentialId: `jwt:${jti ?? createHash('sha256').update(token).digest('hex').slice(0, 16)}` };
}
