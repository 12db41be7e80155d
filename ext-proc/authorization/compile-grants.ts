// A Persona's grants compiled once per config version into matchers: tool-name
// globs, path templates and planned CEL programs. Evaluation never parses.
import { celEnv, parse, plan, isCelError } from '@bufbuild/cel';
import type { ConfigIssue } from '../../config/bundle.ts';
import type { Grant } from '../../config/schema.ts';
import { compilePathTemplate, type PathTemplate } from '../rest/path-template.ts';

export type CelCondition = (bindings: Record<string, unknown>) => { ok: true; value: boolean } | { ok: false; error: string };

export interface CompiledToolGrant {
  pattern: string;
  matches: (tool: string) => boolean;
  when: CelCondition | null;
  whenSource: string | null;
}

export interface CompiledOperationGrant {
  method: string;
  path: PathTemplate;
  when: CelCondition | null;
  whenSource: string | null;
}

export interface CompiledUpstreamGrants {
  tools: CompiledToolGrant[];
  operations: CompiledOperationGrant[];
}

const env = celEnv();

export function compileCondition(source: string): CelCondition | { error: string } {
  let program: (bindings: Record<string, unknown>) => unknown;
  try {
    program = plan(env, parse(source)) as unknown as (bindings: Record<string, unknown>) => unknown;
  } catch (error) {
    return { error: (error as Error).message };
  }
  return (bindings) => {
    const result = program(bindings);
    if (isCelError(result)) return { ok: false, error: celFailure(String((result as Error).message ?? result)) };
    if (typeof result !== 'boolean') return { ok: false, error: `condition returned ${typeof result}, not a boolean` };
    return { ok: true, value: result };
  };
}

/**
 * Why a condition could not be evaluated, in words that never quote the call's values: the evaluator's
 * messages do ("Cannot convert AKIA... to a BigInt", "field not found: <a key the agent sent>",
 * a regular expression the agent sent), and the reason is recorded in the audit trail.
 */
function celFailure(message: string): string {
  if (/^field not found\b|no such key/i.test(message)) return 'a field it reads is missing';
  if (/no matching overload/i.test(message)) return 'an operator or function was given a value of another type';
  if (/regexp|regular expression/i.test(message)) return 'a value is not a valid regular expression';
  if (/convert|parse/i.test(message)) return 'a value could not be converted to the type the condition needs';
  return "the evaluator failed on this call's values";
}

/** "tickets_*" style globs without a regex engine: split on * and match pieces in order. */
export function compileToolPattern(pattern: string): (tool: string) => boolean {
  if (!pattern.includes('*')) return (tool) => tool === pattern;
  const pieces = pattern.split('*');
  const first = pieces[0]!;
  const last = pieces[pieces.length - 1]!;
  const middle = pieces.slice(1, -1);
  return (tool) => {
    if (tool.length < first.length + last.length || !tool.startsWith(first) || !tool.endsWith(last)) return false;
    let position = first.length;
    const end = tool.length - last.length;
    for (const piece of middle) {
      const found = tool.indexOf(piece, position);
      if (found < 0 || found + piece.length > end) return false;
      position = found + piece.length;
    }
    return true;
  };
}

/** Groups grants by upstream. `basePath` prefixes each issue's path (e.g. ["personas", 0, "grants"]). */
export function compileGrants(
  grants: { grant: Grant; path: (string | number)[] }[],
): { byUpstream: Map<string, CompiledUpstreamGrants>; issues: ConfigIssue[] } {
  const byUpstream = new Map<string, CompiledUpstreamGrants>();
  const issues: ConfigIssue[] = [];
  const condition = (source: string | undefined, path: (string | number)[]): CelCondition | null => {
    if (source === undefined) return null;
    const compiled = compileCondition(source);
    if ('error' in compiled) {
      issues.push({ path, code: 'invalid_condition', message: `CEL condition does not parse: ${compiled.error}` });
      return () => ({ ok: false, error: 'invalid condition' });
    }
    return compiled;
  };
  for (const { grant, path } of grants) {
    const entry = byUpstream.get(grant.upstream) ?? { tools: [], operations: [] };
    byUpstream.set(grant.upstream, entry);
    grant.tools.forEach((tool, i) =>
      entry.tools.push({ pattern: tool.name, matches: compileToolPattern(tool.name), when: condition(tool.when, [...path, 'tools', i, 'when']), whenSource: tool.when ?? null }),
    );
    grant.operations.forEach((op, i) =>
      entry.operations.push({ method: op.method, path: compilePathTemplate(op.path), when: condition(op.when, [...path, 'operations', i, 'when']), whenSource: op.when ?? null }),
    );
  }
  return { byUpstream, issues };
}
