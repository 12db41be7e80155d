import { test } from 'node:test';
import assert from 'node:assert/strict';
import { toolClassSchema } from '../../config/schema.ts';
import { behaviourSchema, behaviourToolClassSchema } from '../../config/behaviour-schema.ts';
import { compileBehaviour, durationMs, toolPatternRegExp } from './compile.ts';
import { classifyTool } from './classify.ts';
import { bulkReadThenEgress, supportPersona, supportUpstreams } from './fixtures.ts';

test('the behaviour schema spells the same tool classes as config/schema.ts', () => {
  assert.deepEqual(behaviourToolClassSchema.options, toolClassSchema.options);
});

test('an empty behaviour block parses to "no rules" with every default filled in', () => {
  const parsed = behaviourSchema.parse({});
  assert.deepEqual(parsed.rules, []);
  assert.deepEqual(parsed.guardrails, { rateLimits: [], quotas: [] });
  assert.equal(parsed.session.statelessGap, '15m');
  assert.equal(parsed.baseline.learn, 'monitor');
  assert.equal(behaviourSchema.safeParse({ rules: [], extra: 1 }).success, false, 'strict: unknown keys are rejected');
});

test('durations and tool patterns compile', () => {
  assert.equal(durationMs('10m'), 600_000);
  assert.equal(durationMs('250ms'), 250);
  assert.equal(durationMs('2d'), 172_800_000);
  const pattern = toolPatternRegExp(['tickets.*', 'GET /tickets/{id}']);
  assert.equal(pattern.test('tickets.get'), true);
  assert.equal(pattern.test('ticketsXget'), false, 'the dot is literal');
  assert.equal(pattern.test('GET /tickets/{id}'), true);
  assert.equal(pattern.test('email.send'), false);
});

test('bad rules are rejected with the path of the offending field', () => {
  const result = compileBehaviour(
    supportPersona({
      rules: [
        bulkReadThenEgress,
        {
          name: 'broken',
          steps: [
            { match: { tool: 'a', when: 'args.x ==' }, within: '1m' },
            { match: { upstream: 'nowhere', result: 'result.isError' } },
          ],
        },
        { ...bulkReadThenEgress },
      ],
      guardrails: { circuitBreaker: {} },
      baseline: { alertAbove: 0.8, blockAbove: 0.5 },
    }),
    supportUpstreams,
  );
  assert.equal(result.ok, false);
  if (result.ok) return;
  const found = result.issues.map((i) => `${i.path.join('.')} ${i.code}`);
  assert.deepEqual(found.sort(), [
    'behaviour.baseline.blockAbove block_below_alert',
    'behaviour.guardrails.circuitBreaker breaker_without_detector',
    'behaviour.rules.1.steps.0.match.when invalid_cel',
    'behaviour.rules.1.steps.0.within within_on_first_step',
    'behaviour.rules.1.steps.1.match.result result_condition_on_final_step',
    'behaviour.rules.1.steps.1.match.upstream unknown_upstream',
    'behaviour.rules.2.name duplicate_rule_name',
  ]);
});

test('schema errors inside behaviour come back as issues, not exceptions', () => {
  const persona = supportPersona(undefined);
  const result = compileBehaviour({ ...persona, behaviour: { rules: [{ name: 'x', steps: [] }] } as never }, supportUpstreams);
  assert.equal(result.ok, false);
  if (!result.ok) assert.deepEqual(result.issues[0]?.path, ['behaviour', 'rules', 0, 'steps']);
});

test('classification: override, then annotations, then HTTP method, then name, then description', () => {
  const mail = supportUpstreams[1];
  assert.ok(mail);
  assert.deepEqual(classifyTool({ tool: 'email.send', annotations: { readOnlyHint: true } }, mail), { toolClass: 'egress', risk: 'high', source: 'override' });
  assert.equal(classifyTool({ tool: 'records.purge_all', annotations: { readOnlyHint: true } }).toolClass, 'read');
  assert.equal(classifyTool({ tool: 'do_thing', annotations: { destructiveHint: true } }).toolClass, 'destructive');
  assert.equal(classifyTool({ tool: 'do_thing', annotations: { openWorldHint: true } }).toolClass, 'egress');
  assert.deepEqual(classifyTool({ tool: 'web_search', annotations: { readOnlyHint: true, openWorldHint: true } }), { toolClass: 'read', risk: 'medium', source: 'annotations' });
  assert.equal(classifyTool({ tool: 'GET /tickets/{id}' }).toolClass, 'read');
  assert.equal(classifyTool({ tool: 'DELETE /tickets/{id}' }).toolClass, 'destructive');
  assert.equal(classifyTool({ tool: 'POST /tickets' }).toolClass, 'write');
  assert.equal(classifyTool({ tool: 'POST /messages/send' }).toolClass, 'egress');
  assert.equal(classifyTool({ tool: 'PUT /users/{id}/roles' }).toolClass, 'admin');
  assert.equal(classifyTool({ tool: 'getTicketById' }).toolClass, 'read');
  assert.equal(classifyTool({ tool: 'tickets.deleteComment' }).toolClass, 'destructive', 'the most severe word wins');
  assert.equal(classifyTool({ tool: 'slack_post_message' }).toolClass, 'egress');
  assert.equal(classifyTool({ tool: 'grant_role' }).risk, 'critical');
  assert.equal(classifyTool({ tool: 'frobnicate', description: 'Lists the frobs' }).source, 'description');
  assert.deepEqual(classifyTool({ tool: 'frobnicate' }), { toolClass: 'write', risk: 'medium', source: 'default' });
  const external = { classifications: [], environment: 'external' as const, protocol: 'rest' as const };
  assert.equal(classifyTool({ tool: 'POST /notes' }, external).toolClass, 'egress', 'writes to an external system are egress');
});
