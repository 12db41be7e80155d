// Findings in real text that should hold almost none: the documentation, metadata and code of the
// npm packages this project installs (node_modules). They are not labelled; every finding here is
// read by hand. Credentials named in prose or code ("client_secret_basic", `password: string`)
// are what an agent reading a repository through a tool sees all day, and must not be redacted.
// Run: sh deploy/bootstrap.sh node test/dlp-corpus/installed-packages.ts [docs|code] (prints a table)
import { readdirSync, readFileSync, type Dirent } from 'node:fs';
import { join, relative } from 'node:path';
import { compileDataProtection } from '../../ext-proc/dlp/compile.ts';
import { inspectBody } from '../../ext-proc/dlp/inspect.ts';

const kind = process.argv[2] === 'code' ? 'code' : 'docs';
const wanted = kind === 'code' ? ['.js', '.ts', '.yaml', '.yml', '.txt', '.html'] : ['.json', '.md'];
// Test fixtures and specs hold deliberate examples (valid national ids, sample keys): not counted.
const skipped = new Set(['test', 'tests', 'fixtures', '__tests__', 'spec', 'vendor']);
const root = 'node_modules';

function filesUnder(dir: string, depth: number, out: string[]): string[] {
  let entries: Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    const path = join(dir, e.name);
    if (e.isDirectory()) {
      if (depth < 6 && !skipped.has(e.name)) filesUnder(path, depth + 1, out);
    } else if (wanted.some((x) => e.name.endsWith(x)) && !e.name.includes('lock') && !e.name.includes('.spec.')) {
      out.push(path);
    }
  }
  return out;
}

const compiled = compileDataProtection({ defaultAction: 'detect' } as never);
if (!compiled.ok) throw new Error('compile failed');
const context = { direction: 'response' as const, upstream: 'repository' };
const counts = new Map<string, { findings: number; files: Set<string> }>();
let bytes = 0;
const files = filesUnder(root, 0, []);
for (const file of files) {
  const raw = readFileSync(file);
  if (raw.length > 2_000_000) continue;
  bytes += raw.length;
  // A file as a tool would return it: JSON as it is, anything else as the text of an MCP tool result.
  const body = file.endsWith('.json') ? raw : Buffer.from(JSON.stringify({ content: [{ type: 'text', text: raw.toString() }] }));
  for (const f of inspectBody(compiled, body, context).findings) {
    const c = counts.get(f.detector) ?? { findings: 0, files: new Set<string>() };
    c.findings++;
    c.files.add(relative(root, file));
    counts.set(f.detector, c);
  }
}
console.log(`${kind}: ${files.length} files, ${(bytes / 1e6).toFixed(1)} MB\n`);
console.log('| detector | findings | files | e.g. |');
console.log('|---|---:|---:|---|');
for (const [detector, c] of [...counts].sort((a, b) => b[1].findings - a[1].findings)) {
  console.log(`| ${detector} | ${c.findings} | ${c.files.size} | ${[...c.files].slice(0, 2).join(', ')} |`);
}
