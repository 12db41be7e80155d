// The hash chain, as pure functions: how a record's hash is made, and a
// streaming verifier that finds the first record that does not fit.
import { createHash } from 'node:crypto';

export const genesisHash = '0'.repeat(64);

/** hash(n) = SHA-256(hash(n-1) "\n" body(n)), hex. body carries seq, so order is bound in. */
export function chainHash(prevHash: string, body: string): string {
  return createHash('sha256').update(prevHash).update('\n').update(body).digest('hex');
}

/** A record as stored, with the indexed columns that must agree with its body. */
export interface ChainRecord {
  seq: number;
  prevHash: string;
  hash: string;
  body: string;
  columns?: Record<string, unknown>;
}

export type ChainProblemCode =
  | 'missing_record'
  | 'unexpected_record'
  | 'seq_mismatch'
  | 'prev_hash_mismatch'
  | 'hash_mismatch'
  | 'column_mismatch'
  | 'body_unreadable'
  | 'checkpoint_signature_invalid'
  | 'checkpoint_mismatch'
  | 'checkpoint_beyond_chain'
  | 'archive_unreadable'
  | 'archive_mismatch';

export interface ChainProblem {
  code: ChainProblemCode;
  /** The first record that is wrong (for a removed record: the seq that is missing). */
  seq: number;
  message: string;
}

export interface ChainPosition {
  /** seq of the last record accepted (0 before the first). */
  seq: number;
  hash: string;
}

/** Which body fields each indexed column copies; verify checks they agree. */
const columnFields: Record<string, (event: Record<string, unknown>) => unknown> = {
  atMs: (e) => e['at'],
  kind: (e) => e['kind'],
  agent: (e) => e['agent'],
  user: (e) => e['user'],
  persona: (e) => e['persona'],
  tool: (e) => e['tool'],
  verdict: (e) => e['verdict'],
  sessionId: (e) => e['sessionId'],
  requestId: (e) => e['requestId'],
  argumentsDigest: (e) => e['argumentsDigest'],
  latencyMs: (e) => e['latencyMs'],
  reasonCodes: (e) => reasonCodesOf(e['reasons']),
};

export function reasonCodesOf(reasons: unknown): string {
  return Array.isArray(reasons) ? reasons.map((r: { code?: unknown }) => String(r?.code ?? '')).join(' ') : '';
}

/**
 * Feed records in seq order; the first call that returns a problem names the
 * first bad record. Later records are not judged (the chain is broken there).
 */
export function createChainVerifier(start: ChainPosition = { seq: 0, hash: genesisHash }) {
  let position: ChainPosition = { ...start };
  let checked = 0;
  return {
    push(record: ChainRecord): ChainProblem | null {
      const expected = position.seq + 1;
      if (record.seq > expected) {
        return { code: 'missing_record', seq: expected, message: `record ${expected} is missing: the next stored record is ${record.seq}` };
      }
      if (record.seq < expected) {
        return { code: 'unexpected_record', seq: record.seq, message: `record ${record.seq} appears after record ${position.seq}` };
      }
      if (record.prevHash !== position.hash) {
        return { code: 'prev_hash_mismatch', seq: record.seq, message: `record ${record.seq} does not link to record ${position.seq}: it was inserted, or an earlier record was removed or replaced` };
      }
      if (chainHash(record.prevHash, record.body) !== record.hash) {
        return { code: 'hash_mismatch', seq: record.seq, message: `record ${record.seq} was altered: its content does not match its hash` };
      }
      let event: Record<string, unknown>;
      try {
        event = JSON.parse(record.body) as Record<string, unknown>;
      } catch {
        return { code: 'body_unreadable', seq: record.seq, message: `record ${record.seq} is not valid JSON` };
      }
      if (event['seq'] !== record.seq) {
        return { code: 'seq_mismatch', seq: record.seq, message: `record ${record.seq} carries seq ${String(event['seq'])}: records were reordered` };
      }
      if (record.columns) {
        for (const [column, field] of Object.entries(columnFields)) {
          if (!(column in record.columns)) continue;
          if ((record.columns[column] ?? null) !== (field(event) ?? null)) {
            return { code: 'column_mismatch', seq: record.seq, message: `record ${record.seq}: indexed column ${column} was altered and no longer matches the hashed record` };
          }
        }
      }
      position = { seq: record.seq, hash: record.hash };
      checked += 1;
      return null;
    },
    position(): ChainPosition {
      return { ...position };
    },
    checked(): number {
      return checked;
    },
  };
}
