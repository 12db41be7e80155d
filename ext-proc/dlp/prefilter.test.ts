import { test } from 'node:test';
import assert from 'node:assert/strict';
import RE2 from 're2';
import { builtInDetectors } from './catalogue.ts';
import { charKind, isTrivial, loosenedForSet, punctuationBit, requirementOf, type Requirement } from './prefilter.ts';

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

test("the Set's copy of a pattern counts only up to the bound", () => {
  assert.equal(loosenedForSet('\\b[A-Za-z0-9._%+-]{1,64}@[a-z]{2,24}\\b', 16), '\\b[A-Za-z0-9._%+-]{1,}@[a-z]{2,}\\b');
  assert.equal(loosenedForSet('\\bghp_[A-Za-z0-9]{36}\\b', 16), '\\bghp_[A-Za-z0-9]{16,}\\b');
  assert.equal(loosenedForSet('x{5}y{3,16}z{20,}', 16), 'x{5}y{3,16}z{16,}');
  // a lazy repetition stays lazy; braces in a class, in \x{...} and escaped ones are not counts
  assert.equal(loosenedForSet('(?:-\\d){0,17}?', 16), '(?:-\\d){0,}?');
  assert.equal(loosenedForSet('[a{99}]\\x{2028}\\{40\\}a\\{40}', 16), '[a{99}]\\x{2028}\\{40\\}a\\{40}');
  assert.equal(loosenedForSet('[]{40}]{40}', 16), '[]{40}]{16,}');
  assert.equal(loosenedForSet('\\Qa{40}\\E', 16), '\\Qa{40}\\E');
});

test("the Set's copy of every detector's pattern matches wherever the pattern does", () => {
  let random = 7;
  const next = (n: number) => ((random = (random * 1103515245 + 12345) & 0x7fffffff) % n);
  let checked = 0;
  for (const d of builtInDetectors) {
    if (!d.pattern) continue;
    const flags = d.caseInsensitive ? 'i' : '';
    const exact = new RE2(d.pattern, flags);
    const loose = new RE2(loosenedForSet(d.pattern), flags);
    for (const example of d.examples) {
      // the example, and copies with a character doubled or dropped (runs of other lengths)
      const texts = [example];
      for (let k = 0; k < 24; k++) {
        const at = next(example.length);
        texts.push(k % 2 === 0 ? example.slice(0, at) + example[at] + example.slice(at) : example.slice(0, at) + example.slice(at + 1));
      }
      for (const text of texts) {
        if (!exact.test(text)) continue;
        checked++;
        assert.ok(loose.test(text), `${d.id}: ${loosenedForSet(d.pattern)} misses "${text}"`);
      }
    }
  }
  assert.ok(checked > 1000, `only ${checked} texts checked`);
});
