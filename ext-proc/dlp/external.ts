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
  | { verdict: 'block'; reason: string; facts?: IcapFacts }
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

/**
 * rewriteProblem, when given, holds a rewritten body to what was authorized
 * (for MCP: the same messages, ids and names): a rewrite it refuses is a bad
 * response, under the service's fail mode; failing open then keeps the body
 * that was sent, not the rewrite.
 */
export async function consultExternalDlp(service: ExternalDlp, request: ExternalRequest, rewriteProblem?: (rewritten: Buffer) => string | null): Promise<ExternalOutcome> {
  if (!service.directions.includes(request.direction)) return { action: 'continue', body: null, note: null };
  const call = service.type === 'icap' ? icapScan(service.url, request, service.timeoutMs) : webhookScan(service.url, request, service.timeoutMs);
  if (service.mode === 'async') {
    const later = call.then(
      (v) => asyncVerdictNote(v, request.direction),
      (e: unknown) => asyncVerdictNote({ verdict: 'error', code: 'external_dlp_unavailable', message: e instanceof Error ? e.message : String(e) }, request.direction),
    );
    return { action: 'continue', body: null, note: null, later };
  }
  let v = await call;
  const problem = v.verdict === 'modified' && rewriteProblem ? rewriteProblem(v.body) : null;
  if (problem !== null) v = { verdict: 'error', code: 'external_dlp_bad_response', message: problem };
  if (v.verdict === 'allow') return { action: 'continue', body: null, note: null };
  if (v.verdict === 'modified') return { action: 'continue', body: v.body, note: { code: 'external_dlp_rewrote', message: `the external DLP service rewrote this ${request.direction}` } };
  if (v.verdict === 'block') return { action: 'block', code: 'external_dlp_blocked', message: `the external DLP service refused this ${request.direction}: ${v.reason}` };
  if (service.failMode === 'open') return { action: 'continue', body: null, note: { code: v.code, message: `${v.message}; passed uninspected by this service, which fails open` } };
  return { action: 'block', code: v.code, message: `the external DLP service could not be consulted (${v.message}); this Persona fails closed` };
}

/**
 * An async service's verdict as an audit note (code external_dlp_async_verdict): what it would have
 * done, as `key=value` words after a fixed lead, and what its ICAP answer said of itself (status,
 * ISTag, threat names). Never the body, and the service's own words only sanitised and cut short.
 */
export function asyncVerdictNote(v: ExternalVerdict, direction: 'request' | 'response'): ExternalNote {
  const words: string[] = [];
  if (v.verdict === 'error') {
    words.push('verdict=error', `error=${v.code}`, `detail="${safeText(v.message, 160)}"`);
  } else {
    words.push(`verdict=${v.verdict === 'allow' ? 'allow' : v.verdict === 'modified' ? 'would-modify' : 'would-block'}`);
    if (v.verdict === 'block' && !v.facts) words.push(`reason="${safeText(v.reason, 120)}"`);
    if (v.facts) {
      words.push(`icap-status=${v.facts.status}`);
      if (v.facts.httpStatus !== null) words.push(`http-status=${v.facts.httpStatus}`);
      if (v.facts.istag !== null) words.push(`istag="${v.facts.istag}"`);
      if (v.facts.threats.length > 0) words.push(`threats="${v.facts.threats.join(', ')}"`);
    }
  }
  return { code: 'external_dlp_async_verdict', message: `audit only, this ${direction} went on unchanged: ${words.join(' ')}` };
}

