import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseJsonRpcBody, rewriteChangesExchange, toolArgumentsOf, toolArgumentsProblem } from './json-rpc.ts';
import { createSseSplitter, withData } from './sse.ts';

test('JSON-RPC bodies: requests, notifications, responses and batches', () => {
  const single = parseJsonRpcBody(Buffer.from('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}'), false);
  assert.ok(single.ok && single.messages[0]!.type === 'request');
  const note = parseJsonRpcBody(Buffer.from('{"jsonrpc":"2.0","method":"notifications/initialized"}'), false);
  assert.ok(note.ok && note.messages[0]!.type === 'notification');
  const reply = parseJsonRpcBody(Buffer.from('{"jsonrpc":"2.0","id":"s1","result":{}}'), false);
  assert.ok(reply.ok && reply.messages[0]!.type === 'response');
  const batch = parseJsonRpcBody(Buffer.from('[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","method":"b"}]'), true);
  assert.ok(batch.ok && batch.batch && batch.messages.length === 2);
});

test('JSON-RPC errors carry stable codes', () => {
  const cases: [string, boolean, number, string][] = [
    ['{', false, -32700, 'invalid_json'],
    ['[]', true, -32600, 'empty_batch'],
    ['[{"jsonrpc":"2.0","id":1,"method":"a"}]', false, -32600, 'batch_not_supported'],
    ['{"jsonrpc":"2.0","id":{},"method":"a"}', false, -32600, 'invalid_json_rpc'],
    ['{"jsonrpc":"2.0","id":null,"method":"a"}', false, -32600, 'invalid_json_rpc'],
    ['{"jsonrpc":"2.0","id":1,"method":"a","params":"x"}', false, -32600, 'invalid_json_rpc'],
    ['"hello"', false, -32600, 'invalid_json_rpc'],
  ];
  for (const [body, batch, code, mandateCode] of cases) {
    const parsed = parseJsonRpcBody(Buffer.from(body), batch);
    assert.ok(!parsed.ok, body);
    assert.equal(!parsed.ok && parsed.code, code, body);
    assert.equal(!parsed.ok && parsed.mandateCode, mandateCode, body);
  }
});

test('SSE events split across chunks (even inside a UTF-8 character) come out whole', () => {
  const text = 'event: message\nid: 1\ndata: {"v":"é😀"}\n\ndata: {"v":2}\n\n';
  const bytes = Buffer.from(text);
  for (const size of [1, 2, 3, 7, bytes.length]) {
    const splitter = createSseSplitter();
    const events = [];
    for (let i = 0; i < bytes.length; i += size) events.push(...splitter.push(bytes.subarray(i, i + size)));
    assert.deepEqual(events.map((e) => e.data), ['{"v":"é😀"}', '{"v":2}'], `chunk size ${size}`);
    assert.deepEqual(splitter.end(), []);
  }
});

test('an event rebuilt with new data keeps its other fields', () => {
  const [event] = createSseSplitter().push(Buffer.from('event: message\nid: 9\ndata: {"a":1}\n\n'));
  assert.equal(withData(event!, '{"a":2}'), 'event: message\nid: 9\ndata: {"a":2}');
});

/** Every event the splitter reads from `text` cut at `cuts`, the end of the stream included. */
function splitAt(text: string, cuts: number[]): { raw: string; data: string | null }[] {
  const splitter = createSseSplitter();
  const events = [];
  let from = 0;
  for (const cut of [...cuts, text.length]) {
    events.push(...splitter.push(Buffer.from(text.slice(from, cut))));
    from = cut;
  }
  return [...events, ...splitter.end()];
}

test('SSE lines end with CRLF, LF or CR, mixed in one stream and cut anywhere, a CRLF across two chunks included', () => {
  const expected = [
    { raw: 'event: message\nid: 1\ndata: {"a":1}', data: '{"a":1}' },
    { raw: 'data: {"b":\ndata: 2}', data: '{"b":\n2}' },
    { raw: ': comment\ndata: {"c":3}', data: '{"c":3}' },
    { raw: 'data: {"d":4}', data: '{"d":4}' },
  ];
  const cr = 'event: message\rid: 1\rdata: {"a":1}\r\rdata: {"b":\rdata: 2}\r\r: comment\rdata: {"c":3}\r\rdata: {"d":4}\r\r';
  const mixed = 'event: message\r\nid: 1\rdata: {"a":1}\n\r\ndata: {"b":\r\ndata: 2}\r\n\r: comment\ndata: {"c":3}\r\r\ndata: {"d":4}\n\n';
  for (const text of [cr, mixed]) {
    assert.deepEqual(splitAt(text, []), expected);
    for (let cut = 1; cut < text.length; cut++) assert.deepEqual(splitAt(text, [cut]), expected, `cut at ${cut}: ${JSON.stringify(text.slice(0, cut))}`);
    assert.deepEqual(splitAt(text, [...text].map((_, i) => i + 1)), expected, 'one character a chunk');
  }
  // A CR that ends a chunk ends its line: the event completes at once, before the next chunk says whether an LF follows.
  const splitter = createSseSplitter();
  assert.deepEqual(splitter.push(Buffer.from('data: {"a":1}\r\r')), [{ raw: 'data: {"a":1}', data: '{"a":1}' }]);
  assert.deepEqual(splitter.push(Buffer.from('\ndata: 2\n\n')), [{ raw: 'data: 2', data: '2' }], 'the LF was the second half of a CRLF, not another blank line');
});

