import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { nkeys } from 'nats';
import { createTestCertificateAuthority } from '../test/support/test-certificates.ts';
import { describeNatsSettings, natsConnectFailure, natsConnectionOptions, NatsSettingsError, natsSettingsFromEnv, type NatsSettingsCode } from './nats-connection.ts';

const dir = mkdtempSync(join(tmpdir(), 'mandate-nats-settings-'));
const authority = createTestCertificateAuthority();
const clientCert = authority.issue('client', 'DNS:mandate', 'clientAuth');
const otherCert = authority.issue('other', 'DNS:other', 'clientAuth');
after(() => {
  rmSync(dir, { recursive: true, force: true });
  authority.dispose();
});

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text, { mode: 0o600 });
  return path;
}

const user = nkeys.createUser();
const seed = new TextDecoder().decode(user.getSeed());
const password = 'correct horse battery staple';
const files = {
  password: file('password', `${password}\n`),
  token: file('token', 's3cr3t-token-value\n'),
  seed: file('seed.nk', `${seed}\n`),
  creds: file(
    'user.creds',
    `-----BEGIN NATS USER JWT-----\neyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5In0.eyJzdWIiOiJVIn0.c2lnbmF0dXJl\n------END NATS USER JWT------\n\n` +
      `************************* IMPORTANT *************************\nNKEY Seed printed below can be used to sign and prove identity.\n\n` +
      `-----BEGIN USER NKEY SEED-----\n${seed}\n------END USER NKEY SEED------\n`,
  ),
  empty: file('empty', '\n'),
  notPem: file('not-pem', 'hello\n'),
};
const url = 'nats://nats-0.nats:4222,nats://nats-1.nats:4222';

/** The error natsSettingsFromEnv throws: its codes by variable, and its message, which must never hold a secret. */
function refusal(env: Record<string, string>): { codes: Record<string, NatsSettingsCode>; message: string } {
  try {
    natsSettingsFromEnv(env);
  } catch (error) {
    assert.ok(error instanceof NatsSettingsError, String(error));
    for (const secret of [password, seed, 's3cr3t-token-value', 'hunter2']) assert.ok(!error.message.includes(secret), `the message shows a secret: ${error.message}`);
    return { codes: Object.fromEntries(error.issues.map((i) => [i.variable, i.code])), message: error.message };
  }
  assert.fail('the settings were accepted');
}

