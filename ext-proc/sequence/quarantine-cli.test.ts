import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const cli = fileURLToPath(new URL('../../xds-server/cli/main.ts', import.meta.url));
let server: Server;
let url: string;
const quarantined = new Set(['bot-7']);

before(async () => {
  server = createServer((request, response) => {
    if (request.headers.authorization !== 'Bearer internal-secret') {
      response.writeHead(401, { 'content-type': 'application/problem+json' }).end(JSON.stringify({ code: 'unauthorized', title: 'no' }));
      return;
    }
    if (request.method === 'GET' && request.url === '/v1/quarantine') {
      const agents = [...quarantined].map((agent) => ({ agent, persona: 'support', since: '2026-01-01T00:00:00.000Z', reason: { code: 'circuit_open', message: 'looping' } }));
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ agents }));
      return;
    }
    const agent = decodeURIComponent((request.url ?? '').replace('/v1/quarantine/', ''));
    if (request.method === 'DELETE' && quarantined.delete(agent)) {
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ released: agent }));
      return;
    }
    response.writeHead(404, { 'content-type': 'application/problem+json' }).end(JSON.stringify({ code: 'not_quarantined', title: `agent "${agent}" is not quarantined` }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const address = server.address();
  url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
});
after(() => new Promise<void>((resolve) => server.close(() => resolve())));

function mandate(args: string[], token = 'internal-secret'): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], { env: { ...process.env, MANDATE_INTERNAL_TOKEN: token } }, (error, stdout, stderr) =>
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

test('mandate quarantine list and release talk to ext_proc with the internal token', async () => {
  const listed = await mandate(['quarantine', 'list', '--ext-proc', url]);
  assert.equal(listed.code, 0);
  assert.match(listed.stdout, /^bot-7\tsupport\t2026-01-01T00:00:00.000Z\tcircuit_open: looping$/m);
  const released = await mandate(['quarantine', 'release', 'bot-7', '--ext-proc', url]);
  assert.equal(released.code, 0);
  assert.equal(released.stdout, 'released bot-7\n');
  const again = await mandate(['quarantine', 'release', 'bot-7', '--ext-proc', url]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /not_quarantined/);
});

test('a wrong token and bad usage are reported with their codes', async () => {
  const refused = await mandate(['quarantine', 'list', '--ext-proc', url], 'wrong');
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /error: unauthorized/);
  const usage = await mandate(['quarantine', 'release']);
  assert.equal(usage.code, 2);
});
