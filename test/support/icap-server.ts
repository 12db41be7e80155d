// A small ICAP (RFC 3507) server for tests, standing in for an enterprise DLP
// product: it reads one REQMOD/RESPMOD per connection, records it, and answers
// as the test decides (no modification, a block, a rewritten body, or never).
import { createServer, type AddressInfo, type Server } from 'node:net';

export type IcapAnswer = 'allow' | 'block' | 'hang' | { rewrite: string };

export interface IcapServer {
  port: number;
  /** Every ICAP request as received (latin1 text). */
  seen: string[];
  close(): Promise<void>;
}

export function startIcapServer(decide: (request: string) => IcapAnswer): Promise<IcapServer> {
  const seen: string[] = [];
  const server: Server = createServer((socket) => {
    let data = '';
    socket.on('data', (chunk) => {
      data += chunk.toString('latin1');
      if (!data.endsWith('0\r\n\r\n')) return;
      seen.push(data);
      const answer = decide(data);
      if (answer === 'hang') return;
      if (answer === 'allow') {
        socket.end('ICAP/1.0 204 No Content\r\n\r\n');
      } else if (answer === 'block') {
        const http = 'HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n';
        socket.end(`ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, null-body=${http.length}\r\n\r\n${http}`);
      } else {
        const http = 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n';
        const body = Buffer.from(answer.rewrite, 'utf8');
        socket.end(`ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, res-body=${http.length}\r\n\r\n${http}${body.length.toString(16)}\r\n${answer.rewrite}\r\n0\r\n\r\n`);
      }
    });
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        port: (server.address() as AddressInfo).port,
        seen,
        close: () => new Promise<void>((done) => server.close(() => done())),
      }),
    ),
  );
}
