import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from './cli.ts';

test('dlp catalogue lists every detector, as a table or JSON', async () => {
  const lines: string[] = [];
  assert.equal(await run(['catalogue', '--json'], (l) => lines.push(l)), 0);
  const detectors = JSON.parse(lines.join('\n')) as { id: string; validation: string }[];
  assert.ok(detectors.length >= 200);
  // what a validator proves, as the detector's definition states it (not read from its description)
  const validation = Object.fromEntries(detectors.map((d) => [d.id, d.validation]));
  assert.deepEqual([validation['payment-card-visa'], validation['us-ein'], validation['uk-nino']], ['checksum', 'structure', 'format']);
  const table: string[] = [];
  await run(['catalogue'], (l) => table.push(l));
  assert.equal(table.filter((l) => l.startsWith('| ') && !l.startsWith('| id | group |')).length, detectors.length);
});

test('dlp catalogue narrows to a group or a profile; unknown names and options are usage errors', async () => {
  const lines: string[] = [];
  assert.equal(await run(['catalogue', '--group', 'financial', '--profile', 'pci-dss', '--json'], (l) => lines.push(l)), 0);
  const detectors = JSON.parse(lines.join('\n')) as { id: string; group: string; profiles: string[] }[];
  assert.ok(detectors.length > 0 && detectors.some((d) => d.id === 'payment-card-visa'));
  assert.ok(detectors.every((d) => d.group === 'financial' && d.profiles.includes('pci-dss')));
  const errors: string[] = [];
  assert.equal(await run(['catalogue', '--group', 'snacks'], (l) => errors.push(l)), 2);
  assert.match(errors[0]!, /unknown group "snacks"; one of: .*financial/);
  assert.equal(await run(['catalogue', '--profile'], () => undefined), 2);
  assert.equal(await run(['catalogue', '--colour'], () => undefined), 2);
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
