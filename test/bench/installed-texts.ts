// Texts of the installed packages (node_modules; package-lock.json fixes them) as benchmark bodies
// that the engine meets for the first time: no two alike, in a fixed shuffled order.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** Files under node_modules whose names match, of more than minBytes and under 100 KB (stdnum's left out: it lists identifiers). */
export function installedFiles(pattern: RegExp, minBytes: number): string[] {
  const found: string[] = [];
  const walk = (dir: string, depth: number) => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      const stat = statSync(path, { throwIfNoEntry: false });
      if (stat?.isDirectory() && depth < 6) walk(path, depth + 1);
      else if (stat?.isFile() && pattern.test(name) && stat.size > minBytes && stat.size < 100_000 && !path.includes('stdnum')) found.push(path);
    }
  };
  walk('node_modules', 0);
  // a fixed shuffle, so that no package's files come together
  let seed = 7;
  for (let i = found.length - 1; i > 0; i--) {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    const j = seed % (i + 1);
    [found[i], found[j]] = [found[j]!, found[i]!];
  }
  return found;
}

/** The files' texts, each once, up to limitBytes: as MCP tool results, or as they are. */
export function distinctBodies(paths: string[], limitBytes: number, asToolResult: boolean): Buffer[] {
  const seen = new Set<string>();
  const out: Buffer[] = [];
  let total = 0;
  for (const path of paths) {
    const text = readFileSync(path, 'utf8');
    if (seen.has(text)) continue;
    seen.add(text);
    const body = Buffer.from(asToolResult ? JSON.stringify({ jsonrpc: '2.0', id: 1, result: { content: [{ type: 'text', text }] } }) : text);
    out.push(body);
    total += body.length;
    if (total > limitBytes) break;
  }
  return out;
}

/** Distinct slices of `chars` characters of the installed docs and sources, up to `count` of them. */
export function installedTextSlices(chars: number, count: number): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const path of installedFiles(/\.(md|js|ts|txt)$/, 2000)) {
    const text = readFileSync(path, 'utf8');
    for (let at = 0; at + chars <= text.length && out.length < count; at += chars) {
      const slice = text.slice(at, at + chars);
      if (seen.has(slice)) continue;
      seen.add(slice);
      out.push(slice);
    }
    if (out.length >= count) break;
  }
  return out;
}
