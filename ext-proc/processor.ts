// What happens to one request, in order. Envoy opens one ext_proc stream per
// HTTP request; this processor answers each ProcessingRequest with exactly one
// ProcessingResponse:
//   1. request headers  - route identity (from the route, not the client), policy version,
//                         agent credential, content type; strip the agent's credential
//                         and inject the upstream's; drop the headers the upstream may not
//                         receive and inspect the values of the others (data protection).
//   2. request body     - MCP: parse JSON-RPC; for every message, in order (assessCall):
//                           a. authorization (grants and CEL conditions),
//                           b. data protection: inspect the arguments (mask/redact/block),
//                              check data-flow rules against what the session read
//                              (other messages: their params or answer, assessOtherMessage),
//                           c. behaviour: sequence rules, guardrails, baselines;
//                         record the decisions (audit), then refuse, rewrite or continue;
//                         then the Persona's external DLP (ICAP/webhook), if any, answers later.
//                         REST: the same stages for method + path template (+ query, + body).
//   3. response headers - inspect the answer's headers; ask for the body when it must be
//                         filtered (tools/list, whatever its status and content type; also by
//                         shape on the session's GET stream) or inspected (every answer under data
//                         protection, tool results under behaviour): BUFFERED for JSON, text and
//                         tool lists, STREAMED for SSE, JSON lines and answers of no or an unknown
//                         content type (read unless binary); not media, fonts, PDF or archives
//                         (their bytes never cross ext_proc); refuse one in a charset Mandate
//                         cannot read (whole answers in single-byte charsets are decoded).
//   4. response body    - filter tools/list; mask/redact/block sensitive data; feed results,
//                         with what data protection found, to the behaviour engine; remember
//                         revealed values (gradual collection signals the behaviour stage);
//                         external DLP on whole (buffered) bodies and on SSE messages.
//   5. stream end       - the outcome of each allowed call (status, latency, response findings).
// Every decision is made by pure functions of (compiled policy, call, session state);
// this file only translates Envoy messages in and ProcessingResponses out.
// Envoy sends every request and response header. The agent's request headers that the upstream
// may not receive are dropped here (config/forwarded-headers.ts).
import { isAscii, isUtf8 } from 'node:buffer';
import { droppedRequestHeaders, forwardedForAddresses, uninspectedRequestHeaders, uninspectedResponseHeaders } from '../config/forwarded-headers.ts';
import type { RouteIdentity } from '../config/route-identity.ts';
import type { Upstream } from '../config/schema.ts';
import { parseTraceparent } from './audit/trace-context.ts';
import { authenticateCaller, type AgentIdentity } from './authentication/authenticate.ts';
import type { JwksCache } from './authentication/jwks.ts';
import type { BodyInspectionPool } from './dlp/body-inspection.ts';
import { isResourceMetadataPath, resourceMetadata, resourceMetadataUrl, resourceUrl } from './authentication/resource-metadata.ts';
import { authorizeMcpMethod, authorizeOperation, isToolVisible } from './authorization/authorize.ts';
import { blocks, type AgentCall, type AnswerRefusal, type CallContext, type DataFinding, type Decision, type DecisionReason } from './decision/decision.ts';
import type { ExternalDlp } from '../config/data-protection-schema.ts';
import { consultExternalDlp, urlWithoutCredentials } from './dlp/external.ts';
import { externalDlpWaitMarginMs, extProcMaxMessageWaitMs } from '../config/ext-proc-wait.ts';
import { flowSessionOf, type FlowSignal, type FlowTracker } from './dlp/flow.ts';
import { declaredCharset, decodeSingleByte, encodeSingleByte, type SingleByteCharset } from './dlp/charset.ts';
import { createStreamInspector, isBinaryType, isJsonLinesType, looksBinary, type StreamInspector } from './dlp/stream.ts';
import { behaviourResultOf, checkBehaviour, recordBehaviourResult } from './pipeline/behaviour.ts';
import { dataBlockedCode, inspectBody, inspectJson, maskFoundText, type InspectContext, type InspectResult } from './dlp/inspect.ts';
import { inspectionBudgetMs, isOverBudget, withInspectionBudget, type InspectionOverBudget } from './dlp/budget.ts';
import {
  blockedReason,
  protectRequestBody,
  protectRequestJson,
  protectResponseBody,
  redactedSegment,
  requestInspectContext,
  redactFlaggedSegments,
  rememberResponseValues,
  sensitiveSummary,
  type FlowEndpoint,
  type RequestProtection,
} from './pipeline/data-protection.ts';
import type { BehaviourCall, BehaviourEngine } from './sequence/engine.ts';
import {
  envelopeOf,
  jsonRpcCodes,
  jsonRpcError,
  parseJsonRpcBody,
  rewriteChangesExchange,
  toolArgumentsOf,
  toolArgumentsProblem,
  toolNameOf,
  withEnvelope,
  type JsonRpcId,
  type JsonRpcMessage,
  type ParsedBody,
} from './mcp/json-rpc.ts';
import { createSseSplitter, withData, type SseEvent, type SseSplitter } from './mcp/sse.ts';
import type { CompiledPersona, CompiledPolicy } from './policy/compile-policy.ts';
import { parameters, withEditedFields } from './rest/form.ts';
import { normaliseRequestPath } from './rest/path-template.ts';
import { jsonNestingExceeds, maxJsonNestingDepth } from './json-nesting.ts';
import type { HeaderMutation, HttpHeaderEntry, ProcessingRequest, ProcessingResponse } from './envoy-messages.ts';
import { errorClassAndPlace, errorWithoutMessage } from './error-description.ts';
import type { CompiledDataProtectionOk } from './dlp/compile.ts';

export interface DecisionOutcome {
  /** Time from request headers to the final answer on this stream, ms. */
  latencyMs: number;
  /** Time spent deciding (parse + authorize) for this request, µs. */
  decisionMicros: number;
  upstreamStatus: number | null;
  /** Sensitive-data findings in the upstream's answer (never the values). */
  responseFindings: DataFinding[];
  /** What happened to the allowed call after its decision: an external DLP service rewrote it, failed and was passed under failMode open, or (async) gave its verdict. */
  notes: DecisionReason[];
  /** Mandate refused or cut the upstream's answer (null when it went through): the response event records it. */
  answerRefusal: AnswerRefusal | null;
}

export interface DecisionRecorder {
  /**
   * Records a decision before the data path acts on it. Must be durable against a
   * process kill once it returns; throws when the audit trail cannot take it, and
   * the request is then refused (no unaudited action).
   */
  decision(decision: Decision, decisionMicros: number): void;
  /** Records how an allowed call ended (upstream status, latency). Never throws. */
  outcome(decision: Decision, outcome: DecisionOutcome): void;
}

export interface ProcessorDependencies {
  currentPolicy: () => CompiledPolicy | null;
  audit: DecisionRecorder;
  /** Monotonic milliseconds (performance.now in production). */
  now: () => number;
  /** Wall-clock milliseconds, for credential expiry. */
  wallClock: () => number;
  /** Sensitive values each session read, by keyed hash: one tracker for the process. */
  flow: FlowTracker;
  /** Sequence rules, guardrails and quarantine, with their session store: one engine for the process. */
  behaviour: BehaviourEngine;
  /** Signing keys of the identity providers Personas trust (authentication.jwt); absent: JWTs are refused. */
  jwks?: JwksCache;
  /** Inspects large request bodies and whole answers on a worker thread; absent: every body is inspected inline. */
  bodyInspection?: BodyInspectionPool;
  log?: (event: string, fields: Record<string, unknown>) => void;
}

/** How long Envoy is asked to wait for a body inspected on the worker thread (a 64 MiB body at the slowest measured rate). */
export const largeBodyWaitMs = 10_000;

/**
 * The most inspecting a request body or a whole answer under the worker threshold may take on the
 * event loop before it moves to the worker (dlp/budget.ts); at most the thread's budget. What costs
 * more than this is rare in ordinary traffic (250 KiB of text unlike any before it) and then costs
 * this much more; a sender of costly bodies holds the event loop this long per body, not the budget.
 */
const inlineShareMs = 250;

const mcpBatchProtocol = '2025-03-26';
const statelessProtocols = new Set(['2026-07-28']);

export interface StreamProcessor {
  /** Synchronous, except body phases for a Persona with inline external DLP, which answer later. */
  handle(request: ProcessingRequest): ProcessingResponse | null | DeferredAnswer;
  /** The stream ended (normally or not): write audit records. Idempotent. */
  finish(): void;
  /** An unexpected error while handling a message: the fail-closed (or fail-open) answer. */
  internalError(request: ProcessingRequest, error: unknown): ProcessingResponse | null;
}

/**
 * An answer that needs another service first (external DLP). The shell asks Envoy to
 * wait `waitMs` for it (override_message_timeout) before awaiting it.
 */
export interface DeferredAnswer {
  deferred: Promise<ProcessingResponse | null>;
  waitMs: number;
}

/** What the stages concluded about one call: its Decision, and how to answer if it is stopped. */
interface AssessedCall {
  decision: Decision;
  /** For a throttle: seconds until the agent may retry. */
  retryAfterSeconds: number | null;
  /**
   * Masked or redacted arguments (MCP) or body (REST) to forward instead of the original; for another
   * MCP message, the part of it that was inspected (its params, or the client's result or error).
   */
  rewritten: { value: unknown; part?: 'params' | 'result' | 'error' } | null;
  /** REST: the query string with masked or redacted values, to forward instead of the original. */
  rewrittenQuery: string | null;
  /** REST: the path below the route prefix with masked or redacted segments (percent-encoded). */
  rewrittenPath: string | null;
  /** MCP: the message's other members (id aside), masked or redacted, to put back (see envelopeOf). */
  rewrittenEnvelope?: Record<string, unknown> | null;
}

/** A request body read for the stages (readRequest): the answer already, or what the stages assess. */
type RequestBodyRead =
  | { answer: ProcessingResponse }
  | { rest: { call: AgentCall & { kind: 'rest' }; parsed: unknown; body: Buffer; authorized: { authorization: ReturnType<typeof authorizeOperation>; tool: string } } }
  | { mcp: McpBodyRead };

/** An MCP body parsed, with each message's envelope (envelopeOf; null without data protection). */
interface McpBodyRead {
  body: Buffer;
  parsed: Extract<ParsedBody, { ok: true }>;
  envelopes: (Record<string, unknown> | null)[];
}

/** A part of a request that data protection inspects (`subject`), the value the stages know it by (`key`), and where it goes. */
interface RequestPart {
  key: object;
  subject: unknown;
  to: FlowEndpoint;
}

/**
 * Names as the audit trail records them (recordedName), per compiled data protection: a new config
 * compiles anew, so an entry never outlives the detectors that made it. Bounded; short names only.
 */
const recordedNames = new WeakMap<CompiledDataProtectionOk, Map<string, string>>();
const recordedNameCacheEntries = 4096;
const recordedNameCacheMaxLength = 256;

/** A tools/call or REST operation waiting for its result. */
interface PendingCall {
  tool: string;
  behaviourCall: BehaviourCall;
}

