// The control plane's admin REST API. Everything under /v1 needs the admin
// token; /internal/v1 serves ext_proc replicas with the internal token and is
// the only place resolved upstream secrets leave the control plane.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { parseAllDocuments } from 'yaml';
import type { PolicySnapshot } from '../../config/bundle.ts';
import type { ConfigDocument, ConfigKind } from '../../config/schema.ts';
import type { XdsNodeStatus } from '../ads/node-status.ts';
import type { ReplicationStatus } from './api-schemas.ts';
import { renderControlPlaneMetrics } from './metrics.ts';
import type { ConfigEditor } from '../store/config-store.ts';
import { credentialRequestSchema } from '../store/records.ts';
import { applyRequestSchema } from './api-schemas.ts';
import { maskSecrets } from './masking.ts';
import { buildOpenApiDocument, configCollections } from './openapi.ts';
import { problem, problemForIssues, replicationRefusal, sendProblem, type ProblemCode } from './problems.ts';
import { identifyAdmin, type NamedAdmin } from './admin-identities.ts';
import { tokenMatches } from './tokens.ts';

export const maxBodyBytes = 1024 * 1024;
const defaultHeartbeatMs = 15_000;
/** A stream reader this far behind is dropped; it reconnects and gets a fresh snapshot. */
const maxStreamBacklogBytes = 32 * 1024 * 1024;

export interface AdminServerOptions {
  /** The store (embedded) or the replicated store (scaled out over NATS). */
  store: ConfigEditor;
  /** Bearer token for /v1/* (the role admin; its holder names themself with x-mandate-actor). */
  adminToken: string;
  /** Named admins with their own tokens and roles (MANDATE_ADMIN_TOKENS_FILE); the current list on each call. */
  namedAdmins?: () => readonly NamedAdmin[];
  /** Bearer token for /internal/v1/*, used by ext_proc replicas. */
  internalToken: string;
  xdsStatus: () => XdsNodeStatus[];
  /** Scaled out: the replication state shown in /v1/status. */
  replicationStatus?: () => ReplicationStatus;
  log?: (line: string) => void;
  /** Serve HTTPS with this key pair (MANDATE_ADMIN_TLS_*): the policy stream carries upstream credentials. */
  tls?: { cert: Buffer; key: Buffer };
  /** Interval of {"heartbeat":true} lines on the policy stream; 15 s unless set (tests shorten it). */
  heartbeatMs?: number;
}

type Reply = { status: number; body: unknown; headers?: Record<string, string> } | { problem: ReturnType<typeof problem>; headers?: Record<string, string> };

class RequestProblem extends Error {
  readonly code: ProblemCode;
  readonly issues: { path: (string | number)[]; code: string; message: string }[] | undefined;
  constructor(code: ProblemCode, detail: string, issues?: { path: (string | number)[]; code: string; message: string }[]) {
    super(detail);
    this.code = code;
    this.issues = issues;
  }
}

const kindOfCollection = new Map<string, ConfigKind>(configCollections.map((c) => [c.path, c.kind]));

