// Holds the current encoded snapshot per node group. Versions are per resource
// type and change only when that type's content changes, so an edit to one
// Persona's routes does not make Envoy re-warm clusters or listeners.
import { pushOrder, type ResourceType, type XdsSnapshot } from './build-snapshot.ts';
import { digestResources, type EncodedResource } from './encode-resources.ts';

export interface EncodedTypeSnapshot {
  version: string;
  resources: EncodedResource[];
}

export interface EncodedSnapshot {
  configVersion: number;
  types: Record<ResourceType, EncodedTypeSnapshot>;
}

export type Encoder = (type: ResourceType, resource: XdsSnapshot['resources'][ResourceType][number]) => EncodedResource;

export interface SnapshotCache {
  /** Encodes and stores a snapshot for the group; throws (and keeps the old one) if a resource does not encode. */
  set(group: string, snapshot: XdsSnapshot): EncodedSnapshot;
  get(group: string): EncodedSnapshot | null;
  onChange(listener: (group: string, snapshot: EncodedSnapshot) => void): () => void;
}

export function createSnapshotCache(encode: Encoder): SnapshotCache {
  const byGroup = new Map<string, EncodedSnapshot>();
  const listeners = new Set<(group: string, snapshot: EncodedSnapshot) => void>();
  return {
    set(group, snapshot) {
      const previous = byGroup.get(group);
      const types = {} as Record<ResourceType, EncodedTypeSnapshot>;
      for (const type of pushOrder) {
        const resources = snapshot.resources[type].map((r) => encode(type, r));
        const digest = digestResources(resources);
        const old = previous?.types[type];
        const unchanged = old !== undefined && old.version.endsWith(`.${digest}`);
        types[type] = { version: unchanged ? old.version : `${snapshot.configVersion}.${digest}`, resources };
      }
      const encoded: EncodedSnapshot = { configVersion: snapshot.configVersion, types };
      byGroup.set(group, encoded);
      for (const listener of listeners) listener(group, encoded);
      return encoded;
    },
    get(group) {
      return byGroup.get(group) ?? null;
    },
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}
