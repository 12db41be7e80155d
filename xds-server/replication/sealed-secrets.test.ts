// Inline upstream secrets on the wire: sealed under the config secrets key, opened
// only with a key of the ring, bound to their version, upstream and field.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { RevisionChange } from '../store/records.ts';
import { openSecrets, sealSecrets, secretsKeyringFromEnv, type SealedSecret } from './sealed-secrets.ts';

const secret = 'sk-live-4f1c9e2b7a6d5c3e8f0a1b2c';
const headerSecret = 'hdr-9b8a7c6d5e4f3a2b1c0d';
const bundle = {
  upstreams: [
    { kind: 'Upstream', name: 'billing', protocol: 'mcp', url: 'http://billing.internal/mcp', environment: 'production', auth: { type: 'bearer', token: { value: secret } } },
    { kind: 'Upstream', name: 'crm', protocol: 'rest', url: 'http://crm.internal/', environment: 'production', auth: { type: 'header', header: 'x-api-key', value: { value: headerSecret } } },
    { kind: 'Upstream', name: 'tickets', protocol: 'mcp', url: 'http://tickets.internal/mcp', environment: 'production', auth: { type: 'bearer', token: { env: 'TICKETS_TOKEN' } } },
  ],
  skills: [],
  personas: [],
};
const change: RevisionChange = { kind: 'change', version: 5, createdAt: '2026-11-26T08:00:00.000Z', actor: 'admin', summary: 'applied', bundleJson: JSON.stringify(bundle), credentialsIssued: [], credentialsRevoked: [] };
const keyA = randomBytes(32);
const keyB = randomBytes(32);
const ringA = secretsKeyringFromEnv({ MANDATE_CONFIG_SECRETS_KEY: keyA.toString('base64') });

function sealed(ring = ringA, what = change): { change: RevisionChange; sealedSecrets: SealedSecret[] } {
  const result = sealSecrets(what, ring);
  assert.ok(!('refused' in result), JSON.stringify(result));
  return result;
}

test('inline secrets leave only sealed; the same key restores the exact bundle; env secrets travel as names', () => {
  const out = sealed();
  assert.ok(!out.change.bundleJson.includes(secret) && !out.change.bundleJson.includes(headerSecret));
  assert.ok(!JSON.stringify(out.sealedSecrets).includes(secret));
  assert.ok(out.change.bundleJson.includes('TICKETS_TOKEN'));
  assert.deepEqual(out.sealedSecrets.map((s) => [s.upstream, s.field]), [['billing', 'token'], ['crm', 'value']]);
  const opened = openSecrets(out.change, out.sealedSecrets, ringA);
  assert.ok('change' in opened);
  assert.equal(opened.change.bundleJson, change.bundleJson, 'byte for byte');
  // The key in hex works the same; the nonce differs per seal.
  const hexRing = secretsKeyringFromEnv({ MANDATE_CONFIG_SECRETS_KEY: keyA.toString('hex') });
  assert.equal(hexRing.current!.id, ringA.current!.id);
  assert.notEqual(sealed().sealedSecrets[0]!.sealed, out.sealedSecrets[0]!.sealed);
});

test('without a key a change with an inline secret is refused; without inline secrets it passes unchanged', () => {
  const refused = sealSecrets(change, secretsKeyringFromEnv({}));
  assert.ok('refused' in refused);
  assert.match(refused.refused, /Upstream billing has an inline secret.*MANDATE_CONFIG_SECRETS_KEY.*\{env: NAME\}/);
  assert.ok(!refused.refused.includes(secret));
  const envOnly = { ...change, bundleJson: JSON.stringify({ ...bundle, upstreams: [bundle.upstreams[2]] }) };
  assert.deepEqual(sealSecrets(envOnly, secretsKeyringFromEnv({})), { change: envOnly, sealedSecrets: [] });
});

