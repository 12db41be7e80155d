import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import type { ExternalDlp } from '../../config/data-protection-schema.ts';
import { startIcapServer, type IcapAnswer, type IcapServer } from '../../test/support/icap-server.ts';
import { compileDataProtection, type CompiledDataProtectionOk } from './compile.ts';
import { maskFoundText } from './inspect.ts';
import { asyncVerdictNote, cleanReason, closeIdleIcapConnections, consultExternalDlp, icapScan, ipOf, parseIcapOptions, parseIcapResponse, urlWithoutCredentials, webhookScan } from './external.ts';

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
    assert.equal((await icapScan(url, req('{"a":1}'), 2000)).verdict, 'allow');
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
    for (let i = 0; i < 5; i++) assert.equal((await icapScan(url, req(`{"n":${i}}`), 2000)).verdict, 'allow');
    assert.equal(persistent.seen.length, 5);
    assert.equal(persistent.connections(), 1, 'one connection for five sequential scans');
    // Concurrent scans each need a connection of their own.
    const verdicts = await Promise.all([1, 2, 3].map((i) => icapScan(url, req(`{"c":${i}}`), 2000)));
    assert.deepEqual(verdicts.map((v) => v.verdict), ['allow', 'allow', 'allow']);
    assert.ok(persistent.connections() <= 3);

    // This server hangs up on the second request of a connection: each reuse fails before any answer
    // and the scan is sent again on a new connection.
    const closing = `icap://127.0.0.1:${hangsUp.port}/dlp`;
    for (let i = 0; i < 3; i++) assert.equal((await icapScan(closing, req(`{"m":${i}}`), 2000)).verdict, 'allow');
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
    assert.equal((await icapScan(url, req('{"k":"echo"}'), 2000)).verdict, 'allow');
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
    const closed = await consultExternalDlp({ ...svc, failMode: 'closed' }, req('{"k":"rewrite"}'), { rewriteProblem: refuse });
    assert.ok(closed.action === 'block' && closed.code === 'external_dlp_bad_response' && closed.message.includes('it changes the call'));
    const open = await consultExternalDlp({ ...svc, failMode: 'open' }, req('{"k":"rewrite"}'), { rewriteProblem: refuse });
    assert.ok(open.action === 'continue' && open.body === null && open.note?.code === 'external_dlp_bad_response' && open.note.message.includes('it changes the call'), 'failing open keeps the body that was sent');
    const accepted = await consultExternalDlp({ ...svc, failMode: 'closed' }, req('{"k":"rewrite"}'), { rewriteProblem: () => null });
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

/** A server with the given offer and answers; closeIdleIcapConnections after each, so that no test sees another's OPTIONS or connections. */
async function withIcap(decide: Parameters<typeof startIcapServer>[0], options: Parameters<typeof startIcapServer>[1], run: (url: string, icap: IcapServer) => Promise<void>): Promise<void> {
  const icap = await startIcapServer(decide, options);
  try {
    await run(`icap://127.0.0.1:${icap.port}/dlp`, icap);
  } finally {
    closeIdleIcapConnections();
    await icap.close();
  }
}

const icapService = (url: string, more: Partial<ExternalDlp> = {}): ExternalDlp => ({ type: 'icap', url, mode: 'inline', timeoutMs: 2000, failMode: 'closed', directions: ['request', 'response'], ...more });

