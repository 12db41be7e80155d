// Prometheus metrics derived from audit events, rendered in the text
// exposition format (version 0.0.4). Labels are bounded: Persona, verdict,
// kind, finding type, alert name; never agent or request ids.
import { labelKey } from '../../config/prometheus-text.ts';
import type { AuditEventFields } from './event.ts';

/** Decision latency buckets, milliseconds. */
export const latencyBucketsMs = [0.5, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500] as const;

interface Histogram {
  buckets: number[];
  sum: number;
  count: number;
}

export function createAuditMetrics() {
  const events = new Map<string, number>();
  const requests = new Map<string, number>();
  const findings = new Map<string, number>();
  const alerts = new Map<string, number>();
  const externalDlp = new Map<string, number>();
  const latency = new Map<string, Histogram>();
  const gauges = new Map<string, { help: string; value: () => number }>();
  let backpressure = 0;
  let storageErrors = 0;

  const bump = (map: Map<string, number>, key: string, by = 1) => map.set(key, (map.get(key) ?? 0) + by);

  return {
    observe(event: AuditEventFields): void {
      bump(events, event.kind);
      if (event.kind === 'decision') {
        bump(requests, labelKey({ persona: event.persona ?? '', verdict: event.verdict ?? '', enforced: String(event.enforced ?? '') }));
        if (event.latencyMs !== null) {
          const key = labelKey({ persona: event.persona ?? '' });
          let histogram = latency.get(key);
          if (!histogram) latency.set(key, (histogram = { buckets: latencyBucketsMs.map(() => 0), sum: 0, count: 0 }));
          for (let i = 0; i < latencyBucketsMs.length; i += 1) if (event.latencyMs <= latencyBucketsMs[i]!) histogram.buckets[i]! += 1;
          histogram.sum += event.latencyMs;
          histogram.count += 1;
        }
      }
      for (const type of event.findingTypes) bump(findings, labelKey({ type, direction: event.kind === 'response' ? 'response' : 'request' }));
      if (event.alert) bump(alerts, labelKey({ alert: event.alert.name, severity: event.alert.severity }));
      for (const reason of event.reasons) if (reason.code.startsWith('external_dlp_')) bump(externalDlp, labelKey({ persona: event.persona ?? '', code: reason.code }));
    },
    alert(name: string, severity: string): void {
      bump(alerts, labelKey({ alert: name, severity }));
    },
    backpressure(): void {
      backpressure += 1;
    },
    storageError(): void {
      storageErrors += 1;
    },
    gauge(name: string, help: string, value: () => number): void {
      gauges.set(name, { help, value });
    },
    render(): string {
      const out: string[] = [];
      const counter = (name: string, help: string, map: Map<string, number>) => {
        out.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`);
        for (const [labels, value] of map) out.push(`${name}${labels} ${value}`);
      };
      counter('mandate_audit_events_total', 'Audit events recorded, by kind.', new Map([...events].map(([k, v]) => [labelKey({ kind: k }), v])));
      counter('mandate_requests_total', 'Decisions taken, by Persona, verdict and whether the verdict was enforced.', requests);
      counter('mandate_dlp_findings_total', 'Sensitive-data findings, by detector/group and direction.', findings);
      counter('mandate_alerts_total', 'Alerts fired, by name and severity.', alerts);
      counter('mandate_external_dlp_total', 'External DLP results other than a plain inline allow (blocks, rewrites, failures refused or passed under the fail mode, async verdicts), by Persona and code.', externalDlp);
      counter('mandate_audit_backpressure_total', 'Appends refused because audit storage was behind or failing.', new Map([['', backpressure]]));
      counter('mandate_audit_storage_errors_total', 'Failed attempts to commit audit events to storage.', new Map([['', storageErrors]]));
      out.push('# HELP mandate_decision_latency_ms Time from request to decision, milliseconds.', '# TYPE mandate_decision_latency_ms histogram');
      for (const [labels, histogram] of latency) {
        const inner = labels.slice(1, -1);
        latencyBucketsMs.forEach((bound, i) => out.push(`mandate_decision_latency_ms_bucket{${inner},le="${bound}"} ${histogram.buckets[i]}`));
        out.push(`mandate_decision_latency_ms_bucket{${inner},le="+Inf"} ${histogram.count}`);
        out.push(`mandate_decision_latency_ms_sum${labels} ${histogram.sum}`, `mandate_decision_latency_ms_count${labels} ${histogram.count}`);
      }
      for (const [name, gauge] of gauges) out.push(`# HELP ${name} ${gauge.help}`, `# TYPE ${name} gauge`, `${name} ${gauge.value()}`);
      return `${out.join('\n')}\n`;
    },
  };
}

export type AuditMetrics = ReturnType<typeof createAuditMetrics>;
