// A raw HTTP MCP upstream whose every answer the test frames itself: the status, the content type
// (charset included) and the exact bytes, so a test can prove how the gateway reads an answer that
// arrives in another charset, with an unusual status or under the wrong label. Notifications get 202.
import { createServer, type Server } from 'node:http';

export interface FramedAnswer {
  status: number;
  /** Absent: the answer has no content-type header. */
  contentType?: string;
  body: Buffer;
}

export interface JsonRpcRequest {
  id: string | number;
  method: string;
  params?: { name?: string; arguments?: Record<string, unknown> } & Record<string, unknown>;
}

/** `path`: the path the gateway forwarded to (an upstream URL's path can name the framing). */
export function createFramedAnswerUpstream(answer: (request: JsonRpcRequest, path: string) => FramedAnswer): Server {
  return createServer(async (request, response) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const message = JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null') as Partial<JsonRpcRequest> | null;
    if (!message || message.id === undefined || typeof message.method !== 'string') {
      response.writeHead(202).end();
      return;
    }
    const framed = answer(message as JsonRpcRequest, request.url ?? '/');
    response.writeHead(framed.status, { ...(framed.contentType !== undefined ? { 'content-type': framed.contentType } : {}), 'content-length': String(framed.body.length) });
    response.end(framed.body);
  });
}

/** A JSON-RPC result answering `request`, as JSON text. */
export function resultFor(request: JsonRpcRequest, result: unknown): string {
  return JSON.stringify({ jsonrpc: '2.0', id: request.id, result });
}
