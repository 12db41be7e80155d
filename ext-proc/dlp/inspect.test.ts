import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileDataProtection, type CompiledDataProtection } from './compile.ts';
import { inspectBody, inspectJson, inspectText } from './inspect.ts';
import { lookAlikeSetSource } from './look-alikes.ts';
import { checksummedToken } from './detectors/secrets.ts';
import RE2 from 're2';
import { imageBytes, noiseBytes } from '../../test/support/binary-bytes.ts';

const response = { direction: 'response' as const, upstream: 'billing' };
const request = { direction: 'request' as const, upstream: 'mailer', tool: 'send_email' };
const card = '4539 1488 0343 6467';

function compile(policy: object, options = {}): CompiledDataProtection & { ok: true } {
  const c = compileDataProtection(policy as never, options);
  assert.ok(c.ok, JSON.stringify(!c.ok && c.issues));
  return c;
}

const all = compile({ defaultAction: 'mask' });

test('no dataProtection block: nothing is scanned or changed', () => {
  const c = compileDataProtection(undefined);
  assert.ok(c.ok);
  const r = inspectJson(c, { card: '4111111111111111' }, response);
  assert.equal(r.changed, false);
  assert.deepEqual(r.findings, []);
});

test('bad config is returned as issues with the field path, not thrown', () => {
  const c = compileDataProtection({ detectors: [{ id: 'no-such-detector' }], rules: [{ groups: ['nope'], action: 'block' }] } as never, { basePath: ['personas', 0, 'dataProtection'] });
  assert.equal(c.ok, false);
  assert.ok(!c.ok);
  assert.deepEqual(c.issues.map((i) => [i.path.join('.'), i.code]), [
    ['personas.0.dataProtection.detectors.0.id', 'unknown_detector'],
    ['personas.0.dataProtection.rules.0.groups.0', 'unknown_detector_group'],
  ]);
  const typeError = compileDataProtection({ defaultAction: 'explode' } as never);
  assert.ok(!typeError.ok && typeError.issues[0]!.path.includes('defaultAction'));
});

test('mask keeps the last 4 card digits and separators; JSON stays valid; input is not mutated', () => {
  const input = { payment: { card: '4111 1111 1111 1111', amount: 12.5 } };
  const r = inspectJson(all, input, response);
  assert.equal(r.changed, true);
  assert.deepEqual(r.value, { payment: { card: '**** **** **** 1111', amount: 12.5 } });
  assert.equal(input.payment.card, '4111 1111 1111 1111');
  assert.deepEqual(r.findings, [{ detector: 'payment-card-visa', group: 'financial', location: '$.payment.card', confidence: 0.95, action: 'mask', direction: 'response' }]);
});

// GitHub's own secret scanning relies on the token's CRC32: a ghp_ token whose checksum fails was never issued.
test('a GitHub token whose checksum fails falls below the default bar; a lower minConfidence still reports it', () => {
  const valid = checksummedToken('ghp', 'Zq8mW3xR7tLk2Vb9Nc4Hd6Fg1Js5Py');
  const last = valid.at(-1)!;
  const broken = valid.slice(0, -1) + (last === 'A' ? 'B' : 'A');
  const finding = (c: CompiledDataProtection & { ok: true }, token: string) => inspectText(c, `deploy with ${token}`, response).findings.find((f) => f.detector === 'github-personal-access-token');
  assert.equal(finding(all, valid)?.confidence, 0.92);
  assert.equal(finding(all, broken), undefined);
  const lenient = finding(compile({ defaultAction: 'mask', minConfidence: 0.4 }), broken);
  assert.ok(lenient && lenient.confidence < 0.6, JSON.stringify(lenient));
});

test('findings never carry the matched value', () => {
  const r = inspectJson(all, { note: 'ssn 123-45-6788, token ghp_abc' }, response);
  assert.ok(r.findings.length > 0);
  assert.ok(!JSON.stringify(r.findings).includes('6788'));
});

test('redact uses a typed placeholder; block names the group and detector, not the data', () => {
  const c = compile({ rules: [{ groups: ['credentials'], action: 'block' }, { groups: ['financial'], action: 'redact' }] });
  const redacted = inspectJson(c, { iban: 'DE89 3704 0044 0532 0130 00' }, response);
  assert.deepEqual(redacted.value, { iban: '[REDACTED:bank-account]' });
  const blocked = inspectJson(c, { headers: { auth: 'token sk_live_' + 'a1B2c3D4e5F6g7H8i9J0k1L2' } }, request);
  assert.deepEqual(blocked.blocked, { group: 'credentials', detector: 'stripe-secret-key' });
  assert.equal(blocked.changed, false);
});

test('rules apply per direction and per upstream; per-detector overrides win', () => {
  const c = compile({
    defaultAction: 'detect',
    rules: [
      { groups: ['contact'], direction: 'request', upstreams: ['mailer'], action: 'block' },
      { groups: ['contact'], direction: 'response', action: 'redact' },
    ],
    detectors: [{ id: 'phone-number-e164', action: 'detect' }],
  });
  const body = { to: 'jane.doe@example.org', phone: '+44 20 7946 0958' };
  assert.equal(inspectJson(c, body, request).blocked?.detector, 'email-address');
  assert.equal(inspectJson(c, body, { ...request, upstream: 'crm' }).blocked, null);
  const out = inspectJson(c, body, response);
  assert.deepEqual(out.value, { to: '[REDACTED:email]', phone: '+44 20 7946 0958' });
});

test('a disabled detector is not run even when its profile is on', () => {
  const c = compile({ profiles: ['pci-dss'], detectors: [{ id: 'payment-card-visa', enabled: false }] });
  assert.equal(inspectJson(c, { c: '4111111111111111' }, response).findings.length, 0);
  assert.equal(inspectJson(c, { c: '5555555555554444' }, response).findings[0]?.detector, 'payment-card-mastercard');
});

test('monitor mode records what would happen and changes nothing', () => {
  const c = compile({ defaultAction: 'block' }, { monitor: true });
  const r = inspectJson(c, { card: '4111111111111111' }, response);
  assert.equal(r.blocked, null);
  assert.deepEqual(r.wouldBlock, { group: 'financial', detector: 'payment-card-visa' });
  assert.equal(r.changed, false);
  assert.equal(r.findings[0]?.action, 'block');
});

test('JSON nested in a string (MCP text content) is scanned and re-serialised validly', () => {
  const message = { jsonrpc: '2.0', id: 1, result: { content: [{ type: 'text', text: JSON.stringify({ customer: { ssn: '123-45-6788', name: 'Jo' } }) }] } };
  const r = inspectJson(all, message, response);
  assert.equal(r.findings[0]?.location, '$.result.content[0].text<json>.customer.ssn');
  const inner = JSON.parse((r.value as typeof message).result.content[0]!.text);
  assert.deepEqual(inner, { customer: { ssn: '***-**-6788', name: 'Jo' } });
});

test('keyword context: a 9-digit number is an SSN only next to its label', () => {
  assert.equal(inspectJson(all, { ssn: '123456788' }, response).findings[0]?.detector, 'us-ssn-unformatted');
  assert.equal(inspectJson(all, { order_id: '123456788' }, response).findings.length, 0);
  assert.equal(inspectJson(all, { note: 'customer SSN: 123456788 on file' }, response).findings[0]?.detector, 'us-ssn-unformatted');
});

test('negative context lowers confidence below the bar', () => {
  const plain = inspectJson(all, { note: 'call 415-555-2671 today' }, response).findings;
  assert.equal(plain[0]?.detector, 'phone-number-nanp');
  assert.equal(inspectJson(all, { note: 'order 415-555-2671 shipped' }, response).findings.length, 0);
});

test('stdnum-backed national identifiers: CPF, PESEL, BSN by field name, check digits enforced', () => {
  const r = inspectJson(all, { cpf: '39053344705', pesel: '44051401359', bsn: '111222333' }, response);
  assert.deepEqual(r.findings.map((f) => f.detector).sort(), ['br-cpf', 'nl-bsn', 'pl-pesel']);
  assert.equal(inspectJson(all, { cpf: '39053344706', pesel: '44051401358' }, response).findings.length, 0);
});

