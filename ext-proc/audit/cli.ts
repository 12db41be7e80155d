// `mandate audit verify|query|export|tail` and `mandate report`: read-only
// commands over an audit directory, safe to run while the gateway writes to it.
import { createWriteStream, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { auditFilterSchema, queryAuditEvents, type AuditFilter } from './query.ts';
import { buildIncidentReport, renderIncidentReportHtml } from './report.ts';
import { exportJsonl, tailAuditEvents } from './export.ts';
import { databaseFile, openAuditStore } from './store.ts';
import { verifyAuditDirectory } from './verify.ts';

export interface CliIo {
  out: (text: string) => void;
  err: (text: string) => void;
  env: Record<string, string | undefined>;
  /** Aborts `audit tail`. */
  signal?: AbortSignal;
}

const defaultIo: CliIo = { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t), env: process.env };

export const usage = `usage:
  mandate audit verify [--dir D] [--public-key FILE] [--json]
  mandate audit query  [FILTERS] [--limit N] [--cursor C] [--oldest] [--json]
  mandate audit export [FILTERS] [--out FILE]
  mandate audit tail   [FILTERS] [--after-seq N] [--interval-ms N]
  mandate report --agent ID --from TIME --to TIME [--out DIR]
FILTERS: --agent --user --persona --tool --verdict allow|deny --kind decision|response|admin|alert --session --request --from TIME --to TIME
TIME: ISO 8601 (2026-11-21T18:00:00Z) or milliseconds since the epoch.
The audit directory defaults to $MANDATE_DATA_DIR/audit ($MANDATE_DATA_DIR defaults to .data in the repository).
`;

const options = {
  dir: { type: 'string' },
  'public-key': { type: 'string' },
  json: { type: 'boolean' },
  agent: { type: 'string' },
  user: { type: 'string' },
  persona: { type: 'string' },
  tool: { type: 'string' },
  verdict: { type: 'string' },
  kind: { type: 'string' },
  session: { type: 'string' },
  request: { type: 'string' },
  from: { type: 'string' },
  to: { type: 'string' },
  limit: { type: 'string' },
  cursor: { type: 'string' },
  oldest: { type: 'boolean' },
  out: { type: 'string' },
  'after-seq': { type: 'string' },
  'interval-ms': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

class UsageError extends Error {}

export function defaultAuditDirectory(env: Record<string, string | undefined>): string {
  return join(env['MANDATE_DATA_DIR'] ?? resolve(import.meta.dirname, '..', '..', '.data'), 'audit');
}

export function parseTime(value: string, flag: string): number {
  if (/^\d+$/.test(value)) return Number(value);
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) throw new UsageError(`--${flag}: "${value}" is not an ISO 8601 time or milliseconds since the epoch`);
  return ms;
}

/** Entry point for the main CLI: args start at "audit" or "report". Returns the exit code. */
export async function run(args: string[], io: CliIo = defaultIo): Promise<number> {
  try {
    return await dispatch(args, io);
  } catch (error) {
    if (error instanceof UsageError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      io.err(`mandate: ${(error as Error).message}\n${usage}`);
      return 2;
    }
    io.err(`mandate: ${(error as Error).message}\n`);
    return 1;
  }
}

