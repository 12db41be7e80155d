// The Envoy bootstraps Mandate ships protect Envoy's heap the same way: envoy/bootstrap.yaml (the
// launcher's, used by npm start and the tests) and deploy/docker/envoy-bootstrap.yaml (compose).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { defaultEnvoyMaxHeapMib } from '../config/envoy-memory.ts';
import { bootstrapPath, renderBootstrap } from '../envoy/run-envoy.ts';
import { repoRoot } from './gateway-processes.ts';

type OverloadManager = {
  refresh_interval: string;
  buffer_factory_config: { minimum_account_to_track_power_of_two: number };
  resource_monitors: { name: string; typed_config: Record<string, unknown> }[];
  actions: { name: string; triggers: { name: string; threshold?: { value: number }; scaled?: { scaling_threshold: number; saturation_threshold: number } }[] }[];
};

const launcher = parse(readFileSync(bootstrapPath, 'utf8')) as { overload_manager: OverloadManager };
const compose = parse(readFileSync(join(repoRoot, 'deploy/docker/envoy-bootstrap.yaml'), 'utf8')) as { overload_manager: OverloadManager };
const options = { xds: { address: '127.0.0.1', port: 18000 }, adminPort: 9901, nodeId: 'n' };

test('both bootstraps have the same overload manager', () => {
  assert.deepEqual(compose.overload_manager, launcher.overload_manager);
});

test('Envoy\'s heap is watched (1 GiB by default) beside the connection limit, and its actions escalate towards the limit', () => {
  const manager = launcher.overload_manager;
  assert.deepEqual(
    manager.resource_monitors.map((m) => [m.name, m.typed_config.max_heap_size_bytes ?? m.typed_config.max_active_downstream_connections]),
    [
      ['envoy.resource_monitors.global_downstream_max_connections', 50_000],
      ['envoy.resource_monitors.fixed_heap', defaultEnvoyMaxHeapMib * 1024 * 1024],
    ],
  );
  const triggers = Object.fromEntries(manager.actions.map((a) => [a.name, a.triggers]));
  const heap = 'envoy.resource_monitors.fixed_heap';
  assert.deepEqual(triggers, {
    'envoy.overload_actions.reset_high_memory_stream': [{ name: heap, scaled: { scaling_threshold: 0.85, saturation_threshold: 0.95 } }],
    'envoy.overload_actions.shrink_heap': [{ name: heap, threshold: { value: 0.9 } }],
    'envoy.overload_actions.disable_http_keepalive': [{ name: heap, threshold: { value: 0.92 } }],
    'envoy.overload_actions.stop_accepting_requests': [{ name: heap, threshold: { value: 0.95 } }],
  });
  // Resetting the streams that hold the most needs their buffers counted: from 1 MiB.
  assert.equal(manager.buffer_factory_config.minimum_account_to_track_power_of_two, 20);
});

test('the launcher writes MANDATE_ENVOY_MAX_HEAP_MIB into the fixed_heap monitor and leaves the rest as it is', () => {
  const monitors = (bootstrap: Record<string, unknown>) => (bootstrap.overload_manager as OverloadManager).resource_monitors;
  assert.deepEqual(monitors(renderBootstrap(options)), launcher.overload_manager.resource_monitors);
  const rendered = renderBootstrap({ ...options, maxHeapBytes: 512 * 1024 * 1024 });
  assert.equal(monitors(rendered).find((m) => m.name === 'envoy.resource_monitors.fixed_heap')!.typed_config.max_heap_size_bytes, 512 * 1024 * 1024);
  assert.deepEqual(monitors(rendered)[0], launcher.overload_manager.resource_monitors[0]);
  assert.deepEqual((rendered.overload_manager as OverloadManager).actions, launcher.overload_manager.actions);
});