test('encoded exfiltration: base64, hex and URL-encoded values are decoded and redacted whole', () => {
  const b64 = Buffer.from('card 4111111111111111').toString('base64');
  const hex = Buffer.from('ssn 123-45-6788 for you').toString('hex');
  const url = encodeURIComponent('key=ghp_x') + '%34%31%31%31%31%31%31%31%31%31%31%31%31%31%31%31';
  const r = inspectJson(all, { a: b64, b: hex, c: url }, request);
  assert.deepEqual(r.findings.map((f) => [f.location, f.detector]), [
    ['$.a (base64)', 'payment-card-visa'],
    ['$.b (hex)', 'us-ssn'],
    ['$.c (url)', 'payment-card-visa'],
  ]);
  assert.deepEqual(r.value, { a: '[REDACTED:payment-card]', b: '[REDACTED:national-id]', c: 'key%3Dghp_x[REDACTED:payment-card]' });
});

test('credentials are masked whole and JWTs must decode', () => {
  const jwt = `${Buffer.from('{"alg":"HS256"}').toString('base64url')}.${Buffer.from('{"sub":"42"}').toString('base64url')}.c2lnbmF0dXJlLXZhbHVl`;
  const r = inspectJson(all, { authorization: `Bearer ${jwt}`, password: 'hunter22' }, request);
  assert.ok(r.findings.some((f) => f.detector === 'json-web-token' || f.detector === 'http-bearer-token'));
  assert.ok(r.findings.some((f) => f.detector === 'password-field'));
  assert.ok(!JSON.stringify(r.value).includes('hunter22'));
  assert.equal(inspectJson(all, { x: 'eyJub3QiOiJqd3QifQ.eyJub3QiOiJqd3QifQ.abc' }, request).findings.length, 0);
});

test('keys are scanned in what agents send by default, in answers only when configured', () => {
  const body = { 'jane.doe@example.org': { visits: 3 } };
  assert.equal(inspectJson(all, body, response).findings.length, 0);
  const c = compile({ scanKeys: true, defaultAction: 'redact' });
  const r = inspectJson(c, body, response);
  assert.deepEqual(r.value, { '[REDACTED:email]': { visits: 3 } });
  // A tool argument whose key carries the value (an agent hiding it from a values-only scan).
  const args = { note: 'see attached', refs: { '4539148803436467': true } };
  const masked = inspectJson(all, args, request);
  assert.deepEqual(masked.findings.map((f) => f.detector), ['payment-card-visa']);
  assert.equal(JSON.stringify(masked.value).includes('4539148803436467'), false);
  assert.equal(inspectBody(all, Buffer.from(JSON.stringify(args)), request).findings.length, 1, 'the raw-body path too');
  assert.equal(inspectJson(compile({ scanKeys: false }), args, request).findings.length, 0, 'false: never');
});

test('inspectBody: clean bodies are returned as-is without parsing; dirty JSON is rewritten', () => {
  const clean = Buffer.from(JSON.stringify({ id: 'a3f1c2d4-5b6a-4c3d-9e8f-0a1b2c3d4e5f', title: 'fix cache' }));
  const r1 = inspectBody(all, clean, response);
  assert.equal(r1.value, clean);
  assert.equal(r1.changed, false);
  const dirty = Buffer.from(JSON.stringify({ card: '4111111111111111' }));
  const r2 = inspectBody(all, dirty, response);
  assert.deepEqual(JSON.parse(r2.value.toString()), { card: '************1111' });
  const escaped = Buffer.from('{"card":"\\u0034111111111111111"}');
  assert.equal(inspectBody(all, escaped, response).findings[0]?.detector, 'payment-card-visa', 'JSON escapes cannot hide a value');
  const text = inspectBody(all, Buffer.from('plain text with 4111111111111111 in it'), response);
  assert.equal(text.value.toString(), 'plain text with ************1111 in it');
  assert.equal(text.findings[0]?.location, 'body');
});

test('hard negatives: UUIDs, timestamps, versions, order numbers', () => {
  const r = inspectJson(all, {
    id: '64593408-3426-4101-a927-531592000000',
    at: '2024-03-01T10:20:30.123Z',
    ms: 1712345678901,
    version: '10.2.33.4',
    order_number: '4111111111111112',
    sha: 'e83c5163316f89bfbde7d9ab23ca2e25604af290',
  }, response);
  assert.deepEqual(r.findings.map((f) => f.detector), []);
});

test('inspectText handles non-ASCII text around matches', () => {
  const r = inspectText(all, 'Zahlung für Käufer – Karte 4111 1111 1111 1111 ✓', response);
  assert.equal(r.value, 'Zahlung für Käufer – Karte **** **** **** 1111 ✓');
});

test('inspectBody: a value right after a \\n or \\t escape in the raw bytes is still found', () => {
  for (const note of ['paid with\n4111111111111111', 'paid with\t4111 1111 1111 1111', 'line\r\nDE89370400440532013000']) {
    const r = inspectBody(all, Buffer.from(JSON.stringify({ note })), response);
    assert.equal(r.changed, true, note);
    assert.equal(r.findings.length, 1, note);
    assert.ok(!r.value.toString().includes('4111 1111 1111 1111') && !r.value.toString().includes('4111111111111111'));
  }
  // escapes before prose only: no hit survives, the body is returned as-is
  const prose = Buffer.from(JSON.stringify({ text: 'first line\nsecond line\tand a tab' }));
  assert.equal(inspectBody(all, prose, response).value, prose);
});

test('inspectBody edits the body in place: formatting, escapes elsewhere and nested JSON survive', () => {
  const inner = JSON.stringify({ customer: { note: 'said "hi"\nthen paid', card: '4111 1111 1111 1111' } }, null, 2);
  const body = Buffer.from(JSON.stringify({ id: 1, result: { content: [{ type: 'text', text: inner }] }, quote: 'a "b" \\ c' }, null, 2));
  const r = inspectBody(all, body, response);
  assert.equal(r.changed, true);
  assert.deepEqual(r.findings.map((f) => f.location), ['$.result.content[0].text<json>.customer.card']);
  const out = r.value.toString();
  const expected = body.toString().replace('4111 1111 1111 1111', '**** **** **** 1111');
  assert.equal(out, expected, 'only the value changed, byte for byte');
  assert.equal(JSON.parse(JSON.parse(out).result.content[0].text).customer.card, '**** **** **** 1111');
});

test('inspectBody: values with escapes, numbers and nested JSON two levels deep are rewritten as valid JSON', () => {
  const deep = JSON.stringify({ t: JSON.stringify({ ssn: '123-45-6788', tab: 'a\tb' }) });
  const body = Buffer.from(JSON.stringify({ note: 'line one\n"card" 4111111111111111 \u00e9', n: 4111111111111111, deep }));
  const r = inspectBody(all, body, response);
  const v = JSON.parse(r.value.toString());
  assert.equal(v.note, 'line one\n"card" ************1111 \u00e9');
  assert.equal(v.n, '************1111', 'a number is replaced by a masked string');
  assert.deepEqual(JSON.parse(JSON.parse(v.deep).t), { ssn: '***-**-6788', tab: 'a\tb' });
  assert.deepEqual(r.findings.map((f) => f.location).sort(), ['$.deep<json>.t<json>.ssn', '$.n', '$.note']);
});

test('a mask character that JSON must escape still gives valid JSON', () => {
  const c = compile({ maskCharacter: '"' });
  const message = { result: { content: [{ type: 'text', text: JSON.stringify({ card: '4111111111111111' }) }] } };
  const r = inspectBody(c, Buffer.from(JSON.stringify(message)), response);
  const text = JSON.parse(r.value.toString()).result.content[0].text;
  assert.equal(JSON.parse(text).card, '""""""""""""1111');
  assert.deepEqual(inspectJson(c, { card: '4111111111111111' }, response).value, { card: '""""""""""""1111' });
});

