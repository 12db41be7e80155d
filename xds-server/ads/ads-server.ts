// The state-of-the-world ADS protocol: streams, nonces, ACK/NACK and per-type
// subscriptions. It only reads encoded snapshots from the cache; it never builds
// config. A NACK is recorded and shown to admins; the same version is never
// re-sent in a loop, only a newer one.
import type * as grpc from '@grpc/grpc-js';
import { pushOrder, typeUrls, type ResourceType } from '../snapshot/build-snapshot.ts';
import type { EncodedSnapshot, SnapshotCache } from '../snapshot/snapshot-cache.ts';
import type { ResourceTypeStatus, XdsNodeStatus } from './node-status.ts';

interface DiscoveryRequest {
  version_info?: string;
  node?: { id?: string; cluster?: string; user_agent_name?: string; user_agent_build_version?: { version?: { major_number?: number; minor_number?: number; patch?: number } } };
  resource_names?: string[];
  type_url?: string;
  response_nonce?: string;
  error_detail?: { code?: number; message?: string };
}

interface StreamTypeState {
  subscribed: boolean;
  names: Set<string>;
  nonce: string | null;
  sentVersion: string | null;
  /** Set when a dependent type must be answered again even at the same version (EDS after CDS, RDS after LDS). */
  mustResend: boolean;
}

const typeByUrl = new Map<string, ResourceType>(Object.entries(typeUrls).map(([type, url]) => [url, type as ResourceType]));
/** CDS and LDS are wildcard subscriptions: always the full set. */
const wildcardTypes = new Set<ResourceType>(['clusters', 'listeners']);
const dependentType: Partial<Record<ResourceType, ResourceType>> = { clusters: 'endpoints', listeners: 'routes' };
const maxRememberedNodes = 500;

export interface AdsServerOptions {
  cache: SnapshotCache;
  /** Maps an Envoy node to its node group; the group keys the snapshot. */
  nodeGroup: (node: { id: string; cluster: string }) => string;
  log: (event: string, fields: Record<string, unknown>) => void;
  clock?: () => Date;
}

