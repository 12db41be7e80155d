// Data-flow control as the data path runs it: a tool result's values are remembered, and a later
// request carrying one of them, however it is spelled, is refused where its class may not go.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compileDataProtection, type CompiledDataProtectionOk } from '../dlp/compile.ts';
import { FlowTracker } from '../dlp/flow.ts';
import { protectRequestBody, protectRequestJson, protectResponseBody, rememberResponseValues, type FlowEndpoint } from './data-protection.ts';

const key = Buffer.alloc(32, 7);
const dp = compileDataProtection({ profiles: ['pci-dss', 'gdpr-pii', 'secrets'], defaultAction: 'detect', flow: { enabled: true } } as never, { fingerprintKey: key }) as CompiledDataProtectionOk;
const billing: FlowEndpoint = { upstream: 'billing', environment: 'production', tool: 'get_customer' };
const mailer: FlowEndpoint = { upstream: 'mailer', environment: 'production', tool: 'send_email', toolClass: 'egress' };
const customer = { card: '4539 1488 0343 6467', ssn: '123-45-6788', email: 'jane.doe@example.org', iban: 'DE89 3704 0044 0532 0130 00', key: 'AKIAZ3MQ7HW2XK4JLP5R' };

/** A session that read the customer record from billing. */
function sessionThatRead(): FlowTracker {
  const flow = new FlowTracker({ now: () => 0, maxFingerprintsPerSession: 4096, ttlMs: 3_600_000, gradualCollectionThreshold: 50 });
  const read = protectResponseBody(dp, Buffer.from(JSON.stringify(customer)), billing);
  assert.equal(read.fingerprints.length, 5, 'every value of the record was found');
  rememberResponseValues(dp, flow, 's', billing, read.fingerprints);
  return flow;
}

const b64 = (s: string) => Buffer.from(s).toString('base64');
const hex = (s: string) => Buffer.from(s).toString('hex');

test('a value read from a tool is refused on its way to an egress tool however it is spelled, found by a detector or not', () => {
  const flow = sessionThatRead();
  const evasions = [
    '4539_1488_0343_6467', // separators the card detector does not take, no card word
    'ref 4539148803436467x', // glued to letters
    'digits: 4539 148803436467',
    'card 4539 1488 0343 646 7',
    '4539%5F1488%5F0343%5F6467', // URL-escaped underscores
    b64('4539148803436467'),
    hex('4539148803436467'),
    b64(b64('4539148803436467')),
    '123456788', // the SSN without dashes or label
    'my number 123 45 6788',
    'jane.doe at example.org',
    'JANE [dot] DOE [at] EXAMPLE [dot] ORG',
    'key akiaz3mq7hw2xk4jlp5r', // the access key in lower case
    'de89 3704 0044 0532 0130 00',
  ];
  const passed = evasions.filter((text) => protectRequestJson(dp, flow, 's', { to: 'someone', text }, mailer, 'tool arguments').denial?.code !== 'sensitive_data_flow_blocked');
  assert.deepEqual(passed, []);
  const refusal = protectRequestJson(dp, flow, 's', { text: evasions[0] }, mailer, 'tool arguments').denial!.message;
  assert.ok(!refusal.includes('4539') && !refusal.includes('6467'), 'the refusal names the class, not the value');
  // A number in the JSON (not a string), and a raw body whose JSON escapes spell the card.
  assert.equal(protectRequestJson(dp, flow, 's', { amount: 123456788 }, mailer, 'tool arguments').denial?.code, 'sensitive_data_flow_blocked');
  const escaped = Buffer.from('{"text":"\\u0034\\u0035\\u0033\\u0039_1488_0343_6467"}');
  assert.equal(protectRequestBody(dp, flow, 's', escaped, mailer, 'request body').denial?.code, 'sensitive_data_flow_blocked');
  assert.equal(protectRequestBody(dp, flow, 's', Buffer.from('mail jane.doe at example.org please'), mailer, 'request body').denial?.code, 'sensitive_data_flow_blocked');
});