test('a labelled value that a detector of its own finds is reported by that detector', () => {
  const r = inspectBody(all, Buffer.from(JSON.stringify({ phone: '+44 20 7946 0958', ssn: '123-45-6788' })), response);
  assert.deepEqual(r.findings.map((f) => f.detector), ['phone-number-e164', 'us-ssn']);
});

test('not JSON, or JSON with a syntax error, is inspected as text', () => {
  for (const raw of ['{"card": "4111111111111111"', '{"card": 4111111111111111,}', "{'card': '4111111111111111'}"]) {
    const r = inspectBody(all, Buffer.from(raw), response);
    assert.equal(r.findings[0]?.location, 'body', raw);
    assert.ok(!r.value.toString().includes('4111111111111111'), raw);
  }
});

test('inspectBody judges each value with its own context: a word in a neighbouring value does not hide a card', () => {
  const r = inspectBody(all, Buffer.from(JSON.stringify([' order 12345678', '4111111111111111', { ssn: { api_key: '415-555-2671' } }])), response);
  assert.deepEqual(r.findings.map((f) => [f.location, f.detector]), [['$[1]', 'payment-card-visa'], ['$[2].ssn.api_key', 'phone-number-nanp']]);
});

test('an ASCII body whose value is rewritten whole stays valid UTF-8 JSON: characters its escapes stood for are escaped again', () => {
  for (const maskCharacter of ['"', '\\', '#']) {
    const compiled = compileDataProtection({ profiles: ['pci-dss'], maskCharacter } as never);
    const body = Buffer.from('{"note":"caf\\u00e9 \\u4e2d card 4111 1111 1111 1111 x","tab":"a\\tb 4111 1111 1111 1111"}');
    const r = inspectBody(compiled, body, { direction: 'response', upstream: 'u' });
    assert.ok(r.changed, maskCharacter);
    const text = r.value.toString('utf8');
    assert.equal(Buffer.from(text, 'utf8').equals(r.value), true, `valid UTF-8 with mask ${maskCharacter}`);
    const parsed = JSON.parse(text) as { note: string; tab: string };
    const m = maskCharacter;
    assert.equal(parsed.note, `café 中 card ${m.repeat(4)} ${m.repeat(4)} ${m.repeat(4)} 1111 x`);
    assert.equal(parsed.tab, `a\tb ${m.repeat(4)} ${m.repeat(4)} ${m.repeat(4)} 1111`);
  }
});

test('no-break and other Unicode spaces, and C1 control characters, do not hide a card, an IBAN or a phone number', () => {
  const compiled = compileDataProtection({ profiles: ['pci-dss', 'gdpr-pii'], defaultAction: 'mask' } as never);
  const ctx = { direction: 'response' as const, upstream: 'u' };
  const values: [string, string][] = [
    ['4539 1488 0343 6467', 'payment-card-visa'],
    ['DE89 3704 0044 0532 0130 00', 'iban'],
    ['+44 20 7946 0958', 'phone-number-e164'],
  ];
  // no-break, figure, thin, narrow no-break, ideographic and Ogham spaces; C1 controls (bytes 0x80-0x9F of an ISO-8859-1 answer)
  for (const separator of ['\u00a0', '\u2007', '\u2009', '\u202f', '\u3000', '\u1680', '\u0080', '\u0085', '\u009f']) {
    for (const [value, detector] of values) {
      const spelled = value.replaceAll(' ', separator);
      for (const r of [inspectBody(compiled, Buffer.from(JSON.stringify({ n: spelled })), ctx), inspectText(compiled, `on file: ${spelled}.`, ctx)]) {
        assert.deepEqual(r.findings.map((f) => f.detector), [detector], JSON.stringify(spelled));
        const out = Buffer.isBuffer(r.value) ? r.value.toString('utf8') : r.value;
        assert.ok(!out.includes(spelled), JSON.stringify(spelled));
        assert.ok(out.includes(separator), 'the separators stay where they were');
      }
    }
  }
});

test("the client's own JSON-RPC id in a response message is not inspected; any other id is", () => {
  const compiled = compileDataProtection({ profiles: ['pci-dss'], defaultAction: 'mask' } as never);
  const clientIds = [card, 4539148803436467];
  const ctx = { direction: 'response' as const, upstream: 'u', clientIds };
  const result = { content: [{ type: 'text', text: `card ${card}` }] };
  const maskedText = 'card **** **** **** 6467';
  // one response, a batch (a string and a number id), and the same through inspectJson (SSE events)
  const single = { jsonrpc: '2.0', id: card, result };
  const batch = [{ jsonrpc: '2.0', id: 4539148803436467, result }, { jsonrpc: '2.0', id: card, error: { code: 1, message: `no ${card}` } }];
  for (const value of [single, batch]) {
    const fromBody = inspectBody(compiled, Buffer.from(JSON.stringify(value)), ctx);
    const fromJson = inspectJson(compiled, value, ctx);
    for (const out of [JSON.parse(fromBody.value.toString('utf8')), fromJson.value]) {
      const messages = (Array.isArray(out) ? out : [out]) as { id: unknown; result?: typeof result; error?: { message: string } }[];
      assert.deepEqual(messages.map((m) => m.id), Array.isArray(value) ? [4539148803436467, card] : [card], 'the ids come back as the client sent them');
      assert.ok(messages.every((m) => (m.result ? m.result.content[0]!.text === maskedText : m.error!.message === 'no **** **** **** 6467')));
    }
    assert.ok(fromBody.findings.every((f) => !/^\$(\[\d+\])?\.id$/.test(f.location)), 'the id is not a finding');
    assert.equal(fromBody.findings.length, fromJson.findings.length);
  }
  // An id the client did not send, a request from the server, a nested id, and no client ids: inspected.
  const inspected: [unknown, typeof ctx | typeof response][] = [
    [{ jsonrpc: '2.0', id: '4111 1111 1111 1111', result: {} }, ctx],
    [{ jsonrpc: '2.0', id: card, method: 'sampling/createMessage', params: {} }, ctx],
    [{ jsonrpc: '2.0', id: 1, result: { id: card } }, { ...ctx, clientIds: [1] }],
    [single, response],
  ];
  for (const [value, context] of inspected) {
    const r = inspectBody(compiled, Buffer.from(JSON.stringify(value)), context);
    assert.equal(r.changed, true, JSON.stringify(value));
    assert.ok(!r.value.toString('utf8').includes('1111 1111 1111 1111') && !r.value.toString('utf8').includes(card));
  }
  // A body with nothing else to mask is passed as it came.
  const clean = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: card, result: { ok: true } }));
  const r = inspectBody(compiled, clean, ctx);
  assert.equal(r.changed, false);
  assert.equal(r.value, clean);
  assert.deepEqual(r.findings, []);
});

test('look-alike characters do not hide a value: no-break spaces, zero-width marks, full-width forms, escaped or raw', () => {
  const compiled = compileDataProtection({ profiles: ['pci-dss', 'secrets'] } as never);
  const ctx = { direction: 'response' as const, upstream: 'u' };
  const cases: [string, string, string][] = [
    ['{"n":"4539\u00a01488\u00a00343\u00a06467"}', 'payment-card-visa', '{"n":"****\u00a0****\u00a0****\u00a06467"}'],
    ['{"n":"4539\\u00a01488\\u00a00343\\u00a06467"}', 'payment-card-visa', '{"n":"****\\u00a0****\\u00a0****\\u00a06467"}'],
    ['{"n":"4539\u200b1488\u200b0343\u200b6467"}', 'payment-card-visa', '{"n":"****\u200b****\u200b****\u200b6467"}'],
    ['{"n":"４５３９１４８８０３４３６４６７"}', 'payment-card-visa', '{"n":"************６４６７"}'],
    ['{"k":"ＡＫＩＡＺ３ＭＱ７ＨＷ２ＸＫ４ＪＬＰ５Ｒ"}', 'aws-access-key-id', '{"k":"********************"}'],
  ];
  for (const [body, detector, expected] of cases) {
    const r = inspectBody(compiled, Buffer.from(body), ctx);
    assert.deepEqual(r.findings.map((f) => f.detector), [detector], body);
    assert.equal(r.value.toString('utf8'), expected);
  }
  const text = inspectText(compiled, 'card 4539\u202f1488\u202f0343\u202f6467 on file', ctx);
  assert.equal(text.value, 'card ****\u202f****\u202f****\u202f6467 on file');
  // Prose with an en dash is not a look-alike: nothing to find, nothing changed.
  const prose = inspectBody(compiled, Buffer.from('{"t":"pages 10–20 of the manual"}'), ctx);
  assert.equal(prose.changed, false);
});

