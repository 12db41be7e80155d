// Wires the control plane together: store -> snapshot builder -> snapshot cache
// -> ADS server, plus the admin API. Each piece is separate; this only connects them.
// Scaled out (options.replication), the admin API writes through the replicated
// store, and revisions from other replicas reach the snapshot through the same onChange.
import * as grpc from '@grpc/grpc-js';
import { mkdirSync } from 'node:fs';
import type { Server as HttpServer } from 'node:http';
import { join } from 'node:path';
import { loadEnvoyApi } from '../proto/envoy-api.ts';
import { createAdsServer } from './ads/ads-server.ts';
import { createAdminServer } from './admin/admin-server.ts';
import { watchAdminIdentities } from './admin/admin-identities.ts';
import { ensureSecretFile } from './admin/tokens.ts';
import { configuredToken } from '../config/configured-token.ts';
import { grpcServerCredentials, readTlsFile, type ServerTlsFiles } from '../config/grpc-tls.ts';
import { buildSnapshot, type GatewaySettings } from './snapshot/build-snapshot.ts';
import { createResourceEncoder } from './snapshot/encode-resources.ts';
import { createSnapshotCache } from './snapshot/snapshot-cache.ts';
import { describeNatsSettings, type NatsSettings } from '../config/nats-connection.ts';
import { startConfigReplication, type ReplicatedConfigStore } from './replication/config-replication.ts';
import { openConfigStore, type ConfigStore } from './store/config-store.ts';
import type { PolicySnapshot } from '../config/bundle.ts';

export interface ControlPlaneOptions {
  dataDir: string;
  xds: { address: string; port: number };
  admin: { address: string; port: number };
  gateway: GatewaySettings;
  log: (event: string, fields: Record<string, unknown>) => void;
  env?: Record<string, string | undefined>;
  /** Scaled out: share the config with the other control-plane replicas over NATS JetStream. */
  replication?: ControlPlaneReplication;
  /** TLS on the ADS server (MANDATE_XDS_TLS_*); null or absent: plain gRPC. */
  xdsTls?: ServerTlsFiles | null;
  /** HTTPS on the admin listener (MANDATE_ADMIN_TLS_*), which also carries the policy stream; null or absent: HTTP. */
  adminTls?: ServerTlsFiles | null;
}

export interface ControlPlaneReplication {
  /** The NATS servers, credentials and TLS (MANDATE_NATS_*). */
  nats: NatsSettings;
  replicaId: string;
  /** JetStream replicas of the config stream when this control plane creates it. */
  streamReplicas?: number;
}

export interface ControlPlane {
  store: ConfigStore;
  /** Scaled out only. */
  replication: ReplicatedConfigStore | null;
  adminToken: string;
  /** The data dir's token file, or null when the token came from MANDATE_ADMIN_TOKEN(_FILE). */
  adminTokenPath: string | null;
  xdsPort: number;
  adminPort: number;
  stop(): Promise<void>;
}

/** All Envoy nodes share one snapshot group until fleet node groups arrive. */
const gatewayGroup = 'gateway';

