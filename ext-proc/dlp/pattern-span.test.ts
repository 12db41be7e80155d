import { test } from 'node:test';
import assert from 'node:assert/strict';
import RE2 from 're2';
import { boundedPrefix, longestMatchBytes, UnreadablePattern } from './pattern-span.ts';
import { builtInDetectors } from './catalogue.ts';
import { compileDataProtection, setEntrySource, standaloneNumberGroups, standaloneSetSource } from './compile.ts';

test('the widest match of a pattern, in UTF-8 bytes', () => {
  assert.equal(longestMatchBytes('\\d{3}-\\d{2}-\\d{4}'), 11);
  assert.equal(longestMatchBytes('\\bAKIA[A-Z0-9]{16}\\b'), 20);
  assert.equal(longestMatchBytes('(?:ab|c){2,3}x?'), 7);
  assert.equal(longestMatchBytes('[^"]{2}'), 8, 'any character: up to 4 bytes');
  assert.equal(longestMatchBytes('\\x{2028}'), 3);
  assert.equal(longestMatchBytes('é'), 2);
  assert.equal(longestMatchBytes('(?i)k'), 3, 'caseless k is also the Kelvin sign');
  assert.equal(longestMatchBytes('(?i:s)k'), 4, 'the flag ends with its group');
  assert.equal(longestMatchBytes('(?P<year>\\d{4})'), 4);
  assert.equal(longestMatchBytes('\\x41{2}'), 2);
  assert.equal(longestMatchBytes('^$\\b'), 0);
  for (const unbounded of ['a+', 'a*b', '(?:x{2,})', '[a-z]{3,}\\.com']) assert.equal(longestMatchBytes(unbounded), Infinity, unbounded);
  for (const unread of ['\\Qa+\\E', '[[:alpha:]]', '(?<=a)b', '(a']) assert.throws(() => longestMatchBytes(unread), UnreadablePattern, unread);
});

test('a pattern cut before its first unbounded repetition: every match starts with a match of the cut one', () => {
  assert.equal(boundedPrefix('\\bglpat-[A-Za-z0-9_-]{20,}\\b'), '\\bglpat-[A-Za-z0-9_-]{20}');
  assert.equal(boundedPrefix('a(?:b+c)d'), 'a(?:b{1})');
  assert.equal(boundedPrefix('"type"\\s*:'), '"type"');
  assert.equal(boundedPrefix('x|y+z'), 'x|y{1}');
  assert.equal(boundedPrefix('\\d{3}-\\d{4}'), '\\d{3}-\\d{4}', 'bounded: unchanged');
  for (const [pattern, text] of [
    ['\\bglpat-[A-Za-z0-9_-]{20,}\\b', 'token glpat-abcdefghijklmnopqrstuvwxyz0123 end'],
    ['a(?:b+c)d', 'xx abbbbbbbcd yy'],
    ['\\beyJ[A-Za-z0-9_-]{5,}\\.eyJ[A-Za-z0-9_-]{5,}\\.[A-Za-z0-9_-]{0,}', 'Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig'],
  ] as const) {
    const whole = new RE2(pattern).exec(text);
    assert.ok(whole, pattern);
    const cut = new RE2(boundedPrefix(pattern)).exec(text.slice(whole.index));
    assert.ok(cut && cut.index === 0, `${pattern}: the cut one matches where the whole one starts`);
  }
});

test("every Set entry of the catalogue has a bounded witness: each detector example's gate match holds one no wider than it", () => {
  const compiled = compileDataProtection({} as never);
  assert.ok(compiled.ok && compiled.set);
  assert.ok(compiled.set.overlapBytes < 1024, `overlap ${compiled.set.overlapBytes}`);
  assert.equal(compiled.set.pieceBytes, 32 * 1024);
  let checked = 0;
  for (const def of builtInDetectors) {
    if (!def.pattern) continue;
    const gate = standaloneNumberGroups.has(def.group) ? standaloneSetSource(def.pattern) : def.pattern;
    const source = def.caseInsensitive ? `(?i)${gate}` : gate;
    const { witnessBytes } = setEntrySource(source, true);
    assert.ok(Number.isFinite(witnessBytes), def.id);
    const cut = new RE2(boundedPrefix(source), 'g');
    const whole = new RE2(source);
    for (const example of def.examples) {
      for (const text of [example, ` ${example} `, `{"v":"${example}"}`]) {
        if (!whole.test(text)) continue;
        const found = [...text.matchAll(cut as unknown as RegExp)];
        assert.ok(found.length > 0, `${def.id}: the cut gate matches ${JSON.stringify(text)}`);
        for (const m of found) assert.ok(Buffer.byteLength(m[0]) <= witnessBytes, `${def.id}: ${m[0]} within ${witnessBytes} bytes`);
        checked++;
      }
    }
  }
  assert.ok(checked > 400, `only ${checked} examples checked`);
});
