// Wires the ext_proc service: policy stream -> compiled policy -> gRPC server,
// with the audit log as the decision recorder, the process-wide state of the
// data-protection and behaviour stages (flow tracker, behaviour engine with its
// session store and alert sink), the audit trail's OTLP export, and a small
// HTTP endpoint for health, readiness, metrics, the quarantine list and audit search.
import * as grpc from '@grpc/grpc-js';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { loadEnvoyApi } from '../proto/envoy-api.ts';
import { auditEventFromDecision } from './audit/event.ts';
import { openAuditLog } from './audit/log.ts';
import { createAuditOtlpExporter, feedAuditToOtlp } from './audit/otlp.ts';
import { auditTraceOf } from './audit/trace-context.ts';
import { createJwksCache, type JwksCache } from './authentication/jwks.ts';
import { metricFamily } from '../config/prometheus-text.ts';
import { createBodyInspectionPool } from './dlp/body-inspection.ts';
import { largeBodyWaitMs } from './processor.ts';
import { setInspectionBudget } from './dlp/budget.ts';
import { grpcServerCredentials, type ServerTlsFiles } from '../config/grpc-tls.ts';
import { handleAuditApi } from './audit/http-api.ts';
import { selectDetectors } from './dlp/catalogue.ts';
import { FlowTracker } from './dlp/flow.ts';
import { createExtProcServer } from './grpc-server.ts';
import { followPolicyStream } from './policy-source.ts';
import { connectToNats, type NatsSettings } from '../config/nats-connection.ts';
import { FanOutAlertSink, NatsAlertSink, WebhookAlertSink, type AlertSink } from './sequence/alerts.ts';
import { openNatsSessionStateStore } from './sequence/nats-state-store.ts';
import { ReplicatedFlowTracker, type FlowReplicationCounts } from './dlp/flow-replication.ts';
import { flowKeyRequired } from './dlp/flow-key.ts';
import { StartupError } from '../config/service-process.ts';
import { baselineSnapshotSchema } from './sequence/baseline.ts';
import { loadBaselines, saveBaseline } from './sequence/baseline-files.ts';
import type { CompiledPolicy } from './policy/compile-policy.ts';
import type { AuditLog } from './audit/log.ts';
import { createBehaviourEngine, type BehaviourEngine } from './sequence/engine.ts';
import { InMemorySessionStateStore } from './sequence/state-store.ts';

export interface ExtProcOptions {
  listen: { address: string; port: number };
  health: { address: string; port: number };
  controlPlaneUrl: string;
  internalToken: string;
  auditDir: string;
  log: (event: string, fields: Record<string, unknown>) => void;
  /** Where behaviour alerts go; default: the log (plus the webhook and NATS below when set). */
  alertSink?: AlertSink;
  /** Behaviour alerts are also POSTed here. */
  alertWebhookUrl?: string;
  /** Scaled out: behaviour state and the quarantine list are shared with the other replicas over NATS. */
  nats?: { settings: NatsSettings; replicaId: string };
  /** Where learned behaviour baselines are kept between restarts. */
  baselineDir?: string;
  /** OTLP/HTTP receiver for audit spans and log records; default MANDATE_OTLP_ENDPOINT; unset: no export. */
  otlpEndpoint?: string;
  /** TLS on the ExternalProcessor server (MANDATE_EXT_PROC_TLS_*); null or absent: plain gRPC. */
  tls?: ServerTlsFiles | null;
  /** Whole answers of at least this many bytes are inspected on a worker thread; 0: all inline. Default 256 KiB. */
  bodyInspectionThresholdBytes?: number;
  /** Milliseconds one inspection on the event loop may take before it is refused (dlp/budget.ts). Default 1000. */
  inspectionBudgetMs?: number;
  /** The same on the inspection worker. Default 5000: below the 10 s Envoy is asked to wait for it. */
  workerInspectionBudgetMs?: number;
  /** Worker threads inspecting large bodies, each one body at a time. Default 1. */
  inspectionWorkers?: number;
  /**
   * The key of the audit trail's arguments digests (MANDATE_AUDIT_DIGEST_KEY or _FILE; the same on every
   * replica for digests that compare across replicas). Default: a random key kept in the audit directory.
   */
  argumentsDigestKey?: string;
  /**
   * The data-flow fingerprint key (fingerprintKeyOfText of MANDATE_FLOW_KEY or _FILE). Required with
   * `nats`: the replicas must hash and sign alike. Default without NATS: a random key for this process.
   */
  flowKey?: Buffer;
}

