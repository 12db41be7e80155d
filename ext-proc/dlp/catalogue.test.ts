import { test } from 'node:test';
import assert from 'node:assert/strict';
import { builtInDetectors, listDetectors } from './catalogue.ts';
import { compileDataProtection } from './compile.ts';
import { inspectJson, inspectText } from './inspect.ts';
import { readFileSync } from 'node:fs';
import { detectorGroups } from './detector.ts';

const detectors = listDetectors();

test('the catalogue has at least 200 detectors with unique ids, known groups and metadata', () => {
  assert.ok(detectors.length >= 200, `only ${detectors.length}`);
  assert.equal(new Set(detectors.map((d) => d.id)).size, detectors.length);
  for (const d of detectors) {
    assert.ok((detectorGroups as readonly string[]).includes(d.group), d.id);
    assert.ok(d.description.length > 10, d.id);
    assert.ok(d.confidence.base > 0 && d.confidence.base <= 1, d.id);
    if (d.requiresContext) assert.ok(d.keywords.length > 0, `${d.id} needs context but has no keywords`);
  }
  const groups = new Set(detectors.map((d) => d.group));
  for (const g of ['financial', 'health', 'national-id', 'credentials', 'contact', 'network']) assert.ok(groups.has(g as never), g);
});

// Where two detectors claim the same characters the stronger wins, so a sibling of the same group may report it.
test('every detector has examples, each reported by that detector (or a sibling of its group)', () => {
  const compiled = compileDataProtection({ defaultAction: 'detect', minConfidence: 0.5 } as never);
  assert.ok(compiled.ok);
  const keywordsOf = new Map(detectors.map((x) => [x.id, new Set(x.keywords)]));
  // Ambiguous names (RO "CUI" and PE "CUI") are reported by whichever validates first; both are right to claim it.
  const sharesKeyword = (a: string, b: string) => [...(keywordsOf.get(a) ?? [])].some((k) => keywordsOf.get(b)?.has(k));
  const missed: string[] = [];
  let checked = 0;
  for (const d of detectors) {
    if (d.examples.length === 0) missed.push(`${d.id}: no example`);
    for (const example of d.examples) {
      checked++;
      const r = inspectText(compiled, example, { direction: 'response', upstream: 'u' });
      if (!r.findings.some((f) => f.detector === d.id || f.group === d.group || sharesKeyword(f.detector, d.id))) missed.push(`${d.id}: ${r.findings.map((f) => f.detector).join(',') || 'nothing'}`);
    }
  }
  assert.ok(checked >= 300, `only ${checked} examples`);
  assert.deepEqual(missed, []);
});

/** The longest stretch of the example, from a letter or digit to a letter or digit, that the validator accepts. */
function validatedValueOf(example: string, validate: (candidate: string) => boolean): string | null {
  const alnum = (c: string | undefined) => c !== undefined && /[A-Za-z0-9]/.test(c);
  for (let length = example.length; length > 0; length--) {
    for (let start = 0; start + length <= example.length; start++) {
      const candidate = example.slice(start, start + length);
      if (alnum(candidate[0]) && alnum(candidate.at(-1)) && validate(candidate)) return candidate;
    }
  }
  return null;
}

// "checksum" is what the evaluation's strictest bar and the catalogue promise: a check digit over the
// whole value, so a mistyped or made-up digit is rejected. Every one-digit change of the examples is tried.
test('every detector that claims a checksum rejects at least 90% of the one-digit changes of its examples', () => {
  const weak: string[] = [];
  let claimed = 0;
  const definitions = new Map(builtInDetectors.map((d) => [d.id, d]));
  for (const { id, validation } of detectors) {
    const d = definitions.get(id)!;
    if (validation !== 'checksum' || !d.validate) continue;
    claimed++;
    let tried = 0;
    let rejected = 0;
    for (const example of d.examples) {
      const value = validatedValueOf(example, d.validate!);
      if (value === null) continue;
      for (let i = 0; i < value.length; i++) {
        if (!/\d/.test(value[i]!)) continue;
        for (let digit = 0; digit <= 9; digit++) {
          if (String(digit) === value[i]) continue;
          tried++;
          if (!d.validate!(value.slice(0, i) + digit + value.slice(i + 1))) rejected++;
        }
      }
    }
    if (tried === 0) weak.push(`${d.id}: no example its validator accepts`);
    else if (rejected * 10 < tried * 9) weak.push(`${d.id}: rejects ${rejected} of ${tried}`);
  }
  assert.ok(claimed >= 100, `only ${claimed} detectors claim a checksum`);
  assert.deepEqual(weak, []);
});

