import { test } from 'node:test';
import assert from 'node:assert/strict';
import RE2 from 're2';
import { builtInDetectors } from './catalogue.ts';
import { charKind, isTrivial, punctuationBit, requirementOf, type Requirement } from './prefilter.ts';

function satisfies(text: string, r: Requirement): boolean {
  let digits = 0;
  let upper = 0;
  let lower = 0;
  let punctuation = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 128) continue;
    if (charKind[c] === 1) digits++;
    else if (charKind[c] === 2) upper++;
    else if (charKind[c] === 3) lower++;
    punctuation |= punctuationBit[c]!;
  }
  return text.length >= r.minLength && digits >= r.digits && upper >= r.upper && lower >= r.lower && (punctuation & r.punctuation) === r.punctuation;
}

test('what every match must contain is read from the pattern', () => {
  assert.deepEqual(requirementOf('\\b\\d{3}-\\d{2}-\\d{4}\\b'), { minLength: 11, digits: 9, upper: 0, lower: 0, punctuation: punctuationBit['-'.charCodeAt(0)] });
  const email = requirementOf('\\b[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\\.[A-Za-z0-9-]{1,63})*\\.[A-Za-z]{2,24}\\b');
  assert.equal(email.punctuation & punctuationBit['@'.charCodeAt(0)]!, punctuationBit['@'.charCodeAt(0)]);
  // alternatives keep only what both have; optional parts add nothing
  assert.deepEqual(requirementOf('ab|a1'), { minLength: 2, digits: 0, upper: 0, lower: 1, punctuation: 0 });
  assert.deepEqual(requirementOf('x?\\d*'), { minLength: 0, digits: 0, upper: 0, lower: 0, punctuation: 0 });
  // case-insensitive letters are letters of either case
  assert.deepEqual(requirementOf('(?i)abc'), { minLength: 3, digits: 0, upper: 0, lower: 0, punctuation: 0 });
  assert.deepEqual(requirementOf('abc', true), { minLength: 3, digits: 0, upper: 0, lower: 0, punctuation: 0 });
  assert.equal(requirementOf('(?i:a)B').upper, 1);
});

test('a construct it does not read makes it give up, never guess', () => {
  assert.ok(isTrivial(requirementOf('[[:alpha:]]{20}')));
  assert.ok(isTrivial(requirementOf('a{2')));
  assert.ok(isTrivial(requirementOf('\\Qabc\\E')));
});

test('every example of every detector satisfies what its pattern requires', () => {
  const shape = '\\b[A-Za-z0-9](?:[A-Za-z0-9]|[ ./-][A-Za-z0-9]){3,26}\\b';
  let checked = 0;
  for (const d of builtInDetectors) {
    const source = d.pattern ?? shape;
    const r = requirementOf(source, d.caseInsensitive);
    const re = new RE2(source, d.caseInsensitive ? 'gi' : 'g');
    for (const example of d.examples) {
      for (const m of (re.match(example) ?? []) as string[]) {
        checked++;
        assert.ok(satisfies(m, r), `${d.id}: "${m}" misses ${JSON.stringify(r)}`);
      }
    }
  }
  assert.ok(checked > 300, `only ${checked} matches checked`);
});