describe('NATS settings from the environment', () => {
  test('no MANDATE_NATS_URL: no NATS, and no NATS setting is read', () => {
    assert.equal(natsSettingsFromEnv({}), null);
    assert.equal(natsSettingsFromEnv({ MANDATE_NATS_URL: '  ', PATH: '/usr/bin' }), null);
  });

  test('a URL alone: the servers, no credentials, TLS only if the server offers it', () => {
    const settings = natsSettingsFromEnv({ MANDATE_NATS_URL: ` ${url} ` })!;
    assert.deepEqual(settings, { servers: ['nats://nats-0.nats:4222', 'nats://nats-1.nats:4222'], auth: null, tls: null });
    const options = natsConnectionOptions(settings, { name: 'x', reconnect: true });
    assert.deepEqual(options.servers, settings.servers);
    assert.equal(options.authenticator, undefined);
    assert.equal(options.tls, undefined);
    assert.equal(options.name, 'x');
    assert.equal(natsSettingsFromEnv({ MANDATE_NATS_URL: '127.0.0.1:4222' })!.servers[0], '127.0.0.1:4222');
  });

  test('each way to authenticate gives nats.js an authenticator that answers the server with it', () => {
    const nonce = 'bm9uY2U';
    const byPassword = natsSettingsFromEnv({ MANDATE_NATS_URL: url, MANDATE_NATS_USER: 'mandate', MANDATE_NATS_PASSWORD_FILE: files.password })!;
    assert.deepEqual(byPassword.auth, { method: 'user_password', user: 'mandate', passwordFile: files.password });
    const authenticate = (settings: ReturnType<typeof natsSettingsFromEnv>) => (natsConnectionOptions(settings!, { name: 'x' }).authenticator as unknown as (n?: string) => Record<string, unknown>)(nonce);
    // One trailing newline is not part of the password; spaces inside are.
    assert.deepEqual(authenticate(byPassword), { user: 'mandate', pass: password });

    const byToken = natsSettingsFromEnv({ MANDATE_NATS_URL: url, MANDATE_NATS_TOKEN_FILE: files.token })!;
    assert.deepEqual(authenticate(byToken), { auth_token: 's3cr3t-token-value' });

    const byNkey = natsSettingsFromEnv({ MANDATE_NATS_URL: url, MANDATE_NATS_NKEY_SEED_FILE: files.seed })!;
    const signed = authenticate(byNkey);
    assert.equal(signed.nkey, user.getPublicKey());
    assert.ok(user.verify(new TextEncoder().encode(nonce), new Uint8Array(Buffer.from(signed.sig as string, 'base64url'))), 'the nonce is signed with the seed');

    const byCreds = natsSettingsFromEnv({ MANDATE_NATS_URL: url, MANDATE_NATS_CREDS_FILE: files.creds })!;
    const jwt = authenticate(byCreds);
    assert.equal(jwt.jwt, 'eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5In0.eyJzdWIiOiJVIn0.c2lnbmF0dXJl');
    assert.equal(jwt.nkey, user.getPublicKey());
    assert.deepEqual(describeNatsSettings(byCreds), { servers: url, auth: 'creds', tls: false, clientCertificate: false });
  });

  test('a secret file is read again on each connection, and the last good one kept while it is unreadable', () => {
    const rotating = file('rotating-password', 'first\n');
    const settings = natsSettingsFromEnv({ MANDATE_NATS_URL: url, MANDATE_NATS_USER: 'mandate', MANDATE_NATS_PASSWORD_FILE: rotating })!;
    const authenticator = natsConnectionOptions(settings, { name: 'x' }).authenticator as unknown as () => { pass: string };
    assert.equal(authenticator().pass, 'first');
    writeFileSync(rotating, 'second\n');
    assert.equal(authenticator().pass, 'second');
    rmSync(rotating);
    assert.equal(authenticator().pass, 'second');
  });

  test('TLS: a tls:// URL, MANDATE_NATS_TLS_REQUIRED or a TLS file requires it; the files are checked and handed to nats.js', () => {
    assert.deepEqual(natsSettingsFromEnv({ MANDATE_NATS_URL: 'tls://nats:4222' })!.tls, { caFile: null, certFile: null, keyFile: null });
    assert.deepEqual(natsSettingsFromEnv({ MANDATE_NATS_URL: url, MANDATE_NATS_TLS_REQUIRED: 'true' })!.tls, { caFile: null, certFile: null, keyFile: null });
    assert.equal(natsSettingsFromEnv({ MANDATE_NATS_URL: url, MANDATE_NATS_TLS_REQUIRED: 'false' })!.tls, null);
    const mutual = natsSettingsFromEnv({
      MANDATE_NATS_URL: url,
      MANDATE_NATS_TLS_CA_FILE: authority.caFile,
      MANDATE_NATS_TLS_CERT_FILE: clientCert.certFile,
      MANDATE_NATS_TLS_KEY_FILE: clientCert.keyFile,
      MANDATE_NATS_NKEY_SEED_FILE: files.seed,
    })!;
    assert.deepEqual(mutual.tls, { caFile: authority.caFile, certFile: clientCert.certFile, keyFile: clientCert.keyFile });
    assert.deepEqual(natsConnectionOptions(mutual, { name: 'x' }).tls, { caFile: authority.caFile, certFile: clientCert.certFile, keyFile: clientCert.keyFile });
    assert.deepEqual(describeNatsSettings(mutual), { servers: url, auth: 'nkey', tls: true, clientCertificate: true });
  });

  test('two ways to authenticate at once are refused, naming both', () => {
    const { codes, message } = refusal({ MANDATE_NATS_URL: url, MANDATE_NATS_TOKEN_FILE: files.token, MANDATE_NATS_NKEY_SEED_FILE: files.seed });
    assert.deepEqual(Object.values(codes), ['nats_auth_conflict']);
    assert.match(message, /MANDATE_NATS_NKEY_SEED_FILE, MANDATE_NATS_TOKEN_FILE are set/);
    assert.deepEqual(Object.values(refusal({ MANDATE_NATS_URL: url, MANDATE_NATS_CREDS_FILE: files.creds, MANDATE_NATS_USER: 'u', MANDATE_NATS_PASSWORD_FILE: files.password }).codes), ['nats_auth_conflict']);
  });

  test('half a setting is refused: a user without a password file, a certificate without its key', () => {
    assert.deepEqual(refusal({ MANDATE_NATS_URL: url, MANDATE_NATS_USER: 'mandate' }).codes, { MANDATE_NATS_USER: 'nats_auth_incomplete' });
    assert.deepEqual(refusal({ MANDATE_NATS_URL: url, MANDATE_NATS_PASSWORD_FILE: files.password }).codes, { MANDATE_NATS_PASSWORD_FILE: 'nats_auth_incomplete' });
    assert.deepEqual(refusal({ MANDATE_NATS_URL: url, MANDATE_NATS_TLS_CERT_FILE: clientCert.certFile }).codes, { MANDATE_NATS_TLS_CERT_FILE: 'nats_tls_incomplete' });
    assert.deepEqual(refusal({ MANDATE_NATS_URL: url, MANDATE_NATS_TLS_KEY_FILE: clientCert.keyFile }).codes, { MANDATE_NATS_TLS_KEY_FILE: 'nats_tls_incomplete' });
  });

  test('TLS turned off while a tls:// URL or TLS files ask for it is refused', () => {
    const { codes, message } = refusal({ MANDATE_NATS_URL: 'tls://nats:4222', MANDATE_NATS_TLS_REQUIRED: 'false', MANDATE_NATS_TLS_CA_FILE: authority.caFile });
    assert.deepEqual(codes, { MANDATE_NATS_TLS_REQUIRED: 'nats_tls_conflict' });
    assert.match(message, /tls:\/\/ URL in MANDATE_NATS_URL, MANDATE_NATS_TLS_CA_FILE/);
    assert.deepEqual(refusal({ MANDATE_NATS_URL: url, MANDATE_NATS_TLS_REQUIRED: 'yes' }).codes, { MANDATE_NATS_TLS_REQUIRED: 'nats_setting_invalid' });
  });

  test('secrets given inline in the environment are refused, pointing to the _FILE setting', () => {
    const { codes, message } = refusal({ MANDATE_NATS_URL: url, MANDATE_NATS_USER: 'mandate', MANDATE_NATS_PASSWORD: 'hunter2' });
    assert.equal(codes.MANDATE_NATS_PASSWORD, 'nats_secret_inline');
    assert.match(message, /MANDATE_NATS_PASSWORD: is not read: .*set MANDATE_NATS_PASSWORD_FILE/);
    assert.deepEqual(refusal({ MANDATE_NATS_URL: url, MANDATE_NATS_TOKEN: 'hunter2' }).codes, { MANDATE_NATS_TOKEN: 'nats_secret_inline' });
    assert.deepEqual(refusal({ MANDATE_NATS_URL: url, MANDATE_NATS_NKEY_SEED: 'hunter2' }).codes, { MANDATE_NATS_NKEY_SEED: 'nats_secret_inline' });
  });

  test('credentials in MANDATE_NATS_URL are refused without echoing them', () => {
    for (const given of ['nats://mandate:hunter2@nats:4222', 'nats://hunter2@nats:4222', 'nats://ok:4222,tls://mandate:hunter2@nats:4222', 'mandate:hunter2@nats:4222']) {
      const { codes, message } = refusal({ MANDATE_NATS_URL: given });
      assert.deepEqual(codes, { MANDATE_NATS_URL: 'nats_url_credentials' }, given);
      assert.match(message, /MANDATE_NATS_USER with MANDATE_NATS_PASSWORD_FILE/);
    }
  });

  test('a URL that is not a NATS server is refused', () => {
    for (const given of ['http://nats:4222', 'nats://nats:4222/path', 'nats://nats:4222?x=1', 'nats://nats:4222,,nats://b:4222', 'nats://nats:99999', 'ws://nats:8080']) {
      assert.deepEqual(refusal({ MANDATE_NATS_URL: given }).codes, { MANDATE_NATS_URL: 'nats_url_invalid' }, given);
    }
  });

  test('NATS settings without MANDATE_NATS_URL are refused: nothing would use them', () => {
    assert.deepEqual(refusal({ MANDATE_NATS_TOKEN_FILE: files.token }).codes, { MANDATE_NATS_TOKEN_FILE: 'nats_setting_without_url' });
    assert.deepEqual(refusal({ MANDATE_NATS_TLS_REQUIRED: 'true' }).codes, { MANDATE_NATS_TLS_REQUIRED: 'nats_setting_without_url' });
  });

  test('file settings must be absolute paths', () => {
    assert.deepEqual(refusal({ MANDATE_NATS_URL: url, MANDATE_NATS_TOKEN_FILE: 'secrets/token' }).codes, { MANDATE_NATS_TOKEN_FILE: 'nats_path_not_absolute' });
    assert.deepEqual(refusal({ MANDATE_NATS_URL: url, MANDATE_NATS_TLS_CA_FILE: 'ca.pem' }).codes, { MANDATE_NATS_TLS_CA_FILE: 'nats_path_not_absolute' });
  });

  test('a missing or unreadable file stops startup, naming the variable and the file', () => {
    const missing = join(dir, 'missing');
    const { codes, message } = refusal({ MANDATE_NATS_URL: url, MANDATE_NATS_USER: 'mandate', MANDATE_NATS_PASSWORD_FILE: missing });
    assert.deepEqual(codes, { MANDATE_NATS_PASSWORD_FILE: 'nats_file_unreadable' });
    assert.equal(message, `MANDATE_NATS_PASSWORD_FILE: cannot read ${missing} (ENOENT) (nats_file_unreadable)`);
    assert.deepEqual(refusal({ MANDATE_NATS_URL: url, MANDATE_NATS_CREDS_FILE: dir }).codes, { MANDATE_NATS_CREDS_FILE: 'nats_file_unreadable' });
    assert.deepEqual(refusal({ MANDATE_NATS_URL: url, MANDATE_NATS_TLS_CA_FILE: missing }).codes, { MANDATE_NATS_TLS_CA_FILE: 'nats_file_unreadable' });
  });

  test('a file that does not hold what its setting needs is refused without showing its contents', () => {
    assert.deepEqual(refusal({ MANDATE_NATS_URL: url, MANDATE_NATS_TOKEN_FILE: files.empty }).codes, { MANDATE_NATS_TOKEN_FILE: 'nats_file_invalid' });
    assert.deepEqual(refusal({ MANDATE_NATS_URL: url, MANDATE_NATS_USER: 'u', MANDATE_NATS_PASSWORD_FILE: files.empty }).codes, { MANDATE_NATS_PASSWORD_FILE: 'nats_file_invalid' });
    // A password file is not a seed, a seed file is not a credentials file.
    assert.deepEqual(refusal({ MANDATE_NATS_URL: url, MANDATE_NATS_NKEY_SEED_FILE: files.password }).codes, { MANDATE_NATS_NKEY_SEED_FILE: 'nats_file_invalid' });
    assert.deepEqual(refusal({ MANDATE_NATS_URL: url, MANDATE_NATS_CREDS_FILE: files.seed }).codes, { MANDATE_NATS_CREDS_FILE: 'nats_file_invalid' });
    // An account seed (SA...) is not a user's.
    const account = file('account.nk', new TextDecoder().decode(nkeys.createAccount().getSeed()));
    assert.deepEqual(refusal({ MANDATE_NATS_URL: url, MANDATE_NATS_NKEY_SEED_FILE: account }).codes, { MANDATE_NATS_NKEY_SEED_FILE: 'nats_file_invalid' });
    assert.deepEqual(refusal({ MANDATE_NATS_URL: url, MANDATE_NATS_TLS_CA_FILE: files.notPem }).codes, { MANDATE_NATS_TLS_CA_FILE: 'nats_file_invalid' });
    const mismatched = refusal({ MANDATE_NATS_URL: url, MANDATE_NATS_TLS_CERT_FILE: clientCert.certFile, MANDATE_NATS_TLS_KEY_FILE: otherCert.keyFile });
    assert.deepEqual(mismatched.codes, { MANDATE_NATS_TLS_KEY_FILE: 'nats_file_invalid' });
    assert.match(mismatched.message, /is not the key of the certificate in MANDATE_NATS_TLS_CERT_FILE/);
  });

  test('every problem is reported at once', () => {
    const { codes } = refusal({ MANDATE_NATS_URL: url, MANDATE_NATS_USER: 'u', MANDATE_NATS_TLS_CERT_FILE: clientCert.certFile, MANDATE_NATS_TOKEN: 'hunter2' });
    assert.deepEqual(codes, { MANDATE_NATS_TOKEN: 'nats_secret_inline', MANDATE_NATS_USER: 'nats_auth_incomplete', MANDATE_NATS_TLS_CERT_FILE: 'nats_tls_incomplete' });
  });
});

