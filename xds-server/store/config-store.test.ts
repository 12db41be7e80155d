import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { PolicySnapshot } from '../../config/bundle.ts';
import { openConfigStore, type ConfigStore } from './config-store.ts';
import { findCredentialForToken, parseCredentialToken } from './credential-token.ts';

const ticketsUpstream = { kind: 'Upstream', name: 'tickets', protocol: 'mcp', url: 'http://127.0.0.1:3001/mcp' };
const billingUpstream = { kind: 'Upstream', name: 'billing', protocol: 'rest', url: 'http://127.0.0.1:3002', auth: { type: 'bearer', token: { value: 'billing-secret' } } };
const supportPersona = {
  kind: 'Persona',
  name: 'support',
  description: 'Answers customer tickets',
  grants: [{ upstream: 'tickets', tools: [{ name: 'get_*' }] }],
};

function withStore(run: (store: ConfigStore, dir: string) => void, options: { env?: Record<string, string>; clock?: () => Date } = {}): void {
  const dir = mkdtempSync(join(tmpdir(), 'mandate-store-'));
  const store = openConfigStore({ path: join(dir, 'config.db'), env: options.env ?? {}, ...(options.clock ? { clock: options.clock } : {}) });
  try {
    run(store, dir);
  } finally {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

test('a fresh database is migrated, in WAL mode, and starts at version 1 with an empty bundle', () => {
  withStore((store, dir) => {
    const snapshot = store.current();
    assert.equal(snapshot.version, 1);
    assert.deepEqual(snapshot.bundle, { upstreams: [], skills: [], personas: [] });
    assert.deepEqual(snapshot.credentials, []);
    const raw = new Database(join(dir, 'config.db'), { readonly: true });
    try {
      const tables = raw.prepare("select name from sqlite_master where type = 'table' order by name").all() as { name: string }[];
      assert.deepEqual(tables.map((t) => t.name), ['__drizzle_migrations', 'credentials', 'revisions']);
      assert.equal((raw.prepare('select count(*) as n from __drizzle_migrations').get() as { n: number }).n, 2);
      assert.equal(raw.pragma('journal_mode', { simple: true }), 'wal');
    } finally {
      raw.close();
    }
  });
});

test('each change is a new version; reopening the file keeps the latest version and bundle', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mandate-store-'));
  const path = join(dir, 'config.db');
  try {
    const store = openConfigStore({ path, env: {} });
    const result = store.apply([ticketsUpstream, supportPersona], { actor: 'alice' });
    assert.deepEqual(result, { ok: true, version: 2, changed: ['Persona/support', 'Upstream/tickets'] });
    store.close();
    const reopened = openConfigStore({ path, env: {} });
    assert.equal(reopened.current().version, 2);
    assert.deepEqual(reopened.current().bundle.personas.map((p) => p.name), ['support']);
    assert.deepEqual(reopened.history().map((r) => [r.version, r.actor]), [[2, 'alice'], [1, 'system']]);
    assert.match(reopened.history()[0]?.summary ?? '', /created Persona\/support, created Upstream\/tickets/);
    reopened.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an apply that changes nothing does not create a version; an edit does', () => {
  withStore((store) => {
    store.apply([ticketsUpstream, supportPersona], { actor: 'alice' });
    assert.deepEqual(store.apply([supportPersona], { actor: 'alice' }), { ok: true, version: 2, changed: [] });
    assert.equal(store.history().length, 2);
    const edited = store.apply([{ ...supportPersona, mode: 'monitor' }], { actor: 'bob' });
    assert.deepEqual(edited, { ok: true, version: 3, changed: ['Persona/support'] });
    assert.equal(store.current().bundle.personas[0]?.mode, 'monitor');
    // Objects not mentioned are kept without prune.
    assert.equal(store.current().bundle.upstreams.length, 1);
  });
});

test('one bad document rejects the whole apply with its path, and nothing is applied', () => {
  withStore((store) => {
    const bad = { ...supportPersona, name: 'other', grants: [{ upstream: 'tickets', tools: [{ name: 'x' }], bogus: true }] };
    const result = store.apply([ticketsUpstream, supportPersona, bad], { actor: 'alice' });
    assert.equal(result.ok, false);
    assert.ok(!result.ok);
    assert.deepEqual(result.issues.map((i) => [i.path, i.code]), [[['documents', 2, 'grants', 0], 'unrecognized_keys']]);
    assert.equal(store.current().version, 1);
    assert.deepEqual(store.current().bundle.upstreams, []);
    assert.equal(store.history().length, 1);
  });
});

test('reference errors point at the submitted document, or at the stored object by name', () => {
  withStore((store) => {
    const dangling = { ...supportPersona, grants: [{ upstream: 'tickets', tools: [{ name: 'a' }] }, { upstream: 'nowhere', tools: [{ name: 'a' }] }] };
    const result = store.apply([ticketsUpstream, dangling], { actor: 'alice' });
    assert.ok(!result.ok);
    assert.deepEqual(result.issues, [{ path: ['documents', 1, 'grants', 1, 'upstream'], code: 'unknown_upstream', message: 'no upstream named "nowhere"' }]);

    assert.ok(store.apply([ticketsUpstream, supportPersona], { actor: 'alice' }).ok);
    const refused = store.remove('Upstream', 'tickets', 'alice');
    assert.ok(!refused.ok);
    assert.deepEqual(refused.issues.map((i) => [i.path, i.code]), [[['personas', 'support', 'grants', 0, 'upstream'], 'still_referenced']]);
    // Changing the upstream to REST breaks the stored persona's tool grant: reported by name.
    const mismatch = store.apply([{ ...ticketsUpstream, protocol: 'rest' }], { actor: 'alice' });
    assert.ok(!mismatch.ok);
    assert.deepEqual(mismatch.issues.map((i) => [i.path, i.code]), [[['personas', 'support', 'grants', 0, 'tools'], 'protocol_mismatch']]);
    assert.equal(store.current().version, 2);
    assert.deepEqual(store.remove('Skill', 'nope', 'alice'), { ok: false, issues: [{ path: ['skills', 'nope'], code: 'not_found', message: 'no Skill named "nope"' }] });
  });
});

test('duplicate documents and unknown kinds are reported per document', () => {
  withStore((store) => {
    const result = store.apply([ticketsUpstream, ticketsUpstream, { kind: 'Robot', name: 'r' }], { actor: 'alice' });
    assert.ok(!result.ok);
    assert.deepEqual(result.issues.map((i) => [i.path, i.code]), [
      [['documents', 1, 'name'], 'duplicate_document'],
      [['documents', 2, 'kind'], 'invalid_union'],
    ]);
  });
});

test('prune removes what the documents do not mention; dryRun reports without committing', () => {
  withStore((store) => {
    store.apply([ticketsUpstream, billingUpstream, supportPersona], { actor: 'alice' });
    const preview = store.apply([ticketsUpstream, supportPersona], { actor: 'alice', prune: true, dryRun: true });
    assert.deepEqual(preview, { ok: true, version: 3, changed: ['Upstream/billing'] });
    assert.equal(store.current().version, 2);
    assert.equal(store.current().bundle.upstreams.length, 2);
    const pruned = store.apply([ticketsUpstream, supportPersona], { actor: 'alice', prune: true });
    assert.deepEqual(pruned, { ok: true, version: 3, changed: ['Upstream/billing'] });
    assert.deepEqual(store.current().bundle.upstreams.map((u) => u.name), ['tickets']);
  });
});

test('credentials: token format, only the hash stored, visible to the data path until revoked', () => {
  withStore((store) => {
    store.apply([ticketsUpstream, supportPersona], { actor: 'alice' });
    const issued = store.issueCredential({ persona: 'support', agent: 'bot-1' }, 'alice');
    assert.ok(issued.ok);
    assert.match(issued.token, /^mnd_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/);
    assert.equal(issued.version, 3);
    const parsed = parseCredentialToken(issued.token);
    assert.equal(parsed?.id, issued.id);
    assert.equal(Buffer.from(parsed?.secret ?? '', 'base64url').length, 32);

    const snapshot = store.current();
    assert.equal(snapshot.version, 3);
    const record = snapshot.credentials.find((c) => c.id === issued.id);
    assert.equal(record?.secretHash, createHash('sha256').update(parsed?.secret ?? '').digest('hex'));
    assert.equal(record?.persona, 'support');
    const byId = new Map(snapshot.credentials.map((c) => [c.id, c]));
    assert.equal(findCredentialForToken(byId, issued.token, new Date())?.agent, 'bot-1');
    assert.equal(findCredentialForToken(byId, issued.token.slice(0, -1) + (issued.token.endsWith('A') ? 'B' : 'A'), new Date()), null);
    assert.ok(!JSON.stringify(store.listCredentials()).includes(parsed?.secret ?? '-'));
    assert.ok(!JSON.stringify(store.listCredentials()).includes(record?.secretHash ?? '-'));

    assert.deepEqual(store.revokeCredential(issued.id, 'alice'), { ok: true, version: 4, changed: [`Credential/${issued.id}`] });
    assert.deepEqual(store.current().credentials, []);
    assert.equal(store.listCredentials('support')[0]?.status, 'revoked');
    assert.deepEqual(store.revokeCredential(issued.id, 'alice'), { ok: true, version: 4, changed: [] });
    assert.equal(store.revokeCredential('000000000000', 'alice').ok, false);
  });
});

test('credentials are refused for unknown personas, bad agents and past expiry; expired ones leave the snapshot', () => {
  let now = new Date('2030-01-01T00:00:00Z');
  withStore(
    (store) => {
      store.apply([ticketsUpstream, supportPersona], { actor: 'alice' });
      const unknown = store.issueCredential({ persona: 'ghost', agent: 'bot' }, 'alice');
      assert.ok(!unknown.ok);
      assert.deepEqual(unknown.issues.map((i) => [i.path, i.code]), [[['persona'], 'unknown_persona']]);
      const badAgent = store.issueCredential({ persona: 'support', agent: 'has space' }, 'alice');
      assert.ok(!badAgent.ok);
      assert.deepEqual(badAgent.issues.map((i) => i.path), [['agent']]);
      const past = store.issueCredential({ persona: 'support', agent: 'bot', expiresAt: '2029-12-31T00:00:00Z' }, 'alice');
      assert.ok(!past.ok);
      assert.deepEqual(past.issues.map((i) => i.code), ['invalid_expiry']);
      assert.equal(store.current().version, 2);

      const shortLived = store.issueCredential({ persona: 'support', agent: 'bot', expiresAt: '2030-01-01T01:00:00+00:00' }, 'alice');
      assert.ok(shortLived.ok);
      assert.equal(store.current().credentials[0]?.expiresAt, '2030-01-01T01:00:00.000Z');
      now = new Date('2030-01-01T02:00:00Z');
      assert.equal(store.listCredentials()[0]?.status, 'expired');
      store.apply([{ ...supportPersona, mode: 'monitor' }], { actor: 'alice' });
      assert.deepEqual(store.current().credentials, []);
    },
    { clock: () => now },
  );
});

test('removing a persona revokes its credentials in the same version', () => {
  withStore((store) => {
    store.apply([ticketsUpstream, supportPersona], { actor: 'alice' });
    const issued = store.issueCredential({ persona: 'support', agent: 'bot' }, 'alice');
    assert.ok(issued.ok);
    const removed = store.remove('Persona', 'support', 'alice');
    assert.deepEqual(removed, { ok: true, version: 4, changed: ['Persona/support', `Credential/${issued.id}`] });
    assert.deepEqual(store.current().credentials, []);
    assert.equal(store.listCredentials()[0]?.status, 'revoked');
  });
});

test('upstream secrets resolve to headers; a missing env var is an issue at the secret path', () => {
  withStore(
    (store) => {
      const headerUpstream = { ...ticketsUpstream, name: 'crm', auth: { type: 'header', header: 'x-api-key', value: { env: 'CRM_KEY' } } };
      const missing = store.apply([{ ...headerUpstream, auth: { ...headerUpstream.auth, value: { env: 'NOT_SET' } } }], { actor: 'alice' });
      assert.ok(!missing.ok);
      assert.deepEqual(missing.issues.map((i) => [i.path, i.code]), [[['documents', 0, 'auth', 'value', 'env'], 'missing_secret_env']]);

      assert.ok(store.apply([billingUpstream, headerUpstream], { actor: 'alice' }).ok);
      assert.deepEqual(store.current().upstreamCredentials, {
        billing: { header: 'authorization', value: 'Bearer billing-secret' },
        crm: { header: 'x-api-key', value: 'crm-from-env' },
      });
      // The masked placeholder keeps the stored secret; with nothing stored it is refused.
      assert.deepEqual(store.apply([{ ...billingUpstream, auth: { type: 'bearer', token: { value: '***' } } }], { actor: 'alice' }), { ok: true, version: 2, changed: [] });
      const masked = store.apply([{ ...billingUpstream, name: 'fresh', auth: { type: 'bearer', token: { value: '***' } } }], { actor: 'alice' });
      assert.ok(!masked.ok);
      assert.deepEqual(masked.issues.map((i) => [i.path, i.code]), [[['documents', 0, 'auth', 'token', 'value'], 'masked_secret']]);
    },
    { env: { CRM_KEY: 'crm-from-env' } },
  );
});

test('onChange receives each committed snapshot, not rejected or no-op ones, until unsubscribed', () => {
  withStore((store) => {
    const seen: PolicySnapshot[] = [];
    const unsubscribe = store.onChange((snapshot) => seen.push(snapshot));
    store.apply([ticketsUpstream], { actor: 'alice' });
    store.apply([ticketsUpstream], { actor: 'alice' });
    store.apply([{ kind: 'Persona' }], { actor: 'alice' });
    store.apply([supportPersona], { actor: 'alice', dryRun: true });
    store.apply([supportPersona], { actor: 'alice' });
    assert.deepEqual(seen.map((s) => s.version), [2, 3]);
    assert.equal(seen[1], store.current());
    assert.ok(Object.isFrozen(seen[1]?.bundle.personas));
    unsubscribe();
    store.remove('Persona', 'support', 'alice');
    assert.equal(seen.length, 2);
  });
});

test('a planned change writes nothing; committed in another store it reproduces the revision and credential rows; replays are skipped and gaps refused', () => {
  withStore((origin) => {
    withStore((replica) => {
      const planned = origin.plan.apply([ticketsUpstream, supportPersona], { actor: 'alice' });
      assert.deepEqual(planned.result, { ok: true, version: 2, changed: ['Persona/support', 'Upstream/tickets'] });
      assert.equal(origin.current().version, 1, 'planning commits nothing');
      const seen: number[] = [];
      replica.onChange((snapshot) => seen.push(snapshot.version));
      assert.deepEqual(replica.commit(planned.change!, 1), { status: 'applied' });
      assert.deepEqual(replica.commit(planned.change!, 1), { status: 'already_applied' });
      assert.deepEqual(seen, [2]);
      assert.equal(replica.history(1)[0]?.actor, 'alice');

      // The origin commits its own plan too (as the replication shell does after the stream's acknowledgement).
      assert.deepEqual(origin.commit(planned.change!, 1), { status: 'applied' });
      const issued = origin.plan.issueCredential({ persona: 'support', agent: 'agent-1' }, 'alice');
      assert.ok(issued.result.ok && issued.change);
      assert.equal(issued.change.credentialsIssued[0]?.secretHash.length, 64);
      assert.ok(!JSON.stringify(issued.change).includes(issued.result.token), 'the token never leaves in the change');
      for (const store of [origin, replica]) assert.deepEqual(store.commit(issued.change, 2), { status: 'applied' });
      assert.deepEqual(replica.current().credentials, origin.current().credentials);
      assert.deepEqual(replica.listCredentials(), origin.listCredentials());
      assert.deepEqual(replica.replicationPosition(), { streamSequence: 2, localOnlyHistory: false });

      // A revision that does not follow the latest version is refused, and nothing is written.
      const skipped = { ...issued.change, version: 5, credentialsIssued: [] };
      const refused = replica.commit(skipped, 3);
      assert.equal(refused.status, 'refused');
      assert.equal(replica.current().version, 3);
    });
  });
});

test('a base change carries a whole history into a new store; a store with its own history refuses it', () => {
  withStore((legacy) => {
    legacy.apply([ticketsUpstream, supportPersona], { actor: 'alice' });
    const kept = legacy.issueCredential({ persona: 'support', agent: 'agent-1' }, 'alice');
    const revoked = legacy.issueCredential({ persona: 'support', agent: 'agent-2' }, 'alice');
    assert.ok(kept.ok && revoked.ok);
    legacy.revokeCredential(revoked.id, 'alice');
    assert.deepEqual(legacy.replicationPosition(), { streamSequence: 0, localOnlyHistory: true });
    const base = legacy.baseChange();
    assert.equal(base.kind, 'base');
    assert.equal(base.credentialsIssued.length, 2);

    withStore((fresh) => {
      assert.deepEqual(fresh.replicationPosition(), { streamSequence: 0, localOnlyHistory: false });
      assert.deepEqual(fresh.commit(base, 1), { status: 'applied' });
      assert.equal(fresh.current().version, 5);
      assert.deepEqual(fresh.current().bundle, legacy.current().bundle);
      assert.deepEqual(fresh.listCredentials(), legacy.listCredentials());
      assert.deepEqual(fresh.current().credentials, legacy.current().credentials);
    });
    // The store that published it only records the stream sequence: no new version, no listener call.
    let notified = 0;
    legacy.onChange(() => notified++);
    assert.deepEqual(legacy.commit(base, 1), { status: 'applied' });
    assert.equal(notified, 0);
    assert.deepEqual(legacy.replicationPosition(), { streamSequence: 1, localOnlyHistory: false });

    withStore((other) => {
      other.apply([ticketsUpstream], { actor: 'bob' });
      const refused = other.commit(base, 1);
      assert.equal(refused.status, 'refused');
      assert.equal(other.current().version, 2);
      assert.deepEqual(other.listCredentials(), []);
    });
  });
});
