import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { revisionMacProblem, signRevision } from './revision-mac.ts';
import { secretsKeyringFromEnv } from './sealed-secrets.ts';

const keyA = randomBytes(32).toString('base64');
const keyB = randomBytes(32).toString('base64');
const ringA = secretsKeyringFromEnv({ MANDATE_CONFIG_SECRETS_KEY: keyA });
const data = new TextEncoder().encode('{"format":1}');

test('a revision signed for its sequence verifies under the same key, and under it as a previous key after a rotation', () => {
  const header = signRevision(ringA, 7, data);
  assert.match(header, /^[0-9a-f]{16}:[A-Za-z0-9+/]{43}=$/);
  assert.equal(revisionMacProblem(ringA, 7, data, header), null);
  const rotated = secretsKeyringFromEnv({ MANDATE_CONFIG_SECRETS_KEY: keyB, MANDATE_CONFIG_SECRETS_PREVIOUS_KEYS: keyA });
  assert.equal(revisionMacProblem(rotated, 7, data, header), null);
  assert.ok(signRevision(rotated, 8, data).startsWith(`${rotated.current!.id}:`), 'new revisions are signed with the current key');
});

test('no MAC, a malformed one, another sequence, altered bytes or another key with the same id: forged; a key this replica lacks: unknown-key', () => {
  const header = signRevision(ringA, 7, data);
  assert.equal(revisionMacProblem(ringA, 7, data, undefined)?.kind, 'forged');
  assert.equal(revisionMacProblem(ringA, 7, data, 'garbage')?.kind, 'forged');
  assert.equal(revisionMacProblem(ringA, 7, data, `${header.split(':')[0]}:short`)?.kind, 'forged');
  assert.match(revisionMacProblem(ringA, 8, data, header)!.reason, /moved to another sequence/);
  assert.equal(revisionMacProblem(ringA, 7, new TextEncoder().encode('{"format":2}'), header)?.kind, 'forged');
  const other = secretsKeyringFromEnv({ MANDATE_CONFIG_SECRETS_KEY: keyB });
  const underB = signRevision(other, 7, data);
  assert.equal(revisionMacProblem(ringA, 7, data, `${ringA.current!.id}:${underB.split(':')[1]}`)?.kind, 'forged');
  const unknown = revisionMacProblem(ringA, 7, data, underB);
  assert.equal(unknown?.kind, 'unknown-key');
  assert.match(unknown!.reason, new RegExp(`config secrets key ${other.current!.id}, which this replica does not have`));
  assert.throws(() => signRevision({ current: null, all: [] }, 1, data), /no config secrets key/);
});
