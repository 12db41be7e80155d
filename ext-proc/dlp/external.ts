// Hand-off to an existing DLP product: an ICAP client (RFC 3507 REQMOD and
// RESPMOD) and a plain HTTP webhook. Inline mode waits up to the timeout and
// applies the fail mode when the service is down or slow; async mode only
// reports (audit) and never changes the body. Errors come back as values.
import { connect, type Socket } from 'node:net';
import type { ExternalDlp } from '../../config/data-protection-schema.ts';

export type ExternalVerdict =
  | { verdict: 'allow' }
  | { verdict: 'modified'; body: Buffer }
  | { verdict: 'block'; reason: string }
  | { verdict: 'error'; code: 'external_dlp_timeout' | 'external_dlp_unavailable' | 'external_dlp_bad_response'; message: string };

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

/**
 * What the data path does with the verdict, after applying the fail mode. `note` is what the audit
 * trail records about a call that went on: a rewrite, or a failure passed under failMode open.
 */
export type ExternalOutcome = { action: 'continue'; body: Buffer | null; note: { code: string; message: string } | null } | { action: 'block'; code: string; message: string };

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
    void call.catch(() => undefined);
    return { action: 'continue', body: null, note: null };
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
 * RFC 3507 client: one REQMOD or RESPMOD with the body encapsulated as a
 * chunked HTTP message, on a kept-alive connection to the service when one is
 * idle (see IcapConnections). A 200 whose body is byte-for-byte the one sent
 * (a server that does not offer 204, as c-icap's filters) is an allow.
 */
export function icapScan(url: string, request: ExternalRequest, timeoutMs: number): Promise<ExternalVerdict> {
  const u = new URL(url);
  const method = request.direction === 'request' ? 'REQMOD' : 'RESPMOD';
  const host = u.hostname;
  const port = Number(u.port || 1344);
  const httpHead =
    request.direction === 'request'
      ? `POST /${encodeURIComponent(request.upstream)}/${encodeURIComponent(request.tool ?? '')} HTTP/1.1\r\nHost: ${request.upstream}\r\nContent-Type: ${request.contentType}\r\nContent-Length: ${request.body.length}\r\n\r\n`
      : `HTTP/1.1 200 OK\r\nContent-Type: ${request.contentType}\r\nContent-Length: ${request.body.length}\r\n\r\n`;
  const headName = request.direction === 'request' ? 'req-hdr' : 'res-hdr';
  const bodyName = request.direction === 'request' ? 'req-body' : 'res-body';
  const headLen = Buffer.byteLength(httpHead);
  const icapHead =
    `${method} ${url} ICAP/1.0\r\nHost: ${host}\r\nAllow: 204\r\n${callerHeaders(request.caller)}Encapsulated: ${headName}=0, ${bodyName}=${headLen}\r\n\r\n`;
  const chunk = Buffer.concat([Buffer.from(`${request.body.length.toString(16)}\r\n`), request.body, Buffer.from('\r\n0\r\n\r\n')]);
  const message = Buffer.concat([Buffer.from(icapHead + httpHead), request.body.length > 0 ? chunk : Buffer.from('0\r\n\r\n')]);
  const deadline = Date.now() + timeoutMs;

  const exchange = (socket: Socket, reused: boolean): Promise<ExternalVerdict | 'retry'> =>
    new Promise((resolve) => {
      const parts: Buffer[] = [];
      let received = 0;
      let settled = false;
      const finish = (v: ExternalVerdict | 'retry', keep: boolean) => {
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
        parts.push(d);
        received += d.length;
        const data = parts.length === 1 ? d : Buffer.concat(parts);
        const parsed = parseIcapResponse(data);
        if (parsed) finish(unchangedIsAllow(parsed, request.body), parsed.verdict !== 'error' && reusable(data));
      };
      // A kept-alive connection the server has closed meanwhile fails before any byte: one retry on a new one.
      const onError = (e: Error) => finish(reused && received === 0 ? 'retry' : { verdict: 'error', code: 'external_dlp_unavailable', message: e.message }, false);
      const onEnd = () =>
        finish(
          reused && received === 0
            ? 'retry'
            : (parseIcapResponse(Buffer.concat(parts), true) ?? { verdict: 'error', code: 'external_dlp_bad_response', message: 'ICAP connection closed mid-response' }),
          false,
        );
      const timer = setTimeout(() => finish({ verdict: 'error', code: 'external_dlp_timeout', message: `no ICAP answer within ${timeoutMs} ms` }, false), Math.max(1, deadline - Date.now()));
      socket.on('data', onData);
      socket.on('error', onError);
      socket.on('end', onEnd);
      socket.write(message);
    });

  return (async () => {
    const idle = icapConnections.take(host, port);
    if (idle) {
      const v = await exchange(idle, true);
      if (v !== 'retry') return v;
    }
    const fresh = await icapConnections.open(host, port, deadline);
    if ('verdict' in fresh) return fresh;
    const v = await exchange(fresh, false);
    return v === 'retry' ? { verdict: 'error', code: 'external_dlp_unavailable', message: 'ICAP connection closed before an answer' } : v;
  })();
}

function unchangedIsAllow(v: ExternalVerdict, sent: Buffer): ExternalVerdict {
  return v.verdict === 'modified' && v.body.equals(sent) ? { verdict: 'allow' } : v;
}

/** False when the ICAP answer asks to close the connection (Connection: close). */
function reusable(data: Buffer): boolean {
  const headEnd = data.indexOf('\r\n\r\n');
  return !/\r\nConnection:\s*close/i.test(data.subarray(0, headEnd).toString('latin1'));
}

/**
 * Idle ICAP connections per service address, so that inline scanning at a
 * thousand calls a second does not open (and leave in TIME_WAIT) a thousand
 * sockets a second. At most maxIdlePerService are kept, each for idleMs; a
 * connection the server closes while idle is dropped.
 */
class IcapConnections {
  private readonly idle = new Map<string, Socket[]>();
  private readonly dropOf = new WeakMap<Socket, () => void>();

  private readonly maxIdlePerService: number;
  private readonly idleMs: number;

  constructor(maxIdlePerService: number, idleMs: number) {
    this.maxIdlePerService = maxIdlePerService;
    this.idleMs = idleMs;
  }

  take(host: string, port: number): Socket | null {
    const list = this.idle.get(`${host}:${port}`);
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
  }

  open(host: string, port: number, deadline: number): Promise<Socket | ExternalVerdict> {
    return new Promise((resolve) => {
      const socket = connect({ host, port });
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

/** Closes the idle ICAP connections this process keeps. */
export function closeIdleIcapConnections(): void {
  icapConnections.closeAll();
}

/** Parses a complete ICAP response, or returns null if more bytes are needed. */
export function parseIcapResponse(data: Buffer, closed = false): ExternalVerdict | null {
  const headEnd = data.indexOf('\r\n\r\n');
  if (headEnd < 0) return closed ? { verdict: 'error', code: 'external_dlp_bad_response', message: 'truncated ICAP header' } : null;
  const head = data.subarray(0, headEnd).toString('latin1');
  const status = /^ICAP\/1\.0 (\d{3})/.exec(head);
  if (!status) return { verdict: 'error', code: 'external_dlp_bad_response', message: 'not an ICAP/1.0 response' };
  const code = Number(status[1]);
  if (code === 204) return { verdict: 'allow' };
  if (code !== 200) return { verdict: 'error', code: 'external_dlp_bad_response', message: `ICAP status ${code}` };
  const encapsulated = /\r\nEncapsulated:\s*([^\r\n]+)/i.exec(head)?.[1] ?? '';
  const offsets = new Map(encapsulated.split(',').map((p) => {
    const [k, v] = p.trim().split('=');
    return [k ?? '', Number(v)] as const;
  }));
  const rest = data.subarray(headEnd + 4);
  const bodyOffset = offsets.get('res-body') ?? offsets.get('req-body');
  const httpHeadEnd = bodyOffset ?? offsets.get('null-body') ?? 0;
  const httpHead = rest.subarray(0, httpHeadEnd).toString('latin1');
  // A DLP that blocks answers 200 with its own HTTP error response (e.g. 403).
  const httpStatus = /^HTTP\/1\.[01] (\d{3})/.exec(httpHead);
  if (bodyOffset === undefined) {
    if (httpStatus && Number(httpStatus[1]) >= 400) return { verdict: 'block', reason: `HTTP ${httpStatus[1]}` };
    return { verdict: 'allow' };
  }
  const body = dechunk(rest.subarray(bodyOffset));
  if (body === null) return closed ? { verdict: 'error', code: 'external_dlp_bad_response', message: 'truncated chunked body' } : null;
  if (httpStatus && Number(httpStatus[1]) >= 400) return { verdict: 'block', reason: `HTTP ${httpStatus[1]}` };
  return { verdict: 'modified', body };
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
