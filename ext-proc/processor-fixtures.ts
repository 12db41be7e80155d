// Shared by the processor's unit and fuzz tests.
import assert from 'node:assert/strict';
import type { ProcessingRequest, ProcessingResponse } from './envoy-messages.ts';

/** The processor's answer when it is synchronous (no external DLP on the test Personas). */
export function handleNow(processor: { handle(r: ProcessingRequest): ProcessingResponse | null | { deferred: unknown } }, request: ProcessingRequest): ProcessingResponse | null {
  const response = processor.handle(request);
  assert.ok(response === null || !('deferred' in response), 'a synchronous answer');
  return response as ProcessingResponse | null;
}
