// A REST upstream that records each request body it received and echoes it back
// as JSON, with a fixed sensitive value of its own in the answer when asked.
import { createServer, type Server } from 'node:http';

export interface RestEchoServer {
  server: Server;
  /** Raw request bodies as received, oldest first. */
  bodies: string[];
  /** Request targets (path and query) as received, oldest first. */
  urls: string[];
}

export function createRestEchoServer(options: { secretInAnswer: string }): RestEchoServer {
  const bodies: string[] = [];
  const urls: string[] = [];
  const server = createServer(async (request, response) => {
    urls.push(request.url ?? '');
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    if (request.method === 'POST') bodies.push(text);
    const declared = Number(request.headers['content-length'] ?? -1);
    const answer = { received: text ? (JSON.parse(text) as unknown) : null, contentLengthMatched: declared === Buffer.byteLength(text), account: { card: options.secretInAnswer } };
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
  });
  return { server, bodies, urls };
}
