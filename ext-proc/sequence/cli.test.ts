import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from './cli.ts';
import type { SimulationReport } from './simulate.ts';

const testDigestKey = 'test-arguments-digest-key-of-32-characters';

const personaYaml = `kind: Persona
name: support
description: Answers customer tickets
grants:
  - upstream: tickets
    tools: [{ name: "tickets.*" }]
  - upstream: mail
    tools: [{ name: "email.send" }]
behaviour:
  rules:
    - name: bulk-read-then-egress
      steps:
        - match: { class: [read], tool: "tickets.*" }
          atLeast: 50
        - match: { class: [egress] }
          within: 10m
      action: block
---
kind: Upstream
name: mail
protocol: mcp
url: http://127.0.0.1:3002/mcp
classifications:
  - { tool: email.send, class: egress }
`;

function traceLines(): string {
  const lines: string[] = [];
  const start = Date.parse('2026-01-05T09:00:00Z');
  for (let i = 0; i < 60; i += 1) {
    lines.push(JSON.stringify({ session: 'exfil', agent: 'agent-1', ts: new Date(start + i * 1000).toISOString(), method: 'tools/call', tool: 'tickets.get', arguments: { id: i }, result: { content: [], isError: false } }));
  }
  lines.push(JSON.stringify({ session: 'exfil', agent: 'agent-1', ts: new Date(start + 70_000).toISOString(), method: 'tools/call', tool: 'email.send', arguments: { to: 'x@example.com' } }));
  lines.push(JSON.stringify({ session: 'benign', agent: 'agent-2', ts: new Date(start).toISOString(), method: 'tools/list' }));
  for (let i = 0; i < 5; i += 1) {
    lines.push(JSON.stringify({ session: 'benign', agent: 'agent-2', ts: new Date(start + i * 1000).toISOString(), method: 'tools/call', tool: 'tickets.get', arguments: { id: i } }));
  }
  lines.push(JSON.stringify({ session: 'benign', agent: 'agent-2', ts: new Date(start + 9000).toISOString(), method: 'tools/call', tool: 'email.send', arguments: {} }));
  return `${lines.join('\n')}\n`;
}

function workspace(): { dir: string; io: { cwd: string; stdout: (t: string) => void; stderr: (t: string) => void }; out: string[]; err: string[] } {
  const dir = mkdtempSync(join(tmpdir(), 'mandate-simulate-'));
  const out: string[] = [];
  const err: string[] = [];
  return { dir, io: { cwd: dir, stdout: (t) => out.push(t), stderr: (t) => err.push(t) }, out, err };
}

