// Verify the whole trail: archived segments first, then the live records, each
// record against the chain and every checkpoint against its signature and the
// record it names. Stops at the first bad record and names it.
import { createHash, type KeyObject } from 'node:crypto';
import { closeSync, createWriteStream, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { once } from 'node:events';
import { createChainVerifier, genesisHash, type ChainPosition, type ChainProblem, type ChainRecord } from './chain.ts';
import { checkpointSignatureValid, loadVerifyKey, type Checkpoint } from './checkpoint.ts';
import { databaseFile, openAuditStore, type AuditStore } from './store.ts';

export interface VerifyResult {
  ok: boolean;
  recordsChecked: number;
  /** Where the verified chain ends. */
  head: ChainPosition;
  checkpointsVerified: number;
  archivesVerified: number;
  /** Where the public key came from: given by the caller, the local key file, or none (signatures unchecked). */
  keySource: 'given' | 'local' | 'none';
  firstBad: ChainProblem | null;
  warnings: string[];
}

export const archiveDirectoryName = 'archive';
const segmentFormat = 'mandate-audit-segment/v1';

interface SegmentHeader {
  format: string;
  fromSeq: number;
  toSeq: number;
  prevHash: string;
  lastHash: string;
  checkpoint: Checkpoint;
}

/** Verify an audit directory from outside the writing process (read-only). */
export function verifyAuditDirectory(directory: string, options: { publicKeyPath?: string } = {}): VerifyResult {
  const store = openAuditStore(join(directory, databaseFile), { readonly: true });
  try {
    return verifyAuditTrail(store, { directory, publicKey: loadVerifyKey(directory, options.publicKeyPath) });
  } finally {
    store.close();
  }
}

export function verifyAuditTrail(store: AuditStore, options: { directory: string; publicKey: { key: KeyObject; source: 'given' | 'local' } | null }): VerifyResult {
  const warnings: string[] = [];
  const verifier = createChainVerifier({ seq: 0, hash: genesisHash });
  const checkpointsAt = new Map<number, Checkpoint[]>();
  const archiveCheckpoints: Checkpoint[] = [];
  let checkpointsVerified = 0;
  let archivesVerified = 0;
  const result = (firstBad: ChainProblem | null): VerifyResult => ({
    ok: firstBad === null,
    recordsChecked: verifier.checked(),
    head: verifier.position(),
    checkpointsVerified,
    archivesVerified,
    keySource: options.publicKey?.source ?? 'none',
    firstBad,
    warnings,
  });
  if (!options.publicKey) warnings.push('no public key: checkpoint signatures were not checked');

  const checkCheckpoint = (checkpoint: Checkpoint, hash: string): ChainProblem | null => {
    if (options.publicKey && !checkpointSignatureValid(checkpoint, options.publicKey.key)) {
      return { code: 'checkpoint_signature_invalid', seq: checkpoint.seq, message: `the checkpoint at record ${checkpoint.seq} has an invalid signature (key ${checkpoint.keyId})` };
    }
    if (checkpoint.hash !== hash) {
      return { code: 'checkpoint_mismatch', seq: checkpoint.seq, message: `record ${checkpoint.seq} does not match its signed checkpoint: the chain was rewritten up to here` };
    }
    checkpointsVerified += 1;
    return null;
  };
  const accept = (record: ChainRecord): ChainProblem | null => {
    const problem = verifier.push(record);
    if (problem) return problem;
    for (const checkpoint of checkpointsAt.get(record.seq) ?? []) {
      const bad = checkCheckpoint(checkpoint, record.hash);
      if (bad) return bad;
    }
    return null;
  };

  const archives = store.archives();
  for (const archive of archives) {
    const path = join(options.directory, archiveDirectoryName, archive.file);
    if (!existsSync(path)) return result({ code: 'archive_unreadable', seq: archive.fromSeq, message: `archive segment ${archive.file} (records ${archive.fromSeq}-${archive.toSeq}) is missing` });
    const bytes = readFileSync(path);
    if (createHash('sha256').update(bytes).digest('hex') !== archive.fileSha256) {
      return result({ code: 'archive_mismatch', seq: archive.fromSeq, message: `archive segment ${archive.file} was altered: its digest does not match the one recorded when it was archived` });
    }
    const lines = bytes.toString('utf8').split('\n').filter((line) => line.length > 0);
    const header = JSON.parse(lines[0] ?? '{}') as SegmentHeader;
    if (header.format !== segmentFormat || header.toSeq !== archive.toSeq) {
      return result({ code: 'archive_unreadable', seq: archive.fromSeq, message: `archive segment ${archive.file} has an unknown format or range` });
    }
    archiveCheckpoints.push(header.checkpoint);
    checkpointsAt.set(header.checkpoint.seq, [header.checkpoint]);
    for (const line of lines.slice(1)) {
      const problem = accept(JSON.parse(line) as ChainRecord);
      if (problem) return result(problem);
    }
    if (verifier.position().seq !== archive.toSeq || verifier.position().hash !== archive.lastHash) {
      return result({ code: 'archive_mismatch', seq: archive.toSeq, message: `archive segment ${archive.file} does not end where the store says it does` });
    }
    archivesVerified += 1;
  }

  const live = store.checkpoints();
  for (const checkpoint of live) {
    const list = checkpointsAt.get(checkpoint.seq) ?? [];
    list.push(checkpoint);
    checkpointsAt.set(checkpoint.seq, list);
  }
  for (const record of store.records(verifier.position().seq + 1)) {
    const problem = accept(record);
    if (problem) return result(problem);
  }
  const head = verifier.position();
  const beyond = live.find((c) => c.seq > head.seq);
  if (beyond) {
    return result({ code: 'checkpoint_beyond_chain', seq: head.seq + 1, message: `a signed checkpoint names record ${beyond.seq}, but the chain ends at ${head.seq}: records from ${head.seq + 1} were removed` });
  }
  const lastCheckpointSeq = Math.max(0, ...live.map((c) => c.seq), ...archiveCheckpoints.map((c) => c.seq));
  if (head.seq > lastCheckpointSeq) warnings.push(`${head.seq - lastCheckpointSeq} record(s) after the last signed checkpoint are protected by the hash chain only`);
  return result(null);
}

/**
 * Move records up to the last checkpoint at or below `throughSeq` into a
 * segment file (with that checkpoint), record the segment in the store, then
 * delete them. The store's trigger only allows deleting archived records.
 */
export async function archiveAuditRecords(store: AuditStore, options: { directory: string; throughSeq: number; nowMs: number }): Promise<{ file: string; fromSeq: number; toSeq: number } | null> {
  const archived = store.archives();
  const fromSeq = (archived[archived.length - 1]?.toSeq ?? 0) + 1;
  const checkpoint = store.checkpoints().filter((c) => c.seq >= fromSeq && c.seq <= options.throughSeq).pop();
  if (!checkpoint) return null;
  const records = [...store.records(fromSeq, checkpoint.seq)];
  const first = records[0];
  const last = records[records.length - 1];
  if (!first || !last || last.seq !== checkpoint.seq || last.hash !== checkpoint.hash) {
    throw new Error(`cannot archive records ${fromSeq}-${checkpoint.seq}: the stored chain does not match its checkpoint; run verify`);
  }
  const header: SegmentHeader = { format: segmentFormat, fromSeq, toSeq: checkpoint.seq, prevHash: first.prevHash, lastHash: last.hash, checkpoint };
  const file = `segment-${String(fromSeq).padStart(16, '0')}-${String(checkpoint.seq).padStart(16, '0')}.jsonl`;
  const directory = join(options.directory, archiveDirectoryName);
  mkdirSync(directory, { recursive: true });
  const temporary = join(directory, `${file}.partial`);
  const digest = createHash('sha256');
  const out = createWriteStream(temporary);
  const write = async (line: string) => {
    digest.update(line);
    if (!out.write(line)) await once(out, 'drain');
  };
  await write(`${JSON.stringify(header)}\n`);
  for (const r of records) await write(`${JSON.stringify({ seq: r.seq, prevHash: r.prevHash, hash: r.hash, body: r.body })}\n`);
  out.end();
  await once(out, 'finish');
  const fd = openSync(temporary, 'r');
  fsyncSync(fd);
  closeSync(fd);
  renameSync(temporary, join(directory, file));
  store.sqlite.transaction(() => {
    store
      .prepare('INSERT INTO audit_archives (from_seq, to_seq, last_hash, file, file_sha256, archived_at_ms) VALUES (?, ?, ?, ?, ?, ?)')
      .run(fromSeq, checkpoint.seq, last.hash, file, digest.digest('hex'), options.nowMs);
    store.prepare('DELETE FROM audit_events WHERE seq <= ?').run(checkpoint.seq);
  }).immediate();
  return { file, fromSeq, toSeq: checkpoint.seq };
}
