import assert from 'node:assert/strict';
import { test } from 'node:test';
import { defaultEnvoyMaxHeapMib, envoyMaxHeapBytesFromEnv, SettingError } from './envoy-memory.ts';

test('MANDATE_ENVOY_MAX_HEAP_MIB: whole MiB, 1 GiB when unset', () => {
  assert.equal(defaultEnvoyMaxHeapMib, 1024);
  assert.equal(envoyMaxHeapBytesFromEnv({}), 1024 * 1024 * 1024);
  assert.equal(envoyMaxHeapBytesFromEnv({ MANDATE_ENVOY_MAX_HEAP_MIB: '' }), 1024 * 1024 * 1024);
  assert.equal(envoyMaxHeapBytesFromEnv({ MANDATE_ENVOY_MAX_HEAP_MIB: ' 1536 ' }), 1536 * 1024 * 1024);
  assert.equal(envoyMaxHeapBytesFromEnv({ MANDATE_ENVOY_MAX_HEAP_MIB: '1' }), 1024 * 1024);
  assert.equal(envoyMaxHeapBytesFromEnv({ MANDATE_ENVOY_MAX_HEAP_MIB: '1048576' }), 1024 ** 4);
});

test('a bad MANDATE_ENVOY_MAX_HEAP_MIB is refused with envoy_max_heap_invalid and a message naming the variable', () => {
  // Bytes given where MiB are meant, units, fractions, signs, zero: none is guessed at.
  for (const value of ['0', '-1', '1.5', '2G', '512MiB', '1e3', '0x400', '1073741824', 'lots']) {
    assert.throws(
      () => envoyMaxHeapBytesFromEnv({ MANDATE_ENVOY_MAX_HEAP_MIB: value }),
      (error: unknown) => {
        assert.ok(error instanceof SettingError, value);
        assert.equal(error.code, 'envoy_max_heap_invalid', value);
        assert.match(error.message, new RegExp(`^MANDATE_ENVOY_MAX_HEAP_MIB must be a whole number of MiB, 1-1048576, not "${value.replace('.', '\\.')}"`), value);
        return true;
      },
    );
  }
});
