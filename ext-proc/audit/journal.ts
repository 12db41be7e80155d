// The write-ahead journal: each event is one line written with one write()
// before the data path answers. Once write() returns, the bytes are in the OS
// page cache and survive a kill of this process; fdatasync (in the background)
// makes them survive a power loss too. Files are named by the first seq they hold.
import { closeSync, fdatasync, fdatasyncSync, fstatSync, mkdirSync, openSync, readdirSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';

const journalName = /^journal-(\d{16})\.jsonl$/;

export interface JournalFile {
  firstSeq: number;
  path: string;
}

export function journalFiles(directory: string): JournalFile[] {
  mkdirSync(directory, { recursive: true });
  return readdirSync(directory)
    .map((name) => ({ match: journalName.exec(name), name }))
    .filter((f): f is { match: RegExpExecArray; name: string } => f.match !== null)
    .map((f) => ({ firstSeq: Number(f.match[1]), path: join(directory, f.name) }))
    .sort((a, b) => a.firstSeq - b.firstSeq);
}

export interface ReplayedLine {
  seq: number;
  body: string;
}

/**
 * Every complete line in the journal files, in order. A torn or garbled tail
 * (only possible after a power loss mid-write) ends the replay; its size is reported.
 */
export function readJournal(directory: string): { lines: ReplayedLine[]; discardedBytes: number } {
  const lines: ReplayedLine[] = [];
  let discardedBytes = 0;
  for (const file of journalFiles(directory)) {
    const text = readFileSync(file.path, 'utf8');
    let start = 0;
    while (start < text.length) {
      const end = text.indexOf('\n', start);
      if (end === -1) {
        discardedBytes += Buffer.byteLength(text.slice(start));
        break;
      }
      const body = text.slice(start, end);
      start = end + 1;
      let seq: unknown;
      try {
        seq = (JSON.parse(body) as { seq?: unknown }).seq;
      } catch {
        seq = undefined;
      }
      if (typeof seq !== 'number') {
        discardedBytes += Buffer.byteLength(body) + 1;
        continue;
      }
      lines.push({ seq, body });
    }
  }
  return { lines, discardedBytes };
}

export class JournalWriteError extends Error {
  override readonly name = 'JournalWriteError';
}

/** The journal file currently appended to, plus the older ones not yet fully in SQLite. */
export function openJournalWriter(directory: string, firstSeq: number) {
  mkdirSync(directory, { recursive: true });
  let current = openFile(firstSeq);
  const older: JournalFile[] = journalFiles(directory).filter((f) => f.path !== current.path);
  let bytes = fstatSync(current.fd).size;
  let syncing = false;

  function openFile(seq: number) {
    const path = join(directory, `journal-${String(seq).padStart(16, '0')}.jsonl`);
    return { firstSeq: seq, path, fd: openSync(path, 'a') };
  }

  return {
    /** One line, one write(). Throws JournalWriteError if the bytes did not all land. */
    write(line: string): void {
      const buffer = Buffer.from(line);
      let written: number;
      try {
        written = writeSync(current.fd, buffer, 0, buffer.length);
      } catch (error) {
        throw new JournalWriteError(`audit journal write failed: ${(error as Error).message}`, { cause: error });
      }
      if (written !== buffer.length) {
        // A short write leaves a torn line; replay discards it. The caller must not acknowledge.
        throw new JournalWriteError(`audit journal write was short (${written} of ${buffer.length} bytes): disk full?`);
      }
      bytes += written;
    },
    /** Start a new file at `nextSeq`; the current one joins the older files. */
    rotate(nextSeq: number): void {
      fdatasyncSync(current.fd);
      closeSync(current.fd);
      older.push({ firstSeq: current.firstSeq, path: current.path });
      current = openFile(nextSeq);
      bytes = 0;
    },
    hasOlderFiles(): boolean {
      return older.length > 0;
    },
    /** Remove older files whose every event is at or below `committedSeq`. */
    removeCommitted(committedSeq: number): void {
      const boundaries = [...older.map((f) => f.firstSeq), current.firstSeq];
      for (let i = older.length - 1; i >= 0; i -= 1) {
        const file = older[i]!;
        const lastSeqInFile = boundaries[i + 1]! - 1;
        if (lastSeqInFile <= committedSeq) {
          unlinkSync(file.path);
          older.splice(i, 1);
          boundaries.splice(i, 1);
        }
      }
    },
    /** fdatasync in the background (libuv pool); `done` is called when the data is on disk. */
    syncInBackground(done: (error: Error | null) => void): void {
      if (syncing) return;
      syncing = true;
      const fd = current.fd;
      fdatasync(fd, (error) => {
        syncing = false;
        done(error);
      });
    },
    size(): number {
      return bytes;
    },
    currentFirstSeq(): number {
      return current.firstSeq;
    },
    close(): void {
      fdatasyncSync(current.fd);
      closeSync(current.fd);
    },
  };
}

export type JournalWriter = ReturnType<typeof openJournalWriter>;
