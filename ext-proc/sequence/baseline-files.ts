// Learned baselines outlive the process: each Persona's baseline is a JSON file
// (a versioned BaselineSnapshot) in the baseline directory, loaded at start,
// written when exported or imported through the API, and on shutdown.
import { mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { baselineSnapshotSchema, type BaselineRegistry, type BaselineSnapshot } from './baseline.ts';

const fileName = (persona: string) => `${encodeURIComponent(persona)}.json`;

/** Loads every valid baseline file; a bad file is reported and skipped, never fatal. */
export function loadBaselines(directory: string, registry: BaselineRegistry, log: (event: string, fields: Record<string, unknown>) => void): number {
  mkdirSync(directory, { recursive: true });
  let loaded = 0;
  for (const name of readdirSync(directory).filter((f) => f.endsWith('.json'))) {
    try {
      const parsed = baselineSnapshotSchema.safeParse(JSON.parse(readFileSync(join(directory, name), 'utf8')));
      if (!parsed.success) {
        log('baseline_file_rejected', { file: name, issues: parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`) });
        continue;
      }
      registry.import(parsed.data);
      loaded += 1;
    } catch (error) {
      log('baseline_file_rejected', { file: name, error: (error as Error).message });
    }
  }
  return loaded;
}

/** Writes a snapshot atomically (write then rename), so a crash never leaves half a file. */
export function saveBaseline(directory: string, snapshot: BaselineSnapshot): void {
  mkdirSync(directory, { recursive: true });
  const target = join(directory, fileName(snapshot.persona));
  writeFileSync(`${target}.tmp`, JSON.stringify(snapshot), { mode: 0o600 });
  renameSync(`${target}.tmp`, target);
}
