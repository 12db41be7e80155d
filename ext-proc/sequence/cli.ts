// `mandate simulate --persona <file> --traces <file.jsonl> [--upstreams <file>] [--mode enforce|monitor]
//                   [--baseline <in.json>] [--learn <out.json>] [--json]`
// The shell around simulate.ts: reads files, validates, prints. Exit 0 on a report,
// 1 when the Persona's behaviour or the traces are rejected, 2 on usage errors.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { personaSchema, upstreamSchema, type Persona, type Upstream } from '../../config/schema.ts';
import { BaselineRegistry, baselineSnapshotSchema } from './baseline.ts';
import { compileBehaviour } from './compile.ts';
import { formatReport, parseTraces, simulateTraces } from './simulate.ts';

export interface SimulateIo {
  cwd: string;
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

const processIo: SimulateIo = {
  cwd: process.cwd(),
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
};

const usage = `Usage: mandate simulate --persona FILE --traces FILE.jsonl [options]
  --persona FILE      YAML or JSON file holding the Persona document to test
  --traces FILE       recorded calls, one JSON object per line:
                      {"session","agent","ts","method":"tools/call","tool","arguments","result"?}
  --upstreams FILE    YAML/JSON Upstream documents (classification overrides, rule upstreams)
  --mode MODE         enforce or monitor: override the Persona's mode for this run
  --baseline FILE     score against this baseline snapshot
  --learn FILE        learn a baseline from the traces (as in monitor mode) and write it here
  --json              print the report as JSON
`;

function readDocuments(cwd: string, name: string): unknown[] {
  const text = readFileSync(resolve(cwd, name), 'utf8');
  return parseAllDocuments(text).flatMap((doc) => {
    if (doc.errors.length > 0) throw new Error(`${name}: ${doc.errors[0]?.message ?? 'invalid YAML'}`);
    const value: unknown = doc.toJS();
    return Array.isArray(value) ? value : value === null || value === undefined ? [] : [value];
  });
}

export async function run(args: string[], io: SimulateIo = processIo): Promise<number> {
  let options;
  try {
    options = parseArgs({
      args,
      options: {
        persona: { type: 'string' },
        traces: { type: 'string' },
        upstreams: { type: 'string' },
        mode: { type: 'string' },
        baseline: { type: 'string' },
        learn: { type: 'string' },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (error) {
    io.stderr(`mandate simulate: ${(error as Error).message}\n${usage}`);
    return 2;
  }
  if (options.help) {
    io.stdout(usage);
    return 0;
  }
  if (options.persona === undefined || options.traces === undefined) {
    io.stderr(`mandate simulate: --persona and --traces are required\n${usage}`);
    return 2;
  }
  if (options.mode !== undefined && options.mode !== 'enforce' && options.mode !== 'monitor') {
    io.stderr('mandate simulate: --mode must be enforce or monitor\n');
    return 2;
  }
  const personaPath = resolve(io.cwd, options.persona);
  if (!existsSync(personaPath)) {
    io.stderr(`mandate simulate: no file ${options.persona}; pass the Persona as a YAML or JSON file (mandate get personas NAME -o yaml > persona.yaml)\n`);
    return 2;
  }

  let persona: Persona;
  let upstreams: Upstream[] = [];
  try {
    const documents = readDocuments(io.cwd, options.persona);
    const personaDocument = documents.find((d) => (d as { kind?: unknown }).kind === 'Persona') ?? documents[0];
    const parsed = personaSchema.safeParse(personaDocument);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) io.stderr(`${options.persona}: ${issue.path.join('.') || '(document)'}: ${issue.message}\n`);
      return 1;
    }
    persona = parsed.data;
    const upstreamDocuments = [
      ...documents.filter((d) => (d as { kind?: unknown }).kind === 'Upstream'),
      ...(options.upstreams === undefined ? [] : readDocuments(io.cwd, options.upstreams)),
    ];
    for (const [index, document] of upstreamDocuments.entries()) {
      const parsedUpstream = upstreamSchema.safeParse(document);
      if (!parsedUpstream.success) {
        for (const issue of parsedUpstream.error.issues) io.stderr(`upstream document ${index + 1}: ${issue.path.join('.')}: ${issue.message}\n`);
        return 1;
      }
      upstreams.push(parsedUpstream.data);
    }
  } catch (error) {
    io.stderr(`mandate simulate: ${(error as Error).message}\n`);
    return 1;
  }
  if (options.learn !== undefined) persona = { ...persona, mode: 'monitor', behaviour: { ...(persona.behaviour ?? {}), baseline: { ...(persona.behaviour?.baseline ?? {}), learn: 'monitor' } } as never };
  else if (options.mode !== undefined) persona = { ...persona, mode: options.mode as 'enforce' | 'monitor' };
  if (persona.behaviour === undefined) persona = { ...persona, behaviour: {} as never };

  const compiled = compileBehaviour(persona, upstreams);
  if (!compiled.ok) {
    for (const issue of compiled.issues) io.stderr(`${options.persona}: ${issue.path.join('.')}: ${issue.code}: ${issue.message}\n`);
    return 1;
  }

  const baselines = new BaselineRegistry();
  if (options.baseline !== undefined) {
    try {
      const snapshot = baselineSnapshotSchema.safeParse(JSON.parse(readFileSync(resolve(io.cwd, options.baseline), 'utf8')));
      if (!snapshot.success) {
        for (const issue of snapshot.error.issues) io.stderr(`${options.baseline}: ${issue.path.join('.')}: ${issue.message}\n`);
        return 1;
      }
      baselines.import({ ...snapshot.data, persona: persona.name });
    } catch (error) {
      io.stderr(`mandate simulate: ${(error as Error).message}\n`);
      return 1;
    }
  }

  let traceText: string;
  try {
    traceText = readFileSync(resolve(io.cwd, options.traces), 'utf8');
  } catch (error) {
    io.stderr(`mandate simulate: ${(error as Error).message}\n`);
    return 2;
  }
  const traces = parseTraces(traceText);
  if (!traces.ok) {
    for (const error of traces.errors) io.stderr(`${options.traces}:${error.line}: ${error.field}: ${error.message}\n`);
    return 1;
  }

  const report = simulateTraces(persona, compiled.compiled, traces.traces, baselines);
  if (options.learn !== undefined) {
    const snapshot = baselines.export(persona.name, new Date());
    writeFileSync(resolve(io.cwd, options.learn), `${JSON.stringify(snapshot, null, 2)}\n`);
    io.stderr(`baseline for ${persona.name} (${snapshot?.observations ?? 0} calls) written to ${options.learn}\n`);
  }
  io.stdout(options.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
  return 0;
}