/** Printable ASCII without quotes or backslashes, at most `max` characters. */
function safeText(text: string, max: number): string {
  const clean = text.replace(/[^\x20-\x7e]|["\\]/g, '_').trim();
  return clean.length > max ? `${clean.slice(0, max - 1)}~` : clean;
}

/**
 * RFC 3507 client: OPTIONS once per service and Options-TTL (icapOptionsOf), then one REQMOD or
 * RESPMOD with the body encapsulated as a chunked HTTP message, on a kept-alive connection to the
 * service when one is idle (see IcapConnections). When the service asked for a preview, the first
 * `Preview` bytes go alone, ended with `0; ieof` when they are the whole body; the rest follows a
 * `100 Continue`, and a final answer to the preview is the answer. A 200 whose body is byte-for-byte
 * the one sent (a server that does not offer 204, as c-icap's filters) is an allow. OPTIONS,
 * waiting for a connection, the preview and the rest all share the one timeout.
 */
export async function icapScan(url: string, request: ExternalRequest, timeoutMs: number): Promise<ExternalVerdict> {
  const deadline = Date.now() + timeoutMs;
  const u = new URL(url);
  const host = u.hostname;
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

  const answer = await converse<ExternalVerdict>(host, port, deadline, timeoutMs, {
    first,
    read(data, closed) {
      if (preview !== null && /^ICAP\/1\.0 100[ \r]/.test(data.subarray(0, 13).toString('latin1'))) {
        const headEnd = data.indexOf('\r\n\r\n');
        if (headEnd < 0) return closed ? { done: { verdict: 'error', code: 'external_dlp_bad_response', message: 'truncated ICAP header' }, keep: false } : null;
        if (rest === null) return { done: { verdict: 'error', code: 'external_dlp_bad_response', message: 'ICAP 100 Continue after the whole body was sent' }, keep: false };
        const send = rest;
        rest = null;
        return { send, consumed: headEnd + 4 };
      }
      const parsed = parseIcapResponse(data, closed);
      if (!parsed) return null;
      return { done: unchangedIsAllow(parsed, body), keep: parsed.verdict !== 'error' && reusable(data) };
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

/** False when the ICAP answer asks to close the connection (Connection: close). */
function reusable(data: Buffer): boolean {
  const headEnd = data.indexOf('\r\n\r\n');
  return !/\r\nConnection:\s*close/i.test(data.subarray(0, headEnd).toString('latin1'));
}

/**
 * One ICAP request on a connection: the bytes written first, and what to make of the bytes that
 * came back so far (all of them since the last `send`): null for more, `send` to write more after
 * dropping the `consumed` bytes read (an interim 100 Continue), or `done` with whether the
 * connection may be kept.
 */
interface IcapTurn<T> {
  first: Buffer;
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
    let data: Buffer = Buffer.alloc(0);
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
      received += d.length;
      data = data.length === 0 ? d : Buffer.concat([data, d]);
      for (;;) {
        const step = turn.read(data, false);
        if (step === null) return;
        if ('done' in step) return finish(step.done, step.keep);
        data = data.subarray(step.consumed);
        socket.write(step.send);
        if (data.length === 0) return;
      }
    };
    // A kept-alive connection the server has closed meanwhile fails before any byte: one retry on a new one.
    const onError = (e: Error) => finish(reused && received === 0 ? 'retry' : { verdict: 'error', code: 'external_dlp_unavailable', message: e.message }, false);
    const onEnd = () => {
      if (reused && received === 0) return finish('retry', false);
      const step = turn.read(data, true);
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
  const headEnd = data.indexOf('\r\n\r\n');
  if (headEnd < 0) return closed ? { verdict: 'error', code: 'external_dlp_unavailable', message: 'truncated ICAP OPTIONS answer' } : null;
  const head = data.subarray(0, headEnd).toString('latin1');
  const status = /^ICAP\/1\.0 (\d{3})/.exec(head);
  if (!status) return { verdict: 'error', code: 'external_dlp_unavailable', message: 'the OPTIONS answer is not ICAP/1.0' };
  if (status[1] !== '200') return { verdict: 'error', code: 'external_dlp_unavailable', message: `OPTIONS answered ICAP ${status[1]}` };
  const headers = icapHeaders(head);
  // An opt-body is read to its end (and ignored) so that the connection stays usable.
  const optBody = /opt-body=(\d+)/i.exec(headers.get('encapsulated') ?? '');
  if (optBody && dechunk(data.subarray(headEnd + 4 + Number(optBody[1]))) === null) {
    return closed ? { verdict: 'error', code: 'external_dlp_unavailable', message: 'truncated ICAP OPTIONS body' } : null;
  }
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
    const answer = await converse<IcapServiceOptions>(host, port, deadline, timeoutMs, {
      first: Buffer.from(`OPTIONS ${url} ICAP/1.0\r\nHost: ${host}\r\nEncapsulated: null-body=0\r\n\r\n`),
      read(data, closed) {
        const parsed = parseIcapOptions(data, closed);
        return parsed === null ? null : { done: parsed, keep: !('verdict' in parsed) && reusable(data) };
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

/** Parses a complete ICAP response, or returns null if more bytes are needed. */
export function parseIcapResponse(data: Buffer, closed = false): ExternalVerdict | null {
  const headEnd = data.indexOf('\r\n\r\n');
  if (headEnd < 0) return closed ? { verdict: 'error', code: 'external_dlp_bad_response', message: 'truncated ICAP header' } : null;
  const head = data.subarray(0, headEnd).toString('latin1');
  const status = /^ICAP\/1\.0 (\d{3})/.exec(head);
  if (!status) return { verdict: 'error', code: 'external_dlp_bad_response', message: 'not an ICAP/1.0 response' };
  const code = Number(status[1]);
  const headers = icapHeaders(head);
  const facts = (httpStatus: number | null): IcapFacts => ({ status: code, istag: istagOf(headers), httpStatus, threats: threatsOf(headers) });
  if (code === 204) return { verdict: 'allow', facts: facts(null) };
  if (code !== 200) return { verdict: 'error', code: 'external_dlp_bad_response', message: `ICAP status ${code}` };
  const encapsulated = headers.get('encapsulated') ?? '';
  const offsets = new Map(encapsulated.split(',').map((p) => {
    const [k, v] = p.trim().split('=');
    return [k ?? '', Number(v)] as const;
  }));
  const rest = data.subarray(headEnd + 4);
  const bodyOffset = offsets.get('res-body') ?? offsets.get('req-body');
  const httpHeadEnd = bodyOffset ?? offsets.get('null-body') ?? 0;
  const httpHead = rest.subarray(0, httpHeadEnd).toString('latin1');
  // A DLP that blocks answers 200 with its own HTTP error response (e.g. 403).
  const httpStatusText = /^HTTP\/1\.[01] (\d{3})/.exec(httpHead)?.[1];
  const httpStatus = httpStatusText === undefined ? null : Number(httpStatusText);
  if (bodyOffset === undefined) {
    if (httpStatus !== null && httpStatus >= 400) return { verdict: 'block', reason: `HTTP ${httpStatus}`, facts: facts(httpStatus) };
    return { verdict: 'allow', facts: facts(httpStatus) };
  }
  const body = dechunk(rest.subarray(bodyOffset));
  if (body === null) return closed ? { verdict: 'error', code: 'external_dlp_bad_response', message: 'truncated chunked body' } : null;
  if (httpStatus !== null && httpStatus >= 400) return { verdict: 'block', reason: `HTTP ${httpStatus}`, facts: facts(httpStatus) };
  return { verdict: 'modified', body, facts: facts(httpStatus) };
}

function dechunk(data: Buffer): Buffer | null {
  const out: Buffer[] = [];
  let i = 0;
  for (;;) {
    const lineEnd = data.indexOf('\r\n', i);
    if (lineEnd < 0) return null;
    const size = parseInt(data.subarray(i, lineEnd).toString('latin1').split(';')[0]!, 16);
    if (Number.isNaN(size)) return null;
    if (size === 0) return Buffer.concat(out);
    if (data.length < lineEnd + 2 + size + 2) return null;
    out.push(data.subarray(lineEnd + 2, lineEnd + 2 + size));
    i = lineEnd + 2 + size + 2;
  }
}

/**
 * Webhook: POST {direction, upstream, tool, agent, persona, sourceAddress, contentType, body(base64)}; the
 * service answers {"action": "allow" | "block" | "modify", "reason"?, "body"? (base64)}.
 */
export async function webhookScan(url: string, request: ExternalRequest, timeoutMs: number): Promise<ExternalVerdict> {
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
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (e) {
    const timeout = e instanceof Error && (e.name === 'TimeoutError' || e.name === 'AbortError');
    return { verdict: 'error', code: timeout ? 'external_dlp_timeout' : 'external_dlp_unavailable', message: e instanceof Error ? e.message : String(e) };
  }
  if (!res.ok) return { verdict: 'error', code: 'external_dlp_unavailable', message: `webhook answered HTTP ${res.status}` };
  const answer = (await res.json().catch(() => null)) as { action?: string; reason?: string; body?: string } | null;
  if (answer?.action === 'allow') return { verdict: 'allow' };
  if (answer?.action === 'block') return { verdict: 'block', reason: answer.reason ?? 'refused' };
  if (answer?.action === 'modify' && typeof answer.body === 'string') return { verdict: 'modified', body: Buffer.from(answer.body, 'base64') };
  return { verdict: 'error', code: 'external_dlp_bad_response', message: 'webhook answer is not {"action": "allow" | "block" | "modify"}' };
}
