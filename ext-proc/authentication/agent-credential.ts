// Agent credentials: "Bearer mnd_<id>_<secret>". Only the SHA-256 of the secret
// is known to the data path; comparison is constant-time.
import { hash, timingSafeEqual } from 'node:crypto';
import type { AgentCredentialRecord } from '../../config/bundle.ts';
import type { DecisionReason } from '../decision/decision.ts';

const tokenPattern = /^mnd_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/;
const unknownIdHash = Buffer.alloc(32);
/** Each record's stored hash as bytes, decoded once per record (records live as long as their config version). */
const expectedHashes = new WeakMap<AgentCredentialRecord, Buffer>();

function expectedHashOf(record: AgentCredentialRecord): Buffer {
  let expected = expectedHashes.get(record);
  if (expected === undefined) expectedHashes.set(record, (expected = Buffer.from(record.secretHash, 'hex')));
  return expected;
}

export type AuthenticationResult =
  | { ok: true; credential: AgentCredentialRecord }
  | { ok: false; reason: DecisionReason; challenge: string };

/** The token of an `Authorization: Bearer <token>` header, or undefined. */
export function bearerOf(authorization: string | undefined): string | undefined {
  return authorization ? /^Bearer\s+(\S+)$/i.exec(authorization.trim())?.[1] : undefined;
}

/** The WWW-Authenticate challenge of a refused credential (RFC 6750). */
export function bearerChallenge(error: 'invalid_request' | 'invalid_token', message: string): string {
  return `Bearer realm="mandate", error="${error}", error_description="${message.replace(/"/g, "'")}"`;
}

export function authenticateAgent(
  authorization: string | undefined,
  credentials: ReadonlyMap<string, AgentCredentialRecord>,
  persona: string,
  now: number,
): AuthenticationResult {
  const fail = (code: string, message: string, error: 'invalid_request' | 'invalid_token'): AuthenticationResult => ({
    ok: false,
    reason: { stage: 'authentication', code, message },
    challenge: bearerChallenge(error, message),
  });
  if (!authorization) return fail('credential_missing', 'an agent credential is required: send "Authorization: Bearer mnd_..."', 'invalid_request');
  const token = bearerOf(authorization);
  const parts = token ? tokenPattern.exec(token) : null;
  if (!parts) return fail('credential_malformed', 'the credential is not a Mandate agent token', 'invalid_token');
  const record = credentials.get(parts[1]!);
  const presentedHash = hash('sha256', parts[2]!, 'buffer');
  // Hash even when the id is unknown, so timing does not reveal which ids exist.
  const expected = record ? expectedHashOf(record) : unknownIdHash;
  const matches = expected.length === presentedHash.length && timingSafeEqual(expected, presentedHash);
  if (!record || !matches) return fail('credential_invalid', 'the credential is unknown or revoked', 'invalid_token');
  if (record.expiresAt !== null && Date.parse(record.expiresAt) <= now) return fail('credential_expired', 'the credential has expired', 'invalid_token');
  if (record.persona !== persona) return fail('credential_wrong_persona', 'the credential is not valid for this Persona endpoint', 'invalid_token');
  return { ok: true, credential: record };
}
