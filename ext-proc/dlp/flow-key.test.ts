import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { fingerprintKeyOfText, flowKeySetting, type FlowKeySetting } from './flow-key.ts';

/** A directory of key files, as an operator writes them (mode 0600), removed after the test. */
function keyFiles(t: { after: (fn: () => void) => void }) {
  const dir = mkdtempSync(join(tmpdir(), 'mandate-flow-key-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return (name: string, content: string | Buffer) => {
    const file = join(dir, name);
    writeFileSync(file, content, { mode: 0o600 });
    return file;
  };
}

function refused(setting: FlowKeySetting): { code: string; message: string } {
  assert.equal(setting.ok, false, 'the setting is refused');
  return setting as { code: string; message: string };
}

function keyOf(setting: FlowKeySetting): Buffer {
  assert.ok(setting.ok, `the setting is accepted: ${JSON.stringify(setting)}`);
  assert.ok(setting.key !== null);
  return setting.key;
}

test('scaled out, a replica without a provisioned key is refused with flow_key_required; one process makes its own', () => {
  const missing = refused(flowKeySetting({}, { required: true }));
  assert.equal(missing.code, 'flow_key_required');
  assert.match(missing.message, /MANDATE_FLOW_KEY_FILE.*openssl rand -base64 32/);
  assert.deepEqual(flowKeySetting({ MANDATE_FLOW_KEY: '', MANDATE_FLOW_KEY_FILE: '' }, { required: true }), missing, 'empty variables are unset');
  assert.deepEqual(flowKeySetting({}, { required: false }), { ok: true, key: null });
});

test('a key file that cannot be read, is too short or is not a key is refused with a stable code naming the setting', (t) => {
  const file = keyFiles(t);
  const absent = refused(flowKeySetting({ MANDATE_FLOW_KEY_FILE: '/nonexistent/flow-key' }, { required: true }));
  assert.equal(absent.code, 'flow_key_unreadable');
  assert.match(absent.message, /MANDATE_FLOW_KEY_FILE \(\/nonexistent\/flow-key\): cannot read the file \(ENOENT\)/);

  const short = refused(flowKeySetting({ MANDATE_FLOW_KEY_FILE: file('short', `${randomBytes(31).toString('base64')}\n`) }, { required: true }));
  assert.equal(short.code, 'flow_key_too_short');
  assert.match(short.message, /holds 31 bytes, fewer than 32/);
  assert.equal(refused(flowKeySetting({ MANDATE_FLOW_KEY: randomBytes(16).toString('hex') }, { required: false })).code, 'flow_key_too_short', 'a bad key is refused even where none is required');
  // A passphrase that happens to be base64 decodes to too few bytes.
  assert.equal(refused(flowKeySetting({ MANDATE_FLOW_KEY: 'correcthorsebatterystaple123' }, { required: true })).code, 'flow_key_too_short');

  const invalid = (env: Record<string, string>) => refused(flowKeySetting(env, { required: true }));
  assert.match(invalid({ MANDATE_FLOW_KEY_FILE: file('empty', '\n') }).message, /is empty/);
  assert.match(invalid({ MANDATE_FLOW_KEY_FILE: file('raw', randomBytes(32)) }).message, /neither hex nor base64/, 'raw bytes are not the format');
  assert.match(invalid({ MANDATE_FLOW_KEY: 'not a key, just words!' }).message, /neither hex nor base64/);
  assert.match(invalid({ MANDATE_FLOW_KEY: randomBytes(1025).toString('base64') }).message, /more than 1024 bytes/);
  assert.match(invalid({ MANDATE_FLOW_KEY_FILE: file('large', 'A'.repeat(5000)) }).message, /longer than 4096 bytes/);
  const both = invalid({ MANDATE_FLOW_KEY: randomBytes(32).toString('base64'), MANDATE_FLOW_KEY_FILE: file('both', randomBytes(32).toString('base64')) });
  assert.equal(both.code, 'flow_key_invalid');
  assert.match(both.message, /set MANDATE_FLOW_KEY or MANDATE_FLOW_KEY_FILE, not both/);
  // Base64 no encoder writes (one character too many) is a damaged key, not a short one.
  for (const env of [{ MANDATE_FLOW_KEY: 'x' }, { MANDATE_FLOW_KEY: `${randomBytes(33).toString('base64')}A` }, { MANDATE_FLOW_KEY: '!'.repeat(64) }]) assert.equal(invalid(env).code, 'flow_key_invalid');
});

test('one secret gives one fingerprint key whichever way it is written, derived from it and never the secret itself', (t) => {
  const file = keyFiles(t);
  const secret = randomBytes(48);
  const fromBase64File = keyOf(flowKeySetting({ MANDATE_FLOW_KEY_FILE: file('base64', `${secret.toString('base64')}\n`) }, { required: true }));
  assert.equal(fromBase64File.length, 32);
  assert.ok(!secret.subarray(0, 32).equals(fromBase64File), 'the key is derived');
  // `openssl rand -base64 48` breaks its output at 64 characters; base64url and hex too; the direct variable too.
  const wrapped = secret.toString('base64').replace(/(.{40})/, '$1\n');
  for (const text of [wrapped, secret.toString('base64url'), `  ${secret.toString('hex').toUpperCase()}  `]) {
    assert.ok(keyOf(flowKeySetting({ MANDATE_FLOW_KEY_FILE: file('other', text) }, { required: true })).equals(fromBase64File), JSON.stringify(text));
  }
  assert.ok(keyOf(flowKeySetting({ MANDATE_FLOW_KEY: secret.toString('base64') }, { required: false })).equals(fromBase64File));
  const another = fingerprintKeyOfText(randomBytes(48).toString('base64'), 'test');
  assert.ok(another.ok && !another.key.equals(fromBase64File), 'another secret, another key');
  // Exactly 32 bytes is enough.
  assert.ok(fingerprintKeyOfText(randomBytes(32).toString('base64'), 'test').ok);
});

test('ext_proc scaled out without a data-flow key does not start: one start_failed line with the code', async (t) => {
  const main = fileURLToPath(new URL('../main.ts', import.meta.url));
  const dataDir = mkdtempSync(join(tmpdir(), 'mandate-flow-key-data-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  // Nothing listens on the NATS URL: the key is checked before any connection.
  const env: NodeJS.ProcessEnv = { ...process.env, MANDATE_DATA_DIR: dataDir, MANDATE_INTERNAL_TOKEN: randomBytes(32).toString('base64url'), MANDATE_NATS_URL: 'nats://127.0.0.1:1' };
  delete env.MANDATE_FLOW_KEY;
  delete env.MANDATE_FLOW_KEY_FILE;
  const result = await new Promise<{ exitCode: number; stdout: string }>((resolve) =>
    execFile(process.execPath, [main], { env }, (error, stdout) => resolve({ exitCode: error ? ((error as { code?: number }).code ?? 1) : 0, stdout })),
  );
  assert.equal(result.exitCode, 1);
  const line = JSON.parse(result.stdout.trim().split('\n').at(-1)!) as { component: string; event: string; code?: string; error: string };
  assert.deepEqual([line.component, line.event, line.code], ['ext-proc', 'start_failed', 'flow_key_required']);
  assert.match(line.error, /MANDATE_FLOW_KEY_FILE/);
});
