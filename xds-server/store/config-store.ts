// The Persona store: SQLite through drizzle, one row per config version. Every
// committed change (config, credential issue or revoke) is a new version, built
// into one immutable PolicySnapshot that xDS and ext_proc both report.
// Each write is planned first (a RevisionChange computed against the current
// state) and then committed. Embedded, both happen in one transaction; scaled
// out, the replication shell publishes the plan over NATS and commits it here
// only once the stream has accepted it (xds-server/replication/).
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { and, desc, eq, isNull, sql } from 'drizzle-orm';
import { drizzle, type BetterSQLite3Database } from 'drizzle-orm/better-sqlite3';
import { readMigrationFiles } from 'drizzle-orm/migrator';
import { configBundleSchema, type AgentCredentialRecord, type ConfigBundle, type ConfigIssue, type PolicySnapshot } from '../../config/bundle.ts';
import type { ConfigKind } from '../../config/schema.ts';
import { applyDocuments, describeChanges, emptyBundle, removeObject, type ConfigChange } from './bundle-merge.ts';
import { generateCredentialToken, hashCredentialSecret } from './credential-token.ts';
import { credentialIssueInputSchema, type CredentialRow, type CredentialSummary, type RevisionChange, type RevisionSummary } from './records.ts';
import { credentials, revisions } from './tables.ts';
import { resolveUpstreamCredentials, type SecretEnvironment } from './upstream-secrets.ts';

export type { CredentialRow, CredentialSummary, RevisionChange, RevisionSummary } from './records.ts';

export type ApplyResult = { ok: true; version: number; changed: string[] } | { ok: false; issues: ConfigIssue[] };

export type IssueCredentialResult = { ok: true; id: string; token: string; version: number } | { ok: false; issues: ConfigIssue[] };

/**
 * What the admin API reads and writes through: the store itself when embedded, or the
 * replicated store (xds-server/replication/) whose writes wait for NATS.
 */
export interface ConfigEditor {
  /** Latest snapshot (version starts at 1 with an empty bundle on a new database). */
  current(): PolicySnapshot;
  /** Validate with zod + validateBundleReferences, then write atomically as one new version. */
  apply(documents: unknown[], options: { actor: string; prune?: boolean; dryRun?: boolean }): ApplyResult | Promise<ApplyResult>;
  remove(kind: ConfigKind, name: string, actor: string): ApplyResult | Promise<ApplyResult>;
  issueCredential(input: { persona: string; agent: string; expiresAt?: string | null }, actor: string): IssueCredentialResult | Promise<IssueCredentialResult>;
  revokeCredential(id: string, actor: string): ApplyResult | Promise<ApplyResult>;
  /** Never the secret or its hash. */
  listCredentials(persona?: string): CredentialSummary[];
  history(limit?: number): RevisionSummary[];
  /** Called after every committed change with the new snapshot. */
  onChange(listener: (snapshot: PolicySnapshot) => void): () => void;
}

/** A write's answer and the change that commits it (null: nothing to commit). */
export interface Planned<T> {
  result: T;
  change: RevisionChange | null;
}

export type CommitOutcome = { status: 'applied' } | { status: 'already_applied' } | { status: 'refused'; reason: string };

export interface ReplicationPosition {
  /** Stream sequence of the last replicated revision applied here; 0 for none. */
  streamSequence: number;
  /** The latest revision was made here and never replicated (and is more than the initial empty config). */
  localOnlyHistory: boolean;
}

export interface ConfigStore extends ConfigEditor {
  apply(documents: unknown[], options: { actor: string; prune?: boolean; dryRun?: boolean }): ApplyResult;
  remove(kind: ConfigKind, name: string, actor: string): ApplyResult;
  issueCredential(input: { persona: string; agent: string; expiresAt?: string | null }, actor: string): IssueCredentialResult;
  revokeCredential(id: string, actor: string): ApplyResult;
  /** Each write computed against the current state, nothing written. */
  plan: {
    apply(documents: unknown[], options: { actor: string; prune?: boolean; dryRun?: boolean }): Planned<ApplyResult>;
    remove(kind: ConfigKind, name: string, actor: string): Planned<ApplyResult>;
    issueCredential(input: { persona: string; agent: string; expiresAt?: string | null }, actor: string): Planned<IssueCredentialResult>;
    revokeCredential(id: string, actor: string): Planned<ApplyResult>;
  };
  /**
   * Commits a replicated change in one transaction, idempotently: a stream sequence already
   * applied is skipped; a change that does not follow the latest version is refused.
   */
  commit(change: RevisionChange, streamSequence: number): CommitOutcome;
  replicationPosition(): ReplicationPosition;
  /** The whole current state as one base change: what starts the replicated history of an existing store. */
  baseChange(): RevisionChange;
  close(): void;
}

const migrationsFolder = join(import.meta.dirname, 'migrations');