export function createStreamProcessor(route: RouteIdentity | null, deps: ProcessorDependencies): StreamProcessor {
  const startedAt = deps.now();
  let decisionMicros = 0;
  let policy: CompiledPolicy | null = null;
  let persona: CompiledPersona | null = null;
  let upstream: Upstream | null = null;
  let credential: AgentIdentity | null = null;
  let context: CallContext | null = null;
  let requestHeaders = new Map<string, string>();
  let decisions: Decision[] = [];
  let toolsListIds = new Set<string | number>();
  /** Ids of the JSON-RPC requests in the body: what the response answers. */
  const requestIds: (string | number)[] = [];
  /** Allowed calls whose results the response stages look at, by JSON-RPC id (REST: one, keyed "rest"). */
  const pendingCalls = new Map<string | number, PendingCall>();
  /** sniff: an answer of no or an unknown content type, read as a text stream unless its first bytes are binary. */
  let responseMode: 'none' | 'buffered' | 'sse' | 'text-stream' | 'sniff' = 'none';
  /** This stream is the session's GET event stream (server-to-client messages). */
  let serverEventStream = false;
  let responseContentType = 'application/octet-stream';
  /** The request body was a JSON-RPC batch, so answers made here are lists too. */
  let requestWasBatch = false;
  let responseIsJson = false;
  /** A whole answer declared in a single-byte charset: read decoded, and written back in that charset. */
  let answerSingleByte: SingleByteCharset | null = null;
  /** A successful answer to tools/list (or an event of one) was not JSON: an error replaced it. */
  let toolsListUnreadable = false;
  let inspectResponse = false;
  let sse: SseSplitter | null = null;
  let streamInspector: StreamInspector | null = null;
  let streamFingerprintsSeen = 0;
  let streamBlocked = false;
  const responseFindings: DataFinding[] = [];
  const outcomeNotes: DecisionReason[] = [];
  let answerRefusal: AnswerRefusal | null = null;
  /** Verdicts of async external DLP services still to come: the outcome records wait for them. */
  const asyncVerdicts: Promise<void>[] = [];
  let upstreamStatus: number | null = null;
  let finished = false;
  let answered = false;

  const timed = <T>(work: () => T): T => {
    const t0 = deps.now();
    try {
      return work();
    } finally {
      decisionMicros += (deps.now() - t0) * 1000;
    }
  };

  function handle(request: ProcessingRequest): ProcessingResponse | null | DeferredAnswer {
    if (request.observability_mode) return null;
    if (answered) return null;
    switch (request.request) {
      case 'request_headers':
        return timed(() => onRequestHeaders(request));
      case 'request_body': {
        const body = request.request_body?.body ?? Buffer.alloc(0);
        const pool = deps.bodyInspection;
        if (pool && persona?.dataProtection.active) return body.length >= pool.thresholdBytes ? onLargeRequestBody(body, pool) : onRequestBodyInlineFirst(body, pool);
        return withExternalDlp('request', body, timed(() => onRequestBody(body)));
      }
      case 'response_headers':
        return onResponseHeaders(request);
      case 'response_body': {
        const body = request.response_body?.body ?? Buffer.alloc(0);
        if (responseMode === 'buffered') {
          const tooLarge = timed(() => refuseOversizedAnswer(body, request.response_body?.end_of_stream === true));
          if (tooLarge) {
            // Monitor mode: recorded, and the answer passes as it is, unread.
            if (!answered) responseMode = 'none';
            return tooLarge;
          }
        }
        const pool = deps.bodyInspection;
        if (pool && responseMode === 'buffered' && body.length >= pool.thresholdBytes && protectsBufferedResponse()) return onLargeBufferedResponse(body, pool);
        // A whole answer may hold the event loop for a shorter time than the thread's budget: one that
        // costs more (random text) moves to the worker, with the worker's budget.
        const movable = pool && responseMode === 'buffered' && protectsBufferedResponse();
        let response: ProcessingResponse;
        try {
          response = withInspectionBudget(() => timed(() => onResponseBody(body, request.response_body?.end_of_stream === true)), movable ? Math.min(inlineShareMs, inspectionBudgetMs()) : Infinity);
        } catch (error) {
          if (!movable || !isOverBudget(error)) throw error;
          deps.log?.('body_inspection_moved', { bytes: body.length });
          return onLargeBufferedResponse(body, pool);
        }
        // External DLP sees whole buffered bodies, and an event stream's messages one by one.
        if (responseMode === 'buffered') return withExternalDlp('response', body, response);
        return responseMode === 'sse' ? withExternalDlpOnEvents(response) : response;
      }
      case 'request_trailers':
        return { request_trailers: {} };
      case 'response_trailers':
        return { response_trailers: {} };
      default:
        return null;
    }
  }

  function onRequestHeaders(request: ProcessingRequest): ProcessingResponse {
    requestHeaders = headerMap(request.request_headers?.headers?.headers);
    const method = requestHeaders.get(':method') ?? '';
    const path = requestHeaders.get(':path') ?? '/';
    if (!route) return refuseUnrouted(method);
    policy = deps.currentPolicy();
    context = {
      persona: route.persona,
      upstream: route.upstream,
      agent: null,
      credentialId: null,
      sessionId: requestHeaders.get('mcp-session-id') ?? null,
      sourceAddress: sourceAddressOf(request),
      requestId: requestHeaders.get('x-request-id') ?? null,
      trace: parseTraceparent(requestHeaders.get('traceparent')),
    };
    if (!policy) return refuse(503, 'policy_unavailable', 'the policy service has no configuration yet; refusing (fail closed)', 'availability');
    persona = policy.personas.get(route.persona) ?? null;
    if (!persona) return refuse(404, 'persona_unknown', `persona "${route.persona}" does not exist at config version ${policy.version}`, 'authorization');
    upstream = policy.upstreams.get(route.upstream) ?? null;
    if (!upstream) return refuse(404, 'upstream_unknown', `upstream "${route.upstream}" does not exist at config version ${policy.version}`, 'authorization');

    // The endpoint's URL as the agent addressed it; only a Persona on JWTs publishes OAuth metadata.
    const resource = () => resourceUrl(requestHeaders.get(':scheme') ?? 'http', requestHeaders.get(':authority') ?? requestHeaders.get('host') ?? '', route!.pathPrefix);
    const signsInWithJwt = persona.persona.authentication.jwt !== undefined;
    if (signsInWithJwt && isResourceMetadataPath(path, route.pathPrefix)) {
      // Public, like any OAuth metadata: it names the issuer agents must get a token from.
      if (method !== 'GET' && method !== 'HEAD') return refuse(405, 'method_not_allowed', 'the resource metadata is read with GET', 'protocol', [['allow', 'GET']]);
      answered = true;
      return immediate(200, JSON.stringify(resourceMetadata(persona.persona, resource())), [['content-type', 'application/json'], ['cache-control', 'max-age=300']], 'resource_metadata');
    }
    const authentication = authenticateCaller(requestHeaders.get('authorization'), persona.persona, policy.credentials, deps.wallClock(), deps.jwks ?? null);
    if (!authentication.ok) {
      // An OAuth-capable client (the MCP authorization spec) finds the issuer through resource_metadata.
      const challenge = signsInWithJwt ? `${authentication.challenge}, resource_metadata="${resourceMetadataUrl(resource())}"` : authentication.challenge;
      return refuse(authentication.status, authentication.reason.code, authentication.reason.message, 'authentication', [['www-authenticate', challenge]]);
    }
    credential = authentication.identity;
    context.agent = credential.agent;
    context.credentialId = credential.id;
    const headerRefusal = checkForwardedHeaders();
    if (headerRefusal) return headerRefusal;

    const endOfStream = request.request_headers?.end_of_stream === true;
    if (route.kind === 'rest') return onRestRequestHeaders(method, path, endOfStream);
    return onMcpRequestHeaders(method, path, endOfStream);
  }

  /**
   * The agent's request headers: those the upstream may not receive are dropped (see
   * config/forwarded-headers.ts); with data protection on, the values of the others are inspected
   * like the body, against the upstream they go to. A block refuses the request here; masks are
   * written into the headers as they go on; findings join the request's first decision.
   */
  function checkForwardedHeaders(): ProcessingResponse | null {
    droppedHeaders = droppedRequestHeaders(requestHeaders.keys(), policy!.forwardedHeaders.get(route!.upstream) ?? noHeaders);
    const forwardedFor = requestHeaders.get('x-forwarded-for');
    const addressesOnly = forwardedFor === undefined ? null : forwardedForAddresses(forwardedFor);
    if (addressesOnly !== null) headerRewrites = [...headerRewrites, ['x-forwarded-for', addressesOnly]];
    const dp = persona!.dataProtection;
    if (!dp.active) return null;
    const inspected: [string, string][] = [];
    for (const [name, value] of requestHeaders) {
      if (name.startsWith(':') || name === 'host' || uninspectedRequestHeaders.has(name) || droppedHeaders.has(name)) continue;
      inspected.push([name, value]);
    }
    if (inspected.length === 0) return null;
    const values: Record<string, string> = Object.fromEntries(inspected.map(([name, value]) => [name, headerText(value)]));
    const protection = protectRequestJson(dp, deps.flow, flowSession(), values, flowDestination(undefined), 'request header');
    const refusal = adoptAtHeaders(protection, 'headers');
    if (refusal) return refusal;
    if (protection.changed) headerRewrites = [...headerRewrites, ...changedHeaderValues(Object.fromEntries(inspected), values, protection.value)];
    return null;
  }

  /**
   * A query string on an MCP endpoint is what the agent sends too: with data protection on, its values are
   * inspected like header values (findings join the request's first decision, under "query"); a block
   * refuses the request, masks are written into the path the upstream receives.
   */
  /**
   * Takes what inspecting a part of the request at its headers found (header values, the MCP query
   * string): findings and notes join the request's first decision, located under `part`; a block
   * refuses the request here, except in monitor mode, where it is recorded.
   */
  function adoptAtHeaders(protection: RequestProtection<unknown>, part: string): ProcessingResponse | null {
    if (protection.findings.length === 0 && protection.denial === null && protection.notes.length === 0) return null;
    const findings = [...(headerRecord?.findings ?? []), ...locatedIn(part, protection.findings)];
    const notes = [...(headerRecord?.notes ?? []), ...protection.notes];
    if (protection.denial && persona!.persona.mode !== 'monitor') {
      headerRecord = { findings, notes };
      return refuse(403, protection.denial.code, protection.denial.message, 'data-protection');
    }
    headerRecord = { findings, notes: protection.denial ? [protection.denial, ...notes] : notes };
    return null;
  }

  /** Where a call's data goes, for data-flow rules: the upstream and its environment, and the tool with its class when there is one. */
  function flowDestination(tool: string | undefined): FlowEndpoint {
    const to: FlowEndpoint = { upstream: route!.upstream, environment: upstream!.environment };
    return tool === undefined ? to : { ...to, tool, toolClass: persona!.behaviour.classify(route!.upstream, tool).toolClass };
  }

  function checkMcpQuery(path: string): ProcessingResponse | null {
    const dp = persona!.dataProtection;
    const mark = path.indexOf('?');
    if (!dp.active || mark < 0) return null;
    const query = parseQuery(path);
    if (Object.keys(query).length === 0) return null;
    const protection = protectRequestJson(dp, deps.flow, flowSession(), query, flowDestination(undefined), 'query');
    const refusal = adoptAtHeaders(protection, 'query');
    if (refusal) return refusal;
    if (protection.changed) headerRewrites = [...headerRewrites, [':path', `${path.slice(0, mark)}?${withEditedFields(path.slice(mark + 1), query, protection.value)}`]];
    return null;
  }

  function onMcpRequestHeaders(method: string, path: string, endOfStream: boolean): ProcessingResponse {
    // Streamable HTTP has one endpoint: nothing below it is forwarded (it would reach other paths of the server's host).
    if (relativePath(path, route!.pathPrefix) !== '/') {
      return refuse(404, 'unknown_endpoint', `the MCP endpoint is ${route!.pathPrefix}; Mandate forwards nothing below it`, 'protocol');
    }
    const queryRefusal = checkMcpQuery(path);
    if (queryRefusal) return queryRefusal;
    if (method === 'GET' || method === 'DELETE') {
      // The server-to-client event stream and session termination: the session's own plumbing.
      // What the GET stream carries is still inspected (see onResponseHeaders).
      serverEventStream = method === 'GET';
      const decision = makeDecision(mcpCall(`http/${method}`), null);
      decisions.push(decision);
      return recordDecisions([decision]) ?? continueRequestHeaders();
    }
    if (method !== 'POST') return refuse(405, 'method_not_allowed', `MCP endpoints accept POST, GET and DELETE, not ${method}`, 'protocol', [['allow', 'GET, POST, DELETE']]);
    const contentType = (requestHeaders.get('content-type') ?? '').toLowerCase();
    if (!contentType.startsWith('application/json')) {
      const sent = requestHeaders.get('content-type');
      return refuse(415, 'unsupported_media_type', `an MCP POST must carry application/json, not ${sent ? `"${quotedAsRecorded(sent)}"` : 'no content type'}`, 'protocol');
    }
    if (endOfStream) return refuse(400, 'empty_body', 'an MCP POST needs a JSON-RPC body', 'protocol');
    return refuseEncodedBody('an MCP POST body') ?? continueRequestHeaders();
  }

  /** A request body Mandate must read would pass unread if encoded (compressed): refused, like one over the size limit. */
  function refuseEncodedBody(what: string): ProcessingResponse | null {
    if (contentEncodingOf(requestHeaders) === null) return null;
    const sent = quotedAsRecorded(requestHeaders.get('content-encoding') ?? '');
    return refuse(415, 'unsupported_content_encoding', `${what} must not be encoded ("content-encoding: ${sent}"): Mandate reads it before the upstream does`, 'protocol');
  }

  function onRestRequestHeaders(method: string, rawPath: string, endOfStream: boolean): ProcessingResponse {
    const relative = relativePath(rawPath, route!.pathPrefix);
    const normalised = relative === null ? null : normaliseRequestPath(relative);
    if (normalised === null) return refuse(400, 'invalid_path', 'the request path contains dot segments, backslashes or bad percent-encoding', 'protocol');
    const call: AgentCall & { kind: 'rest' } = { kind: 'rest', method, path: normalised, query: parseQuery(rawPath) };
    // A body is only sent to us when a grant's condition reads it or data protection inspects it; then decide on the body.
    if (!endOfStream && (restConditionsReadBody() || persona!.dataProtection.active)) {
      const encoded = refuseEncodedBody('a request body on this route');
      if (encoded) return encoded;
      pendingRestCall = call;
      return continueRequestHeaders();
    }
    return decideRest(call, undefined, null, 'request_headers');
  }

  let pendingRestCall: (AgentCall & { kind: 'rest' }) | null = null;
  /** The single-byte charset a REST request body was decoded from (see readRequestBody). */
  let requestSingleByte: SingleByteCharset | null = null;
  /** The agent's headers that do not go upstream, and the masked values of those that do. */
  let droppedHeaders: ReadonlySet<string> = noHeaders;
  let headerRewrites: [string, string][] = [];
  /** What inspecting the headers found: recorded with the request's first decision. */
  let headerRecord: { findings: DataFinding[]; notes: DecisionReason[] } | null = null;

  function restConditionsReadBody(): boolean {
    return (persona!.grants.get(route!.upstream)?.operations ?? []).some((op) => op.whenSource !== null && /\bbody\b/.test(op.whenSource));
  }

  /** A REST operation authorized, and named as the behaviour stage and data-protection rules name it: "METHOD /path/template". */
  function authorizeRest(call: AgentCall & { kind: 'rest' }, body: unknown): { authorization: ReturnType<typeof authorizeOperation>; tool: string } {
    const authorization = authorizeOperation(persona!.grants.get(route!.upstream), call.method, call.path, {
      query: call.query,
      body: body ?? null,
      agent: credential!.agent,
      persona: route!.persona,
    });
    return { authorization, tool: authorization.allowed ? authorization.grant.replace(/^operation:/, '') : `${call.method} ${call.path}` };
  }

  function decideRest(call: AgentCall & { kind: 'rest' }, body: unknown, rawBody: Buffer | null, phase: 'request_headers' | 'request_body', authorized = authorizeRest(call, body)): ProcessingResponse {
    const { authorization, tool } = authorized;
    const assessed = assessCall({ ...call, body }, tool, rawBody, authorization.allowed ? null : authorization.reason, restResultKey, rawBody?.length ?? 0);
    const { decision } = assessed;
    decisions.push(decision);
    const auditFailure = recordDecisions([decision]);
    if (auditFailure) return auditFailure;
    if (blocks(decision)) {
      answered = true;
      finish();
      const reason = decision.reasons[0]!;
      if (assessed.retryAfterSeconds !== null) {
        return immediate(429, problem(429, reason), [['content-type', 'application/problem+json'], ['retry-after', String(assessed.retryAfterSeconds)]], reason.code);
      }
      return immediate(403, problem(403, reason), [['content-type', 'application/problem+json']], reason.code);
    }
    // A masked path or query goes upstream in place of the original (same route: the prefix is unchanged).
    const newPath: [string, string][] = [];
    if (assessed.rewrittenPath !== null || assessed.rewrittenQuery !== null) {
      const raw = requestHeaders.get(':path') ?? '/';
      const queryAt = raw.indexOf('?');
      const pathPart = assessed.rewrittenPath !== null ? `${route!.pathPrefix}${assessed.rewrittenPath}` : queryAt < 0 ? raw : raw.slice(0, queryAt);
      const queryPart = assessed.rewrittenQuery ?? (queryAt < 0 ? null : raw.slice(queryAt + 1));
      newPath.push([':path', queryPart === null ? pathPart : `${pathPart}?${queryPart}`]);
    }
    if (phase === 'request_headers') return continueRequestHeaders(newPath);
    if (assessed.rewritten) return replaceRequestBody(inRequestCharset(assessed.rewritten.value as Buffer), newPath);
    if (newPath.length > 0) return { request_body: { response: { status: 'CONTINUE', header_mutation: headerMutation(newPath, []) } } };
    return { request_body: { response: { status: 'CONTINUE' } } };
  }

  function onRequestBody(body: Buffer): ProcessingResponse {
    return assessRequestBody(readRequest(body));
  }

  /**
   * The request body read for the stages: checked (its size, its nesting, its JSON), a REST call
   * authorized, an MCP body parsed; or the answer when that alone decides it.
   */
  function readRequest(body: Buffer): RequestBodyRead {
    if (!route || !persona || !policy) return { answer: refuse(500, 'internal_error', 'request body before request headers', 'protocol') };
    if (body.length > persona.persona.maxBodyBytes) {
      return { answer: refuse(413, 'payload_too_large', `the body is ${body.length} bytes; this Persona accepts at most ${persona.persona.maxBodyBytes}`, 'protocol') };
    }
    if (route.kind === 'rest') {
      if (!pendingRestCall) return { answer: { request_body: { response: { status: 'CONTINUE' } } } };
      return readRestBody(pendingRestCall, readRequestBody(body));
    }
    return readMcpBody(body);
  }

  /** The stages on a read request body: authorization, data protection, behaviour; the audit record; the answer. */
  function assessRequestBody(read: RequestBodyRead): ProcessingResponse {
    if ('answer' in read) return read.answer;
    if ('rest' in read) return decideRest(read.rest.call, read.rest.parsed, read.rest.body, 'request_body', read.rest.authorized);
    return assessMcpBody(read.mcp);
  }

  /**
   * The parts of a read request body that data protection will inspect, each with where it goes: a
   * REST body (a form's fields), each message's tool arguments or params, and its envelope (as
   * assessMcpBody takes them). A part the stages do not find here is inspected inline.
   */
  function requestPartsToInspect(read: RequestBodyRead): RequestPart[] {
    if ('answer' in read) return [];
    if ('rest' in read) {
      const { body, authorized } = read.rest;
      if (body.length === 0 || (!authorized.authorization.allowed && persona!.persona.mode !== 'monitor')) return [];
      const subject = requestIsForm() ? parameters(new URLSearchParams(body.toString('utf8'))) : body;
      return [{ key: body, subject, to: flowDestination(authorized.tool) }];
    }
    const parts: RequestPart[] = [];
    for (const [index, message] of read.mcp.parsed.messages.entries()) {
      const envelope = read.mcp.envelopes[index];
      const { tool, assessed } = toolCallParts(message);
      if (envelope) parts.push({ key: envelope, subject: envelope, to: flowDestination(tool) });
      const inspected = assessed ? assessed.args : otherMessagePayload(message).payload;
      if (inspected !== null && typeof inspected === 'object') parts.push({ key: inspected, subject: inspected, to: flowDestination(assessed ? tool : undefined) });
    }
    return parts;
  }

  /**
   * A large request body: the parts the stages will inspect (requestPartsToInspect) are inspected on
   * the worker thread first (dlp/body-inspection.ts), so they do not stall the other requests; then the
   * stages run as for any body, taking those results (and the data-flow checks, the audit record, the
   * answer), and external DLP follows. A part the worker fails on is inspected inline: never passed unread.
   */
  function onLargeRequestBody(received: Buffer, pool: BodyInspectionPool): ProcessingResponse | null | DeferredAnswer {
    const read = timed(() => readRequest(received));
    const parts = requestPartsToInspect(read);
    if (parts.length === 0) return withExternalDlp('request', received, timed(() => assessRequestBody(read)));
    return inspectPartsOnWorker(received, read, parts, pool);
  }

  /**
   * A request body under the worker threshold: its parts are inspected first, on the event loop, for
   * at most `inlineShareMs`; parts that cost more (random text an agent sent) move to the worker, as a
   * large body's do. The stages then run once, on those results, either way.
   */
  function onRequestBodyInlineFirst(received: Buffer, pool: BodyInspectionPool): ProcessingResponse | null | DeferredAnswer {
    const read = timed(() => readRequest(received));
    const parts = requestPartsToInspect(read);
    const dp = persona!.dataProtection;
    try {
      withInspectionBudget(
        () =>
          timed(() => {
            for (const part of parts) {
              const context = requestInspectContext(part.to);
              const result = Buffer.isBuffer(part.subject) ? inspectBody(dp, part.subject, context) : inspectJson(dp, part.subject, context);
              inspectedAhead.set(part.key, { tool: part.to.tool, result });
            }
          }),
        Math.min(inlineShareMs, inspectionBudgetMs()),
      );
    } catch (error) {
      inspectedAhead.clear();
      if (!isOverBudget(error)) throw error;
      deps.log?.('body_inspection_moved', { bytes: received.length });
      return inspectPartsOnWorker(received, read, parts, pool);
    }
    let response: ProcessingResponse;
    try {
      response = timed(() => assessRequestBody(read));
    } finally {
      inspectedAhead.clear();
    }
    return withExternalDlp('request', received, response);
  }

  /** The parts inspected on the worker (dlp/body-inspection.ts), then the stages on those results, then external DLP. */
  function inspectPartsOnWorker(received: Buffer, read: RequestBodyRead, parts: RequestPart[], pool: BodyInspectionPool): DeferredAnswer {
    // Envoy waits for the worker and then for the request's inline external DLP services.
    const { waitMs, servicesDeadline } = messageWait(largeBodyWaitMs + inlineWaitMs(externalServices('request')));
    const dp = persona!.dataProtection;
    const failures: unknown[] = [];
    const deferred = Promise.all(
      parts.map((part) =>
        pool.inspect(dp, part.subject, requestInspectContext(part.to), `agent ${route!.persona} ${credential?.agent ?? ''}`).then(
          (result) => void inspectedAhead.set(part.key, { tool: part.to.tool, result }),
          (error: unknown) => void failures.push(error),
        ),
      ),
    ).then(() => {
      // A part over its budget is refused (internalError), not inspected again here.
      const overBudget = failures.find(isOverBudget);
      if (overBudget !== undefined) throw overBudget;
      if (failures.length > 0) deps.log?.('body_inspection_inline', { reason: (failures[0] as Error).message, bytes: received.length });
      let response: ProcessingResponse;
      try {
        response = timed(() => assessRequestBody(read));
      } finally {
        inspectedAhead.clear();
      }
      const next = withExternalDlp('request', received, response, servicesDeadline);
      return next !== null && 'deferred' in next ? next.deferred : next;
    });
    return { deferred, waitMs };
  }

  /** What the worker found in this request's parts (onLargeRequestBody), by the part: the stages take it in place of inspecting it. */
  const inspectedAhead = new Map<object, { tool: string | undefined; result: InspectResult<unknown> }>();

  /** The worker's result for `key` inspected towards `to`, if it has one for exactly that. */
  function inspectedAheadFor<T>(key: unknown, to: FlowEndpoint): InspectResult<T> | undefined {
    const ahead = key !== null && typeof key === 'object' ? inspectedAhead.get(key) : undefined;
    return ahead && ahead.tool === to.tool ? (ahead.result as InspectResult<T>) : undefined;
  }

  /**
   * A REST body as UTF-8: one declared in a single-byte charset is decoded, as an answer is (readAnswer),
   * so that its 0xA0 between the groups of a card is the no-break space its reader sees.
   */
  function readRequestBody(received: Buffer): Buffer {
    const charset = declaredCharset(requestHeaders.get('content-type') ?? '');
    requestSingleByte = charset.kind === 'single-byte' && !isAscii(received) ? charset.charset : null;
    return requestSingleByte ? Buffer.from(decodeSingleByte(received, requestSingleByte), 'utf8') : received;
  }

  /** A changed REST body written back in the single-byte charset its content type declares. */
  function inRequestCharset(body: Buffer): Buffer {
    return requestSingleByte ? encodeSingleByte(body.toString('utf8'), requestSingleByte, requestDeclaresJson() || looksLikeJsonText(body)) : body;
  }

  function readRestBody(pending: AgentCall & { kind: 'rest' }, body: Buffer): RequestBodyRead {
    let parsed: unknown = null;
    if (body.length > 0 && !requestIsForm() && (restConditionsReadBody() || requestDeclaresJson()) && jsonNestingExceeds(body)) {
      return { answer: refuse(400, 'json_too_deep', `the body nests objects and arrays more than ${maxJsonNestingDepth} deep`, 'protocol') };
    }
    if (body.length > 0 && restConditionsReadBody() && requestIsForm()) {
      // An HTML form body: conditions read its fields like a JSON object's (a repeated name as an array).
      parsed = parameters(new URLSearchParams(body.toString('utf8')));
    } else if (body.length > 0 && restConditionsReadBody()) {
      try {
        parsed = JSON.parse(body.toString('utf8'));
      } catch {
        return { answer: refuse(400, 'invalid_json', 'this operation is granted under a condition on its JSON body, and the body is not valid JSON', 'protocol') };
      }
    }
    return { rest: { call: pending, parsed, body, authorized: authorizeRest(pending, parsed) } };
  }

  function readMcpBody(body: Buffer): RequestBodyRead {
    const protocolVersion = requestHeaders.get('mcp-protocol-version');
    const parsed = parseJsonRpcBody(body, protocolVersion === undefined || protocolVersion === mcpBatchProtocol);
    requestWasBatch = parsed.ok && parsed.batch;
    if (!parsed.ok) {
      recordDenial(makeDecision(mcpCall('invalid'), { stage: 'protocol', code: parsed.mandateCode, message: parsed.message }));
      answered = true;
      return { answer: immediate(400, JSON.stringify(jsonRpcError(null, parsed.code, parsed.message, { mandate: { code: parsed.mandateCode } })), [['content-type', 'application/json']], parsed.mandateCode) };
    }
    const headerMismatch = checkStatelessHeaders(parsed.messages, protocolVersion);
    if (headerMismatch) {
      recordDenial(makeDecision(mcpCall('invalid'), headerMismatch));
      answered = true;
      const id = parsed.messages[0]?.type === 'request' ? parsed.messages[0].id : null;
      return { answer: immediate(400, JSON.stringify(jsonRpcError(id, jsonRpcCodes.invalidRequest, headerMismatch.message, { mandate: { code: headerMismatch.code } })), [['content-type', 'application/json']], headerMismatch.code) };
    }
    const envelopes = parsed.messages.map((message, index) => (persona!.dataProtection.active ? envelopeOf(parsed.raw[index]!, message) : null));
    return { mcp: { body, parsed, envelopes } };
  }

  function assessMcpBody({ body, parsed, envelopes }: McpBodyRead): ProcessingResponse {
    const grants = persona!.grants.get(route!.upstream);
    const perMessage: { message: JsonRpcMessage; assessed: AssessedCall }[] = [];
    for (const [index, message] of parsed.messages.entries()) {
      const envelope = envelopes[index]!;
      if (message.type === 'response') {
        // The client answering a server request (sampling, elicitation): what it answers is inspected like arguments.
        perMessage.push({ message, assessed: withEnvelopeProtection(assessOtherMessage(message, mcpCall('response', undefined, undefined, message.id), null), envelope, message, undefined) });
        continue;
      }
      const { tool, args, argumentsProblem, assessed: toolCall } = toolCallParts(message);
      const authorization: ReturnType<typeof authorizeMcpMethod> = argumentsProblem
        ? { allowed: false, reason: { stage: 'protocol', code: 'invalid_params', message: argumentsProblem } }
        : authorizeMcpMethod(grants, message.method, tool, { args: args ?? {}, agent: credential!.agent, persona: route!.persona });
      const id = message.type === 'request' ? message.id : undefined;
      // The call as the audit trail names it: its method and tool name with flagged segments redacted.
      const call = mcpCall(recordedName(message.method), tool === undefined ? undefined : recordedName(tool), args, id);
      const denial = authorization.allowed ? null : quotingAsRecorded(authorization.reason, [message.method, call.method], [tool, call.kind === 'mcp' ? call.tool : undefined]);
      // Session plumbing (initialize, tools/list, notifications) is authorized only; tool calls go through every stage.
      const assessed = toolCall ? assessCall(call, toolCall.tool, toolCall.args, denial, id ?? null, body.length) : assessOtherMessage(message, call, denial);
      perMessage.push({ message, assessed: withEnvelopeProtection(assessed, envelope, message, tool) });
      if (message.type === 'request' && message.method === 'tools/list') toolsListIds.add(message.id);
      if (message.type === 'request' && message.id !== null) requestIds.push(message.id);
    }
    decisions = perMessage.map((m) => m.assessed.decision);
    const auditFailure = recordDecisions(decisions);
    if (auditFailure) return auditFailure;
    if (!decisions.some(blocks)) {
      if (!perMessage.some((m) => m.assessed.rewritten || m.assessed.rewrittenEnvelope)) return { request_body: { response: { status: 'CONTINUE' } } };
      return replaceRequestBody(withRewrittenMessages(body, parsed.batch, perMessage.map((m) => m.assessed)));
    }

    // Refuse the whole body: a batch is not half-forwarded.
    answered = true;
    finish();
    const errors = perMessage
      .filter((m) => m.message.type === 'request')
      .map(({ message, assessed: { decision, retryAfterSeconds } }) => {
        const id = (message as { id: JsonRpcId }).id;
        if (!blocks(decision)) {
          return jsonRpcError(id, jsonRpcCodes.policyDenied, 'refused because another request in the same batch was denied', { mandate: { code: 'batch_refused', configVersion: policy!.version } });
        }
        const reason = decision.reasons[0]!;
        const code = reason.stage === 'protocol' ? jsonRpcCodes.invalidParams : jsonRpcCodes.policyDenied;
        const retry = retryAfterSeconds === null ? '' : ` (retry after ${retryAfterSeconds} s)`;
        return jsonRpcError(id, code, `Mandate: ${reason.message}${retry}`, {
          mandate: { code: reason.code, persona: route!.persona, configVersion: policy!.version, ...(retryAfterSeconds === null ? {} : { retryAfterSeconds }) },
        });
      });
    const payload = parsed.batch ? errors : errors[0];
    const firstReason = decisions.find(blocks)!.reasons[0]!;
    const firstDenied = firstReason.code;
    if (payload === undefined) {
      // Only notifications and responses, and they may not go on: an HTTP error with a JSON-RPC error without an id.
      const error = jsonRpcError(null, jsonRpcCodes.policyDenied, `Mandate: ${firstReason.message}`, { mandate: { code: firstDenied, persona: route!.persona, configVersion: policy!.version } });
      return immediate(403, JSON.stringify(error), [['content-type', 'application/json'], ['cache-control', 'no-store']], firstDenied);
    }
    return immediate(200, JSON.stringify(payload), [['content-type', 'application/json'], ['cache-control', 'no-store']], firstDenied);
  }

  /**
   * Data protection on what a message carries besides its inspected part (envelopeOf): its id, its
   * method, other members, a tool call's name and `_meta`. Findings join the message's decision, located
   * under "message"; a value to mask is masked in place, but a finding to mask, redact or block in what
   * names the exchange (the id, the method, the tool name, a params.name or params.uri: namingMemberOf)
   * refuses the message: a masked id could not be matched to its answer, a masked name calls something
   * else, and the raw value may not reach the upstream. Detect findings there are recorded.
   */
  function withEnvelopeProtection(assessed: AssessedCall, envelope: Record<string, unknown> | null, message: JsonRpcMessage, tool: string | undefined): AssessedCall {
    const { decision } = assessed;
    if (envelope === null || (decision.verdict === 'deny' && decision.enforced)) return assessed;
    const to = flowDestination(tool);
    const protection = protectRequestJson(persona!.dataProtection, deps.flow, flowSession(), envelope, to, 'message', inspectedAheadFor(envelope, to));
    const found = locatedIn('message', protection.findings);
    // The params of a message other than a tool call were inspected already (assessOtherMessage): their name and uri are names too.
    const inName = [...decision.findings, ...found].find((f) => f.action !== 'detect' && namingMemberOf(f.location, message) !== null);
    if (found.length === 0 && protection.denial === null && protection.notes.length === 0 && !inName) return assessed;
    const denial: DecisionReason | null = protection.denial ?? (inName ? namingMemberRefusal(inName, namingMemberOf(inName.location, message)!) : null);
    const monitor = persona!.persona.mode === 'monitor';
    const findings = [...decision.findings, ...found];
    const notes = [...protection.notes];
    let next: Decision = { ...decision, findings };
    if (denial !== null && decision.verdict === 'allow') next = { ...next, verdict: 'deny', enforced: !monitor, reasons: [denial, ...decision.reasons, ...notes] };
    else next = { ...next, reasons: [...decision.reasons, ...(denial ? [denial] : []), ...notes] };
    const rewrittenEnvelope = denial === null && protection.changed ? (protection.value as Record<string, unknown>) : null;
    return { ...assessed, decision: next, rewrittenEnvelope };
  }

  /**
   * A message other than a tool call (session plumbing, notifications, the client's answers to server
   * requests such as sampling and elicitation): authorized by the caller; with data protection on, what
   * it carries (its params, or the answer's result or error) is inspected like tool arguments, against
   * the upstream it goes to, and masked, refused or checked against data-flow rules.
   */
  function assessOtherMessage(message: JsonRpcMessage, call: AgentCall, denial: DecisionReason | null): AssessedCall {
    const unassessed = { retryAfterSeconds: null, rewritten: null, rewrittenQuery: null, rewrittenPath: null };
    const { part, payload } = otherMessagePayload(message);
    const dp = persona!.dataProtection;
    if (!dp.active || payload === undefined || payload === null || typeof payload !== 'object' || (denial !== null && persona!.persona.mode !== 'monitor')) {
      return { decision: makeDecision(call, denial), ...unassessed };
    }
    const to = flowDestination(undefined);
    const protection = protectRequestJson(dp, deps.flow, flowSession(), payload, to, 'message', inspectedAheadFor(payload, to));
    const findings = locatedIn(part, protection.findings);
    const decision = makeDecision(call, denial ?? protection.denial, { findings, notes: denial && protection.denial ? [protection.denial, ...protection.notes] : protection.notes });
    return { decision, ...unassessed, rewritten: protection.changed ? { value: protection.value, part } : null };
  }

  /**
   * The stages every tool call and REST operation passes, in order: authorization
   * (already decided by the caller), data protection on what the agent sends, then
   * behaviour. An enforced refusal stops the later stages; in monitor mode every
   * stage runs and records what it would have done.
   * `payload` is the tool arguments (MCP) or the raw body (REST, null without one).
   */
  function assessCall(call: AgentCall, tool: string, payload: unknown, authorization: DecisionReason | null, resultKey: string | number | null, requestBytes: number): AssessedCall {
    const monitor = persona!.persona.mode === 'monitor';
    const notes: DecisionReason[] = [];
    let denial = authorization;
    const deny = (reason: DecisionReason) => {
      if (denial === null) denial = reason;
      else notes.push(reason);
    };
    const toolClass = persona!.behaviour.classify(route!.upstream, tool).toolClass;
    const destination: FlowEndpoint = { upstream: route!.upstream, environment: upstream!.environment, tool, toolClass };

    let findings: DataFinding[] = [];
    let rewritten: AssessedCall['rewritten'] = null;
    if (denial === null || monitor) {
      const protection =
        payload instanceof Buffer
          ? requestIsForm()
            ? protectRequestForm(payload, destination)
            : protectRequestBody(persona!.dataProtection, deps.flow, flowSession(), payload, destination, 'request body', inspectedAheadFor(payload, destination))
          : payload === null
            ? null
            : protectRequestJson(persona!.dataProtection, deps.flow, flowSession(), payload, destination, 'tool arguments', inspectedAheadFor(payload, destination));
      if (protection) {
        findings = protection.findings;
        notes.push(...protection.notes);
        if (protection.denial) deny(protection.denial);
        if (protection.changed) rewritten = { value: protection.value };
      }
    }
    /** Takes what inspecting one part of a REST request found, its findings located under `part` ("path", "query"). */
    const adopt = (result: RequestProtection<unknown>, part: string) => {
      findings = [...findings, ...locatedIn(part, result.findings)];
      notes.push(...result.notes);
      if (result.denial) deny(result.denial);
    };
    // REST path segments are what the agent sends too ("/tokens/ghp_..."). They are inspected even for a
    // refused call: the audit trail names a REST call by its path, and never with the value in it.
    let rewrittenPath: string | null = null;
    let recordedCall: AgentCall = call.kind === 'rest' ? { ...call, method: recordedMethod(call.method) } : call;
    if (call.kind === 'rest' && persona!.dataProtection.active) {
      const encoded = call.path.split('/');
      const decoded = encoded.map(decodePathSegment);
      const segments = protectRequestJson(persona!.dataProtection, deps.flow, flowSession(), decoded, destination, 'path');
      if (segments.findings.length > 0) {
        recordedCall = { ...call, method: recordedCall.method, path: redactFlaggedSegments(encoded, segments.findings).join('/') };
        if (denial === null || monitor) {
          adopt(segments, 'path');
          if (segments.changed) rewrittenPath = segments.value.map((segment, i) => (segment === decoded[i] ? encoded[i] : encodeURIComponent(segment))).join('/');
        }
      }
    }
    // REST query parameters too ("?api_key=...", "?password=...").
    let rewrittenQuery: string | null = null;
    if ((denial === null || monitor) && call.kind === 'rest' && Object.keys(call.query).length > 0) {
      const query = protectRequestJson(persona!.dataProtection, deps.flow, flowSession(), call.query, destination, 'query');
      adopt(query, 'query');
      // Only the values that changed are written again; the rest of the query goes on as sent.
      const rawPath = requestHeaders.get(':path') ?? '';
      if (query.changed) rewrittenQuery = withEditedFields(rawPath.slice(rawPath.indexOf('?') + 1), call.query, query.value);
    }

    let riskScore: number | null = null;
    let retryAfterSeconds: number | null = null;
    if (denial === null || monitor) {
      // Reasons and alerts name the tool as the audit trail does: an MCP call's recorded name, a REST path as recorded.
      const recordedTool = recordedCall.kind === 'mcp' ? (recordedCall.tool ?? tool) : call.kind === 'rest' && recordedCall.kind === 'rest' && tool === `${call.method} ${call.path}` ? `${recordedCall.method} ${recordedCall.path}` : tool;
      const behaviourCall = behaviourCallOf(tool, toolClass, payload instanceof Buffer ? ((call as { body?: unknown }).body ?? null) : payload, requestBytes, recordedTool);
      const check = checkBehaviour(deps.behaviour, persona!.behaviour, behaviourCall);
      riskScore = check.riskScore;
      if (check.stop) {
        if (denial === null) retryAfterSeconds = check.retryAfterSeconds;
        deny(check.stop);
      }
      notes.push(...check.notes);
      if (resultKey !== null) pendingCalls.set(resultKey, { tool, behaviourCall });
    }
    // An authorization refusal quotes the operation as the agent sent it; the record quotes it as recorded.
    const recordedDenial = call.kind === 'rest' && recordedCall.kind === 'rest' ? quotingAsRecorded(denial, [call.path, recordedCall.path], [call.method, recordedCall.method]) : denial;
    return { decision: makeDecision(recordedCall, recordedDenial, { findings, riskScore, notes }), retryAfterSeconds, rewritten, rewrittenQuery, rewrittenPath };
  }

  function behaviourCallOf(tool: string, toolClass: BehaviourCall['toolClass'], args: unknown, requestBytes: number, recordedTool = tool): BehaviourCall {
    return {
      persona: route!.persona,
      agent: credential!.agent,
      user: null,
      sessionId: context!.sessionId,
      credentialId: credential!.id,
      upstream: route!.upstream,
      tool,
      ...(recordedTool !== tool ? { recordedTool } : {}),
      ...(toolClass ? { toolClass } : {}),
      arguments: args,
      requestBytes,
    };
  }

  function requestDeclaresJson(): boolean {
    return isJsonContentType((requestHeaders.get('content-type') ?? '').toLowerCase());
  }

  function requestIsForm(): boolean {
    return (requestHeaders.get('content-type') ?? '').toLowerCase().startsWith('application/x-www-form-urlencoded');
  }

  /**
   * An HTML form body (`a=1&b=x+y`) is read field by field, decoded, as a JSON object is: read as raw
   * text, a card written with "+" for its spaces or an address with "%40" would pass unseen. Only the
   * fields that changed are encoded again; every other byte goes on as sent (withEditedFields).
   */
  function protectRequestForm(body: Buffer, destination: FlowEndpoint): RequestProtection<Buffer> {
    const text = body.toString('utf8');
    const fields = parameters(new URLSearchParams(text));
    // A form inspected on the worker is found by its body (requestPartsToInspect).
    const protection = protectRequestJson(persona!.dataProtection, deps.flow, flowSession(), fields, destination, 'request body', inspectedAheadFor<typeof fields>(body, destination));
    return { ...protection, value: protection.changed ? Buffer.from(withEditedFields(text, fields, protection.value), 'utf8') : body };
  }

  /**
   * Whose memory of sensitive values a call reads and adds to: the authenticated agent's, within the
   * Persona. Not the MCP session's: the agent's client chooses the Mcp-Session-Id it sends, so a value
   * read under one id would pass under another (or under none). Every session and credential of one
   * agent shares what it read.
   */
  function flowSession(): string {
    return flowSessionOf(route!.persona, credential!.agent);
  }

  /** Protocol 2026-07-28 puts the method and name in headers; they must agree with the body. */
  function checkStatelessHeaders(messages: JsonRpcMessage[], protocolVersion: string | undefined): DecisionReason | null {
    const headerMethod = requestHeaders.get('mcp-method');
    const headerName = requestHeaders.get('mcp-name');
    if (headerMethod === undefined && headerName === undefined) {
      return protocolVersion !== undefined && statelessProtocols.has(protocolVersion) && messages[0]?.type !== 'response'
        ? { stage: 'protocol', code: 'mcp_headers_missing', message: `protocol ${protocolVersion} requires the Mcp-Method header` }
        : null;
    }
    const first = messages[0];
    if (messages.length !== 1 || !first || first.type === 'response') {
      return { stage: 'protocol', code: 'header_body_mismatch', message: 'Mcp-Method/Mcp-Name headers were sent with a body that is not a single request' };
    }
    const bodyName = first.method === 'tools/call' ? toolNameOf(first.params) : undefined;
    // The message quotes what the agent wrote as the audit trail records it.
    const quoted = (reason: DecisionReason) => quotingAsRecorded(reason, ...[headerMethod, first.method, headerName, bodyName].map((name): [string | undefined, string | undefined] => [name, name === undefined ? undefined : recordedName(name)]));
    if (headerMethod !== first.method) {
      return quoted({ stage: 'protocol', code: 'header_body_mismatch', message: `the Mcp-Method header says "${headerMethod}" but the body calls "${first.method}"` });
    }
    if (headerName !== undefined && headerName !== bodyName) {
      return quoted({ stage: 'protocol', code: 'header_body_mismatch', message: `the Mcp-Name header says "${headerName}" but the body names "${bodyName ?? ''}"` });
    }
    return null;
  }

  /**
   * The Persona's external DLP services (ICAP or webhook), after Mandate's own stages
   * allowed the body: inline ones may rewrite or refuse it; async ones only receive a copy.
   */
  function externalServices(direction: 'request' | 'response'): ExternalDlp[] {
    return (persona?.dataProtection.external ?? []).filter((service) => service.directions.includes(direction));
  }

  /** How long one body may wait for the inline services, in order. */
  function inlineWaitMs(services: ExternalDlp[]): number {
    return services.reduce((total, service) => total + (service.mode === 'inline' ? service.timeoutMs : 0), 0);
  }

  /**
   * How long to ask Envoy to wait for a message whose answer needs `workMs` first: within Envoy's
   * ceiling (it ignores a longer override and keeps its 2 s default), and the moment by which the
   * inline services must be done, so that their fail mode applies before Envoy gives up.
   */
  function messageWait(workMs: number): { waitMs: number; servicesDeadline: number } {
    const waitMs = Math.min(extProcMaxMessageWaitMs, workMs + externalDlpWaitMarginMs);
    return { waitMs, servicesDeadline: deps.now() + waitMs - externalDlpWaitMarginMs };
  }

  /** What the Persona's detectors find in a service's own words (its block reason), masked whatever their action. */
  function maskFindings(text: string): string {
    const compiled = persona?.dataProtection;
    return compiled && compiled.active && compiled.set ? maskFoundText(compiled, text) : text;
  }

  /**
   * One body through the services, in order, each seeing what the one before let through: the body
   * as they leave it, or the first refusal. A rewrite or a failure passed under failMode open is a note
   * for the call's outcome. A JSON-RPC body (MCP, or one event's message) may be rewritten only in
   * ways that keep the exchange (rewriteChangesExchange). Each inline service waits at most its
   * timeoutMs and no later than `deadline` (what Envoy's wait leaves): one that would wait longer is
   * cut short, and its fail mode applies.
   */
  async function consultServices(
    services: ExternalDlp[],
    direction: 'request' | 'response',
    body: Buffer,
    contentType: string,
    deadline: number,
    jsonRpc = route!.kind === 'mcp',
  ): Promise<{ body: Buffer; refusal: DecisionReason | null }> {
    const tool = responseToolContext().tool;
    const caller = { agent: credential?.agent ?? '', persona: route!.persona, sourceAddress: context?.sourceAddress ?? null };
    for (const service of services) {
      const before = body;
      const rewriteProblem = jsonRpc ? (rewritten: Buffer) => rewriteChangesExchange(before, rewritten) : undefined;
      const timeoutMs = service.mode === 'inline' ? Math.max(1, Math.min(service.timeoutMs, Math.floor(deadline - deps.now()))) : service.timeoutMs;
      const outcome = await consultExternalDlp({ ...service, timeoutMs }, { direction, upstream: route!.upstream, ...(tool !== undefined ? { tool } : {}), contentType, body, caller }, { ...(rewriteProblem ? { rewriteProblem } : {}), maskText: maskFindings });
      if (outcome.action === 'block') return { body, refusal: { stage: 'data-protection', code: outcome.code, message: outcome.message } };
      const name = `${service.type} ${urlWithoutCredentials(service.url)}`;
      if (outcome.note) outcomeNotes.push({ stage: 'data-protection', code: outcome.note.code, message: `${name}: ${outcome.note.message}` });
      if (outcome.later) {
        asyncVerdicts.push(
          outcome.later.then((note) => {
            const message = `${name}: ${note.message}`;
            // An event stream sends each message: the same verdict is noted once.
            if (!outcomeNotes.some((n) => n.code === note.code && n.message === message)) outcomeNotes.push({ stage: 'data-protection', code: note.code, message });
          }),
        );
      }
      if (outcome.body) body = outcome.body;
    }
    return { body, refusal: null };
  }

  /**
   * Records an external DLP refusal (not enforced in monitor mode); true when it is enforced. A refused
   * request is a decision; a refused answer is recorded in the call's response event, as Mandate's own
   * refusals of answers are (`agentStatus`: what the agent receives when it is enforced).
   */
  function recordExternalRefusal(reason: DecisionReason, direction: 'request' | 'response', agentStatus: number | null = null): boolean {
    const enforced = persona?.persona.mode !== 'monitor';
    if (direction === 'response') refuseAnswer(reason, enforced, enforced ? agentStatus : upstreamStatus);
    else recordDenial({ ...makeDecision(decisions[0]?.call ?? mcpCall('external-dlp'), reason), enforced });
    return enforced;
  }

  /** `deadline`, when given, is when the services must be done (a caller that asked Envoy to wait for more work); else it is set here. */
  function withExternalDlp(direction: 'request' | 'response', original: Buffer, response: ProcessingResponse | null, deadline?: number): ProcessingResponse | null | DeferredAnswer {
    const services = externalServices(direction);
    const phase = direction === 'request' ? response?.request_body : response?.response_body;
    if (services.length === 0 || !phase || answered) return response;
    const { waitMs, servicesDeadline } = messageWait(inlineWaitMs(services));
    const mutation = phase.response?.body_mutation;
    const forwarded = mutation && 'body' in mutation ? mutation.body : original;
    const contentType = direction === 'request' ? (requestHeaders.get('content-type') ?? 'application/json') : responseContentType;
    const deferred = (async () => {
      const { body, refusal } = await consultServices(services, direction, forwarded, contentType, deadline ?? servicesDeadline);
      if (refusal) return refuseByExternalDlp(direction, refusal);
      if (body === forwarded) return response;
      return {
        [direction === 'request' ? 'request_body' : 'response_body']: {
          response: { ...phase.response, status: 'CONTINUE', header_mutation: headerMutation([['content-length', String(body.length)]], []), body_mutation: { body } },
        },
      } as ProcessingResponse;
    })();
    return { deferred, waitMs };
  }

  /**
   * An event stream's messages go to the Persona's response-direction external DLP one at a time, as
   * their events complete and after Mandate's own stages: a rewrite replaces the event's data (it
   * must answer the same request), a block replaces the event with a JSON-RPC error for its request
   * and ends the stream, as a value Mandate's own rules block does. Monitor mode records a block and
   * passes the event.
   */
  function withExternalDlpOnEvents(response: ProcessingResponse): ProcessingResponse | DeferredAnswer {
    const services = externalServices('response');
    const mutation = response.response_body?.response?.body_mutation;
    if (services.length === 0 || streamBlocked || answered || !mutation || !('body' in mutation) || !mutation.body || mutation.body.length === 0) return response;
    // The body holds whole events (the SSE stage writes no other), so the splitter ends with it.
    const splitter = createSseSplitter();
    const events = [...splitter.push(Buffer.from(mutation.body)), ...splitter.end()];
    if (!events.some((event) => event.data !== null)) return response;
    // The events share one wait: once it is spent, the services' fail mode applies to the rest.
    const { waitMs, servicesDeadline } = messageWait(inlineWaitMs(services) * events.length);
    const deferred = (async (): Promise<ProcessingResponse> => {
      const out: string[] = [];
      for (const event of events) {
        if (streamBlocked) break;
        if (event.data === null) {
          out.push(`${event.raw}\n\n`);
          continue;
        }
        const sent = Buffer.from(event.data, 'utf8');
        const { body, refusal } = await consultServices(services, 'response', sent, 'application/json', servicesDeadline, true);
        let data = event.data;
        if (refusal && recordExternalRefusal(refusal, 'response', upstreamStatus)) {
          streamBlocked = true;
          data = JSON.stringify(jsonRpcError(jsonRpcIdOf(event.data), jsonRpcCodes.policyDenied, `Mandate: ${refusal.message}`, { mandate: { code: refusal.code, persona: route!.persona, configVersion: policy?.version ?? 0 } }));
        } else if (!refusal && body !== sent) {
          // One line of data: the rewrite was parsed as JSON already (rewriteChangesExchange).
          data = JSON.stringify(JSON.parse(body.toString('utf8')));
        }
        out.push(`${data === event.data ? event.raw : withData(event, data)}\n\n`);
      }
      const body = Buffer.from(out.join(''), 'utf8');
      return { response_body: { response: { status: 'CONTINUE', body_mutation: body.length > 0 ? { body } : { clear_body: true } } } };
    })();
    return { deferred, waitMs };
  }

  function refuseByExternalDlp(direction: 'request' | 'response', reason: DecisionReason): ProcessingResponse {
    if (!recordExternalRefusal(reason, direction, direction === 'response' ? (route!.kind === 'rest' ? 502 : upstreamStatus) : null)) return direction === 'request' ? { request_body: { response: { status: 'CONTINUE' } } } : { response_body: { response: { status: 'CONTINUE' } } };
    if (direction === 'response') {
      if (route!.kind === 'rest') {
        answered = true;
        return immediate(502, problem(502, reason), [['content-type', 'application/problem+json']], reason.code);
      }
      const body = Buffer.from(JSON.stringify(toolResultAnswer(reason)), 'utf8');
      return { response_body: { response: { status: 'CONTINUE', header_mutation: headerMutation([['content-length', String(body.length)]], []), body_mutation: { body } } } };
    }
    answered = true;
    finish();
    if (route!.kind === 'rest') return immediate(403, problem(403, reason), [['content-type', 'application/problem+json']], reason.code);
    const ids = decisions.map((d) => (d.call.kind === 'mcp' ? d.call.jsonRpcId : undefined)).filter((id): id is string | number => id !== undefined && id !== null);
    const errors = ids.map((id) => jsonRpcError(id, jsonRpcCodes.policyDenied, `Mandate: ${reason.message}`, { mandate: { code: reason.code, persona: route!.persona, configVersion: policy?.version ?? 0 } }));
    if (errors.length === 0) return immediate(202, '', [], reason.code);
    return immediate(200, JSON.stringify(errors.length === 1 ? errors[0] : errors), [['content-type', 'application/json'], ['cache-control', 'no-store']], reason.code);
  }

  function onResponseHeaders(request: ProcessingRequest): ProcessingResponse {
    const headers = headerMap(request.response_headers?.headers?.headers);
    responseContentType = headers.get('content-type') ?? 'application/octet-stream';
    upstreamStatus = Number(headers.get(':status') ?? 0) || null;
    const setHeaders: [string, string][] = [];
    if (policy) setHeaders.push(['x-mandate-config-version', String(policy.version)]);
    const contentType = (headers.get('content-type') ?? '').toLowerCase();
    const endOfStream = request.response_headers?.end_of_stream === true;
    // Answers can also arrive on the session's GET event stream (resumed or server-routed): every
    // tool list there is filtered by its shape, and results are inspected when data protection is on.
    const eventStreamToInspect = serverEventStream && isSuccess(upstreamStatus) && contentType.startsWith('text/event-stream');
    // A tool list is filtered whatever the status and the label the upstream gives its answer: an agent
    // may read a 201, or a JSON body labelled application/octet-stream, all the same.
    const filterToolsList = toolsListIds.size > 0 || eventStreamToInspect;
    const restCall = pendingCalls.get(restResultKey);
    if (route?.kind === 'rest' && restCall && persona) {
      // A REST result is an error by its status; the body adds nothing the behaviour stage reads.
      recordBehaviourResult(deps.behaviour, persona.behaviour, restCall.behaviourCall, { isError: (upstreamStatus ?? 500) >= 400 });
    }
    // Results are read when data protection inspects them (every answer to a request: tool results, task
    // results, ...) or the behaviour stage counts them (MCP tool results).
    inspectResponse =
      persona !== null &&
      (persona.dataProtection.active || (route?.kind === 'mcp' && persona.behaviour.active)) &&
      (route?.kind === 'rest'
        ? decisions.length > 0 && !decisions.some(blocks)
        : pendingCalls.size > 0 || eventStreamToInspect || (persona.dataProtection.active && requestIds.length > 0 && !decisions.some(blocks)));
    if (inspectResponse && persona!.dataProtection.active) {
      const refusal = protectResponseHeaders(headers, setHeaders);
      if (refusal) return refusal;
    }
    let mode_override: ProcessingResponse['mode_override'];
    if ((filterToolsList || inspectResponse) && !endOfStream) {
      const encoding = contentEncodingOf(headers);
      if (encoding !== null) {
        // Routes drop accept-encoding, so an upstream that compresses anyway does so unasked.
        return refuseAnswerAtHeaders({
          stage: 'data-protection',
          code: 'unsupported_content_encoding',
          message: `the upstream's answer is encoded ("content-encoding: ${encoding}") and Mandate must read it before passing it on`,
        });
      }
      // The tool list differs per Persona: no shared cache may keep it.
      if (filterToolsList) setHeaders.push(['cache-control', 'private, no-store']);
      responseIsJson = isJsonContentType(contentType);
      const protect = inspectResponse && persona!.dataProtection.active;
      const charset = declaredCharset(contentType);
      if (contentType.startsWith('text/event-stream')) {
        // Event streams are UTF-8 by their definition (and MCP's); Mandate reads no other charset in a stream.
        if (charset.kind !== 'utf-8') return refuseAnswerAtHeaders(unreadableCharset(charset.charset, 'an event stream'));
        responseMode = 'sse';
        sse = createSseSplitter();
        if (protect) streamInspector = createStreamInspector(persona!.dataProtection, { ...responseInspectContext(), contentType, maxEventBytes: persona!.persona.maxBodyBytes });
        mode_override = processingModeWithResponseBody('STREAMED');
      } else if (protect && toolsListIds.size === 0 && isJsonLinesType(contentType)) {
        // One JSON value per line, often long-lived: inspected as it streams, never buffered whole.
        if (charset.kind !== 'utf-8') return refuseAnswerAtHeaders(unreadableCharset(charset.charset, 'a JSON-lines stream'));
        responseMode = 'text-stream';
        streamInspector = createStreamInspector(persona!.dataProtection, { ...responseInspectContext(), contentType });
        mode_override = processingModeWithResponseBody('STREAMED');
      } else if (toolsListIds.size > 0 || responseIsJson || (protect && textualTypes.test(contentType))) {
        // A whole answer: JSON, text, or any answer to tools/list, whose body decides whether it is a tool list.
        if (charset.kind === 'unsupported') return refuseAnswerAtHeaders(unreadableCharset(charset.charset, 'an answer'));
        answerSingleByte = charset.kind === 'single-byte' ? charset.charset : null;
        const declared = headers.get('content-length');
        if (declared !== undefined && Number(declared) > persona!.persona.maxBodyBytes) return refuseAnswerAtHeaders(answerTooLarge(`is ${Number(declared)} bytes`));
        responseMode = 'buffered';
        // An answer of no declared length may grow past any limit. Envoy buffers it whole only up to its
        // stream buffer (the route's limit, at least the listener's 32 KiB): past that, in BUFFERED mode, it
        // stalls while ext_proc answers the headers or answers a bare 500 itself. In BUFFERED_PARTIAL
        // mode it holds the headers and hands over what it buffered, without end_of_stream, once the
        // answer outgrows that buffer: ext_proc sees every answer whole or knows it is too large.
        mode_override = processingModeWithResponseBody(declared === undefined ? 'BUFFERED_PARTIAL' : 'BUFFERED');
      } else if (protect && !isBinaryType(contentType)) {
        // No content type, application/octet-stream, a type Mandate does not know, or an office type
        // (CSV exports are labelled so): the bytes decide. Media, fonts, PDF and archives are not asked
        // for: once streamed, every chunk would cross ext_proc, even after the first was judged binary.
        if (charset.kind !== 'utf-8') return refuseAnswerAtHeaders(unreadableCharset(charset.charset, 'a streamed answer'));
        responseMode = 'sniff';
        mode_override = processingModeWithResponseBody('STREAMED');
      }
    }
    // A streamed answer is rewritten as it passes (events rebuilt, values masked): a length the upstream
    // declared for it no longer holds, and Envoy refuses a mutated body that disagrees with it.
    const remove = mode_override?.response_body_mode === 'STREAMED' ? ['content-length'] : [];
    return {
      response_headers: { response: { status: 'CONTINUE', header_mutation: headerMutation(setHeaders, remove) } },
      ...(mode_override ? { mode_override } : {}),
    };
  }

  /**
   * The upstream's answer headers are inspected like its body (a token in `X-Debug-Token`, a card in a
   * `Location`): masked in place, or the answer is refused as a blocked body is. What they reveal is
   * remembered for data-flow control. Not inspected: the status, the length and the date.
   */
  function protectResponseHeaders(headers: Map<string, string>, setHeaders: [string, string][]): ProcessingResponse | null {
    const inspected = [...headers].filter(([name]) => !name.startsWith(':') && !uninspectedResponseHeaders.has(name));
    if (inspected.length === 0) return null;
    const values: Record<string, string> = Object.fromEntries(inspected.map(([name, value]) => [name, headerText(value)]));
    const protection = inspectJson(persona!.dataProtection, values, { direction: 'response', upstream: route!.upstream, ...responseToolContext() });
    if (protection.findings.length === 0) return null;
    responseFindings.push(...locatedIn('headers', protection.findings));
    signalSession(rememberResponseValues(persona!.dataProtection, deps.flow, flowSession(), responseOrigin(), protection.fingerprints));
    if (protection.blocked) return refuseAnswerAtHeaders(blockedReason(protection.blocked, 'answer header'));
    if (protection.wouldBlock) refuseAnswer(blockedReason(protection.wouldBlock, 'answer header'), false, upstreamStatus);
    if (protection.changed) setHeaders.push(...changedHeaderValues(Object.fromEntries(inspected), values, protection.value));
    return null;
  }

  /**
   * A response that must be read (a tool list to filter, a result to inspect) but cannot be: larger
   * than the Persona's maxBodyBytes (by its declared length, refused before Envoy starts buffering
   * it; without one, once ext_proc holds more than the limit, see refuseOversizedAnswer), or
   * encoded; or one whose headers carry a value a block rule stops. It is refused with a stable code,
   * never passed on unread; a monitor-mode Persona records that and lets it pass.
   */
  function refuseAnswerAtHeaders(reason: DecisionReason): ProcessingResponse {
    return refuseWholeAnswer(reason, { response_headers: { response: { status: 'CONTINUE' } } });
  }

  /** The refusal of a whole answer, at its headers or its (held) body; `pass` is what lets it through in monitor mode. */
  function refuseWholeAnswer(reason: DecisionReason, pass: ProcessingResponse): ProcessingResponse {
    if (persona!.persona.mode === 'monitor') {
      refuseAnswer(reason, false, upstreamStatus);
      return pass;
    }
    answered = true;
    if (route!.kind === 'rest') {
      refuseAnswer(reason, true, 502);
      return immediate(502, problem(502, reason), [['content-type', 'application/problem+json']], reason.code);
    }
    refuseAnswer(reason, true, 200);
    return immediate(200, JSON.stringify(toolResultAnswer(reason)), [['content-type', 'application/json'], ['cache-control', 'no-store']], reason.code);
  }

  function answerTooLarge(size: string): DecisionReason {
    return {
      stage: 'data-protection',
      code: 'response_too_large',
      message: `the upstream's answer ${size}; this Persona reads at most ${persona!.persona.maxBodyBytes} (maxBodyBytes) before passing an answer on`,
    };
  }

  /**
   * A whole answer of no declared length, as Envoy hands it over (BUFFERED_PARTIAL): the answer itself
   * when it ended within Envoy's stream buffer, or the part Envoy buffered (no end_of_stream) when it
   * outgrew it. One larger than the Persona's maxBodyBytes, or not whole, is refused while Envoy still
   * holds its headers: the agent gets the refusal and nothing of the answer, and Envoy drops the rest.
   * Null: the answer is whole and within the limit.
   */
  function refuseOversizedAnswer(body: Buffer, endOfStream: boolean): ProcessingResponse | null {
    const limit = persona!.persona.maxBodyBytes;
    if (endOfStream && body.length <= limit) return null;
    // Without end_of_stream more follows what Envoy held (or only trailers do): not read whole, so refused.
    const size = endOfStream ? `is ${body.length} bytes` : body.length > limit ? `is more than ${body.length} bytes (it declared no length)` : `did not arrive whole within ${body.length} bytes`;
    return refuseWholeAnswer(answerTooLarge(size), { response_body: { response: { status: 'CONTINUE' } } });
  }

  /**
   * Mandate refused the upstream's answer, or cut it short (enforced), or would have (monitor mode):
   * recorded in the response event of the calls it answers (see finish), with the status the agent
   * received. The first enforced refusal is the one recorded.
   */
  function refuseAnswer(reason: DecisionReason, enforced: boolean, agentStatus: number | null): void {
    if (answerRefusal === null || (enforced && !answerRefusal.enforced)) answerRefusal = { reason, enforced, agentStatus };
  }

  /**
   * How data protection reads the answer's body: rules may name the tool, and the JSON-RPC ids the
   * client sent come back in the response messages uninspected (the client matches answers by them; a
   * sensitive id is the request side's to stop).
   */
  function responseInspectContext(): InspectContext {
    return { direction: 'response', upstream: route!.upstream, ...responseToolContext(), ...(requestIds.length > 0 ? { clientIds: requestIds } : {}) };
  }

  /** Data-protection rules may name the tool: known when the response answers exactly one call. */
  function responseToolContext(): { tool?: string } {
    if (pendingCalls.size !== 1) return {};
    const only = pendingCalls.values().next().value;
    return only ? { tool: only.tool } : {};
  }

  function responseOrigin(): FlowEndpoint {
    return { upstream: route!.upstream, environment: upstream!.environment, ...responseToolContext() };
  }

  function onResponseBody(chunk: Buffer, endOfStream: boolean): ProcessingResponse {
    if (responseMode === 'sniff') startSniffedStream(chunk, endOfStream);
    if (responseMode === 'buffered') return onBufferedResponse(chunk);
    if (responseMode === 'sse' && sse) return onSseResponseChunk(chunk, endOfStream);
    if (responseMode === 'text-stream' && streamInspector) return onTextStreamChunk(chunk, endOfStream);
    return { response_body: { response: { status: 'CONTINUE' } } };
  }

  /** A whole JSON (or text) response: filter the tool list, count the results, protect the data. */
  function onBufferedResponse(received: Buffer): ProcessingResponse {
    const original = readAnswer(received);
    const body = bufferedResponseToInspect(original);
    const protection = protectsBufferedResponse() ? protectResponseBody(persona!.dataProtection, body, responseInspectContext()) : null;
    return inDeclaredCharset(completeBufferedResponse(original, body, protection));
  }

  /** The whole answer as UTF-8: one in a single-byte charset is decoded (an ASCII one reads the same either way). */
  function readAnswer(received: Buffer): Buffer {
    return answerSingleByte && !isAscii(received) ? Buffer.from(decodeSingleByte(received, answerSingleByte), 'utf8') : received;
  }

  /** A changed answer written back in the single-byte charset its content type still declares. */
  function inDeclaredCharset(response: ProcessingResponse): ProcessingResponse {
    const mutation = response.response_body?.response?.body_mutation;
    if (!answerSingleByte || !mutation || !('body' in mutation) || !mutation.body) return response;
    const body = encodeSingleByte(mutation.body.toString('utf8'), answerSingleByte, responseIsJson || looksLikeJsonText(mutation.body));
    return {
      ...response,
      response_body: {
        response: { ...response.response_body!.response!, header_mutation: headerMutation(replacedAnswerHeaders(body), []), body_mutation: { body } },
      },
    };
  }

  /** The whole answer as data protection reads it: a tool list is filtered first. */
  function bufferedResponseToInspect(original: Buffer): Buffer {
    return toolsListIds.size > 0 ? filterJsonResponse(original) : original;
  }

  function protectsBufferedResponse(): boolean {
    return inspectResponse && persona!.dataProtection.active;
  }

  /**
   * A large whole answer is inspected on the worker thread (dlp/body-inspection.ts), so it does not
   * stall the other requests; the rest of the answer's handling and external DLP follow as usual.
   * If the worker fails, the answer is inspected here: never passed unread.
   */
  function onLargeBufferedResponse(received: Buffer, pool: BodyInspectionPool): DeferredAnswer {
    // Envoy waits for the worker and then for the answer's inline external DLP services.
    const { waitMs, servicesDeadline } = messageWait(largeBodyWaitMs + inlineWaitMs(externalServices('response')));
    const original = readAnswer(received);
    const body = bufferedResponseToInspect(original);
    const context = responseInspectContext();
    const deferred = pool
      .inspect(persona!.dataProtection, body, context, `upstream ${route!.upstream}`)
      .catch((error: unknown) => {
        // Over its budget: refused (internalError), not inspected again here.
        if (isOverBudget(error)) throw error;
        deps.log?.('body_inspection_inline', { reason: (error as Error).message, bytes: body.length });
        return protectResponseBody(persona!.dataProtection, body, context);
      })
      .then((protection) => {
        const next = withExternalDlp('response', received, timed(() => inDeclaredCharset(completeBufferedResponse(original, body, protection))), servicesDeadline);
        return next !== null && 'deferred' in next ? next.deferred : next;
      });
    return { deferred, waitMs };
  }

  function completeBufferedResponse(original: Buffer, filtered: Buffer, protection: InspectResult<Buffer> | null): ProcessingResponse {
    let body = filtered;
    // The behaviour stage reads the results as the upstream sent them, with what data protection found in each.
    if (inspectResponse && route!.kind === 'mcp' && persona!.behaviour.active && responseIsJson) recordJsonResults(body, protection?.findings ?? []);
    if (protection) {
      responseFindings.push(...protection.findings);
      if (protection.wouldBlock) refuseAnswer(blockedReason(protection.wouldBlock, route!.kind === 'mcp' && pendingCalls.size > 0 ? 'tool result' : 'answer'), false, upstreamStatus);
      signalSession(rememberResponseValues(persona!.dataProtection, deps.flow, flowSession(), responseOrigin(), protection.fingerprints));
      if (protection.blocked) {
        if (route!.kind === 'rest') {
          const reason = blockedReason(protection.blocked, 'answer');
          refuseAnswer(reason, true, 502);
          answered = true;
          return immediate(502, problem(502, reason), [['content-type', 'application/problem+json']], reason.code);
        }
        const reason = blockedReason(protection.blocked, pendingCalls.size > 0 ? 'tool result' : 'answer');
        refuseAnswer(reason, true, upstreamStatus);
        body = Buffer.from(JSON.stringify(toolResultAnswer(reason)), 'utf8');
      } else if (protection.changed) {
        body = protection.value;
      }
    }
    if (body === original) return { response_body: { response: { status: 'CONTINUE' } } };
    return {
      response_body: {
        response: {
          status: 'CONTINUE',
          header_mutation: headerMutation(replacedAnswerHeaders(body), []),
          body_mutation: { body },
        },
      },
    };
  }

  /** Headers for a replaced whole answer: its length, and its type when Mandate wrote an error in place of an unreadable tool list. */
  function replacedAnswerHeaders(body: Buffer): [string, string][] {
    return [['content-length', String(body.length)], ...(toolsListUnreadable ? [['content-type', 'application/json'] as [string, string]] : [])];
  }

  /**
   * The first chunk of an answer of no or an unknown content type decides, from at most its first
   * `sniffedBytes`: binary ones (a file) pass as they are from here on; anything else is inspected as a
   * raw text stream, so a JSON or text answer with the wrong label is not passed unread.
   */
  function startSniffedStream(first: Buffer, endOfStream: boolean): void {
    if (first.length === 0 && !endOfStream) return;
    if (looksBinary(first)) {
      responseMode = 'none';
      return;
    }
    responseMode = 'text-stream';
    streamInspector = createStreamInspector(persona!.dataProtection, { ...responseInspectContext(), contentType: 'text/plain' });
  }

  /**
   * One chunk of a JSON-lines (or other line-oriented text) stream: masked as it flows, with a short
   * tail held back so a value split across chunks is seen whole. A blocked value ends the stream with
   * one JSON line naming the refusal in its place (the status line has already gone out).
   */
  function onTextStreamChunk(chunk: Buffer, endOfStream: boolean): ProcessingResponse {
    if (streamBlocked) return { response_body: { response: { status: 'CONTINUE', body_mutation: { clear_body: true } } } };
    const inspected = inspectStreamed(streamInspector!, chunk, endOfStream);
    let body = inspected.body;
    const exceeded = streamInspector!.exceeded();
    if (inspected.blocked || exceeded) {
      // The lines before the blocked one go out; the blocked line and the rest become one error line.
      // Held text that outgrew the hold limit without a safe cut was dropped: the stream ends the same way.
      streamBlocked = true;
      const error: DecisionReason = inspected.blocked
        ? blockedReason(inspected.blocked, 'stream')
        : {
            stage: 'data-protection',
            code: 'stream_hold_exceeded',
            message: `more than ${exceeded!.limitBytes} bytes of the answer had no point where they could be released without cutting through a value (the Persona's dataProtection.maxStreamHoldBytes); the rest was dropped`,
          };
      refuseAnswer(error, true, upstreamStatus);
      const separator = body.length > 0 && body[body.length - 1] !== 0x0a ? '\n' : '';
      body = Buffer.concat([body, Buffer.from(`${separator}${JSON.stringify({ error: { code: error.code, message: `Mandate: ${error.message}` } })}\n`, 'utf8')]);
    }
    return { response_body: { response: { status: 'CONTINUE', body_mutation: body.length > 0 ? { body } : { clear_body: true } } } };
  }

  /**
   * Passes streamed bytes through the stream inspector: what may be sent now, the findings it made,
   * and the first blocked value (the caller replaces the output and ends the stream). The values it
   * revealed go to data-flow memory as they appear.
   */
  function inspectStreamed(inspector: StreamInspector, chunk: Buffer, endOfStream: boolean): { body: Buffer; findings: DataFinding[]; blocked: ReturnType<StreamInspector['blocked']> } {
    const findingsBefore = inspector.findings().length;
    const body = Buffer.concat([inspector.push(chunk), endOfStream ? inspector.end() : Buffer.alloc(0)]);
    const fingerprints = inspector.fingerprints();
    signalSession(rememberResponseValues(persona!.dataProtection, deps.flow, flowSession(), responseOrigin(), fingerprints.slice(streamFingerprintsSeen)));
    streamFingerprintsSeen = fingerprints.length;
    return { body, findings: inspector.findings().slice(findingsBefore), blocked: inspector.blocked() };
  }

  /** One chunk of an event stream: whole events are filtered, counted and protected; a partial one waits. */
  function onSseResponseChunk(chunk: Buffer, endOfStream: boolean): ProcessingResponse {
    if (streamBlocked) return { response_body: { response: { status: 'CONTINUE', body_mutation: { clear_body: true } } } };
    const out: string[] = [];
    const results: unknown[] = [];
    // A final event the upstream left without its blank line is filtered and inspected like any
    // other, and goes out complete, so every stage after this one reads whole events.
    for (const event of endOfStream ? [...sse!.push(chunk), ...sse!.end()] : sse!.push(chunk)) out.push(`${processSseEvent(event, results)}\n\n`);
    if (!endOfStream && sse!.heldBytes() > (persona?.persona.maxBodyBytes ?? 4 * 1024 * 1024)) {
      // One event larger than the Persona's body limit: dropped (up to its end) rather than hold unbounded memory.
      sse!.drop();
      out.push(`event: message\ndata: ${JSON.stringify(jsonRpcError(null, jsonRpcCodes.unavailable, 'Mandate: an event exceeded the size limit and was dropped', { mandate: { code: 'event_too_large' } }))}\n\n`);
    }
    let body: Buffer = Buffer.from(out.join(''), 'utf8');
    let newFindings: DataFinding[] = [];
    if (streamInspector) {
      const inspected = inspectStreamed(streamInspector, body, endOfStream);
      body = inspected.body;
      newFindings = inspected.findings;
      const blocked = inspected.blocked;
      if (blocked) {
        // The inspector passes a blocked event through unchanged: replace it, and end what follows.
        streamBlocked = true;
        const reason = blockedReason(blocked, 'stream');
        refuseAnswer(reason, true, upstreamStatus);
        body = Buffer.from(`event: message\ndata: ${JSON.stringify(toolResultErrors(reason)[0] ?? null)}\n\n`, 'utf8');
      }
    }
    // Results count once their events were inspected. What this chunk's inspection found is attributed
    // to each result in the chunk (a value split across chunks counts where its event completes).
    for (const result of results) recordToolResult(result, newFindings);
    return { response_body: { response: { status: 'CONTINUE', body_mutation: body.length > 0 ? { body } : { clear_body: true } } } };
  }

  /** JSON-RPC errors answering the pending tool calls, for a result that may not reach the agent. */
  /** The errors as the agent expects them: one object for a single request, a list for a batch. */
  function toolResultAnswer(reason: DecisionReason): unknown {
    const errors = toolResultErrors(reason);
    return requestWasBatch ? errors : errors[0];
  }

  function toolResultErrors(reason: DecisionReason): unknown[] {
    // Every request the body carried gets its error: the whole answer is replaced.
    const ids = requestIds.length > 0 ? requestIds : [...pendingCalls.keys()];
    return (ids.length > 0 ? ids : [null]).map((id) =>
      jsonRpcError(id, jsonRpcCodes.policyDenied, `Mandate: ${reason.message}`, { mandate: { code: reason.code, persona: route!.persona, configVersion: policy?.version ?? 0 } }),
    );
  }

  /** Feeds each tool result in a JSON response to the behaviour engine, with the findings inside it. */
  function recordJsonResults(body: Buffer, findings: DataFinding[]): void {
    let value: unknown;
    try {
      value = JSON.parse(body.toString('utf8'));
    } catch {
      return;
    }
    if (!Array.isArray(value)) {
      recordToolResult(value, findings);
      return;
    }
    // A batch: findings are attributed to messages by their JSON path, "$[i]...".
    value.forEach((message, index) => recordToolResult(message, findings.filter((f) => f.location.startsWith(`$[${index}]`))));
  }

  function recordToolResult(message: unknown, findings: DataFinding[]): void {
    const m = message as { id?: string | number; result?: unknown; error?: unknown } | null;
    if (!m || typeof m !== 'object' || m.id === undefined) return;
    const pending = pendingCalls.get(m.id);
    if (pending) recordBehaviourResult(deps.behaviour, persona!.behaviour, pending.behaviourCall, { ...behaviourResultOf(m), sensitive: sensitiveSummary(findings) });
  }

  /**
   * Data protection's gradual-collection signal (the session read many distinct sensitive
   * values) goes to the behaviour stage: rules see it in `signals`, and it raises an alert.
   */
  function signalSession(signal: FlowSignal | null): void {
    if (!signal || !persona?.behaviour.active || !credential) return;
    const first = pendingCalls.values().next().value;
    const call = first?.behaviourCall ?? behaviourCallOf('(event stream)', undefined, null, 0);
    deps.behaviour.signal(persona.behaviour, call, { code: signal.code, message: signal.message });
  }

  function filterJsonResponse(body: Buffer): Buffer {
    let value: unknown;
    try {
      value = JSON.parse(body.toString('utf8'));
    } catch {
      // An error page holds no tool list; a successful answer that is not JSON may hold one Mandate
      // cannot filter: it is replaced (fail closed), whatever its content type said.
      if (!isSuccess(upstreamStatus)) return body;
      // The whole answer is replaced: every request in the body gets the error.
      const errors = unreadableToolsListErrors('a body', requestIds.length > 0 ? requestIds : [...toolsListIds]);
      return Buffer.from(JSON.stringify(requestWasBatch ? errors : errors[0]), 'utf8');
    }
    const filtered = Array.isArray(value) ? value.map(filterToolsListMessage) : filterToolsListMessage(value);
    return Buffer.from(JSON.stringify(filtered), 'utf8');
  }

  /** A tool list Mandate cannot read is not passed on (fail closed): errors for `ids` in its place, the refusal recorded. */
  function unreadableToolsListErrors(what: string, ids: (string | number)[]): unknown[] {
    const reason: DecisionReason = { stage: 'protocol', code: 'upstream_invalid_response', message: `the upstream answered tools/list with ${what} that is not JSON; the tool list cannot be filtered` };
    refuseAnswer(reason, true, upstreamStatus);
    toolsListUnreadable = true;
    return ids.map((id) => jsonRpcError(id, jsonRpcCodes.unavailable, `Mandate: ${reason.message}`, { mandate: { code: reason.code } }));
  }

  /** Filters a tool list in one event; collects tool results (for the behaviour stage) into `results`. */
  function processSseEvent(event: SseEvent, results: unknown[]): string {
    if (event.data === null) return event.raw;
    let value: unknown;
    try {
      value = JSON.parse(event.data);
    } catch {
      // In an answer to tools/list, an event that is not JSON may be one a lenient client reads: as
      // for a whole answer, it is replaced by an error for each tool list asked for. Empty data (a
      // server's priming event, a keep-alive) holds no tool list: clients skip it.
      if (toolsListIds.size === 0 || !isSuccess(upstreamStatus) || event.data.trim() === '') return event.raw;
      return unreadableToolsListErrors('an event', [...toolsListIds])
        .map((error) => withData(event, JSON.stringify(error)))
        .join('\n\n');
    }
    if (inspectResponse && route!.kind === 'mcp' && persona!.behaviour.active) results.push(value);
    const filtered = filterToolsListMessage(value);
    return filtered === value ? event.raw : withData(event, JSON.stringify(filtered));
  }

  function filterToolsListMessage(message: unknown): unknown {
    const m = message as { id?: string | number; result?: { tools?: unknown } } | null;
    if (!m || typeof m !== 'object' || m.id === undefined || !m.result || !Array.isArray(m.result.tools)) return message;
    if (!toolsListIds.has(m.id) && !(serverEventStream && looksLikeToolList(m.result.tools))) return message;
    const grants = persona?.grants.get(route!.upstream);
    const tools = m.result.tools.filter((tool) => typeof (tool as { name?: unknown })?.name === 'string' && isToolVisible(grants, (tool as { name: string }).name));
    // The server's own hints (annotations, description) sharpen how the behaviour stage classes each tool.
    for (const tool of tools as { name: string; annotations?: Record<string, unknown>; description?: unknown }[]) {
      persona?.behaviour.classify(route!.upstream, tool.name, tool.annotations, typeof tool.description === 'string' ? tool.description : undefined);
    }
    return { ...m, result: { ...m.result, tools } };
  }

  function makeDecision(call: AgentCall, denial: DecisionReason | null, extra: { findings?: DataFinding[]; riskScore?: number | null; notes?: DecisionReason[] } = {}): Decision {
    const monitor = persona?.persona.mode === 'monitor';
    const fromHeaders = headerRecord;
    headerRecord = null;
    const notes = fromHeaders ? [...fromHeaders.notes, ...(extra.notes ?? [])] : (extra.notes ?? []);
    const findings = fromHeaders ? [...fromHeaders.findings, ...(extra.findings ?? [])] : (extra.findings ?? []);
    return {
      verdict: denial ? 'deny' : 'allow',
      // Protocol errors are refused even in monitor mode: the message cannot be forwarded meaningfully.
      enforced: denial ? !monitor || denial.stage === 'protocol' || denial.stage === 'authentication' : true,
      reasons: denial ? [denial, ...notes] : notes,
      findings,
      riskScore: extra.riskScore ?? null,
      configVersion: policy?.version ?? 0,
      call,
      context: context ?? { persona: route?.persona ?? '', upstream: route?.upstream ?? '', agent: null, credentialId: null, sessionId: null, sourceAddress: null, requestId: null },
    };
  }

  /** Records decisions before acting on them; if the audit trail refuses, the request is refused too. */
  function recordDecisions(list: Decision[]): ProcessingResponse | null {
    try {
      for (const decision of list) deps.audit.decision(decision, decisionMicros);
      return null;
    } catch (error) {
      const reason: DecisionReason = { stage: 'availability', code: 'audit_unavailable', message: `the audit trail cannot record this request (${(error as Error).message}); refused` };
      answered = true;
      decisions = [];
      return immediate(503, problem(503, reason), [['content-type', 'application/problem+json'], ['retry-after', '1']], reason.code);
    }
  }

  /** A refusal is recorded best-effort: the request is refused whether or not the record lands. */
  function recordDenial(decision: Decision): void {
    try {
      deps.audit.decision(decision, decisionMicros);
    } catch {
      // The refusal stands; the audit trail raises its own alert when it cannot write.
    }
  }

  function refuse(status: number, code: string, message: string, stage: DecisionReason['stage'], extraHeaders: [string, string][] = []): ProcessingResponse {
    const reason: DecisionReason = { stage, code, message };
    const method = requestHeaders.get(':method') ?? '';
    const recorded = quotingAsRecorded(reason, [method, recordedMethod(method)]);
    recordDenial({ ...makeDecision(route?.kind === 'rest' ? restCallFromHeaders() : mcpCall('http'), recorded), enforced: true });
    answered = true;
    finish();
    return immediate(status, problem(status, reason), [['content-type', 'application/problem+json'], ...extraHeaders], code);
  }

  /**
   * A request on no Mandate route (Envoy answers those itself; this covers a route built elsewhere):
   * no Persona, so no agent action to audit. Logged for the operator; the agent gets a 404.
   */
  function refuseUnrouted(method: string): ProcessingResponse {
    deps.log?.('request_without_route', { method, requestId: requestHeaders.get('x-request-id') ?? null });
    answered = true;
    finish();
    const reason: DecisionReason = { stage: 'protocol', code: 'unknown_endpoint', message: 'No Persona endpoint at this path' };
    return immediate(404, problem(404, reason), [['content-type', 'application/problem+json']], reason.code);
  }

  /** A REST request refused before its operation was decided, as the audit trail names it: the path as sent, flagged segments redacted. */
  function restCallFromHeaders(): AgentCall {
    return { kind: 'rest', method: recordedMethod(requestHeaders.get(':method') ?? ''), path: recordedPath(requestHeaders.get(':path') ?? ''), query: {} };
  }

  /**
   * What the agent wrote to name its call (an MCP method or tool name, a REST path below the endpoint)
   * as the audit trail keeps it: split at "/", each segment that a detector of the Persona flags
   * (percent-decoded) is recorded as "[redacted]", as an allowed REST call's path is (assessCall).
   * Without a Persona to inspect with (no configuration yet, or a route naming a Persona this version
   * does not have), the whole text is recorded as "[redacted]": nothing can say it is clean, so this
   * fails closed. A Persona without data protection records it as sent, as it does its allowed calls.
   */
  function recordedName(text: string): string {
    if (text === '') return text;
    if (!persona) return redactedSegment;
    const dp = persona.dataProtection;
    if (!dp.ok || !dp.active) return text;
    // Methods and tool names repeat on every call: each is inspected once per compiled Persona and upstream.
    const cacheable = text.length <= recordedNameCacheMaxLength;
    const key = `${route!.upstream}\u0000${text}`;
    let names = recordedNames.get(dp);
    const cached = cacheable ? names?.get(key) : undefined;
    if (cached !== undefined) return cached;
    const segments = text.split('/');
    const findings = inspectJson(dp, segments.map(decodePathSegment), { direction: 'request', upstream: route!.upstream }).findings;
    const recorded = findings.length === 0 ? text : redactFlaggedSegments(segments, findings).join('/');
    if (cacheable) {
      if (!names) recordedNames.set(dp, (names = new Map()));
      if (names.size >= recordedNameCacheEntries) names.clear();
      names.set(key, recorded);
    }
    return recorded;
  }

  /** An HTTP method as the audit trail keeps it: the standard ones as they are, any other as a name (recordedName). */
  function recordedMethod(method: string): string {
    return standardHttpMethods.has(method) ? method : recordedName(method);
  }

  /** A request path (its query dropped) as the audit trail keeps it: the Persona's endpoint as it is, what follows it as recordedName records it. */
  function recordedPath(rawPath: string): string {
    const path = rawPath.split('?')[0] ?? '';
    const prefix = route!.pathPrefix;
    if (path !== prefix && !path.startsWith(`${prefix}/`)) return recordedName(path);
    const below = path.slice(prefix.length);
    if (below === '' || below === '/') return path;
    return `${prefix}${persona ? recordedName(below) : `/${redactedSegment}`}`;
  }

  /**
   * A reason that quotes what the agent named (a tool, a method, a path) quotes it as the audit trail
   * records it (`recorded`), cut to maxQuotedChars.
   */
  function quotingAsRecorded<R extends DecisionReason | null>(reason: R, ...names: [string | undefined, string | undefined][]): R {
    if (reason === null) return reason;
    let message = reason.message;
    for (const [sent, recorded] of names) {
      if (!sent || recorded === undefined) continue;
      const quoted = cutQuoted(recorded);
      if (quoted !== sent) message = message.replaceAll(sent, quoted);
    }
    return message === reason.message ? reason : ({ ...reason, message } as R);
  }

  /** Other text the agent sent (a content type, a content coding) as a reason's message quotes it: as recordedName records it, cut to maxQuotedChars. */
  function quotedAsRecorded(text: string): string {
    return cutQuoted(recordedName(text));
  }

  function continueRequestHeaders(extra: [string, string][] = []): ProcessingResponse {
    const set: [string, string][] = [...extra, ...headerRewrites];
    const injected = policy?.upstreamCredentials[route!.upstream];
    if (injected) set.push([injected.header, injected.value]);
    // The agent's Mandate credential is valid only at the gateway; it never reaches the upstream.
    // Answers are read (tool lists, data protection): the upstream is not invited to compress them
    // (Mandate's own routes drop accept-encoding too; this covers a mesh that inserts ext_proc alone).
    // Headers the upstream may not receive are dropped; a header the gateway sets is set, not dropped.
    const setNames = new Set(set.map(([name]) => name));
    const remove = [...new Set(['authorization', 'accept-encoding', ...droppedHeaders])].filter((name) => !setNames.has(name));
    return { request_headers: { response: { status: 'CONTINUE', header_mutation: headerMutation(set, remove) } } };
  }

  /** The stream is over: record how each allowed call ended. */
  function finish(): void {
    if (finished) return;
    finished = true;
    if (streamInspector) responseFindings.push(...streamInspector.findings());
    const answering = decisions.filter((decision) => !blocks(decision));
    const latencyMs = deps.now() - startedAt;
    const record = () => {
      const outcome: DecisionOutcome = { latencyMs, decisionMicros, upstreamStatus, responseFindings, notes: outcomeNotes, answerRefusal };
      for (const decision of answering) deps.audit.outcome(decision, outcome);
      // A refused answer with no allowed call to attach it to is still recorded.
      if (answering.length === 0 && answerRefusal) recordDenial({ ...makeDecision(mcpCall('response'), answerRefusal.reason), enforced: answerRefusal.enforced });
    };
    // Async external DLP verdicts belong in the same record; each comes within its service's timeout.
    if (asyncVerdicts.length > 0) {
      void Promise.allSettled(asyncVerdicts)
        .then(record)
        .catch((error: unknown) => deps.log?.('audit_outcome_dropped', { error: errorWithoutMessage(error) }));
    }
    else record();
  }

  function internalError(request: ProcessingRequest, error: unknown): ProcessingResponse | null {
    const failOpen = persona?.persona.failOpen === true;
    if (isOverBudget(error)) {
      // A body that costs more to inspect than its budget (dlp/budget.ts): refused, or passed unread where
      // the Persona fails open or only monitors (as an answer too large to read is).
      const message = `inspecting this ${request.request === 'response_body' ? 'answer' : 'request'} took longer than the data-protection budget of ${(error as InspectionOverBudget).budgetMs} ms`;
      return refusedOnError(request, 503, { stage: 'data-protection', code: 'inspection_over_budget', message }, `${message}; refused (fail closed)`, failOpen || persona?.persona.mode === 'monitor');
    }
    // The exception's message may quote what it was reading: only its class and place are recorded.
    const message = `internal error while processing ${request.request ?? 'a message'}: ${errorClassAndPlace(error)}`;
    return refusedOnError(request, 500, { stage: 'availability', code: 'internal_error', message }, 'the policy service failed while processing this request; refused (fail closed)', failOpen);
  }

  /** Records `reason`; then passes the message on (`passes`), or ends the exchange with `status` and `told` as the agent's message. */
  function refusedOnError(request: ProcessingRequest, status: number, reason: DecisionReason, told: string, passes: boolean): ProcessingResponse | null {
    recordDenial({ ...makeDecision(mcpCall(reason.code.replaceAll('_', '-')), reason), enforced: !passes });
    if (passes) return passThrough(request);
    answered = true;
    finish();
    return immediate(status, problem(status, { ...reason, message: told }), [['content-type', 'application/problem+json']], reason.code);
  }

  return { handle, finish, internalError };
}

