// A small ICAP (RFC 3507) server for tests, standing in for an enterprise DLP
// product: it reads REQMOD/RESPMOD requests, records them, and answers
// as the test decides (no modification, a block, a rewritten body, or never).
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';

export type IcapAnswer = 'allow' | 'block' | 'hang' | { rewrite: string };

export interface IcapServer {
  port: number;
  /** Every ICAP request as received (latin1 text). */
  seen: string[];
  /** How many connections clients have opened. */
  connections(): number;
  close(): Promise<void>;
}

/**
 * Connections are persistent, as RFC 3507 makes them by default. With
 * answersPerConnection, a request beyond that many on one connection is not
 * answered: the server hangs up instead, as one does whose keep-alive timer
 * fired just as the client reused the connection.
 */
export function startIcapServer(decide: (request: string) => IcapAnswer, options: { answersPerConnection?: number } = {}): Promise<IcapServer> {
  const seen: string[] = [];
  const open = new Set<Socket>();
  let connections = 0;
  const server: Server = createServer((socket) => {
    connections++;
    open.add(socket);
    socket.on('close', () => open.delete(socket));
    let data = '';
    let answered = 0;
    const answerWith = (latin1: string) => socket.write(Buffer.from(latin1, 'latin1'));
    socket.on('data', (chunk) => {
      data += chunk.toString('latin1');
      if (!data.endsWith('0\r\n\r\n')) return;
      const request = data;
      data = '';
      seen.push(request);
      if (answered++ === options.answersPerConnection) {
        socket.destroy();
        return;
      }
      const answer = decide(request);
      if (answer === 'hang') return;
      if (answer === 'allow') {
        answerWith('ICAP/1.0 204 No Content\r\n\r\n');
      } else if (answer === 'block') {
        const http = 'HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n';
        answerWith(`ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, null-body=${http.length}\r\n\r\n${http}`);
      } else {
        const http = 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n';
        const body = Buffer.from(answer.rewrite, 'utf8');
        answerWith(`ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, res-body=${http.length}\r\n\r\n${http}${body.length.toString(16)}\r\n${body.toString('latin1')}\r\n0\r\n\r\n`);
      }
    });
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        port: (server.address() as AddressInfo).port,
        seen,
        connections: () => connections,
        close: () =>
          new Promise<void>((done) => {
            for (const socket of open) socket.destroy();
            server.close(() => done());
          }),
      }),
    ),
  );
}