test('another key, an altered seal, a seal moved to another version or upstream are refused; a previous key still opens', () => {
  const out = sealed();
  const ringB = secretsKeyringFromEnv({ MANDATE_CONFIG_SECRETS_KEY: keyB.toString('base64') });
  const other = openSecrets(out.change, out.sealedSecrets, ringB);
  assert.ok('refused' in other && other.refused.includes(`config secrets key ${ringA.current!.id}`));

  const flipped = Buffer.from(out.sealedSecrets[0]!.sealed, 'base64');
  flipped[14]! ^= 1;
  const altered = openSecrets(out.change, [{ ...out.sealedSecrets[0]!, sealed: flipped.toString('base64') }, out.sealedSecrets[1]!], ringA);
  assert.ok('refused' in altered && /does not authenticate/.test(altered.refused));

  const replayed = openSecrets({ ...out.change, version: 6 }, out.sealedSecrets, ringA);
  assert.ok('refused' in replayed && /does not authenticate/.test(replayed.refused));
  // billing's sealed token presented as crm's header value.
  const moved = openSecrets(out.change, [{ ...out.sealedSecrets[0]!, upstream: 'crm', field: 'value' }], ringA);
  assert.ok('refused' in moved && /does not authenticate/.test(moved.refused));
  const nowhere = openSecrets(out.change, [{ ...out.sealedSecrets[0]!, upstream: 'tickets' }], ringA);
  assert.ok('refused' in nowhere && /has no inline secret/.test(nowhere.refused));

  // Rotation: B is current, A is previous; history sealed with A still opens, new seals use B.
  const rotated = secretsKeyringFromEnv({ MANDATE_CONFIG_SECRETS_KEY: keyB.toString('base64'), MANDATE_CONFIG_SECRETS_PREVIOUS_KEYS: ` ${keyA.toString('hex')} ` });
  const reopened = openSecrets(out.change, out.sealedSecrets, rotated);
  assert.ok('change' in reopened && reopened.change.bundleJson === change.bundleJson);
  assert.equal(sealed(rotated).sealedSecrets[0]!.key, rotated.current!.id);
});

test('a malformed key is an error naming the variable, never a silent clear-text fallback', () => {
  for (const bad of ['short', 'zz'.repeat(32), randomBytes(16).toString('base64')]) {
    assert.throws(() => secretsKeyringFromEnv({ MANDATE_CONFIG_SECRETS_KEY: bad }), /MANDATE_CONFIG_SECRETS_KEY must be 32 bytes/);
  }
  assert.throws(() => secretsKeyringFromEnv({ MANDATE_CONFIG_SECRETS_KEY: keyA.toString('hex'), MANDATE_CONFIG_SECRETS_PREVIOUS_KEYS: 'nope' }), /MANDATE_CONFIG_SECRETS_PREVIOUS_KEYS/);
});

test('the keys may come from files (a deployment secret): MANDATE_CONFIG_SECRETS_KEY_FILE and _PREVIOUS_KEYS_FILE, one key a line', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mandate-secrets-key-'));
  try {
    writeFileSync(join(dir, 'key'), `${keyB.toString('base64')}\n`);
    writeFileSync(join(dir, 'previous'), `${keyA.toString('hex')}\n${randomBytes(32).toString('base64')}\n`);
    const ring = secretsKeyringFromEnv({ MANDATE_CONFIG_SECRETS_KEY_FILE: join(dir, 'key'), MANDATE_CONFIG_SECRETS_PREVIOUS_KEYS_FILE: join(dir, 'previous') });
    assert.deepEqual(ring.current?.key, keyB);
    assert.deepEqual(ring.all.map((k) => k.key.length), [32, 32, 32]);
    assert.deepEqual(ring.all[1]!.key, keyA);
    assert.throws(() => secretsKeyringFromEnv({ MANDATE_CONFIG_SECRETS_KEY_FILE: join(dir, 'missing') }), /MANDATE_CONFIG_SECRETS_KEY_FILE: cannot read .*ENOENT/);
    assert.throws(() => secretsKeyringFromEnv({ MANDATE_CONFIG_SECRETS_KEY_FILE: join(dir, 'key'), MANDATE_CONFIG_SECRETS_KEY: keyA.toString('hex') }), /set MANDATE_CONFIG_SECRETS_KEY or MANDATE_CONFIG_SECRETS_KEY_FILE, not both/);
    writeFileSync(join(dir, 'bad'), 'not a key\n');
    assert.throws(() => secretsKeyringFromEnv({ MANDATE_CONFIG_SECRETS_KEY_FILE: join(dir, 'bad') }), /MANDATE_CONFIG_SECRETS_KEY_FILE \(.*\) must be 32 bytes/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
