// The Persona store: SQLite through drizzle, one row per config version. Every
// committed change (config, credential issue or revoke) is a new version, built
// into one immutable PolicySnapshot that xDS and ext_proc both report.
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { and, desc, eq, isNull, sql } from 'drizzle-orm';
import { drizzle, type BetterSQLite3Database } from 'drizzle-orm/better-sqlite3';
import { readMigrationFiles } from 'drizzle-orm/migrator';
import { configBundleSchema, type AgentCredentialRecord, type ConfigBundle, type ConfigIssue, type PolicySnapshot } from '../../config/bundle.ts';
import type { ConfigKind } from '../../config/schema.ts';
import { applyDocuments, describeChanges, emptyBundle, removeObject, type ConfigChange } from './bundle-merge.ts';
import { generateCredentialToken, hashCredentialSecret } from './credential-token.ts';
import { credentialIssueInputSchema, type CredentialSummary, type RevisionSummary } from './records.ts';
import { credentials, revisions } from './tables.ts';
import { resolveUpstreamCredentials, type SecretEnvironment } from './upstream-secrets.ts';

export type { CredentialSummary, RevisionSummary } from './records.ts';

export type ApplyResult = { ok: true; version: number; changed: string[] } | { ok: false; issues: ConfigIssue[] };

export type IssueCredentialResult = { ok: true; id: string; token: string; version: number } | { ok: false; issues: ConfigIssue[] };

export interface ConfigStore {
  /** Latest snapshot (version starts at 1 with an empty bundle on a new database). */
  current(): PolicySnapshot;
  /** Validate with zod + validateBundleReferences, then write atomically as one new version. */
  apply(documents: unknown[], options: { actor: string; prune?: boolean; dryRun?: boolean }): ApplyResult;
  remove(kind: ConfigKind, name: string, actor: string): ApplyResult;
  issueCredential(input: { persona: string; agent: string; expiresAt?: string | null }, actor: string): IssueCredentialResult;
  revokeCredential(id: string, actor: string): ApplyResult;
  /** Never the secret or its hash. */
  listCredentials(persona?: string): CredentialSummary[];
  history(limit?: number): RevisionSummary[];
  /** Called after every committed change with the new snapshot. */
  onChange(listener: (snapshot: PolicySnapshot) => void): () => void;
  close(): void;
}

const migrationsFolder = join(import.meta.dirname, 'migrations');

type Db = BetterSQLite3Database;
type Outcome<T> = { result: T; committed: boolean };

