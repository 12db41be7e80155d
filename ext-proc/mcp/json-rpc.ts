// JSON-RPC 2.0 as MCP uses it over Streamable HTTP: parsing a POST body into
// messages (a batch is allowed in protocol 2025-03-26), and building the
// error responses Mandate answers with. Error codes are documented in docs/errors.md.

import { jsonNestingExceeds, maxJsonNestingDepth } from '../json-nesting.ts';

export type JsonRpcId = string | number | null;

export type JsonRpcMessage =
  | { type: 'request'; id: string | number; method: string; params: unknown }
  | { type: 'notification'; method: string; params: unknown }
  | { type: 'response'; id: JsonRpcId; result?: unknown; error?: unknown };

export type ParsedBody =
  /** `raw` holds each message as sent, in the same order: members the parsed message does not name are still in it. */
  | { ok: true; batch: boolean; messages: JsonRpcMessage[]; raw: Record<string, unknown>[] }
  | { ok: false; code: number; mandateCode: string; message: string };

/** JSON-RPC codes Mandate uses: the standard ones, and -32001 for a policy refusal. */
export const jsonRpcCodes = {
  parseError: -32700,
  invalidRequest: -32600,
  invalidParams: -32602,
  policyDenied: -32001,
  unauthenticated: -32002,
  unavailable: -32003,
} as const;

export function parseJsonRpcBody(body: Buffer, allowBatch: boolean): ParsedBody {
  if (jsonNestingExceeds(body)) {
    return { ok: false, code: jsonRpcCodes.invalidRequest, mandateCode: 'json_too_deep', message: `the body nests objects and arrays more than ${maxJsonNestingDepth} deep` };
  }
  const text = body.toString('utf8');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return { ok: false, code: jsonRpcCodes.parseError, mandateCode: 'invalid_json', message: notJsonMessage(error, text) };
  }
  if (Array.isArray(value)) {
    if (!allowBatch) return { ok: false, code: jsonRpcCodes.invalidRequest, mandateCode: 'batch_not_supported', message: 'JSON-RPC batches are only allowed in MCP protocol version 2025-03-26' };
    if (value.length === 0) return { ok: false, code: jsonRpcCodes.invalidRequest, mandateCode: 'empty_batch', message: 'a JSON-RPC batch must not be empty' };
    const messages: JsonRpcMessage[] = [];
    for (const [index, item] of value.entries()) {
      const parsed = parseMessage(item);
      if (typeof parsed === 'string') return { ok: false, code: jsonRpcCodes.invalidRequest, mandateCode: 'invalid_json_rpc', message: `batch item ${index}: ${parsed}` };
      messages.push(parsed);
    }
    return { ok: true, batch: true, messages, raw: value as Record<string, unknown>[] };
  }
  const parsed = parseMessage(value);
  if (typeof parsed === 'string') return { ok: false, code: jsonRpcCodes.invalidRequest, mandateCode: 'invalid_json_rpc', message: parsed };
  return { ok: true, batch: false, messages: [parsed], raw: [value as Record<string, unknown>] };
}

/**
 * Why a body is not JSON, in words of our own: the parser's message quotes the body around the fault,
 * and the refusal is recorded in the audit trail. Only the position is taken from it (V8 gives one for
 * most faults: "... in JSON at position 42 ..."), or the end of the text when the input ran out.
 */
function notJsonMessage(error: unknown, text: string): string {
  const parserMessage = (error as Error)?.message ?? '';
  const position = /\bat position (\d+)\b/.exec(parserMessage)?.[1] ?? (/end of JSON input/.test(parserMessage) ? String(text.length) : undefined);
  return position === undefined ? 'the body is not valid JSON' : `the body is not valid JSON (at character ${position})`;
}

/**
 * What a message carries besides the part the stages inspect already (a tool call's arguments, another
 * request's params, a response's result or error): its id, its method, any other member, and the rest
 * of a tool call's params (its `name`, `_meta`...). The id, the method and the name are inspected too
 * (they are data the agent sends) but never masked: a value in them refuses the message (the
 * processor's withEnvelopeProtection). Without `jsonrpc`. Null when there is nothing else.
 */
export function envelopeOf(raw: Record<string, unknown>, message: JsonRpcMessage): Record<string, unknown> | null {
  const envelope: [string, unknown][] = [];
  for (const [key, value] of Object.entries(raw)) {
    if (key === 'jsonrpc') continue;
    if (message.type === 'response' && (key === 'result' || key === 'error')) continue;
    if (key === 'params') {
      if (message.type === 'response' || message.method !== 'tools/call' || value === null || typeof value !== 'object' || Array.isArray(value)) continue;
      const rest = Object.entries(value as Record<string, unknown>).filter(([k]) => k !== 'arguments');
      if (rest.length > 0) envelope.push(['params', Object.fromEntries(rest)]);
      continue;
    }
    envelope.push([key, value]);
  }
  return envelope.length === 0 ? null : Object.fromEntries(envelope);
}