/** Text that data protection reads whole (buffered): text/* other than event streams, XML, YAML, form data. */
const textualTypes = /^(text\/(?!event-stream)|application\/(xml|yaml|x-yaml|x-www-form-urlencoded|graphql)\b|[\w.+-]+\/[\w.+-]+\+xml\b)/;

/**
 * A message's tool call as the stages read it: its name, its arguments (undefined when they are not an
 * object: invalid_params), and, for a named call with such arguments, the call they assess as one.
 */
function toolCallParts(message: JsonRpcMessage): { tool: string | undefined; args: Record<string, unknown> | undefined; argumentsProblem: string | null; assessed: { tool: string; args: Record<string, unknown> } | null } {
  if (message.type === 'response' || message.method !== 'tools/call') return { tool: undefined, args: undefined, argumentsProblem: null, assessed: null };
  const tool = toolNameOf(message.params);
  // MCP tool arguments are an object: any other value would be forwarded unread (invalid_params, refused even in monitor mode).
  const argumentsProblem = toolArgumentsProblem(message.params);
  const args = argumentsProblem === null ? (toolArgumentsOf(message.params) ?? {}) : undefined;
  return { tool, args, argumentsProblem, assessed: tool !== undefined && args !== undefined ? { tool, args } : null };
}

/** What data protection inspects in a message other than a tool call: its params, or the client's result or error. */
function otherMessagePayload(message: JsonRpcMessage): { part: 'params' | 'result' | 'error'; payload: unknown } {
  if (message.type !== 'response') return { part: 'params', payload: message.params };
  return { part: 'result' in message ? 'result' : 'error', payload: message.result ?? message.error };
}