export function openConfigStore(options: { path: string; env?: Record<string, string | undefined>; clock?: () => Date }): ConfigStore {
  const env: SecretEnvironment = options.env ?? process.env;
  const clock = options.clock ?? (() => new Date());
  const sqlite = new Database(options.path);
  // exec, not pragma(): pragma() prepares a throwaway statement (see retainUntilExit).
  sqlite.exec('PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000;');
  const db: Db = drizzle({ client: sqlite });
  applyMigrations(sqlite);
  const statements = prepareStatements(db);
  retainUntilExit(sqlite, statements);

  db.transaction(
    () => {
      if (!statements.latestRevision.get()) {
        statements.insertRevision.run({ version: 1, createdAt: clock().toISOString(), actor: 'system', summary: 'initial empty config', bundleJson: JSON.stringify(emptyBundle()) });
      }
    },
    { behavior: 'immediate' },
  );

  const listeners = new Set<(snapshot: PolicySnapshot) => void>();
  let snapshot = buildSnapshot();

  function readLatest(): { version: number; createdAt: string; actor: string; summary: string; bundle: ConfigBundle } {
    const row = statements.latestRevision.get();
    if (!row) throw new Error('the revisions table is empty; the store was not initialised');
    return { version: row.version, createdAt: row.createdAt, actor: row.actor, summary: row.summary, bundle: configBundleSchema.parse(JSON.parse(row.bundleJson)) };
  }

  function buildSnapshot(): PolicySnapshot {
    const latest = readLatest();
    const now = clock().getTime();
    const records: AgentCredentialRecord[] = statements.activeCredentials
      .all()
      .filter((row) => row.expiresAt === null || Date.parse(row.expiresAt) > now)
      .map((row) => ({ id: row.id, agent: row.agent, persona: row.persona, secretHash: row.secretHash, createdAt: row.createdAt, expiresAt: row.expiresAt }));
    return deepFreeze({
      version: latest.version,
      createdAt: latest.createdAt,
      revision: { actor: latest.actor, summary: latest.summary },
      bundle: latest.bundle,
      credentials: records,
      upstreamCredentials: resolveUpstreamCredentials(latest.bundle, env).headers,
    });
  }

  /** Runs a change in one IMMEDIATE transaction; on commit, rebuilds the snapshot and tells listeners. */
  function change<T>(body: () => Outcome<T>): T {
    const outcome = db.transaction(body, { behavior: 'immediate' });
    if (outcome.committed) {
      snapshot = buildSnapshot();
      for (const listener of listeners) {
        try {
          listener(snapshot);
        } catch (error) {
          // A failing listener must not undo or hide a committed change.
          process.emitWarning(`config store onChange listener failed: ${error instanceof Error ? error.message : String(error)}`);
        }
      }
    }
    return outcome.result;
  }

  function insertRevision(version: number, bundle: ConfigBundle, actor: string, summary: string, at: string): void {
    statements.insertRevision.run({ version, createdAt: at, actor, summary, bundleJson: JSON.stringify(bundle) });
  }

  /** Revokes the credentials of deleted Personas in the same version; returns their ids. */
  function revokePersonaCredentials(changes: readonly ConfigChange[], at: string): string[] {
    const deleted = changes.filter((c) => c.kind === 'Persona' && c.action === 'deleted').map((c) => c.name);
    const ids = deleted.flatMap((persona) => statements.activeCredentialIdsOfPersona.all({ persona }).map((row) => row.id));
    for (const id of ids) statements.revokeCredential.run({ id, revokedAt: at });
    return ids;
  }

  function commitBundleChange(latestVersion: number, bundle: ConfigBundle, changes: ConfigChange[], actor: string, verb: string): Outcome<ApplyResult> {
    const at = clock().toISOString();
    const version = latestVersion + 1;
    const revoked = revokePersonaCredentials(changes, at);
    const summary = `${verb}: ${describeChanges(changes)}${revoked.length > 0 ? `; revoked ${revoked.length} credential(s) of deleted personas` : ''}`;
    insertRevision(version, bundle, actor, summary, at);
    return { result: { ok: true, version, changed: [...changes.map((c) => `${c.kind}/${c.name}`), ...revoked.map((id) => `Credential/${id}`)] }, committed: true };
  }

  return {
    current: () => snapshot,

    apply(documents, { actor, prune = false, dryRun = false }) {
      if (!Array.isArray(documents)) return { ok: false, issues: [{ path: ['documents'], code: 'invalid_type', message: 'expected an array of documents' }] };
      return change((): Outcome<ApplyResult> => {
        const latest = readLatest();
        const next = applyDocuments(latest.bundle, documents, { prune, env });
        if (!next.ok) return { result: next, committed: false };
        if (next.changes.length === 0) return { result: { ok: true, version: latest.version, changed: [] }, committed: false };
        if (dryRun) return { result: { ok: true, version: latest.version + 1, changed: next.changes.map((c) => `${c.kind}/${c.name}`) }, committed: false };
        return commitBundleChange(latest.version, next.bundle, next.changes, actor, prune ? 'apply --prune' : 'apply');
      });
    },

    remove(kind, name, actor) {
      return change((): Outcome<ApplyResult> => {
        const latest = readLatest();
        const next = removeObject(latest.bundle, kind, name);
        if (!next.ok) return { result: next, committed: false };
        return commitBundleChange(latest.version, next.bundle, next.changes, actor, 'delete');
      });
    },

    issueCredential(input, actor) {
      const parsed = credentialIssueInputSchema.safeParse(input);
      if (!parsed.success) {
        return { ok: false, issues: parsed.error.issues.map((i) => ({ path: i.path.filter((p) => typeof p !== 'symbol'), code: i.code, message: i.message })) };
      }
      const { persona, agent } = parsed.data;
      const now = clock();
      const expiresAt = parsed.data.expiresAt ? new Date(parsed.data.expiresAt).toISOString() : null;
      if (expiresAt !== null && Date.parse(expiresAt) <= now.getTime()) {
        return { ok: false, issues: [{ path: ['expiresAt'], code: 'invalid_expiry', message: 'expiresAt is not in the future' }] };
      }
      return change((): Outcome<IssueCredentialResult> => {
        const latest = readLatest();
        if (!latest.bundle.personas.some((p) => p.name === persona)) {
          return { result: { ok: false, issues: [{ path: ['persona'], code: 'unknown_persona', message: `no persona named "${persona}"` }] }, committed: false };
        }
        let token = generateCredentialToken();
        while (statements.credentialById.get({ id: token.id })) token = generateCredentialToken();
        const at = now.toISOString();
        statements.insertCredential.run({ id: token.id, persona, agent, secretHash: hashCredentialSecret(token.secret), createdAt: at, expiresAt });
        const version = latest.version + 1;
        insertRevision(version, latest.bundle, actor, `issued credential ${token.id} to agent "${agent}" for Persona/${persona}`, at);
        return { result: { ok: true, id: token.id, token: token.token, version }, committed: true };
      });
    },

    revokeCredential(id, actor) {
      return change((): Outcome<ApplyResult> => {
        const latest = readLatest();
        const row = statements.credentialById.get({ id });
        if (!row) return { result: { ok: false, issues: [{ path: ['id'], code: 'not_found', message: `no credential with id "${id}"` }] }, committed: false };
        // Revoking twice is not an error and not a change.
        if (row.revokedAt !== null) return { result: { ok: true, version: latest.version, changed: [] }, committed: false };
        const at = clock().toISOString();
        statements.revokeCredential.run({ id, revokedAt: at });
        const version = latest.version + 1;
        insertRevision(version, latest.bundle, actor, `revoked credential ${id} of agent "${row.agent}" for Persona/${row.persona}`, at);
        return { result: { ok: true, version, changed: [`Credential/${id}`] }, committed: true };
      });
    },

    listCredentials(persona) {
      const now = clock().getTime();
      const rows = persona === undefined ? statements.allCredentials.all() : statements.credentialsOfPersona.all({ persona });
      return rows.map((row) => ({
        id: row.id,
        persona: row.persona,
        agent: row.agent,
        createdAt: row.createdAt,
        expiresAt: row.expiresAt,
        revokedAt: row.revokedAt,
        status: row.revokedAt !== null ? 'revoked' : row.expiresAt !== null && Date.parse(row.expiresAt) <= now ? 'expired' : 'active',
      }));
    },

    history(limit = 50) {
      return statements.history.all({ limit: Math.max(1, Math.min(limit, 1000)) });
    },

    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },

    close() {
      listeners.clear();
      sqlite.close();
    },
  };
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) deepFreeze(inner);
  }
  return value;
}

