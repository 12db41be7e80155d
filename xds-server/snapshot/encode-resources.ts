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
const wrapperTypes = new Set(
  ['Bool', 'UInt32', 'UInt64', 'Int32', 'Int64', 'Double', 'Float', 'String', 'Bytes'].map((t) => `.google.protobuf.${t}Value`),
);

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

  /**
   * Checks every field against the descriptors and normalises two conveniences:
   * a primitive where a wrapper message is expected (BoolValue, UInt32Value...)
   * becomes {value}, and a plain object for a map field becomes its entry list
   * (descriptor-built roots represent maps as repeated *Entry messages).
   */
  const normalise = (type: protobuf.Type, value: unknown, path: string): unknown => {
    if (freeFormTypes.has(type.fullName)) return value;
    if (wrapperTypes.has(type.fullName) && (typeof value !== 'object' || value === null)) return { value };
    if (type.fullName === '.google.protobuf.Any') {
      const typeUrl = (value as Record<string, unknown>)?.['@type'];
      if (typeof typeUrl !== 'string') throw new Error(`${path}: an Any needs "@type"`);
      const { ['@type']: _ignored, ...rest } = value as Record<string, unknown>;
      return { '@type': typeUrl, ...(normalise(lookup(typeUrl, path), rest, path) as Record<string, unknown>) };
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw new Error(`${path}: expected an object for ${type.fullName.slice(1)}`);
    }
    const out: Record<string, unknown> = {};
    for (const [key, fieldValue] of Object.entries(value)) {
      const field = type.fields[key];
      if (!field) throw new Error(`${path}.${key}: no such field in ${type.fullName.slice(1)}`);
      field.resolve();
      const fieldType = field.resolvedType;
      if (!(fieldType instanceof protobuf.Type)) {
        out[key] = fieldValue;
        continue;
      }
      if (!field.repeated) {
        out[key] = normalise(fieldType, fieldValue, `${path}.${key}`);
        continue;
      }
      const isMapEntry = fieldType.options?.map_entry === true || (fieldType.name.endsWith('Entry') && fieldType.fields.key !== undefined && fieldType.fields.value !== undefined);
      const items = isMapEntry && !Array.isArray(fieldValue) ? Object.entries(fieldValue as Record<string, unknown>).map(([k, v]) => ({ key: k, value: v })) : fieldValue;
      if (!Array.isArray(items)) throw new Error(`${path}.${key}: expected a list`);
      out[key] = items.map((item, index) => normalise(fieldType, item, `${path}.${key}[${index}]`));
    }
    return out;
  };

  return function encode(resourceType: ResourceType, resource: ResourceObject): EncodedResource {
    const typeUrl = typeUrls[resourceType];
    const type = lookup(typeUrl, resourceType);
    const name = String(resource.name ?? resource.cluster_name ?? '');
    const normalised = normalise(type, resource, `${resourceType}[${name}]`) as Record<string, unknown>;
    const value = Buffer.from(type.encode(type.fromObject(normalised)).finish());
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
