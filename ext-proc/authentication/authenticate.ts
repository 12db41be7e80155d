// Who is calling: a Mandate agent token (mnd_...) or a JWT from the identity
// provider the Persona trusts, as its `authentication` allows. The answer is the
// agent's identity, or a refusal with its stable code and the Bearer challenge.
import type { AgentCredentialRecord } from '../../config/bundle.ts';
import type { Persona } from '../../config/schema.ts';
import type { DecisionReason } from '../decision/decision.ts';
import { authenticateAgent, bearerChallenge, bearerOf } from './agent-credential.ts';
import type { JwksCache } from './jwks.ts';
import { looksLikeJwt, verifyJwt } from './jwt.ts';

/** The agent as decisions and the audit know it: its name, and the credential that proved it. */
export interface AgentIdentity {
  agent: string;
  /** A Mandate credential's id, or "jwt:" and the token's jti (or a digest of the token). */
  id: string;
}

export type CallerAuthentication = { ok: true; identity: AgentIdentity } | { ok: false; status: 401 | 503; reason: DecisionReason; challenge: string };

function refusal(status: 401 | 503, code: string, message: string, error: 'invalid_request' | 'invalid_token'): CallerAuthentication {
  return {
    ok: false,
    status,
    reason: { stage: 'authentication', code, message },
    challenge: bearerChallenge(error, message),
  };
}

export function authenticateCaller(
  authorization: string | undefined,
  persona: Persona,
  credentials: ReadonlyMap<string, AgentCredentialRecord>,
  now: number,
  jwks: JwksCache | null,
): CallerAuthentication {
  const { tokens, jwt } = persona.authentication;
  const bearer = bearerOf(authorization);
  if (jwt && bearer !== undefined && !bearer.startsWith('mnd_') && looksLikeJwt(bearer)) {
    const keys = jwks?.keys(jwt.jwksUri) ?? null;
    if (keys === null) {
      jwks?.refreshSoon(jwt.jwksUri);
      return refusal(503, 'jwks_unavailable', 'the identity provider\'s signing keys are not available yet; refusing (fail closed), retry', 'invalid_token');
    }
    const verified = verifyJwt(bearer, jwt, keys, now);
    if (!verified.ok) {
      if (verified.code === 'jwt_key_unknown') jwks!.refreshSoon(jwt.jwksUri);
      return refusal(401, verified.code, verified.message, 'invalid_token');
    }
    return { ok: true, identity: { agent: verified.agent, id: verified.credentialId } };
  }
  if (!tokens) {
    return refusal(401, bearer === undefined ? 'credential_missing' : 'credential_malformed', 'this Persona accepts only JWTs from its identity provider: send "Authorization: Bearer <JWT>"', bearer === undefined ? 'invalid_request' : 'invalid_token');
  }
  const token = authenticateAgent(authorization, credentials, persona.name, now);
  if (!token.ok) return { ok: false, status: 401, reason: token.reason, challenge: token.challenge };
  return { ok: true, identity: { agent: token.credential.agent, id: token.credential.id } };
}