/** Puts an envelope's (masked) members back into the message as sent: its params' members into its params. */
export function withEnvelope(raw: Record<string, unknown>, envelope: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(envelope)) {
    if (key === 'params') for (const [name, member] of Object.entries(value as Record<string, unknown>)) setOwn(raw.params as Record<string, unknown>, name, member);
    else setOwn(raw, key, value);
  }
}

/** Sets an own member, "__proto__" included (an assignment would set the prototype instead). */
function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

function parseMessage(value: unknown): JsonRpcMessage | string {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return 'a JSON-RPC message must be an object';
  const m = value as Record<string, unknown>;
  if (m.jsonrpc !== '2.0') return 'jsonrpc must be "2.0"';
  const hasId = 'id' in m;
  if (hasId && !(typeof m.id === 'string' || typeof m.id === 'number' || m.id === null)) return 'id must be a string, a number or null';
  if ('method' in m) {
    if (typeof m.method !== 'string' || m.method.length === 0) return 'method must be a non-empty string';
    if ('params' in m && (m.params === null || typeof m.params !== 'object')) return 'params must be an object or an array';
    if (!hasId) return { type: 'notification', method: m.method, params: m.params };
    if (m.id === null) return 'a request id must not be null';
    return { type: 'request', id: m.id as string | number, method: m.method, params: m.params };
  }
  if (hasId && ('result' in m || 'error' in m)) return { type: 'response', id: m.id as JsonRpcId, ...('result' in m ? { result: m.result } : { error: m.error }) };
  return 'not a JSON-RPC request, notification or response';
}

export function jsonRpcError(id: JsonRpcId, code: number, message: string, data: Record<string, unknown>): Record<string, unknown> {
  return { jsonrpc: '2.0', id, error: { code, message, data } };
}

/** The tool name of a tools/call, or undefined. */
export function toolNameOf(params: unknown): string | undefined {
  const name = (params as { name?: unknown } | undefined)?.name;
  return typeof name === 'string' ? name : undefined;
}

/**
 * The arguments of a tools/call: an object, {} when there are none, or null when `params.arguments`
 * is there but is not an object (a string, an array, a number, null). MCP defines the arguments as
 * an object; what is not one is refused (invalid_params), never read as {} and forwarded unread.
 */
export function toolArgumentsOf(params: unknown): Record<string, unknown> | null {
  if (params === null || typeof params !== 'object' || !Object.hasOwn(params, 'arguments')) return {};
  const args = (params as { arguments: unknown }).arguments;
  return args !== null && typeof args === 'object' && !Array.isArray(args) ? (args as Record<string, unknown>) : null;
}

/** Why a tools/call's arguments are malformed (stable code invalid_params), or null when they are an object or absent. */
export function toolArgumentsProblem(params: unknown): string | null {
  if (toolArgumentsOf(params) !== null) return null;
  const args = (params as { arguments: unknown }).arguments;
  const kind = args === null ? 'null' : Array.isArray(args) ? 'an array' : `a ${typeof args}`;
  return `tools/call params.arguments must be an object (or absent), not ${kind}`;
}

/**
 * What a JSON-RPC body asks for or answers, message by message: kind, id,
 * method and the names authorization reads (a tool's or prompt's name, a
 * resource's URI). Two bodies with the same identity are the same exchange,
 * whatever their arguments or results say.
 */
function exchangeIdentity(body: Buffer): string[] | null {
  const parsed = parseJsonRpcBody(body, true);
  if (!parsed.ok) return null;
  return parsed.messages.map((m) => {
    if (m.type === 'response') return JSON.stringify(['response', m.id]);
    const params = m.params as { name?: unknown; uri?: unknown } | undefined;
    const names = [typeof params?.name === 'string' ? params.name : null, typeof params?.uri === 'string' ? params.uri : null];
    return JSON.stringify(m.type === 'request' ? ['request', m.id, m.method, ...names] : ['notification', m.method, ...names]);
  });
}

/**
 * Why a rewritten MCP body (an external DLP's) is not the exchange that was
 * authorized, or null when it is: it must still be JSON-RPC, with the same
 * messages in the same order, the same ids, methods, and tool, prompt and
 * resource names. Only arguments and results may change.
 */
export function rewriteChangesExchange(authorized: Buffer, rewritten: Buffer): string | null {
  const before = exchangeIdentity(authorized);
  if (before === null) return null; // nothing JSON-RPC to hold it to
  const after = exchangeIdentity(rewritten);
  if (after === null) return 'the rewritten body is not a JSON-RPC message';
  if (after.length !== before.length) return `the rewritten body has ${after.length} messages where ${before.length} were authorized`;
  for (let i = 0; i < before.length; i++) {
    if (after[i] !== before[i]) return `the rewritten body changes message ${i + 1} (its id, method or the name it calls)`;
  }
  return null;
}
