import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startIcapServer } from '../../test/support/icap-server.ts';
import { consultExternalDlp, icapScan, ipOf, parseIcapResponse } from './external.ts';

/** "secret" -> blocked, "rewrite" -> a new body, "slow" -> never answered, else no modification. */
async function startIcap(options: { answersPerConnection?: number } = {}): Promise<{ port: number; seen: string[]; connections(): number; close(): void }> {
  const icap = await startIcapServer(
    (data) => (data.includes('slow') ? 'hang' : data.includes('secret') ? 'block' : data.includes('rewrite') ? { rewrite: '{"ok":"rewritten"}' } : data.includes('echo') ? { rewrite: '{"k":"echo"}' } : 'allow'),
    options,
  );
  return { port: icap.port, seen: icap.seen, connections: icap.connections, close: () => void icap.close() };
}

const req = (body: string, direction: 'request' | 'response' = 'response') => ({ direction, upstream: 'billing', tool: 'get', contentType: 'application/json', body: Buffer.from(body) });

test('ICAP RESPMOD and REQMOD against a local ICAP server: allow, block, rewrite', async () => {
  const icap = await startIcap();
  try {
    const url = `icap://127.0.0.1:${icap.port}/dlp`;
    assert.deepEqual(await icapScan(url, req('{"a":1}'), 2000), { verdict: 'allow' });
    assert.match(icap.seen[0]!, /^RESPMOD icap:\/\/127\.0\.0\.1:\d+\/dlp ICAP\/1\.0\r\n/);
    assert.match(icap.seen[0]!, /Encapsulated: res-hdr=0, res-body=\d+\r\n/);
    assert.ok(icap.seen[0]!.includes('\r\n7\r\n{"a":1}\r\n0\r\n\r\n'), 'body is chunk-encoded');

    const blocked = await icapScan(url, req('{"k":"secret"}', 'request'), 2000);
    assert.equal(blocked.verdict, 'block');
    assert.match(icap.seen[1]!, /^REQMOD .*\r\nEncapsulated: req-hdr=0, req-body=\d+/s);

    const rewritten = await icapScan(url, req('{"k":"rewrite"}'), 2000);
    assert.ok(rewritten.verdict === 'modified');
    assert.equal(rewritten.body.toString(), '{"ok":"rewritten"}');
  } finally {
    icap.close();
  }
});

test('ICAP connections are kept alive and reused; one the server closed is replaced without failing the scan', async () => {
  const persistent = await startIcap();
  const hangsUp = await startIcap({ answersPerConnection: 1 });
  try {
    const url = `icap://127.0.0.1:${persistent.port}/dlp`;
    for (let i = 0; i < 5; i++) assert.deepEqual(await icapScan(url, req(`{"n":${i}}`), 2000), { verdict: 'allow' });
    assert.equal(persistent.seen.length, 5);
    assert.equal(persistent.connections(), 1, 'one connection for five sequential scans');
    // Concurrent scans each need a connection of their own.
    const verdicts = await Promise.all([1, 2, 3].map((i) => icapScan(url, req(`{"c":${i}}`), 2000)));
    assert.deepEqual(verdicts.map((v) => v.verdict), ['allow', 'allow', 'allow']);
    assert.ok(persistent.connections() <= 3);

    // This server hangs up on the second request of a connection: each reuse fails before any answer
    // and the scan is sent again on a new connection.
    const closing = `icap://127.0.0.1:${hangsUp.port}/dlp`;
    for (let i = 0; i < 3; i++) assert.deepEqual(await icapScan(closing, req(`{"m":${i}}`), 2000), { verdict: 'allow' });
    assert.equal(hangsUp.seen.length, 5, 'the first scan once, the next two twice (refused reuse, then a new connection)');
    assert.equal(hangsUp.connections(), 3);
  } finally {
    persistent.close();
    hangsUp.close();
  }
});

test('a 200 that returns the very body sent (a server that does not offer 204) is an allow', async () => {
  const icap = await startIcap();
  try {
    const url = `icap://127.0.0.1:${icap.port}/dlp`;
    assert.deepEqual(await icapScan(url, req('{"k":"echo"}'), 2000), { verdict: 'allow' });
    const svc = { type: 'icap' as const, url, mode: 'inline' as const, timeoutMs: 2000, failMode: 'closed' as const, directions: ['response' as const] };
    assert.deepEqual(await consultExternalDlp(svc, req('{"k":"echo"}')), { action: 'continue', body: null, note: null });
  } finally {
    icap.close();
  }
});

test('a rewrite the caller refuses (it changes what was authorized) is a bad response under the fail mode', async () => {
  const icap = await startIcap();
  try {
    const url = `icap://127.0.0.1:${icap.port}/dlp`;
    const svc = { type: 'icap' as const, url, mode: 'inline' as const, timeoutMs: 2000, directions: ['response' as const] };
    const refuse = (body: Buffer) => (body.toString().includes('rewritten') ? 'it changes the call' : null);
    const closed = await consultExternalDlp({ ...svc, failMode: 'closed' }, req('{"k":"rewrite"}'), refuse);
    assert.ok(closed.action === 'block' && closed.code === 'external_dlp_bad_response' && closed.message.includes('it changes the call'));
    const open = await consultExternalDlp({ ...svc, failMode: 'open' }, req('{"k":"rewrite"}'), refuse);
    assert.ok(open.action === 'continue' && open.body === null && open.note?.code === 'external_dlp_bad_response' && open.note.message.includes('it changes the call'), 'failing open keeps the body that was sent');
    const accepted = await consultExternalDlp({ ...svc, failMode: 'closed' }, req('{"k":"rewrite"}'), () => null);
    assert.ok(accepted.action === 'continue' && accepted.body?.toString() === '{"ok":"rewritten"}');
  } finally {
    icap.close();
  }
});

