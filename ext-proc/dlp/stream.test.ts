import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileDataProtection } from './compile.ts';
import { createStreamInspector, isBinaryType, looksBinary, rawStreamTail, releasePoint, sniffedBytes } from './stream.ts';

const compiled = compileDataProtection({ defaultAction: 'mask', maxStreamHoldBytes: 4096 } as never);
const ctx = { direction: 'response' as const, upstream: 'billing' };

function feed(inspector: ReturnType<typeof createStreamInspector>, text: string, size: number): { out: string; emittedBeforeEnd: number } {
  let out = '';
  let emittedBeforeEnd = 0;
  for (let i = 0; i < text.length; i += size) {
    const piece = inspector.push(Buffer.from(text.slice(i, i + size)));
    emittedBeforeEnd += piece.length;
    out += piece.toString();
  }
  out += inspector.end().toString();
  return { out, emittedBeforeEnd };
}

test('SSE: a card number split across chunks is masked; events stay well-formed JSON-RPC', () => {
  const events = [1, 2, 3].map((id) => `event: message\nid: ${id}\ndata: ${JSON.stringify({ jsonrpc: '2.0', id, result: { content: [{ type: 'text', text: `card 4111 1111 1111 1111 row ${id}` }] } })}\n\n`).join('');
  for (const size of [1, 7, 33]) {
    const inspector = createStreamInspector(compiled, { ...ctx, contentType: 'text/event-stream' });
    const { out } = feed(inspector, events, size);
    assert.ok(!out.includes('4111 1111 1111 1111'), `chunk size ${size}`);
    const parsed = out.split('\n\n').filter(Boolean).map((e) => JSON.parse(e.split('\n').find((l) => l.startsWith('data: '))!.slice(6)));
    assert.equal(parsed.length, 3);
    assert.equal(parsed[2].result.content[0].text, 'card **** **** **** 1111 row 3');
    assert.ok(out.includes('id: 2\n'));
    assert.equal(inspector.findings().length, 3);
  }
});

test('SSE: complete events flow immediately, only the incomplete one is held', () => {
  const inspector = createStreamInspector(compiled, { ...ctx, contentType: 'text/event-stream; charset=utf-8' });
  const first = inspector.push(Buffer.from('data: {"a":1}\n\ndata: {"b":'));
  assert.equal(first.toString(), 'data: {"a":1}\n\n');
  assert.equal(inspector.push(Buffer.from('2}\n\n')).toString(), 'data: {"b":2}\n\n');
});

test('raw text stream: split values are masked, output keeps flowing with a bounded tail', () => {
  const line = 'log line with card 4111111111111111 and more words here\n';
  const text = line.repeat(40);
  const inspector = createStreamInspector(compiled, { ...ctx, contentType: 'text/plain' });
  const { out, emittedBeforeEnd } = feed(inspector, text, 13);
  assert.equal(out, text.replaceAll('4111111111111111', '************1111'));
  assert.ok(emittedBeforeEnd >= text.length - rawStreamTail - line.length, 'stream kept flowing before end()');
  assert.equal(inspector.findings().length, 40);
});

test('SSE: an event larger than maxEventBytes is dropped whole (as the data path does), and the stream goes on', () => {
  const inspector = createStreamInspector(compiled, { ...ctx, contentType: 'text/event-stream' });
  const big = `event: message\ndata: ${JSON.stringify({ text: 'a '.repeat(3000) + 'card 4111 1111 1111 1111 ' + 'b '.repeat(100) })}\n\n`;
  const next = 'data: {"next":1}\n\n';
  const stream = big + next;
  // cut after the limit was passed, with the card in the second part (no data: line of its own there)
  const { out } = feed(inspector, stream, 5000);
  assert.equal(out, next);
  assert.deepEqual(inspector.exceeded(), { kind: 'event', limitBytes: 4096 });
  const roomy = createStreamInspector(compiled, { ...ctx, contentType: 'text/event-stream', maxEventBytes: 64 * 1024 });
  const whole = feed(roomy, stream, 5000).out;
  assert.ok(whole.includes('**** **** **** 1111') && whole.endsWith(next));
  assert.equal(roomy.exceeded(), null);
});

test('SSE: the blank line ending a dropped event may arrive split across chunks', () => {
  const inspector = createStreamInspector(compiled, { ...ctx, contentType: 'text/event-stream' });
  let out = inspector.push(Buffer.from('data: ' + 'x'.repeat(5000) + '\r\n')).toString();
  out += inspector.push(Buffer.from('\r\ndata: {"next":1}\r\n\r\n')).toString();
  assert.equal(out, 'data: {"next":1}\n\n', 'events go out with LF line ends, as they were read');
});

