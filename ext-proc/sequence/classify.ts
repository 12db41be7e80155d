// Tool classes and risk tiers. Every call the behaviour stage sees gets one class
// (read, write, destructive, egress, admin) so rules can speak in classes.
// Precedence: the admin's override on the Upstream, then MCP annotations, then
// the HTTP method, then words in the tool name, then words in its description.
import type { ToolClass, Upstream } from '../../config/schema.ts';

export type RiskTier = 'low' | 'medium' | 'high' | 'critical';

export interface ToolClassification {
  toolClass: ToolClass;
  risk: RiskTier;
  /** What decided the class, for alerts and docs. */
  source: 'override' | 'annotations' | 'http-method' | 'name' | 'description' | 'default';
}

/** MCP tool annotations as a server reports them in tools/list. */
export interface ToolAnnotations {
  readOnlyHint?: boolean;
  destructiveHint?: boolean;
  idempotentHint?: boolean;
  openWorldHint?: boolean;
}

export interface ToolDescriptor {
  /** MCP tool name, or "METHOD /path/template" for a REST operation. */
  tool: string;
  description?: string;
  annotations?: ToolAnnotations;
}

const DEFAULT_RISK: Record<ToolClass, RiskTier> = {
  read: 'low',
  write: 'medium',
  egress: 'high',
  destructive: 'high',
  admin: 'critical',
};

// Most severe first: a name with both "get" and "delete" is destructive.
const WORD_CLASSES: [ToolClass, ReadonlySet<string>][] = [
  ['admin', new Set(['admin', 'grant', 'revoke', 'role', 'roles', 'permission', 'permissions', 'sudo', 'iam', 'acl', 'impersonate', 'credential', 'credentials', 'secret', 'secrets', 'policy', 'policies'])],
  ['destructive', new Set(['delete', 'remove', 'drop', 'destroy', 'purge', 'wipe', 'truncate', 'erase', 'kill', 'terminate', 'rm', 'unlink', 'revert', 'reset', 'format'])],
  ['egress', new Set(['send', 'email', 'mail', 'publish', 'upload', 'webhook', 'share', 'notify', 'message', 'slack', 'sms', 'export', 'tweet', 'post', 'forward', 'transfer', 'http', 'request', 'curl'])],
  ['write', new Set(['create', 'update', 'write', 'set', 'put', 'patch', 'insert', 'add', 'edit', 'modify', 'save', 'move', 'rename', 'assign', 'close', 'open', 'comment', 'append', 'upsert', 'commit', 'merge', 'apply', 'run', 'exec', 'execute'])],
  ['read', new Set(['get', 'list', 'read', 'search', 'query', 'find', 'fetch', 'describe', 'show', 'view', 'lookup', 'count', 'download', 'status', 'check', 'browse', 'cat', 'ls'])],
];

/** Splits "tickets.getById", "send_email", "GET /a/b" into lower-case words. */
export function toolWords(text: string): string[] {
  return text
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter((w) => w.length > 0);
}

function classFromWords(words: readonly string[]): ToolClass | null {
  for (const [toolClass, vocabulary] of WORD_CLASSES) {
    // "lists", "deletes": descriptions use the third person.
    if (words.some((w) => vocabulary.has(w) || (w.length > 3 && w.endsWith('s') && vocabulary.has(w.slice(0, -1))))) return toolClass;
  }
  return null;
}

function classFromHttpMethod(method: string): ToolClass | null {
  switch (method) {
    case 'GET':
    case 'HEAD':
    case 'OPTIONS':
      return 'read';
    case 'POST':
    case 'PUT':
    case 'PATCH':
      return 'write';
    case 'DELETE':
      return 'destructive';
    default:
      return null;
  }
}

/**
 * Classifies one tool or REST operation. Pure; the compiled behaviour memoises it per tool.
 * An upstream in the "external" environment turns writes into egress: data leaves.
 */
export function classifyTool(descriptor: ToolDescriptor, upstream?: Pick<Upstream, 'classifications' | 'environment' | 'protocol'>): ToolClassification {
  const override = upstream?.classifications.find((c) => c.tool === descriptor.tool);
  if (override) return { toolClass: override.class, risk: override.risk ?? DEFAULT_RISK[override.class], source: 'override' };

  const external = upstream?.environment === 'external';
  const finish = (toolClass: ToolClass, source: ToolClassification['source']): ToolClassification => {
    const effective: ToolClass = external && toolClass === 'write' ? 'egress' : toolClass;
    return { toolClass: effective, risk: DEFAULT_RISK[effective], source };
  };

  const hints = descriptor.annotations;
  if (hints) {
    if (hints.readOnlyHint === true) {
      // A read-only tool that reaches the open world still carries data out in its query.
      return hints.openWorldHint === true ? { toolClass: 'read', risk: 'medium', source: 'annotations' } : finish('read', 'annotations');
    }
    if (hints.destructiveHint === true) return finish('destructive', 'annotations');
    if (hints.openWorldHint === true) return finish('egress', 'annotations');
  }

  const restMatch = /^([A-Z]+) (\/.*)$/.exec(descriptor.tool);
  if (restMatch) {
    const fromMethod = classFromHttpMethod(restMatch[1] ?? '');
    // Names in the path can make a POST more specific ("POST /messages/send" is egress).
    const fromPath = classFromWords(toolWords(restMatch[2] ?? ''));
    if (fromPath === 'admin' || fromPath === 'egress') return finish(fromPath, 'name');
    if (fromMethod) return finish(fromMethod, 'http-method');
  }

  const fromName = classFromWords(toolWords(descriptor.tool));
  if (fromName) return finish(fromName, 'name');
  if (descriptor.description) {
    const fromDescription = classFromWords(toolWords(descriptor.description));
    if (fromDescription) return finish(fromDescription, 'description');
  }
  // Unknown tools are treated as writes: not the worst class, but never "read".
  return finish('write', 'default');
}