test('invisible marks, digits of other scripts and tag characters do not hide a value; masks cover the original characters', () => {
  const compiled = compileDataProtection({ profiles: ['pci-dss', 'secrets'] } as never);
  const ctx = { direction: 'response' as const, upstream: 'u' };
  const zw = '\u200b';
  const cases: [string, string, string][] = [
    // a zero-width space inside a group, and between every digit (the reading drops them)
    [`{"n":"45${zw}39 1488 0343 6467"}`, 'payment-card-visa', `{"n":"**${zw}** **** **** 6467"}`],
    [`{"n":"${[...'4539148803436467'].join(zw)}"}`, 'payment-card-visa', `{"n":"${[...'************6467'].join(zw)}"}`],
    // the same mark written as a JSON escape
    ['{"n":"45\\u200b39148803436467"}', 'payment-card-visa', '{"n":"**\\u200b**********6467"}'],
    // bidirectional controls and a soft hyphen
    ['{"n":"\u202e4539\u00ad1488\u20660343\u20696467"}', 'payment-card-visa', '{"n":"\u202e****\u00ad****\u2066****\u20696467"}'],
    // Arabic-Indic digits, and mathematical bold digits (two UTF-16 units each)
    ['{"n":"٤٥٣٩ ١٤٨٨ ٠٣٤٣ ٦٤٦٧"}', 'payment-card-visa', '{"n":"**** **** **** ٦٤٦٧"}'],
    ['{"n":"card 𝟒𝟓𝟑𝟗𝟏𝟒𝟖𝟖𝟎𝟑𝟒𝟑𝟔𝟒𝟔𝟕."}', 'payment-card-visa', '{"n":"card ************𝟔𝟒𝟔𝟕."}'],
    // an access key smuggled as invisible tag characters after a visible word (credentials are masked whole, at most 32 characters)
    [`{"k":"see ${[...'AKIAZ3MQ7HW2XK4JLP5R'].map((c) => String.fromCodePoint(0xe0000 + c.charCodeAt(0))).join('')} end"}`, 'aws-access-key-id', `{"k":"see ${'*'.repeat(32)} end"}`],
  ];
  for (const [body, detector, expected] of cases) {
    const r = inspectBody(compiled, Buffer.from(body), ctx);
    assert.deepEqual(r.findings.map((f) => f.detector), [detector], body);
    assert.equal(r.value.toString('utf8'), expected, body);
    assert.doesNotThrow(() => JSON.parse(r.value.toString('utf8')));
  }
  // Text around the marks is untouched, and prose with ordinals or superscripts stays as it is.
  const text = inspectText(compiled, `ref ${zw}x${zw} card 4539${zw}1488${zw}0343${zw}6467, 2ª edición, 5 m²`, ctx);
  assert.equal(text.value, `ref ${zw}x${zw} card ****${zw}****${zw}****${zw}6467, 2ª edición, 5 m²`);
  const prose = inspectBody(compiled, Buffer.from('{"t":"la 2ª edición, 5 m², 1º piso, ① first"}'), ctx);
  assert.equal(prose.changed, false);
  assert.equal(prose.findings.length, 0);
});

test('Cyrillic and Greek letters drawn like Latin ones do not hide a key; text in those alphabets alone is not read twice', () => {
  const compiled = compileDataProtection({ profiles: ['pci-dss', 'secrets'] } as never);
  const ctx = { direction: 'request' as const, upstream: 'u' };
  for (const key of ['АКІАZ3MQ7HW2XK4JLP5R', 'ΑΚΙΑZ3MQ7HW2XK4JLP5R', 'АКІАZ3МQ7НW2ХК4JLР5R']) {
    const r = inspectBody(compiled, Buffer.from(JSON.stringify({ note: `key ${key}` })), ctx);
    assert.deepEqual(r.findings.map((f) => f.detector), ['aws-access-key-id'], key);
    assert.equal(JSON.parse(r.value.toString()).note, `key ${'*'.repeat(20)}`);
  }
  const russian = inspectBody(compiled, Buffer.from(JSON.stringify({ note: 'Карта клиента 4539 1488 0343 6467, Москва' })), ctx);
  assert.equal(JSON.parse(russian.value.toString()).note, 'Карта клиента **** **** **** 6467, Москва', 'the Cyrillic around the value stays as it was');
  const latinLike = new RE2(lookAlikeSetSource);
  assert.equal(latinLike.test('Привет! Обычный текст о погоде в Москве.'), false, 'Russian prose alone does not make the Set notice');
  assert.equal(latinLike.test('АКІАZ3'), true);
  assert.equal(latinLike.test('nif В-58378431'), true, 'a capital beside a digit across a separator');
});

test('percent-escapes here and there do not hide a value: a card with %20 for its spaces, an address with %40', () => {
  const compiled = compileDataProtection({ profiles: ['pci-dss', 'gdpr-pii'] } as never);
  const ctx = { direction: 'request' as const, upstream: 'u' };
  // Found in the decoded reading; percent-encoded in the original, so redacted whole as the url decoder's finds are.
  const card = inspectBody(compiled, Buffer.from(JSON.stringify({ note: 'card 4539%201488%200343%206467 ok' })), ctx);
  assert.deepEqual(card.findings.map((f) => [f.detector, f.location]), [['payment-card-visa', '$.note (url)']]);
  assert.equal(JSON.parse(card.value.toString()).note, 'card [REDACTED:payment-card] ok');
  const mail = inspectBody(compiled, Buffer.from(JSON.stringify({ note: 'write to jane%40example.com today' })), ctx);
  assert.deepEqual(mail.findings.map((f) => f.detector), ['email-address']);
  assert.equal(JSON.parse(mail.value.toString()).note, 'write to [REDACTED:email] today');
  // Escapes elsewhere change nothing: a file name in a URL, a bare percent sign.
  for (const note of ['https://files.example/report%202024.pdf', 'up 100% and 50%zz']) {
    const r = inspectBody(compiled, Buffer.from(JSON.stringify({ note })), ctx);
    assert.equal(r.changed, false, note);
  }
});

test('a value and its look-alike spelling have the same fingerprint (data-flow memory is not fooled by the spelling)', () => {
  const compiled = compileDataProtection({ profiles: ['pci-dss'] } as never, { fingerprintKey: Buffer.alloc(32, 3) });
  const ctx = { direction: 'request' as const, upstream: 'u' };
  const spellings = ['4539 1488 0343 6467', '4539\u200b1488\u200b0343\u200b6467', '４５３９１４８８０３４３６４６７', '٤٥٣٩-١٤٨٨-٠٣٤٣-٦٤٦٧', '𝟒𝟓𝟑𝟗𝟏𝟒𝟖𝟖𝟎𝟑𝟒𝟑𝟔𝟒𝟔𝟕', '4539%201488%200343%206467'];
  const hashes = spellings.map((s) => {
    const r = inspectBody(compiled, Buffer.from(`{"to":"x","body":"card ${s}"}`), ctx);
    assert.equal(r.fingerprints.length, 1, s);
    return r.fingerprints[0]!.hash;
  });
  assert.equal(new Set(hashes).size, 1, hashes.join(' '));
  const other = inspectBody(compiled, Buffer.from('{"body":"card 4111 1111 1111 1111"}'), ctx);
  assert.notEqual(other.fingerprints[0]!.hash, hashes[0]);
});

