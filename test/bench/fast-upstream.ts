// The benchmark's upstream: answers as fast as Node can, so the gateway's cost
// dominates the difference between the direct and the Mandate route.
import { createServer } from 'node:http';

const toolResult = JSON.stringify({ content: [{ type: 'text', text: 'ticket 42: printer on fire' }], isError: false });
const port = Number(process.env.PORT ?? 3100);

createServer((request, response) => {
  if (request.method === 'POST') {
    const chunks: Buffer[] = [];
    request.on('data', (c: Buffer) => chunks.push(c));
    request.on('end', () => {
      let id: unknown = null;
      try {
        id = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { id?: unknown }).id ?? null;
      } catch {
        // answer anyway
      }
      const body = `{"jsonrpc":"2.0","id":${JSON.stringify(id)},"result":${toolResult}}`;
      response.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
    });
    return;
  }
  const body = '{"item":{"id":"42","title":"printer on fire"}}';
  response.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
})
  .listen(port, '127.0.0.1', () => process.stdout.write(`fast upstream on ${port}\n`));
