// What the control plane knows about each connected Envoy: per resource type,
// the version last sent, the version last ACKed, and the last NACK with Envoy's error.

export type ResourceTypeName = 'clusters' | 'endpoints' | 'listeners' | 'routes';

export interface NackRecord {
  version: string;
  nonce: string;
  message: string;
  at: string;
}

export interface ResourceTypeStatus {
  sentVersion: string | null;
  ackedVersion: string | null;
  /** The most recent NACK; cleared when a later version is ACKed. */
  lastNack: NackRecord | null;
}

export interface XdsNodeStatus {
  nodeId: string;
  nodeCluster: string;
  envoyVersion: string | null;
  connected: boolean;
  connectedAt: string;
  disconnectedAt: string | null;
  /** Config version of the snapshot this node was last sent. */
  configVersion: number | null;
  resources: Record<ResourceTypeName, ResourceTypeStatus>;
}
