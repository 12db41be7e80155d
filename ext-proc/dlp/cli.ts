// `mandate dlp catalogue [--group G] [--profile P] [--json]` and `mandate dlp scan <file.json>`.
// The main CLI dispatches here with the arguments after "dlp".
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { selectDetectors } from './catalogue.ts';
import { compileDataProtection } from './compile.ts';
import { inspectJson, inspectText } from './inspect.ts';

const usage = 'usage: mandate dlp catalogue [--group <group>] [--profile <profile>] [--json] | mandate dlp scan <file.json>';

export async function run(args: string[], out: (line: string) => void = (l) => process.stdout.write(l + '\n')): Promise<number> {
  const [command, ...rest] = args;
  if (command === 'catalogue') {
    let parsed: { group?: string; profile?: string; json?: boolean };
    try {
      parsed = parseArgs({ args: rest, options: { group: { type: 'string' }, profile: { type: 'string' }, json: { type: 'boolean' } }, allowPositionals: false, strict: true }).values;
    } catch {
      out(usage);
      return 2;
    }
    const selected = selectDetectors({ group: parsed.group ?? null, profile: parsed.profile ?? null });
    if (!selected.ok) {
      out(`mandate dlp catalogue: ${selected.message}`);
      return 2;
    }
    const detectors = selected.detectors;
    if (parsed.json) {
      out(JSON.stringify(detectors, null, 2));
      return 0;
    }
    out('| id | group | data class | validation | needs context | description |');
    out('|---|---|---|---|---|---|');
    for (const d of detectors) out(`| ${d.id} | ${d.group} | ${d.dataClass} | ${d.validation} | ${d.requiresContext ? 'yes' : 'no'} | ${d.description.replace(/\|/g, '/')} |`);
    out(`\n${detectors.length} detectors`);
    return 0;
  }
  if (command === 'scan') {
    const file = rest.find((a) => !a.startsWith('--'));
    if (!file) {
      out('usage: mandate dlp scan <file.json>');
      return 2;
    }
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      out(`cannot read ${file}: ${e instanceof Error ? e.message : String(e)}`);
      return 2;
    }
    const compiled = compileDataProtection({ defaultAction: 'detect' } as never);
    const context = { direction: 'response' as const, upstream: 'cli' };
    let findings;
    try {
      findings = inspectJson(compiled, JSON.parse(text) as unknown, context).findings;
    } catch {
      findings = inspectText(compiled, text, context).findings;
    }
    for (const f of findings) out(`${f.location}\t${f.detector}\t${f.group}\tconfidence ${f.confidence}`);
    out(`${findings.length} finding(s)`);
    return findings.length > 0 ? 1 : 0;
  }
  out(usage);
  return 2;
}