/** 2xx: an answer a client reads as a result. */
function isSuccess(status: number | null): boolean {
  return status !== null && status >= 200 && status < 300;
}

/** A body that is JSON by its first and last characters (an object or a list). */
function looksLikeJsonText(body: Buffer): boolean {
  const text = body.toString('latin1').trim();
  return (text.startsWith('{') && text.endsWith('}')) || (text.startsWith('[') && text.endsWith(']'));
}

/** An answer that must be read is in a charset Mandate does not read (stable code: unsupported_charset). */
function unreadableCharset(charset: string, what: string): DecisionReason {
  return {
    stage: 'data-protection',
    code: 'unsupported_charset',
    message: `the upstream sent ${what} in charset "${charset}", which Mandate cannot read before passing it on (it reads UTF-8, and whole answers in US-ASCII, ISO-8859-1 or windows-1252)`,
  };
}

/** REST streams carry one call; its pending result is kept under this key. */
const restResultKey = 'rest';

/** The body with masked or redacted tool arguments (or other messages' inspected parts) put back in place (`rewritten` is per message, in body order). */
function withRewrittenMessages(body: Buffer, batch: boolean, assessed: Pick<AssessedCall, 'rewritten' | 'rewrittenEnvelope'>[]): Buffer {
  const value = JSON.parse(body.toString('utf8')) as unknown;
  const messages = (batch ? value : [value]) as Record<string, unknown>[];
  assessed.forEach(({ rewritten: r, rewrittenEnvelope }, index) => {
    const message = messages[index];
    if (!message) return;
    if (rewrittenEnvelope) withEnvelope(message, rewrittenEnvelope);
    if (!r) return;
    if (r.part) message[r.part] = r.value;
    else (message.params as { arguments?: unknown }).arguments = r.value;
  });
  return Buffer.from(JSON.stringify(value), 'utf8');
}

