import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateCorpus } from './generate.ts';
import { builtInDetectors } from '../../ext-proc/dlp/catalogue.ts';
import { evaluate, loadCorpus } from './evaluate.ts';
import { evaluateRespellings, stratifiedSample } from './respellings.ts';

test('the committed corpus is exactly what the seeded generator produces', () => {
  assert.deepEqual(loadCorpus(), JSON.parse(JSON.stringify(generateCorpus())));
});

test('every detector of the catalogue has at least one labelled positive in the corpus', () => {
  const labelled = new Set(loadCorpus().flatMap((s) => (s.detector ? [s.detector] : [])));
  assert.deepEqual(builtInDetectors.map((d) => d.id).filter((id) => !labelled.has(id)), []);
});

// Per-detector bars only where there are enough samples to mean something (stdnum vectors give 1-3 each).
test('checksum-backed detectors reach 0.98 precision and recall; each well-sampled detector at least 0.95', () => {
  const corpus = loadCorpus();
  assert.ok(corpus.filter((s) => s.detector === null).length >= 1500, 'enough hard negatives');
  const r = evaluate(corpus);
  assert.ok(r.overall.checksum.truePositives >= 1700);
  assert.ok(r.perDetector.length >= builtInDetectors.length, 'every catalogue detector is scored');
  assert.ok(r.overall.checksum.precision >= 0.98, `checksum precision ${r.overall.checksum.precision}`);
  assert.ok(r.overall.checksum.recall >= 0.98, `checksum recall ${r.overall.checksum.recall}`);
  assert.ok(r.overall.all.precision >= 0.95, `overall precision ${r.overall.all.precision}`);
  const weak = r.perDetector.filter((s) => s.truePositives + s.falseNegatives >= 20 && (s.recall < 0.95 || s.precision < 0.95));
  assert.deepEqual(weak.map((s) => `${s.detector} p=${s.precision.toFixed(2)} r=${s.recall.toFixed(2)}`), []);
});

// The corpus respelled (zero-width marks, full-width forms, digits of other scripts...): the bars hold.
// One sample of each label, so every family is respelled and the eight passes stay fast.
test('respelled with look-alike characters, checksum-backed detectors still reach 0.98 precision and recall', () => {
  for (const r of evaluateRespellings(stratifiedSample(loadCorpus(), 1))) {
    assert.ok(r.checksum.truePositives >= 150, r.respelling);
    assert.ok(r.checksum.precision >= 0.98, `${r.respelling}: precision ${r.checksum.precision}`);
    assert.ok(r.checksum.recall >= 0.98, `${r.respelling}: recall ${r.checksum.recall}`);
  }
});
