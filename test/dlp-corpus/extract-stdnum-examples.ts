// Collects up to three valid example numbers per stdnum validator from the
// library's own test vectors, so the catalogue can show examples and the
// corpus can include true positives for every national-identifier detector.
// Run: sh deploy/bootstrap.sh node test/dlp-corpus/extract-stdnum-examples.ts
import { readFileSync, readdirSync, writeFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stdnum } from 'stdnum';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const source = join(root, 'node_modules', 'stdnum', 'src');
const out: Record<string, string[]> = {};

for (const [country, validators] of Object.entries(stdnum)) {
  const folder = join(source, country.toLowerCase());
  if (!existsSync(folder)) continue;
  const files = readdirSync(folder);
  for (const [key, validator] of Object.entries(validators as Record<string, { validate(v: string): { isValid: boolean } }>)) {
    const spec = files.find((f) => f.toLowerCase() === `${key.toLowerCase()}.spec.ts`);
    if (!spec) continue;
    const text = readFileSync(join(folder, spec), 'utf8');
    const literals = [...text.matchAll(/'([^'\n]{4,40})'/g)].map((m) => m[1]!);
    const valid = [...new Set(literals)].filter((value) => {
      try {
        return validator.validate(value).isValid && /\d/.test(value);
      } catch {
        return false;
      }
    });
    if (valid.length > 0) out[`${country}.${key}`] = valid.slice(0, 3);
  }
}

writeFileSync(join(root, 'ext-proc', 'dlp', 'detectors', 'stdnum-examples.json'), JSON.stringify(out, null, 1) + '\n');
console.log(`${Object.keys(out).length} validators with examples`);