test('OPTIONS: asked once per service before the first scan, its answer kept for Options-TTL and renewed when the ISTag changes', async () => {
  const offer = { preview: 0, istag: 'rules-1', ttlSeconds: 600, maxConnections: 8, headers: 'Transfer-Preview: *\r\n' };
  await withIcap(() => 'allow', { offer }, async (url, icap) => {
    await Promise.all([1, 2, 3].map((n) => icapScan(url, req(`{"n":${n}}`), 2000)));
    assert.equal(icap.optionsSeen.length, 1, 'concurrent first scans share one OPTIONS');
    assert.match(icap.optionsSeen[0]!, /^OPTIONS icap:\/\/127\.0\.0\.1:\d+\/dlp ICAP\/1\.0\r\nHost: 127\.0\.0\.1\r\n/);
    const v = await icapScan(url, req('{"n":4}'), 2000);
    assert.deepEqual(v, { verdict: 'allow', facts: { status: 204, istag: 'rules-1', httpStatus: null, threats: [] } });
    assert.equal(icap.optionsSeen.length, 1, 'the answer is kept');
    // The service's rules changed: its answers carry a new ISTag, and the next scan asks again.
    offer.istag = 'rules-2';
    await icapScan(url, req('{"n":5}'), 2000);
    await icapScan(url, req('{"n":6}'), 2000);
    assert.equal(icap.optionsSeen.length, 2);
    await icapScan(url, req('{"n":7}'), 2000);
    assert.equal(icap.optionsSeen.length, 2);
  });
  const options = parseIcapOptions(
    Buffer.from('ICAP/1.0 200 OK\r\nMethods: RESPMOD\r\nISTag: "W3E4R7U9-L2E4-2"\r\nPreview: 2048\r\nAllow: 204\r\nMax-Connections: 12\r\nOptions-TTL: 5\r\nTransfer-Complete: PDF, zip\r\nTransfer-Preview: *\r\nEncapsulated: null-body=0\r\n\r\n'),
  );
  assert.deepEqual(options, {
    methods: ['RESPMOD'],
    preview: 2048,
    allow204: true,
    maxConnections: 12,
    istag: 'W3E4R7U9-L2E4-2',
    transfer: { preview: ['*'], ignore: [], complete: ['pdf', 'zip'] },
    ttlMs: 60_000,
  });
  const bare = parseIcapOptions(Buffer.from('ICAP/1.0 200 OK\r\nMethods: REQMOD, RESPMOD\r\nOptions-TTL: 99999999\r\nEncapsulated: null-body=0\r\n\r\n'));
  assert.ok(bare && !('verdict' in bare));
  assert.deepEqual([bare.preview, bare.allow204, bare.maxConnections, bare.istag, bare.ttlMs], [null, false, null, null, 86_400_000]);
  const noTtl = parseIcapOptions(Buffer.from('ICAP/1.0 200 OK\r\nMethods: REQMOD\r\nEncapsulated: null-body=0\r\n\r\n'));
  assert.equal(noTtl && !('verdict' in noTtl) && noTtl.ttlMs, 3_600_000);
  assert.equal(parseIcapOptions(Buffer.from('ICAP/1.0 200 OK\r\nMethods: REQMOD\r\nEncapsulated: opt-body=0\r\n\r\n4\r\nabcd\r\n')), null, 'an opt-body is read to its end');
  assert.deepEqual(parseIcapOptions(Buffer.from('ICAP/1.0 404 Service Not Found\r\n\r\n')), { verdict: 'error', code: 'external_dlp_unavailable', message: 'OPTIONS answered ICAP 404' });
});

test('preview: a body within the Preview size goes whole, ended with "0; ieof", and is answered without 100 Continue', async () => {
  await withIcap((r) => (r.includes('secret') ? 'block' : 'allow'), { offer: { preview: 64 } }, async (url, icap) => {
    assert.equal((await icapScan(url, req('{"a":1}'), 2000)).verdict, 'allow');
    assert.match(icap.seen[0]!, /\r\nPreview: 64\r\n/);
    assert.ok(icap.seen[0]!.endsWith('\r\n7\r\n{"a":1}\r\n0; ieof\r\n\r\n'), JSON.stringify(icap.seen[0]));
    assert.equal((await icapScan(url, req('', 'request'), 2000)).verdict, 'allow');
    assert.ok(icap.seen[1]!.endsWith('\r\n\r\n0; ieof\r\n\r\n'), 'an empty body is an empty, whole preview');
    assert.equal((await icapScan(url, req('{"k":"secret"}', 'request'), 2000)).verdict, 'block');
  });
});

