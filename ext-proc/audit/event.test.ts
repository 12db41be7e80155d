import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { allow, deny, type Decision } from '../decision/decision.ts';
import { argumentsDigest, auditEventFromDecision, canonicalJson } from './event.ts';
import { maskArguments } from './masked-arguments.ts';

const testDigestKey = 'test-arguments-digest-key-of-32-characters';

const context = { persona: 'code-assistant', upstream: 'repo-tools', agent: 'agent-7', credentialId: 'cred-1', sessionId: 's-1', sourceAddress: '10.0.0.9', requestId: 'req-42' };

describe('auditEventFromDecision', () => {
  it('digests the canonical arguments and stores only a masked copy', () => {
    const secret = 'AKIAIOSFODNN7EXAMPLE';
    const decision: Decision = {
      ...allow({ kind: 'mcp', method: 'tools/call', tool: 'write_file', arguments: { path: '/repo/src/very/long/path.ts', token: secret, mode: 'w', size: 12 } }, context, 12),
      findings: [{ detector: 'aws-access-key', group: 'secrets', location: '$.token', confidence: 0.99, action: 'mask', direction: 'request' }],
    };
    const event = auditEventFromDecision(decision, testDigestKey, { latencyMs: 1.5, upstreamStatus: 200, user: 'dana', traceId: 'a'.repeat(32) });
    assert.equal(event.tool, 'write_file');
    assert.equal(event.operation, 'tools/call');
    assert.equal(event.configVersion, 12);
    assert.equal(event.requestId, 'req-42');
    assert.equal(event.argumentsDigest, argumentsDigest({ size: 12, mode: 'w', token: secret, path: '/repo/src/very/long/path.ts' }, testDigestKey));
    assert.deepEqual(event.maskedArguments, { path: '/repo/sr…(27)', token: '[redacted:aws-access-key/secrets]', mode: 'w', size: 12 });
    assert.deepEqual(event.findingTypes, ['aws-access-key/secrets']);
    assert.ok(!JSON.stringify(event).includes(secret));
    assert.ok(!JSON.stringify(event).includes('AKIAIOSF'));
  });

  it('carries the verdict, reasons and REST operation of a denial', () => {
    const decision = deny({ kind: 'rest', method: 'DELETE', path: '/tickets/9', query: { force: 'true' } }, context, 3, { stage: 'authorization', code: 'operation_not_granted', message: 'DELETE /tickets/{id} is not granted' }, false);
    const event = auditEventFromDecision(decision, testDigestKey, { kind: 'response', upstreamStatus: 204 });
    assert.equal(event.kind, 'response');
    assert.equal(event.tool, 'DELETE /tickets/9');
    assert.equal(event.verdict, 'deny');
    assert.equal(event.enforced, false);
    assert.deepEqual(event.reasons.map((r) => r.code), ['operation_not_granted']);
    assert.deepEqual(event.maskedArguments, { query: { force: 'true' } });
  });

  it('records a refused answer in the response event: verdict deny, the refusal first, the status the agent got', () => {
    const decision = allow({ kind: 'rest', method: 'GET', path: '/notes', query: {} }, context, 3);
    const refusal = { reason: { stage: 'data-protection' as const, code: 'sensitive_data_blocked', message: 'the answer holds financial data (payment-card-visa) that this Persona may not receive; it was withheld' }, enforced: true, agentStatus: 502 };
    const event = auditEventFromDecision(decision, testDigestKey, { kind: 'response', upstreamStatus: 200, answerRefusal: refusal });
    assert.deepEqual([event.verdict, event.enforced, event.reasons.map((r) => r.code), event.upstreamStatus, event.agentStatus], ['deny', true, ['sensitive_data_blocked'], 200, 502]);
    // The decision event is the decision's; an answer that went through has no agentStatus.
    assert.equal(auditEventFromDecision(decision, testDigestKey, { answerRefusal: refusal }).verdict, 'allow');
    assert.equal('agentStatus' in auditEventFromDecision(decision, testDigestKey, { kind: 'response', upstreamStatus: 200 }), false);
  });

  it('redacts everything when a finding covers the whole body', () => {
    assert.deepEqual(maskArguments({ a: 'x', b: ['yyyyyyyyyyyy', 3] }, [{ detector: 'pan', group: 'pci', location: 'body', confidence: 1, action: 'block', direction: 'request' }]), {
      a: '[redacted:pan/pci]',
      b: ['[redacted:pan/pci]', 3],
    });
  });

  it('keeps a "__proto__" key of the arguments as a key of the record: it cannot hide an argument from the audit trail', () => {
    const args = JSON.parse('{"__proto__": {"token": "ghp_secret_value_here"}, "note": "hi"}') as Record<string, unknown>;
    const masked = maskArguments(args, [{ detector: 'github-personal-access-token', group: 'credentials', location: '$["__proto__"].token', confidence: 1, action: 'mask', direction: 'request' }]) as Record<string, unknown>;
    assert.deepEqual(Object.keys(masked), ['__proto__', 'note']);
    assert.equal(Object.getPrototypeOf(masked), Object.prototype);
    assert.equal(JSON.stringify(masked), '{"__proto__":{"token":"[redacted:github-personal-access-token/credentials]"},"note":"hi"}');
  });

  it('canonical JSON ignores key order', () => {
    assert.equal(canonicalJson({ b: 1, a: { d: [1, { y: 2, x: 1 }], c: null } }), '{"a":{"c":null,"d":[1,{"x":1,"y":2}]},"b":1}');
    assert.equal(argumentsDigest({ a: 1, b: 2 }, testDigestKey), argumentsDigest({ b: 2, a: 1 }, testDigestKey));
    assert.notEqual(argumentsDigest({ a: 1 }, testDigestKey), argumentsDigest({ a: 2 }, testDigestKey));
    // Keyed: without the key, hashing a guess does not give the stored digest.
    assert.notEqual(argumentsDigest({ ssn: '123-45-6788' }, testDigestKey), argumentsDigest({ ssn: '123-45-6788' }, 'another-key-of-at-least-32-characters'));
    assert.match(argumentsDigest({ a: 1 }, testDigestKey), /^hmac-sha256:[0-9a-f]{64}$/);
  });
});

describe('normaliseEventInput', () => {
  it('gives what the zod schema gives, for sparse and full inputs', async () => {
    const { auditEventInputSchema, normaliseEventInput } = await import('./event.ts');
    const sparse = { kind: 'alert' as const, alert: { name: 'x', severity: 'info' as const, message: 'm' } };
    assert.deepEqual(normaliseEventInput(sparse), auditEventInputSchema.parse(sparse));
    const admin = { kind: 'admin' as const, admin: { actor: 'a', action: 'b', target: 'c', beforeVersion: 1, afterVersion: 2 } };
    assert.deepEqual(normaliseEventInput(admin), auditEventInputSchema.parse(admin));
    const full = auditEventFromDecision(allow({ kind: 'mcp', method: 'tools/call', tool: 't', arguments: { a: 1 } }, context, 1), testDigestKey, { latencyMs: 1 });
    assert.deepEqual(normaliseEventInput(full), auditEventInputSchema.parse(full));
    const refused = { ...full, kind: 'response' as const, verdict: 'deny' as const, agentStatus: 502 };
    assert.deepEqual(normaliseEventInput(refused), auditEventInputSchema.parse(refused));
    assert.throws(() => normaliseEventInput({ kind: 'nonsense' as 'alert' }), /unknown audit event kind/);
  });
});
