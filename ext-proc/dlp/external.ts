// Hand-off to an existing DLP product: an ICAP client (RFC 3507 REQMOD and
// RESPMOD) and a plain HTTP webhook. Inline mode waits up to the timeout and
// applies the fail mode when the service is down or slow; async mode only
// reports (audit) and never changes the body. Errors come back as values.
import { connect, type Socket } from 'node:net';
import type { ExternalDlp } from '../../config/data-protection-schema.ts';

/** What an ICAP answer said beside its verdict, safe to keep in the audit trail: never the body. */
export interface IcapFacts {
  status: number;
  istag: string | null;
  /** The status of the HTTP message the service sent back, if any (403 for a block). */
  httpStatus: number | null;
  /** Threat or violation names from X-Infection-Found, X-Violations-Found and X-Virus-ID, sanitised. */
  threats: string[];
}

export type ExternalVerdict =
  | { verdict: 'allow'; facts?: IcapFacts }
  | { verdict: 'modified'; body: Buffer; facts?: IcapFacts }
  /** `reason`: the service's own words, as it sent them (any JSON value from a webhook): cleanReason makes them fit to show. */
  | { verdict: 'block'; reason: unknown; facts?: IcapFacts }
  | ExternalError;

export type ExternalError = { verdict: 'error'; code: 'external_dlp_timeout' | 'external_dlp_unavailable' | 'external_dlp_bad_response'; message: string };

export interface ExternalRequest {
  direction: 'request' | 'response';
  upstream: string;
  tool?: string;
  contentType: string;
  body: Buffer;
  /** Who is calling, for the DLP's own per-user policies and logs. */
  caller?: { agent: string; persona: string; sourceAddress: string | null };
}

/**
 * The ICAP headers that name the caller, as proxies send them (Squid's
 * conventions, which DLP products and c-icap read): X-Client-IP, and the
 * agent as the base64 X-Authenticated-User, its Persona as the base64
 * X-Authenticated-Groups.
 */
/** The IP of Envoy's source.address ("10.0.0.7:51234", "[::1]:51234"), or null when it is not one. */
export function ipOf(sourceAddress: string): string | null {
  const bracketed = /^\[([0-9A-Fa-f:.]+)\](?::\d+)?$/.exec(sourceAddress);
  if (bracketed) return bracketed[1]!;
  const v4 = /^(\d{1,3}(?:\.\d{1,3}){3})(?::\d+)?$/.exec(sourceAddress);
  if (v4) return v4[1]!;
  return /^[0-9A-Fa-f:]+$/.test(sourceAddress) && sourceAddress.includes(':') ? sourceAddress : null;
}

function callerHeaders(caller: ExternalRequest['caller']): string {
  if (!caller) return '';
  const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
  const address = caller.sourceAddress === null ? null : ipOf(caller.sourceAddress);
  const ip = address === null ? '' : `X-Client-IP: ${address}\r\n`;
  return `${ip}X-Authenticated-User: ${b64(caller.agent)}\r\nX-Authenticated-Groups: ${b64(caller.persona)}\r\n`;
}

/** A note for the audit trail of the call: a rewrite, a failure passed under failMode open, or an async verdict. */
export interface ExternalNote {
  code: string;
  message: string;
}

/**
 * What the data path does with the verdict, after applying the fail mode. `note` is what the audit
 * trail records about a call that went on: a rewrite, or a failure passed under failMode open. In
 * async mode the call goes on at once and `later` settles with the service's verdict, for the
 * audit trail only (it never rejects).
 */
export type ExternalOutcome =
  | { action: 'continue'; body: Buffer | null; note: ExternalNote | null; later?: Promise<ExternalNote> }
  | { action: 'block'; code: string; message: string };

/** What the data path lends consultExternalDlp besides the body. */
export interface ConsultOptions {
  /**
   * Holds a rewritten body to what was authorized (for MCP: the same messages, ids and names): a
   * rewrite it refuses is a bad response, under the service's fail mode; failing open then keeps the
   * body that was sent, not the rewrite.
   */
  rewriteProblem?: (rewritten: Buffer) => string | null;
  /** Masks what the Persona's detectors find in the service's own words (a block reason) before they are shown or recorded. */
  maskText?: (text: string) => string;
}

export async function consultExternalDlp(service: ExternalDlp, request: ExternalRequest, options: ConsultOptions = {}): Promise<ExternalOutcome> {
  if (!service.directions.includes(request.direction)) return { action: 'continue', body: null, note: null };
  const call = scanWith(service, request);
  if (service.mode === 'async') {
    const later = call
      .then((v) => asyncVerdictNote(v, request.direction, options.maskText))
      .catch((e: unknown) => asyncVerdictNote({ verdict: 'error', code: 'external_dlp_unavailable', message: e instanceof Error ? e.message : String(e) }, request.direction));
    return { action: 'continue', body: null, note: null, later };
  }
  let v = await call;
  const problem = v.verdict === 'modified' && options.rewriteProblem ? options.rewriteProblem(v.body) : null;
  if (problem !== null) v = { verdict: 'error', code: 'external_dlp_bad_response', message: problem };
  if (v.verdict === 'allow') return { action: 'continue', body: null, note: null };
  if (v.verdict === 'modified') return { action: 'continue', body: v.body, note: { code: 'external_dlp_rewrote', message: `the external DLP service rewrote this ${request.direction}` } };
  if (v.verdict === 'block') {
    const reason = cleanReason(v.reason, options.maskText);
    return { action: 'block', code: 'external_dlp_blocked', message: `the external DLP service refused this ${request.direction}${reason === null ? '' : `: ${reason}`}` };
  }
  if (service.failMode === 'open') return { action: 'continue', body: null, note: { code: v.code, message: `${v.message}; passed uninspected by this service, which fails open` } };
  return { action: 'block', code: v.code, message: `the external DLP service could not be consulted (${v.message}); this Persona fails closed` };
}