test('preview: the first bytes, then the rest after 100 Continue, within one timeout', async () => {
  const body = '{"note":"a longer body with the word rewrite after the preview"}';
  await withIcap((r) => (r.includes('rewrite') ? { rewrite: '{"note":"clean"}' } : 'allow'), { offer: { preview: 10 } }, async (url, icap) => {
    const v = await icapScan(url, req(body), 2000);
    assert.ok(v.verdict === 'modified' && v.body.toString() === '{"note":"clean"}', 'the answer after the rest is the verdict');
    const sent = icap.seen[0]!;
    assert.match(sent, /\r\nPreview: 10\r\n/);
    const afterHead = sent.slice(sent.indexOf('\r\n\r\n', sent.indexOf('Content-Length')) + 4);
    assert.equal(afterHead, `a\r\n${body.slice(0, 10)}\r\n0\r\n\r\n${(body.length - 10).toString(16)}\r\n${body.slice(10)}\r\n0\r\n\r\n`);
    // The connection is in step for the next scan.
    assert.equal((await icapScan(url, req('{"note":"plain, and longer than ten bytes"}'), 2000)).verdict, 'allow');
    assert.equal(icap.connections(), 1);
  });
  // A service that asks for the rest and never answers: the timeout covers both phases.
  await withIcap(() => 'hang', { offer: { preview: 4 } }, async (url) => {
    const started = performance.now();
    const v = await icapScan(url, req(body), 300);
    assert.equal(v.verdict === 'error' && v.code, 'external_dlp_timeout');
    assert.ok(performance.now() - started < 1000);
  });
});

test('preview: a final answer to the preview (204, or a block) is the answer, and the rest is never sent', async () => {
  const previewAnswer = (preview: string): IcapAnswer => (preview.includes('{"blo') ? 'block' : 'allow');
  await withIcap(() => 'block', { offer: { preview: 5 }, previewAnswer }, async (url, icap) => {
    assert.equal((await icapScan(url, req('{"ok":"the rest would be refused"}'), 2000)).verdict, 'allow');
    assert.ok(icap.seen[0]!.endsWith(`5\r\n{"ok"\r\n0\r\n\r\n`) && !icap.seen[0]!.includes('refused'), 'only the preview was sent');
    assert.equal((await icapScan(url, req('{"block":"me"}'), 2000)).verdict, 'block');
    assert.equal((await icapScan(url, req('{"ok":"again"}'), 2000)).verdict, 'allow');
    assert.equal(icap.connections(), 1, 'the connection stayed in step after early answers');
  });
});

test('a service that does not offer the method a direction needs is unavailable: failMode closed refuses, open passes', async () => {
  await withIcap(() => 'allow', { offer: { methods: 'REQMOD' } }, async (url, icap) => {
    const closed = await consultExternalDlp(icapService(url), req('{"a":1}', 'response'));
    assert.ok(closed.action === 'block' && closed.code === 'external_dlp_unavailable', JSON.stringify(closed));
    assert.match(closed.message, /does not offer RESPMOD \(its OPTIONS answer lists Methods: REQMOD\)/);
    const open = await consultExternalDlp(icapService(url, { failMode: 'open' }), req('{"a":1}', 'response'));
    assert.ok(open.action === 'continue' && open.body === null && open.note?.code === 'external_dlp_unavailable' && /does not offer RESPMOD/.test(open.note.message));
    assert.deepEqual(await consultExternalDlp(icapService(url), req('{"a":1}', 'request')), { action: 'continue', body: null, note: null }, 'REQMOD it offers');
    assert.deepEqual(icap.seen.map((r) => r.slice(0, 7)), ['REQMOD '], 'no RESPMOD was sent');
  });
  for (const offer of ['refuse', 'hang'] as const) {
    await withIcap(() => 'allow', { offer }, async (url, icap) => {
      const closed = await consultExternalDlp(icapService(url, { timeoutMs: 200 }), req('{"a":1}'));
      assert.ok(closed.action === 'block' && closed.code === (offer === 'hang' ? 'external_dlp_timeout' : 'external_dlp_unavailable') && /OPTIONS/.test(closed.message), JSON.stringify(closed));
      const open = await consultExternalDlp(icapService(url, { timeoutMs: 200, failMode: 'open' }), req('{"a":1}'));
      assert.equal(open.action, 'continue');
      assert.equal(icap.seen.length, 0, 'no scan without an OPTIONS answer');
    });
  }
});

test('Max-Connections caps the connections open to the service; scans wait for one to come free', async () => {
  await withIcap(() => 'allow', { offer: { maxConnections: 2 }, answerDelayMs: 40 }, async (url, icap) => {
    const verdicts = await Promise.all([1, 2, 3, 4, 5, 6].map((n) => icapScan(url, req(`{"n":${n}}`), 2000)));
    assert.deepEqual(verdicts.map((v) => v.verdict), ['allow', 'allow', 'allow', 'allow', 'allow', 'allow']);
    assert.ok(icap.mostOpenAtOnce() <= 2, `at most 2 open at once, saw ${icap.mostOpenAtOnce()}`);
    // No connection comes free within a short timeout: that is a timeout, under the fail mode.
    const slow = await Promise.all([1, 2, 3].map((n) => icapScan(url, req(`{"w":${n}}`), 60)));
    assert.ok(slow.some((v) => v.verdict === 'error' && v.code === 'external_dlp_timeout'));
  });
});