export function createAdsServer(options: AdsServerOptions) {
  const clock = options.clock ?? (() => new Date());
  const statuses = new Map<string, XdsNodeStatus>();
  let nonceCounter = 0;

  function streamAggregatedResources(call: grpc.ServerDuplexStream<DiscoveryRequest, unknown>): void {
    const types = new Map<ResourceType, StreamTypeState>();
    let status: XdsNodeStatus | null = null;
    let group: string | null = null;
    let closed = false;
    let unsubscribe: (() => void) | null = null;

    const send = (type: ResourceType, snapshot: EncodedSnapshot) => {
      const state = types.get(type);
      if (!state || closed) return;
      const typeSnapshot = snapshot.types[type];
      const resources = wildcardTypes.has(type)
        ? typeSnapshot.resources
        : typeSnapshot.resources.filter((r) => state.names.has(r.name));
      nonceCounter += 1;
      state.nonce = String(nonceCounter);
      state.sentVersion = typeSnapshot.version;
      state.mustResend = false;
      call.write({ version_info: typeSnapshot.version, resources: resources.map((r) => r.any), type_url: typeUrls[type], nonce: state.nonce });
      if (status) {
        status.resources[type].sentVersion = typeSnapshot.version;
        status.configVersion = snapshot.configVersion;
      }
      const dependent = dependentType[type];
      if (dependent) {
        const dependentState = types.get(dependent);
        if (dependentState) dependentState.mustResend = true;
      }
      options.log('xds_push', { node: status?.nodeId, type, version: typeSnapshot.version, resources: resources.length, nonce: state.nonce });
    };

    /** Answer every subscribed type that is out of date, in CDS, EDS, LDS, RDS order. */
    const pushPending = (snapshot: EncodedSnapshot) => {
      for (const type of pushOrder) {
        const state = types.get(type);
        if (state?.subscribed && (state.mustResend || state.sentVersion !== snapshot.types[type].version)) send(type, snapshot);
      }
    };

    call.on('data', (request: DiscoveryRequest) => {
      try {
        if (!status) {
          const nodeId = request.node?.id;
          if (!nodeId) {
            call.emit('error', { code: 3, details: 'the first DiscoveryRequest on a stream must carry node.id' });
            return;
          }
          const nodeCluster = request.node?.cluster ?? '';
          group = options.nodeGroup({ id: nodeId, cluster: nodeCluster });
          status = newStatus(nodeId, nodeCluster, envoyVersion(request), clock());
          statuses.delete(nodeId);
          statuses.set(nodeId, status);
          trimStatuses(statuses);
          unsubscribe = options.cache.onChange((changedGroup, snapshot) => {
            if (changedGroup === group) pushPending(snapshot);
          });
          options.log('xds_stream_open', { node: nodeId, cluster: nodeCluster, group });
        }
        const type = typeByUrl.get(request.type_url ?? '');
        if (!type) {
          options.log('xds_unknown_type', { node: status.nodeId, typeUrl: request.type_url });
          return;
        }
        const state = types.get(type) ?? { subscribed: false, names: new Set<string>(), nonce: null, sentVersion: null, mustResend: false };
        types.set(type, state);
        // A request answering an older response is stale: the client has not seen our latest yet.
        if (request.response_nonce && state.nonce && request.response_nonce !== state.nonce) return;
        const typeStatus = status.resources[type];
        if (request.response_nonce && request.error_detail) {
          typeStatus.lastNack = {
            version: state.sentVersion ?? '',
            nonce: request.response_nonce,
            message: request.error_detail.message ?? '',
            at: clock().toISOString(),
          };
          options.log('xds_nack', { node: status.nodeId, type, rejectedVersion: state.sentVersion, keptVersion: request.version_info, error: request.error_detail.message });
        } else if (request.response_nonce) {
          typeStatus.ackedVersion = request.version_info ?? null;
          if (typeStatus.lastNack && typeStatus.ackedVersion === state.sentVersion) typeStatus.lastNack = null;
        }
        const names = new Set(request.resource_names ?? []);
        const namesChanged = !state.subscribed || !sameSet(names, state.names);
        state.names = names;
        state.subscribed = true;
        const snapshot = group === null ? null : options.cache.get(group);
        if (!snapshot) return;
        const stale = state.sentVersion !== snapshot.types[type].version;
        // After a NACK, only a newer version is sent; a changed subscription is always answered.
        if (namesChanged || state.mustResend || (stale && !(request.error_detail && state.sentVersion === snapshot.types[type].version))) {
          send(type, snapshot);
        }
      } catch (error) {
        options.log('xds_stream_error', { node: status?.nodeId, error: (error as Error).message });
      }
    });

    const close = () => {
      if (closed) return;
      closed = true;
      unsubscribe?.();
      if (status) {
        status.connected = false;
        status.disconnectedAt = clock().toISOString();
        options.log('xds_stream_closed', { node: status.nodeId });
      }
    };
    call.on('end', () => {
      close();
      call.end();
    });
    call.on('cancelled', close);
    call.on('error', close);
    call.on('close', close);
  }

  function deltaAggregatedResources(call: grpc.ServerDuplexStream<unknown, unknown>): void {
    call.emit('error', { code: 12, details: 'Mandate serves state-of-the-world ADS (api_type: GRPC); delta xDS is not supported yet' });
  }

  return {
    implementation: { StreamAggregatedResources: streamAggregatedResources, DeltaAggregatedResources: deltaAggregatedResources },
    nodeStatuses(): XdsNodeStatus[] {
      return [...statuses.values()].map((s) => structuredClone(s));
    },
  };
}

function newStatus(nodeId: string, nodeCluster: string, version: string | null, now: Date): XdsNodeStatus {
  const empty = (): ResourceTypeStatus => ({ sentVersion: null, ackedVersion: null, lastNack: null });
  return {
    nodeId,
    nodeCluster,
    envoyVersion: version,
    connected: true,
    connectedAt: now.toISOString(),
    disconnectedAt: null,
    configVersion: null,
    resources: { clusters: empty(), endpoints: empty(), listeners: empty(), routes: empty() },
  };
}

function envoyVersion(request: DiscoveryRequest): string | null {
  const v = request.node?.user_agent_build_version?.version;
  return v ? `${v.major_number ?? 0}.${v.minor_number ?? 0}.${v.patch ?? 0}` : null;
}

function sameSet(a: Set<string>, b: Set<string>): boolean {
  if (a.size !== b.size) return false;
  for (const x of a) if (!b.has(x)) return false;
  return true;
}

function trimStatuses(statuses: Map<string, XdsNodeStatus>): void {
  for (const [id, s] of statuses) {
    if (statuses.size <= maxRememberedNodes) break;
    if (!s.connected) statuses.delete(id);
  }
}
