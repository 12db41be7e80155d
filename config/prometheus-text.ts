// The Prometheus text exposition format (0.0.4), the parts both processes write.
/** `{a="x",b="y"}` for the labels, escaped; '' for none. */
export function labelKey(labels: Record<string, string>): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

/** One metric family: its HELP and TYPE lines, then a sample per label set. */
export function metricFamily(name: string, type: 'counter' | 'gauge', help: string, samples: Iterable<[labels: Record<string, string>, value: number]>): string[] {
  const lines = [`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`];
  for (const [labels, value] of samples) lines.push(`${name}${labelKey(labels)} ${value}`);
  return lines;
}