/** The scan for the service's type; anything it throws (a URL it cannot use, a bug) is the service being unavailable, never an error across the data path. */
async function scanWith(service: ExternalDlp, request: ExternalRequest): Promise<ExternalVerdict> {
  try {
    return service.type === 'icap' ? await icapScan(service.url, request, service.timeoutMs) : await webhookScan(service.url, request, service.timeoutMs);
  } catch (e) {
    return { verdict: 'error', code: 'external_dlp_unavailable', message: `the ${service.type} service could not be called (${safeText(e instanceof Error ? e.message : String(e), 160, service.url)})` };
  }
}

/**
 * A service URL as notes and messages name it: without user:password@ (the config refuses those;
 * this keeps them out even so).
 */
export function urlWithoutCredentials(url: string): string {
  if (!URL.canParse(url)) return '(not a URL)';
  const parsed = new URL(url);
  parsed.username = '';
  parsed.password = '';
  return parsed.href;
}

/** What a refusal shows in place of a service's words when cleaning them made a value the detectors find. */
export const withheldReason = '(not shown: the service quoted data this Persona protects)';

/**
 * A service's own words about a refusal (a webhook's `reason`), as the agent and the audit trail see
 * them: strings only, what the Persona's detectors find in them masked (a reason may quote the very
 * data it refused), then printable ASCII without quotes or backslashes, at most 120 characters. Null
 * when there is nothing to show.
 */
export function cleanReason(reason: unknown, maskText?: (text: string) => string): string | null {
  if (typeof reason !== 'string') return null;
  // Masked before cleaning, on the words as sent (cut to what is read): cleaning changes escapes,
  // quotes and separators, and could hide a value from the detectors.
  const cut = reason.slice(0, 1024);
  const shown = safeText(maskText ? maskText(cut) : cut, 120);
  if (shown === '') return null;
  // Cleaning may still join what was apart (quotes between digit groups become spaces): if the
  // detectors find anything in what would be shown, none of it is.
  return maskText && maskText(shown) !== shown ? withheldReason : shown;
}

/**
 * An async service's verdict as an audit note (code external_dlp_async_verdict): what it would have
 * done, as `key=value` words after a fixed lead, and what its ICAP answer said of itself (status,
 * ISTag, threat names). Never the body, and the service's own words only cleaned (cleanReason).
 */
export function asyncVerdictNote(v: ExternalVerdict, direction: 'request' | 'response', maskText?: (text: string) => string): ExternalNote {
  const words: string[] = [];
  if (v.verdict === 'error') {
    words.push('verdict=error', `error=${v.code}`, `detail="${safeText(v.message, 160)}"`);
  } else {
    words.push(`verdict=${v.verdict === 'allow' ? 'allow' : v.verdict === 'modified' ? 'would-modify' : 'would-block'}`);
    const reason = v.verdict === 'block' && !v.facts ? cleanReason(v.reason, maskText) : null;
    if (reason !== null) words.push(`reason="${reason}"`);
    if (v.facts) {
      words.push(`icap-status=${v.facts.status}`);
      if (v.facts.httpStatus !== null) words.push(`http-status=${v.facts.httpStatus}`);
      if (v.facts.istag !== null) words.push(`istag="${v.facts.istag}"`);
      if (v.facts.threats.length > 0) words.push(`threats="${v.facts.threats.join(', ')}"`);
    }
  }
  return { code: 'external_dlp_async_verdict', message: `audit only, this ${direction} went on unchanged: ${words.join(' ')}` };
}

/**
 * Printable ASCII without quotes or backslashes (each other character a space), at most `max`
 * characters; `url`, when given, is named without its credentials.
 */
