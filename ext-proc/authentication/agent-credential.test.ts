import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import type { AgentCredentialRecord } from '../../config/bundle.ts';
import { authenticateAgent } from './agent-credential.ts';

const secret = 'A'.repeat(43);
const record: AgentCredentialRecord = {
  id: '0123456789ab',
  agent: 'agent-1',
  persona: 'support',
  secretHash: createHash('sha256').update(secret).digest('hex'),
  createdAt: '2026-01-01T00:00:00Z',
  expiresAt: '2027-01-01T00:00:00Z',
};
const credentials = new Map([[record.id, record]]);
const now = Date.parse('2026-06-01T00:00:00Z');

test('a valid token for its own Persona authenticates', () => {
  const result = authenticateAgent(`Bearer mnd_${record.id}_${secret}`, credentials, 'support', now);
  assert.ok(result.ok && result.credential.agent === 'agent-1');
});

test('each failure has its own code and a Bearer challenge', () => {
  const code = (header: string | undefined, persona = 'support', at = now) => {
    const result = authenticateAgent(header, credentials, persona, at);
    assert.ok(!result.ok);
    assert.match(result.challenge, /^Bearer realm="mandate", error="invalid_(request|token)"/);
    return result.reason.code;
  };
  assert.equal(code(undefined), 'credential_missing');
  assert.equal(code('Basic abc'), 'credential_malformed');
  assert.equal(code(`Bearer mnd_${record.id}_${'B'.repeat(43)}`), 'credential_invalid');
  assert.equal(code(`Bearer mnd_ffffffffffff_${secret}`), 'credential_invalid');
  assert.equal(code(`Bearer mnd_${record.id}_${secret}`, 'other-persona'), 'credential_wrong_persona');
  assert.equal(code(`Bearer mnd_${record.id}_${secret}`, 'support', Date.parse('2027-02-01T00:00:00Z')), 'credential_expired');
});