export const defaultBodyInspectionThresholdBytes = 256 * 1024;

/**
 * Inspection budgets (dlp/budget.ts, docs/benchmarks.md "The inspection budget"). On the event loop a
 * body is under the worker threshold: the costliest legitimate one measured, an MCP image result
 * (base64) of 250 KiB met for the first time, took 0.27-0.47 s while its base64 was read as text
 * (19-45 ms since it is read as a file). On the worker, one of 4 MiB took 1.3-1.9 s (now 0.5-0.6 s),
 * and Envoy waits 10 s for the worker.
 */
export const defaultInspectionBudgetMs = 1000;
export const defaultWorkerInspectionBudgetMs = 5000;

export interface ExtProcService {
  grpcPort: number;
  healthPort: number;
  stop(): Promise<void>;
}

export async function startExtProc(options: ExtProcOptions): Promise<ExtProcService> {
  const { log } = options;
  // Data-flow fingerprints: one process keys them itself; replicas share the operator's key, so a value read
  // through one of them is recognised by the others. Checked first: nothing is opened for a replica that cannot run.
  if (options.nats && !options.flowKey) {
    const required = flowKeyRequired();
    throw new StartupError(required.code, required.message);
  }
  const fingerprintKey = options.flowKey ?? randomBytes(32);
  const api = loadEnvoyApi();
  const audit = openAuditLog({ directory: options.auditDir, onAlert: (alert) => log('audit_alert', { alert }) });
  const digestKey = options.argumentsDigestKey ?? localArgumentsDigestKey(options.auditDir);
  // Committed audit events go out as OTLP spans and log records: batched, bounded, off the request path.
  const otlpEndpoint = options.otlpEndpoint ?? process.env['MANDATE_OTLP_ENDPOINT'] ?? '';
  const otlp = otlpEndpoint ? createAuditOtlpExporter({ endpoint: otlpEndpoint }) : null;
  const stopOtlpFeed = otlp ? feedAuditToOtlp(audit, otlp) : () => {};
  // Every config version this replica enforces lands in its audit chain once: who changed what.
  let lastAuditedVersion = lastAdminEventVersion(audit);
  const recordConfigChange = (installed: CompiledPolicy) => {
    if (installed.version <= lastAuditedVersion) return;
    audit.appendAdminEvent({
      actor: installed.revision?.actor ?? 'unknown',
      action: 'config.apply',
      target: 'config',
      beforeVersion: lastAuditedVersion > 0 ? lastAuditedVersion : null,
      afterVersion: installed.version,
      detail: installed.revision?.summary ?? '',
    });
    lastAuditedVersion = installed.version;
  };
  // Scaled out, the replicas share NATS: behaviour state, the quarantine list, alerts and data-flow memory.
  // It reconnects for as long as the process lives: alerts and data-flow memory resume after an outage of any length.
  const natsConnection = options.nats ? await connectToNats(options.nats.settings, { name: `mandate-ext-proc-${options.nats.replicaId}`, reconnect: true, maxReconnectAttempts: -1, reconnectTimeWait: 250 }) : null;
  const jwks = createJwksCache({ log });
  setInspectionBudget(options.inspectionBudgetMs ?? defaultInspectionBudgetMs);
  const bodyInspection =
    options.bodyInspectionThresholdBytes === 0
      ? null
      : createBodyInspectionPool({
          thresholdBytes: options.bodyInspectionThresholdBytes ?? defaultBodyInspectionThresholdBytes,
          budgetMs: options.workerInspectionBudgetMs ?? defaultWorkerInspectionBudgetMs,
          // A body still queued when Envoy stops waiting for it is not inspected.
          queueWaitMs: largeBodyWaitMs,
          workers: options.inspectionWorkers ?? 1,
          log,
        });
  const policy = followPolicyStream({
    url: `${options.controlPlaneUrl}/internal/v1/policy/stream`,
    token: options.internalToken,
    log,
    compile: { fingerprintKey },
    onPolicy: (installed) => {
      recordConfigChange(installed);
      // The identity providers this version's Personas trust: their keys are fetched and kept fresh.
      jwks.track([...installed.personas.values()].flatMap((p) => (p.persona.authentication.jwt ? [p.persona.authentication.jwt.jwksUri] : [])));
    },
  });
  const flowOptions = { now: () => Date.now(), maxFingerprintsPerSession: 4096, ttlMs: 3_600_000, gradualCollectionThreshold: 50 };
  // Another replica's values are applied under this replica's config for their Persona, never the sender's.
  const personaFlowLimits = (name: string) => {
    const dp = policy.current()?.personas.get(name)?.dataProtection;
    return dp?.policy.flow.enabled ? dp.flowLimits : null;
  };
  const replicatedFlow = natsConnection ? new ReplicatedFlowTracker(flowOptions, natsConnection, options.nats!.replicaId, log, { fingerprintKey, personaFlowLimits }) : null;
  replicatedFlow?.start();
  const flow = replicatedFlow ?? new FlowTracker(flowOptions);
  // Behaviour alerts go to the log and into the audit chain (alerts are never refused by backpressure).
  const auditAlerts: AlertSink = {
    emit: (alert) => {
      audit.appendAlert(
        {
          name: `behaviour.${alert.action}`,
          severity: alert.enforced && alert.action !== 'alert' ? 'critical' : 'warning',
          message: `${alert.enforced ? '' : 'would have: '}${alert.action} ${alert.tool} (risk ${alert.riskScore.toFixed(2)}): ${alert.reasons.map((r) => r.code).join(', ')}; sequence ${alert.evidence.sequence.map((run) => `${run.tool} x${run.count}`).join(' -> ')}`,
        },
        { agent: alert.agent, user: alert.user, persona: alert.persona, sessionId: alert.session, upstream: alert.upstream },
      );
    },
    close: async () => {},
  };
  const logAlerts: AlertSink = { emit: (alert) => log('behaviour_alert', { ...alert }), close: async () => {} };
  const alertSinks: AlertSink[] = [options.alertSink ?? logAlerts, auditAlerts];
  if (options.alertWebhookUrl) alertSinks.push(new WebhookAlertSink({ url: options.alertWebhookUrl }));
  if (natsConnection) alertSinks.push(new NatsAlertSink(natsConnection));
  const alertSink: AlertSink = new FanOutAlertSink(alertSinks);
  // One process: in-memory state. Scaled out: every replica sees every replica's calls (docs/behaviour.md).
  const sessionStore = options.nats
    ? await openNatsSessionStateStore({ nats: options.nats.settings, replicaId: options.nats.replicaId, log })
    : new InMemorySessionStateStore();
  const behaviour = createBehaviourEngine({ clock: () => Date.now(), store: sessionStore, alertSink });
  const baselineDir = options.baselineDir ?? join(options.auditDir, '..', 'baselines');
  log('baselines_loaded', { count: loadBaselines(baselineDir, behaviour.baselines, log), directory: baselineDir });
  const server = createExtProcServer({
    service: api.extProcService,
    currentPolicy: policy.current,
    audit: {
      decision(decision, decisionMicros) {
        audit.append(auditEventFromDecision(decision, digestKey, { kind: 'decision', latencyMs: decisionMicros / 1000, ...auditTraceOf(decision.context) }));
      },
      outcome(decision, outcome) {
        try {
          audit.append(
            auditEventFromDecision(decision, digestKey, {
              kind: 'response',
              latencyMs: outcome.latencyMs,
              upstreamStatus: outcome.upstreamStatus,
              responseFindings: outcome.responseFindings,
              outcomeNotes: outcome.notes,
              answerRefusal: outcome.answerRefusal,
              ...auditTraceOf(decision.context),
            }),
          );
        } catch (error) {
          log('audit_outcome_dropped', { error: (error as Error).message, requestId: decision.context.requestId });
        }
      },
    },
    now: () => performance.now(),
    wallClock: () => Date.now(),
    flow,
    behaviour,
    jwks,
    ...(bodyInspection ? { bodyInspection } : {}),
    log,
  });
  const grpcPort = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${options.listen.address}:${options.listen.port}`, grpcServerCredentials(options.tls ?? null), (error, port) => (error ? reject(error) : resolve(port))),
  );

  const health: Server = createServer((request, response) => {
    const current = policy.current();
    const path = (request.url ?? '/').split('?')[0] ?? '/';
    if (path === '/healthz') {
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ status: 'ok' }));
    } else if (path === '/readyz') {
      response.writeHead(current ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ ready: current !== null, configVersion: current?.version ?? null }));
    } else if (path === '/metrics') {
      response.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(audit.metrics() + jwksMetrics(jwks.status()) + flowReplicationMetrics(replicatedFlow?.replicationCounts() ?? null));
    } else if (path.startsWith('/v1/') && !bearerMatches(request.headers.authorization, options.internalToken)) {
      // Every /v1 route (baselines, audit, quarantine) is for operators and the control plane only.
      response.setHeader('www-authenticate', 'Bearer realm="mandate-ext-proc"');
      sendProblem(response, 401, 'unauthorized', `${path} needs the internal token as a Bearer credential`);
    } else if (path.startsWith('/v1/baselines/')) {
      void handleBaseline(request, response, path, behaviour, baselineDir, log);
    } else if (path === '/v1/audit/events' || path === '/v1/audit/report') {
      handleAuditApi(request, response, audit, sendProblem);
    } else if (path === '/v1/quarantine' || path.startsWith('/v1/quarantine/')) {
      handleQuarantine(request, response, path, behaviour, log);
    } else if (path === '/v1/data-protection/detectors') {
      handleDetectorCatalogue(request, response);
    } else {
      sendProblem(response, 404, 'not_found', 'no such endpoint');
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
      // Keep what was learned: one more version of each baseline, on disk.
      for (const persona of policy.current()?.personas.keys() ?? []) {
        const snapshot = behaviour.baselines.export(persona, new Date());
        if (snapshot) saveBaseline(baselineDir, snapshot);
      }
      await alertSink.close();
      if ('close' in sessionStore) await sessionStore.close();
      replicatedFlow?.stop();
      jwks.stop();
      await bodyInspection?.stop();
      await natsConnection?.drain();
      await audit.close();
      stopOtlpFeed();
      await otlp?.shutdown();
    },
  };
}

/**
 * GET /v1/quarantine lists quarantined agents; DELETE /v1/quarantine/{agent} releases one.
 * The caller has checked the internal token (docs/behaviour.md).
 */
function handleQuarantine(request: IncomingMessage, response: ServerResponse, path: string, behaviour: BehaviourEngine, log: ExtProcOptions['log']): void {
  if (path === '/v1/quarantine') {
    if (request.method !== 'GET') {
      response.setHeader('allow', 'GET');
      sendProblem(response, 405, 'method_not_allowed', 'use GET to list quarantined agents');
      return;
    }
    const agents = behaviour.quarantine.list().map((q) => ({ agent: q.agent, persona: q.persona, since: new Date(q.since).toISOString(), reason: q.reason }));
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ agents }));
    return;
  }
  if (request.method !== 'DELETE') {
    response.setHeader('allow', 'DELETE');
    sendProblem(response, 405, 'method_not_allowed', 'use DELETE to release a quarantined agent');
    return;
  }
  const agent = pathParameter(response, path, '/v1/quarantine/', 'agent name');
  if (agent === null) return;
  if (!behaviour.quarantine.release(agent)) {
    sendProblem(response, 404, 'not_quarantined', `agent "${agent}" is not quarantined`);
    return;
  }
  log('quarantine_released', { agent });
  response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ released: agent }));
}

/**
 * GET /v1/baselines/{persona} exports the learned baseline as a new version (and keeps it on disk);
 * PUT /v1/baselines/{persona} imports one (e.g. from `mandate simulate --learn`). The caller has checked the internal token.
 */
async function handleBaseline(request: IncomingMessage, response: ServerResponse, path: string, behaviour: BehaviourEngine, directory: string, log: ExtProcOptions['log']): Promise<void> {
  const persona = pathParameter(response, path, '/v1/baselines/', 'Persona name');
  if (persona === null) return;
  if (request.method === 'GET') {
    const snapshot = behaviour.baselines.export(persona, new Date());
    if (!snapshot) {
      sendProblem(response, 404, 'no_baseline', `no baseline has been learned or imported for Persona "${persona}"`);
      return;
    }
    saveBaseline(directory, snapshot);
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(snapshot));
    return;
  }
  if (request.method !== 'PUT') {
    response.setHeader('allow', 'GET, PUT');
    sendProblem(response, 405, 'method_not_allowed', 'use GET to export a baseline and PUT to import one');
    return;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > 16 * 1024 * 1024) {
      sendProblem(response, 413, 'payload_too_large', 'a baseline is at most 16 MiB');
      return;
    }
    chunks.push(chunk as Buffer);
  }
  let parsed;
  try {
    parsed = baselineSnapshotSchema.safeParse(JSON.parse(Buffer.concat(chunks).toString('utf8')));
  } catch (error) {
    sendProblem(response, 400, 'invalid_json', `the body is not JSON: ${(error as Error).message}`);
    return;
  }
  if (!parsed.success) {
    sendProblem(response, 422, 'invalid_baseline', parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
    return;
  }
  if (parsed.data.persona !== persona) {
    sendProblem(response, 422, 'invalid_baseline', `the baseline is for Persona "${parsed.data.persona}", not "${persona}"`);
    return;
  }
  behaviour.baselines.import(parsed.data);
  saveBaseline(directory, parsed.data);
  log('baseline_imported', { persona, version: parsed.data.version });
  response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ imported: persona, version: parsed.data.version }));
}

function bearerMatches(header: string | undefined, token: string): boolean {
  const presented = Buffer.from(/^Bearer (.+)$/.exec(header ?? '')?.[1] ?? '', 'utf8');
  const expected = Buffer.from(token, 'utf8');
  return presented.length === expected.length && timingSafeEqual(presented, expected);
}

/**
 * GET /v1/data-protection/detectors[?group=...&profile=...]: the detector catalogue with each
 * detector's metadata (id, group, data class, validation, context words, confidence, profiles, examples).
 */
function handleDetectorCatalogue(request: IncomingMessage, response: ServerResponse): void {
  if (request.method !== 'GET') {
    response.setHeader('allow', 'GET');
    sendProblem(response, 405, 'method_not_allowed', 'the detector catalogue is read with GET');
    return;
  }
  const query = new URL(request.url ?? '/', 'http://ext-proc').searchParams;
  const selected = selectDetectors({ group: query.get('group'), profile: query.get('profile') });
  if (!selected.ok) {
    sendProblem(response, 400, 'invalid_query', selected.message);
    return;
  }
  const detectors = selected.detectors;
  response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ count: detectors.length, detectors }));
}

/** The percent-decoded rest of `path` after `prefix`; null (and a 400 sent) when its encoding is broken. */
function pathParameter(response: ServerResponse, path: string, prefix: string, what: string): string | null {
  try {
    return decodeURIComponent(path.slice(prefix.length));
  } catch {
    sendProblem(response, 400, 'invalid_request', `the ${what} is not valid percent-encoding`);
    return null;
  }
}

function sendProblem(response: ServerResponse, status: number, code: string, title: string): void {
  response.writeHead(status, { 'content-type': 'application/problem+json' }).end(JSON.stringify({ type: `https://mandate.dev/errors/${code}`, status, code, title }));
}

