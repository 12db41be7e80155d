import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureSecretFile, tokenMatches } from './tokens.ts';

test('ensureSecretFile creates a 0600 file with 32 random bytes once, then reads it back', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mandate-tokens-'));
  try {
    const path = join(dir, 'nested', 'admin-token');
    const token = ensureSecretFile(path);
    assert.equal(Buffer.from(token, 'base64url').length, 32);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal(readFileSync(path, 'utf8').trim(), token);
    assert.equal(ensureSecretFile(path), token);
    assert.notEqual(ensureSecretFile(join(dir, 'internal-token')), token);
    writeFileSync(join(dir, 'kept'), '  operator-chosen-token\n');
    assert.equal(ensureSecretFile(join(dir, 'kept')), 'operator-chosen-token');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('tokenMatches accepts only the exact token, never an empty expected one', () => {
  assert.equal(tokenMatches('abc', 'abc'), true);
  assert.equal(tokenMatches('abd', 'abc'), false);
  assert.equal(tokenMatches('abcd', 'abc'), false);
  assert.equal(tokenMatches('', ''), false);
});