test('other values of the same length and shape, pieces of the values, and longer numbers around them pass', () => {
  const flow = sessionThatRead();
  const unrelated = [
    '4539_1488_0343_6468', // another card number
    '123456789', // another nine digits
    '6467', // the card's last group alone
    'order 1488 shipped to 0343',
    '94539148803436467', // the card's digits inside a longer number
    '4539148803436467123',
    '1234567880',
    'jane.doe at example.com',
    'john.doe@example.org',
    'akiaz3mq7hw2xk4jlp5s',
    b64('4539148803436468'),
    'Please look at the invoice dated 2024-05-06 and answer at 10:30 about ticket 4711.',
  ];
  assert.deepEqual(unrelated.filter((text) => protectRequestJson(dp, flow, 's', { to: 'someone', text }, mailer, 'tool arguments').denial !== null), []);
});

test('the same values may go where the rules allow them: the same upstream, a write tool in production, another session', () => {
  const flow = sessionThatRead();
  const spelled = { text: '4539_1488_0343_6467 and 123456788 and jane.doe at example.org' };
  assert.equal(protectRequestJson(dp, flow, 's', spelled, { upstream: 'billing', environment: 'production', tool: 'refund', toolClass: 'egress' }, 'tool arguments').denial, null);
  assert.equal(protectRequestJson(dp, flow, 's', spelled, { upstream: 'crm', environment: 'production', tool: 'update', toolClass: 'write' }, 'tool arguments').denial, null);
  assert.equal(protectRequestJson(dp, flow, 'another session', spelled, mailer, 'tool arguments').denial, null);
  assert.equal(protectRequestJson(dp, flow, 's', spelled, mailer, 'tool arguments').denial?.code, 'sensitive_data_flow_blocked');
  // Production data to a development upstream (the other default rule) is refused as well.
  assert.equal(protectRequestJson(dp, flow, 's', spelled, { upstream: 'crm-dev', environment: 'development', toolClass: 'write' }, 'tool arguments').denial?.code, 'sensitive_data_flow_blocked');
});

test('a rule with action detect records the evasive spelling as a note and lets it pass', () => {
  const detectOnly = compileDataProtection({ profiles: ['pci-dss'], defaultAction: 'detect', flow: { enabled: true, rules: [{ toToolClasses: ['egress'], crossUpstreamOnly: true, action: 'detect' }] } } as never, { fingerprintKey: key }) as CompiledDataProtectionOk;
  const flow = new FlowTracker({ now: () => 0, maxFingerprintsPerSession: 64, ttlMs: 60_000, gradualCollectionThreshold: 50 });
  rememberResponseValues(detectOnly, flow, 's', billing, protectResponseBody(detectOnly, Buffer.from(JSON.stringify({ card: customer.card })), billing).fingerprints);
  const r = protectRequestJson(detectOnly, flow, 's', { text: '4539_1488_0343_6467' }, mailer, 'tool arguments');
  assert.equal(r.denial, null);
  assert.deepEqual(r.notes.map((n) => n.code), ['sensitive_data_flow_blocked']);
});

test('a value split over neighbouring fields or array items is refused too; fields far apart are not joined', () => {
  const flow = sessionThatRead();
  const blocked = (value: unknown) => protectRequestJson(dp, flow, 's', value, mailer, 'tool arguments').denial?.code === 'sensitive_data_flow_blocked';
  assert.ok(blocked({ first: '4539 1488', second: '0343 6467' }), 'card over two fields');
  assert.ok(blocked({ parts: ['4539', '1488', '0343', '6467'] }), 'card over four array items');
  assert.ok(blocked({ user: 'jane.doe', domain: 'example.org' }), 'an address over its two parts (a canonical form keeps letters and digits only)');
  assert.ok(blocked({ a: { n: 12345 }, b: { n: '6788' } }), 'SSN over a number and a string in nested objects');
  assert.ok(blocked({ key: 'AKIAZ3MQ7H', rest: 'W2XK4JLP5R' }), 'access key over two fields');
  const body = Buffer.from(JSON.stringify({ head: '4539-1488-', tail: '0343-6467' }));
  assert.equal(protectRequestBody(dp, flow, 's', body, mailer, 'request body').denial?.code, 'sensitive_data_flow_blocked', 'raw JSON body');
  // Separated by other values: not one spelling.
  assert.ok(!blocked({ first: '4539 1488', note: 'then, a week later, the rest', second: '0343 6467' }));
});