test('async mode: the call goes on at once; the verdict, reduced to safe metadata, settles later for the audit trail', async () => {
  const decide = (r: string): IcapAnswer =>
    r.includes('card') ? { block: true, headers: 'X-Infection-Found: Type=2; Resolution=2; Threat=PCI Card Number;\r\nX-Violations-Found: 1\r\n\tbody.json\r\n\tPCI\tPolicy\r\n\t1001\r\n\t2\r\n' } : r.includes('rewrite') ? { rewrite: '{"x":"[masked]"}' } : r.includes('slow') ? 'hang' : 'allow';
  await withIcap(decide, { offer: { istag: 'dlp-7' } }, async (url) => {
    const service = icapService(url, { mode: 'async', timeoutMs: 300 });
    const blocked = await consultExternalDlp(service, req('{"card":"4111 1111 1111 1111"}', 'request'));
    assert.ok(blocked.action === 'continue' && blocked.body === null && blocked.note === null && blocked.later);
    const note = await blocked.later;
    assert.equal(note.code, 'external_dlp_async_verdict');
    assert.equal(note.message, 'audit only, this request went on unchanged: verdict=would-block icap-status=200 http-status=403 istag="dlp-7" threats="PCI Card Number, PCI Policy"');
    assert.ok(!note.message.includes('4111'), 'never the body');
    const rewritten = await consultExternalDlp(service, req('{"rewrite":1}'));
    assert.match((await (rewritten as { later: Promise<{ message: string }> }).later).message, /verdict=would-modify icap-status=200 http-status=200 istag="dlp-7"$/);
    const allowed = await consultExternalDlp(service, req('{"fine":1}'));
    assert.match((await (allowed as { later: Promise<{ message: string }> }).later).message, /: verdict=allow icap-status=204 istag="dlp-7"$/);
    const late = await consultExternalDlp(service, req('{"slow":1}'));
    assert.match((await (late as { later: Promise<{ message: string }> }).later).message, /: verdict=error error=external_dlp_timeout detail="no ICAP answer within 300 ms"$/);
  });
});

// ---- What a hostile or broken service may send: never a crash, a hang, unbounded memory or a pass ----

const icapHead = (encapsulated: string) => `ICAP/1.0 200 OK\r\nISTag: "x"\r\nEncapsulated: ${encapsulated}\r\n\r\n`;
const httpOk = 'HTTP/1.1 200 OK\r\n\r\n';
const respmod = (body = '{"a":1}') => ({ method: 'RESPMOD' as const, sent: Buffer.from(body) });
const reqmod = (body = '{"a":1}') => ({ method: 'REQMOD' as const, sent: Buffer.from(body) });

test('chunk sizes are hex digits only: a negative, signed, prefixed or oversized size is a bad response, never a loop', () => {
  for (const chunks of ['1\r\nA\r\n-C\r\n', '-1\r\nA\r\n0\r\n\r\n', '+1\r\nA\r\n0\r\n\r\n', ' 1\r\nA\r\n0\r\n\r\n', '0x1\r\nA\r\n0\r\n\r\n', 'g\r\n', 'fffffffff\r\n', '1\r\nAB\r\n0\r\n\r\n', `${'1'.repeat(2000)}`]) {
    const v = parseIcapResponse(Buffer.from(icapHead('res-hdr=0, res-body=19') + httpOk + chunks), false, respmod());
    assert.ok(v?.verdict === 'error' && v.code === 'external_dlp_bad_response', `${JSON.stringify(chunks)}: ${JSON.stringify(v)}`);
  }
  const extended = parseIcapResponse(Buffer.from(icapHead('res-hdr=0, res-body=19') + httpOk + '2;name=value\r\nOK\r\n0; ieof\r\n\r\n'), false, respmod());
  assert.ok(extended?.verdict === 'modified' && extended.body.toString() === 'OK', 'chunk extensions are allowed');
  const options = parseIcapOptions(Buffer.from('ICAP/1.0 200 OK\r\nMethods: REQMOD\r\nEncapsulated: opt-body=0\r\n\r\n1\r\nA\r\n-C\r\n'));
  assert.ok(options !== null && 'verdict' in options && options.code === 'external_dlp_unavailable', JSON.stringify(options));
});

