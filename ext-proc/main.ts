// The ext_proc process: `node ext-proc/main.ts`. Settings come from the
// environment (see docs/configuration.md).
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { configuredToken } from '../config/configured-token.ts';
import { natsSettingsFromEnv } from '../config/nats-connection.ts';
import { serverTlsFromEnv } from '../config/grpc-tls.ts';
import { jsonEventLog, parseHostPort, runService, StartupError } from '../config/service-process.ts';
import { flowKeySetting } from './dlp/flow-key.ts';
import { startExtProc } from './service.ts';
import { parseInspectionWorkers } from './dlp/body-inspection.ts';

const log = jsonEventLog('ext-proc');

await runService(log, () => {
  const env = process.env;
  const dataDir = resolve(env.MANDATE_DATA_DIR ?? '.data');
  // The control plane's internal token: given (MANDATE_INTERNAL_TOKEN or _FILE), else its file in a shared data dir.
  // Scaled out (MANDATE_NATS_URL): the servers, credentials and TLS; a bad setting stops startup here.
  const nats = natsSettingsFromEnv(env);
  const internalToken = configuredToken(env, 'MANDATE_INTERNAL_TOKEN') ?? readFileSync(join(dataDir, 'internal-token'), 'utf8').trim();
  // Scaled out, every replica hashes and signs data-flow values with the operator's key (MANDATE_FLOW_KEY or _FILE).
  const flowKey = flowKeySetting(env, { required: Boolean(env.MANDATE_NATS_URL) });
  if (!flowKey.ok) throw new StartupError(flowKey.code, flowKey.message);
  return startExtProc({
    listen: parseHostPort(env.MANDATE_EXT_PROC_LISTEN ?? '127.0.0.1:9002', 'MANDATE_EXT_PROC_LISTEN'),
    health: parseHostPort(env.MANDATE_EXT_PROC_HEALTH_LISTEN ?? '127.0.0.1:9003', 'MANDATE_EXT_PROC_HEALTH_LISTEN'),
    controlPlaneUrl: env.MANDATE_CONTROL_PLANE_URL ?? 'http://127.0.0.1:18080',
    internalToken,
    tls: serverTlsFromEnv(env, 'MANDATE_EXT_PROC_TLS'),
    ...(env.MANDATE_DLP_WORKER_THRESHOLD_BYTES !== undefined ? { bodyInspectionThresholdBytes: parseByteCount(env.MANDATE_DLP_WORKER_THRESHOLD_BYTES, 'MANDATE_DLP_WORKER_THRESHOLD_BYTES') } : {}),
    ...(env.MANDATE_DLP_BUDGET_MS !== undefined ? { inspectionBudgetMs: parseMilliseconds(env.MANDATE_DLP_BUDGET_MS, 'MANDATE_DLP_BUDGET_MS') } : {}),
    ...(env.MANDATE_DLP_WORKER_BUDGET_MS !== undefined ? { workerInspectionBudgetMs: parseMilliseconds(env.MANDATE_DLP_WORKER_BUDGET_MS, 'MANDATE_DLP_WORKER_BUDGET_MS') } : {}),
    ...(env.MANDATE_DLP_WORKERS !== undefined ? { inspectionWorkers: parseInspectionWorkers(env.MANDATE_DLP_WORKERS) } : {}),
    auditDir: resolve(env.MANDATE_AUDIT_DIR ?? join(dataDir, 'audit')),
    ...(configuredToken(env, 'MANDATE_AUDIT_DIGEST_KEY') !== null ? { argumentsDigestKey: configuredToken(env, 'MANDATE_AUDIT_DIGEST_KEY')! } : {}),
    ...(flowKey.key !== null ? { flowKey: flowKey.key } : {}),
    log,
    ...(env.MANDATE_ALERT_WEBHOOK_URL ? { alertWebhookUrl: env.MANDATE_ALERT_WEBHOOK_URL } : {}),
    // Each replica needs a name unique in the fleet (in Kubernetes, the pod name).
    ...(nats ? { nats: { settings: nats, replicaId: env.MANDATE_REPLICA_ID ?? `${hostname()}:${process.pid}` } } : {}),
  });
});

/** A data-protection budget: 1 ms to 9 s (Envoy waits 10 s for a body on the worker). */
function parseMilliseconds(text: string, name: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1 || value > 9000) throw new StartupError('invalid_inspection_budget', `${name} must be a whole number of milliseconds from 1 to 9000, not "${text}"`);
  return value;
}

function parseByteCount(text: string, name: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 0 || value > 1024 * 1024 * 1024) throw new Error(`${name} must be a whole number of bytes (0 turns the worker off)`);
  return value;
}