type Db = BetterSQLite3Database;

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
        statements.insertRevision.run({ version: 1, createdAt: clock().toISOString(), actor: 'system', summary: 'initial empty config', bundleJson: JSON.stringify(emptyBundle()), streamSequence: null });
      }
    },
    { behavior: 'immediate' },
  );

  const listeners = new Set<(snapshot: PolicySnapshot) => void>();
  let snapshot = buildSnapshot();

  function readLatest(): { version: number; createdAt: string; actor: string; summary: string; bundle: ConfigBundle; bundleJson: string } {
    const row = statements.latestRevision.get();
    if (!row) throw new Error('the revisions table is empty; the store was not initialised');
    return { version: row.version, createdAt: row.createdAt, actor: row.actor, summary: row.summary, bundle: configBundleSchema.parse(JSON.parse(row.bundleJson)), bundleJson: row.bundleJson };
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

  /** Runs body in one IMMEDIATE transaction; when it committed something, rebuilds the snapshot and tells listeners. */
  function inTransaction<T>(body: () => { result: T; committed: boolean }): T {
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

  /** Embedded writes: plan and commit in the same transaction. */
  function planAndCommit<T>(plan: () => Planned<T>): T {
    return inTransaction(() => {
      const planned = plan();
      if (planned.change) writeChange(planned.change, null);
      return { result: planned.result, committed: planned.change !== null };
    });
  }

  function writeChange(change: RevisionChange, streamSequence: number | null): void {
    for (const row of change.credentialsIssued) statements.insertCredential.run(row);
    for (const { id, revokedAt } of change.credentialsRevoked) statements.revokeCredential.run({ id, revokedAt });
    statements.insertRevision.run({ version: change.version, createdAt: change.createdAt, actor: change.actor, summary: change.summary, bundleJson: change.bundleJson, streamSequence });
  }

  function bundleChange(latestVersion: number, bundle: ConfigBundle, changes: ConfigChange[], actor: string, verb: string): Planned<ApplyResult> {
    const at = clock().toISOString();
    const version = latestVersion + 1;
    // Deleting a Persona revokes its credentials in the same version.
    const deleted = changes.filter((c) => c.kind === 'Persona' && c.action === 'deleted').map((c) => c.name);
    const revoked = deleted.flatMap((persona) => statements.activeCredentialIdsOfPersona.all({ persona }).map((row) => row.id));
    const summary = `${verb}: ${describeChanges(changes)}${revoked.length > 0 ? `; revoked ${revoked.length} credential(s) of deleted personas` : ''}`;
    return {
      result: { ok: true, version, changed: [...changes.map((c) => `${c.kind}/${c.name}`), ...revoked.map((id) => `Credential/${id}`)] },
      change: { kind: 'change', version, createdAt: at, actor, summary, bundleJson: JSON.stringify(bundle), credentialsIssued: [], credentialsRevoked: revoked.map((id) => ({ id, revokedAt: at })) },
    };
  }

  const plan: ConfigStore['plan'] = {
    apply(documents, { actor, prune = false, dryRun = false }) {
      if (!Array.isArray(documents)) return { result: { ok: false, issues: [{ path: ['documents'], code: 'invalid_type', message: 'expected an array of documents' }] }, change: null };
      const latest = readLatest();
      const next = applyDocuments(latest.bundle, documents, { prune, env });
      if (!next.ok) return { result: next, change: null };
      if (next.changes.length === 0) return { result: { ok: true, version: latest.version, changed: [] }, change: null };
      if (dryRun) return { result: { ok: true, version: latest.version + 1, changed: next.changes.map((c) => `${c.kind}/${c.name}`) }, change: null };
      return bundleChange(latest.version, next.bundle, next.changes, actor, prune ? 'apply --prune' : 'apply');
    },

    remove(kind, name, actor) {
      const latest = readLatest();
      const next = removeObject(latest.bundle, kind, name);
      if (!next.ok) return { result: next, change: null };
      return bundleChange(latest.version, next.bundle, next.changes, actor, 'delete');
    },

    issueCredential(input, actor) {
      const parsed = credentialIssueInputSchema.safeParse(input);
      if (!parsed.success) {
        return { result: { ok: false, issues: parsed.error.issues.map((i) => ({ path: i.path.filter((p) => typeof p !== 'symbol'), code: i.code, message: i.message })) }, change: null };
      }
      const { persona, agent } = parsed.data;
      const now = clock();
      const expiresAt = parsed.data.expiresAt ? new Date(parsed.data.expiresAt).toISOString() : null;
      if (expiresAt !== null && Date.parse(expiresAt) <= now.getTime()) {
        return { result: { ok: false, issues: [{ path: ['expiresAt'], code: 'invalid_expiry', message: 'expiresAt is not in the future' }] }, change: null };
      }
      const latest = readLatest();
      if (!latest.bundle.personas.some((p) => p.name === persona)) {
        return { result: { ok: false, issues: [{ path: ['persona'], code: 'unknown_persona', message: `no persona named "${persona}"` }] }, change: null };
      }
      let token = generateCredentialToken();
      while (statements.credentialById.get({ id: token.id })) token = generateCredentialToken();
      const at = now.toISOString();
      const version = latest.version + 1;
      const row: CredentialRow = { id: token.id, persona, agent, secretHash: hashCredentialSecret(token.secret), createdAt: at, expiresAt, revokedAt: null };
      return {
        result: { ok: true, id: token.id, token: token.token, version },
        change: {
          kind: 'change',
          version,
          createdAt: at,
          actor,
          summary: `issued credential ${token.id} to agent "${agent}" for Persona/${persona}`,
          bundleJson: latest.bundleJson,
          credentialsIssued: [row],
          credentialsRevoked: [],
        },
      };
    },

    revokeCredential(id, actor) {
      const latest = readLatest();
      const row = statements.credentialById.get({ id });
      if (!row) return { result: { ok: false, issues: [{ path: ['id'], code: 'not_found', message: `no credential with id "${id}"` }] }, change: null };
      // Revoking twice is not an error and not a change.
      if (row.revokedAt !== null) return { result: { ok: true, version: latest.version, changed: [] }, change: null };
      const at = clock().toISOString();
      const version = latest.version + 1;
      return {
        result: { ok: true, version, changed: [`Credential/${id}`] },
        change: {
          kind: 'change',
          version,
          createdAt: at,
          actor,
          summary: `revoked credential ${id} of agent "${row.agent}" for Persona/${row.persona}`,
          bundleJson: latest.bundleJson,
          credentialsIssued: [],
          credentialsRevoked: [{ id, revokedAt: at }],
        },
      };
    },
  };

  function commitReplicated(change: RevisionChange, streamSequence: number): { result: CommitOutcome; committed: boolean } {
    const applied = statements.maxStreamSequence.get()?.value ?? 0;
    if (streamSequence <= applied) return { result: { status: 'already_applied' }, committed: false };
    const latest = statements.latestRevision.get()!;
    const refused = (reason: string) => ({ result: { status: 'refused' as const, reason }, committed: false });
    if (change.kind === 'base') {
      // The replica that published its own history as the base: the revision is already here.
      if (latest.version === change.version && latest.streamSequence === null && latest.bundleJson === change.bundleJson) {
        statements.setStreamSequence.run({ version: latest.version, streamSequence });
        return { result: { status: 'applied' }, committed: false };
      }
      const pristine = latest.version === 1 && (statements.credentialCount.get()?.n ?? 0) === 0;
      if (!pristine || change.version <= latest.version) {
        return refused(`a base revision (version ${change.version}) arrived but this store has its own history up to version ${latest.version}`);
      }
    } else {
      if (latest.version > 1 && latest.streamSequence === null) {
        return refused(`this store has its own history up to version ${latest.version} that the stream does not hold`);
      }
      if (change.version !== latest.version + 1) return refused(`version ${change.version} does not follow this store's latest version ${latest.version}`);
    }
    writeChange(change, streamSequence);
    return { result: { status: 'applied' }, committed: true };
  }

  return {
    current: () => snapshot,
    plan,
    apply: (documents, options) => planAndCommit(() => plan.apply(documents, options)),
    remove: (kind, name, actor) => planAndCommit(() => plan.remove(kind, name, actor)),
    issueCredential: (input, actor) => planAndCommit(() => plan.issueCredential(input, actor)),
    revokeCredential: (id, actor) => planAndCommit(() => plan.revokeCredential(id, actor)),

    commit(change, streamSequence) {
      return inTransaction(() => {
        try {
          return commitReplicated(change, streamSequence);
        } catch (error) {
          // e.g. a credential id that exists already: the transaction rolls back.
          throw Object.assign(new Error(`replicated version ${change.version} could not be written: ${(error as Error).message}`), { cause: error });
        }
      });
    },

    replicationPosition() {
      const latest = statements.latestRevision.get()!;
      return { streamSequence: statements.maxStreamSequence.get()?.value ?? 0, localOnlyHistory: latest.version > 1 && latest.streamSequence === null };
    },

    baseChange() {
      const latest = statements.latestRevision.get()!;
      return {
        kind: 'base',
        version: latest.version,
        createdAt: latest.createdAt,
        actor: latest.actor,
        summary: latest.summary,
        bundleJson: latest.bundleJson,
        credentialsIssued: statements.allCredentials.all().map((row) => ({ ...row })),
        credentialsRevoked: [],
      };
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
      .values({
        version: placeholder('version'),
        createdAt: placeholder('createdAt'),
        actor: placeholder('actor'),
        summary: placeholder('summary'),
        bundleJson: placeholder('bundleJson'),
        streamSequence: placeholder('streamSequence'),
      })
      .prepare(),
    maxStreamSequence: db.select({ value: sql<number | null>`max(${revisions.streamSequence})` }).from(revisions).prepare(),
    setStreamSequence: db.update(revisions).set({ streamSequence: sql`${placeholder('streamSequence')}` }).where(eq(revisions.version, placeholder('version'))).prepare(),
    credentialCount: db.select({ n: sql<number>`count(*)` }).from(credentials).prepare(),
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
      .values({
        id: placeholder('id'),
        persona: placeholder('persona'),
        agent: placeholder('agent'),
        secretHash: placeholder('secretHash'),
        createdAt: placeholder('createdAt'),
        expiresAt: placeholder('expiresAt'),
        revokedAt: placeholder('revokedAt'),
      })
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
