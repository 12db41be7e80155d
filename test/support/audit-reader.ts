// Reads the audit trail a running gateway's ext_proc writes (read-only, beside
// the writer), and searches a data directory for strings that must never be stored.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';

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

/** Audit events of one Persona, oldest first; waits until `until` accepts them (the log commits in batches). */
export async function auditRows(dataDir: string, persona: string, until: (rows: AuditRow[]) => boolean, timeoutMs = 3000): Promise<AuditRow[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const db = new Database(join(dataDir, 'audit', 'audit.sqlite'), { readonly: true, fileMustExist: true });
    let rows: AuditRow[];
    try {
      rows = (db.prepare('SELECT kind, persona, tool, verdict, body FROM audit_events WHERE persona = ? ORDER BY seq').all(persona) as { kind: string; persona: string; tool: string; verdict: string; body: string }[]).map(
        (r) => ({ ...r, body: JSON.parse(r.body) as AuditRow['body'] }),
      );
    } finally {
      db.close();
    }
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
