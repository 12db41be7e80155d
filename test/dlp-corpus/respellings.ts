// The labelled corpus respelled the ways a value is hidden from patterns written for ASCII: the
// same samples, every string value rewritten character by character. A detector should find a
// respelled value as it finds the plain one, and a respelled hard negative should stay negative.
// Run: sh deploy/bootstrap.sh node test/dlp-corpus/respellings.ts  (prints a markdown table)
import { evaluate, loadCorpus, type DetectorScore } from './evaluate.ts';
import type { LabelledSample } from './generate.ts';

const cyrillicFor: Record<string, string> = {
  A: 'А', B: 'В', C: 'С', E: 'Е', H: 'Н', K: 'К', M: 'М', O: 'О', P: 'Р', T: 'Т', X: 'Х', Y: 'У',
  a: 'а', c: 'с', e: 'е', o: 'о', p: 'р', x: 'х', y: 'у',
};

export const respellings: Record<string, (text: string) => string> = {
  'zero-width space after every character': (t) => [...t].map((c) => `${c}\u200b`).join(''),
  'soft hyphen between digits': (t) => t.replace(/(\d)(?=\d)/g, '$1\u00ad'),
  'full-width forms, ideographic spaces': (t) => [...t].map((c) => (c === ' ' ? '\u3000' : c > ' ' && c <= '~' ? String.fromCharCode(c.charCodeAt(0) + 0xfee0) : c)).join(''),
  'Arabic-Indic digits': (t) => t.replace(/\d/g, (d) => String.fromCharCode(0x0660 + Number(d))),
  'mathematical bold digits': (t) => t.replace(/\d/g, (d) => String.fromCodePoint(0x1d7ce + Number(d))),
  'no-break spaces': (t) => t.replaceAll(' ', '\u00a0'),
  'Cyrillic letters drawn like Latin ones': (t) => t.replace(/[ABCEHKMOPTXYaceopxy]/g, (c) => cyrillicFor[c]!),
  'percent-escaped spaces, dashes and @': (t) => t.replace(/[ @-]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`),
};

function respell(value: unknown, how: (text: string) => string): unknown {
  if (typeof value === 'string') return how(value);
  if (Array.isArray(value)) return value.map((v) => respell(v, how));
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, respell(v, how)]));
  return value;
}

export function respelledCorpus(corpus: LabelledSample[], how: (text: string) => string): LabelledSample[] {
  return corpus.map((s) => ({ ...s, body: respell(s.body, how) }));
}

/**
 * A few samples of every label (each detector, each kind of hard negative), in corpus order: every
 * family is respelled while the eight passes over the whole corpus would take minutes.
 */
export function stratifiedSample(corpus: LabelledSample[], perLabel: number): LabelledSample[] {
  const taken = new Map<string, number>();
  return corpus.filter((s) => {
    const label = s.detector ?? `negative: ${s.note}`;
    const n = taken.get(label) ?? 0;
    taken.set(label, n + 1);
    return n < perLabel;
  });
}

export function evaluateRespellings(corpus = loadCorpus()): { respelling: string; checksum: DetectorScore; all: DetectorScore }[] {
  return Object.entries(respellings).map(([respelling, how]) => {
    const r = evaluate(respelledCorpus(corpus, how));
    return { respelling, checksum: r.overall.checksum, all: r.overall.all };
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log('| respelling | checksum-backed precision | checksum-backed recall | all precision | all recall |');
  console.log('|---|---:|---:|---:|---:|');
  const plain = evaluate(loadCorpus()).overall;
  console.log(`| none (the corpus as it is) | ${plain.checksum.precision.toFixed(3)} | ${plain.checksum.recall.toFixed(3)} | ${plain.all.precision.toFixed(3)} | ${plain.all.recall.toFixed(3)} |`);
  for (const r of evaluateRespellings()) {
    console.log(`| ${r.respelling} | ${r.checksum.precision.toFixed(3)} | ${r.checksum.recall.toFixed(3)} | ${r.all.precision.toFixed(3)} | ${r.all.recall.toFixed(3)} |`);
  }
}