test('SSE: CR-only line ends, a final event without its blank line, and data split over data: lines are all inspected', () => {
  const result = (text: string) => JSON.stringify({ jsonrpc: '2.0', id: 1, result: { content: [{ type: 'text', text }] } });
  const cases: [string, string][] = [
    [`event: message\rdata: ${result(`card 4111 1111 1111 1111`)}\r\r`, 'CR-only'],
    [`event: message\ndata: ${result(`card 4111 1111 1111 1111`)}`, 'no blank line at the end'],
    [`event: message\ndata: ${result(`card 4111 1111 1111 1111`)}\r`, 'a lone CR at the end'],
    [`event: message\r\ndata: {"jsonrpc":"2.0","id":1,\r\ndata: "result":{"content":[{"type":"text","text":"card 4111 1111 1111 1111"}]}}\r\n\r\n`, 'JSON over two data: lines'],
  ];
  for (const [text, label] of cases) {
    for (const size of [1, 3, 64, text.length]) {
      const inspector = createStreamInspector(compiled, { ...ctx, contentType: 'text/event-stream' });
      const { out } = feed(inspector, text, size);
      assert.ok(!out.includes('4111 1111 1111 1111'), `${label}, chunks of ${size}: ${out}`);
      assert.equal(JSON.parse(out.split('\n').find((l) => l.startsWith('data: '))!.slice(6)).result.content[0].text, 'card **** **** **** 1111', label);
      assert.ok(out.endsWith('\n\n'), `${label}: the event goes out complete`);
    }
  }
});

test('SSE: text data over several data: lines is inspected as the client joins it, with "\\n" between the lines', () => {
  // The engine reads a card whole on one line, but not one cut by a line break (as anywhere else): the joined data decides.
  const inspector = createStreamInspector(compiled, { ...ctx, contentType: 'text/event-stream' });
  const { out } = feed(inspector, 'data: card 4111 1111 1111 1111\rdata: also 4539 1488\rdata: 0343 6467\r\r', 5);
  assert.equal(out, 'data: card **** **** **** 1111\ndata: also 4539 1488\ndata: 0343 6467\n\n');
});

test('multi-byte characters split across chunks survive', () => {
  const inspector = createStreamInspector(compiled, { ...ctx, contentType: 'text/plain' });
  const bytes = Buffer.from('Käufer ✓ '.repeat(50));
  let out = '';
  for (let i = 0; i < bytes.length; i += 5) out += inspector.push(bytes.subarray(i, i + 5)).toString();
  out += inspector.end().toString();
  assert.equal(out, bytes.toString());
});

test('looksBinary: NUL bytes, control bytes or bytes that are not UTF-8 are binary; text in any script is not', () => {
  assert.equal(looksBinary(Buffer.from('{"card":"4111 1111 1111 1111"}')), false);
  assert.equal(looksBinary(Buffer.from('café 中文 ١٢٣\n\ttab')), false);
  assert.equal(looksBinary(Buffer.from('中文').subarray(0, 4)), false, 'a character cut at the end of the sample is still text');
  assert.equal(looksBinary(Buffer.alloc(0)), false);
  assert.equal(looksBinary(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d])), true, 'PNG signature');
  assert.equal(looksBinary(Buffer.from([0x1f, 0x8b, 0x08, 0x00])), true, 'gzip');
  assert.equal(looksBinary(Buffer.from([0xff, 0xfe, 0x41, 0x42, 0x43])), true, 'not UTF-8');
  assert.equal(looksBinary(Buffer.from('ab\x01\x02\x03\x04cd')), true, 'mostly control bytes');
});

// A value with spaces inside must never be cut in two: every split of the stream into two writes is tried.

/** The stream sent in two writes, split at `at`; the output as the agent gets it. */
function inTwoWrites(contentType: string, text: string, at: number, policy = compiled): string {
  const inspector = createStreamInspector(policy, { ...ctx, contentType });
  return inspector.push(Buffer.from(text.slice(0, at))).toString() + inspector.push(Buffer.from(text.slice(at))).toString() + inspector.end().toString();
}

function assertMaskedAtEverySplit(contentType: string, text: string, secretParts: string[], policy = compiled): void {
  for (let at = 0; at <= text.length; at++) {
    const out = inTwoWrites(contentType, text, at, policy);
    for (const part of secretParts) assert.ok(!out.includes(part), `${contentType}, split at ${at}: "${part}" reached the agent`);
  }
}

const card = '4539 1488 0343 6467';

