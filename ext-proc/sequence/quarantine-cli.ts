// `mandate quarantine list|release AGENT`: the quarantine list lives in ext_proc
// (shared between replicas when NATS is on), so the CLI asks ext_proc directly,
// with the internal token.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const usage = `Usage: mandate quarantine list [--ext-proc URL] [--json]
       mandate quarantine release AGENT [--ext-proc URL]
ext_proc's URL: --ext-proc, else MANDATE_EXT_PROC_URL, else http://127.0.0.1:9003.
Token: MANDATE_INTERNAL_TOKEN, else the file $MANDATE_DATA_DIR/internal-token (default .data).
`;

export async function run(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args, allowPositionals: true, options: { 'ext-proc': { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } });
  } catch (error) {
    process.stderr.write(`mandate quarantine: ${(error as Error).message}\n${usage}`);
    return 2;
  }
  const [verb, agent, ...extra] = parsed.positionals;
  if (parsed.values.help) {
    process.stdout.write(usage);
    return 0;
  }
  if ((verb !== 'list' && verb !== 'release') || (verb === 'release' && !agent) || (verb === 'list' && agent) || extra.length > 0) {
    process.stderr.write(usage);
    return 2;
  }
  const baseUrl = (parsed.values['ext-proc'] ?? process.env.MANDATE_EXT_PROC_URL ?? 'http://127.0.0.1:9003').replace(/\/$/, '');
  let token = process.env.MANDATE_INTERNAL_TOKEN;
  if (!token) {
    const file = join(resolve(process.env.MANDATE_DATA_DIR ?? '.data'), 'internal-token');
    try {
      token = readFileSync(file, 'utf8').trim();
    } catch {
      process.stderr.write(`error: no_internal_token: set MANDATE_INTERNAL_TOKEN or create ${file}\n`);
      return 1;
    }
  }
  const url = verb === 'list' ? `${baseUrl}/v1/quarantine` : `${baseUrl}/v1/quarantine/${encodeURIComponent(agent!)}`;
  let response: Response;
  try {
    response = await fetch(url, { method: verb === 'list' ? 'GET' : 'DELETE', headers: { authorization: `Bearer ${token}` } });
  } catch (error) {
    process.stderr.write(`error: connection_failed: ext_proc is not reachable at ${baseUrl} (${(error as Error).message})\n`);
    return 1;
  }
  const body = (await response.json().catch(() => null)) as Record<string, any> | null;
  if (!response.ok) {
    process.stderr.write(`error: ${body?.code ?? 'bad_response'}: ${body?.title ?? `HTTP ${response.status}`}\n`);
    return 1;
  }
  if (verb === 'release') {
    process.stdout.write(`released ${agent}\n`);
    return 0;
  }
  const agents = (body?.agents ?? []) as { agent: string; persona: string; since: string; reason: { code: string; message: string } }[];
  if (parsed.values.json) {
    process.stdout.write(`${JSON.stringify(agents, null, 2)}\n`);
  } else if (agents.length === 0) {
    process.stdout.write('no agent is quarantined\n');
  } else {
    for (const a of agents) process.stdout.write(`${a.agent}\t${a.persona}\t${a.since}\t${a.reason.code}: ${a.reason.message}\n`);
  }
  return 0;
}