/** A request body replaced before it reaches the upstream, with its new length (and other headers to set). */
function replaceRequestBody(body: Buffer, extra: [string, string][] = []): ProcessingResponse {
  return {
    request_body: {
      response: {
        status: 'CONTINUE',
        header_mutation: headerMutation([['content-length', String(body.length)], ...extra], []),
        body_mutation: { body },
      },
    },
  };
}

function mcpCall(method: string, tool?: string, args?: unknown, id?: JsonRpcId): AgentCall {
  return { kind: 'mcp', method, ...(tool !== undefined ? { tool } : {}), ...(args !== undefined ? { arguments: args } : {}), ...(id !== undefined ? { jsonRpcId: id } : {}) };
}

function passThrough(request: ProcessingRequest): ProcessingResponse | null {
  switch (request.request) {
    case 'request_headers':
      return { request_headers: { response: { status: 'CONTINUE' } } };
    case 'request_body':
      return { request_body: { response: { status: 'CONTINUE' } } };
    case 'response_headers':
      return { response_headers: { response: { status: 'CONTINUE' } } };
    case 'response_body':
      return { response_body: { response: { status: 'CONTINUE' } } };
    default:
      return null;
  }
}

function processingModeWithResponseBody(mode: 'STREAMED' | 'BUFFERED' | 'BUFFERED_PARTIAL'): NonNullable<ProcessingResponse['mode_override']> {
  return {
    request_header_mode: 'SEND',
    response_header_mode: 'SEND',
    request_body_mode: 'NONE',
    response_body_mode: mode,
    request_trailer_mode: 'SKIP',
    response_trailer_mode: 'SKIP',
  };
}