test('text stream: a spaced card number is masked wherever the stream is split', () => {
  const text = `${'lorem '.repeat(60)}card ${card} ${'q'.repeat(250)} end\n${'ipsum '.repeat(60)}`;
  assertMaskedAtEverySplit('text/plain', text, ['4539 1488', '1488 0343', '0343 6467']);
  assertMaskedAtEverySplit('application/octet-stream', text, ['4539 1488', '1488 0343', '0343 6467']);
});

test('JSON-lines stream: a spaced card number is masked wherever the line is split, and only whole lines go out', () => {
  const line = JSON.stringify({ note: `${'z'.repeat(300)} card ${card} ${'y'.repeat(244)}` }) + '\n';
  const next = JSON.stringify({ seq: 2 }) + '\n';
  assertMaskedAtEverySplit('application/x-ndjson', line + next, ['4539 1488', '1488 0343', '0343 6467']);
  const inspector = createStreamInspector(compiled, { ...ctx, contentType: 'application/x-ndjson' });
  const cut = line.indexOf('0343') + rawStreamTail;
  assert.equal(inspector.push(Buffer.from(line.slice(0, cut))).length, 0, 'nothing of an unfinished line goes out');
  const rest = inspector.push(Buffer.from(line.slice(cut) + next)).toString();
  assert.equal(rest, line.replace(card, '**** **** **** 6467') + next);
});

test('text stream: a PEM private key sent in 200-byte chunks is held until its END line and masked whole', () => {
  const secrets = compileDataProtection({ defaultAction: 'mask', profiles: ['secrets'], maxStreamHoldBytes: 4096 } as never);
  const body = 'MIIEowIBAAKCAQEA' + 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWX\n'.repeat(20);
  const text = `log line ${'x '.repeat(200)}\n-----BEGIN RSA PRIVATE KEY-----\n${body}-----END RSA PRIVATE KEY-----\nmore ${'y '.repeat(200)}\n`;
  const inspector = createStreamInspector(secrets, { ...ctx, contentType: 'text/plain' });
  const { out, emittedBeforeEnd } = feed(inspector, text, 200);
  const keyLines = body.split('\n').filter(Boolean);
  assert.deepEqual(keyLines.filter((l) => out.includes(l)), []);
  assert.ok(out.startsWith('log line x x'), 'the text before the block went out');
  assert.ok(emittedBeforeEnd > 0);
});

test('text stream: a spaced IBAN and phone numbers (one found only after its label) are masked wherever the stream is split', () => {
  const text = `${'lorem '.repeat(50)}pay to DE89 3704 0044 0532 0130 00 today; call +44 20 7946 0958 or mobile: 06 12 34 56 78 ${'w'.repeat(240)} end\n${'ipsum '.repeat(50)}`;
  assertMaskedAtEverySplit('text/plain', text, ['3704 0044', '0044 0532', '0532 0130', '7946 0958', '20 7946', '12 34 56']);
});

test('text stream: a spaced card number is masked whatever the chunk size', () => {
  const text = `${'lorem '.repeat(60)}card ${card} and more ${'words here '.repeat(80)}\n`.repeat(3);
  for (let size = 1; size <= 64; size++) {
    const { out } = feed(createStreamInspector(compiled, { ...ctx, contentType: 'text/plain' }), text, size);
    assert.ok(!out.includes('0343 6467') && !out.includes('4539 1488'), `chunk size ${size}`);
  }
});

test('text stream: text far from any value goes out promptly; a long clean stream never holds more than the tail and a chunk', () => {
  const inspector = createStreamInspector(compiled, { ...ctx, contentType: 'text/plain' });
  const first = inspector.push(Buffer.from('plain words, nothing sensitive here. '.repeat(30))).toString();
  assert.ok(first.length >= 30 * 37 - rawStreamTail - 40, `released ${first.length}`);
  let sent = 30 * 37;
  let received = first.length;
  const chunk = 'the quick brown fox jumps over the lazy dog, again and again. '.repeat(16);
  for (let i = 0; i < 300; i++) {
    received += inspector.push(Buffer.from(chunk)).length;
    sent += chunk.length;
    assert.ok(sent - received <= rawStreamTail + chunk.length, `held ${sent - received} after ${sent} bytes`);
  }
  assert.equal(inspector.exceeded(), null);
});