test('a detector without a validator is reported as checked by its format alone', () => {
  const definitions = new Map(builtInDetectors.map((d) => [d.id, d]));
  for (const d of detectors) if (!definitions.get(d.id)!.validate) assert.equal(d.validation, 'format', d.id);
});

test('a word that abbreviates an identifier but is mostly something else labels a field, not prose', () => {
  const compiled = compileDataProtection({ defaultAction: 'detect' } as never);
  const response = { direction: 'response' as const, upstream: 'u' };
  const uid = detectors.find((d) => d.id === 'ch-uid')!;
  assert.ok(uid.fieldNameKeywords?.includes('uid') && !uid.keywords?.includes('uid'));
  // As the field's name, "uid" still says what the value is.
  assert.deepEqual(inspectJson(compiled, { uid: 'CHE-100.155.212' }, response).findings.map((f) => f.detector), ['ch-uid']);
  // However it is written (the test before stdnum reads the compact form); a user id is not tried.
  for (const [value, detector] of [['che 100 155 212', 'ch-uid'], ['ATU13585627', 'at-uid'], ['AT U13585627', 'at-uid'], ['at-u13585627', 'at-uid'], ['U13585627', 'at-uid']]) {
    assert.deepEqual(inspectJson(compiled, { uid: value }, response).findings.map((f) => f.detector), [detector], value);
  }
  assert.deepEqual(inspectJson(compiled, { uid: 'u-4711' }, response).findings, []);
  // In running text, ".org", "run", "ui", "vs" and "cc" are not context words: nothing near them is tried as an identifier.
  // (A CI run number that happens to pass Chile's RUN check was one: "run" named it.)
  const prose = 'CI run 12345678-5 passed; the ui tests vs the cc list: 100155212 on https://docs.example.org/page/100155212';
  assert.deepEqual(inspectText(compiled, prose, response).findings.map((f) => f.detector), []);
  // RUT, the same number's name that is not an English word, still is one in text.
  assert.deepEqual(inspectText(compiled, 'RUT 12345678-5', response).findings.map((f) => f.detector), ['cl-rut']);
  // Written with thousands dots, as it mostly is (stdnum itself does not take the dots), and masked whole.
  const dotted = inspectText(compiled, 'RUT 12.345.678-5 del cliente', response);
  assert.deepEqual(dotted.findings.map((f) => f.detector), ['cl-rut']);
  assert.deepEqual(inspectText(compiled, 'RUT 12.345.678-4', response).findings, [], 'a wrong check digit is still refused');
  // Its long name still is, in text.
  assert.deepEqual(inspectText(compiled, 'Unternehmens-Identifikationsnummer CHE-100.155.212', response).findings.map((f) => f.detector), ['ch-uid']);
});

test('every stdnum test vector holds a digit, so a candidate without one is never given to stdnum', () => {
  const examples = JSON.parse(readFileSync(new URL('./detectors/stdnum-examples.json', import.meta.url), 'utf8')) as Record<string, string[]>;
  const digitless = Object.entries(examples).flatMap(([path, list]) => list.filter((e) => !/\d/.test(e)).map((e) => `${path}: ${e}`));
  assert.deepEqual(digitless, []);
  assert.ok(Object.keys(examples).length > 150);
});
