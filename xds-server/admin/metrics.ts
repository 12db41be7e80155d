// The control plane's Prometheus metrics (GET /metrics on the admin listener): the
// config version it serves, each Envoy's state (connected, the version last sent, a
// NACK outstanding per resource type), the ext_proc replicas following the policy
// stream, replication over NATS when scaled out, and admin API answers by status.
// Labels are bounded: node ids (the fleet), resource types, methods, status codes.
import { metricFamily } from '../../config/prometheus-text.ts';
import type { XdsNodeStatus } from '../ads/node-status.ts';
import type { ReplicationStatus } from './api-schemas.ts';

export interface ControlPlaneMetricsInput {
  configVersion: number;
  nodes: XdsNodeStatus[];
  policyStreams: number;
  replication: ReplicationStatus | null;
  /** Admin API answers so far, by method and status code. */
  adminResponses: ReadonlyMap<string, { method: string; status: number; count: number }>;
}

export function renderControlPlaneMetrics(input: ControlPlaneMetricsInput): string {
  const connected = input.nodes.filter((n) => n.connected);
  const lines = [
    ...metricFamily('mandate_config_version', 'gauge', 'Config version this control plane serves.', [[{}, input.configVersion]]),
    ...metricFamily('mandate_xds_nodes', 'gauge', 'Envoy nodes known to this control plane, by connection state.', [
      [{ state: 'connected' }, connected.length],
      [{ state: 'disconnected' }, input.nodes.length - connected.length],
    ]),
    ...metricFamily(
      'mandate_xds_node_config_version',
      'gauge',
      'Config version last sent to each connected Envoy node; below mandate_config_version, the node is behind.',
      connected.map((n) => [{ node: n.nodeId }, n.configVersion ?? 0]),
    ),
    ...metricFamily(
      'mandate_xds_node_nacked',
      'gauge',
      'Whether a connected Envoy node rejects the resources of a type it was last sent (1), by node and type.',
      connected.flatMap((n) => Object.entries(n.resources).map(([type, status]): [Record<string, string>, number] => [{ node: n.nodeId, type }, status.lastNack ? 1 : 0])),
    ),
    ...metricFamily('mandate_policy_streams', 'gauge', 'ext_proc replicas following the policy stream.', [[{}, input.policyStreams]]),
    ...metricFamily(
      'mandate_admin_responses_total',
      'counter',
      'Admin API answers, by method and status code.',
      [...input.adminResponses.values()].map((r) => [{ method: r.method, status: String(r.status) }, r.count]),
    ),
  ];
  if (input.replication) {
    lines.push(
      ...metricFamily('mandate_config_replication_connected', 'gauge', 'Connected to NATS and synchronised: writes can be shared (1).', [[{}, input.replication.connected ? 1 : 0]]),
      ...metricFamily('mandate_config_replication_halted', 'gauge', 'Stopped applying the shared history (1): see /v1/status replication.halted.', [[{}, input.replication.halted ? 1 : 0]]),
      ...metricFamily('mandate_config_replication_stream_sequence', 'gauge', 'Sequence of the last revision applied from the shared stream.', [[{}, input.replication.streamSequence]]),
    );
  }
  return `${lines.join('\n')}\n`;
}
