// Loads the Envoy API descriptor image built by proto/build.sh, once per process.
// Two views of the same descriptors: gRPC service definitions (for the ext_proc
// and ADS servers) and a protobufjs Root (for encoding xDS resources into Any).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as protoLoader from '@grpc/proto-loader';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import descriptorExtension from 'protobufjs/ext/descriptor/index.js';

export const descriptorImagePath = fileURLToPath(new URL('./gen/envoy.binpb', import.meta.url));

/** Object shapes of this load path: snake_case fields, enums as strings, 64-bit as strings, map fields as {key,value} arrays. */
export const protoLoaderOptions: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: false,
  oneofs: true,
};

export interface EnvoyApi {
  extProcService: grpc.ServiceDefinition;
  adsService: grpc.ServiceDefinition;
  root: protobuf.Root;
}

export function loadEnvoyApi(path: string = descriptorImagePath): EnvoyApi {
  let image: Buffer;
  try {
    image = readFileSync(path);
  } catch (error) {
    throw new Error(`Envoy API descriptor image not found at ${path}; run "sh deploy/bootstrap.sh true" to build it (${(error as Error).message})`);
  }
  const definition = protoLoader.loadFileDescriptorSetFromBuffer(image, protoLoaderOptions);
  const grpcObject = grpc.loadPackageDefinition(definition);
  const service = (dotted: string): grpc.ServiceDefinition => {
    const found = dotted.split('.').reduce<unknown>((node, part) => (node as Record<string, unknown>)?.[part], grpcObject) as
      | { service?: grpc.ServiceDefinition }
      | undefined;
    if (!found?.service) throw new Error(`service ${dotted} is missing from the Envoy API image`);
    return found.service;
  };
  const descriptorSet = (descriptorExtension as unknown as { FileDescriptorSet: protobuf.Type }).FileDescriptorSet.decode(image);
  const root = (protobuf.Root as unknown as { fromDescriptor(set: unknown): protobuf.Root }).fromDescriptor(descriptorSet);
  root.resolveAll();
  return {
    extProcService: service('envoy.service.ext_proc.v3.ExternalProcessor'),
    adsService: service('envoy.service.discovery.v3.AggregatedDiscoveryService'),
    root,
  };
}
