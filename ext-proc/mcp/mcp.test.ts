import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseJsonRpcBody, rewriteChangesExchange } from './json-rpc.ts';
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
    assert.equal(splitter.rest(), '');
  }
});

test('an event rebuilt with new data keeps its other fields', () => {
  const [event] = createSseSplitter().push(Buffer.from('event: message\nid: 9\ndata: {"a":1}\n\n'));
  assert.equal(withData(event!, '{"a":2}'), 'event: message\nid: 9\ndata: {"a":2}');
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
