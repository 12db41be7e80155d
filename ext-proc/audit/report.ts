// The incident report: everything one agent did in a time window, built from
// aggregate queries (never by loading every event), as JSON and as one
// self-contained HTML page with an SVG call-rate chart drawn from the data.
import type { AuditEvent } from './event.ts';
import type { AuditStore } from './store.ts';

export interface IncidentReportRequest {
  agent: string;
  fromMs: number;
  toMs: number;
  /** When the report was made; injected for reproducible output. */
  nowMs: number;
}

export interface RateBucket {
  startMs: number;
  calls: number;
  denied: number;
}

export interface IncidentReport {
  agent: string;
  fromMs: number;
  toMs: number;
  generatedAtMs: number;
  totals: { events: number; decisions: number; responses: number; allowed: number; denied: number; throttled: number; distinctTools: number; distinctArguments: number; sessions: number };
  users: { user: string | null; calls: number }[];
  personas: { persona: string | null; calls: number; firstMs: number; lastMs: number; configVersions: number[] }[];
  rate: { bucketMs: number; buckets: RateBucket[]; peak: RateBucket | null };
  tools: { tool: string | null; calls: number; denied: number; distinctArguments: number; topArguments: { digest: string | null; calls: number; maskedArguments: unknown }[] }[];
  denials: { code: string; throttle: boolean; count: number; firstMs: number; lastMs: number }[];
  upstreamStatuses: { status: number | null; count: number }[];
  alerts: AuditEvent[];
  configChanges: AuditEvent[];
  timeline: { atMs: number; what: string }[];
}

/** Reason codes that mean "slowed down" rather than "not allowed". */
export function isThrottleCode(code: string): boolean {
  return /rate|throttl|quota|budget|too_many/i.test(code);
}

const bucketSizesMs = [1_000, 5_000, 10_000, 30_000, 60_000, 300_000, 900_000, 1_800_000, 3_600_000, 10_800_000, 21_600_000, 43_200_000, 86_400_000];
const maxBuckets = 240;
/** Distinct argument sets tracked per tool; beyond it the count is a floor. */
const maxDistinctArgumentsPerTool = 250_000;

export function chooseBucketMs(spanMs: number): number {
  return bucketSizesMs.find((size) => spanMs / size <= maxBuckets) ?? Math.ceil(spanMs / maxBuckets);
}

