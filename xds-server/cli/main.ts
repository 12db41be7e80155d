// The `mandate` CLI: declarative config (apply/get/describe/delete), agent
// credentials and status over the admin API; other stages' commands are
// dispatched to their own modules.
import { existsSync, readFileSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { effectiveGrants, type ConfigBundle } from '../../config/bundle.ts';
import { personaPathPrefix, type Persona, type Skill, type Upstream } from '../../config/schema.ts';
import type { XdsNodeStatus } from '../ads/node-status.ts';
import type { CredentialSummary, RevisionSummary } from '../store/records.ts';
import { adminUrlFrom, createAdminClient, type AdminClient, type AdminResponse } from './admin-client.ts';
import { parseDocumentSource, type DocumentSource } from './document-source.ts';
import { formatData, formatIssue, formatTable, formatYamlDocuments, type OutputFormat } from './output.ts';

export interface CliIo {
  env: Record<string, string | undefined>;
  /** Where relative file names are resolved: the caller's directory, not the repository's. */
  cwd: string;
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  readStdin: () => Promise<string>;
}

export const exitOk = 0;
export const exitRejected = 1;
export const exitUsage = 2;

const usage = `Usage: mandate <command> [options]

Config:
  apply -f FILE|- [--prune] [--dry-run]       apply YAML (multi-document) or JSON atomically
  get personas|skills|upstreams|credentials|revisions [NAME] [-o table|json|yaml]
  describe persona NAME [-o table|json|yaml]  effective grants, endpoint, network rules, credentials
  delete persona|skill|upstream NAME
Credentials:
  credentials issue --persona P --agent A [--expires RFC3339]
  credentials revoke ID
Status:
  status [-o table|json|yaml]                 config version and per-Envoy ACK/NACK
Other stages:
  dlp ..., simulate ..., audit ..., report ...
  quarantine list | quarantine release AGENT   behaviour quarantine, asked of ext_proc

Options: --server URL (or MANDATE_ADMIN_URL, default http://127.0.0.1:18080)
Token:   MANDATE_ADMIN_TOKEN, or the file $MANDATE_DATA_DIR/admin-token (default .data/admin-token)
`;

export interface StageCommand {
  /** Module URL or path relative to this file. */
  module: string;
  /** Arguments put before the user's, so `report X` reaches the audit module as `report X`. */
  prefix: string[];
}

/** Commands other stages own; each module exports run(args): Promise<number>. `report` is `audit report`. */
const dispatchedCommands: Record<string, StageCommand> = {
  dlp: { module: '../../ext-proc/dlp/cli.ts', prefix: [] },
  simulate: { module: '../../ext-proc/sequence/cli.ts', prefix: [] },
  audit: { module: '../../ext-proc/audit/cli.ts', prefix: ['audit'] },
  report: { module: '../../ext-proc/audit/cli.ts', prefix: ['report'] },
  quarantine: { module: '../../ext-proc/sequence/quarantine-cli.ts', prefix: [] },
};

const collections = {
  personas: { kind: 'Persona', path: 'personas' },
  skills: { kind: 'Skill', path: 'skills' },
  upstreams: { kind: 'Upstream', path: 'upstreams' },
} as const;
type CollectionName = keyof typeof collections;

const kindAliases: Record<string, CollectionName | 'credentials' | 'revisions'> = {
  persona: 'personas', personas: 'personas',
  skill: 'skills', skills: 'skills',
  upstream: 'upstreams', upstreams: 'upstreams',
  credential: 'credentials', credentials: 'credentials',
  revision: 'revisions', revisions: 'revisions',
};

class UsageError extends Error {}

const globalOptions = {
  server: { type: 'string' },
  output: { type: 'string', short: 'o' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

export async function runCli(args: string[], io: CliIo): Promise<number> {
  const [command, ...rest] = args;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    io.stdout(usage);
    return command === undefined ? exitUsage : exitOk;
  }
  const dispatched = dispatchedCommands[command];
  if (dispatched) return runDispatched(command, dispatched, rest, io);
  try {
    switch (command) {
      case 'apply':
        return await applyCommand(rest, io);
      case 'get':
        return await getCommand(rest, io);
      case 'describe':
        return await describeCommand(rest, io);
      case 'delete':
        return await deleteCommand(rest, io);
      case 'credentials':
        return await credentialsCommand(rest, io);
      case 'status':
        return await statusCommand(rest, io);
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (error) {
    if (error instanceof UsageError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      io.stderr(`mandate: ${(error as Error).message}\nRun "mandate help" for usage.\n`);
      return exitUsage;
    }
    throw error;
  }
}

/** Option values by name; parseArgs (strict) guarantees each has its declared type. */
interface OptionValues {
  server?: string;
  output?: string;
  help?: boolean;
  file?: string;
  prune?: boolean;
  'dry-run'?: boolean;
  persona?: string;
  agent?: string;
  expires?: string;
  limit?: string;
}

function parse(args: string[], options: ParseArgsConfig['options']): { values: OptionValues; positionals: string[]; output: OutputFormat } {
  const parsed = parseArgs({ args, options: { ...globalOptions, ...options }, allowPositionals: true, strict: true });
  const values = parsed.values as OptionValues;
  const output = values.output;
  if (output !== undefined && output !== 'table' && output !== 'json' && output !== 'yaml') throw new UsageError(`-o must be table, json or yaml, not "${output}"`);
  return { values, positionals: parsed.positionals, output: output ?? 'table' };
}

function clientFor(values: OptionValues, io: CliIo): AdminClient {
  const server = adminUrlFrom(values.server, io.env);
  return createAdminClient({ server, env: io.env, cwd: io.cwd });
}

function reportFailure(io: CliIo, response: Extract<AdminResponse<unknown>, { ok: false }>, source?: { fileName: string | null; document: DocumentSource }): number {
  io.stderr(`error: ${response.code}: ${response.detail}\n`);
  for (const issue of response.issues) {
    io.stderr(`${formatIssue(issue, source?.fileName ?? null, source ? source.document.locate(issue.path) : null)}\n`);
  }
  return exitRejected;
}

async function applyCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(args, { file: { type: 'string', short: 'f' }, prune: { type: 'boolean' }, 'dry-run': { type: 'boolean' } });
  if (values.help) return help(io);
  if (positionals.length > 0) throw new UsageError(`apply takes no positional arguments (got "${positionals.join(' ')}")`);
  if (!values.file) throw new UsageError('apply needs -f FILE (or -f - for standard input)');
  const fromStdin = values.file === '-';
  const fileName = fromStdin ? '<stdin>' : values.file;
  let text: string;
  try {
    text = fromStdin ? await io.readStdin() : readFileSync(resolve(io.cwd, values.file), 'utf8');
  } catch (error) {
    io.stderr(`error: unreadable_file: cannot read ${fileName}: ${(error as Error).message}\n`);
    return exitRejected;
  }
  const parsed = parseDocumentSource(text);
  if (!parsed.ok) {
    io.stderr(`error: invalid_yaml: ${fileName} is not valid YAML or JSON\n`);
    for (const error of parsed.errors) io.stderr(`  ${fileName}:${error.line}:${error.column}: ${error.message}\n`);
    return exitRejected;
  }
  if (parsed.source.documents.length === 0 && !values.prune) {
    io.stderr(`error: no_documents: ${fileName} holds no documents\n`);
    return exitRejected;
  }
  const dryRun = values['dry-run'] === true;
  const response = await clientFor(values, io).request<{ version: number; changed: string[] }>('POST', '/v1/apply', {
    json: { documents: parsed.source.documents, prune: values.prune === true, dryRun },
  });
  if (!response.ok) return reportFailure(io, response, { fileName: fromStdin ? '<stdin>' : basename(values.file), document: parsed.source });
  const { version, changed } = response.body;
  if (changed.length === 0) io.stdout(`no changes (config version ${version})\n`);
  else io.stdout(`${changed.map((c) => `${dryRun ? 'would change' : 'changed'} ${c}`).join('\n')}\n${dryRun ? `dry run: would be config version ${version}; nothing applied` : `config version ${version}`}\n`);
  return exitOk;
}

async function getCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals, output } = parse(args, { persona: { type: 'string' }, limit: { type: 'string' } });
  if (values.help) return help(io);
  const [kindWord, name, ...extra] = positionals;
  const target = kindWord === undefined ? undefined : kindAliases[kindWord];
  if (!target) throw new UsageError(`get needs one of personas, skills, upstreams, credentials, revisions${kindWord ? ` (not "${kindWord}")` : ''}`);
  if (extra.length > 0) throw new UsageError(`unexpected arguments: ${extra.join(' ')}`);
  const client = clientFor(values, io);

  if (target === 'credentials') {
    const query = values.persona ? `?persona=${encodeURIComponent(values.persona)}` : '';
    const response = await client.request<{ version: number; items: CredentialSummary[] }>('GET', `/v1/credentials${query}`);
    if (!response.ok) return reportFailure(io, response);
    const items = name ? response.body.items.filter((c) => c.id === name) : response.body.items;
    if (name && items.length === 0) return reportFailure(io, { ok: false, code: 'not_found', detail: `no credential with id "${name}"`, status: 404, issues: [] });
    if (output !== 'table') io.stdout(formatData(name ? items[0] : items, output));
    else io.stdout(formatTable(['ID', 'PERSONA', 'AGENT', 'STATUS', 'CREATED', 'EXPIRES'], items.map((c) => [c.id, c.persona, c.agent, c.status, c.createdAt, c.expiresAt ?? '-'])));
    return exitOk;
  }
  if (target === 'revisions') {
    if (name) throw new UsageError('get revisions takes no name; use --limit N');
    const response = await client.request<{ version: number; items: RevisionSummary[] }>('GET', `/v1/revisions${values.limit ? `?limit=${encodeURIComponent(values.limit)}` : ''}`);
    if (!response.ok) return reportFailure(io, response);
    if (output !== 'table') io.stdout(formatData(response.body.items, output));
    else io.stdout(formatTable(['VERSION', 'CREATED', 'ACTOR', 'SUMMARY'], response.body.items.map((r) => [String(r.version), r.createdAt, r.actor, r.summary])));
    return exitOk;
  }

  const collection = collections[target];
  if (name) {
    const response = await client.request<Persona | Skill | Upstream>('GET', `/v1/${collection.path}/${encodeURIComponent(name)}`);
    if (!response.ok) return reportFailure(io, response);
    if (output === 'json') io.stdout(formatData(response.body, 'json'));
    else if (output === 'yaml') io.stdout(formatYamlDocuments([response.body]));
    else io.stdout(formatTable(...tableOf(target, [response.body])));
    return exitOk;
  }
  const response = await client.request<{ version: number; items: (Persona | Skill | Upstream)[] }>('GET', `/v1/${collection.path}`);
  if (!response.ok) return reportFailure(io, response);
  if (output === 'json') io.stdout(formatData(response.body.items, 'json'));
  else if (output === 'yaml') io.stdout(formatYamlDocuments(response.body.items));
  else if (response.body.items.length === 0) io.stdout(`no ${target} (config version ${response.body.version})\n`);
  else io.stdout(formatTable(...tableOf(target, response.body.items)));
  return exitOk;
}

function tableOf(target: CollectionName, items: (Persona | Skill | Upstream)[]): [string[], string[][]] {
  if (target === 'personas') {
    return [['NAME', 'MODE', 'ENDPOINT', 'SKILLS', 'GRANTS'], (items as Persona[]).map((p) => [p.name, p.mode, personaPathPrefix(p), p.skills.join(',') || '-', String(p.grants.length)])];
  }
  if (target === 'skills') {
    return [['NAME', 'GRANTS', 'DESCRIPTION'], (items as Skill[]).map((s) => [s.name, s.grants.map((g) => g.upstream).join(','), s.description])];
  }
  return [['NAME', 'PROTOCOL', 'ENVIRONMENT', 'AUTH', 'URL'], (items as Upstream[]).map((u) => [u.name, u.protocol, u.environment, u.auth.type, u.url])];
}

async function describeCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals, output } = parse(args, {});
  if (values.help) return help(io);
  const [kindWord, name, ...extra] = positionals;
  if (kindWord !== 'persona' && kindWord !== 'personas') throw new UsageError('describe supports: describe persona NAME');
  if (!name || extra.length > 0) throw new UsageError('describe persona needs exactly one NAME');
  const client = clientFor(values, io);
  const persona = await client.request<Persona>('GET', `/v1/personas/${encodeURIComponent(name)}`);
  if (!persona.ok) return reportFailure(io, persona);
  const [skills, upstreams, credentials] = await Promise.all([
    client.request<{ version: number; items: Skill[] }>('GET', '/v1/skills'),
    client.request<{ version: number; items: Upstream[] }>('GET', '/v1/upstreams'),
    client.request<{ version: number; items: CredentialSummary[] }>('GET', `/v1/credentials?persona=${encodeURIComponent(name)}`),
  ]);
  for (const response of [skills, upstreams, credentials]) if (!response.ok) return reportFailure(io, response);
  if (!skills.ok || !upstreams.ok || !credentials.ok) return exitRejected;

  const bundle: ConfigBundle = { upstreams: upstreams.body.items, skills: skills.body.items, personas: [persona.body] };
  const grants = effectiveGrants(persona.body, bundle);
  const prefix = personaPathPrefix(persona.body);
  const upstreamByName = new Map(upstreams.body.items.map((u) => [u.name, u]));
  const reachable = [...new Set(grants.map((g) => g.upstream))].map((upstreamName) => {
    const upstream = upstreamByName.get(upstreamName);
    return { upstream: upstreamName, path: `${prefix}/${upstreamName}`, protocol: upstream?.protocol ?? null, url: upstream?.url ?? null, environment: upstream?.environment ?? null };
  });
  const description = {
    persona: persona.body.name,
    description: persona.body.description,
    mode: persona.body.mode,
    configVersion: skills.body.version,
    endpoint: { pathPrefix: prefix, upstreams: reachable },
    network: persona.body.network,
    failOpen: persona.body.failOpen,
    skills: persona.body.skills,
    effectiveGrants: grants,
    credentials: credentials.body.items,
  };
  if (output !== 'table') {
    io.stdout(formatData(description, output));
    return exitOk;
  }
  const lines = [
    `Persona:         ${description.persona}`,
    `Description:     ${description.description}`,
    `Mode:            ${description.mode}${description.failOpen ? ' (fail open)' : ''}`,
    `Config version:  ${description.configVersion}`,
    `Endpoint:        ${prefix}`,
    ...reachable.map((r) => `  ${r.path}  ->  ${r.url ?? '(unknown upstream)'} (${r.protocol ?? '?'}, ${r.environment ?? '?'})`),
    `Network:         allow ${persona.body.network.allow.length > 0 ? persona.body.network.allow.join(', ') : 'any source'}; deny ${persona.body.network.deny.length > 0 ? persona.body.network.deny.join(', ') : 'none'}`,
    `Skills:          ${persona.body.skills.length > 0 ? persona.body.skills.join(', ') : '-'}`,
    'Effective grants:',
    ...(grants.length === 0 ? ['  (none: every call is refused)'] : grants.flatMap((g) => [
      ...g.tools.map((t) => `  ${g.upstream}  tool ${t.name}${t.when ? `  when ${t.when}` : ''}`),
      ...g.operations.map((o) => `  ${g.upstream}  ${o.method} ${o.path}${o.when ? `  when ${o.when}` : ''}`),
    ])),
    'Credentials:',
    ...(credentials.body.items.length === 0
      ? ['  (none)']
      : formatTable(['ID', 'AGENT', 'STATUS', 'CREATED', 'EXPIRES'], credentials.body.items.map((c) => [c.id, c.agent, c.status, c.createdAt, c.expiresAt ?? '-'])).trimEnd().split('\n').map((l) => `  ${l}`)),
  ];
  io.stdout(`${lines.join('\n')}\n`);
  return exitOk;
}

