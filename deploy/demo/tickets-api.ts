// A small REST upstream for the demo and the tests: tickets by id and by
// project. It reports the Authorization header it received, so a test can
// prove that the agent's credential was replaced by the backend's.
import { createServer, type Server } from 'node:http';

const tickets = [
  { id: '1', project: 'DEMO', title: 'Printer on fire' },
  { id: '2', project: 'DEMO', title: 'Cannot log in' },
  { id: '3', project: 'INTERNAL', title: 'Payroll export' },
  // Sensitive data in an answer, for the demo's data protection (a test card number, Luhn-valid).
  { id: '4', project: 'DEMO', title: 'Refund request', body: 'Please refund the charge on card 4539 1488 0343 6467.' },
];

export function createTicketsApi(): Server {
  return createServer(async (request, response) => {
    const url = new URL(request.url ?? '/', 'http://localhost');
    // Tests hold a request open with ?delayMs= to prove config changes do not drop it.
    const delayMs = Math.min(Number(url.searchParams.get('delayMs') ?? 0) || 0, 10_000);
    if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
    const mandateHeaders = Object.fromEntries(Object.entries(request.headers).filter(([name]) => name.startsWith('x-mandate-')));
    const received = { authorization: request.headers.authorization ?? null, mandateHeaders, path: url.pathname, method: request.method };
    const send = (status: number, body: unknown) => response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ ...((body ?? {}) as object), received }));
    if (request.method === 'GET' && url.pathname === '/api/tickets') {
      const project = url.searchParams.get('project');
      return send(200, { tickets: tickets.filter((t) => !project || t.project === project) });
    }
    const byId = /^\/api\/tickets\/([^/]+)$/.exec(url.pathname);
    if (byId && request.method === 'GET') {
      const ticket = tickets.find((t) => t.id === byId[1]);
      return ticket ? send(200, { ticket }) : send(404, { error: 'no such ticket' });
    }
    if (byId && request.method === 'DELETE') return send(200, { deleted: byId[1] });
    send(404, { error: 'not found' });
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const port = Number(process.env.PORT ?? 3002);
  createTicketsApi().listen(port, '127.0.0.1', () => process.stdout.write(`tickets API listening on 127.0.0.1:${port}\n`));
}
