// The wire format of a shared revision: gzip of JSON, plain JSON still read, and
// damaged or oversized input refused with a short reason instead of a throw.
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { test } from 'node:test';
import { decodeRevisionMessage, encodeRevisionMessage, maxRevisionMessageBytes } from './revision-message.ts';

const change = {
  kind: 'change' as const,
  version: 7,
  createdAt: '2026-11-26T08:00:00.000Z',
  actor: 'admin:alice',
  summary: 'applied Persona/support',
  bundleJson: JSON.stringify({ upstreams: [], skills: [], personas: [] }),
  credentialsIssued: [],
  credentialsRevoked: [],
};

test('a revision round-trips through the gzip encoding, and plain JSON decodes to the same message', () => {
  const encoded = encodeRevisionMessage('replica-a', change as never);
  assert.deepEqual([...encoded.subarray(0, 2)], [0x1f, 0x8b]);
  const decoded = decodeRevisionMessage(encoded);
  assert.ok(decoded.ok, JSON.stringify(decoded));
  assert.equal(decoded.message.replica, 'replica-a');
  const plain = decodeRevisionMessage(new TextEncoder().encode(JSON.stringify({ format: 1, replica: 'replica-a', change })));
  assert.ok(plain.ok);
  assert.deepEqual(plain.message, decoded.message);
});

test('truncated gzip, gzip of something else and a decompression bomb are refused with a reason', () => {
  const encoded = encodeRevisionMessage('replica-a', change as never);
  assert.deepEqual(decodeRevisionMessage(encoded.subarray(0, encoded.length - 9)), { ok: false, reason: 'not valid gzip' });
  assert.deepEqual(decodeRevisionMessage(gzipSync('not json')), { ok: false, reason: 'not JSON' });
  const wrongShape = decodeRevisionMessage(gzipSync(JSON.stringify({ format: 2, replica: 'x', change })));
  assert.equal(wrongShape.ok, false);
  // 64 MB of zeros compress to about 64 KB: refused at the limit, before it is all in memory.
  const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024));
  assert.ok(bomb.length < 100_000);
  assert.deepEqual(decodeRevisionMessage(bomb, 1024 * 1024), { ok: false, reason: 'decompresses to more than 1048576 bytes' });
  assert.ok(maxRevisionMessageBytes >= 64 * 1024 * 1024, 'the production limit admits the largest max_payload NATS allows');
});
