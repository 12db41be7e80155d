import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileDataProtection } from './compile.ts';

const compiled = compileDataProtection({} as never);
assert.ok(compiled.ok && compiled.set);
const set = compiled.set;
const hitDetectors = (text: string) =>
  set.match(Buffer.from(text)).map((h) => {
    const e = compiled.setEntries[h]!;
    return e.kind === 'pattern' || e.kind === 'keyword' ? compiled.detectors[e.detector]!.def.id : e.kind;
  });

test('the Set does not hit on a number glued into a token (UUID group, version), so clean bodies need no second pass', () => {
  // the last UUID group is 12 digits starting 2-9: Aadhaar-shaped, but part of a token
  assert.deepEqual(hitDetectors('{"id":"3f2a9c1e-8b7d-4e21-9a6f-729191157491"}'), []);
  assert.deepEqual(hitDetectors('{"v":"2.4111111111111111.7"}'), []);
});

test('the stricter Set entry still hits on standalone numbers and numbers after a lone separator', () => {
  assert.ok(hitDetectors('{"card":"4111111111111111"}').includes('payment-card-visa'));
  assert.ok(hitDetectors('4111111111111111').includes('payment-card-visa'));
  assert.ok(hitDetectors('-4111111111111111.').includes('payment-card-visa'));
  assert.ok(hitDetectors('paid: -4111111111111111- ok').includes('payment-card-visa'));
  assert.ok(hitDetectors('{"n":"2345 6789 0123"}').includes('in-aadhaar'));
});
