// Gateway settings from the environment, validated with a clear message per variable.
import { hostname } from 'node:os';
import { extProcMaxMessageWaitMs } from '../config/ext-proc-wait.ts';
import { envoyChannelTlsFromEnv, serverTlsFromEnv } from '../config/grpc-tls.ts';
import { natsSettingsFromEnv } from '../config/nats-connection.ts';
import { parseHostPort } from '../config/service-process.ts';
import type { ControlPlaneReplication } from './control-plane.ts';
import { defaultGatewaySettings, type GatewaySettings } from './snapshot/build-snapshot.ts';

export function parseGatewaySettings(env: Record<string, string | undefined>): GatewaySettings {
  const hops = Number(env.MANDATE_TRUSTED_PROXY_HOPS ?? defaultGatewaySettings.trustedProxyHops);
  if (!Number.isInteger(hops) || hops < 0 || hops > 10) throw new Error(`MANDATE_TRUSTED_PROXY_HOPS must be an integer 0-10`);
  const timeout = messageTimeoutSetting(env);
  const requestHeadersTimeoutMs = timeoutSetting(env, 'MANDATE_GATEWAY_REQUEST_HEADERS_TIMEOUT_MS', defaultGatewaySettings.requestHeadersTimeoutMs);
  const requestTimeoutMs = timeoutSetting(env, 'MANDATE_GATEWAY_REQUEST_TIMEOUT_MS', defaultGatewaySettings.requestTimeoutMs);
  const upstreamCaFile = env.MANDATE_UPSTREAM_CA_FILE?.trim() || defaultGatewaySettings.upstreamCaFile;
  if (!upstreamCaFile.startsWith('/')) throw new Error('MANDATE_UPSTREAM_CA_FILE must be an absolute path (on the Envoy hosts)');
  return {
    // TLS for agents: MANDATE_GATEWAY_TLS_CERT_FILE and _KEY_FILE, and _CLIENT_CA_FILE for mutual TLS.
    listenerTls: serverTlsFromEnv(env, 'MANDATE_GATEWAY_TLS'),
    extProcTls: envoyChannelTlsFromEnv(env, 'MANDATE_ENVOY_EXT_PROC'),
    listener: env.MANDATE_GATEWAY_LISTEN ? parseHostPort(env.MANDATE_GATEWAY_LISTEN, 'MANDATE_GATEWAY_LISTEN') : defaultGatewaySettings.listener,
    extProcEndpoints: env.MANDATE_EXT_PROC_ENDPOINTS
      ? env.MANDATE_EXT_PROC_ENDPOINTS.split(',').map((e) => parseHostPort(e, 'MANDATE_EXT_PROC_ENDPOINTS'))
      : defaultGatewaySettings.extProcEndpoints,
    messageTimeoutMs: timeout,
    requestHeadersTimeoutMs,
    requestTimeoutMs,
    trustedProxyHops: hops,
    upstreamCaFile,
  };
}

/**
 * How long Envoy waits for ext_proc on a message: at most its max_message_timeout, the ceiling of the
 * per-message overrides ext_proc asks for, or an override for a slow message would shorten the wait.
 */
function messageTimeoutSetting(env: Record<string, string | undefined>): number {
  const raw = env.MANDATE_EXT_PROC_MESSAGE_TIMEOUT_MS;
  const value = Number(raw ?? defaultGatewaySettings.messageTimeoutMs);
  if (!Number.isInteger(value) || value < 50 || value > extProcMaxMessageWaitMs) {
    throw new Error(
      `MANDATE_EXT_PROC_MESSAGE_TIMEOUT_MS must be an integer 50-${extProcMaxMessageWaitMs} (milliseconds), not "${raw}": ` +
        `Envoy waits at most ${extProcMaxMessageWaitMs} ms for ext_proc on one message (max_message_timeout)`,
    );
  }
  return value;
}

/** A timeout in milliseconds pushed to Envoy: 100 ms to 1 hour. */
function timeoutSetting(env: Record<string, string | undefined>, name: string, fallback: number): number {
  const value = Number(env[name] ?? fallback);
  if (!Number.isInteger(value) || value < 100 || value > 3_600_000) throw new Error(`${name} must be an integer 100-3600000 (milliseconds)`);
  return value;
}

/**
 * Scaled out when MANDATE_NATS_URL is set (the variables ext_proc reads too, with the MANDATE_NATS_*
 * credentials and TLS of config/nats-connection.ts); embedded otherwise.
 */
export function parseReplicationSettings(env: Record<string, string | undefined>): { replication?: ControlPlaneReplication } {
  const nats = natsSettingsFromEnv(env);
  if (!nats) return {};
  const replicaId = env.MANDATE_REPLICA_ID?.trim() || `${hostname()}:${process.pid}`;
  if (!/^[A-Za-z0-9._:@-]{1,128}$/.test(replicaId)) throw new Error('MANDATE_REPLICA_ID must be 1-128 letters, digits, ".", "_", ":", "@" or "-"');
  const streamReplicas = Number(env.MANDATE_CONFIG_STREAM_REPLICAS ?? 1);
  if (!Number.isInteger(streamReplicas) || streamReplicas < 1 || streamReplicas > 5) throw new Error('MANDATE_CONFIG_STREAM_REPLICAS must be an integer 1-5');
  return { replication: { nats, replicaId, streamReplicas } };
}
