import assert from 'node:assert/strict';
import { test } from 'node:test';
import { authorizeMcpMethod, authorizeOperation, isToolVisible } from './authorize.ts';
import { compileGrants, compileToolPattern } from './compile-grants.ts';

const { byUpstream, issues } = compileGrants([
  {
    grant: {
      upstream: 'tickets',
      tools: [{ name: 'read_*' }, { name: 'update_ticket', when: "args.project == 'X' && args.priority < 3" }],
      operations: [
        { method: 'GET', path: '/tickets/{id}' },
        { method: 'POST', path: '/tickets', when: "body.project == 'X'" },
      ],
    },
    path: ['personas', 0, 'grants', 0],
  },
]);
const grants = byUpstream.get('tickets');

test('tool globs match without a regex engine', () => {
  assert.equal(compileToolPattern('read_*')('read_ticket'), true);
  assert.equal(compileToolPattern('read_*')('unread_ticket'), false);
  assert.equal(compileToolPattern('*_ticket_*')('get_ticket_body'), true);
  assert.equal(compileToolPattern('a*b*c')('abc'), true);
  assert.equal(compileToolPattern('a*b*c')('acb'), false);
  assert.equal(compileToolPattern('exact')('exactly'), false);
});

test('default deny: only granted tools, and session plumbing, pass', () => {
  assert.equal(issues.length, 0);
  assert.equal(authorizeMcpMethod(grants, 'tools/call', 'read_ticket', { args: {} }).allowed, true);
  const denied = authorizeMcpMethod(grants, 'tools/call', 'delete_ticket', { args: {} });
  assert.equal(denied.allowed, false);
  assert.equal(!denied.allowed && denied.reason.code, 'tool_not_granted');
  assert.equal(authorizeMcpMethod(undefined, 'tools/call', 'read_ticket', { args: {} }).allowed, false, 'no grants on this upstream');
  assert.equal(authorizeMcpMethod(grants, 'initialize', undefined, {}).allowed, true);
  assert.equal(authorizeMcpMethod(grants, 'notifications/initialized', undefined, {}).allowed, true);
  const resources = authorizeMcpMethod(grants, 'resources/read', undefined, {});
  assert.equal(!resources.allowed && resources.reason.code, 'method_not_granted');
});

test('CEL conditions on arguments decide; an evaluation error refuses', () => {
  assert.equal(authorizeMcpMethod(grants, 'tools/call', 'update_ticket', { args: { project: 'X', priority: 1 } }).allowed, true);
  const wrongProject = authorizeMcpMethod(grants, 'tools/call', 'update_ticket', { args: { project: 'Y', priority: 1 } });
  assert.equal(!wrongProject.allowed && wrongProject.reason.code, 'condition_not_met');
  const missing = authorizeMcpMethod(grants, 'tools/call', 'update_ticket', { args: {} });
  assert.equal(!missing.allowed && missing.reason.code, 'condition_error');
});

test('a conditionally granted tool is still listed', () => {
  assert.equal(isToolVisible(grants, 'update_ticket'), true);
  assert.equal(isToolVisible(grants, 'delete_ticket'), false);
});

test('REST operations match method and path template; HEAD follows GET', () => {
  const ok = authorizeOperation(grants, 'GET', '/tickets/7', {});
  assert.equal(ok.allowed, true);
  assert.deepEqual(ok.params, { id: '7' });
  assert.equal(authorizeOperation(grants, 'HEAD', '/tickets/7', {}).allowed, true);
  const del = authorizeOperation(grants, 'DELETE', '/tickets/7', {});
  assert.equal(!del.allowed && del.reason.code, 'operation_not_granted');
  assert.equal(authorizeOperation(grants, 'POST', '/tickets', { body: { project: 'X' } }).allowed, true);
  const other = authorizeOperation(grants, 'POST', '/tickets', { body: { project: 'Z' } });
  assert.equal(!other.allowed && other.reason.code, 'condition_not_met');
});

test('a condition that does not parse is a config issue with its path', () => {
  const bad = compileGrants([{ grant: { upstream: 'u', tools: [{ name: 't', when: 'args.x ==' }], operations: [] }, path: ['personas', 2, 'grants', 1] }]);
  assert.equal(bad.issues.length, 1);
  assert.deepEqual(bad.issues[0]!.path, ['personas', 2, 'grants', 1, 'tools', 0, 'when']);
  assert.equal(bad.issues[0]!.code, 'invalid_condition');
});