test('a card split by other separators is found next to a card word, and only there', () => {
  const compiled = compileDataProtection({ profiles: ['pci-dss'] } as never);
  const ctx = { direction: 'request' as const, upstream: 'u' };
  const found: [string, string][] = [
    ['card: 4539_1488_0343_6467', 'card: ****_****_****_6467'],
    ['visa 4539/1488/0343/6467', 'visa ****/****/****/6467'],
    ['card 4539-1488 0343.6467', 'card ****-**** ****.6467'],
    ['card 4539 - 1488 - 0343 - 6467', 'card **** - **** - **** - 6467'],
    ['payment 4 5 3 9 1 4 8 8 0 3 4 3 6 4 6 7 today', 'payment * * * * * * * * * * * * 6 4 6 7 today'],
  ];
  for (const [text, masked] of found) {
    const r = inspectBody(compiled, Buffer.from(JSON.stringify({ note: text })), ctx);
    assert.deepEqual(r.findings.map((f) => f.detector), ['payment-card-separated'], text);
    assert.equal(JSON.parse(r.value.toString()).note, masked);
  }
  // A field name is context too. Below: no card word, a negative word naming the number, Luhn fails, no known brand prefix (9539... passes Luhn), a date.
  assert.equal(inspectBody(compiled, Buffer.from('{"card_number":"4539_1488_0343_6467"}'), ctx).findings.length, 1);
  for (const text of ['ref: 4539_1488_0343_6467', 'card order no. 4539_1488_0343_6467', 'card: 4539_1488_0343_6468', 'card: 9539_1488_0343_6466', 'batch 2024_01_15_1234_5678 card']) {
    assert.equal(inspectBody(compiled, Buffer.from(JSON.stringify({ note: text })), ctx).findings.length, 0, text);
  }
});

test('a negative word lowers a card only where it names the number: not on an earlier line, not earlier in the sentence, not thousands of times over in one export', () => {
  const compiled = compileDataProtection({ profiles: ['pci-dss'] } as never);
  const ctx = { direction: 'response' as const, upstream: 'u' };
  const card = '4539 1488 0343 6467';
  const masked = (text: string) => (JSON.parse(inspectBody(compiled, Buffer.from(JSON.stringify({ note: text })), ctx).value.toString()) as { note: string }).note;
  assert.equal(masked(`Order 100000 shipped.\nCustomer 1: ${card}`), 'Order 100000 shipped.\nCustomer 1: **** **** **** 6467');
  assert.equal(masked(`order 12345 charged to ${card}`), 'order 12345 charged to **** **** **** 6467');
  // Where the word names the number, it is an order number that looks like a card, as before.
  for (const named of [`order ${card}`, `Order #: ${card}`, `Invoice no.: ${card}`, `tracking-${card}`]) assert.equal(masked(named), named);
  assert.equal(inspectBody(compiled, Buffer.from(JSON.stringify({ order_id: card })), ctx).findings.length, 0, 'a field named for orders qualifies its value');
  // The export that once leaked all but its first card: 6,000 lines, a card and an order number on each.
  const lines = Array.from({ length: 6000 }, (_, i) => `Customer ${i}: ${card}, order ${100000 + i}, kept for audit.`);
  const out = masked(lines.join('\n'));
  assert.ok(!out.includes(card));
  assert.equal(out.match(/\*\*\*\* \*\*\*\* \*\*\*\* 6467/g)?.length, 6000);
});

test('a card with dots between its groups is found; a dotted number that fails Luhn is not', () => {
  const compiled = compileDataProtection({ profiles: ['pci-dss'] } as never);
  const ctx = { direction: 'response' as const, upstream: 'u' };
  const found = inspectBody(compiled, Buffer.from('{"n":"4539.1488.0343.6467"}'), ctx);
  assert.equal(found.value.toString(), '{"n":"****.****.****.6467"}');
  const notACard = inspectBody(compiled, Buffer.from('{"n":"4539.1488.0343.6468"}'), ctx);
  assert.equal(notACard.changed, false);
  const mixed = inspectBody(compiled, Buffer.from('{"n":"4539.1488-0343 6467"}'), ctx);
  assert.equal(mixed.changed, false, 'separators must be consistent');
});

test('a context word is found in a value right after a value holding the same word (one separator apart)', () => {
  const all = compileDataProtection({} as never);
  assert.ok(all.ok);
  const found = (value: unknown) => inspectJson(all, value, { direction: 'response', upstream: 'x' }).findings.map((f) => `${f.detector}@${f.location}`);
  assert.deepEqual(found({ kind: 'dea', value: 'dea AC0849680' }), ['us-dea-number@$.value']);
  assert.deepEqual(found({ service: 'twilio', header: `twilio api key: SK${'0123456789abcdef'.repeat(2)}` }), ['twilio-api-key@$.header']);
  const body = inspectBody(all, Buffer.from(JSON.stringify({ kind: 'dea', value: 'dea AC0849680' })), { direction: 'response', upstream: 'x' });
  assert.deepEqual(body.findings.map((f) => f.detector), ['us-dea-number']);
  // A word glued to more letters is still no context word.
  assert.deepEqual(found({ kind: 'deal', value: 'deal AC0849680' }), []);
});

test('a fixed-length token whose last character is "-" is found (a closing word boundary cannot follow "-")', () => {
  const all = compileDataProtection({} as never);
  assert.ok(all.ok);
  const key = `AIza${'S'.repeat(34)}-`;
  const findings = inspectJson(all, { note: `google api key ${key} here` }, { direction: 'response', upstream: 'x' }).findings;
  assert.deepEqual(findings.map((f) => f.detector), ['google-api-key']);
});

test('percent-escapes scattered through a token are read as the characters they stand for', () => {
  const masking = compileDataProtection({ defaultAction: 'mask' } as never);
  assert.ok(masking.ok);
  const b64url = (text: string) => Buffer.from(text).toString('base64url');
  const payload = b64url('{"sub":"agent-7","exp":1700000000}');
  const jwt = `${b64url('{"alg":"HS256","typ":"JWT"}')}.${payload}.XkQ-aBc_dEfGhJkL-mNpQrStUvWxYzAbCdEfGhJk`;
  const forwarded = (text: string) => {
    const result = inspectJson(masking, { note: `use ${text} for the call` }, { direction: 'request', upstream: 'x' });
    return { detectors: result.findings.map((f) => f.detector), value: JSON.stringify(result.value) };
  };
  const plain = forwarded(jwt);
  assert.deepEqual(plain.detectors, ['json-web-token']);
  const escaped = forwarded(jwt.replaceAll('-', '%2D'));
  assert.deepEqual(escaped.detectors, ['json-web-token']);
  assert.equal(escaped.value.includes(payload), false, escaped.value);
  assert.equal(escaped.value.includes('mNpQrStUvWxYz'), false, `the signature after an escaped dash is masked too: ${escaped.value}`);
  // An escaped URL with nothing sensitive in it stays clean.
  assert.deepEqual(forwarded('https://example.org/search?q=printer%20on%20fire&page=2').detectors, []);
});

test('control characters between the digits do not hide a card; tabs and line ends stay as they are', () => {
  const masking = compileDataProtection({ defaultAction: 'mask' } as never);
  assert.ok(masking.ok);
  for (const control of ['\u0001', '\u0008', '\u001f', '\u007f']) {
    const value = { note: `card ${[...'4539148803436467'].join(control)}`, other: 'line1\nline2\tcol\r' };
    for (const result of [inspectJson(masking, value, request), inspectBody(masking, Buffer.from(JSON.stringify(value)), request)]) {
      assert.deepEqual(result.findings.map((f) => f.detector), ['payment-card-visa'], JSON.stringify(control));
      const out = (result.value instanceof Buffer ? JSON.parse(result.value.toString('utf8')) : result.value) as typeof value;
      // What a reader sees once the control characters are dropped: the card masked but for its last four digits.
      assert.equal(out.note.split(control).join(''), 'card ************6467');
      assert.equal(out.other, 'line1\nline2\tcol\r');
    }
  }
});