test('a body or header block past its cap is a bad response, decided as the bytes come', () => {
  const endlessHead = parseIcapResponse(Buffer.from(`ICAP/1.0 200 OK\r\nX-Pad: ${'a'.repeat(70_000)}`), false, respmod());
  assert.ok(endlessHead?.verdict === 'error' && endlessHead.code === 'external_dlp_bad_response' && /header/.test(endlessHead.message), JSON.stringify(endlessHead));
  const big = 'b'.repeat(4 * 7 + 65_536 + 1);
  const tooBig = parseIcapResponse(Buffer.from(icapHead('res-hdr=0, res-body=19') + httpOk + `${big.length.toString(16)}\r\n${big}`), false, respmod());
  assert.ok(tooBig?.verdict === 'error' && tooBig.code === 'external_dlp_bad_response', JSON.stringify(tooBig));
  const fits = 'b'.repeat(4 * 7 + 65_536);
  const ok = parseIcapResponse(Buffer.from(icapHead('res-hdr=0, res-body=19') + httpOk + `${fits.length.toString(16)}\r\n${fits}\r\n0\r\n\r\n`), false, respmod());
  assert.equal(ok?.verdict, 'modified');
  const endlessOptions = parseIcapOptions(Buffer.from(`ICAP/1.0 200 OK\r\nX-Pad: ${'a'.repeat(70_000)}`));
  assert.ok(endlessOptions !== null && 'verdict' in endlessOptions, 'an endless OPTIONS header is refused');
});