export function createAdminServer(options: AdminServerOptions): Server {
  const { store, log } = options;
  const openApiText = JSON.stringify(buildOpenApiDocument());
  const openStreams = new Set<() => void>();

  const adminResponses = new Map<string, { method: string; status: number; count: number }>();
  const countResponse = (method: string, status: number) => {
    // Methods outside HTTP's usual set share one label, so a client cannot grow the label space.
    const label = ['GET', 'PUT', 'POST', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS'].includes(method) ? method : 'OTHER';
    const key = `${label} ${status}`;
    const entry = adminResponses.get(key);
    if (entry) entry.count += 1;
    else adminResponses.set(key, { method: label, status, count: 1 });
  };

  const handler = (request: IncomingMessage, response: ServerResponse) => {
    const started = performance.now();
    response.on('finish', () => {
      countResponse(request.method ?? 'OTHER', response.statusCode);
      log?.(`admin ${request.method} ${request.url?.split('?')[0]} ${response.statusCode} ${(performance.now() - started).toFixed(1)}ms`);
    });
    handle(request, response).catch((error: unknown) => {
      if (error instanceof RequestProblem) {
        if (!response.headersSent) sendProblem(response, problem(error.code, error.message, error.issues), error.code === 'payload_too_large' ? { connection: 'close' } : {});
        return;
      }
      log?.(`admin internal error on ${request.method} ${request.url}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
      if (!response.headersSent) sendProblem(response, problem('internal_error', 'the admin API failed to handle this request; see the control plane log'));
      else response.destroy();
    });
  };
  // An HTTPS server has the same request API; it is typed as the HTTP one it behaves like.
  const server = (options.tls ? createHttpsServer({ cert: options.tls.cert, key: options.tls.key, minVersion: 'TLSv1.2' }, handler) : createServer(handler)) as Server;

  // Policy streams never end on their own; end them so close() can finish.
  const closeServer = server.close.bind(server);
  server.close = ((callback?: (error?: Error) => void) => {
    for (const end of openStreams) end();
    return closeServer(callback);
  }) as Server['close'];

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', 'http://admin.invalid');
    const segments = url.pathname.split('/').filter((s) => s !== '').map(decodeURIComponent);
    const method = request.method ?? 'GET';

    if (url.pathname === '/healthz') return send(response, onlyMethods(method, ['GET'], () => ({ status: 200, body: { ok: true, configVersion: store.current().version } })));
    if (url.pathname === '/readyz') {
      // Ready to take writes and to be followed: scaled out, only while synchronised with the shared history.
      const replication = options.replicationStatus?.() ?? null;
      const ready = replication === null || (replication.connected && replication.halted === null);
      const body = { ready, configVersion: store.current().version, ...(replication ? { replication } : {}) };
      return send(response, onlyMethods(method, ['GET'], () => ({ status: ready ? 200 : 503, body })));
    }
    if (url.pathname === '/metrics') {
      if (method !== 'GET') return send(response, methodNotAllowed(['GET']));
      const text = renderControlPlaneMetrics({
        configVersion: store.current().version,
        nodes: options.xdsStatus(),
        policyStreams: openStreams.size,
        replication: options.replicationStatus?.() ?? null,
        adminResponses,
      });
      response.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
      response.end(text);
      return;
    }
    if (url.pathname === '/v1/openapi.json') {
      if (method !== 'GET') return send(response, methodNotAllowed(['GET']));
      response.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(openApiText), 'cache-control': 'no-cache' });
      response.end(openApiText);
      return;
    }
    if (segments[0] === 'internal' && segments[1] === 'v1') {
      if (!authorized(request, options.internalToken)) return send(response, { problem: problem('unauthorized', 'send the internal token as "Authorization: Bearer <token>"') , headers: { 'www-authenticate': 'Bearer realm="mandate-internal"' } });
      const rest = segments.slice(2).join('/');
      if (rest === 'policy') return send(response, onlyMethods(method, ['GET'], () => ({ status: 200, body: store.current() })));
      if (rest === 'policy/stream') {
        if (method !== 'GET') return send(response, methodNotAllowed(['GET']));
        return streamPolicy(request, response);
      }
      return send(response, { problem: problem('not_found', `no route ${url.pathname}`) });
    }
    if (segments[0] !== 'v1') return send(response, { problem: problem('not_found', `no route ${url.pathname}`) });
    const presented = bearerOf(request);
    const identity = presented === undefined ? null : identifyAdmin(presented, options.adminToken, options.namedAdmins?.() ?? []);
    if (identity === null) return send(response, { problem: problem('unauthorized', 'send an admin token as "Authorization: Bearer <token>"'), headers: { 'www-authenticate': 'Bearer realm="mandate-admin"' } });
    if (identity.role === 'viewer' && method !== 'GET' && method !== 'HEAD') {
      return send(response, { problem: problem('forbidden', `${identity.name}'s token may only read (role viewer); nothing was changed`) });
    }
    // A named token says who acts; the shared token's holder names themself (the CLI sends the local user).
    const reply = await route(method, segments.slice(1), url, request, identity.name === null ? actorOf(request) : `admin:${identity.name}`);
    send(response, reply);
  }

  async function route(method: string, path: string[], url: URL, request: IncomingMessage, actor: string): Promise<Reply> {
    const [first, second, third, ...extra] = path;
    if (first === undefined) return { problem: problem('not_found', 'no route /v1') };
    const kind = kindOfCollection.get(first);

    if (kind && second === undefined) {
      return onlyMethods(method, ['GET'], () => {
        const snapshot = store.current();
        const items = (snapshot.bundle[first as 'personas'] as ConfigDocument[]).map((o) => maskSecrets(o));
        return { status: 200, body: { version: snapshot.version, items } };
      });
    }
    if (kind && second !== undefined && third === undefined) {
      const name = second;
      if (method === 'GET') {
        const found = (store.current().bundle[first as 'personas'] as ConfigDocument[]).find((o) => o.name === name);
        return found ? { status: 200, body: maskSecrets(found) } : { problem: problem('not_found', `no ${kind} named "${name}"`) };
      }
      if (method === 'PUT') {
        const document = await readSingleDocument(request);
        if (!isObject(document)) throw new RequestProblem('invalid_request', `the body must be one ${kind} document (an object)`);
        if (document.kind !== undefined && document.kind !== kind) {
          return { problem: problem('invalid_config', `this route takes a ${kind}`, [{ path: ['kind'], code: 'kind_mismatch', message: `expected "${kind}" on ${url.pathname}` }]) };
        }
        if (document.name !== undefined && document.name !== name) {
          return { problem: problem('invalid_config', 'the body names a different object than the route', [{ path: ['name'], code: 'name_mismatch', message: `expected "${name}" to match the route` }]) };
        }
        const result = await store.apply([{ ...document, kind, name }], { actor });
        if (!result.ok) {
          // The body is the document itself, so paths are relative to it.
          const issues = result.issues.map((i) => (i.path[0] === 'documents' && i.path[1] === 0 ? { ...i, path: i.path.slice(2) } : i));
          return { problem: problemForIssues(issues) };
        }
        return { status: 200, body: { version: result.version, changed: result.changed } };
      }
      if (method === 'DELETE') {
        const result = await store.remove(kind, name, actor);
        return result.ok ? { status: 200, body: { version: result.version, changed: result.changed } } : { problem: problemForIssues(result.issues) };
      }
      return methodNotAllowed(['GET', 'PUT', 'DELETE']);
    }
    if (first === 'personas' && second !== undefined && third === 'credentials' && extra.length === 0) {
      if (method !== 'POST') return methodNotAllowed(['POST']);
      const body = await readJson(request);
      const parsed = credentialRequestSchema.safeParse(body);
      if (!parsed.success) throw new RequestProblem('invalid_request', 'the body must be {agent, expiresAt?}', zodIssues(parsed.error.issues));
      const result = await store.issueCredential({ persona: second, agent: parsed.data.agent, expiresAt: parsed.data.expiresAt ?? null }, actor);
      if (!result.ok) {
        const notFound = result.issues.some((i) => i.code === 'unknown_persona');
        if (notFound) return { problem: problem('not_found', `no persona named "${second}"`, result.issues) };
        const refusal = replicationRefusal(result.issues);
        return { problem: refusal ?? problem('invalid_request', 'the credential request was rejected', result.issues) };
      }
      return { status: 201, body: { id: result.id, token: result.token, persona: second, agent: parsed.data.agent, version: result.version } };
    }
    if (first === 'apply' && second === undefined) {
      if (method !== 'POST') return methodNotAllowed(['POST']);
      const { documents, prune, dryRun } = await readApplyRequest(request, url);
      const result = await store.apply(documents, { actor, prune, dryRun });
      return result.ok ? { status: 200, body: { version: result.version, changed: result.changed, dryRun } } : { problem: problemForIssues(result.issues) };
    }
    if (first === 'credentials' && second === undefined) {
      return onlyMethods(method, ['GET'], () => {
        const persona = url.searchParams.get('persona');
        return { status: 200, body: { version: store.current().version, items: store.listCredentials(persona ?? undefined) } };
      });
    }
    if (first === 'credentials' && second !== undefined && third === undefined) {
      if (method !== 'DELETE') return methodNotAllowed(['DELETE']);
      const result = await store.revokeCredential(second, actor);
      return result.ok ? { status: 200, body: { version: result.version, changed: result.changed } } : { problem: problemForIssues(result.issues) };
    }
    if (first === 'revisions' && second === undefined) {
      return onlyMethods(method, ['GET'], () => {
        const limitText = url.searchParams.get('limit');
        const limit = limitText === null ? 50 : Number(limitText);
        if (!Number.isInteger(limit) || limit < 1 || limit > 1000) return { problem: problem('invalid_request', 'limit must be an integer from 1 to 1000') };
        return { status: 200, body: { version: store.current().version, items: store.history(limit) } };
      });
    }
    if (first === 'status' && second === undefined) {
      return onlyMethods(method, ['GET'], () => ({
        status: 200,
        body: { configVersion: store.current().version, nodes: options.xdsStatus(), ...(options.replicationStatus ? { replication: options.replicationStatus() } : {}) },
      }));
    }
    return { problem: problem('not_found', `no route /v1/${path.join('/')}`) };
  }

  function streamPolicy(request: IncomingMessage, response: ServerResponse): void {
    response.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store', 'x-accel-buffering': 'no' });
    request.socket.setNoDelay(true);
    const writeLine = (value: unknown) => {
      if (response.writableLength > maxStreamBacklogBytes) {
        log?.('admin policy stream reader fell too far behind; closing it');
        response.destroy();
        return;
      }
      response.write(`${JSON.stringify(value)}\n`);
    };
    writeLine(store.current());
    const unsubscribe = store.onChange((snapshot: PolicySnapshot) => writeLine(snapshot));
    const heartbeat = setInterval(() => writeLine({ heartbeat: true }), options.heartbeatMs ?? defaultHeartbeatMs);
    const end = () => {
      clearInterval(heartbeat);
      unsubscribe();
      openStreams.delete(end);
      if (!response.writableEnded) response.end();
    };
    openStreams.add(end);
    response.on('close', end);
  }

  return server;
}

function send(response: ServerResponse, reply: Reply): void {
  if ('problem' in reply) {
    sendProblem(response, reply.problem, reply.headers);
    return;
  }
  const text = JSON.stringify(reply.body);
  response.writeHead(reply.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store', ...reply.headers });
  response.end(text);
}

function onlyMethods(method: string, allowed: string[], handler: () => Reply): Reply {
  return allowed.includes(method) ? handler() : methodNotAllowed(allowed);
}

function methodNotAllowed(allowed: string[]): Reply {
  return { problem: problem('method_not_allowed', `use ${allowed.join(' or ')}`), headers: { allow: allowed.join(', ') } };
}

function bearerOf(request: IncomingMessage): string | undefined {
  return /^Bearer ([^\s]+)$/i.exec(request.headers.authorization ?? '')?.[1];
}

function authorized(request: IncomingMessage, expected: string): boolean {
  const presented = bearerOf(request);
  return presented !== undefined && tokenMatches(presented, expected);
}

/** Who made the change, for the revision history: the admin, and the name the CLI passes along. */
function actorOf(request: IncomingMessage): string {
  const claimed = request.headers['x-mandate-actor'];
  const name = typeof claimed === 'string' ? claimed.replace(/[^A-Za-z0-9._@-]/g, '').slice(0, 64) : '';
  return name ? `admin:${name}` : 'admin';
}

type BodyFormat = 'json' | 'yaml';

function bodyFormat(request: IncomingMessage, allowYaml: boolean): BodyFormat {
  const mediaType = (request.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  if (mediaType === 'application/json' || /^application\/[a-z0-9.+-]+\+json$/.test(mediaType)) return 'json';
  if (allowYaml && ['application/yaml', 'application/x-yaml', 'text/yaml', 'text/x-yaml'].includes(mediaType)) return 'yaml';
  throw new RequestProblem('unsupported_media_type', `send ${allowYaml ? 'application/json or application/yaml' : 'application/json'}${mediaType ? `, not ${mediaType}` : ''}`);
}

async function readBody(request: IncomingMessage): Promise<string> {
  const declared = Number(request.headers['content-length'] ?? '0');
  if (declared > maxBodyBytes) throw new RequestProblem('payload_too_large', `the body may be at most ${maxBodyBytes} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBodyBytes) throw new RequestProblem('payload_too_large', `the body may be at most ${maxBodyBytes} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

async function readJson(request: IncomingMessage): Promise<unknown> {
  bodyFormat(request, false);
  return parseJson(await readBody(request));
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new RequestProblem('invalid_json', `the body is not valid JSON: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/** YAML documents in order; a document that is a list contributes its items. */
function parseYamlDocuments(text: string): unknown[] {
  const documents = parseAllDocuments(text);
  const list = Array.isArray(documents) ? documents : [];
  const issues = list.flatMap((document, index) =>
    document.errors.map((error) => ({
      path: ['documents', index],
      code: 'yaml_syntax',
      message: error.linePos ? `line ${error.linePos[0].line}, column ${error.linePos[0].col}: ${error.message.split('\n')[0]}` : error.message,
    })),
  );
  if (issues.length > 0) throw new RequestProblem('invalid_yaml', 'the body is not valid YAML', issues);
  return list.map((document) => document.toJS() as unknown).flatMap((value) => (Array.isArray(value) ? value : value === null || value === undefined ? [] : [value]));
}

async function readSingleDocument(request: IncomingMessage): Promise<unknown> {
  const format = bodyFormat(request, true);
  const text = await readBody(request);
  if (format === 'json') return parseJson(text);
  const documents = parseYamlDocuments(text);
  if (documents.length !== 1) throw new RequestProblem('invalid_request', `expected one document, got ${documents.length}`);
  return documents[0];
}

async function readApplyRequest(request: IncomingMessage, url: URL): Promise<{ documents: unknown[]; prune: boolean; dryRun: boolean }> {
  const format = bodyFormat(request, true);
  const text = await readBody(request);
  if (format === 'yaml') {
    return { documents: parseYamlDocuments(text), prune: flag(url, 'prune'), dryRun: flag(url, 'dryRun') };
  }
  const parsed = applyRequestSchema.safeParse(parseJson(text));
  if (!parsed.success) throw new RequestProblem('invalid_request', 'the body must be {documents: [...], prune?, dryRun?}', zodIssues(parsed.error.issues));
  return parsed.data;
}

function flag(url: URL, name: string): boolean {
  const value = url.searchParams.get(name);
  if (value === null || value === 'false' || value === '0') return false;
  if (value === '' || value === 'true' || value === '1') return true;
  throw new RequestProblem('invalid_request', `query parameter ${name} must be true or false`);
}

function zodIssues(issues: readonly { path: PropertyKey[]; code: string; message: string }[]): { path: (string | number)[]; code: string; message: string }[] {
  return issues.map((i) => ({ path: i.path.filter((p): p is string | number => typeof p !== 'symbol'), code: i.code, message: i.message }));
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
