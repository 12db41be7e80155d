import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InspectionOverBudget, isOverBudget, setInspectionBudget, withInspectionBudget, inspectionBudgetMs } from './budget.ts';
import { compileDataProtection } from './compile.ts';
import { inspectBody } from './inspect.ts';
import { randomPrintable } from '../../test/support/random-text.ts';

const compiled = compileDataProtection({} as never);
const context = { direction: 'request' as const, upstream: 'u' };


test('an inspection that outlasts its budget stops with InspectionOverBudget; the next one starts afresh', () => {
  const before = inspectionBudgetMs();
  try {
    setInspectionBudget(1);
    assert.throws(() => inspectBody(compiled, randomPrintable(256 * 1024, 1), context), (error: unknown) => error instanceof InspectionOverBudget && isOverBudget(error) && error.budgetMs === 1);
    setInspectionBudget(Infinity);
    const r = inspectBody(compiled, Buffer.from('{"note":"card 4111 1111 1111 1111"}'), context);
    assert.equal(r.findings.length, 1, 'no deadline left behind');
  } finally {
    setInspectionBudget(before);
  }
  assert.throws(() => setInspectionBudget(0), RangeError);
  assert.throws(() => setInspectionBudget(Number.NaN), RangeError);
});

test('a nested inspection keeps the outer deadline; an error carried across a thread is still a spent budget', () => {
  let inner = 0;
  withInspectionBudget(() => {
    withInspectionBudget(() => inner++, 1_000_000);
  }, 50);
  assert.equal(inner, 1);
  assert.ok(isOverBudget({ code: 'inspection_over_budget' }));
  assert.ok(!isOverBudget(new Error('inspection_over_budget')));
});