test('a lone surrogate escape anywhere in a body hides nothing (RE2 finds nothing in such a string)', () => {
  const key = 'AKIAZ3MQ7HW2XK4JLP5R';
  const bodies = [
    `{"a":"\\ud800","note":"value ${key}"}`,
    `{"note":"\\ud800 value ${key}","b":"\\udfff"}`,
    `{"result":{"content":[{"type":"text","text":"\\udc00 iban GB82 WEST 1234 5698 7654 32 mail jane.doe@example.com"}]}}`,
  ];
  for (const body of bodies) {
    const r = inspectBody(all, Buffer.from(body), request);
    const out = r.value.toString();
    assert.ok(!out.includes(key) && !out.includes('5698 7654') && !out.includes('jane.doe'), out);
    assert.ok(r.findings.length >= 1, body);
    // the lone surrogate itself is left as the agent wrote it
    assert.match(out, /\\u(d800|dfff|dc00)/);
  }
  const parsed = inspectJson(all, { a: '\ud800', b: `value ${key}` }, request);
  assert.equal(parsed.value.b.includes(key), false);
  assert.equal(parsed.value.a, '\ud800');
  assert.equal(inspectText(all, `\ud800 value ${key}`, request).value.includes(key), false);
  // in a field name: the name still names a password
  const named = inspectBody(all, Buffer.from('{"x\\ud800":"1","db_password":"hunter22x"}'), request);
  assert.ok(!named.value.toString().includes('hunter22x'), named.value.toString());
});

test('a certificate fingerprint (a long run of colon-separated hex) is neither an IPv6 nor a MAC address', () => {
  const sha256 = 'Certificate SHA256 fingerprint: 2D:43:56:9B:6E:42:F4:0F:2E:31:6A:E9:58:5F:D2:14:8B:93:16:AB:CD:EF:01:23:45:67:89:AB:CD:EF:1A:2B';
  const sha1 = 'sha1 fingerprint 2D-43-56-9B-6E-42-F4-0F-2E-31-6A-E9-58-5F-D2-14-8B-93-16-AB';
  for (const text of [sha256, sha1]) {
    const r = inspectText(all, text, response);
    assert.deepEqual(r.findings.map((f) => f.detector), [], text);
  }
  // the addresses themselves are still found
  assert.deepEqual(inspectText(all, 'host 2001:0db8:85a3:0000:0000:8a2e:0370:7334 mac 00:1A:2B:3C:4D:5E', response).findings.map((f) => f.detector).sort(), ['ipv6-address', 'mac-address']);
});

/** Every character of `s` as a JSON \u escape. */
const escaped = (s: string) => [...s].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join('');

test('JSON a lenient parser reads: a BOM, data after the value, NaN, trailing commas, comments, single quotes, JSON lines', () => {
  const compiled = compileDataProtection({ profiles: ['pci-dss'], defaultAction: 'mask' } as never);
  const value = `"${escaped(card)}"`;
  const bodies = [
    `\uFEFF{"card":${value}}`,
    `{"card":${value}} garbage`,
    `{"a":NaN,"card":${value}}`,
    `{"card":${value},}`,
    `{"card":${value} /* a comment */}`,
    `// a comment\n{"card":${value}}`,
    `{'card':'${escaped(card)}'}`,
    `)]}',\n{"card":${value}}`,
    `{"a":1}\n{"card":${value}}\n`,
  ];
  for (const body of bodies) {
    const r = inspectBody(compiled, Buffer.from(body), request);
    assert.deepEqual(r.findings.map((f) => f.detector), ['payment-card-visa'], body);
    const out = r.value.toString();
    assert.ok(!out.includes(escaped('4539')) && !out.includes('4539'), `${body} -> ${out}`);
    assert.ok(out.includes('**** **** **** 6467'), `${body} -> ${out}`);
    // What was around the value stays as it was.
    assert.equal(out.replace('**** **** **** 6467', escaped(card)), body);
  }
});

test('a BOM is kept; JSON after it is read as JSON (paths, nested escapes)', () => {
  const compiled = compileDataProtection({ profiles: ['pci-dss'], defaultAction: 'mask' } as never);
  const r = inspectBody(compiled, Buffer.from(`\uFEFF{"card":"${escaped(card)}"}`), request);
  assert.deepEqual(r.findings.map((f) => f.location), ['$.card']);
  assert.ok(r.value.subarray(0, 3).equals(Buffer.from([0xef, 0xbb, 0xbf])));
  assert.deepEqual(JSON.parse(r.value.subarray(3).toString()), { card: '**** **** **** 6467' });
});

test('JSON lines: each line is read as JSON, located by its record', () => {
  const compiled = compileDataProtection({ profiles: ['pci-dss'], defaultAction: 'mask' } as never);
  const r = inspectBody(compiled, Buffer.from(`{"a":1}\n{"card":"${escaped(card)}"}\n{"card":"${card}"}\n`), request);
  assert.deepEqual(r.findings.map((f) => f.location), ['$[1].card', '$[2].card']);
  assert.deepEqual(r.value.toString().trim().split('\n').map((line) => JSON.parse(line)), [{ a: 1 }, { card: '**** **** **** 6467' }, { card: '**** **** **** 6467' }]);
});

test('escapes in text that is not JSON: surrogate pairs, \\n, \\/; a masked escaped value is written so the text parses as before', () => {
  const compiled = compileDataProtection({ profiles: ['pci-dss', 'secrets'], defaultAction: 'mask' } as never);
  // \/ between the groups, and a control escape glued to the digits.
  for (const spelled of ['4539\\/1488\\/0343\\/6467', '\\n4539148803436467', `${escaped('4539')} 1488 0343 6467`]) {
    const body = `{"card":"${spelled}", oops}`;
    const r = inspectBody(compiled, Buffer.from(body), request);
    assert.equal(r.findings.length, 1, body);
    const out = r.value.toString();
    assert.ok(!/4539/.test(out), out);
    // The value, decoded as a lenient parser would, is the mask of the decoded original.
    const decoded = JSON.parse(`"${out.slice(9, out.indexOf('", oops'))}"`) as string;
    assert.match(decoded, /^\n?\*{4}.\*{4}.\*{4}.6467$|^\n?\*{12}6467$/, out);
  }
  // An emoji (a surrogate pair) before the card: offsets stay right.
  const r = inspectText(compiled, `note \\ud83d\\ude00 card ${escaped(card)} end`, request);
  assert.equal(r.value, 'note \\ud83d\\ude00 card **** **** **** 6467 end');
  // A backslash that escapes nothing stays as it is.
  assert.equal(inspectText(compiled, 'path C:\\q\\4539 1488 0343 6467', request).value, 'path C:\\q\\**** **** **** 6467');
});

test('in a text with many values, the ones spelled with escapes are masked as decoded wherever they stand: before, between and after plain ones', () => {
  const compiled = compileDataProtection({ profiles: ['pci-dss'], defaultAction: 'mask' } as never);
  const plain = 'card 4539 1488 0343 6467; ';
  const spelled = `card ${escaped('4539')} 1488 0343 6467; `;
  const text = spelled + plain.repeat(300) + spelled + plain.repeat(300) + spelled;
  const r = inspectText(compiled, text, request);
  assert.equal(r.findings.length, 603);
  const maskedPlain = 'card **** **** **** 6467; ';
  assert.equal(r.value, maskedPlain.repeat(603), 'every value masked, the spelled ones written decoded and masked');
});

test('a card as a JSON number with a fraction or an exponent is not read as a card', () => {
  const compiled = compileDataProtection({ profiles: ['pci-dss'], defaultAction: 'mask' } as never);
  assert.equal(inspectBody(compiled, Buffer.from('{"card":4539148803436467}'), request).changed, true, 'an integer is');
  for (const body of ['{"card":4539148803436467.0}', '{"card":4.539148803436467e15}']) {
    assert.equal(inspectBody(compiled, Buffer.from(body), request).findings.length, 0, body);
  }
});