async function deleteCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(args, {});
  if (values.help) return help(io);
  const [kindWord, name, ...extra] = positionals;
  const target = kindWord === undefined ? undefined : kindAliases[kindWord];
  if (target !== 'personas' && target !== 'skills' && target !== 'upstreams') throw new UsageError('delete needs persona, skill or upstream');
  if (!name || extra.length > 0) throw new UsageError(`delete ${kindWord} needs exactly one NAME`);
  const response = await clientFor(values, io).request<{ version: number; changed: string[] }>('DELETE', `/v1/${target}/${encodeURIComponent(name)}`);
  if (!response.ok) return reportFailure(io, response);
  io.stdout(`deleted ${response.body.changed.join(', ')}\nconfig version ${response.body.version}\n`);
  return exitOk;
}

async function credentialsCommand(args: string[], io: CliIo): Promise<number> {
  const [action, ...rest] = args;
  if (action === 'issue') {
    const { values, positionals, output } = parse(rest, { persona: { type: 'string' }, agent: { type: 'string' }, expires: { type: 'string' } });
    if (values.help) return help(io);
    if (positionals.length > 0) throw new UsageError(`unexpected arguments: ${positionals.join(' ')}`);
    if (!values.persona || !values.agent) throw new UsageError('credentials issue needs --persona P and --agent A');
    const response = await clientFor(values, io).request<{ id: string; token: string; version: number }>('POST', `/v1/personas/${encodeURIComponent(values.persona)}/credentials`, {
      json: { agent: values.agent, ...(values.expires ? { expiresAt: values.expires } : {}) },
    });
    if (!response.ok) return reportFailure(io, response);
    if (output !== 'table') io.stdout(formatData(response.body, output));
    else io.stdout(`credential ${response.body.id} for agent ${values.agent} on persona ${values.persona} (config version ${response.body.version})\ntoken (shown once, store it now):\n${response.body.token}\n`);
    return exitOk;
  }
  if (action === 'revoke') {
    const { values, positionals } = parse(rest, {});
    if (values.help) return help(io);
    const [id, ...extra] = positionals;
    if (!id || extra.length > 0) throw new UsageError('credentials revoke needs exactly one ID');
    const response = await clientFor(values, io).request<{ version: number; changed: string[] }>('DELETE', `/v1/credentials/${encodeURIComponent(id)}`);
    if (!response.ok) return reportFailure(io, response);
    io.stdout(response.body.changed.length > 0 ? `revoked ${id}\nconfig version ${response.body.version}\n` : `${id} was already revoked\n`);
    return exitOk;
  }
  throw new UsageError('credentials needs "issue" or "revoke"');
}