test('text stream: held text with no safe cut within maxStreamHoldBytes is dropped (fail closed); monitor mode passes it on', () => {
  const secrets = compileDataProtection({ defaultAction: 'mask', profiles: ['secrets'], maxStreamHoldBytes: 4096 } as never);
  const text = `before ${'x '.repeat(200)}\n-----BEGIN RSA PRIVATE KEY-----\n${'MIIEowIBAAKCAQEAabcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKL\n'.repeat(100)}`;
  const inspector = createStreamInspector(secrets, { ...ctx, contentType: 'text/plain' });
  const { out } = feed(inspector, text, 200);
  assert.ok(!out.includes('MIIEowIBAAKCAQEA'));
  assert.ok(!out.includes('BEGIN RSA'));
  assert.deepEqual(inspector.exceeded(), { kind: 'text', limitBytes: 4096 });
  const watching = createStreamInspector(compileDataProtection({ defaultAction: 'mask', profiles: ['secrets'], maxStreamHoldBytes: 4096 } as never, { monitor: true }), { ...ctx, contentType: 'text/plain' });
  assert.equal(feed(watching, text, 200).out, text);
  assert.equal(watching.exceeded(), null);
});

test('JSON-lines stream: a blocked value keeps the whole lines before it', () => {
  const blocking = compileDataProtection({ defaultAction: 'block', maxStreamHoldBytes: 4096 } as never);
  const lines = ['{"a":1}\n', '{"b":2}\n', `{"card":"${card}"}\n`, '{"c":3}\n'];
  const inspector = createStreamInspector(blocking, { ...ctx, contentType: 'application/x-ndjson' });
  const out = inspector.push(Buffer.from(lines.join(''))).toString();
  assert.equal(out, lines[0]! + lines[1]!);
  assert.ok(inspector.blocked());
});

test('releasePoint: whole lines for JSON lines; otherwise after a space or quote, a tail before the end, never inside a value', () => {
  const line = 'aaa bbb\nccc ddd\neee';
  assert.equal(releasePoint(line, 0, [], true), 16);
  assert.equal(releasePoint(line, 0, [{ start: 12, end: 18 }], true), 8);
  assert.equal(releasePoint(line, 16, [], true), 16);
  const text = 'word '.repeat(100);
  const cut = releasePoint(text, 0, [], false);
  assert.ok(cut <= text.length - rawStreamTail && cut > text.length - rawStreamTail - 5 && text[cut - 1] === ' ');
  assert.equal(releasePoint(text, 0, [{ start: 100, end: cut + 3 }], false), 100);
  assert.equal(releasePoint(text, 0, [{ start: 102, end: text.length }], false), 100, 'a value reaching the end holds everything from its start');
  assert.equal(releasePoint(text, 120, [{ start: 100, end: text.length }], false), cut, 'a value already partly released does not hold the stream');
  assert.equal(releasePoint('x'.repeat(1000), 0, [], false), 0, 'no space or quote: nothing may go out');
  assert.equal(releasePoint(`{"k":"${'v'.repeat(600)}"}`, 0, [], false), 6);
});

test('a JSON-lines stream: a card spelled with \\u escapes is masked, and the line still parses', () => {
  const escapedCard = [...'4539 1488 0343 6467'].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join('');
  const text = `{"a":1}\n{"card":"${escapedCard}"}\n`;
  for (const size of [3, 64]) {
    const { out } = feed(createStreamInspector(compiled, { ...ctx, contentType: 'application/x-ndjson' }), text, size);
    assert.deepEqual(out.trim().split('\n').map((line) => JSON.parse(line)), [{ a: 1 }, { card: '**** **** **** 6467' }], out);
  }
});

test('binary types are media, fonts, PDF, archives, wasm and protobuf; office, unknown and text-like types are not', () => {
  for (const t of ['image/png', 'Image/WebP', 'audio/ogg', 'video/mp4', 'font/woff2', 'application/pdf', 'application/zip', 'application/gzip; x=1', 'application/x-7z-compressed', 'application/zstd', 'application/wasm', 'application/x-protobuf', 'application/grpc+proto']) {
    assert.equal(isBinaryType(t), true, t);
  }
  for (const t of ['image/svg+xml', 'image/svg+xml; charset=utf-8', 'application/octet-stream', '', 'application/vnd.ms-excel', 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet', 'application/zipper', 'application/pdf-notes', 'text/csv', 'application/x-unknown']) {
    assert.equal(isBinaryType(t), false, t);
  }
});

test('looksBinary reads at most sniffedBytes: what follows does not change the decision', () => {
  const text = Buffer.from('a'.repeat(sniffedBytes));
  assert.equal(looksBinary(Buffer.concat([text, Buffer.alloc(64)])), false, 'NUL bytes past the sample are not read');
  assert.equal(looksBinary(Buffer.concat([text.subarray(1), Buffer.alloc(1)])), true);
});