function safeText(text: string, max: number, url?: string): string {
  const named = url === undefined ? text : text.split(url).join(urlWithoutCredentials(url));
  const clean = named.replace(/[^\x20-\x7e]|["\\]/gu, ' ').trim();
  return clean.length > max ? `${clean.slice(0, max - 1)}~` : clean;
}

/**
 * RFC 3507 client: OPTIONS once per service and Options-TTL (icapOptionsOf), then one REQMOD or
 * RESPMOD with the body encapsulated as a chunked HTTP message, on a kept-alive connection to the
 * service when one is idle (see IcapConnections). When the service asked for a preview, the first
 * `Preview` bytes go alone, ended with `0; ieof` when they are the whole body; the rest follows a
 * `100 Continue`, and a final answer to the preview is the answer. A 200 whose body is byte-for-byte
 * the one sent (a server that does not offer 204, as c-icap's filters) is an allow. OPTIONS,
 * waiting for a connection, the preview and the rest all share the one timeout. The service URL is
 * sent and named without credentials.
 */
export async function icapScan(serviceUrl: string, request: ExternalRequest, timeoutMs: number): Promise<ExternalVerdict> {
  const deadline = Date.now() + timeoutMs;
  const url = urlWithoutCredentials(serviceUrl);
  const u = new URL(url);
  // The WHATWG parser keeps an IPv6 literal in brackets; a socket wants it bare.
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = Number(u.port || 1344);
  const method = request.direction === 'request' ? 'REQMOD' : 'RESPMOD';
  const options = await icapOptionsOf(url, host, port, deadline, timeoutMs);
  if ('verdict' in options) return options;
  if (options.methods !== null && !options.methods.includes(method)) {
    return { verdict: 'error', code: 'external_dlp_unavailable', message: `the ICAP service ${url} does not offer ${method} (its OPTIONS answer lists Methods: ${options.methods.join(', ') || 'none'})` };
  }
  const httpHead =
    request.direction === 'request'
      ? `POST /${encodeURIComponent(request.upstream)}/${encodeURIComponent(request.tool ?? '')} HTTP/1.1\r\nHost: ${request.upstream}\r\nContent-Type: ${request.contentType}\r\nContent-Length: ${request.body.length}\r\n\r\n`
      : `HTTP/1.1 200 OK\r\nContent-Type: ${request.contentType}\r\nContent-Length: ${request.body.length}\r\n\r\n`;
  const headName = request.direction === 'request' ? 'req-hdr' : 'res-hdr';
  const bodyName = request.direction === 'request' ? 'req-body' : 'res-body';
  const preview = previewBytes(options, request);
  const icapHead =
    `${method} ${url} ICAP/1.0\r\nHost: ${host}\r\nAllow: 204\r\n${preview === null ? '' : `Preview: ${preview}\r\n`}${callerHeaders(request.caller)}` +
    `Encapsulated: ${headName}=0, ${bodyName}=${Buffer.byteLength(httpHead)}\r\n\r\n`;
  const body = request.body;
  const whole = preview === null || body.length <= preview;
  const sent = preview === null ? body : body.subarray(0, preview);
  const first = Buffer.concat([Buffer.from(icapHead + httpHead), chunked(sent, preview !== null && whole ? '0; ieof' : '0')]);
  let rest = whole ? null : chunked(body.subarray(preview), '0');

  const context: IcapAnswerContext = { method, sent: body };
  let reader = new IcapAnswerReader(context);
  const answer = await converse<ExternalVerdict>(host, port, deadline, timeoutMs, {
    first,
    maxBytes: maxIcapAnswerBytes(body.length),
    read(data, closed) {
      const step = reader.read(data, closed);
      if (step === null) return null;
      if ('interim' in step) {
        if (preview === null || rest === null) return { done: { verdict: 'error', code: 'external_dlp_bad_response', message: 'ICAP 100 Continue when no preview was waiting for it' }, keep: false };
        const send = rest;
        rest = null;
        reader = new IcapAnswerReader(context);
        return { send, consumed: step.interim };
      }
      return { done: unchangedIsAllow(step, body), keep: step.verdict !== 'error' && reader.reusable(data) };
    },
  });
  // A new ISTag means the service changed (its rules, its version): ask for its OPTIONS again next time.
  if (answer.verdict !== 'error' && answer.facts?.istag && options.istag !== null && answer.facts.istag !== options.istag) icapOptions.forget(url);
  return answer;
}

/** A body as one chunk (none when empty) and the last-chunk line, e.g. "0" or "0; ieof". */
function chunked(body: Buffer, last: string): Buffer {
  const end = Buffer.from(`${last}\r\n\r\n`);
  return body.length === 0 ? end : Buffer.concat([Buffer.from(`${body.length.toString(16)}\r\n`), body, Buffer.from('\r\n'), end]);
}

/**
 * How many body bytes go as a preview, or null for none: the service's Preview, unless its
 * Transfer-Complete or Transfer-Ignore lists the tool name's extension (or "*" without the
 * extension in Transfer-Preview). Mandate never skips a configured scan: a body the service would
 * ignore is sent whole.
 */
function previewBytes(options: IcapServiceOptions, request: ExternalRequest): number | null {
  if (options.preview === null) return null;
  const dot = request.tool?.lastIndexOf('.') ?? -1;
  const extension = dot >= 0 ? request.tool!.slice(dot + 1).toLowerCase() : null;
  const lists = (names: string[]) => extension !== null && names.includes(extension);
  const { preview, ignore, complete } = options.transfer;
  if (lists(complete) || lists(ignore)) return null;
  if (lists(preview)) return options.preview;
  if ((complete.includes('*') || ignore.includes('*')) && !preview.includes('*')) return null;
  return options.preview;
}

function unchangedIsAllow(v: ExternalVerdict, sent: Buffer): ExternalVerdict {
  return v.verdict === 'modified' && v.body.equals(sent) ? (v.facts ? { verdict: 'allow', facts: v.facts } : { verdict: 'allow' }) : v;
}

/**
 * One ICAP request on a connection: the bytes written first, and what to make of the bytes that
 * came back so far (all of them since the last `send`): null for more, `send` to write more after
 * dropping the `consumed` bytes read (an interim 100 Continue), or `done` with whether the
 * connection may be kept. The bytes are gathered in one buffer that doubles as it fills, so a long
 * answer costs linear time, and `read` looks only at what is new.
 */
interface IcapTurn<T> {
  first: Buffer;
  /** Most bytes the answer may take; past it the connection is dropped and the answer is a bad response. */
  maxBytes: number;
  read(data: Buffer, closed: boolean): { done: T | ExternalError; keep: boolean } | { send: Buffer; consumed: number } | null;
}

/** A turn on an idle connection if there is one (a stale one is retried on a new one), else a new one. */
async function converse<T>(host: string, port: number, deadline: number, timeoutMs: number, turn: IcapTurn<T>): Promise<T | ExternalError> {
  for (;;) {
    const got = await icapConnections.acquire(host, port, deadline);
    if ('verdict' in got) return got;
    const v = await exchange(got.socket, got.reused, host, port, deadline, timeoutMs, turn);
    if (v !== 'retry') return v;
  }
}

function exchange<T>(socket: Socket, reused: boolean, host: string, port: number, deadline: number, timeoutMs: number, turn: IcapTurn<T>): Promise<T | ExternalError | 'retry'> {
  return new Promise((resolve) => {
    let store: Buffer = Buffer.alloc(0);
    let length = 0;
    let received = 0;
    let settled = false;
    const finish = (v: T | ExternalError | 'retry', keep: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('end', onEnd);
      if (keep) icapConnections.release(host, port, socket);
      else socket.destroy();
      resolve(v);
    };
    const onData = (d: Buffer) => {
      if (settled) return;
      received += d.length;
      if (length + d.length > turn.maxBytes) {
        return finish({ verdict: 'error', code: 'external_dlp_bad_response', message: `the ICAP answer is larger than ${turn.maxBytes} bytes` }, false);
      }
      if (length + d.length > store.length) {
        const grown = Buffer.allocUnsafe(Math.min(turn.maxBytes, Math.max(2 * store.length, length + d.length, 4096)));
        store.copy(grown, 0, 0, length);
        store = grown;
      }
      d.copy(store, length);
      length += d.length;
      for (;;) {
        const step = turn.read(store.subarray(0, length), false);
        if (step === null) return;
        if ('done' in step) return finish(step.done, step.keep);
        store.copy(store, 0, step.consumed, length);
        length -= step.consumed;
        socket.write(step.send);
        if (length === 0) return;
      }
    };
    // A kept-alive connection the server has closed meanwhile fails before any byte: one retry on a new one.
    const onError = (e: Error) => finish(reused && received === 0 ? 'retry' : { verdict: 'error', code: 'external_dlp_unavailable', message: e.message }, false);
    const onEnd = () => {
      if (reused && received === 0) return finish('retry', false);
      const step = turn.read(store.subarray(0, length), true);
      finish(step !== null && 'done' in step ? step.done : { verdict: 'error', code: 'external_dlp_bad_response', message: 'ICAP connection closed mid-response' }, false);
    };
    const timer = setTimeout(() => finish({ verdict: 'error', code: 'external_dlp_timeout', message: `no ICAP answer within ${timeoutMs} ms` }, false), Math.max(1, deadline - Date.now()));
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('end', onEnd);
    socket.write(turn.first);
  });
}

/** What an ICAP service says of itself in its OPTIONS answer (RFC 3507 §4.10.2). */
export interface IcapServiceOptions {
  /** The methods it offers; null when the answer names none (then none is refused). */
  methods: string[] | null;
  /** How many body bytes it wants first (Preview), or null when it takes no preview. */
  preview: number | null;
  allow204: boolean;
  /** Most connections it takes at once (Max-Connections), or null for no stated limit. */
  maxConnections: number | null;
  istag: string | null;
  /** File extensions of Transfer-Preview, -Ignore and -Complete, lowercase ("*": every other). */
  transfer: { preview: string[]; ignore: string[]; complete: string[] };
  /** How long the answer holds: Options-TTL, one hour without it, kept within a minute and a day. */
  ttlMs: number;
}

const defaultOptionsTtlMs = 3_600_000;
const minOptionsTtlMs = 60_000;
const maxOptionsTtlMs = 86_400_000;

/** Parses a complete OPTIONS answer; null when more bytes are needed; an error for anything but a 200. */
export function parseIcapOptions(data: Buffer, closed = false): IcapServiceOptions | ExternalError | null {
  return new IcapOptionsReader().read(data, closed);
}

/** Reads an OPTIONS answer as its bytes come, within the header cap; its opt-body (ignored) within the same cap. */
class IcapOptionsReader {
  private readonly message = new IcapMessageReader(maxIcapHeadBytes);

  read(data: Buffer, closed: boolean): IcapServiceOptions | ExternalError | null {
    const read = this.message.read(data, closed, (status) => status === 200);
    if (read === null) return null;
    const unavailable = (message: string): ExternalError => ({ verdict: 'error', code: 'external_dlp_unavailable', message });
    if ('problem' in read) return unavailable(`the OPTIONS answer ${read.problem}`);
    if (read.status !== 200) return unavailable(`OPTIONS answered ICAP ${read.status}`);
    return optionsOf(read.headers);
  }

  reusable(data: Buffer): boolean {
    return this.message.reusable(data);
  }
}

function optionsOf(headers: Map<string, string>): IcapServiceOptions {
  const count = (name: string, min: number) => {
    const value = headers.get(name)?.trim();
    return value !== undefined && /^\d{1,9}$/.test(value) && Number(value) >= min ? Number(value) : null;
  };
  const list = (name: string) => (headers.get(name) ?? '').split(',').map((x) => x.trim().toLowerCase()).filter(Boolean);
  const ttl = count('options-ttl', 0);
  const methods = headers.get('methods');
  return {
    methods: methods === undefined ? null : methods.split(',').map((m) => m.trim().toUpperCase()).filter(Boolean),
    preview: count('preview', 0),
    allow204: list('allow').includes('204'),
    maxConnections: count('max-connections', 1),
    istag: istagOf(headers),
    transfer: { preview: list('transfer-preview'), ignore: list('transfer-ignore'), complete: list('transfer-complete') },
    ttlMs: ttl === null ? defaultOptionsTtlMs : Math.min(maxOptionsTtlMs, Math.max(minOptionsTtlMs, ttl * 1000)),
  };
}

/** ICAP header fields by lowercase name; folded continuation lines are joined with "\n". */
function icapHeaders(head: string): Map<string, string> {
  const headers = new Map<string, string>();
  let last: string | null = null;
  for (const line of head.split('\r\n').slice(1)) {
    if (/^[ \t]/.test(line) && last !== null) {
      headers.set(last, `${headers.get(last)}\n${line.trim()}`);
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    last = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers.set(last, headers.has(last) ? `${headers.get(last)}, ${value}` : value);
  }
  return headers;
}

function istagOf(headers: Map<string, string>): string | null {
  const istag = headers.get('istag');
  return istag === undefined ? null : safeText(istag.replace(/^"|"$/g, ''), 64);
}

/**
 * The names of what the service found, from the headers DLP and anti-virus ICAP servers use:
 * X-Infection-Found (its Threat=), X-Violations-Found (a count, then four lines per violation, the
 * second naming it) and X-Virus-ID. At most five, each sanitised and cut to 64 characters.
 */
function threatsOf(headers: Map<string, string>): string[] {
  const names: string[] = [];
  for (const found of (headers.get('x-infection-found') ?? '').matchAll(/Threat=([^;]*)/gi)) names.push(found[1]!);
  const violations = headers.get('x-violations-found')?.split('\n');
  if (violations) for (let i = 2; i < violations.length; i += 4) names.push(violations[i]!);
  const virus = headers.get('x-virus-id');
  if (virus !== undefined) names.push(virus);
  return [...new Set(names.map((n) => safeText(n, 64)).filter(Boolean))].slice(0, 5);
}

/**
 * Each service's OPTIONS answer, per service URL, until its Options-TTL runs out (or its ISTag
 * changes). Concurrent first uses share one OPTIONS request. A failed OPTIONS is not kept: the next
 * scan asks again.
 */
class IcapOptionsCache {
  private readonly known = new Map<string, { options: IcapServiceOptions; expiresAt: number }>();
  private readonly asking = new Map<string, Promise<IcapServiceOptions | ExternalError>>();

  async get(url: string, ask: () => Promise<IcapServiceOptions | ExternalError>): Promise<IcapServiceOptions | ExternalError> {
    const entry = this.known.get(url);
    if (entry && entry.expiresAt > Date.now()) return entry.options;
    let pending = this.asking.get(url);
    if (!pending) {
      pending = ask()
        .catch((e: unknown): ExternalError => ({ verdict: 'error', code: 'external_dlp_unavailable', message: e instanceof Error ? e.message : String(e) }))
        .then((answer) => {
          this.asking.delete(url);
          if (!('verdict' in answer)) this.known.set(url, { options: answer, expiresAt: Date.now() + answer.ttlMs });
          return answer;
        });
      this.asking.set(url, pending);
    }
    return pending;
  }

  forget(url: string): void {
    this.known.delete(url);
  }

  clear(): void {
    this.known.clear();
  }
}

const icapOptions = new IcapOptionsCache();

/** The service's OPTIONS, asked for within this scan's deadline; any failure makes the service unavailable. */
async function icapOptionsOf(url: string, host: string, port: number, deadline: number, timeoutMs: number): Promise<IcapServiceOptions | ExternalError> {
  const ask = async () => {
    const reader = new IcapOptionsReader();
    const answer = await converse<IcapServiceOptions>(host, port, deadline, timeoutMs, {
      first: Buffer.from(`OPTIONS ${url} ICAP/1.0\r\nHost: ${host}\r\nEncapsulated: null-body=0\r\n\r\n`),
      maxBytes: 2 * maxIcapHeadBytes,
      read(data, closed) {
        const parsed = reader.read(data, closed);
        return parsed === null ? null : { done: parsed, keep: !('verdict' in parsed) && reader.reusable(data) };
      },
    });
    if ('verdict' in answer) return { ...answer, code: answer.code === 'external_dlp_timeout' ? answer.code : 'external_dlp_unavailable', message: `ICAP OPTIONS ${url} failed: ${answer.message}` } as ExternalError;
    icapConnections.limit(host, port, answer.maxConnections);
    return answer;
  };
  // A scan that joins an OPTIONS request already under way still keeps to its own deadline.
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<ExternalError>((resolve) => {
    timer = setTimeout(() => resolve({ verdict: 'error', code: 'external_dlp_timeout', message: `no ICAP OPTIONS answer within ${timeoutMs} ms` }), Math.max(1, deadline - Date.now()));
  });
  try {
    return await Promise.race([icapOptions.get(url, ask), expired]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * ICAP connections per service address, so that inline scanning at a thousand calls a second does
 * not open (and leave in TIME_WAIT) a thousand sockets a second. At most maxIdlePerService idle ones
 * are kept, each for idleMs; a connection the server closes while idle is dropped. When the service
 * states Max-Connections, no more than that are open at once: a scan waits for one to come free,
 * within its timeout.
 */
class IcapConnections {
  private readonly idle = new Map<string, Socket[]>();
  private readonly dropOf = new WeakMap<Socket, () => void>();
  private readonly open = new Map<string, number>();
  private readonly limits = new Map<string, number>();
  private readonly waiting = new Map<string, (() => void)[]>();

  private readonly maxIdlePerService: number;
  private readonly idleMs: number;

  constructor(maxIdlePerService: number, idleMs: number) {
    this.maxIdlePerService = maxIdlePerService;
    this.idleMs = idleMs;
  }

  /** The service's Max-Connections (null: no stated limit). */
  limit(host: string, port: number, max: number | null): void {
    const key = `${host}:${port}`;
    if (max === null) this.limits.delete(key);
    else this.limits.set(key, max);
    this.wake(key);
  }

  /** An idle connection, or a new one while under the limit, or the first to come free before the deadline. */
  async acquire(host: string, port: number, deadline: number): Promise<{ socket: Socket; reused: boolean } | ExternalError> {
    const key = `${host}:${port}`;
    for (;;) {
      const idle = this.take(key);
      if (idle) return { socket: idle, reused: true };
      if ((this.open.get(key) ?? 0) < (this.limits.get(key) ?? Infinity)) {
        const socket = await this.connect(key, host, port, deadline);
        return 'verdict' in socket ? socket : { socket, reused: false };
      }
      const freed = await new Promise<boolean>((resolve) => {
        const list = this.waiting.get(key) ?? [];
        const wake = () => {
          clearTimeout(timer);
          resolve(true);
        };
        const timer = setTimeout(() => {
          const at = list.indexOf(wake);
          if (at >= 0) list.splice(at, 1);
          resolve(false);
        }, Math.max(1, deadline - Date.now()));
        list.push(wake);
        this.waiting.set(key, list);
      });
      if (!freed) return { verdict: 'error', code: 'external_dlp_timeout', message: `no ICAP connection came free within the timeout (the service takes ${this.limits.get(key)} at once)` };
    }
  }

  private wake(key: string): void {
    this.waiting.get(key)?.shift()?.();
  }

  private take(key: string): Socket | null {
    const list = this.idle.get(key);
    while (list && list.length > 0) {
      const socket = list.pop()!;
      const drop = this.dropOf.get(socket);
      if (drop) socket.off('end', drop).off('error', drop).off('close', drop).off('timeout', drop);
      socket.setTimeout(0);
      if (!socket.destroyed && socket.readyState === 'open') return socket.ref();
      socket.destroy();
    }
    return null;
  }

  release(host: string, port: number, socket: Socket): void {
    const key = `${host}:${port}`;
    const list = this.idle.get(key) ?? [];
    if (list.length >= this.maxIdlePerService || socket.destroyed) {
      socket.destroy();
      return;
    }
    const drop = () => {
      socket.destroy();
      const at = list.indexOf(socket);
      if (at >= 0) list.splice(at, 1);
    };
    this.dropOf.set(socket, drop);
    socket.once('end', drop).once('error', drop).once('close', drop).once('timeout', drop);
    socket.setTimeout(this.idleMs);
    socket.unref();
    list.push(socket);
    this.idle.set(key, list);
    this.wake(key);
  }

  /** A new connection, counted as open until it closes. */
  private connect(key: string, host: string, port: number, deadline: number): Promise<Socket | ExternalError> {
    this.open.set(key, (this.open.get(key) ?? 0) + 1);
    return new Promise((resolve) => {
      const socket = connect({ host, port });
      socket.once('close', () => {
        this.open.set(key, (this.open.get(key) ?? 1) - 1);
        this.wake(key);
      });
      const timer = setTimeout(() => {
        socket.destroy();
        resolve({ verdict: 'error', code: 'external_dlp_timeout', message: `no ICAP connection within the timeout` });
      }, Math.max(1, deadline - Date.now()));
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        socket.setNoDelay(true);
        resolve(socket);
      });
      socket.once('error', (e) => {
        clearTimeout(timer);
        resolve({ verdict: 'error', code: 'external_dlp_unavailable', message: e.message });
      });
    });
  }

  /** Closes every idle connection (tests, shutdown). */
  closeAll(): void {
    for (const list of this.idle.values()) for (const socket of list.splice(0)) socket.destroy();
  }
}

const icapConnections = new IcapConnections(16, 30_000);

/** Closes the idle ICAP connections this process keeps, and forgets the services' OPTIONS answers. */
export function closeIdleIcapConnections(): void {
  icapConnections.closeAll();
  icapOptions.clear();
}

/** Most bytes of an ICAP header block, and of the HTTP header it encapsulates. */
export const maxIcapHeadBytes = 65_536;

/**
 * Most bytes a service may send back as the body, for a body of `sent` bytes: four times it and 64
 * KiB (room for a rewrite that grew, or a block page for a small body). An ICAP body's chunk framing
 * may take as much again; a webhook's base64 and JSON a third more and 64 KiB.
 */
export function maxAnswerBodyBytes(sent: number): number {
  return 4 * sent + 65_536;
}

function maxIcapAnswerBytes(sent: number): number {
  return 2 * maxIcapHeadBytes + 2 * maxAnswerBodyBytes(sent);
}

/** What an ICAP answer is read against: the method asked and the body sent. */
export interface IcapAnswerContext {
  method: 'REQMOD' | 'RESPMOD';
  sent: Buffer;
}

/**
 * Parses a complete ICAP answer to a REQMOD or RESPMOD, or returns null if more bytes are needed
 * (see IcapAnswerReader for what each answer means).
 */
export function parseIcapResponse(data: Buffer, closed = false, context: IcapAnswerContext = { method: 'RESPMOD', sent: Buffer.alloc(0) }): ExternalVerdict | null {
  const v = new IcapAnswerReader(context).read(data, closed);
  return v !== null && 'interim' in v ? { verdict: 'error', code: 'external_dlp_bad_response', message: 'ICAP 100 Continue where an answer was due' } : v;
}

/**
 * One ICAP answer to a REQMOD or RESPMOD, read as its bytes come, as RFC 3507 means it:
 * - 204: allow. 100: interim (`interim`: the bytes it took), before the rest of a preview.
 * - 200 to REQMOD with an encapsulated HTTP request: its body is the rewritten request body.
 *   With an encapsulated HTTP response instead (a block page, a redirect, a 403, whatever its
 *   status): the service answered in the upstream's place, the request is refused.
 * - 200 to RESPMOD: the encapsulated response's status 2xx with a body is the rewritten answer; any
 *   other status is a refusal.
 * - A body removed (null-body, or a body of nothing) when one was sent is a refusal: fail closed.
 * - Anything else (another status, no or a malformed Encapsulated header, an HTTP message that
 *   does not parse or does not fit the method, sizes past the caps) is a bad response.
 */
export class IcapAnswerReader {
  private readonly message: IcapMessageReader;
  private readonly context: IcapAnswerContext;

  constructor(context: IcapAnswerContext) {
    this.context = context;
    this.message = new IcapMessageReader(maxAnswerBodyBytes(context.sent.length));
  }

  read(data: Buffer, closed: boolean): ExternalVerdict | { interim: number } | null {
    const read = this.message.read(data, closed, (status) => status === 200);
    if (read === null) return null;
    const bad = (message: string): ExternalError => ({ verdict: 'error', code: 'external_dlp_bad_response', message });
    if ('problem' in read) return bad(`the ICAP answer ${read.problem}`);
    if (read.status === 100) return { interim: read.end };
    const facts = (httpStatus: number | null): IcapFacts => ({ status: read.status, istag: istagOf(read.headers), httpStatus, threats: threatsOf(read.headers) });
    if (read.status === 204) return { verdict: 'allow', facts: facts(null) };
    if (read.status !== 200) return bad(`ICAP status ${read.status}`);
    if (read.parts === null) return bad('ICAP 200 without an Encapsulated header');
    const sections = new Map(read.parts.map((p) => [p.name, p.text]));
    const responseHead = sections.get('res-hdr');
    let httpStatus: number | null = null;
    if (responseHead !== undefined) {
      const line = /^HTTP\/1\.[01] (\d{3})(?: |\r\n)/.exec(responseHead);
      if (!line) return bad('the encapsulated HTTP response has no status line');
      httpStatus = Number(line[1]);
    }
    const removed = (): ExternalVerdict => ({ verdict: 'block', reason: `the service removed the ${this.context.method === 'REQMOD' ? 'request' : 'response'} body`, facts: facts(httpStatus) });
    if (this.context.method === 'REQMOD') {
      if (httpStatus !== null) return { verdict: 'block', reason: `it answered the request itself (HTTP ${httpStatus})`, facts: facts(httpStatus) };
      if (!sections.has('req-hdr')) return bad('an answer to REQMOD with no encapsulated HTTP message');
      if (read.bodyName === 'res-body' || read.bodyName === 'opt-body') return bad(`an answer to REQMOD with a ${read.bodyName}`);
    } else {
      if (httpStatus === null) return bad('an answer to RESPMOD with no encapsulated HTTP response');
      if (httpStatus < 200 || httpStatus >= 300) return { verdict: 'block', reason: `HTTP ${httpStatus}`, facts: facts(httpStatus) };
      if (read.bodyName === 'req-body' || read.bodyName === 'opt-body') return bad(`an answer to RESPMOD with a ${read.bodyName}`);
    }
    if (read.body === null || read.body.length === 0) return this.context.sent.length > 0 ? removed() : { verdict: 'allow', facts: facts(httpStatus) };
    return { verdict: 'modified', body: read.body, facts: facts(httpStatus) };
  }

  /** Whether the connection can carry the next request: the answer read to its end, nothing after it, and no Connection: close. */
  reusable(data: Buffer): boolean {
    return this.message.reusable(data);
  }
}

/** An ICAP message as read: its status and headers, its Encapsulated parts, and its de-chunked body. */
interface IcapMessage {
  status: number;
  headers: Map<string, string>;
  /** The encapsulated header sections, in order, with their text; null when there is no Encapsulated header. */
  parts: { name: string; text: string }[] | null;
  bodyName: string | null;
  body: Buffer | null;
  /** Where the message ends in the bytes. */
  end: number;
}

const encapsulatedEntry = /^\s*(req-hdr|res-hdr|req-body|res-body|null-body|opt-body)=(\d{1,6})\s*$/;

/**
 * Reads an ICAP message as its bytes come (each call gets all the bytes so far): the header block is
 * looked for in the new bytes only and parsed once; the encapsulated HTTP header and the chunked body
 * follow, each within its cap. A problem is a sentence for the error message.
 */
class IcapMessageReader {
  private readonly maxBodyBytes: number;
  private searched = 0;
  private head: { status: number; headers: Map<string, string>; start: number; entries: { name: string; offset: number }[] | null } | null = null;
  private body: ChunkedBody | null = null;
  private ended: number | null = null;
  private closeAfter = false;

  constructor(maxBodyBytes: number) {
    this.maxBodyBytes = maxBodyBytes;
  }

  /** `encapsulates(status)`: whether a message with this status carries what its Encapsulated header says (others end with their header). */
  read(data: Buffer, closed: boolean, encapsulates: (status: number) => boolean): IcapMessage | { problem: string } | null {
    if (this.head === null) {
      const headEnd = data.indexOf('\r\n\r\n', Math.max(0, this.searched - 3));
      if (headEnd < 0 || headEnd > maxIcapHeadBytes) {
        this.searched = data.length;
        if (data.length > maxIcapHeadBytes) return { problem: `has a header block larger than ${maxIcapHeadBytes} bytes` };
        return closed ? { problem: 'ends within its header' } : null;
      }
      const head = data.subarray(0, headEnd).toString('latin1');
      const status = /^ICAP\/1\.0 (\d{3})(?: |\r\n|$)/.exec(head);
      if (!status) return { problem: 'is not ICAP/1.0' };
      const headers = icapHeaders(head);
      this.closeAfter = /(^|,)\s*close\s*(,|$)/i.test(headers.get('connection') ?? '');
      const code = Number(status[1]);
      const encapsulated = headers.get('encapsulated');
      let entries: { name: string; offset: number }[] | null = null;
      if (encapsulated !== undefined && encapsulates(code)) {
        entries = [];
        for (const part of encapsulated.split(',')) {
          const entry = encapsulatedEntry.exec(part);
          if (!entry) return { problem: 'has a malformed Encapsulated header' };
          entries.push({ name: entry[1]!, offset: Number(entry[2]) });
        }
        const last = entries.at(-1)!;
        const inOrder = entries.every((e, i) => (i === 0 ? e.offset === 0 : e.offset >= entries![i - 1]!.offset));
        const oneBody = entries.filter((e) => e.name.endsWith('-body')).length === 1 && last.name.endsWith('-body');
        const unique = new Set(entries.map((e) => e.name)).size === entries.length;
        if (!inOrder || !oneBody || !unique) return { problem: 'has an Encapsulated header out of order' };
        if (last.offset > maxIcapHeadBytes) return { problem: `encapsulates an HTTP header larger than ${maxIcapHeadBytes} bytes` };
      }
      this.head = { status: code, headers, start: headEnd + 4, entries };
    }
    const { status, headers, start, entries } = this.head;
    if (entries === null) {
      this.ended = start;
      return { status, headers, parts: null, bodyName: null, body: null, end: start };
    }
    const last = entries.at(-1)!;
    const bodyStart = start + last.offset;
    if (data.length < bodyStart) return closed ? { problem: 'ends within its encapsulated header' } : null;
    const parts = entries.slice(0, -1).map((e, i) => ({ name: e.name, text: data.subarray(start + e.offset, start + entries[i + 1]!.offset).toString('latin1') }));
    if (last.name === 'null-body') {
      this.ended = bodyStart;
      return { status, headers, parts, bodyName: null, body: null, end: bodyStart };
    }
    this.body ??= new ChunkedBody(bodyStart, this.maxBodyBytes);
    const body = this.body.read(data);
    if (body === null) return closed ? { problem: 'ends within its chunked body' } : null;
    if ('problem' in body) return body;
    this.ended = body.end;
    return { status, headers, parts, bodyName: last.name, body: body.body, end: body.end };
  }

  reusable(data: Buffer): boolean {
    return this.ended !== null && this.ended === data.length && !this.closeAfter;
  }
}

const chunkSizeLine = /^([0-9A-Fa-f]{1,8})(?:[ \t]*;[\x20-\x7e\t]*)?$/;
const maxChunkLineBytes = 1024;
const maxTrailerBytes = 8192;

/**
 * An HTTP/1.1 chunked body de-chunked as its bytes come, from `start` in bytes that only grow: each
 * read goes on from where the last stopped. A size is hex digits only (an extension may follow
 * after ";"), a line at most 1 KiB, the body at most `maxBytes`; the position only moves forward.
 */
class ChunkedBody {
  private at: number;
  private readonly maxBytes: number;
  private readonly pieces: [number, number][] = [];
  private size = 0;
  private remaining = 0;
  private state: 'size' | 'data' | 'data-end' | 'trailer' = 'size';
  private trailerStart = 0;

  constructor(start: number, maxBytes: number) {
    this.at = start;
    this.maxBytes = maxBytes;
  }

  read(data: Buffer): { body: Buffer; end: number } | { problem: string } | null {
    for (;;) {
      if (this.state === 'size') {
        const lineEnd = data.indexOf('\r\n', this.at);
        if (lineEnd < 0 || lineEnd - this.at > maxChunkLineBytes) return data.length - this.at > maxChunkLineBytes ? { problem: 'has a chunk-size line that is too long' } : null;
        const size = chunkSizeLine.exec(data.subarray(this.at, lineEnd).toString('latin1'));
        if (!size) return { problem: 'has a malformed chunk size' };
        const n = parseInt(size[1]!, 16);
        this.at = lineEnd + 2;
        if (n === 0) {
          this.state = 'trailer';
          this.trailerStart = this.at;
          continue;
        }
        if (this.size + n > this.maxBytes) return { problem: `has a body larger than ${this.maxBytes} bytes` };
        this.size += n;
        this.remaining = n;
        this.state = 'data';
      } else if (this.state === 'data') {
        const take = Math.min(this.remaining, data.length - this.at);
        if (take > 0) this.pieces.push([this.at, this.at + take]);
        this.at += take;
        this.remaining -= take;
        if (this.remaining > 0) return null;
        this.state = 'data-end';
      } else if (this.state === 'data-end') {
        if (data.length - this.at < 2) return null;
        if (data[this.at] !== 0x0d || data[this.at + 1] !== 0x0a) return { problem: 'has a chunk longer than its size' };
        this.at += 2;
        this.state = 'size';
      } else {
        // Trailer fields, if any, until an empty line.
        const lineEnd = data.indexOf('\r\n', this.at);
        if (lineEnd < 0) return data.length - this.trailerStart > maxTrailerBytes ? { problem: 'has a trailer that is too long' } : null;
        if (lineEnd - this.trailerStart > maxTrailerBytes) return { problem: 'has a trailer that is too long' };
        const empty = lineEnd === this.at;
        this.at = lineEnd + 2;
        if (empty) return { body: Buffer.concat(this.pieces.map(([from, to]) => data.subarray(from, to))), end: this.at };
      }
    }
  }
}

/**
 * Webhook: POST {direction, upstream, tool, agent, persona, sourceAddress, contentType, body(base64)}; the
 * service answers {"action": "allow" | "block" | "modify", "reason"?, "body"? (base64)}. Redirects are
 * not followed (a 3xx is the service being unavailable: the scan is not sent on to another address);
 * the answer is read within the timeout and a size cap; a `modify` body must be canonical base64.
 */
export async function webhookScan(serviceUrl: string, request: ExternalRequest, timeoutMs: number): Promise<ExternalVerdict> {
  const url = urlWithoutCredentials(serviceUrl);
  if (url !== serviceUrl) return { verdict: 'error', code: 'external_dlp_unavailable', message: `the webhook URL ${url} carried credentials, which are not sent` };
  const signal = AbortSignal.timeout(timeoutMs);
  const failure = (e: unknown): ExternalError => {
    const timeout = signal.aborted || (e instanceof Error && (e.name === 'TimeoutError' || e.name === 'AbortError'));
    return timeout ? { verdict: 'error', code: 'external_dlp_timeout', message: `no webhook answer within ${timeoutMs} ms` } : { verdict: 'error', code: 'external_dlp_unavailable', message: e instanceof Error ? e.message : String(e) };
  };
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        direction: request.direction,
        upstream: request.upstream,
        tool: request.tool ?? null,
        agent: request.caller?.agent ?? null,
        persona: request.caller?.persona ?? null,
        sourceAddress: request.caller?.sourceAddress ?? null,
        contentType: request.contentType,
        body: request.body.toString('base64'),
      }),
      redirect: 'manual',
      signal,
    });
  } catch (e) {
    return failure(e);
  }
  if (res.status !== 200) {
    await res.body?.cancel().catch(() => undefined);
    return { verdict: 'error', code: 'external_dlp_unavailable', message: res.status >= 300 && res.status < 400 ? `webhook answered HTTP ${res.status} (a redirect, not followed)` : `webhook answered HTTP ${res.status}` };
  }
  const limit = Math.ceil((maxAnswerBodyBytes(request.body.length) * 4) / 3) + 65_536;
  const text = await readLimited(res, limit).catch((e: unknown) => failure(e));
  if (text !== null && typeof text !== 'string') return text;
  if (text === null) return { verdict: 'error', code: 'external_dlp_bad_response', message: `the webhook answer is larger than ${limit} bytes` };
  type Answer = { action?: unknown; reason?: unknown; body?: unknown } | null;
  let answer: Answer;
  try {
    answer = JSON.parse(text) as Answer;
  } catch {
    answer = null;
  }
  if (answer?.action === 'allow') return { verdict: 'allow' };
  if (answer?.action === 'block') return { verdict: 'block', reason: answer.reason };
  if (answer?.action === 'modify' && typeof answer.body === 'string') {
    const body = Buffer.from(answer.body, 'base64');
    // Node's decoder skips what is not base64: only a body that encodes back to the very text is one.
    if (body.toString('base64') !== answer.body) return { verdict: 'error', code: 'external_dlp_bad_response', message: 'the webhook\'s "body" is not canonical base64' };
    return { verdict: 'modified', body };
  }
  return { verdict: 'error', code: 'external_dlp_bad_response', message: 'webhook answer is not {"action": "allow" | "block" | "modify"}' };
}

/** The answer's body as UTF-8 text, or null (and the rest cancelled) once it passes `limit` bytes. */
async function readLimited(res: Response, limit: number): Promise<string | null> {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel().catch(() => undefined);
      return null;
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}