describe('a refused connection, explained', () => {
  const anonymous = natsSettingsFromEnv({ MANDATE_NATS_URL: 'tls://nats:4222' })!;
  const withPassword = natsSettingsFromEnv({ MANDATE_NATS_URL: 'nats://nats:4222', MANDATE_NATS_USER: 'mandate', MANDATE_NATS_PASSWORD_FILE: files.password })!;

  test('refused credentials name the settings to check, or the ones to set', () => {
    const refused = natsConnectFailure({ code: 'AUTHORIZATION_VIOLATION', message: "'Authorization Violation'" }, withPassword);
    assert.equal(refused.code, 'nats_auth_refused');
    assert.match(refused.message, /^NATS at nats:\/\/nats:4222 refused the connection .*check MANDATE_NATS_USER and MANDATE_NATS_PASSWORD_FILE/);
    assert.match(natsConnectFailure({ code: 'AUTHORIZATION_VIOLATION', message: 'x' }, anonymous).message, /requires authentication: set MANDATE_NATS_CREDS_FILE/);
  });

  test('an untrusted server certificate, a server without TLS, an unreachable server', () => {
    const untrusted = natsConnectFailure({ code: 'TLS', message: 'x', chainedError: { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', message: 'unable to verify the first certificate' } }, anonymous);
    assert.equal(untrusted.code, 'nats_tls_failed');
    assert.match(untrusted.message, /signed by the CA in MANDATE_NATS_TLS_CA_FILE/);
    assert.equal(natsConnectFailure({ code: 'SERVER_OPT_NA', message: 'tls' }, anonymous).code, 'nats_tls_unavailable');
    const away = natsConnectFailure({ code: 'CONNECTION_REFUSED', message: 'CONNECTION_REFUSED' }, anonymous);
    assert.equal(away.code, 'nats_unreachable');
    assert.match(away.message, /if the server verifies clients, set MANDATE_NATS_TLS_CERT_FILE/);
  });
});
