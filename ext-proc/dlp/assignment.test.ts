import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assignedValueAt, isCodeReference, nameEndsWithWord } from './assignment.ts';
import { compileDataProtection } from './compile.ts';
import { inspectText, inspectJson } from './inspect.ts';

const compiled = compileDataProtection({ defaultAction: 'redact', profiles: ['secrets'] } as never);
assert.ok(compiled.ok);
const request = { direction: 'request' as const, upstream: 'tracker' };
const redacted = (text: string) => inspectText(compiled, text, request).value;

test('a credential assigned in running text is redacted, and only the value', () => {
  const cases: [string, string][] = [
    ['password: hunter22x', 'password: [REDACTED:credential]'],
    ['password:hunter22x', 'password:[REDACTED:credential]'],
    ['pwd=hunter22x', 'pwd=[REDACTED:credential]'],
    ['password=Tr0ub4dor&3', 'password=[REDACTED:credential]'],
    ['https://x.test/login?password=abc12345&user=bob', 'https://x.test/login?password=[REDACTED:credential]&user=bob'],
    ['DB_PASSWORD=hunter22x', 'DB_PASSWORD=[REDACTED:credential]'],
    ['db_password=hunter22x', 'db_password=[REDACTED:credential]'],
    ['spring.datasource.password=hunter22x', 'spring.datasource.password=[REDACTED:credential]'],
    ['mysql --password hunter22x -h db', 'mysql --password [REDACTED:credential] -h db'],
    ['PASSWORD="correct horse battery staple"', 'PASSWORD="[REDACTED:credential]"'],
    ["config['password'] = 'Zq9-xx81k'", "config['password'] = '[REDACTED:credential]'"],
    ['The password was Summer2024!', 'The password was [REDACTED:credential]'],
    ['password hunter22x', 'password [REDACTED:credential]'],
    ['secret_key = "Zk3Jq9Lm2Nx7Pw4Rt8Vy1Bc6"', 'secret_key = "[REDACTED:credential]"'],
    ['export API_TOKEN=ab12CD34ef56GH78ij90KL12', 'export API_TOKEN=[REDACTED:credential]'],
    ['my token is ghx8f7D6e5C4b3A2f1E0d9C8b7A.', 'my token is [REDACTED:credential]'],
    ['password: hunter22x\npassword: second99y', 'password: [REDACTED:credential]\npassword: [REDACTED:credential]'],
    ['API_KEY_V2=9f8eD7c6B5a4F3e2D1c0B9a8', 'API_KEY_V2=[REDACTED:credential]'],
    ['PASSWORD2=hunter22x', 'PASSWORD2=[REDACTED:credential]'],
    ['DB_PASSWORD_PROD=hunter22x', 'DB_PASSWORD_PROD=[REDACTED:credential]'],
    ['password:\n  hunter22x\nuser: bob', 'password:\n  [REDACTED:credential]\nuser: bob'],
    ['password -> hunter22x', 'password -> [REDACTED:credential]'],
  ];
  for (const [input, expected] of cases) assert.equal(redacted(input), expected, input);
});

test('names, prose and code that name no credential value are left alone', () => {
  const unchanged = [
    'client_secret_basic',
    "token_endpoint_auth_method: 'client_secret_basic',",
    'client_secret: options.clientSecret,',
    'client_secret: z.ZodOptional<z.ZodString>;',
    'password?: string;',
    'password = getPassword();',
    'password: ${DB_PASSWORD}',
    'password: $DB_PASSWORD',
    'password: process.env.DB_PASSWORD',
    'password: <your password>',
    '_password_: password string according to the specification',
    'the password is incorrect',
    'password.txt is in the home folder',
    'password_reset: abc12345',
    'passwords: stored hashed with bcrypt2',
    'if (supportedMethods.includes(\'none\')) return token;',
    "[Decoding Token's Protected Header](docs/util/decode_protected_header/functions/decodeProtectedHeader.md)",
  ];
  for (const input of unchanged) assert.equal(redacted(input), input, input);
});

test('a field name must end with the context word (or with it and how the value is written)', () => {
  const json = inspectJson(compiled, {
    db_password: 'hunter22x',
    password_hash: '$2b$12$abcdefghijklmnopqrstuv',
    Unexpected_token_A_constructor_was_expected: 'Neočekávaný token. Očekával se konstruktor.',
    token_type: 'Bearer',
  }, request).value as Record<string, string>;
  assert.equal(json.db_password, '[REDACTED:credential]');
  assert.equal(json.password_hash, '[REDACTED:credential]');
  assert.equal(json.Unexpected_token_A_constructor_was_expected, 'Neočekávaný token. Očekával se konstruktor.');
  assert.equal(json.token_type, 'Bearer');
  assert.equal(nameEndsWithWord('x-api-key', ['x-api-key', 'api-key']), true);
  assert.equal(nameEndsWithWord('secret_key_base', ['secret_key']), true);
  assert.equal(nameEndsWithWord('client_secret_basic', ['client_secret', 'secret']), false);
  assert.equal(nameEndsWithWord('mypassword', ['password']), false);
});

test('assignedValueAt reads the link and the value', () => {
  const at = (text: string, word: string) => {
    const start = text.toLowerCase().indexOf(word);
    return assignedValueAt(text, start, start + word.length, text.length, [word]);
  };
  assert.deepEqual(at('password := "a b c d"', 'password'), { start: 13, end: 20, link: 'operator', quoted: true });
  assert.deepEqual(at('password is x1y2z3', 'password'), { start: 12, end: 12, link: 'weak', quoted: false });
  assert.equal(at('password\tis\t', 'password'), null);
  assert.equal(at('password_reset_url: https://x', 'password'), null);
  assert.equal(at('password: "unterminated', 'password'), null);
  assert.equal(at('password: "line\nbreak"', 'password'), null);
  assert.equal(isCodeReference('getPassword()'), true);
  assert.equal(isCodeReference('os.environ[\'DB\']'), true);
  assert.equal(isCodeReference('hunter.22'), false);
  assert.equal(isCodeReference('$2b$12$abc'), false);
  assert.equal(isCodeReference('abc<def'), false);
});

test('a quoted value runs past a backslash-escaped quote; reading stays linear in the text', () => {
  assert.equal(redacted('password = "abc\\"def1"'), 'password = "[REDACTED:credential]"');
  // every occurrence reads at most a name, a link and a value: no search to the end of the text
  const text = 'password: "x'.repeat(20000);
  let reads = 0;
  for (let at = text.indexOf('password'); at >= 0; at = text.indexOf('password', at + 1)) {
    assignedValueAt(text, at, at + 8, text.length, ['password']);
    reads++;
  }
  assert.equal(reads, 20000);
  const long = `password_${'a'.repeat(100000)}: x`;
  assert.equal(assignedValueAt(long, 0, 8, long.length, ['password']), null, 'a name longer than any name is none');
});