const noHeaders: ReadonlySet<string> = new Set();

/** The most a reason's message quotes of what the agent sent (after redaction); longer text is cut. */
const maxQuotedChars = 100;

function cutQuoted(text: string): string {
  return text.length > maxQuotedChars ? `${text.slice(0, maxQuotedChars)}…` : text;
}

/** HTTP methods the audit trail records as they are (any other is a name the agent chose, see recordedName). */
const standardHttpMethods: ReadonlySet<string> = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT']);

/** Findings in one part of a call inspected on its own, located under that part ("$.x" -> "query.x", "headers[\"x\"]"). */
function locatedIn(part: string, findings: DataFinding[]): DataFinding[] {
  return findings.map((f) => ({ ...f, location: `${part}${f.location.slice(1)}` }));
}

/**
 * The member of an MCP message that a finding sits in, as a refusal names it, when that member names
 * the exchange (what rewriteChangesExchange holds fixed: the id, the method, the tool or prompt name,
 * the resource URI); null for any other. Locations as withEnvelopeProtection ("message.") and
 * assessOtherMessage ("params.") give them, with any suffix (" (base64)").
 */
function namingMemberOf(location: string, message: JsonRpcMessage): string | null {
  const at = (member: string) => location === member || location.startsWith(`${member} (`);
  if (at('message.id')) return 'JSON-RPC id';
  if (at('message.method')) return 'method';
  if (message.type === 'response') return null;
  if (at('message.params.name')) return 'tool name';
  if (at('params.name')) return message.method === 'prompts/get' ? 'prompt name' : 'name it calls (params.name)';
  if (at('params.uri')) return 'resource URI';
  return null;
}