/**
 * Every query the store runs, prepared once. Node 24's ObjectWrap destructor
 * aborts the process when V8 collects a better-sqlite3 Statement during a GC
 * that runs outside a JS context, so the store creates no throwaway statements.
 */
function prepareStatements(db: Db) {
  const placeholder = sql.placeholder;
  return {
    latestRevision: db.select().from(revisions).orderBy(desc(revisions.version)).limit(1).prepare(),
    insertRevision: db
      .insert(revisions)
      .values({ version: placeholder('version'), createdAt: placeholder('createdAt'), actor: placeholder('actor'), summary: placeholder('summary'), bundleJson: placeholder('bundleJson') })
      .prepare(),
    history: db
      .select({ version: revisions.version, createdAt: revisions.createdAt, actor: revisions.actor, summary: revisions.summary })
      .from(revisions)
      .orderBy(desc(revisions.version))
      .limit(placeholder('limit'))
      .prepare(),
    activeCredentials: db.select().from(credentials).where(isNull(credentials.revokedAt)).orderBy(credentials.id).prepare(),
    activeCredentialIdsOfPersona: db
      .select({ id: credentials.id })
      .from(credentials)
      .where(and(eq(credentials.persona, placeholder('persona')), isNull(credentials.revokedAt)))
      .prepare(),
    credentialById: db.select().from(credentials).where(eq(credentials.id, placeholder('id'))).prepare(),
    allCredentials: db.select().from(credentials).orderBy(desc(credentials.createdAt), credentials.id).prepare(),
    credentialsOfPersona: db.select().from(credentials).where(eq(credentials.persona, placeholder('persona'))).orderBy(desc(credentials.createdAt), credentials.id).prepare(),
    insertCredential: db
      .insert(credentials)
      .values({ id: placeholder('id'), persona: placeholder('persona'), agent: placeholder('agent'), secretHash: placeholder('secretHash'), createdAt: placeholder('createdAt'), expiresAt: placeholder('expiresAt') })
      .prepare(),
    revokeCredential: db.update(credentials).set({ revokedAt: sql`${placeholder('revokedAt')}` }).where(eq(credentials.id, placeholder('id'))).prepare(),
  };
}

/**
 * Applies drizzle-kit migrations from ./migrations, recording them in drizzle's
 * own __drizzle_migrations table exactly as drizzle's migrator does. Done here
 * with exec and retained statements because drizzle's migrator prepares
 * throwaway statements (see prepareStatements).
 */
function applyMigrations(sqlite: Database.Database): void {
  const migrations = readMigrationFiles({ migrationsFolder });
  sqlite.exec('CREATE TABLE IF NOT EXISTS "__drizzle_migrations" (id SERIAL PRIMARY KEY, hash text NOT NULL, created_at numeric)');
  const last = sqlite.prepare('SELECT created_at FROM "__drizzle_migrations" ORDER BY created_at DESC LIMIT 1');
  const record = sqlite.prepare('INSERT INTO "__drizzle_migrations" ("hash", "created_at") VALUES (?, ?)');
  retainUntilExit(last, record);
  sqlite.transaction(() => {
    const latest = last.get() as { created_at: number | string } | undefined;
    for (const migration of migrations) {
      if (latest !== undefined && Number(latest.created_at) >= migration.folderMillis) continue;
      for (const statement of migration.sql) if (statement.trim() !== '') sqlite.exec(statement);
      record.run(migration.hash, migration.folderMillis);
    }
  }).immediate();
}

// Kept reachable for the life of the process; see prepareStatements for why.
const retained: unknown[] = [];
function retainUntilExit(...objects: unknown[]): void {
  retained.push(...objects);
}