test('character references and &nbsp; between the digits do not hide a card in XML or HTML', () => {
  const compiled = compileDataProtection({ profiles: ['pci-dss'], defaultAction: 'mask' } as never);
  const references = [...'4539148803436467'].map((d) => `&#${d.charCodeAt(0)};`).join('');
  const hex = [...'4539148803436467'].map((d) => `&#x${d.charCodeAt(0).toString(16)};`).join('');
  for (const body of [`<c>${references}</c>`, `<c>${hex}</c>`, '<p>card 4539&nbsp;1488&nbsp;0343&nbsp;6467</p>', '<p>card 4539&#160;1488&#xA0;0343&#32;6467</p>']) {
    const r = inspectBody(compiled, Buffer.from(body), response);
    assert.deepEqual(r.findings.map((f) => f.detector), ['payment-card-visa'], body);
    assert.ok(!r.value.toString().includes('&#52;&#53;') && !r.value.toString().includes('4539'), r.value.toString());
  }
  // References elsewhere change nothing.
  assert.equal(inspectBody(compiled, Buffer.from('<p>Tom &amp; Jerry&#39;s 4 cats</p>'), response).changed, false);
});

test('a body that is not UTF-8 is read as windows-1252 as well: no-break space bytes between the groups', () => {
  const compiled = compileDataProtection({ profiles: ['pci-dss'], defaultAction: 'mask' } as never);
  const body = Buffer.from('card 4539\u00a01488\u00a00343\u00a06467 caf\u00e9', 'latin1');
  const r = inspectBody(compiled, body, response);
  assert.deepEqual(r.findings.map((f) => f.detector), ['payment-card-visa']);
  assert.ok(r.value.equals(Buffer.from('card ****\u00a0****\u00a0****\u00a06467 caf\u00e9', 'latin1')), r.value.toString('latin1'));
  // A UTF-8 value in the same body is still found.
  const mixed = Buffer.concat([Buffer.from('x \u00e9 '), Buffer.from([0xa0]), Buffer.from(` ${card}`)]);
  const m = inspectBody(compiled, mixed, response);
  assert.equal(m.findings.length, 1);
  assert.ok(!m.value.toString('latin1').includes('4539'));
});

test('a binary body (a NUL byte, or many control bytes) is read for its strings (8 printable ASCII bytes in a row or more): a card in one is masked byte for byte, the rest stays', () => {
  const compiled = compileDataProtection({ profiles: ['pci-dss'], defaultAction: 'mask' } as never);
  const noise = (n: number, seed: number) => Buffer.from(Array.from({ length: n }, (_, i) => ((i * 7919 + seed * 104729) % 251) ^ 0x80));
  const body = Buffer.concat([noise(300, 1), Buffer.from([0]), Buffer.from(` card 4539 1488 0343 6467 `, 'latin1'), noise(300, 2)]);
  const r = inspectBody(compiled, body, response);
  assert.deepEqual(r.findings.map((f) => f.detector), ['payment-card-visa']);
  assert.equal(r.value.length, body.length);
  const at = body.indexOf('4539');
  assert.equal(r.value.subarray(at, at + 19).toString('latin1'), '**** **** **** 6467');
  assert.ok(r.value.subarray(0, at).equals(body.subarray(0, at)) && r.value.subarray(at + 19).equals(body.subarray(at + 19)), 'the other bytes stay');
  // A placeholder of another length would break the file: the body is blocked instead.
  const redacting = compileDataProtection({ profiles: ['pci-dss'], defaultAction: 'redact' } as never);
  const blocked = inspectBody(redacting, body, response);
  assert.deepEqual(blocked.blocked, { group: 'financial', detector: 'payment-card-visa' });
  assert.ok(blocked.value.equals(body));
  // Shorter runs are not read: groups of digits between control bytes spell nothing a reader sees.
  const scattered = Buffer.concat([noise(100, 4), Buffer.from('\x004539\x001488\x000343\x006467\x00', 'latin1'), noise(100, 5)]);
  assert.deepEqual(inspectBody(compiled, scattered, response).findings, []);
  // Control bytes (not NUL) past one in ten make a body binary too; a clean one passes as it is.
  const controls = Buffer.concat([Buffer.from('\x01\x02\x03\x04\x05 ok \xff', 'latin1'), noise(40, 3)]);
  const clean = inspectBody(compiled, controls, response);
  assert.equal(clean.changed, false);
  assert.ok(clean.value.equals(controls));
});

test('a binary body is read with long runs between its strings shortened: values far into it are masked at their own bytes, context far away still does not count, and edits that would move bytes block', () => {
  const compiled = compileDataProtection({ defaultAction: 'mask' } as never);
  const body = Buffer.concat([noiseBytes(50_000, 1), Buffer.from(`\x00card ${card}\x00`, 'latin1'), noiseBytes(20_000, 2), Buffer.from('\x00mail jane.doe@example.com\x00', 'latin1'), noiseBytes(9_000, 3)]);
  const r = inspectBody(compiled, body, response);
  assert.deepEqual(r.findings.map((f) => f.detector).sort(), ['email-address', 'payment-card-visa']);
  assert.equal(r.value.length, body.length);
  const cardAt = body.indexOf('4539');
  const mailAt = body.indexOf('jane.doe');
  assert.equal(r.value.subarray(cardAt, cardAt + 19).toString('latin1'), '**** **** **** 6467');
  assert.equal(r.value.subarray(mailAt, mailAt + 20).toString('latin1'), '****.***@*******.***');
  const same = (a: number, b: number) => r.value.subarray(a, b).equals(body.subarray(a, b));
  assert.ok(same(0, cardAt) && same(cardAt + 19, mailAt) && same(mailAt + 20, body.length), 'every other byte stays');
  // A context word 30 bytes before a routing number lifts it over the bar; 3,000 bytes before, it does not.
  const routing = (gap: number) => inspectBody(compiled, Buffer.concat([noiseBytes(200, 4), Buffer.from('\x00routing number', 'latin1'), noiseBytes(gap, 5), Buffer.from('\x00021000021 \x00', 'latin1'), noiseBytes(200, 6)]), request).findings.map((f) => f.detector);
  assert.deepEqual(routing(30), ['us-aba-routing-number']);
  assert.deepEqual(routing(3000), []);
  // A placeholder as long as the value it replaces would still not be a mask: blocked.
  const redacting = compileDataProtection({ defaultAction: 'redact' } as never);
  const blocked = inspectBody(redacting, body, response);
  assert.ok(blocked.blocked !== null && !blocked.changed && blocked.value.equals(body));
});

function imageResult(image: Buffer, text = 'Screenshot taken', key = 'data'): object {
  return { jsonrpc: '2.0', id: 3, result: { content: [{ type: 'text', text }, { type: 'image', [key]: image.toString('base64'), mimeType: 'image/png' }] } };
}

test('an MCP image (base64 in a content item of type image) is read as a file: its strings, masked byte for byte and encoded again; the rest of the result as before', () => {
  const compiled = compile({ profiles: ['pci-dss', 'gdpr-pii'], defaultAction: 'mask' });
  const image = imageBytes(40_000, `\x00card ${card} for jane.doe@example.com\x00`);
  const body = imageResult(image, 'Sent to jane.doe@example.com');
  for (const [path, r] of [
    ['raw', (() => { const x = inspectBody(compiled, Buffer.from(JSON.stringify(body)), response); return { ...x, value: JSON.parse(x.value.toString()) }; })()],
    ['parsed', inspectJson(compiled, body, response)],
  ] as const) {
    assert.deepEqual(r.findings.map((f) => `${f.detector} ${f.location}`).sort(), ['email-address $.result.content[0].text', 'email-address $.result.content[1].data (base64)', 'payment-card-visa $.result.content[1].data (base64)'], path);
    const out = r.value as { result: { content: [{ text: string }, { data: string; mimeType: string }] } };
    assert.equal(out.result.content[0].text, 'Sent to ****.***@*******.***', path);
    const back = Buffer.from(out.result.content[1].data, 'base64');
    assert.equal(back.length, image.length, path);
    const at = image.indexOf('card ');
    assert.equal(back.subarray(at, at + 49).toString('latin1'), 'card **** **** **** 6467 for ****.***@*******.***', path);
    assert.ok(back.subarray(0, at).equals(image.subarray(0, at)) && back.subarray(at + 49).equals(image.subarray(at + 49)), `${path}: the other bytes stay`);
    assert.equal(out.result.content[1].mimeType, 'image/png');
  }
  // A clean image and its result pass as they are, the body's bytes untouched.
  const clean = Buffer.from(JSON.stringify(imageResult(imageBytes(40_000))));
  const c = inspectBody(compiled, clean, response);
  assert.equal(c.changed, false);
  assert.deepEqual(c.findings, []);
  assert.ok(c.value.equals(clean));
});

