import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { chainHash } from './chain.ts';
import type { AuditAlert } from './event.ts';
import { AuditBackpressureError, openAuditLog, type AuditLog } from './log.ts';
import { databaseFile } from './store.ts';
import { verifyAuditDirectory } from './verify.ts';

const directories: string[] = [];
const freshDirectory = () => {
  const directory = mkdtempSync(join(tmpdir(), 'mandate-audit-'));
  directories.push(directory);
  return directory;
};
after(() => directories.forEach((d) => rmSync(d, { recursive: true, force: true })));
// better-sqlite3 12 on Node 24 can abort when the GC finalizes a Statement: keep every one the tests make.
const keptStatements: Database.Statement[] = [];
const prepareKept = (sqlite: Database.Database, sql: string) => {
  const statement = sqlite.prepare(sql);
  keptStatements.push(statement);
  return statement;
};

function appendCalls(log: AuditLog, count: number, agent = 'agent-1') {
  for (let i = 0; i < count; i += 1) {
    log.append({ kind: 'decision', agent, user: 'alice', persona: 'coder', tool: i % 2 ? 'read_file' : 'write_file', verdict: i % 5 === 0 ? 'deny' : 'allow', latencyMs: 1, maskedArguments: { path: `/src/${i}` } });
  }
}

/** A trail of 50 records, closed (so a checkpoint signs record 50). Tampering needs the triggers gone, as an attacker with the file would. */
async function trailToTamper(): Promise<{ directory: string; sqlite: Database.Database }> {
  const directory = freshDirectory();
  const log = openAuditLog({ directory, checkpointEvery: 1_000_000 });
  appendCalls(log, 50);
  await log.close();
  const sqlite = new Database(join(directory, databaseFile));
  sqlite.exec('DROP TRIGGER audit_events_no_update; DROP TRIGGER audit_events_no_delete;');
  return { directory, sqlite };
}

