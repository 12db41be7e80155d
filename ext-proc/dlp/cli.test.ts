import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from './cli.ts';

test('dlp catalogue lists every detector, as a table or JSON', async () => {
  const lines: string[] = [];
  assert.equal(await run(['catalogue', '--json'], (l) => lines.push(l)), 0);
  const detectors = JSON.parse(lines.join('\n')) as { id: string }[];
  assert.ok(detectors.length >= 200);
  const table: string[] = [];
  await run(['catalogue'], (l) => table.push(l));
  assert.equal(table.filter((l) => l.startsWith('| ') && !l.startsWith('| id | group |')).length, detectors.length);
});

test('dlp scan reports findings with locations and no values; exit code 1 when something is found', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dlp-cli-'));
  try {
    const file = join(dir, 'result.json');
    writeFileSync(file, JSON.stringify({ rows: [{ card: '4111111111111111' }, { email: 'a.b@example.org' }] }));
    const out: string[] = [];
    assert.equal(await run(['scan', file], (l) => out.push(l)), 1);
    assert.ok(out.some((l) => l.startsWith('$.rows[0].card\tpayment-card-visa')));
    assert.ok(!out.join('\n').includes('4111111111111111'));
    writeFileSync(file, '{"ok": true}');
    assert.equal(await run(['scan', file], () => undefined), 0);
    assert.equal(await run(['scan'], () => undefined), 2);
  } finally {
    rmSync(dir, { recursive: true });
  }
});