export function buildIncidentReport(store: AuditStore, request: IncidentReportRequest): IncidentReport {
  const { agent, fromMs, toMs } = request;
  // One pass over the agent's rows (index agent, at_ms), aggregated here: on a
  // million events this is several times faster than one GROUP BY per table.
  const bucketMs = chooseBucketMs(toMs - fromMs);
  const buckets: RateBucket[] = Array.from({ length: Math.ceil((toMs - fromMs) / bucketMs) }, (_, i) => ({ startMs: fromMs + i * bucketMs, calls: 0, denied: 0 }));
  const kinds = { events: 0, decisions: 0, responses: 0, allowed: 0, denied: 0 };
  const toolStats = new Map<string | null, { calls: number; denied: number; digests: Map<string | null, { calls: number; seq: number }> }>();
  const allDigests = new Set<string | null>();
  const sessions = new Set<string | null>();
  const userCalls = new Map<string | null, number>();
  const personaStats = new Map<string | null, { calls: number; firstMs: number; lastMs: number; firstSeq: number; lastSeq: number }>();
  const denialsByCode = new Map<string, { code: string; throttle: boolean; count: number; firstMs: number; lastMs: number }>();
  let throttled = 0;
  let firstMs: number | null = null;
  let lastMs: number | null = null;
  const rows = store.iterate<{ seq: number; at: number; kind: string; verdict: string | null; tool: string | null; digest: string | null; codes: string; persona: string | null; user: string | null; session: string | null }>(
    'SELECT seq, at_ms AS at, kind, verdict, tool, arguments_digest AS digest, reason_codes AS codes, persona, user, session_id AS session FROM audit_events WHERE agent = ? AND at_ms >= ? AND at_ms < ? ORDER BY agent, at_ms',
    agent, fromMs, toMs,
  );
  for (const row of rows) {
    kinds.events += 1;
    firstMs ??= row.at;
    lastMs = row.at;
    userCalls.set(row.user, (userCalls.get(row.user) ?? 0) + 1);
    if (row.kind === 'response') kinds.responses += 1;
    if (row.kind !== 'decision') continue;
    const denied = row.verdict === 'deny';
    kinds.decisions += 1;
    if (denied) kinds.denied += 1;
    else kinds.allowed += 1;
    const bucket = buckets[Math.floor((row.at - fromMs) / bucketMs)];
    if (bucket) {
      bucket.calls += 1;
      if (denied) bucket.denied += 1;
    }
    let tool = toolStats.get(row.tool);
    if (!tool) toolStats.set(row.tool, (tool = { calls: 0, denied: 0, digests: new Map() }));
    tool.calls += 1;
    if (denied) tool.denied += 1;
    const digest = tool.digests.get(row.digest);
    if (digest) digest.calls += 1;
    else if (tool.digests.size < maxDistinctArgumentsPerTool) tool.digests.set(row.digest, { calls: 1, seq: row.seq });
    if (allDigests.size < maxDistinctArgumentsPerTool * 4) allDigests.add(row.digest);
    sessions.add(row.session);
    const persona = personaStats.get(row.persona);
    if (persona) {
      persona.calls += 1;
      persona.lastMs = row.at;
      persona.lastSeq = row.seq;
    } else personaStats.set(row.persona, { calls: 1, firstMs: row.at, lastMs: row.at, firstSeq: row.seq, lastSeq: row.seq });
    if (denied) {
      const codes = row.codes ? row.codes.split(' ') : ['(no reason recorded)'];
      if (codes.some(isThrottleCode)) throttled += 1;
      for (const code of codes) {
        const entry = denialsByCode.get(code);
        if (entry) {
          entry.count += 1;
          entry.lastMs = row.at;
        } else denialsByCode.set(code, { code, throttle: isThrottleCode(code), count: 1, firstMs: row.at, lastMs: row.at });
      }
    }
  }
  const peak = buckets.reduce<RateBucket | null>((best, b) => (b.calls > (best?.calls ?? 0) ? b : best), null);
  const tools = [...toolStats.entries()]
    .sort((a, b) => b[1].calls - a[1].calls)
    .slice(0, 20)
    .map(([name, stats], index) => ({
      tool: name,
      calls: stats.calls,
      denied: stats.denied,
      distinctArguments: stats.digests.size,
      topArguments: index < 8
        ? [...stats.digests.entries()].sort((a, b) => b[1].calls - a[1].calls).slice(0, 5).map(([digest, d]) => ({ digest, calls: d.calls, maskedArguments: bodyOf(store, d.seq)?.maskedArguments ?? null }))
        : [],
    }));
  const denials = [...denialsByCode.values()].sort((a, b) => b.count - a.count);
  const personas = [...personaStats.entries()].sort((a, b) => b[1].calls - a[1].calls).map(([name, p]) => ({
    persona: name,
    calls: p.calls,
    firstMs: p.firstMs,
    lastMs: p.lastMs,
    configVersions: [...new Set([bodyOf(store, p.firstSeq)?.configVersion, bodyOf(store, p.lastSeq)?.configVersion].filter((v): v is number => typeof v === 'number'))],
  }));
  const users = [...userCalls.entries()].sort((a, b) => b[1] - a[1]).slice(0, 10).map(([user, calls]) => ({ user, calls }));
  const upstreamStatuses = store
    .prepare(`SELECT json_extract(body, '$.upstreamStatus') AS status, COUNT(*) AS count FROM audit_events WHERE kind = 'response' AND at_ms >= ? AND at_ms < ? AND agent = ? GROUP BY status ORDER BY count DESC LIMIT 10`)
    .all(fromMs, toMs, agent) as { status: number | null; count: number }[];

  // Alerts about this agent, and config changes to the Personas it used, anywhere in the window.
  const personaNames = new Set(personas.map((p) => p.persona).filter((p): p is string => p !== null));
  const alerts = (store.prepare(`SELECT body FROM audit_events WHERE kind = 'alert' AND at_ms >= ? AND at_ms < ? AND (agent = ? OR agent IS NULL) ORDER BY seq LIMIT 200`).all(fromMs, toMs, agent) as { body: string }[])
    .map((r) => JSON.parse(r.body) as AuditEvent);
  const configChanges = (store.prepare(`SELECT body FROM audit_events WHERE kind = 'admin' AND at_ms >= ? AND at_ms < ? ORDER BY seq LIMIT 500`).all(fromMs, toMs) as { body: string }[])
    .map((r) => JSON.parse(r.body) as AuditEvent)
    .filter((e) => !e.admin || personaNames.size === 0 || [...personaNames].some((p) => e.admin!.target.includes(p)) || e.admin.target.includes(agent));

  const timeline: { atMs: number; what: string }[] = [];
  if (firstMs !== null) timeline.push({ atMs: firstMs, what: 'first call in the window' });
  const firstDeny = denials.filter((d) => !d.throttle).sort((a, b) => a.firstMs - b.firstMs)[0];
  if (firstDeny) timeline.push({ atMs: firstDeny.firstMs, what: `first denial (${firstDeny.code})` });
  const firstThrottle = denials.filter((d) => d.throttle).sort((a, b) => a.firstMs - b.firstMs)[0];
  if (firstThrottle) timeline.push({ atMs: firstThrottle.firstMs, what: `first throttling (${firstThrottle.code})` });
  if (peak) timeline.push({ atMs: peak.startMs, what: `peak call rate: ${peak.calls} calls in ${formatDuration(bucketMs)}` });
  for (const alert of alerts) timeline.push({ atMs: alert.at, what: `alert ${alert.alert?.name ?? ''} (${alert.alert?.severity ?? ''}): ${alert.alert?.message ?? ''}` });
  for (const change of configChanges) timeline.push({ atMs: change.at, what: `config change by ${change.admin?.actor ?? '?'}: ${change.admin?.action ?? ''} ${change.admin?.target ?? ''} v${change.admin?.beforeVersion ?? '-'} → v${change.admin?.afterVersion ?? '-'}` });
  if (lastMs !== null) timeline.push({ atMs: lastMs, what: 'last call in the window' });
  timeline.sort((a, b) => a.atMs - b.atMs);

  return {
    agent,
    fromMs,
    toMs,
    generatedAtMs: request.nowMs,
    totals: { ...kinds, throttled, distinctTools: toolStats.size, distinctArguments: allDigests.size, sessions: sessions.size },
    users,
    personas,
    rate: { bucketMs, buckets, peak },
    tools,
    denials,
    upstreamStatuses,
    alerts,
    configChanges,
    timeline,
  };
}