test('a file in JSON: a block in it refuses the body, a redaction (another length) refuses it too, monitor mode records, and a resource blob is read like an image', () => {
  const image = imageBytes(30_000, `\x00card ${card}\x00`);
  const blocking = compile({ profiles: ['pci-dss'], defaultAction: 'block' });
  const blocked = inspectBody(blocking, Buffer.from(JSON.stringify(imageResult(image))), response);
  assert.deepEqual(blocked.blocked, { group: 'financial', detector: 'payment-card-visa' });
  const redacting = compile({ profiles: ['pci-dss'], defaultAction: 'redact' });
  assert.deepEqual(inspectBody(redacting, Buffer.from(JSON.stringify(imageResult(image))), response).blocked, { group: 'financial', detector: 'payment-card-visa' });
  const monitor = compile({ profiles: ['pci-dss'], defaultAction: 'block' }, { monitor: true });
  const watched = inspectBody(monitor, Buffer.from(JSON.stringify(imageResult(image))), response);
  assert.equal(watched.blocked, null);
  assert.deepEqual(watched.wouldBlock, { group: 'financial', detector: 'payment-card-visa' });
  assert.equal(watched.changed, false);
  const masking = compile({ profiles: ['pci-dss'], defaultAction: 'mask' });
  const resource = { jsonrpc: '2.0', id: 4, result: { contents: [{ uri: 'file:///report.pdf', mimeType: 'application/pdf', blob: image.toString('base64') }] } };
  const r = inspectJson(masking, resource, response);
  assert.deepEqual(r.findings.map((f) => f.location), ['$.result.contents[0].blob (base64)']);
  assert.ok(Buffer.from(r.value.result.contents[0]!.blob, 'base64').toString('latin1').includes('card **** **** **** 6467'));
});

test('what an agent sends is read whole: a key written into the base64 text of an image in tool arguments is found', () => {
  const compiled = compile({ profiles: ['secrets'], defaultAction: 'mask' });
  const data = imageBytes(30_000).toString('base64');
  const awsKey = 'AKIAZ3MQ7HW2XK4JLP5R';
  const hidden = `${data.slice(0, 20_000)}+${awsKey}/${data.slice(20_022)}`;
  assert.equal(Buffer.from(hidden, 'base64').toString('base64'), hidden, 'still canonical base64');
  const r = inspectJson(compiled, { name: 'upload', arguments: { image: { type: 'image', data: hidden, mimeType: 'image/png' } } }, request);
  assert.deepEqual(r.findings.map((f) => `${f.detector} ${f.location}`), ['aws-access-key-id $.arguments.image.data']);
  assert.ok(!(r.value.arguments.image.data as string).includes(awsKey));
});

test('files inside JSON, generated at random (files, text in file fields, duplicate keys, escapes, nesting): never a throw, the JSON stays valid, every card in text is masked, a file keeps its length', () => {
  const compiled = compile({ profiles: ['pci-dss'], defaultAction: 'mask' });
  let s = 7;
  const next = (n: number) => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) % n;
  };
  const fileData = () => imageBytes(9_000 + next(20_000), next(2) === 0 ? `\x00card ${card}\x00` : '').toString('base64');
  const item = (): string => {
    switch (next(6)) {
      case 0:
        return `{"type":"image","data":"${fileData()}","mimeType":"image/png"}`;
      case 1:
        return `{"type":"audio","mimeType":"audio/wav","data":"${fileData()}"}`;
      case 2:
        return `{"uri":"file:///a.bin","blob":"${fileData()}"}`;
      case 3:
        // A duplicate data key, the second one text.
        return `{"type":"image","data":"${fileData()}","data":"card ${card}"}`;
      case 4:
        // Escaped slashes: not a plain value, read as text.
        return `{"type":"image","data":"${fileData().replaceAll('/', '\\/')}"}`;
      default:
        return `{"type":"text","text":"note ${next(2) === 0 ? `card ${card}` : 'nothing'} ${'x'.repeat(next(9000))}"}`;
    }
  };
  let checked = 0;
  for (let round = 0; round < 40; round++) {
    const items = Array.from({ length: 1 + next(4) }, item);
    const text = `{"jsonrpc":"2.0","id":${round},"result":{"content":[${items.join(',')}],"nested":"${next(2) === 0 ? JSON.stringify(JSON.parse(items[0]!)).replaceAll('"', '\\"').slice(0, 2000) : ''}"}}`;
    if (!(() => { try { JSON.parse(text); return true; } catch { return false; } })()) continue;
    checked++;
    const body = Buffer.from(text);
    const r = inspectBody(compiled, body, response);
    const out = r.value.toString();
    assert.doesNotThrow(() => JSON.parse(out), `round ${round}: the JSON stays valid`);
    assert.ok(!out.includes(card), `round ${round}: no card in text passes`);
    const before = JSON.parse(text) as { result: { content: Record<string, string>[] } };
    const after = JSON.parse(out) as { result: { content: Record<string, string>[] } };
    before.result.content.forEach((c, i) => {
      for (const key of ['data', 'blob']) {
        if (c[key] === undefined || c[key]!.includes('card')) continue;
        assert.equal(Buffer.from(after.result.content[i]![key]!, 'base64').length, Buffer.from(c[key]!, 'base64').length, `round ${round}: item ${i} keeps its length`);
      }
    });
  }
  assert.ok(checked >= 30, `${checked} of 40 generated bodies were JSON`);
});

test('only what is declared a file and decodes to one is set aside: text in an image field, a data field of another type, and escaped base64 are read as before', () => {
  const compiled = compile({ profiles: ['pci-dss'], defaultAction: 'mask' });
  // Base64 of text (not a file) in an image's data: decoded and read as encoded text, as any base64 run.
  const text = Buffer.from(`card ${card} `.repeat(1000));
  const disguised = inspectJson(compiled, imageResult(text), response);
  assert.ok(disguised.findings.some((f) => f.location === '$.result.content[1].data (base64)'));
  // A file's bytes under "data" of an item that is no image: the field is read as text (its base64
  // characters); the card inside the bytes is not read from there.
  const image = imageBytes(30_000, `\x00card ${card}\x00`);
  const other = { result: { content: [{ type: 'text', text: 'ok' }, { type: 'document', data: image.toString('base64') }] } };
  assert.deepEqual(inspectJson(compiled, other, response).findings, []);
  // The same base64 with its slashes escaped ("\/", as some encoders write them) is no plain value: read as text too.
  const escaped = Buffer.from(JSON.stringify(imageResult(image)).replaceAll('/', '\\/'));
  const e = inspectBody(compiled, escaped, response);
  assert.deepEqual(e.findings, []);
  assert.equal(e.changed, false);
});

test('a body of many byte order marks is read, not recursed into; escapes a lenient reader decodes (line continuations, \\v, \\0) reach the engine from raw bytes too', () => {
  const marks = Buffer.concat([Buffer.from('\uFEFF'.repeat(10000)), Buffer.from(`{"card":"${card}"}`)]);
  const r = inspectBody(all, marks, request);
  assert.ok(!r.value.toString().includes('1488'), 'the card is masked');
  assert.ok(r.value.subarray(0, 30000).equals(marks.subarray(0, 30000)), 'the marks stay');
  for (const text of ['x "4539\\\n1488\\\n0343\\\n6467" y', "x '4539\\\r\n1488\\\r\n0343\\\r\n6467' y", 'x "4539\\v1488\\v0343\\v6467" y', 'x "4539\\0 1488\\0 0343\\0 6467" y']) {
    const found = inspectBody(all, Buffer.from(text), request);
    assert.deepEqual(found.findings.map((f) => f.detector), ['payment-card-visa'], JSON.stringify(text));
    assert.ok(!found.value.toString().includes('1488'), found.value.toString());
  }
});
