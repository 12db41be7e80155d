import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseJsonRpcBody } from './json-rpc.ts';
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