/** A finding in a member that names the exchange: the message is refused, since that member cannot be masked (stable code sensitive_data_blocked). */
function namingMemberRefusal(finding: DataFinding, member: string): DecisionReason {
  return {
    stage: 'data-protection',
    code: dataBlockedCode,
    message: `the ${member} holds ${finding.group} data (${finding.detector}) that this Persona may not send, and a ${member} cannot be masked without changing the call; remove it and retry`,
  };
}

/** The id of the JSON-RPC message in an event's data (null when it has none or is not JSON). */
function jsonRpcIdOf(data: string): string | number | null {
  try {
    const id = (JSON.parse(data) as { id?: unknown } | null)?.id;
    return typeof id === 'string' || typeof id === 'number' ? id : null;
  } catch {
    return null;
  }
}

/**
 * A header value as data protection reads it. headerMap keeps a value's bytes (one character each);
 * bytes that are UTF-8 are read as the characters they spell, as the upstream reads them (a UTF-8
 * no-break space between the groups of a card is one character, not "\u00c2\u00a0").
 */
function headerText(bytes: string): string {
  const raw = Buffer.from(bytes, 'latin1');
  return !isAscii(raw) && isUtf8(raw) ? raw.toString('utf8') : bytes;
}

/**
 * The values data protection changed, as bytes again (one character each, see headerText): a value
 * read as UTF-8, or given a mask character beyond one byte, is written as UTF-8.
 */
