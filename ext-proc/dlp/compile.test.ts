import { test } from 'node:test';
import assert from 'node:assert/strict';
import RE2 from 're2';
import { compileDataProtection, detectorSetKeywordSource, EntrySets, keywordPattern } from './compile.ts';

const compiled = compileDataProtection({} as never);
assert.ok(compiled.ok && compiled.set);
const set = compiled.set;
const hitDetectors = (text: string) =>
  set.match(Buffer.from(text)).map((h) => {
    const e = compiled.setEntries[h]!;
    return e.kind === 'pattern' || e.kind === 'keyword' ? compiled.detectors[e.detector]!.def.id : e.kind;
  });

test('the Set does not hit on a number glued into a token (UUID group, version), so clean bodies need no second pass', () => {
  // the last UUID group is 12 digits starting 2-9: Aadhaar-shaped, but part of a token
  assert.deepEqual(hitDetectors('{"id":"3f2a9c1e-8b7d-4e21-9a6f-729191157491"}'), []);
  assert.deepEqual(hitDetectors('{"v":"2.4111111111111111.7"}'), []);
});

test('the stricter Set entry still hits on standalone numbers and numbers after a lone separator', () => {
  assert.ok(hitDetectors('{"card":"4111111111111111"}').includes('payment-card-visa'));
  assert.ok(hitDetectors('4111111111111111').includes('payment-card-visa'));
  assert.ok(hitDetectors('-4111111111111111.').includes('payment-card-visa'));
  assert.ok(hitDetectors('paid: -4111111111111111- ok').includes('payment-card-visa'));
  assert.ok(hitDetectors('{"n":"2345 6789 0123"}').includes('in-aadhaar'));
});

test('without a profile every detector runs: tuning one detector or adding a rule never switches the others off', () => {
  const activeIds = (config: Record<string, unknown>) => {
    const result = compileDataProtection(config as never);
    assert.ok(result.ok);
    return new Set(result.detectors.map((d) => d.def.id));
  };
  const all = activeIds({});
  assert.ok(all.size >= 200);
  for (const config of [
    { detectors: [{ id: 'payment-card-visa', maskKeep: 2 }] },
    { rules: [{ groups: ['credentials'], direction: 'request', action: 'block' }] },
    { detectors: [{ id: 'aws-access-key-id', action: 'block' }], rules: [{ detectors: ['us-ssn'], action: 'redact' }] },
  ]) {
    assert.equal(activeIds(config).size, all.size, JSON.stringify(config));
  }
  const withoutIp = activeIds({ detectors: [{ id: 'ipv4-address', enabled: false }] });
  assert.equal(withoutIp.size, all.size - 1);
  assert.equal(withoutIp.has('ipv4-address'), false);
  // With a profile: its detectors, plus those a rule or an override names.
  const pci = activeIds({ profiles: ['pci-dss'] });
  const pciAndKeys = activeIds({ profiles: ['pci-dss'], rules: [{ groups: ['credentials'], action: 'block' }], detectors: [{ id: 'us-ssn' }] });
  assert.ok(pci.has('payment-card-visa') && !pci.has('aws-access-key-id') && !pci.has('us-ssn'));
  assert.ok(pciAndKeys.has('payment-card-visa') && pciAndKeys.has('aws-access-key-id') && pciAndKeys.has('us-ssn'));
});

test("a keyword-gated detector's Set entry hits wherever its context words stand as the keyword patterns read them", () => {
  // The patterns the Set entry stands for: a context word not glued to a letter or digit before it,
  // and a field-name word ending a line or followed by what ends a name.
  let checked = 0;
  const before = ['', ' ', '_', '"', '-', 'é', '\n', '€'];
  for (const d of compiled.detectors) {
    if (!d.requiresContext) continue;
    const entry = new RE2(detectorSetKeywordSource(d.def));
    const asText = (d.def.keywords ?? []).length > 0 ? new RE2(`(?im)${keywordPattern(d.def.keywords!, d.def.assignment !== undefined)}`) : null;
    const asName = (d.def.fieldNameKeywords ?? []).length > 0 ? new RE2(`(?im)${keywordPattern(d.def.fieldNameKeywords!).replace(/\(\?:\[\^A-Za-z0-9\]\|\$\)$/, '(?:["\']?[ \\t]*[:=]|$)')}`) : null;
    for (const word of [...(d.def.keywords ?? []), ...(d.def.fieldNameKeywords ?? [])]) {
      const spellings = [word, word.toUpperCase(), word[0]!.toUpperCase() + word.slice(1), word.replace(/ /g, '_')];
      if (/^k/i.test(word)) spellings.push('\u212a' + word.slice(1)); // the Kelvin sign, a "k" under (?i)
      if (/^s/i.test(word)) spellings.push('\u017f' + word.slice(1)); // the long s
      for (const spelling of spellings) {
        for (const b of before) {
          for (const after of ['', ' 123', ': x', '=', '"', 'x']) {
            const text = `${b}${spelling}${after}`;
            if (!(asText?.test(text) || asName?.test(text))) continue;
            checked++;
            assert.ok(entry.test(text), `${d.def.id}: the Set entry misses ${JSON.stringify(text)}`);
          }
        }
      }
    }
  }
  assert.ok(checked > 5000, `only ${checked} texts checked`);
});