function bodyOf(store: AuditStore, seq: number): AuditEvent | null {
  const row = store.prepare('SELECT body FROM audit_events WHERE seq = ?').get(seq) as { body: string } | undefined;
  return row ? (JSON.parse(row.body) as AuditEvent) : null;
}

export function formatDuration(ms: number): string {
  if (ms % 86_400_000 === 0) return `${ms / 86_400_000} d`;
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000} h`;
  if (ms % 60_000 === 0) return `${ms / 60_000} min`;
  return `${ms / 1000} s`;
}

const iso = (ms: number) => new Date(ms).toISOString().replace('.000Z', 'Z');

export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** Round up to 1, 2 or 5 times a power of ten. */
function niceCeiling(value: number): number {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  return ([1, 2, 5, 10].find((m) => m * power >= value) ?? 10) * power;
}

/** Stacked bars (allowed, denied) per bucket, with labelled axes. Pure: same data, same SVG. */
export function renderRateChart(rate: IncidentReport['rate']): string {
  const width = 960;
  const height = 320;
  const left = 70;
  const right = 20;
  const top = 20;
  const bottom = 60;
  const plotWidth = width - left - right;
  const plotHeight = height - top - bottom;
  const maxCalls = niceCeiling(Math.max(0, ...rate.buckets.map((b) => b.calls)));
  const barWidth = plotWidth / Math.max(1, rate.buckets.length);
  const y = (value: number) => top + plotHeight - (value / maxCalls) * plotHeight;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="Calls per ${escapeHtml(formatDuration(rate.bucketMs))}">`);
  for (let i = 0; i <= 4; i += 1) {
    const value = (maxCalls / 4) * i;
    parts.push(`<line x1="${left}" x2="${width - right}" y1="${y(value).toFixed(1)}" y2="${y(value).toFixed(1)}" stroke="#ddd"/>`);
    parts.push(`<text class="tick y" x="${left - 6}" y="${(y(value) + 4).toFixed(1)}" text-anchor="end">${Math.round(value)}</text>`);
  }
  rate.buckets.forEach((bucket, i) => {
    if (bucket.calls === 0) return;
    const x = (left + i * barWidth).toFixed(2);
    const w = Math.max(0.5, barWidth - 0.5).toFixed(2);
    const allowed = bucket.calls - bucket.denied;
    parts.push(`<rect class="bar allowed" x="${x}" y="${y(bucket.calls).toFixed(1)}" width="${w}" height="${(plotHeight * (allowed / maxCalls)).toFixed(1)}" fill="#4a7bd0"><title>${iso(bucket.startMs)}: ${bucket.calls} calls, ${bucket.denied} denied</title></rect>`);
    if (bucket.denied > 0) parts.push(`<rect class="bar denied" x="${x}" y="${y(bucket.denied).toFixed(1)}" width="${w}" height="${(plotHeight * (bucket.denied / maxCalls)).toFixed(1)}" fill="#d0493f"/>`);
  });
  const labelEvery = Math.max(1, Math.ceil(rate.buckets.length / 8));
  rate.buckets.forEach((bucket, i) => {
    if (i % labelEvery !== 0) return;
    const x = left + i * barWidth;
    parts.push(`<text class="tick x" x="${x.toFixed(1)}" y="${top + plotHeight + 16}" text-anchor="start">${escapeHtml(iso(bucket.startMs).slice(5, 16).replace('T', ' '))}</text>`);
  });
  parts.push(`<line x1="${left}" x2="${left}" y1="${top}" y2="${top + plotHeight}" stroke="#333"/>`);
  parts.push(`<line x1="${left}" x2="${width - right}" y1="${top + plotHeight}" y2="${top + plotHeight}" stroke="#333"/>`);
  parts.push(`<text class="axis-title" x="${left + plotWidth / 2}" y="${height - 12}" text-anchor="middle">Time (UTC)</text>`);
  parts.push(`<text class="axis-title" transform="translate(16 ${top + plotHeight / 2}) rotate(-90)" text-anchor="middle">Calls per ${escapeHtml(formatDuration(rate.bucketMs))}</text>`);
  parts.push('</svg>');
  return parts.join('');
}

