import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { startControlPlane } from './control-plane.ts';
import { defaultGatewaySettings } from './snapshot/build-snapshot.ts';

test('a data directory that does not exist yet is created, private to the control plane', async () => {
  const parent = mkdtempSync(join(tmpdir(), 'mandate-cp-'));
  const dataDir = join(parent, 'nested', 'data');
  try {
    const controlPlane = await startControlPlane({ dataDir, xds: { address: '127.0.0.1', port: 0 }, admin: { address: '127.0.0.1', port: 0 }, gateway: defaultGatewaySettings, log: () => {}, env: {} });
    try {
      assert.equal(statSync(dataDir).mode & 0o777, 0o700);
      assert.ok(statSync(join(dataDir, 'config.db')).isFile());
      const status = await fetch(`http://127.0.0.1:${controlPlane.adminPort}/v1/status`, { headers: { authorization: `Bearer ${controlPlane.adminToken}` } });
      assert.equal(status.status, 200);
      assert.equal(((await status.json()) as { configVersion: number }).configVersion, 1);
    } finally {
      await controlPlane.stop();
    }
  } finally {
    rmSync(parent, { recursive: true, force: true });
  }
});