test('the two Sets answer as one Set of all the entries would', () => {
  const sources = ['\\bghp_[A-Za-z0-9]{16,}', '\\d{3}-\\d{2}-\\d{4}', '(?im)(?:\\b|_)(?:ssn)(?:[^A-Za-z0-9]|$)', '[a-z]+@[a-z]+\\.com'];
  const one = new RE2.Set(sources, { anchor: 'unanchored' });
  const texts = ['', 'nothing here', 'ssn 123-45-6789', 'mail a@b.com and ghp_abcdefghijklmnopqrst', 'SSN: x', 'ghp_short'];
  for (const inWords of [(i: number) => i % 2 === 0, () => true, () => false]) {
    const sets = new EntrySets(sources, inWords, Infinity);
    for (const text of texts) {
      assert.deepEqual(sets.match(text), one.match(text), `${text} (${inWords})`);
      assert.deepEqual(sets.matchWords(Buffer.from(text)), one.match(text).filter((h) => inWords(h)));
    }
  }
  // every entry of the compiled config is in one of the two
  const all = new Set(set.match('ssn 123-45-6789 jane@example.com ghp_' + 'a'.repeat(36) + ' AKIAIOSFODNN7EXAMPLE'));
  assert.ok(all.size >= 4, `${[...all]}`);
});

test('the Sets over a long text in overlapping pieces hit every entry one pass over the whole text hits', async () => {
  const { builtInDetectors } = await import('./catalogue.ts');
  const { cleanToolResult } = await import('../../test/dlp-corpus/generate.ts');
  const whole = compileDataProtection({} as never, { setPieceBytes: Infinity });
  const pieces = compileDataProtection({} as never, { setPieceBytes: 4096 });
  assert.ok(whole.ok && whole.set && pieces.ok && pieces.set);
  assert.equal(whole.set.pieceBytes, Infinity);
  assert.equal(pieces.set.pieceBytes, 4096);
  const samples = builtInDetectors.flatMap((d) => [...d.examples, ...(d.keywords ?? []).map((k) => `${k}: 123456789`), ...(d.fieldNameKeywords ?? []).map((k) => `"${k}": "AB12345"`)]);
  samples.push('aGVsbG8gd29ybGQgdGhpcyBpcyBiYXNlNjQ=', '\\u0034111', 'a\\nb4111111111111111', 'јane', '%41%42%43%44%45%46');
  let seed = 7;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  const fillers = ['the quick brown fox jumps over the lazy dog ', 'line of text\n', '{"id":12,"state":"done","note":"ok"},', 'abcdefghij0123456789'];
  let compared = 0;
  let extra = 0;
  for (let round = 0; round < 60; round++) {
    const filler = fillers[round % fillers.length]!;
    let text = '';
    while (text.length < 20_000) {
      text += random() < 0.04 ? samples[Math.floor(random() * samples.length)]! : filler.slice(0, 1 + Math.floor(random() * filler.length));
    }
    const bytes = Buffer.from(text);
    const one = whole.set.match(bytes);
    const split = new Set(pieces.set.match(bytes));
    for (const h of one) assert.ok(split.has(h), `round ${round}: entry ${h} (${whole.set.sources[h]!.slice(0, 60)}) hit by the whole text, missed in pieces`);
    extra += split.size - one.length;
    compared++;
  }
  assert.equal(compared, 60);
  // Pieces are cut after a line feed, a space or a comma: the generated clean tool result gets no hit from an edge.
  const clean = Buffer.from(JSON.stringify(cleanToolResult(1, 300)));
  assert.ok(clean.length > 10 * 4096);
  assert.deepEqual(pieces.set.match(clean), whole.set.match(clean));
  assert.ok(extra < compared * 3, `${extra} entries hit only at pieces' edges`);
});