/** The config version of the newest admin event already in the chain, so a restart does not record it twice. */
function lastAdminEventVersion(audit: AuditLog): number {
  const newest = audit.query({ kind: 'admin' }, { limit: 1, order: 'newest' }).events[0];
  return newest?.admin?.afterVersion ?? 0;
}

/** The identity providers' key sets: 0 keys means JWTs for their Personas are refused (jwks_unavailable). */
function jwksMetrics(status: ReturnType<JwksCache['status']>): string {
  if (status.length === 0) return '';
  return `${[
    ...metricFamily('mandate_jwks_keys', 'gauge', 'Signing keys held for each identity provider a Persona trusts (0: none fetched yet).', status.map((s) => [{ uri: s.uri }, s.keys ?? 0])),
    ...metricFamily('mandate_jwks_last_success_timestamp_seconds', 'gauge', 'When each key set was last fetched successfully (0: never).', status.map((s) => [{ uri: s.uri }, s.lastSuccessMs === null ? 0 : Math.floor(s.lastSuccessMs / 1000)])),
  ].join('\n')}\n`;
}

function flowReplicationMetrics(counts: FlowReplicationCounts | null): string {
  if (counts === null) return '';
  const outcomes: [Record<string, string>, number][] = [[{ outcome: 'applied' }, counts.applied], ...Object.entries(counts.dropped).map(([outcome, n]): [Record<string, string>, number] => [{ outcome }, n])];
  return `${metricFamily('mandate_flow_replication_messages_total', 'counter', "Data-flow messages from other replicas: applied, or dropped (bad_mac: unsigned or signed with another key; bad_message; stale: dated outside the freshness window; replayed: an id already seen; unknown_persona: a Persona this replica does not know or has flow control off for).", outcomes).join('\n')}\n`;
}

/** The audit directory's own arguments-digest key: read, or made once (32 random bytes, hex, mode 0600). */
function localArgumentsDigestKey(auditDir: string): string {
  const file = join(auditDir, 'arguments-digest-key');
  try {
    writeFileSync(file, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  const key = readFileSync(file, 'utf8').trim();
  if (key.length < 32) throw new Error(`${file}: the arguments digest key must be at least 32 characters; delete the file to make a new one`);
  return key;
}
