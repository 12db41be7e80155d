import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compilePathTemplate, normaliseRequestPath } from './path-template.ts';

test('templates match literal and parameter segments exactly', () => {
  const t = compilePathTemplate('/tickets/{id}/comments');
  assert.deepEqual(t.match('/tickets/42/comments'), { id: '42' });
  assert.deepEqual(t.match('/tickets/42/comments/'), { id: '42' });
  assert.equal(t.match('/tickets/42'), null);
  assert.equal(t.match('/tickets/42/comments/7'), null);
  assert.equal(t.match('/tickets//comments'), null);
});

test('a parameter is one segment: an encoded slash does not widen it', () => {
  const t = compilePathTemplate('/files/{name}');
  assert.deepEqual(t.match('/files/a%20b'), { name: 'a b' });
  assert.equal(t.match('/files/a%2Fb'), null);
});

test('a trailing {rest*} takes the remainder', () => {
  const t = compilePathTemplate('/repos/{owner}/{path*}');
  assert.deepEqual(t.match('/repos/acme/src/main.ts'), { owner: 'acme', path: 'src/main.ts' });
  assert.equal(t.match('/repos/acme'), null);
});

test('request paths with dot segments or bad encoding are refused before matching', () => {
  assert.equal(normaliseRequestPath('/tickets/../admin'), null);
  assert.equal(normaliseRequestPath('/tickets/%2e%2e/admin'), null);
  assert.equal(normaliseRequestPath('/tickets/%zz'), null);
  assert.equal(normaliseRequestPath('/a\\b'), null);
  assert.equal(normaliseRequestPath('//tickets///1?x=1'), '/tickets/1');
  // Dot segments behind encoded slashes climb out on upstreams that decode before routing; an encoded slash alone is data.
  assert.equal(normaliseRequestPath('/tickets/..%2F..%2Fadmin'), null);
  assert.equal(normaliseRequestPath('/tickets/x%2F.%2Fy'), null);
  assert.equal(normaliseRequestPath('/tickets/%2e%2e%2fadmin'), null);
  assert.equal(normaliseRequestPath('/tickets/%5C..'), null);
  assert.equal(normaliseRequestPath('/projects/group%2Fproject/issues'), '/projects/group%2Fproject/issues');
  assert.equal(normaliseRequestPath('/files/v1..2'), '/files/v1..2');
});
