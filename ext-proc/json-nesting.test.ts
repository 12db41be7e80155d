import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { jsonNestingExceeds } from './json-nesting.ts';

describe('jsonNestingExceeds', () => {
  const nested = (depth: number) => Buffer.from('['.repeat(depth) + ']'.repeat(depth));
  it('counts objects and arrays, not brackets inside strings', () => {
    assert.equal(jsonNestingExceeds(nested(3), 3), false);
    assert.equal(jsonNestingExceeds(nested(4), 3), true);
    assert.equal(jsonNestingExceeds(Buffer.from('{"a":{"b":[1]}}'), 3), false);
    assert.equal(jsonNestingExceeds(Buffer.from('{"a":{"b":[[1]]}}'), 3), true);
    assert.equal(jsonNestingExceeds(Buffer.from('{"a":"[[[[[[\\"{{{{"}'), 1), false);
    assert.equal(jsonNestingExceeds(Buffer.from('[{"x":"\\\\"},[[]]]'), 2), true);
  });
  it('allows the default depth and refuses one more', () => {
    assert.equal(jsonNestingExceeds(nested(128)), false);
    assert.equal(jsonNestingExceeds(nested(129)), true);
  });
});