export function renderIncidentReportHtml(report: IncidentReport): string {
  const table = (headers: string[], rows: unknown[][]) =>
    `<table><thead><tr>${headers.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr></thead><tbody>${rows.map((r) => `<tr>${r.map((c) => `<td>${escapeHtml(c)}</td>`).join('')}</tr>`).join('')}</tbody></table>`;
  const t = report.totals;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Incident report: ${escapeHtml(report.agent)}</title>
<style>body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1000px;color:#222}table{border-collapse:collapse;margin:.5em 0 1.5em}th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}th{background:#f3f3f3}code{font-size:12px}.tick{font-size:11px;fill:#555}.axis-title{font-size:12px;fill:#222}.kpi{display:inline-block;margin-right:2em}</style></head>
<body>
<h1>Incident report: agent <code>${escapeHtml(report.agent)}</code></h1>
<p>Window ${escapeHtml(iso(report.fromMs))} to ${escapeHtml(iso(report.toMs))}. Generated ${escapeHtml(iso(report.generatedAtMs))} from the Mandate audit trail.</p>
<section id="summary"><h2>Summary</h2>
<p>${[['calls', t.decisions], ['allowed', t.allowed], ['denied', t.denied], ['throttled', t.throttled], ['tools', t.distinctTools], ['distinct argument sets', t.distinctArguments], ['sessions', t.sessions]].map(([k, v]) => `<span class="kpi"><b>${escapeHtml(v)}</b> ${escapeHtml(k)}</span>`).join('')}</p></section>
<section id="timeline"><h2>Timeline</h2>${table(['time (UTC)', 'what'], report.timeline.map((e) => [iso(e.atMs), e.what]))}</section>
<section id="rate"><h2>Call rate</h2>${renderRateChart(report.rate)}<p>Blue: allowed; red: denied. Peak: ${escapeHtml(report.rate.peak ? `${report.rate.peak.calls} calls at ${iso(report.rate.peak.startMs)}` : 'none')}.</p></section>
<section id="tools"><h2>Tools and arguments</h2>${table(['tool', 'calls', 'denied', 'distinct argument sets', 'most repeated arguments (masked)'], report.tools.map((tool) => [tool.tool ?? '(none)', tool.calls, tool.denied, tool.distinctArguments, tool.topArguments.map((a) => `${a.calls}× ${JSON.stringify(a.maskedArguments)}`).join('\n')]))}</section>
<section id="denials"><h2>Denied and throttled</h2>${table(['reason code', 'kind', 'count', 'first (UTC)', 'last (UTC)'], report.denials.map((d) => [d.code, d.throttle ? 'throttled' : 'denied', d.count, iso(d.firstMs), iso(d.lastMs)]))}</section>
<section id="personas"><h2>Persona and rules in force</h2>${table(['Persona', 'config versions', 'calls', 'first', 'last'], report.personas.map((p) => [p.persona ?? '(none)', p.configVersions.join(', '), p.calls, iso(p.firstMs), iso(p.lastMs)]))}
${table(['time (UTC)', 'who', 'change', 'versions', 'detail'], report.configChanges.map((c) => [iso(c.at), c.admin?.actor, `${c.admin?.action} ${c.admin?.target}`, `${c.admin?.beforeVersion ?? '-'} → ${c.admin?.afterVersion ?? '-'}`, c.admin?.detail]))}</section>
<section id="alerts"><h2>Alerts</h2>${report.alerts.length ? table(['time (UTC)', 'alert', 'severity', 'message'], report.alerts.map((a) => [iso(a.at), a.alert?.name, a.alert?.severity, a.alert?.message])) : '<p>No alert fired in this window.</p>'}</section>
<section id="users"><h2>Users and upstream answers</h2>${table(['user', 'events'], report.users.map((u) => [u.user ?? '(none)', u.calls]))}${table(['upstream status', 'responses'], report.upstreamStatuses.map((s) => [s.status ?? '(none)', s.count]))}</section>
</body></html>
`;
}
