// Encodes resource objects into protobuf Any values. protobufjs silently drops
// fields it does not know, so every object is first checked against the Envoy
// descriptors: a misspelt field fails here with its path, not later in Envoy.
import { createHash } from 'node:crypto';
import protobuf from 'protobufjs';
import { typeUrls, type ResourceObject, type ResourceType } from './build-snapshot.ts';

export interface EncodedResource {
  name: string;
  any: { type_url: string; value: Buffer };
}

const freeFormTypes = new Set(['.google.protobuf.Struct', '.google.protobuf.Value', '.google.protobuf.ListValue']);

export function createResourceEncoder(root: protobuf.Root) {
  const typeCache = new Map<string, protobuf.Type>();
  const lookup = (typeUrl: string, path: string): protobuf.Type => {
    let type = typeCache.get(typeUrl);
    if (!type) {
      const name = typeUrl.slice(typeUrl.lastIndexOf('/') + 1);
      try {
        type = root.lookupType(name);
      } catch {
        throw new Error(`${path}: type ${name} is not in the Envoy API image (add its file to proto/descriptor-dump)`);
      }
      typeCache.set(typeUrl, type);
    }
    return type;
  };

  const check = (type: protobuf.Type, value: unknown, path: string): void => {
    if (freeFormTypes.has(type.fullName)) return;
    if (type.fullName === '.google.protobuf.Any') {
      const typeUrl = (value as Record<string, unknown>)['@type'];
      if (typeof typeUrl !== 'string') throw new Error(`${path}: an Any needs "@type"`);
      const { ['@type']: _ignored, ...rest } = value as Record<string, unknown>;
      check(lookup(typeUrl, path), rest, path);
      return;
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw new Error(`${path}: expected an object for ${type.fullName}`);
    }
    for (const [key, fieldValue] of Object.entries(value)) {
      if (key === '@type') continue;
      const field = type.fields[key];
      if (!field) throw new Error(`${path}.${key}: no such field in ${type.fullName.slice(1)}`);
      field.resolve();
      if (!(field.resolvedType instanceof protobuf.Type)) continue;
      const items = field.map
        ? Object.values(fieldValue as Record<string, unknown>)
        : field.repeated
          ? (fieldValue as unknown[])
          : [fieldValue];
      items.forEach((item, index) => check(field.resolvedType as protobuf.Type, item, field.repeated ? `${path}.${key}[${index}]` : `${path}.${key}`));
    }
  };

  return function encode(resourceType: ResourceType, resource: ResourceObject): EncodedResource {
    const typeUrl = typeUrls[resourceType];
    const type = lookup(typeUrl, resourceType);
    const name = String(resource.name ?? resource.cluster_name ?? '');
    check(type, resource, `${resourceType}[${name}]`);
    const value = Buffer.from(type.encode(type.fromObject(resource)).finish());
    return { name, any: { type_url: typeUrl, value } };
  };
}

export function digestResources(resources: EncodedResource[]): string {
  const hash = createHash('sha256');
  for (const r of [...resources].sort((a, b) => a.name.localeCompare(b.name))) {
    hash.update(r.name).update('\0').update(r.any.value).update('\0');
  }
  return hash.digest('hex').slice(0, 12);
}