async function statusCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals, output } = parse(args, {});
  if (values.help) return help(io);
  if (positionals.length > 0) throw new UsageError(`unexpected arguments: ${positionals.join(' ')}`);
  const response = await clientFor(values, io).request<{ configVersion: number; nodes: XdsNodeStatus[] }>('GET', '/v1/status');
  if (!response.ok) return reportFailure(io, response);
  if (output !== 'table') {
    io.stdout(formatData(response.body, output));
    return exitOk;
  }
  const { configVersion, nodes } = response.body;
  const rows = nodes.map((node) => {
    const types = Object.entries(node.resources);
    const nacked = types.filter(([, status]) => status.lastNack !== null);
    const behind = types.filter(([, status]) => status.ackedVersion !== status.sentVersion);
    const state = nacked.length > 0 ? `NACK ${nacked.map(([type, status]) => `${type}@${status.lastNack?.version}: ${status.lastNack?.message}`).join('; ')}` : behind.length > 0 ? `pending ${behind.map(([type]) => type).join(',')}` : 'ACK';
    return [node.nodeId, node.connected ? 'connected' : 'disconnected', node.configVersion === null ? '-' : String(node.configVersion), node.envoyVersion ?? '-', state];
  });
  io.stdout(`config version ${configVersion}\n`);
  io.stdout(nodes.length === 0 ? 'no Envoy has connected\n' : formatTable(['NODE', 'CONNECTION', 'CONFIG VERSION', 'ENVOY', 'STATE'], rows));
  return exitOk;
}

function help(io: CliIo): number {
  io.stdout(usage);
  return exitOk;
}

export async function runDispatched(command: string, target: StageCommand, args: string[], io: CliIo): Promise<number> {
  const url = new URL(target.module, import.meta.url);
  // Check the file first so an import error inside an existing module is not mistaken for "not in this build".
  if (!existsSync(url)) {
    io.stderr(`mandate: command "${command}" is not available in this build\n`);
    return exitUsage;
  }
  const module = (await import(url.href)) as { run?: (args: string[]) => Promise<number> };
  if (typeof module.run !== 'function') {
    io.stderr(`mandate: command "${command}" is not available in this build\n`);
    return exitUsage;
  }
  return module.run([...target.prefix, ...args]);
}

async function readAllStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

if (import.meta.main) {
  const io: CliIo = {
    env: process.env,
    // deploy/mandate.sh and npm run change directory to the repository; they pass the caller's along.
    cwd: process.env.MANDATE_CWD ?? process.env.INIT_CWD ?? process.cwd(),
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    readStdin: readAllStdin,
  };
  process.exitCode = await runCli(process.argv.slice(2), io);
}

