import assert from 'node:assert/strict';
import { test } from 'node:test';
import { configBundleSchema, type PolicySnapshot } from '../../config/bundle.ts';
import { compilePolicy } from './compile-policy.ts';

function snapshot(personaExtra: Record<string, unknown>): PolicySnapshot {
  const bundle = configBundleSchema.parse({
    upstreams: [{ kind: 'Upstream', name: 'mail', protocol: 'mcp', url: 'http://127.0.0.1:1/mcp' }],
    personas: [
      { kind: 'Persona', name: 'plain', description: 'no stages', grants: [{ upstream: 'mail', tools: [{ name: 'send_email' }] }] },
      { kind: 'Persona', name: 'guarded', description: 'both stages', grants: [{ upstream: 'mail', tools: [{ name: 'send_email' }] }], ...personaExtra },
    ],
  });
  return { version: 3, createdAt: '2026-01-01T00:00:00Z', bundle, credentials: [], upstreamCredentials: {} };
}

test('each Persona carries its compiled data protection and behaviour', () => {
  const compiled = compilePolicy(snapshot({ dataProtection: { profiles: ['secrets'], flow: { enabled: true } }, behaviour: { rules: [] } }), { fingerprintKey: Buffer.alloc(32, 7) });
  assert.ok(compiled.ok);
  const plain = compiled.policy.personas.get('plain')!;
  assert.equal(plain.dataProtection.active, false, 'no dataProtection block: nothing is scanned');
  assert.equal(plain.behaviour.active, false);
  assert.equal(plain.behaviour.classify('mail', 'send_email').toolClass, 'egress', 'the classifier works without a behaviour block');
  const guarded = compiled.policy.personas.get('guarded')!;
  assert.equal(guarded.dataProtection.active, true);
  assert.ok(guarded.dataProtection.fingerprintKey?.equals(Buffer.alloc(32, 7)), 'with data-flow control on, the service key reaches the compiled form');
  assert.equal(guarded.behaviour.active, true);
});

test('a bad dataProtection block rejects the snapshot with the path of the field', () => {
  const compiled = compilePolicy(snapshot({ dataProtection: { detectors: [{ id: 'no-such-detector' }] } }));
  assert.equal(compiled.ok, false);
  assert.ok(!compiled.ok);
  assert.deepEqual(compiled.issues.map((i) => [i.path, i.code]), [[['personas', 1, 'dataProtection', 'detectors', 0, 'id'], 'unknown_detector']]);
});

test('a bad behaviour block rejects the snapshot with the path of the field', () => {
  const compiled = compilePolicy(snapshot({ behaviour: { rules: [{ name: 'r', steps: [{ match: { when: 'args.(' } }] }] } }));
  assert.ok(!compiled.ok);
  assert.deepEqual(compiled.issues.map((i) => [i.path, i.code]), [[['personas', 1, 'behaviour', 'rules', 0, 'steps', 0, 'match', 'when'], 'invalid_cel']]);
});

test('a version that changes nothing about a Persona reuses its compiled form', () => {
  const snapshot = (version: number, description: string) => ({
    version,
    createdAt: '2026-01-01T00:00:00Z',
    bundle: configBundleSchema.parse({
      upstreams: [{ kind: 'Upstream', name: 'billing', protocol: 'mcp', url: 'http://127.0.0.1:1/mcp' }],
      personas: [
        { kind: 'Persona', name: 'stable', description: 'same', grants: [{ upstream: 'billing', tools: [{ name: '*' }] }], dataProtection: { profiles: ['pci-dss'] } },
        { kind: 'Persona', name: 'edited', description, grants: [{ upstream: 'billing', tools: [{ name: '*' }] }], dataProtection: { profiles: ['pci-dss'] } },
      ],
    }),
    credentials: [],
    upstreamCredentials: {},
  });
  const personaCache = new Map();
  const first = compilePolicy(snapshot(1, 'v1'), { personaCache });
  const second = compilePolicy(snapshot(2, 'v2'), { personaCache });
  assert.ok(first.ok && second.ok);
  assert.equal(second.policy.personas.get('stable'), first.policy.personas.get('stable'), 'unchanged Persona reused');
  assert.notEqual(second.policy.personas.get('edited'), first.policy.personas.get('edited'), 'edited Persona compiled again');
  assert.equal(second.policy.personas.get('edited')!.persona.description, 'v2');
  assert.equal(personaCache.size, 2, 'the cache holds only the current version');
});

test('Personas with the same data protection share one compiled engine', () => {
  const bundle = configBundleSchema.parse({
    upstreams: [{ kind: 'Upstream', name: 'billing', protocol: 'mcp', url: 'http://127.0.0.1:1/mcp' }],
    personas: ['a', 'b', 'c'].map((name) => ({
      kind: 'Persona',
      name,
      description: name,
      mode: name === 'c' ? 'monitor' : 'enforce',
      grants: [{ upstream: 'billing', tools: [{ name: '*' }] }],
      dataProtection: { profiles: ['pci-dss'] },
    })),
  });
  const compiled = compilePolicy({ version: 1, createdAt: '2026-01-01T00:00:00Z', bundle, credentials: [], upstreamCredentials: {} });
  assert.ok(compiled.ok);
  const engine = (name: string) => compiled.policy.personas.get(name)!.dataProtection;
  assert.equal(engine('a'), engine('b'));
  assert.notEqual(engine('a'), engine('c'), 'monitor mode compiles its own (it never blocks)');
});

test('without data-flow control, data protection computes no fingerprints (no key)', () => {
  const compiled = compilePolicy(snapshot({ dataProtection: { profiles: ['secrets'] } }), { fingerprintKey: Buffer.alloc(32, 7) });
  assert.ok(compiled.ok);
  const guarded = [...compiled.policy.personas.values()].find((p) => p.dataProtection.active)!;
  assert.equal(guarded.dataProtection.fingerprintKey, null);
});
