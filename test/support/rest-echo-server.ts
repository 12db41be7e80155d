// A REST upstream that records each request (target, headers, body) it received and echoes the body back
// as JSON, with a fixed sensitive value of its own in the answer when asked.
import { createServer, type Server } from 'node:http';

export interface RestEchoServer {
  server: Server;
  /** Raw request bodies as received, oldest first. */
  bodies: string[];
  /** Request targets (path and query) as received, oldest first. */
  urls: string[];
  /** Request headers as received, oldest first. */
  headers: Record<string, string | string[] | undefined>[];
}

/**
 * GET .../events answers a JSON-lines stream (application/x-ndjson) whose 13th line carries
 * `options.streamedSecret`, written in two pieces 150 ms apart with the cut inside the value.
 * With ?shape=long it is one long line, cut at the space before the secret's third group with
 * 256 characters of the line after that space in the first write (where a cut at the last space
 * before a fixed tail would split the value); with &label=none the same comes without a content type.
 * A request whose query has debug=1 gets `options.secretInAnswer` in an answer header too.
 * GET .../download?kind=unlabelled|octet|binary|png answers that secret with the wrong or no label.
 */
export function createRestEchoServer(options: { secretInAnswer: string; streamedSecret?: string }): RestEchoServer {
  const bodies: string[] = [];
  const urls: string[] = [];
  const headers: Record<string, string | string[] | undefined>[] = [];
  const server = createServer(async (request, response) => {
    urls.push(request.url ?? '');
    headers.push(request.headers);
    if (request.method === 'GET' && (request.url ?? '').split('?')[0]!.endsWith('/events') && options.streamedSecret) {
      const query = new URLSearchParams((request.url ?? '').split('?')[1] ?? '');
      const long = query.get('shape') === 'long';
      const secret = options.streamedSecret;
      const lines = long
        ? JSON.stringify({ seq: 0, note: `${'z'.repeat(300)} card ${secret} ${'y'.repeat(244)}` }) + '\n'
        : Array.from({ length: 20 }, (_, i) => JSON.stringify({ seq: i, note: i === 12 ? `card ${secret}` : 'heartbeat' })).join('\n') + '\n';
      const thirdGroup = lines.indexOf(secret) + secret.indexOf(' ', secret.indexOf(' ') + 1) + 1;
      const cut = long ? thirdGroup + 256 : lines.indexOf(secret) + 7;
      response.writeHead(200, query.get('label') === 'none' ? {} : { 'content-type': 'application/x-ndjson' });
      response.write(lines.slice(0, cut));
      setTimeout(() => response.end(lines.slice(cut)), 150);
      return;
    }
    const download = /\/download\?kind=(\w+)/.exec(request.url ?? '')?.[1];
    if (request.method === 'GET' && download) {
      // The same secret as text with no content type, as text labelled application/octet-stream, and
      // inside binary bytes (NULs around it) labelled application/octet-stream and image/png.
      const text = Buffer.from(JSON.stringify({ account: { card: options.secretInAnswer } }));
      const binary = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 0, 0, 0x0d]), Buffer.from(` ${options.secretInAnswer} `), Buffer.alloc(64)]);
      const headers: Record<string, string> = download === 'unlabelled' ? {} : { 'content-type': download === 'png' ? 'image/png' : 'application/octet-stream' };
      response.writeHead(200, headers).end(download === 'binary' || download === 'png' ? binary : text);
      return;
    }
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    if (request.method === 'POST') bodies.push(text);
    const declared = Number(request.headers['content-length'] ?? -1);
    const form = (request.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded');
    const answer = { received: !text ? null : form ? Object.fromEntries(new URLSearchParams(text)) : (JSON.parse(text) as unknown), contentLengthMatched: declared === Buffer.byteLength(text), account: { card: options.secretInAnswer } };
    const extra = (request.url ?? '').includes('debug=1') ? { 'x-debug-token': options.secretInAnswer, 'x-trace': 'plain' } : {};
    response.writeHead(200, { 'content-type': 'application/json', ...extra }).end(JSON.stringify(answer));
  });
  return { server, bodies, urls, headers };
}
