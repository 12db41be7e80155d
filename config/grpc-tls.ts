// TLS on the two gRPC channels between Envoy and Mandate: ADS (Envoy to the control
// plane) and ext_proc (Envoy to the policy service). Each Mandate server takes a
// certificate and key and, with a client CA, requires Envoy to present a certificate
// that CA signed (mutual TLS). Envoy's side of each channel is an UpstreamTlsContext
// built here: the CA that signed the server, the name to expect, and Envoy's own
// certificate. Files are read from the environment's paths; a setting given badly
// stops the process at startup.
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { dnsNamePattern } from './schema.ts';

/** A Mandate gRPC server's TLS files (on its own host). */
export interface ServerTlsFiles {
  certFile: string;
  keyFile: string;
  /** Clients must present a certificate this CA signed; null: server-side TLS only. */
  clientCaFile: string | null;
}

/** Envoy's side of a channel (files on the Envoy hosts). */
export interface EnvoyChannelTls {
  /** The CA that signed the Mandate server's certificate. */
  caFile: string;
  /** SNI, and the DNS name the server certificate must carry; null: the chain alone is checked. */
  serverName: string | null;
  /** Envoy's own certificate and key, presented to a server that requires one. */
  certFile: string | null;
  keyFile: string | null;
}

type Env = Record<string, string | undefined>;

function path(env: Env, name: string): string | null {
  const value = env[name]?.trim();
  if (!value) return null;
  if (!value.startsWith('/')) throw new Error(`${name} must be an absolute path`);
  return value;
}

/** `${prefix}_CERT_FILE`, `_KEY_FILE` (both or neither) and `_CLIENT_CA_FILE`; null when TLS is off. */
export function serverTlsFromEnv(env: Env, prefix: string): ServerTlsFiles | null {
  const certFile = path(env, `${prefix}_CERT_FILE`);
  const keyFile = path(env, `${prefix}_KEY_FILE`);
  const clientCaFile = path(env, `${prefix}_CLIENT_CA_FILE`);
  if (certFile === null && keyFile === null) {
    if (clientCaFile !== null) throw new Error(`${prefix}_CLIENT_CA_FILE needs ${prefix}_CERT_FILE and ${prefix}_KEY_FILE`);
    return null;
  }
  if (certFile === null || keyFile === null) throw new Error(`set both ${prefix}_CERT_FILE and ${prefix}_KEY_FILE, or neither`);
  return { certFile, keyFile, clientCaFile };
}

/** A PEM file of a TLS setting, or an error naming it (what it is, where, why not). */
export function readTlsFile(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    throw new Error(`cannot read the ${what} ${file} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
}

/** gRPC server credentials: insecure without TLS files, else TLS (mutual with a client CA). */
export function grpcServerCredentials(tls: ServerTlsFiles | null): grpc.ServerCredentials {
  if (tls === null) return grpc.ServerCredentials.createInsecure();
  const clientCa = tls.clientCaFile === null ? null : readTlsFile(tls.clientCaFile, 'client CA');
  return grpc.ServerCredentials.createSsl(clientCa, [{ cert_chain: readTlsFile(tls.certFile, 'certificate'), private_key: readTlsFile(tls.keyFile, 'key') }], clientCa !== null);
}

/**
 * Envoy's TLS for one channel: `${prefix}_CA_FILE` turns it on, `${prefix}_SERVER_NAME` names the
 * certificate to expect; Envoy's own certificate is MANDATE_ENVOY_TLS_CERT_FILE and _KEY_FILE.
 */
export function envoyChannelTlsFromEnv(env: Env, prefix: string): EnvoyChannelTls | null {
  const caFile = path(env, `${prefix}_CA_FILE`);
  const serverName = env[`${prefix}_SERVER_NAME`]?.trim() || null;
  const certFile = path(env, 'MANDATE_ENVOY_TLS_CERT_FILE');
  const keyFile = path(env, 'MANDATE_ENVOY_TLS_KEY_FILE');
  if ((certFile === null) !== (keyFile === null)) throw new Error('set both MANDATE_ENVOY_TLS_CERT_FILE and MANDATE_ENVOY_TLS_KEY_FILE, or neither');
  if (caFile === null) {
    if (serverName !== null) throw new Error(`${prefix}_SERVER_NAME needs ${prefix}_CA_FILE`);
    return null;
  }
  if (serverName !== null && !dnsNamePattern.test(serverName)) {
    throw new Error(`${prefix}_SERVER_NAME must be a DNS name`);
  }
  return { caFile, serverName, certFile, keyFile };
}

/** An IPv4 or IPv6 literal (a certificate names it as an IP address, and it is never sent as SNI). */
export function isIpLiteral(host: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || host.includes(':');
}

/**
 * The transport socket of an Envoy cluster that verifies its server: the chain against `caFile`, and,
 * with a server name, that name as the certificate's DNS or IP subject alternative name (sent as SNI
 * when it is a DNS name). Optionally ALPN and a client certificate for Envoy.
 */
export function verifiedUpstreamTransportSocket(tls: { caFile: string; serverName: string | null; alpn?: string[]; certFile?: string | null; keyFile?: string | null }): Record<string, unknown> {
  const ip = tls.serverName !== null && isIpLiteral(tls.serverName);
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
      ...(tls.serverName && !ip ? { sni: tls.serverName } : {}),
      common_tls_context: {
        ...(tls.alpn ? { alpn_protocols: tls.alpn } : {}),
        ...(tls.certFile && tls.keyFile ? { tls_certificates: [{ certificate_chain: { filename: tls.certFile }, private_key: { filename: tls.keyFile } }] } : {}),
        validation_context: {
          trusted_ca: { filename: tls.caFile },
          ...(tls.serverName ? { match_typed_subject_alt_names: [{ san_type: ip ? 'IP_ADDRESS' : 'DNS', matcher: { exact: tls.serverName } }] } : {}),
        },
      },
    },
  };
}

/** The transport socket of an Envoy cluster that reaches a Mandate gRPC server over TLS. */
export function envoyChannelTransportSocket(tls: EnvoyChannelTls): Record<string, unknown> {
  return verifiedUpstreamTransportSocket({ ...tls, alpn: ['h2'] });
}
