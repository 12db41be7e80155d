// Hand-off to an existing DLP product: an ICAP client (RFC 3507 REQMOD and
// RESPMOD) and a plain HTTP webhook. Inline mode waits up to the timeout and
// applies the fail mode when the service is down or slow; async mode only
// reports (audit) and never changes the body. Errors come back as values.
import { connect } from 'node:net';
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
}

/** What the data path does with the verdict, after applying the fail mode. */
export type ExternalOutcome = { action: 'continue'; body: Buffer | null; note: string | null } | { action: 'block'; code: string; message: string };

export async function consultExternalDlp(service: ExternalDlp, request: ExternalRequest): Promise<ExternalOutcome> {
  if (!service.directions.includes(request.direction)) return { action: 'continue', body: null, note: null };
  const call = service.type === 'icap' ? icapScan(service.url, request, service.timeoutMs) : webhookScan(service.url, request, service.timeoutMs);
  if (service.mode === 'async') {
    void call.catch(() => undefined);
    return { action: 'continue', body: null, note: 'sent to external DLP for audit' };
  }
  const v = await call;
  if (v.verdict === 'allow') return { action: 'continue', body: null, note: null };
  if (v.verdict === 'modified') return { action: 'continue', body: v.body, note: 'body rewritten by external DLP' };
  if (v.verdict === 'block') return { action: 'block', code: 'external_dlp_blocked', message: `the external DLP service refused this ${request.direction}: ${v.reason}` };
  if (service.failMode === 'open') return { action: 'continue', body: null, note: `${v.code}: ${v.message}; failing open` };
  return { action: 'block', code: v.code, message: `the external DLP service could not be consulted (${v.message}); this Persona fails closed` };
}

/** RFC 3507 client: one REQMOD or RESPMOD with the body encapsulated as a chunked HTTP message. */
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
    `${method} ${url} ICAP/1.0\r\nHost: ${host}\r\nAllow: 204\r\nEncapsulated: ${headName}=0, ${bodyName}=${headLen}\r\n\r\n`;
  const chunk = Buffer.concat([Buffer.from(`${request.body.length.toString(16)}\r\n`), request.body, Buffer.from('\r\n0\r\n\r\n')]);
  const message = Buffer.concat([Buffer.from(icapHead + httpHead), request.body.length > 0 ? chunk : Buffer.from('0\r\n\r\n')]);

  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    let settled = false;
    const finish = (v: ExternalVerdict) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(v);
    };
    const socket = connect({ host, port }, () => socket.write(message));
    const timer = setTimeout(() => finish({ verdict: 'error', code: 'external_dlp_timeout', message: `no ICAP answer within ${timeoutMs} ms` }), timeoutMs);
    socket.on('data', (d) => {
      parts.push(d);
      const parsed = parseIcapResponse(Buffer.concat(parts));
      if (parsed) finish(parsed);
    });
    socket.on('error', (e) => finish({ verdict: 'error', code: 'external_dlp_unavailable', message: e.message }));
    socket.on('end', () => finish(parseIcapResponse(Buffer.concat(parts), true) ?? { verdict: 'error', code: 'external_dlp_bad_response', message: 'ICAP connection closed mid-response' }));
  });
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
 * Webhook: POST {direction, upstream, tool, contentType, body(base64)}; the
 * service answers {"action": "allow" | "block" | "modify", "reason"?, "body"? (base64)}.
 */
export async function webhookScan(url: string, request: ExternalRequest, timeoutMs: number): Promise<ExternalVerdict> {
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ direction: request.direction, upstream: request.upstream, tool: request.tool ?? null, contentType: request.contentType, body: request.body.toString('base64') }),
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
