// Precision and recall of the detectors on the labelled corpus.
// Run: sh deploy/bootstrap.sh node test/dlp-corpus/evaluate.ts  (prints a markdown table)
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { builtInDetectors } from '../../ext-proc/dlp/catalogue.ts';
import { compileDataProtection } from '../../ext-proc/dlp/compile.ts';
import { inspectJson } from '../../ext-proc/dlp/inspect.ts';
import type { LabelledSample } from './generate.ts';

export interface DetectorScore {
  detector: string;
  checksum: boolean;
  truePositives: number;
  falsePositives: number;
  falseNegatives: number;
  precision: number;
  recall: number;
}

const here = dirname(fileURLToPath(import.meta.url));

export function loadCorpus(): LabelledSample[] {
  return JSON.parse(readFileSync(join(here, 'corpus.json'), 'utf8')) as LabelledSample[];
}

const byId = new Map(builtInDetectors.map((d) => [d.id, d]));

/**
 * A sample is found when its labelled detector, or another of the same data
 * class, reports it. Every finding in a hard negative, and every finding of
 * another data class in a positive sample, is a false positive.
 */
export function evaluate(corpus: LabelledSample[]): { perDetector: DetectorScore[]; overall: { checksum: DetectorScore; all: DetectorScore } } {
  const compiled = compileDataProtection({ defaultAction: 'detect' } as never);
  const scores = new Map<string, DetectorScore>();
  const score = (id: string) => {
    let s = scores.get(id);
    if (!s) {
      const checksum = byId.get(id)?.validation === 'checksum';
      s = { detector: id, checksum, truePositives: 0, falsePositives: 0, falseNegatives: 0, precision: 1, recall: 1 };
      scores.set(id, s);
    }
    return s;
  };
  for (const sample of corpus) {
    const findings = inspectJson(compiled, sample.body, { direction: 'response', upstream: 'corpus' }).findings;
    const labelClass = sample.detector ? byId.get(sample.detector)?.dataClass : null;
    if (sample.detector) {
      const found = findings.some((f) => f.detector === sample.detector || byId.get(f.detector)?.dataClass === labelClass);
      if (found) score(sample.detector).truePositives++;
      else score(sample.detector).falseNegatives++;
    }
    for (const f of findings) {
      if (sample.detector && byId.get(f.detector)?.dataClass === labelClass) continue;
      score(f.detector).falsePositives++;
    }
  }
  const finish = (s: DetectorScore) => {
    s.precision = s.truePositives + s.falsePositives === 0 ? 1 : s.truePositives / (s.truePositives + s.falsePositives);
    s.recall = s.truePositives + s.falseNegatives === 0 ? 1 : s.truePositives / (s.truePositives + s.falseNegatives);
    return s;
  };
  const perDetector = [...scores.values()].map(finish).sort((a, b) => a.detector.localeCompare(b.detector));
  const sum = (name: string, xs: DetectorScore[]) =>
    finish({
      detector: name,
      checksum: xs.every((s) => s.checksum),
      truePositives: xs.reduce((n, s) => n + s.truePositives, 0),
      falsePositives: xs.reduce((n, s) => n + s.falsePositives, 0),
      falseNegatives: xs.reduce((n, s) => n + s.falseNegatives, 0),
      precision: 1,
      recall: 1,
    });
  return { perDetector, overall: { checksum: sum('checksum-backed', perDetector.filter((s) => s.checksum)), all: sum('all', perDetector) } };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const corpus = loadCorpus();
  const r = evaluate(corpus);
  console.log(`${corpus.length} samples (${corpus.filter((s) => s.detector === null).length} hard negatives)\n`);
  console.log('| detector | checksum | TP | FP | FN | precision | recall |');
  console.log('|---|---|---:|---:|---:|---:|---:|');
  for (const s of [...r.perDetector, r.overall.checksum, r.overall.all]) {
    console.log(`| ${s.detector} | ${s.checksum ? 'yes' : 'no'} | ${s.truePositives} | ${s.falsePositives} | ${s.falseNegatives} | ${s.precision.toFixed(3)} | ${s.recall.toFixed(3)} |`);
  }
}
