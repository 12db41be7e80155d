// Wires the ext_proc service: policy stream -> compiled policy -> gRPC server,
// with the audit log as the decision recorder and a small HTTP endpoint for
// health, readiness and metrics.
import * as grpc from '@grpc/grpc-js';
import { createServer, type Server } from 'node:http';
import { performance } from 'node:perf_hooks';
import { loadEnvoyApi } from '../proto/envoy-api.ts';
import { auditEventFromDecision } from './audit/event.ts';
import { openAuditLog } from './audit/log.ts';
import { createExtProcServer } from './grpc-server.ts';
import { followPolicyStream } from './policy-source.ts';

export interface ExtProcOptions {
  listen: { address: string; port: number };
  health: { address: string; port: number };
  controlPlaneUrl: string;
  internalToken: string;
  auditDir: string;
  log: (event: string, fields: Record<string, unknown>) => void;
}

export interface ExtProcService {
  grpcPort: number;
  healthPort: number;
  stop(): Promise<void>;
}

export async function startExtProc(options: ExtProcOptions): Promise<ExtProcService> {
  const { log } = options;
  const api = loadEnvoyApi();
  const audit = openAuditLog({ directory: options.auditDir, onAlert: (alert) => log('audit_alert', { alert }) });
  const policy = followPolicyStream({ url: `${options.controlPlaneUrl}/internal/v1/policy/stream`, token: options.internalToken, log });
  const server = createExtProcServer({
    service: api.extProcService,
    currentPolicy: policy.current,
    audit: {
      decision(decision, decisionMicros) {
        audit.append(auditEventFromDecision(decision, { kind: 'decision', latencyMs: decisionMicros / 1000 }));
      },
      outcome(decision, outcome) {
        try {
          audit.append(auditEventFromDecision(decision, { kind: 'response', latencyMs: outcome.latencyMs, upstreamStatus: outcome.upstreamStatus }));
        } catch (error) {
          log('audit_outcome_dropped', { error: (error as Error).message, requestId: decision.context.requestId });
        }
      },
    },
    now: () => performance.now(),
    wallClock: () => Date.now(),
    log,
  });
  const grpcPort = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${options.listen.address}:${options.listen.port}`, grpc.ServerCredentials.createInsecure(), (error, port) => (error ? reject(error) : resolve(port))),
  );

  const health: Server = createServer((request, response) => {
    const current = policy.current();
    if (request.url === '/healthz') {
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ status: 'ok' }));
    } else if (request.url === '/readyz') {
      response.writeHead(current ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ ready: current !== null, configVersion: current?.version ?? null }));
    } else if (request.url === '/metrics') {
      response.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(audit.metrics());
    } else {
      response.writeHead(404, { 'content-type': 'application/problem+json' }).end(JSON.stringify({ status: 404, code: 'not_found', title: 'no such endpoint' }));
    }
  });
  await new Promise<void>((resolve, reject) => {
    health.once('error', reject);
    health.listen(options.health.port, options.health.address, () => resolve());
  });
  const address = health.address();
  const healthPort = typeof address === 'object' && address ? address.port : options.health.port;
  log('ext_proc_ready', { grpc: `${options.listen.address}:${grpcPort}`, health: `http://${options.health.address}:${healthPort}` });

  return {
    grpcPort,
    healthPort,
    async stop() {
      policy.close();
      await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
      health.closeAllConnections?.();
      await new Promise<void>((resolve) => health.close(() => resolve()));
      await audit.close();
    },
  };
}