test('timeouts and fail modes: closed blocks, open continues, async never waits', async () => {
  const icap = await startIcap();
  try {
    const url = `icap://127.0.0.1:${icap.port}/dlp`;
    const base = { type: 'icap' as const, url, directions: ['request' as const, 'response' as const] };
    const closed = await consultExternalDlp({ ...base, mode: 'inline', timeoutMs: 50, failMode: 'closed' }, req('slow'));
    assert.deepEqual(closed.action === 'block' && closed.code, 'external_dlp_timeout');
    const open = await consultExternalDlp({ ...base, mode: 'inline', timeoutMs: 50, failMode: 'open' }, req('slow'));
    assert.equal(open.action, 'continue');
    const started = performance.now();
    const async = await consultExternalDlp({ ...base, mode: 'async', timeoutMs: 5000, failMode: 'closed' }, req('secret'));
    assert.equal(async.action, 'continue');
    assert.ok(performance.now() - started < 1000);
    const down = await consultExternalDlp({ ...base, url: 'icap://127.0.0.1:1/dlp', mode: 'inline', timeoutMs: 500, failMode: 'closed' }, req('x'));
    assert.deepEqual(down.action === 'block' && down.code, 'external_dlp_unavailable');
    const blocked = await consultExternalDlp({ ...base, mode: 'inline', timeoutMs: 2000, failMode: 'open' }, req('secret'));
    assert.deepEqual(blocked.action === 'block' && blocked.code, 'external_dlp_blocked');
  } finally {
    icap.close();
  }
});

test('the caller goes to the DLP as proxies name it: X-Client-IP, base64 X-Authenticated-User (agent) and -Groups (Persona)', async () => {
  const icap = await startIcap();
  try {
    const caller = { agent: 'helpdesk-bot', persona: 'support-agent', sourceAddress: '10.1.2.3:51234' };
    await icapScan(`icap://127.0.0.1:${icap.port}/dlp`, { ...req('{"a":1}'), caller }, 2000);
    const head = icap.seen[0]!.slice(0, icap.seen[0]!.indexOf('\r\n\r\n'));
    assert.match(head, /\r\nX-Client-IP: 10\.1\.2\.3\r\n/);
    assert.match(head, new RegExp(`\r\nX-Authenticated-User: ${Buffer.from('helpdesk-bot').toString('base64')}\r\n`));
    assert.match(head, new RegExp(`\r\nX-Authenticated-Groups: ${Buffer.from('support-agent').toString('base64')}\r\n`));
  } finally {
    icap.close();
  }
  assert.equal(ipOf('[::1]:443'), '::1');
  assert.equal(ipOf('192.168.0.9'), '192.168.0.9');
  assert.equal(ipOf('fe80::1'), 'fe80::1');
  assert.equal(ipOf('evil\r\nX-Injected: 1'), null);
});

test('partial ICAP responses wait for more bytes', () => {
  assert.equal(parseIcapResponse(Buffer.from('ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, res-body=19\r\n\r\nHTTP/1.1 200 OK\r\n\r\n5\r\nhel')), null);
  assert.equal(parseIcapResponse(Buffer.from('HTTP/1.1 200 OK\r\n\r\n'))?.verdict, 'error');
});

test('webhook: allow, block and modify answers; bad answers are errors', async () => {
  const answers: Record<string, object> = { allow: { action: 'allow' }, block: { action: 'block', reason: 'card' }, modify: { action: 'modify', body: Buffer.from('{"x":1}').toString('base64') }, junk: { nope: 1 } };
  const server = createHttpServer((rq, rs) => {
    let body = '';
    rq.on('data', (d) => (body += d));
    rq.on('end', () => {
      const sent = JSON.parse(body) as { body: string; direction: string };
      const kind = Buffer.from(sent.body, 'base64').toString();
      rs.setHeader('content-type', 'application/json');
      rs.end(JSON.stringify(answers[kind]));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/scan`;
    const svc = { type: 'webhook' as const, url, mode: 'inline' as const, timeoutMs: 2000, failMode: 'closed' as const, directions: ['request' as const, 'response' as const] };
    assert.deepEqual(await consultExternalDlp(svc, req('allow')), { action: 'continue', body: null, note: null });
    const b = await consultExternalDlp(svc, req('block'));
    assert.ok(b.action === 'block' && b.message.includes('card'));
    const m = await consultExternalDlp(svc, req('modify'));
    assert.ok(m.action === 'continue' && m.body?.toString() === '{"x":1}');
    const j = await consultExternalDlp(svc, req('junk'));
    assert.ok(j.action === 'block' && j.code === 'external_dlp_bad_response');
  } finally {
    server.close();
  }
});