describe('audit log', () => {
  it('appends, commits in batches, and pages through queries newest first', async () => {
    const log = openAuditLog({ directory: freshDirectory(), batchSize: 100 });
    appendCalls(log, 250, 'agent-1');
    appendCalls(log, 30, 'agent-2');
    assert.equal(log.stats().appendedSeq, 280);
    await log.flush();
    assert.equal(log.stats().committedSeq, 280);
    assert.equal(log.stats().pendingEvents, 0);

    const seen: number[] = [];
    let cursor: string | undefined;
    do {
      const page = log.query({ agent: 'agent-1', verdict: 'deny' }, { limit: 20, ...(cursor ? { cursor } : {}) });
      seen.push(...page.events.map((e) => e.seq));
      assert.ok(page.events.every((e) => e.agent === 'agent-1' && e.verdict === 'deny'));
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    assert.equal(seen.length, 50);
    assert.deepEqual(seen, [...seen].sort((a, b) => b - a));
    assert.equal(log.query({ agent: 'agent-2' }, { limit: 1000 }).events.length, 30);
    assert.equal(log.query({ tool: 'read_file', agent: 'agent-2' }, { limit: 1000 }).events.length, 15);
    assert.equal(log.verify().ok, true);
    await log.close();
  });

  it('commits on its own thread: rows land while this thread never yields', async () => {
    const directory = freshDirectory();
    const log = openAuditLog({ directory, batchSize: 500 });
    appendCalls(log, 2_000);
    // Let the log hand the lines over once, then block this thread.
    await new Promise((resolve) => setImmediate(resolve));
    const count = prepareKept(log.store.sqlite, 'SELECT COUNT(*) AS n FROM audit_events');
    const deadline = Date.now() + 20_000;
    let stored = 0;
    while (stored < 2_000 && Date.now() < deadline) {
      stored = (count.get() as { n: number }).n;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
    }
    assert.equal(stored, 2_000, 'the committer must make progress while the data path thread is busy');
    await log.close();
    assert.equal(verifyAuditDirectory(directory).ok, true);
  });

  it('records admin changes in the same chain', async () => {
    const directory = freshDirectory();
    const log = openAuditLog({ directory });
    appendCalls(log, 3);
    const event = log.appendAdminEvent({ actor: 'admin@example.com', action: 'persona.update', target: 'persona/coder', beforeVersion: 4, afterVersion: 5, detail: 'granted write_file' });
    appendCalls(log, 2);
    await log.close();
    assert.equal(event.seq, 4);
    const result = verifyAuditDirectory(directory);
    assert.equal(result.ok, true);
    assert.equal(result.recordsChecked, 6);
    const reopened = openAuditLog({ directory });
    const admin = reopened.query({ kind: 'admin' }).events;
    assert.equal(admin.length, 1);
    assert.deepEqual(admin[0]?.admin, { actor: 'admin@example.com', action: 'persona.update', target: 'persona/coder', beforeVersion: 4, afterVersion: 5, detail: 'granted write_file' });
    await reopened.close();
  });

  it('refuses updates and deletes in the store itself', async () => {
    const directory = freshDirectory();
    const log = openAuditLog({ directory });
    appendCalls(log, 5);
    await log.flush();
    assert.throws(() => log.store.sqlite.exec("UPDATE audit_events SET verdict = 'allow' WHERE seq = 1"), /append-only/);
    assert.throws(() => log.store.sqlite.exec('DELETE FROM audit_events WHERE seq = 5'), /append-only/);
    assert.throws(() => log.store.sqlite.exec('DELETE FROM audit_checkpoints'), /append-only/);
    await log.close();
    assert.equal(verifyAuditDirectory(directory).ok, true);
  });
});

describe('archiving', () => {
  it('moves records up to a checkpoint into a segment that verify still checks', async () => {
    const directory = freshDirectory();
    const log = openAuditLog({ directory });
    for (let i = 0; i < 3; i += 1) {
      appendCalls(log, 10);
      await log.flush();
    }
    const segment = await log.archive(25);
    assert.deepEqual(segment && [segment.fromSeq, segment.toSeq], [1, 20]);
    assert.deepEqual(log.query({}, { limit: 100, order: 'oldest' }).events.map((e) => e.seq)[0], 21);
    assert.throws(() => log.store.sqlite.exec('DELETE FROM audit_events WHERE seq = 21'), /append-only/);
    appendCalls(log, 5);
    await log.close();
    const result = verifyAuditDirectory(directory);
    assert.equal(result.ok, true, result.firstBad?.message);
    assert.equal(result.archivesVerified, 1);
    assert.equal(result.recordsChecked, 35);

    const file = join(directory, 'archive', segment!.file);
    writeFileSync(file, readFileSync(file, 'utf8').replace('/src/3', '/src/4'));
    const tampered = verifyAuditDirectory(directory);
    assert.deepEqual([tampered.firstBad?.code, tampered.firstBad?.seq], ['archive_mismatch', 1]);
  });
});

describe('verify finds the first tampered record', () => {
  it('an altered record', async () => {
    const { directory, sqlite } = await trailToTamper();
    sqlite.exec(`UPDATE audit_events SET body = replace(body, '"verdict":"allow"', '"verdict":"deny"') WHERE seq = 17`);
    sqlite.close();
    const result = verifyAuditDirectory(directory);
    assert.equal(result.ok, false);
    assert.deepEqual([result.firstBad?.code, result.firstBad?.seq], ['hash_mismatch', 17]);
    assert.equal(result.recordsChecked, 16);
  });

  it('an altered indexed column that the hash does not cover directly', async () => {
    const { directory, sqlite } = await trailToTamper();
    sqlite.exec(`UPDATE audit_events SET agent = 'someone-else' WHERE seq = 20`);
    sqlite.close();
    const result = verifyAuditDirectory(directory);
    assert.deepEqual([result.firstBad?.code, result.firstBad?.seq], ['column_mismatch', 20]);
  });

  it('a removed record, in the middle or at the end', async () => {
    const middle = await trailToTamper();
    middle.sqlite.exec('DELETE FROM audit_events WHERE seq = 23');
    middle.sqlite.close();
    const result = verifyAuditDirectory(middle.directory);
    assert.deepEqual([result.firstBad?.code, result.firstBad?.seq], ['missing_record', 23]);

    const tail = await trailToTamper();
    tail.sqlite.exec('DELETE FROM audit_events WHERE seq >= 48');
    tail.sqlite.close();
    const tailResult = verifyAuditDirectory(tail.directory);
    assert.deepEqual([tailResult.firstBad?.code, tailResult.firstBad?.seq], ['checkpoint_beyond_chain', 48]);
  });

  it('an inserted record', async () => {
    const { directory, sqlite } = await trailToTamper();
    // Make room after record 30, then insert a record claiming to be 31.
    sqlite.exec('UPDATE audit_events SET seq = seq + 1000000 WHERE seq > 30; UPDATE audit_events SET seq = seq - 999999 WHERE seq > 1000000');
    const previous = prepareKept(sqlite, 'SELECT hash FROM audit_events WHERE seq = 30').get() as { hash: string };
    const body = JSON.stringify({ seq: 31, at: 1, kind: 'decision', agent: 'agent-1', verdict: 'allow' });
    prepareKept(sqlite, `INSERT INTO audit_events (seq, at_ms, kind, reason_codes, body, prev_hash, hash) VALUES (31, 1, 'decision', '', ?, ?, ?)`).run(body, previous.hash, 'f'.repeat(64));
    sqlite.close();
    const result = verifyAuditDirectory(directory);
    assert.deepEqual([result.firstBad?.code, result.firstBad?.seq], ['hash_mismatch', 31]);
  });

  it('two records swapped', async () => {
    const { directory, sqlite } = await trailToTamper();
    sqlite.exec(`
      UPDATE audit_events SET seq = 1000040 WHERE seq = 40;
      UPDATE audit_events SET seq = 40 WHERE seq = 41;
      UPDATE audit_events SET seq = 41 WHERE seq = 1000040;`);
    sqlite.close();
    const result = verifyAuditDirectory(directory);
    assert.equal(result.firstBad?.seq, 40);
    assert.equal(result.firstBad?.code, 'prev_hash_mismatch');
  });

  it('a rewritten chain with recomputed hashes is caught by the signed checkpoint', async () => {
    const { directory, sqlite } = await trailToTamper();
    const rows = prepareKept(sqlite, 'SELECT seq, body, prev_hash AS prevHash FROM audit_events WHERE seq >= 10 ORDER BY seq').all() as { seq: number; body: string; prevHash: string }[];
    let prev = rows[0]!.prevHash;
    const rewrite = prepareKept(sqlite, 'UPDATE audit_events SET body = ?, prev_hash = ?, hash = ? WHERE seq = ?');
    for (const row of rows) {
      const body = row.seq === 10 ? row.body.replace('"/src/9"', '"/src/x"') : row.body;
      const hash = chainHash(prev, body);
      rewrite.run(body, prev, hash, row.seq);
      prev = hash;
    }
    sqlite.close();
    const result = verifyAuditDirectory(directory);
    assert.deepEqual([result.firstBad?.code, result.firstBad?.seq], ['checkpoint_mismatch', 50]);
  });

  it('a forged checkpoint signature', async () => {
    const { directory, sqlite } = await trailToTamper();
    sqlite.exec('DROP TRIGGER audit_checkpoints_no_update');
    sqlite.exec(`UPDATE audit_checkpoints SET signature = '${Buffer.alloc(64, 1).toString('base64')}'`);
    sqlite.close();
    const result = verifyAuditDirectory(directory);
    assert.deepEqual([result.firstBad?.code, result.firstBad?.seq], ['checkpoint_signature_invalid', 50]);
  });
});

describe('durability', () => {
  it('slow or full storage produces backpressure and alerts, and loses no acknowledged event', async () => {
    const directory = freshDirectory();
    const alerts: AuditAlert[] = [];
    const log = openAuditLog({ directory, maxStorageBytes: 192 * 1024, maxPendingEvents: 3_000, batchSize: 500, flushIntervalMs: 1, onAlert: (a) => alerts.push(a) });
    let acknowledged = 0;
    let refusal: unknown = null;
    for (let i = 0; i < 200_000 && refusal === null; i += 1) {
      try {
        acknowledged = log.append({ kind: 'decision', agent: 'agent-1', persona: 'coder', tool: 'read_file', verdict: 'allow', maskedArguments: { note: 'x'.repeat(200), i } }).seq;
      } catch (error) {
        refusal = error;
      }
      if (i % 250 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    assert.ok(refusal instanceof AuditBackpressureError, 'append must eventually refuse');
    assert.equal(refusal.code, 'audit_backlog_full');
    const stats = log.stats();
    assert.match(stats.storageError ?? '', /full/i);
    assert.equal(stats.pendingEvents, 3_000);
    assert.deepEqual(alerts.map((a) => a.name).slice(0, 2), ['audit_storage_failing', 'audit_backpressure']);
    assert.match(log.metrics(), /mandate_audit_backpressure_total 1/);
    await assert.rejects(log.close(), /storage is failing/);

    // Storage comes back (no quota): every acknowledged event is replayed from the journal.
    const reopened = openAuditLog({ directory });
    assert.equal(reopened.stats().replayedEvents, 3_000);
    assert.equal(reopened.stats().committedSeq, acknowledged);
    const result = reopened.verify();
    assert.equal(result.ok, true);
    assert.equal(result.recordsChecked, acknowledged);
    await reopened.close();
  });

  it('a kill -9 under load loses no acknowledged event', async () => {
    const directory = freshDirectory();
    const child = spawn(process.execPath, [join(import.meta.dirname, 'fixtures', 'crash-writer.ts'), directory], { stdio: ['ignore', 'pipe', 'inherit'] });
    let acknowledged = 0;
    let output = '';
    await new Promise<void>((resolve, reject) => {
      child.on('error', reject);
      child.stdout.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        const lines = output.split('\n');
        output = lines.pop() ?? '';
        for (const line of lines) acknowledged = Math.max(acknowledged, Number(line));
        if (acknowledged >= 30_000 && child.exitCode === null && !child.killed) {
          child.kill('SIGKILL');
          resolve();
        }
      });
    });
    await new Promise((resolve) => child.on('exit', resolve));
    assert.equal(child.signalCode, 'SIGKILL');

    const log = openAuditLog({ directory });
    const stats = log.stats();
    assert.ok(stats.committedSeq >= acknowledged, `committed ${stats.committedSeq} < acknowledged ${acknowledged}`);
    const result = log.verify();
    assert.equal(result.ok, true, result.firstBad?.message);
    assert.equal(result.recordsChecked, stats.committedSeq);
    await log.close();
  });
});