export async function startControlPlane(options: ControlPlaneOptions): Promise<ControlPlane> {
  const { log } = options;
  const env = options.env ?? process.env;
  // The data directory is the control plane's own (0700: it holds the admin token and the config).
  mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
  const store = openConfigStore({ path: join(options.dataDir, 'config.db'), env });
  // Tokens an operator gives (the same on every replica behind one address), else the data dir's own.
  const givenAdminToken = configuredToken(env, 'MANDATE_ADMIN_TOKEN');
  const givenInternalToken = configuredToken(env, 'MANDATE_INTERNAL_TOKEN');
  const adminTokenPath = givenAdminToken === null ? join(options.dataDir, 'admin-token') : null;
  const adminToken = givenAdminToken ?? ensureSecretFile(adminTokenPath!);
  const internalToken = givenInternalToken ?? ensureSecretFile(join(options.dataDir, 'internal-token'));
  // Named admins with their own tokens and roles; a file that does not parse stops startup.
  const namedAdmins = env.MANDATE_ADMIN_TOKENS_FILE ? watchAdminIdentities(env.MANDATE_ADMIN_TOKENS_FILE, log) : null;

  const api = loadEnvoyApi();
  const cache = createSnapshotCache(createResourceEncoder(api.root));
  const rebuild = (policy: PolicySnapshot) => {
    try {
      const encoded = cache.set(gatewayGroup, buildSnapshot(policy, options.gateway));
      log('snapshot_built', { configVersion: encoded.configVersion, versions: Object.fromEntries(Object.entries(encoded.types).map(([t, s]) => [t, s.version])) });
    } catch (error) {
      log('snapshot_build_failed', { configVersion: policy.version, error: (error as Error).message });
    }
  };
  const unsubscribe = store.onChange(rebuild);
  let replication: ReplicatedConfigStore | null = null;
  if (options.replication) {
    const { nats, replicaId, streamReplicas } = options.replication;
    try {
      // Catches up before ADS and the admin API listen, so nothing serves an old version first when NATS is up.
      replication = await startConfigReplication({ store, nats, replicaId, log, env, ...(streamReplicas ? { streamReplicas } : {}) });
    } catch (error) {
      unsubscribe();
      store.close();
      throw error;
    }
  }
  rebuild(store.current());

  const ads = createAdsServer({ cache, nodeGroup: () => gatewayGroup, log });
  const grpcServer = new grpc.Server({ 'grpc.max_send_message_length': 64 * 1024 * 1024, 'grpc.keepalive_permit_without_calls': 1 });
  grpcServer.addService(api.adsService, ads.implementation as unknown as grpc.UntypedServiceImplementation);
  const xdsPort = await new Promise<number>((resolve, reject) =>
    grpcServer.bindAsync(`${options.xds.address}:${options.xds.port}`, grpcServerCredentials(options.xdsTls ?? null), (error, port) => (error ? reject(error) : resolve(port))),
  );

  const admin: HttpServer = createAdminServer({
    store: replication ?? store,
    adminToken,
    ...(namedAdmins ? { namedAdmins } : {}),
    internalToken,
    xdsStatus: ads.nodeStatuses,
    ...(replication ? { replicationStatus: replication.status } : {}),
    log: (line) => log('admin', { line }),
    ...(options.adminTls ? { tls: readKeyPair(options.adminTls) } : {}),
  });
  await new Promise<void>((resolve, reject) => {
    admin.once('error', reject);
    admin.listen(options.admin.port, options.admin.address, () => resolve());
  });
  const address = admin.address();
  const adminPort = typeof address === 'object' && address ? address.port : options.admin.port;
  log('control_plane_ready', {
    xds: `${options.xds.address}:${xdsPort}`,
    admin: `${options.adminTls ? 'https' : 'http'}://${options.admin.address}:${adminPort}`,
    adminTokenFrom: adminTokenPath ?? (env.MANDATE_ADMIN_TOKEN ? 'MANDATE_ADMIN_TOKEN' : 'MANDATE_ADMIN_TOKEN_FILE'),
    configVersion: store.current().version,
    ...(replication ? { replica: options.replication!.replicaId, nats: describeNatsSettings(options.replication!.nats) } : {}),
  });

  return {
    store,
    replication,
    adminToken,
    adminTokenPath,
    xdsPort,
    adminPort,
    async stop() {
      unsubscribe();
      admin.closeAllConnections?.();
      await new Promise<void>((resolve) => admin.close(() => resolve()));
      grpcServer.forceShutdown();
      await replication?.stop();
      store.close();
    },
  };
}

/** The admin listener's certificate and key; clients cannot be asked for certificates (ext_proc's fetch presents none). */
function readKeyPair(tls: ServerTlsFiles): { cert: Buffer; key: Buffer } {
  if (tls.clientCaFile !== null) throw new Error('MANDATE_ADMIN_TLS_CLIENT_CA_FILE is not supported: ext_proc follows the policy stream without a client certificate; the internal token authenticates it');
  return { cert: readTlsFile(tls.certFile, 'certificate'), key: readTlsFile(tls.keyFile, 'key') };
}