test('SSE: a final event without its blank line is read at the end of the stream; a data field needs no colon or space', () => {
  for (const end of ['data: {"a":1}', 'data: {"a":1}\n', 'data: {"a":1}\r', 'data: {"a":1}\r\n']) {
    assert.deepEqual(splitAt(`data: 0\n\n${end}`, [3]), [{ raw: 'data: 0', data: '0' }, { raw: 'data: {"a":1}', data: '{"a":1}' }], JSON.stringify(end));
  }
  assert.deepEqual(splitAt('data:x\ndata\ndata:  y\nid: 1\ndatum: z\n\n', []), [{ raw: 'data:x\ndata\ndata:  y\nid: 1\ndatum: z', data: 'x\n\n y' }]);
  assert.deepEqual(splitAt('\n\n: only a comment\n\n', []), [{ raw: ': only a comment', data: null }], 'blank lines alone make no event');
});

test('SSE: an event dropped for its size is dropped up to its blank line; the stream goes on', () => {
  const splitter = createSseSplitter();
  assert.deepEqual(splitter.push(Buffer.from('data: {"ok":1}\r\rid: 7\rdata: aaaa')), [{ raw: 'data: {"ok":1}', data: '{"ok":1}' }]);
  assert.ok(splitter.heldBytes() >= 'id: 7 data: aaaa'.length);
  splitter.drop();
  assert.equal(splitter.heldBytes() <= 1, true, 'nothing of it is held');
  assert.deepEqual(splitter.push(Buffer.from('aaaa\rdata: {"hidden":1}\r')), [], 'the rest of the dropped event is not read as an event');
  assert.deepEqual(splitter.push(Buffer.from('\ndata: {"hidden":2}\r')), [], 'an LF after a CR is no blank line');
  assert.deepEqual(splitter.push(Buffer.from('\r\ndata: {"next":1}\n\n')), [{ raw: 'data: {"next":1}', data: '{"next":1}' }]);
  assert.deepEqual(splitter.end(), []);
});

test('rewritten data is split at every line end a client reads, so no part of it becomes a field of its own', () => {
  const [event] = createSseSplitter().push(Buffer.from('event: message\rdata: a\rdata: b\r\r'));
  assert.equal(withData(event!, 'x\ry\r\nz\nid: 1'), 'event: message\ndata: x\ndata: y\ndata: z\ndata: id: 1');
});

test('a rewritten body must be the exchange that was authorized: only arguments and results may change', () => {
  const call = (id: number, name: string, note: string) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: { note } } });
  const body = (v: unknown) => Buffer.from(JSON.stringify(v));
  const authorized = body(call(1, 'save_note', 'card 4111 1111 1111 1111'));
  assert.equal(rewriteChangesExchange(authorized, body(call(1, 'save_note', 'card [removed]'))), null);
  assert.match(rewriteChangesExchange(authorized, body(call(1, 'delete_notes', 'x')))!, /changes message 1/);
  assert.match(rewriteChangesExchange(authorized, body(call(2, 'save_note', 'x')))!, /changes message 1/);
  assert.match(rewriteChangesExchange(authorized, body([call(1, 'save_note', 'x'), call(2, 'save_note', 'y')]))!, /2 messages where 1/);
  assert.match(rewriteChangesExchange(authorized, Buffer.from('<html>blocked</html>'))!, /not a JSON-RPC message/);
  const read = body({ jsonrpc: '2.0', id: 3, method: 'resources/read', params: { uri: 'file:///public.txt' } });
  assert.match(rewriteChangesExchange(read, body({ jsonrpc: '2.0', id: 3, method: 'resources/read', params: { uri: 'file:///etc/shadow' } }))!, /changes message 1/);
  const result = body({ jsonrpc: '2.0', id: 1, result: { content: [{ type: 'text', text: 'IBAN DE89 3704 0044 0532 0130 00' }] } });
  assert.equal(rewriteChangesExchange(result, body({ jsonrpc: '2.0', id: 1, result: { content: [{ type: 'text', text: '[withheld]' }] } })), null);
  assert.match(rewriteChangesExchange(result, body({ jsonrpc: '2.0', id: 9, result: {} }))!, /changes message 1/);
  // A body that was not JSON-RPC (an event stream) has nothing to hold the rewrite to.
  assert.equal(rewriteChangesExchange(Buffer.from('event: message\ndata: {}\n\n'), Buffer.from('anything')), null);
});

test('tool arguments are an object or absent; anything else is a problem, never read as {}', () => {
  assert.deepEqual(toolArgumentsOf({ name: 'x' }), {});
  assert.deepEqual(toolArgumentsOf({ name: 'x', arguments: { a: 1 } }), { a: 1 });
  assert.equal(toolArgumentsProblem({ name: 'x' }), null);
  for (const [value, kind] of [['AKIA...', 'a string'], [['a'], 'an array'], [4, 'a number'], [true, 'a boolean'], [null, 'null']] as const) {
    assert.equal(toolArgumentsOf({ name: 'x', arguments: value }), null);
    assert.equal(toolArgumentsProblem({ name: 'x', arguments: value }), `tools/call params.arguments must be an object (or absent), not ${kind}`);
  }
});

test('a body that is not JSON is refused with a message of our own that gives the position, never the body', () => {
  const awsKey = 'AKIAZ3MQ7HW2XK4JLP5R';
  for (const body of [`{"a": ${awsKey}}`, awsKey, `{"a": "${awsKey}"`, `{"a": 1} ${awsKey}`]) {
    const parsed = parseJsonRpcBody(Buffer.from(body), true);
    assert.ok(!parsed.ok);
    assert.equal(parsed.mandateCode, 'invalid_json');
    assert.match(parsed.message, /^the body is not valid JSON( \(at character \d+\))?$/, parsed.message);
  }
  const cut = parseJsonRpcBody(Buffer.from('{"a": 1,'), true);
  assert.ok(!cut.ok);
  assert.equal(cut.message, 'the body is not valid JSON (at character 8)');
});
