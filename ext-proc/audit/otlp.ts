// OTLP export of the audit trail: one span per decision (in the trace of the
// request, carrying Envoy's request id) and one log record per audit event,
// sent over OTLP/HTTP protobuf. Everything runs after the commit, through the
// SDK's batching processors with bounded queues: when the receiver is slow or
// gone, records are dropped and counted, and the data path never waits.
import { SeverityNumber, type Logger, type Tracer } from '@opentelemetry/api';
import { OTLPLogExporter } from '@opentelemetry/exporter-logs-otlp-proto';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchLogRecordProcessor, LoggerProvider } from '@opentelemetry/sdk-logs';
import { BatchSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import type { AuditEvent } from './event.ts';
import type { AuditLog } from './log.ts';
import { exportSpan, spanAttributes, traceContextOf } from './export.ts';

export interface OtlpExportOptions {
  /** Base URL of an OTLP/HTTP receiver, e.g. http://otel-collector:4318 (…/v1/traces and …/v1/logs are appended). */
  endpoint: string;
  serviceName?: string;
  headers?: Record<string, string>;
  /** Records held for export; beyond it new ones are dropped. Default 8,192 (spans and logs each). */
  maxQueueSize?: number;
  /** Default 512. */
  maxExportBatchSize?: number;
  /** How long a record may wait for its batch. Default 1,000 ms. */
  scheduledDelayMs?: number;
  /** One export request's deadline. Default 10,000 ms. */
  exportTimeoutMs?: number;
}

export interface AuditOtlpExporter {
  /** Export committed audit events (a span for each decision, a log record for each event). Never throws. */
  record(events: readonly AuditEvent[]): void;
  /** Send what is queued now. */
  forceFlush(): Promise<void>;
  shutdown(): Promise<void>;
}

/** Export every event the log commits from now on. Returns a function that stops the feed. */
export function feedAuditToOtlp(log: Pick<AuditLog, 'subscribe'>, exporter: AuditOtlpExporter): () => void {
  return log.subscribe((events) => exporter.record(events));
}

/** Where MANDATE_OTLP_ENDPOINT-style base URLs send each signal. */
export function otlpSignalUrl(endpoint: string, signal: 'traces' | 'logs'): string {
  return `${endpoint.replace(/\/+$/, '')}/v1/${signal}`;
}

export function createAuditOtlpExporter(options: OtlpExportOptions): AuditOtlpExporter {
  const resource = resourceFromAttributes({ [ATTR_SERVICE_NAME]: options.serviceName ?? 'mandate-ext-proc' });
  const buffer = {
    maxQueueSize: options.maxQueueSize ?? 8_192,
    maxExportBatchSize: options.maxExportBatchSize ?? 512,
    scheduledDelayMillis: options.scheduledDelayMs ?? 1_000,
    exportTimeoutMillis: options.exportTimeoutMs ?? 10_000,
  };
  const exporterOptions = { headers: options.headers ?? {}, timeoutMillis: buffer.exportTimeoutMillis };
  const tracerProvider = new TracerProvider({
    resource,
    spanProcessors: [new BatchSpanProcessor({ exporter: new OTLPTraceExporter({ ...exporterOptions, url: otlpSignalUrl(options.endpoint, 'traces') }), ...buffer })],
  });
  const loggerProvider = new LoggerProvider({
    resource,
    processors: [new BatchLogRecordProcessor({ exporter: new OTLPLogExporter({ ...exporterOptions, url: otlpSignalUrl(options.endpoint, 'logs') }), ...buffer })],
  });
  // Providers are used directly, never registered globally: no process-wide state.
  const tracer: Tracer = tracerProvider.getTracer('mandate.audit');
  const logger: Logger = loggerProvider.getLogger('mandate.audit');

  return {
    record(events) {
      for (const event of events) {
        try {
          if (event.kind === 'decision') exportSpan(tracer, event);
          emitLogRecord(logger, event);
        } catch {
          // A malformed event must not stop the others, nor reach the caller.
        }
      }
    },
    async forceFlush() {
      await Promise.allSettled([tracerProvider.forceFlush(), loggerProvider.forceFlush()]);
    },
    async shutdown() {
      await Promise.allSettled([tracerProvider.shutdown(), loggerProvider.shutdown()]);
    },
  };
}

/** One log record per audit event: the stored (already masked) event as the body, searchable attributes, the trace it belongs to. */
export function emitLogRecord(logger: Logger, event: AuditEvent): void {
  const severity = auditSeverity(event);
  const parent = traceContextOf(event);
  logger.emit({
    eventName: `mandate.audit.${event.kind}`,
    timestamp: event.at,
    severityNumber: severity.number,
    severityText: severity.text,
    body: JSON.stringify(event),
    attributes: spanAttributes(event),
    ...(parent ? { context: parent } : {}),
  });
}

function auditSeverity(event: AuditEvent): { number: SeverityNumber; text: string } {
  if (event.alert) {
    if (event.alert.severity === 'critical') return { number: SeverityNumber.ERROR, text: 'ERROR' };
    if (event.alert.severity === 'warning') return { number: SeverityNumber.WARN, text: 'WARN' };
    return { number: SeverityNumber.INFO, text: 'INFO' };
  }
  if (event.verdict === 'deny') return { number: SeverityNumber.WARN, text: 'WARN' };
  return { number: SeverityNumber.INFO, text: 'INFO' };
}