test('simulate reports, per session, where the exfiltration sequence is stopped (text and --json)', async () => {
  const { dir, io, out, err } = workspace();
  try {
    writeFileSync(join(dir, 'persona.yaml'), personaYaml);
    writeFileSync(join(dir, 'traces.jsonl'), traceLines());
    assert.equal(await run(['--persona', 'persona.yaml', '--traces', 'traces.jsonl'], io), 0, err.join(''));
    const text = out.join('');
    assert.match(text, /session exfil \(agent agent-1\): 61 calls; allow 60, block 1/);
    assert.match(text, /stopped at line 61 \(email\.send\): block/);
    assert.match(text, /session benign \(agent agent-2\): 6 calls; allow 6;/);

    out.length = 0;
    assert.equal(await run(['--persona', 'persona.yaml', '--traces', 'traces.jsonl', '--json', '--mode', 'monitor'], io), 0);
    const report = JSON.parse(out.join('')) as SimulationReport;
    assert.equal(report.enforced, false);
    assert.equal(report.skipped, 1);
    const exfil = report.sessions.find((s) => s.session === 'exfil');
    assert.deepEqual(exfil?.firstStop?.line, 61);
    assert.deepEqual(exfil?.reasonCodes, ['sequence_rule_matched']);
    assert.equal(report.sessions.find((s) => s.session === 'benign')?.firstStop, null);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad traces are rejected with the line and field at fault', async () => {
  const { dir, io, err } = workspace();
  try {
    writeFileSync(join(dir, 'persona.yaml'), personaYaml);
    const good = JSON.stringify({ session: 's', agent: 'a', ts: '2026-01-05T09:00:00Z', method: 'tools/call', tool: 't', arguments: {} });
    writeFileSync(
      join(dir, 'traces.jsonl'),
      [good, '{not json', JSON.stringify({ session: 's', agent: 'a', ts: 'yesterday', method: 'tools/call', tool: 't' }), JSON.stringify({ session: 's', agent: 'a', ts: '2026-01-05T09:00:00Z', method: 'tools/call' })].join('\n'),
    );
    assert.equal(await run(['--persona', 'persona.yaml', '--traces', 'traces.jsonl'], io), 1);
    const messages = err.join('');
    assert.match(messages, /traces\.jsonl:2: \(line\): not JSON/);
    assert.match(messages, /traces\.jsonl:3: ts: /);
    assert.match(messages, /traces\.jsonl:4: tool: a tools\/call line needs the tool name/);
    assert.doesNotMatch(messages, /traces\.jsonl:1:/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad rules are rejected with the field at fault; usage errors exit 2', async () => {
  const { dir, io, err } = workspace();
  try {
    writeFileSync(join(dir, 'persona.yaml'), personaYaml.replace('atLeast: 50', 'atLeast: 50\n          within: 1m').replace('{ class: [egress] }', '{ class: [egress], when: "args.to ==" }'));
    writeFileSync(join(dir, 'traces.jsonl'), traceLines());
    assert.equal(await run(['--persona', 'persona.yaml', '--traces', 'traces.jsonl'], io), 1);
    const messages = err.join('');
    assert.match(messages, /behaviour\.rules\.0\.steps\.0\.within: within_on_first_step/);
    assert.match(messages, /behaviour\.rules\.0\.steps\.1\.match\.when: invalid_cel/);

    writeFileSync(join(dir, 'typo.yaml'), personaYaml.replace('atLeast: 50', 'atleast: 50'));
    err.length = 0;
    assert.equal(await run(['--persona', 'typo.yaml', '--traces', 'traces.jsonl'], io), 1);
    assert.match(err.join(''), /behaviour\.rules\.0\.steps\.0/);
    assert.equal(await run(['--persona', 'persona.yaml'], io), 2);
    assert.equal(await run(['--persona', 'missing.yaml', '--traces', 'traces.jsonl'], io), 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--learn writes a baseline that --baseline can score against', async () => {
  const { dir, io, err } = workspace();
  try {
    writeFileSync(join(dir, 'persona.yaml'), personaYaml);
    writeFileSync(join(dir, 'traces.jsonl'), traceLines());
    assert.equal(await run(['--persona', 'persona.yaml', '--traces', 'traces.jsonl', '--learn', 'baseline.json'], io), 0, err.join(''));
    const snapshot = JSON.parse(readFileSync(join(dir, 'baseline.json'), 'utf8')) as { format: string; observations: number; tools: Record<string, unknown> };
    assert.equal(snapshot.format, 'mandate-baseline/1');
    assert.equal(snapshot.observations, 67);
    assert.deepEqual(Object.keys(snapshot.tools).sort(), ['email.send', 'tickets.get']);
    assert.equal(await run(['--persona', 'persona.yaml', '--traces', 'traces.jsonl', '--baseline', 'baseline.json'], io), 0, err.join(''));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an audit trail export replays through the simulator like a trace file', async () => {
  const { dir, io, out, err } = workspace();
  const { openAuditLog } = await import('../audit/log.ts');
  const { auditEventFromDecision } = await import('../audit/event.ts');
  const { exportJsonl } = await import('../audit/export.ts');
  const log = openAuditLog({ directory: join(dir, 'audit'), clock: (() => { let t = Date.parse('2026-01-05T09:00:00Z'); return () => (t += 1000); })() });
  try {
    const decide = (tool: string, args: Record<string, unknown>, upstream: string) =>
      log.append(
        auditEventFromDecision({
          verdict: 'allow',
          enforced: true,
          reasons: [],
          findings: [],
          riskScore: null,
          configVersion: 3,
          call: { kind: 'mcp', method: 'tools/call', tool, arguments: args, jsonRpcId: 1 },
          context: { persona: 'support', upstream, agent: 'agent-1', credentialId: 'c1', sessionId: 'exfil', sourceAddress: null, requestId: null },
        }, testDigestKey),
      );
    for (let i = 0; i < 55; i += 1) decide('tickets.get', { id: String(i) }, 'tickets');
    decide('email.send', { to: 'x@example.com' }, 'mail');
    log.appendAdminEvent({ actor: 'admin', action: 'config.apply', target: 'config', beforeVersion: 2, afterVersion: 3 });
    await log.flush();
    writeFileSync(join(dir, 'persona.yaml'), personaYaml);
    writeFileSync(join(dir, 'export.jsonl'), [...exportJsonl(log.store, {})].join(''));
    assert.equal(await run(['--persona', 'persona.yaml', '--traces', 'export.jsonl'], io), 0, err.join(''));
    assert.match(out.join(''), /session exfil \(agent agent-1\): 56 calls; allow 55, block 1/);
  } finally {
    await log.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
