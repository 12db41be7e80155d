// The benchmark's upstream: answers as fast as Node can, so the gateway's cost
// dominates the difference between the direct and the Mandate route.
import { createServer } from 'node:http';

const toolResult = JSON.stringify({ content: [{ type: 'text', text: 'ticket 42: printer on fire' }], isError: false });
// For the 4 KiB workload: a ticket thread of about 4 KiB with a customer's e-mail address and card number in it.
const thread = Array.from({ length: 43 }, (_, i) => `Comment ${i + 1}: the printer on floor ${(i % 7) + 1} jams again after the firmware update; tray two is empty.`);
thread[5] = 'Comment 6: customer jane.doe@example.com asked for a refund to the card on file.';
thread[17] = 'Comment 18: card 4539 1488 0343 6467 was charged twice for the same repair.';
const toolResult4k = JSON.stringify({ content: [{ type: 'text', text: thread.join('\n') }], isError: false });
const port = Number(process.env.PORT ?? 3100);

createServer((request, response) => {
  if (request.method === 'POST') {
    const chunks: Buffer[] = [];
    request.on('data', (c: Buffer) => chunks.push(c));
    request.on('end', () => {
      let id: unknown = null;
      let tool: unknown = null;
      try {
        const message = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { id?: unknown; params?: { name?: unknown } };
        id = message.id ?? null;
        tool = message.params?.name ?? null;
      } catch {
        // answer anyway
      }
      const body = `{"jsonrpc":"2.0","id":${JSON.stringify(id)},"result":${tool === 'read_thread' ? toolResult4k : toolResult}}`;
      response.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
    });
    return;
  }
  const body = '{"item":{"id":"42","title":"printer on fire"}}';
  response.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
})
  .listen(port, '127.0.0.1', () => process.stdout.write(`fast upstream on ${port}\n`));
