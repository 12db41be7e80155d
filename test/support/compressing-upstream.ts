// An upstream that compresses its answers, as many HTTP servers do: gzip when
// the request accepts it, or always (a server that ignores accept-encoding).
// It serves MCP tools/list and tools/call (any tool answers with `resultText`)
// under /mcp and JSON for any GET under /api, and records each request's
// accept-encoding and content-encoding.
import { createServer, type Server } from 'node:http';
import { gzipSync } from 'node:zlib';

export interface CompressingUpstream {
  server: Server;
  /** One line per request: method, path and the two headers as received. */
  seen: { method: string; path: string; acceptEncoding: string | null; contentEncoding: string | null }[];
}

export function createCompressingUpstream(options: { resultText: string; always: boolean }): CompressingUpstream {
  const seen: CompressingUpstream['seen'] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (c: Buffer) => chunks.push(c));
    request.on('end', () => {
      const header = (name: string) => (request.headers[name] as string | undefined) ?? null;
      seen.push({ method: request.method ?? '', path: request.url ?? '', acceptEncoding: header('accept-encoding'), contentEncoding: header('content-encoding') });
      let answer: unknown;
      if ((request.url ?? '').startsWith('/mcp')) {
        const message = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { id: number; method: string };
        answer =
          message.method === 'tools/list'
            ? { jsonrpc: '2.0', id: message.id, result: { tools: [{ name: 'read_card', inputSchema: { type: 'object' } }, { name: 'admin_console', inputSchema: { type: 'object' } }] } }
            : { jsonrpc: '2.0', id: message.id, result: { content: [{ type: 'text', text: options.resultText }] } };
      } else {
        answer = { note: options.resultText };
      }
      const body = Buffer.from(JSON.stringify(answer), 'utf8');
      const compress = options.always || /\bgzip\b/.test(header('accept-encoding') ?? '');
      response.writeHead(200, { 'content-type': 'application/json', ...(compress ? { 'content-encoding': 'gzip' } : {}) });
      response.end(compress ? gzipSync(body) : body);
    });
  });
  return { server, seen };
}