function changedHeaderValues(bytes: Record<string, string>, read: Record<string, string>, inspected: Record<string, string>): [string, string][] {
  const changed: [string, string][] = [];
  for (const [name, value] of Object.entries(inspected)) {
    if (value === read[name]) continue;
    const utf8 = read[name] !== bytes[name] || [...value].some((c) => c.charCodeAt(0) > 0xff);
    changed.push([name, utf8 ? Buffer.from(value, 'utf8').toString('latin1') : value]);
  }
  return changed;
}

function headerMap(entries: HttpHeaderEntry[] | undefined): Map<string, string> {
  const map = new Map<string, string>();
  for (const entry of entries ?? []) {
    const value = entry.raw_value && entry.raw_value.length > 0 ? Buffer.from(entry.raw_value).toString('latin1') : (entry.value ?? '');
    const existing = map.get(entry.key);
    map.set(entry.key, existing === undefined ? value : `${existing}, ${value}`);
  }
  return map;
}

function headerMutation(set: [string, string][], remove: string[]): HeaderMutation {
  return {
    set_headers: set.map(([key, value]) => ({ header: { key, raw_value: Buffer.from(value, 'latin1') } })),
    remove_headers: remove,
  };
}

/** The content coding of a message's body, or null when it is not encoded (no header, or identity). */
function contentEncodingOf(headers: Map<string, string>): string | null {
  const codings = (headers.get('content-encoding') ?? '')
    .split(',')
    .map((c) => c.trim().toLowerCase())
    .filter((c) => c !== '' && c !== 'identity');
  return codings.length > 0 ? codings.join(', ') : null;
}

function immediate(status: number, body: string, headers: [string, string][], details: string): ProcessingResponse {
  return {
    immediate_response: {
      status: { code: status },
      headers: headerMutation(headers, []),
      body: Buffer.from(body, 'utf8'),
      details: `mandate_${details}`,
    },
  };
}

/** RFC 9457 problem details. */
function problem(status: number, reason: DecisionReason): string {
  return JSON.stringify({
    type: `https://mandate.dev/errors/${reason.code}`,
    title: reason.message,
    status,
    code: reason.code,
    stage: reason.stage,
  });
}

function relativePath(rawPath: string, prefix: string): string | null {
  const path = rawPath.split('?')[0] ?? '';
  if (path !== prefix && !path.startsWith(`${prefix}/`)) return null;
  const rest = path.slice(prefix.length);
  return rest === '' ? '/' : rest;
}

/** A path segment as the agent meant it (percent-decoded); left as sent when its encoding is broken. */
function decodePathSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

function parseQuery(rawPath: string): Record<string, string | string[]> {
  const index = rawPath.indexOf('?');
  if (index < 0) return {};
  return parameters(new URLSearchParams(rawPath.slice(index + 1)));
}

function sourceAddressOf(request: ProcessingRequest): string | null {
  const attributes = request.attributes;
  if (!attributes) return null;
  const entries = Array.isArray(attributes) ? attributes : Object.entries(attributes).map(([key, value]) => ({ key, value }));
  const extProc = entries.find((e) => e.key === 'envoy.filters.http.ext_proc')?.value;
  const fields = extProc?.fields;
  if (!fields) return null;
  const fieldEntries = Array.isArray(fields) ? fields : Object.entries(fields).map(([key, value]) => ({ key, value }));
  const address = fieldEntries.find((f) => f.key === 'source.address')?.value;
  return address?.string_value ?? null;
}

/** A tools/list result by its shape: every entry has a name and an input schema. */
function looksLikeToolList(tools: unknown[]): boolean {
  return tools.every((tool) => {
    const t = tool as { name?: unknown; inputSchema?: unknown } | null;
    return t !== null && typeof t === 'object' && typeof t.name === 'string' && t.inputSchema !== null && typeof t.inputSchema === 'object';
  });
}

/** application/json, or a JSON-based type ("application/problem+json"); `contentType` in lower case. */
function isJsonContentType(contentType: string): boolean {
  if (contentType.startsWith('application/json')) return true;
  const at = contentType.indexOf('+json');
  if (at < 0) return false;
  const next = contentType.charCodeAt(at + 5);
  return !((next >= 48 && next <= 57) || (next >= 97 && next <= 122) || (next >= 65 && next <= 90) || next === 95);
}
