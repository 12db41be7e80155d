// Spellings of a value that the upstream or the agent still reads as the value, end to end through the
// real Envoy: JSON behind a byte order mark with the card in \u escapes, a request body in ISO-8859-1
// with no-break spaces between the groups, a UTF-8 no-break space in a forwarded header, and a CSV
// export labelled application/vnd.ms-excel. Each reaches the other side masked.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, before, test } from 'node:test';
import { startGatewayFixture, type GatewayFixture } from './support/gateway-fixture.ts';
import { close, listen } from './support/recording-mcp-server.ts';

const card = '4539 1488 0343 6467';
const escaped = (s: string) => [...s].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join('');

let gateway: GatewayFixture;
let upstream: Server;
let token: string;
/** What the upstream received, oldest first. */
const received: { body: Buffer; headers: Record<string, string | string[] | undefined> }[] = [];

/** GET /export answers a CSV of customers, labelled as a spreadsheet; every POST is recorded and answered 204. */
function createUpstream(): Server {
  return createServer(async (request, response) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    received.push({ body: Buffer.concat(chunks), headers: request.headers });
    if (request.method === 'GET' && request.url?.startsWith('/api/export')) {
      response.writeHead(200, { 'content-type': 'application/vnd.ms-excel' }).end(`name,card\njane,${card}\njohn,4111111111111111\n`);
      return;
    }
    response.writeHead(204).end();
  });
}

before(async () => {
  upstream = createUpstream();
  const port = await listen(upstream);
  gateway = await startGatewayFixture({ demo: false });
  await gateway.apply([
    { kind: 'Upstream', name: 'files', protocol: 'rest', url: `http://127.0.0.1:${port}/api`, environment: 'production', forwardHeaders: ['x-note'] },
    {
      kind: 'Persona',
      name: 'spellings',
      description: 'Masks cards however they are spelled.',
      grants: [{ upstream: 'files', operations: [{ method: 'POST', path: '/notes' }, { method: 'GET', path: '/export' }] }],
      dataProtection: { profiles: ['pci-dss'], defaultAction: 'mask' },
    },
  ]);
  token = (await gateway.issueToken('spellings', 'spellings-agent')).token;
});

after(async () => {
  await gateway?.stop();
  if (upstream) await close(upstream);
});

const url = (path: string) => `${gateway.gatewayUrl}/personas/spellings/files${path}`;

async function post(body: Buffer, headers: Record<string, string>): Promise<Buffer> {
  const before = received.length;
  const response = await fetch(url('/notes'), { method: 'POST', headers: { authorization: `Bearer ${token}`, ...headers }, body });
  assert.equal(response.status, 204, await response.text());
  assert.equal(received.length, before + 1);
  return received.at(-1)!.body;
}

test('JSON after a byte order mark, the card in \\u escapes: masked before the upstream, the mark kept', async () => {
  const got = await post(Buffer.from(`\uFEFF{"card":"${escaped(card)}"}`), { 'content-type': 'application/json' });
  assert.ok(got.subarray(0, 3).equals(Buffer.from([0xef, 0xbb, 0xbf])), 'the mark is kept');
  assert.deepEqual(JSON.parse(got.subarray(3).toString('utf8')), { card: '**** **** **** 6467' });
});

test('a request body in ISO-8859-1 with no-break spaces (0xA0) between the groups: masked, still ISO-8859-1', async () => {
  const got = await post(Buffer.from('card 4539\u00a01488\u00a00343\u00a06467 for Ren\u00e9e', 'latin1'), { 'content-type': 'text/plain; charset=iso-8859-1' });
  assert.ok(got.equals(Buffer.from('card ****\u00a0****\u00a0****\u00a06467 for Ren\u00e9e', 'latin1')), got.toString('latin1'));
});

test('a forwarded header with UTF-8 no-break spaces between the groups: masked, written back as UTF-8', async () => {
  await post(Buffer.from('{}'), { 'content-type': 'application/json', 'x-note': Buffer.from('card 4539\u00a01488\u00a00343\u00a06467 \u2013 ok', 'utf8').toString('latin1') });
  const note = received.at(-1)!.headers['x-note'] as string;
  assert.equal(Buffer.from(note, 'latin1').toString('utf8'), 'card ****\u00a0****\u00a0****\u00a06467 \u2013 ok');
});

test('a CSV export labelled application/vnd.ms-excel is read as text: its cards reach the agent masked', async () => {
  const response = await fetch(url('/export'), { headers: { authorization: `Bearer ${token}` } });
  assert.equal(response.status, 200);
  assert.equal(await response.text(), 'name,card\njane,**** **** **** 6467\njohn,************1111\n');
});
