import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parameters, withEditedFields, type FormFields } from './form.ts';

const read = (text: string): FormFields => parameters(new URLSearchParams(text));

test('only the edited values are written again; separators, "+" and "%20", and invalid escapes stay as sent', () => {
  const cases: [string, (fields: FormFields) => FormFields, string][] = [
    ['a=1;card=4539148803436467', () => ({ a: '1;card=************6467' }), 'a=1;card=************6467'],
    ['a=%zz&card=4539148803436467&b=x+y&c=x%20y', (f) => ({ ...f, card: '************6467' }), 'a=%zz&card=************6467&b=x+y&c=x%20y'],
    ['note=pay%20with%204539%201488%200343%206467&&x=%7e', (f) => ({ ...f, note: 'pay with **** **** **** 6467' }), 'note=pay+with+****+****+****+6467&&x=%7e'],
    // A repeated name: the second value only.
    ['t=a&t=4539148803436467&t=c', () => ({ t: ['a', '************6467', 'c'] }), 't=a&t=************6467&t=c'],
    // A value that must be escaped to read back the same: "&", "+", "%", "#" and non-ASCII.
    ['v=1&w=2', (f) => ({ ...f, w: 'a&b+c%d#é' }), 'v=1&w=a%26b%2Bc%25d%23%C3%A9'],
    // A masked name: written encoded ("=" escaped in a name), its value as sent.
    ['4539148803436467=x%20y&k=1', () => ({ '************6467=': 'x y', k: '1' }), '************6467%3D=x%20y&k=1'],
    // A leading "?" is dropped by the reader at the start of the text only.
    ['?a=4539148803436467&?b=1', (f) => ({ ...f, a: '************6467' }), '?a=************6467&?b=1'],
    // A flag without "=" stays a flag.
    ['flag&card=4539148803436467', (f) => ({ ...f, card: '[REDACTED:payment-card]' }), 'flag&card=[REDACTED:payment-card]'],
  ];
  for (const [text, edit, expected] of cases) {
    const fields = read(text);
    const edited = edit(fields);
    const written = withEditedFields(text, fields, edited);
    assert.equal(written, expected, text);
    assert.deepEqual(read(written), edited, `${text}: reads back as edited`);
  }
});

test('fields that no longer line up with the text are encoded whole', () => {
  assert.equal(withEditedFields('a=1&b=2', read('a=1&b=2'), { a: '1' }), 'a=1');
});
