// A small ICAP (RFC 3507) server for tests, standing in for an enterprise DLP
// product: it answers OPTIONS with what the test says the service offers
// (methods, Preview, Max-Connections, ISTag), reads REQMOD/RESPMOD requests
// (previews too), records them, and answers as the test decides (no
// modification, a block, a rewritten body, or never).
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';

export type IcapAnswer = 'allow' | 'block' | 'hang' | { rewrite: string } | { block: true; headers: string } | { page: string; status?: number };

/** What the service says of itself in its OPTIONS answer; 'refuse' answers 404, 'hang' never answers. */
export type IcapServiceOffer =
  | {
      methods?: string;
      preview?: number;
      maxConnections?: number;
      istag?: string;
      ttlSeconds?: number;
      /** More header lines, each ending in \r\n (e.g. Transfer-Complete). */
      headers?: string;
    }
  | 'refuse'
  | 'hang';

export interface IcapServerOptions {
  /** A request beyond this many on one connection is not answered: the server hangs up instead. */
  answersPerConnection?: number;
  /** Default: Methods REQMOD, RESPMOD, Allow 204, no Preview. */
  offer?: IcapServiceOffer;
  /** The answer to a preview that is not the whole body: 'continue' (the default) asks for the rest. */
  previewAnswer?: (preview: string) => 'continue' | IcapAnswer;
  /** Each final answer is sent this long after the request is complete. */
  answerDelayMs?: number;
}

export interface IcapServer {
  port: number;
  /** Every REQMOD/RESPMOD as received (latin1 text), a preview and its rest as one. */
  seen: string[];
  /** Every OPTIONS request as received. */
  optionsSeen: string[];
  /** How many connections clients have opened. */
  connections(): number;
  /** The most connections open at one time. */
  mostOpenAtOnce(): number;
  close(): Promise<void>;
}

/**
 * Connections are persistent, as RFC 3507 makes them by default. With
 * answersPerConnection, a REQMOD/RESPMOD beyond that many on one connection is
 * not answered: the server hangs up instead, as one does whose keep-alive timer
 * fired just as the client reused the connection.
 */
export function startIcapServer(decide: (request: string) => IcapAnswer, options: IcapServerOptions = {}): Promise<IcapServer> {
  const seen: string[] = [];
  const optionsSeen: string[] = [];
  const open = new Set<Socket>();
  let connections = 0;
  let mostOpen = 0;
  const offer = options.offer ?? {};
  const server: Server = createServer((socket) => {
    connections++;
    open.add(socket);
    mostOpen = Math.max(mostOpen, open.size);
    socket.on('close', () => open.delete(socket));
    let data = '';
    /** A preview answered with 100 Continue: its text, until the rest comes. */
    let previewed: string | null = null;
    let answered = 0;
    const answerWith = (latin1: string) => socket.write(Buffer.from(latin1, 'latin1'));
    const answer = (answer: IcapAnswer, request: string) => {
      if (answer === 'hang') return;
      const istag = typeof offer === 'object' && offer.istag ? `ISTag: "${offer.istag}"\r\n` : '';
      const send = (latin1: string) => (options.answerDelayMs ? setTimeout(() => !socket.destroyed && answerWith(latin1), options.answerDelayMs) : answerWith(latin1));
      if (answer === 'allow') {
        send(`ICAP/1.0 204 No Content\r\n${istag}\r\n`);
      } else if (answer === 'block' || 'block' in answer) {
        const http = 'HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n';
        const extra = answer === 'block' ? '' : answer.headers;
        send(`ICAP/1.0 200 OK\r\n${istag}${extra}Encapsulated: res-hdr=0, null-body=${http.length}\r\n\r\n${http}`);
      } else if ('page' in answer) {
        // A block page: an HTTP response in place of the request (REQMOD) or the answer (RESPMOD).
        const http = `HTTP/1.1 ${answer.status ?? 200} Blocked\r\nContent-Type: text/html\r\n\r\n`;
        const body = Buffer.from(answer.page, 'utf8');
        send(`ICAP/1.0 200 OK\r\n${istag}Encapsulated: res-hdr=0, res-body=${http.length}\r\n\r\n${http}${body.length.toString(16)}\r\n${body.toString('latin1')}\r\n0\r\n\r\n`);
      } else {
        // A rewritten request is an HTTP request (REQMOD); a rewritten answer an HTTP response (RESPMOD).
        const reqmod = request.startsWith('REQMOD ');
        const http = reqmod ? 'POST / HTTP/1.1\r\nContent-Type: application/json\r\n\r\n' : 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n';
        const body = Buffer.from(answer.rewrite, 'utf8');
        send(`ICAP/1.0 200 OK\r\n${istag}Encapsulated: ${reqmod ? 'req-hdr=0, req-body' : 'res-hdr=0, res-body'}=${http.length}\r\n\r\n${http}${body.length.toString(16)}\r\n${body.toString('latin1')}\r\n0\r\n\r\n`);
      }
    };
    const answerOptions = () => {
      if (offer === 'hang') return;
      if (offer === 'refuse') return answerWith('ICAP/1.0 404 ICAP Service Not Found\r\nEncapsulated: null-body=0\r\n\r\n');
      const lines = [
        'ICAP/1.0 200 OK',
        `Methods: ${offer.methods ?? 'REQMOD, RESPMOD'}`,
        'Allow: 204',
        ...(offer.preview !== undefined ? [`Preview: ${offer.preview}`] : []),
        ...(offer.maxConnections !== undefined ? [`Max-Connections: ${offer.maxConnections}`] : []),
        ...(offer.istag !== undefined ? [`ISTag: "${offer.istag}"`] : []),
        ...(offer.ttlSeconds !== undefined ? [`Options-TTL: ${offer.ttlSeconds}`] : []),
      ];
      answerWith(`${lines.join('\r\n')}\r\n${offer.headers ?? ''}Encapsulated: null-body=0\r\n\r\n`);
    };
    socket.on('data', (chunk) => {
      data += chunk.toString('latin1');
      for (;;) {
        if (previewed === null && data.startsWith('OPTIONS ')) {
          const end = data.indexOf('\r\n\r\n');
          if (end < 0) return;
          optionsSeen.push(data.slice(0, end + 4));
          data = data.slice(end + 4);
          answerOptions();
          continue;
        }
        // The body's last chunk ("0", or "0; ieof" after a whole preview) ends the message.
        const last = /(?:^|\r\n)0(; ieof)?\r\n\r\n$/.exec(data);
        if (!last) return;
        const message = data;
        data = '';
        if (previewed === null && /\r\nPreview: \d+\r\n/.test(message) && !last[1]) {
          const early = (options.previewAnswer ?? (() => 'continue'))(message);
          if (early === 'continue') {
            previewed = message;
            answerWith('ICAP/1.0 100 Continue\r\n\r\n');
            return;
          }
          seen.push(message);
          answered++;
          answer(early, message);
          return;
        }
        const request = previewed === null ? message : previewed + message;
        previewed = null;
        seen.push(request);
        if (answered++ === options.answersPerConnection) {
          socket.destroy();
          return;
        }
        answer(decide(request), request);
        return;
      }
    });
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        port: (server.address() as AddressInfo).port,
        seen,
        optionsSeen,
        connections: () => connections,
        mostOpenAtOnce: () => mostOpen,
        close: () =>
          new Promise<void>((done) => {
            for (const socket of open) socket.destroy();
            server.close(() => done());
          }),
      }),
    ),
  );
}
