// Shared by this folder's tests and the benchmark: a support Persona with a
// tickets MCP server and an email MCP server, and a helper to drive the engine.
import { personaSchema, upstreamSchema, type Persona, type Upstream } from '../../config/schema.ts';
import { MemoryAlertSink } from './alerts.ts';
import { compileBehaviour, type CompiledBehaviour } from './compile.ts';
import { createBehaviourEngine, type BehaviourCall, type BehaviourEngine } from './engine.ts';
import { InMemorySessionStateStore } from './state-store.ts';

export const supportUpstreams: Upstream[] = [
  upstreamSchema.parse({ kind: 'Upstream', name: 'tickets', protocol: 'mcp', url: 'http://127.0.0.1:3001/mcp' }),
  upstreamSchema.parse({
    kind: 'Upstream',
    name: 'mail',
    protocol: 'mcp',
    url: 'http://127.0.0.1:3002/mcp',
    classifications: [{ tool: 'email.send', class: 'egress', risk: 'high' }],
  }),
];

export function supportPersona(behaviour: unknown, mode: 'enforce' | 'monitor' = 'enforce'): Persona {
  return personaSchema.parse({
    kind: 'Persona',
    name: 'support',
    description: 'Answers customer tickets',
    mode,
    grants: [
      { upstream: 'tickets', tools: [{ name: 'tickets.*' }] },
      { upstream: 'mail', tools: [{ name: 'email.send' }] },
    ],
    behaviour,
  });
}

export const bulkReadThenEgress = {
  name: 'bulk-read-then-egress',
  description: 'Many ticket reads followed by anything that sends data out',
  steps: [
    { match: { class: ['read'], tool: 'tickets.*' }, atLeast: 50 },
    { match: { class: ['egress'] }, within: '10m' },
  ],
  action: 'block',
};

export function compileOrThrow(persona: Persona, upstreams: Upstream[] = supportUpstreams): CompiledBehaviour {
  const result = compileBehaviour(persona, upstreams);
  if (!result.ok) throw new Error(`behaviour did not compile: ${JSON.stringify(result.issues)}`);
  return result.compiled;
}

export interface TestRig {
  engine: BehaviourEngine;
  store: InMemorySessionStateStore;
  alerts: MemoryAlertSink;
  now: { ms: number };
}

export function testRig(): TestRig {
  const now = { ms: Date.parse('2026-01-05T09:00:00Z') };
  const store = new InMemorySessionStateStore();
  const alerts = new MemoryAlertSink();
  const engine = createBehaviourEngine({ clock: () => now.ms, store, alertSink: alerts });
  return { engine, store, alerts, now };
}

export function ticketCall(overrides: Partial<BehaviourCall> = {}): BehaviourCall {
  return {
    persona: 'support',
    agent: 'agent-1',
    user: 'alice',
    sessionId: 'session-1',
    credentialId: 'cred-1',
    upstream: 'tickets',
    tool: 'tickets.get',
    arguments: { id: 1 },
    ...overrides,
  };
}