test('a service that streams without end is cut off at the cap, long before the timeout', async () => {
  for (const kind of ['body', 'head'] as const) {
    const server = createNetServer((socket) => {
      socket.on('error', () => undefined);
      let asked = '';
      socket.on('data', (d) => {
        asked += d.toString('latin1');
        if (asked.startsWith('OPTIONS')) {
          asked = '';
          socket.write('ICAP/1.0 200 OK\r\nMethods: REQMOD, RESPMOD\r\nEncapsulated: null-body=0\r\n\r\n');
          return;
        }
        if (!asked.endsWith('0\r\n\r\n')) return;
        socket.write(kind === 'body' ? icapHead('res-hdr=0, res-body=19') + httpOk : 'ICAP/1.0 200 OK\r\nX-Pad: ');
        const chunk = Buffer.alloc(64 * 1024, 'a');
        const framed = kind === 'body' ? Buffer.concat([Buffer.from('10000\r\n'), chunk, Buffer.from('\r\n')]) : chunk;
        const pump = () => {
          while (!socket.destroyed && socket.write(framed));
          if (!socket.destroyed) socket.once('drain', pump);
        };
        pump();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const started = performance.now();
      const v = await icapScan(`icap://127.0.0.1:${(server.address() as AddressInfo).port}/dlp`, req('{"a":1}'), 10_000);
      assert.ok(v.verdict === 'error' && v.code === 'external_dlp_bad_response', `${kind}: ${JSON.stringify(v)}`);
      assert.ok(performance.now() - started < 3000, `${kind}: cut off in ${performance.now() - started} ms`);
    } finally {
      closeIdleIcapConnections();
      server.close();
    }
  }
});

test('ICAP answers read as RFC 3507 means them: a response to REQMOD, a redirect or error status, or a removed body is a block', () => {
  const verdictOf = (answer: string, context: Parameters<typeof parseIcapResponse>[2]) => parseIcapResponse(Buffer.from(answer), false, context);
  const blockPage = 'HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n';
  const page = '<html>Blocked by corporate DLP</html>';
  const pageChunks = `${page.length.toString(16)}\r\n${page}\r\n0\r\n\r\n`;
  // REQMOD answered with an HTTP response: the service answered for the upstream, the request is refused.
  const refusedWithPage = verdictOf(icapHead(`res-hdr=0, res-body=${blockPage.length}`) + blockPage + pageChunks, reqmod());
  assert.ok(refusedWithPage?.verdict === 'block' && refusedWithPage.facts?.httpStatus === 200, JSON.stringify(refusedWithPage));
  const redirect = 'HTTP/1.1 302 Found\r\nLocation: http://dlp/blocked\r\nContent-Length: 0\r\n\r\n';
  const redirected = verdictOf(icapHead(`res-hdr=0, null-body=${redirect.length}`) + redirect, reqmod());
  assert.ok(redirected?.verdict === 'block' && redirected.facts?.httpStatus === 302, JSON.stringify(redirected));
  // RESPMOD: any status but 2xx is a block, whatever body comes with it.
  for (const status of ['302 Found', '404 Not Found', '500 Oops']) {
    const http = `HTTP/1.1 ${status}\r\n\r\n`;
    const v = verdictOf(icapHead(`res-hdr=0, res-body=${http.length}`) + http + pageChunks, respmod());
    assert.equal(v?.verdict, 'block', status);
  }
  // The body removed (null-body) when one was sent: fail closed. With nothing sent, nothing was removed.
  const requestHead = 'POST /x HTTP/1.1\r\nContent-Length: 0\r\n\r\n';
  const removed = verdictOf(icapHead(`req-hdr=0, null-body=${requestHead.length}`) + requestHead, reqmod());
  assert.ok(removed?.verdict === 'block' && /removed/.test(String(removed.reason)), JSON.stringify(removed));
  assert.equal(verdictOf(icapHead(`req-hdr=0, null-body=${requestHead.length}`) + requestHead, reqmod(''))?.verdict, 'allow');
  assert.equal(verdictOf(icapHead('res-hdr=0, null-body=19') + httpOk, respmod())?.verdict, 'block');
  assert.equal(verdictOf(icapHead('res-hdr=0, res-body=19') + httpOk + '0\r\n\r\n', respmod())?.verdict, 'block', 'rewritten to nothing is removed');
  // A rewritten request is a request.
  const rewritten = verdictOf(icapHead(`req-hdr=0, req-body=${requestHead.length}`) + requestHead + '4\r\n{"b"\r\n2\r\n:1\r\n1\r\n}\r\n0\r\n\r\n', reqmod());
  assert.ok(rewritten?.verdict === 'modified' && rewritten.body.toString() === '{"b":1}', JSON.stringify(rewritten));
  // 200 without Encapsulated, or with one that does not parse or fit the method: a bad response.
  for (const [answer, context] of [
    ['ICAP/1.0 200 OK\r\nISTag: "x"\r\n\r\n', reqmod()],
    [icapHead('res-hdr=zero, null-body=19') + httpOk, respmod()],
    [icapHead('null-body=0'), reqmod()],
    [icapHead('req-hdr=0, req-body=38') + requestHead + '0\r\n\r\n', respmod()],
    [icapHead('res-hdr=0, null-body=15') + 'HTTP/9 what\r\n\r\n', respmod()],
    [icapHead('res-body=0, res-hdr=10') + httpOk, respmod()],
  ] as const) {
    const v = verdictOf(answer, context);
    assert.ok(v?.verdict === 'error' && v.code === 'external_dlp_bad_response', `${JSON.stringify(answer)}: ${JSON.stringify(v)}`);
  }
});

test('a URL the data path cannot use is unavailable under the fail mode, never a thrown error', async () => {
  for (const url of ['icap://127.0.0.1:99999/x', 'icap:///x', 'not a url']) {
    const open = await consultExternalDlp(icapService(url, { failMode: 'open', timeoutMs: 300 }), req('{"a":1}'));
    assert.ok(open.action === 'continue' && open.note?.code === 'external_dlp_unavailable', `${url}: ${JSON.stringify(open)}`);
    const closed = await consultExternalDlp(icapService(url, { timeoutMs: 300 }), req('{"a":1}'));
    assert.ok(closed.action === 'block' && closed.code === 'external_dlp_unavailable', url);
  }
});

test('credentials in a service URL never reach a note, a message or an ICAP request line', async () => {
  assert.equal(urlWithoutCredentials('https://svcuser:S3cretPw@dlp.example:8443/scan?x=1'), 'https://dlp.example:8443/scan?x=1');
  assert.equal(urlWithoutCredentials('not a url'), '(not a URL)');
  const webhook = await consultExternalDlp({ type: 'webhook', url: 'http://svcuser:S3cretPw@127.0.0.1:1/allow', mode: 'inline', timeoutMs: 300, failMode: 'open', directions: ['request'] }, req('{}', 'request'));
  assert.ok(webhook.action === 'continue' && webhook.note !== null, JSON.stringify(webhook));
  assert.ok(!JSON.stringify(webhook).includes('S3cretPw'), JSON.stringify(webhook));
  await withIcap(() => 'allow', {}, async (url, icap) => {
    const withUser = url.replace('icap://', 'icap://svc:S3cretPw@');
    const v = await icapScan(withUser, req('{"a":1}'), 2000);
    assert.equal(v.verdict, 'allow');
    assert.ok(![...icap.optionsSeen, ...icap.seen].some((r) => r.includes('S3cretPw')), 'no ICAP request carries the credentials');
  });
});

/** A webhook that answers each path as the test says. */
async function withWebhook(answer: (path: string, res: import('node:http').ServerResponse) => void, run: (base: string, hits: string[]) => Promise<void>): Promise<void> {
  const hits: string[] = [];
  const server = createHttpServer((rq, rs) => {
    hits.push(rq.url ?? '');
    rq.resume();
    rq.on('end', () => answer(rq.url ?? '/', rs));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    await run(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, hits);
  } finally {
    server.closeAllConnections();
    server.close();
  }
}

const webhookService = (url: string, more: Partial<ExternalDlp> = {}): ExternalDlp => ({ type: 'webhook', url, mode: 'inline', timeoutMs: 2000, failMode: 'closed', directions: ['request', 'response'], ...more });
const json = (rs: import('node:http').ServerResponse, value: unknown) => rs.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(value));

test('webhook: a redirect is not followed; it is unavailable under the fail mode', async () => {
  await withWebhook((path, rs) => (path === '/scan' ? rs.writeHead(307, { location: '/elsewhere' }).end() : json(rs, { action: 'allow' })), async (base, hits) => {
    const v = await webhookScan(`${base}/scan`, req('{}'), 2000);
    assert.ok(v.verdict === 'error' && v.code === 'external_dlp_unavailable' && /307/.test(v.message), JSON.stringify(v));
    assert.deepEqual(hits, ['/scan'], 'the scan was not sent again to where the redirect points');
    const open = await consultExternalDlp(webhookService(`${base}/scan`, { failMode: 'open' }), req('{}'));
    assert.ok(open.action === 'continue' && open.note?.code === 'external_dlp_unavailable');
  });
});

test('webhook: an answer past its size cap is cut off; one that comes after the timeout is a timeout; a body that is not canonical base64 is a bad response', async () => {
  await withWebhook((path, rs) => {
    if (path === '/huge') {
      rs.writeHead(200, { 'content-type': 'application/json' });
      rs.write('{"action":"allow","pad":"');
      const chunk = 'a'.repeat(1 << 16);
      const pump = () => {
        while (!rs.destroyed && rs.write(chunk));
        if (!rs.destroyed) rs.once('drain', pump);
      };
      rs.on('error', () => undefined);
      pump();
    } else if (path === '/slow') {
      rs.writeHead(200, { 'content-type': 'application/json' });
      rs.write('{"action":');
      setTimeout(() => !rs.destroyed && rs.end('"allow"}'), 1500);
    } else if (path === '/garbage') {
      json(rs, { action: 'modify', body: '%%%not base64%%%' });
    } else if (path === '/loose') {
      json(rs, { action: 'modify', body: 'eyJ4IjoxfQ' });
    } else {
      json(rs, { action: 'modify', body: Buffer.from('{"x":1}').toString('base64') });
    }
  }, async (base) => {
    const started = performance.now();
    const huge = await webhookScan(`${base}/huge`, req('{}'), 10_000);
    assert.ok(huge.verdict === 'error' && huge.code === 'external_dlp_bad_response' && /larger than/.test(huge.message), JSON.stringify(huge));
    assert.ok(performance.now() - started < 3000);
    const slow = await webhookScan(`${base}/slow`, req('{}'), 300);
    assert.ok(slow.verdict === 'error' && slow.code === 'external_dlp_timeout', JSON.stringify(slow));
    for (const path of ['/garbage', '/loose']) {
      const bad = await webhookScan(`${base}${path}`, req('{}'), 2000);
      assert.ok(bad.verdict === 'error' && bad.code === 'external_dlp_bad_response', `${path}: ${JSON.stringify(bad)}`);
    }
    const good = await webhookScan(`${base}/good`, req('{}'), 2000);
    assert.ok(good.verdict === 'modified' && good.body.toString() === '{"x":1}');
  });
});

test('a service\'s block reason is cleaned the same way inline and async: printable, cut to 120, non-strings dropped, found values masked', async () => {
  const reasons: Record<string, unknown> = {
    '/long': `card 4111 1111 1111 1111 found\r\n<script>x</script>${'Z'.repeat(20_000)}`,
    '/object': { nested: true },
    '/none': undefined,
  };
  await withWebhook((path, rs) => json(rs, { action: 'block', reason: reasons[path] }), async (base) => {
    const maskText = (text: string) => text.replace(/4111 1111 1111 1111/g, '**** **** **** 1111');
    const long = await consultExternalDlp(webhookService(`${base}/long`), req('{}'), { maskText });
    assert.ok(long.action === 'block' && long.code === 'external_dlp_blocked');
    assert.ok(!/[\r\n]/.test(long.message) && !long.message.includes('4111 1111') && long.message.length < 200, long.message);
    assert.match(long.message, /: card \*\*\*\* \*\*\*\* \*\*\*\* 1111 found  <script>x/);
    const object = await consultExternalDlp(webhookService(`${base}/object`), req('{}'));
    assert.ok(object.action === 'block' && !object.message.includes('[object') && /refused this response$/.test(object.message), object.action === 'block' ? object.message : '');
    const none = await consultExternalDlp(webhookService(`${base}/none`), req('{}'));
    assert.ok(none.action === 'block' && /refused this response$/.test(none.message));
    const later = await consultExternalDlp(webhookService(`${base}/long`, { mode: 'async' }), req('{}'), { maskText });
    const note = await (later as { later: Promise<{ message: string }> }).later;
    assert.ok(!note.message.includes('4111 1111') && !/[\r\n]/.test(note.message), note.message);
    assert.match(note.message, /verdict=would-block reason="card \*\*\*\* \*\*\*\* \*\*\*\* 1111 found  <script>x/);
  });
});

test("a block reason is masked with the Persona's detectors before it is cleaned: cleaning never hides a value from them", () => {
  const compiled = compileDataProtection({ defaultAction: 'mask' } as never) as CompiledDataProtectionOk;
  const maskText = (text: string) => maskFoundText(compiled, text);
  const digits = /4539|1488|0343/;
  const reasons = [
    'card 4539\\u00201488\\u00200343\\u00206467', // JSON escapes spelled out in the words
    'card "4539"1488"0343"6467', // quotes between the groups
    'card 4539\u00a01488\u00a00343\u00a06467',
    'card 4539\u20031488\u20030343\u20036467',
    'card 4539\t1488\t0343\t6467',
    'card 4539\\1488\\0343\\6467',
  ];
  for (const reason of reasons) {
    const shown = cleanReason(reason, maskText);
    assert.ok(shown !== null && !digits.test(shown), `${JSON.stringify(reason)} => ${JSON.stringify(shown)}`);
    assert.ok(/^[\x20-\x7e]*$/.test(shown) && !/["\\]/.test(shown), `printable, without quotes or backslashes: ${shown}`);
    // Nothing the cleaning made is found by the detectors.
    assert.equal(maskText(shown), shown, `${JSON.stringify(reason)} => ${JSON.stringify(shown)}`);
    const note = asyncVerdictNote({ verdict: 'block', reason }, 'response', maskText);
    assert.ok(!digits.test(note.message), note.message);
  }
  assert.equal(cleanReason('found card 4539\u00a01488\u00a00343\u00a06467 here', maskText), 'found card **** **** **** 6467 here', 'a separator becomes a space, not glued to the digits');
  // Credentials are masked whole, as the data path masks them: no last characters kept.
  for (const reason of ['key AKIAZ3MQ7HW2XK4JLP5R', 'aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY']) {
    const shown = cleanReason(reason, maskText)!;
    assert.ok(!/LP5R|KEY$|EXAMPLE/.test(shown) && /\*{8}/.test(shown), `${reason} => ${shown}`);
  }
  assert.equal(cleanReason('found card 4111 1111 1111 1111\r\nnext', maskText), 'found card **** **** **** 1111  next');
});
