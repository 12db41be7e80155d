// Reads the audit trail a running gateway's ext_proc writes, through its audit
// API as an operator would, and searches a data directory for strings that must
// never be stored.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

export interface AuditRow {
  kind: string;
  persona: string | null;
  tool: string | null;
  verdict: string | null;
  body: {
    enforced: boolean | null;
    reasons: { stage: string; code: string; message: string }[];
    findingTypes: string[];
    riskScore: number | null;
    maskedArguments: unknown;
    agent: string | null;
  };
}

/** Audit events of one Persona, oldest first, read through ext_proc's audit API; waits until `until` accepts them (the log commits in batches). */
export async function auditRows(gateway: { dataDir: string; ports: { extProcHealth: number } }, persona: string, until: (rows: AuditRow[]) => boolean, timeoutMs = 3000): Promise<AuditRow[]> {
  const token = readFileSync(join(gateway.dataDir, 'internal-token'), 'utf8').trim();
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const rows: AuditRow[] = [];
    let cursor: string | null = null;
    do {
      const query = new URLSearchParams({ persona, order: 'oldest', limit: '500', ...(cursor ? { cursor } : {}) });
      const response = await fetch(`http://127.0.0.1:${gateway.ports.extProcHealth}/v1/audit/events?${query}`, { headers: { authorization: `Bearer ${token}` } });
      if (response.status !== 200) throw new Error(`audit API answered ${response.status}: ${await response.text()}`);
      const page = (await response.json()) as { events: (AuditRow['body'] & { kind: string; persona: string | null; tool: string | null; verdict: string | null })[]; nextCursor: string | null };
      for (const event of page.events) rows.push({ kind: event.kind, persona: event.persona, tool: event.tool, verdict: event.verdict, body: event });
      cursor = page.nextCursor;
    } while (cursor);
    if (until(rows) || Date.now() > deadline) return rows;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Files under `dir` (recursively) whose bytes contain `needle`. */
export function filesContaining(dir: string, needle: string): string[] {
  const found: string[] = [];
  const bytes = Buffer.from(needle, 'utf8');
  const walk = (path: string) => {
    for (const entry of readdirSync(path)) {
      const full = join(path, entry);
      let stats;
      try {
        stats = statSync(full);
      } catch {
        continue; // removed while we walked (journal rotation)
      }
      if (stats.isDirectory()) walk(full);
      else if (stats.isFile() && readFileSync(full).includes(bytes)) found.push(full);
    }
  };
  walk(dir);
  return found;
}
