// Collects up to three valid example numbers per stdnum validator from the
// library's own test vectors, so the catalogue can show examples and the
// corpus can include true positives for every national-identifier detector.
// Validators whose spec file has no valid number get one made up here, checked by the validator.
// Run: sh deploy/bootstrap.sh node test/dlp-corpus/extract-stdnum-examples.ts
import { readFileSync, readdirSync, writeFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stdnum } from 'stdnum';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const source = join(root, 'node_modules', 'stdnum', 'src');
const out: Record<string, string[]> = {};

/** Made-up numbers (valid birth dates and regions, check digit computed) for validators without test vectors. */
const madeUp: Record<string, string> = {
  'AZ.pin': '4081597326', // stdnum checks ten digits only
  'CL.run': '12345678-5',
  'ME.jmbg': '2207990215171', // born 22.07.1990, region 21 (Podgorica)
  'MK.jmbg': '0912978410129', // born 09.12.1978, region 41 (Skopje)
  'PT.nipc': '502757191', // legal persons start with 5
  'RS.jmbg': '1503985710231', // born 15.03.1985, region 71 (Belgrade)
  'SK.rc': '855714/1230', // born 14.07.1985 (month + 50: a woman)
};

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

for (const [path, value] of Object.entries(madeUp)) {
  if (out[path]) throw new Error(`${path} has test vectors now; drop its made-up number`);
  const [country, key] = path.split('.') as [string, string];
  const validator = (stdnum as unknown as Record<string, Record<string, { validate(v: string): { isValid: boolean } }>>)[country]![key]!;
  if (!validator.validate(value).isValid) throw new Error(`made-up ${path} ${value} is not valid`);
  out[path] = [value];
}

writeFileSync(join(root, 'ext-proc', 'dlp', 'detectors', 'stdnum-examples.json'), JSON.stringify(out, null, 1) + '\n');
console.log(`${Object.keys(out).length} validators with examples`);
