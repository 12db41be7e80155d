import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseHostPort } from './service-process.ts';

test('host:port settings are checked and name the variable at fault', () => {
  assert.deepEqual(parseHostPort('127.0.0.1:9002', 'X'), { address: '127.0.0.1', port: 9002 });
  assert.deepEqual(parseHostPort('[::1]:80', 'X'), { address: '::1', port: 80 });
  assert.throws(() => parseHostPort('localhost', 'MANDATE_XDS_LISTEN'), /MANDATE_XDS_LISTEN="localhost" is not host:port/);
  assert.throws(() => parseHostPort('h:70000', 'X'), /not host:port/);
});

test('a process with a bad setting exits 1 with one start_failed line naming it', async () => {
  const main = fileURLToPath(new URL('../xds-server/main.ts', import.meta.url));
  const dataDir = mkdtempSync(join(tmpdir(), 'mandate-bad-env-'));
  const env = { ...process.env, MANDATE_DATA_DIR: dataDir, MANDATE_XDS_LISTEN: 'nowhere' };
  const result = await new Promise<{ code: number; stdout: string }>((resolve) =>
    execFile(process.execPath, [main], { env }, (error, stdout) => resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout })),
  );
  rmSync(dataDir, { recursive: true, force: true });
  assert.equal(result.code, 1);
  const line = JSON.parse(result.stdout.trim().split('\n').at(-1)!) as { component: string; event: string; error: string };
  assert.equal(line.component, 'xds-server');
  assert.equal(line.event, 'start_failed');
  assert.match(line.error, /MANDATE_XDS_LISTEN="nowhere" is not host:port/);
});
