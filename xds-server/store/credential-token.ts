// Agent credential tokens: mnd_<id>_<secret>. The id is public (it names the
// credential in logs and in the admin API); only the secret's hash is stored.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { AgentCredentialRecord } from '../../config/bundle.ts';

const tokenPattern = /^mnd_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/;

export interface CredentialToken {
  id: string;
  secret: string;
  token: string;
}

export function generateCredentialToken(): CredentialToken {
  const id = randomBytes(6).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  return { id, secret, token: `mnd_${id}_${secret}` };
}

/** The id and secret of a well-formed token, or null. */
export function parseCredentialToken(token: string): { id: string; secret: string } | null {
  const match = tokenPattern.exec(token);
  if (!match || match[1] === undefined || match[2] === undefined) return null;
  return { id: match[1], secret: match[2] };
}

/** Hex SHA-256 of a token's secret part: the only form in which it is stored. */
export function hashCredentialSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/**
 * The credential a presented token belongs to, if it is well-formed, known,
 * its secret matches and it has not expired at `now`; otherwise null.
 */
export function findCredentialForToken(
  records: ReadonlyMap<string, AgentCredentialRecord>,
  token: string,
  now: Date,
): AgentCredentialRecord | null {
  const parsed = parseCredentialToken(token);
  if (!parsed) return null;
  const record = records.get(parsed.id);
  if (!record) return null;
  const presented = Buffer.from(hashCredentialSecret(parsed.secret), 'hex');
  const stored = Buffer.from(record.secretHash, 'hex');
  if (presented.length !== stored.length || !timingSafeEqual(presented, stored)) return null;
  if (record.expiresAt !== null && Date.parse(record.expiresAt) <= now.getTime()) return null;
  return record;
}
