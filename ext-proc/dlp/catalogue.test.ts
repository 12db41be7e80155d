import { test } from 'node:test';
import assert from 'node:assert/strict';
import { listDetectors } from './catalogue.ts';
import { compileDataProtection } from './compile.ts';
import { inspectText } from './inspect.ts';
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
test('every detector example is reported by that detector (or a sibling of its group)', () => {
  const compiled = compileDataProtection({ defaultAction: 'detect', minConfidence: 0.5 } as never);
  assert.ok(compiled.ok);
  const keywordsOf = new Map(detectors.map((x) => [x.id, new Set(x.keywords)]));
  // Ambiguous names (RO "CUI" and PE "CUI") are reported by whichever validates first; both are right to claim it.
  const sharesKeyword = (a: string, b: string) => [...(keywordsOf.get(a) ?? [])].some((k) => keywordsOf.get(b)?.has(k));
  const missed: string[] = [];
  let checked = 0;
  for (const d of detectors) {
    for (const example of d.examples) {
      checked++;
      const r = inspectText(compiled, example, { direction: 'response', upstream: 'u' });
      if (!r.findings.some((f) => f.detector === d.id || f.group === d.group || sharesKeyword(f.detector, d.id))) missed.push(`${d.id}: ${r.findings.map((f) => f.detector).join(',') || 'nothing'}`);
    }
  }
  assert.ok(checked >= 300, `only ${checked} examples`);
  assert.deepEqual(missed, []);
});
