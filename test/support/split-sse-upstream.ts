// A raw HTTP MCP upstream that answers tools/call as a server-sent event written
// in two pieces with a pause between them, the cut falling inside the sensitive
// value, so a test can prove the gateway masks a value split across chunks
// while the stream keeps flowing.
import { createServer, type Server } from 'node:http';

export interface SplitSseOptions {
  /** The tool result text. */
  resultText: string;
  /** The cut falls inside the data line at the start of this substring plus `offset`. */
  splitInside: string;
  offset: number;
  pauseMs: number;
}

export function createSplitSseUpstream(options: SplitSseOptions): Server {
  return createServer(async (request, response) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const message = JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null') as { id?: number | string; method?: string } | null;
    if (!message || message.id === undefined) {
      response.writeHead(202).end();
      return;
    }
    if (message.method !== 'tools/call') {
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ jsonrpc: '2.0', id: message.id, result: {} }));
      return;
    }
    const event = `event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', id: message.id, result: { content: [{ type: 'text', text: options.resultText }] } })}\n\n`;
    const cut = event.indexOf(options.splitInside) + options.offset;
    response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    response.write(event.slice(0, cut));
    await new Promise((resolve) => setTimeout(resolve, options.pauseMs));
    response.end(event.slice(cut));
  });
}