async function dispatch(args: string[], io: CliIo): Promise<number> {
  const [group, command, ...rest] = args;
  const commandName = group === 'report' ? 'report' : command;
  const parsed = parseArgs({ args: group === 'report' ? args.slice(1) : rest, options, allowPositionals: false, strict: true }).values;
  if (parsed.help || !commandName || (group !== 'audit' && group !== 'report')) {
    io.out(usage);
    return parsed.help ? 0 : 2;
  }
  const directory = parsed.dir ?? defaultAuditDirectory(io.env);
  if (!existsSync(join(directory, databaseFile))) throw new Error(`no audit trail at ${directory} (set --dir or MANDATE_DATA_DIR)`);

  if (commandName === 'verify') {
    const result = verifyAuditDirectory(directory, parsed['public-key'] ? { publicKeyPath: parsed['public-key'] } : {});
    if (parsed.json) io.out(`${JSON.stringify(result, null, 2)}\n`);
    else if (result.ok) io.out(`ok: ${result.recordsChecked} records, ${result.checkpointsVerified} signed checkpoints, ${result.archivesVerified} archive segments verified (public key: ${result.keySource}); chain ends at record ${result.head.seq}\n`);
    else io.out(`TAMPERED: first bad record ${result.firstBad!.seq} (${result.firstBad!.code}): ${result.firstBad!.message}\n${result.recordsChecked} records verified before it\n`);
    for (const warning of result.warnings) io.err(`warning: ${warning}\n`);
    return result.ok ? 0 : 1;
  }

  const filter = filterFrom(parsed);
  const store = openAuditStore(join(directory, databaseFile), { readonly: true });
  try {
    switch (commandName) {
      case 'query': {
        const page = queryAuditEvents(store, filter, {
          limit: parsed.limit ? Number(parsed.limit) : 50,
          order: parsed.oldest ? 'oldest' : 'newest',
          ...(parsed.cursor ? { cursor: parsed.cursor } : {}),
        });
        if (parsed.json) io.out(`${JSON.stringify(page, null, 2)}\n`);
        else {
          for (const e of page.events) {
            io.out(`${e.seq}\t${new Date(e.at).toISOString()}\t${e.kind}\t${e.agent ?? '-'}\t${e.persona ?? '-'}\t${e.tool ?? e.admin?.action ?? e.alert?.name ?? '-'}\t${e.verdict ?? '-'}\t${e.reasons.map((r) => r.code).join(',') || '-'}\n`);
          }
          if (page.nextCursor) io.err(`more: --cursor ${page.nextCursor}\n`);
        }
        return 0;
      }
      case 'export': {
        const lines = exportJsonl(store, filter);
        if (!parsed.out) {
          for (const line of lines) io.out(line);
          return 0;
        }
        const file = createWriteStream(parsed.out);
        let count = 0;
        for (const line of lines) {
          count += 1;
          if (!file.write(line)) await once(file, 'drain');
        }
        file.end();
        await once(file, 'finish');
        io.err(`exported ${count} events to ${parsed.out}\n`);
        return 0;
      }
      case 'tail': {
        const controller = new AbortController();
        const signal = io.signal ?? controller.signal;
        const stop = () => controller.abort();
        process.once('SIGINT', stop);
        try {
          const afterSeq = parsed['after-seq'] !== undefined ? Number(parsed['after-seq']) : store.head().seq;
          await tailAuditEvents(store, filter, { afterSeq, intervalMs: Number(parsed['interval-ms'] ?? 500), signal, onLine: io.out });
        } finally {
          process.off('SIGINT', stop);
        }
        return 0;
      }
      case 'report': {
        if (!parsed.agent || !parsed.from || !parsed.to) throw new UsageError('report needs --agent, --from and --to');
        const fromMs = parseTime(parsed.from, 'from');
        const toMs = parseTime(parsed.to, 'to');
        if (toMs <= fromMs) throw new UsageError('--to must be after --from');
        const report = buildIncidentReport(store, { agent: parsed.agent, fromMs, toMs, nowMs: Date.now() });
        const out = parsed.out ?? `report-${parsed.agent.replace(/[^A-Za-z0-9_.-]/g, '_')}-${new Date(fromMs).toISOString().slice(0, 10)}`;
        mkdirSync(out, { recursive: true });
        writeFileSync(join(out, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
        writeFileSync(join(out, 'report.html'), renderIncidentReportHtml(report));
        io.out(`${join(out, 'report.html')}\n${join(out, 'report.json')}\n`);
        return 0;
      }
      default:
        throw new UsageError(`unknown command "${args.slice(0, 2).join(' ')}"`);
    }
  } finally {
    store.close();
  }
}

function filterFrom(parsed: Record<string, string | boolean | undefined>): AuditFilter {
  const text = (key: string) => (typeof parsed[key] === 'string' ? (parsed[key] as string) : undefined);
  const from = text('from');
  const to = text('to');
  const result = auditFilterSchema.safeParse({
    agent: text('agent'),
    user: text('user'),
    persona: text('persona'),
    tool: text('tool'),
    verdict: text('verdict'),
    kind: text('kind'),
    sessionId: text('session'),
    requestId: text('request'),
    fromMs: from !== undefined ? parseTime(from, 'from') : undefined,
    toMs: to !== undefined ? parseTime(to, 'to') : undefined,
  });
  if (!result.success) throw new UsageError(result.error.issues.map((i) => `--${String(i.path[0])}: ${i.message}`).join('; '));
  return result.data;
}
