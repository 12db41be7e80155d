// Findings and fingerprints in a form that crosses threads cheaply (body-inspection.ts).
//
// postMessage copies an array of objects by structured clone: the worker serializes every object
// and the receiving thread rebuilds it property by property, in native code that holds that
// thread. A body of 3.6 MiB of assigned passwords has 172,727 findings and as many fingerprints:
// cloning them held ext_proc's event loop for about a second and made the worker's answer come
// later than inline inspection's (docs/benchmarks.md, "Sensitive-data engine"). Packed, they are
// a table of strings and one Float64Array of columns (moved, not copied); unpacking
// builds each record from an object literal, in the field order inspect.ts gives them, so a record
// is the same, to its key order, as inline inspection's.
import type { DataFinding } from '../decision/decision.ts';
import type { CanonicalShape } from './fingerprint.ts';
import type { ValueFingerprint } from './inspect.ts';

export interface PackedRecords {
  packed: true;
  count: number;
  /** The records' strings, most once (see StringColumns). */
  strings: string[];
  /** The records' fields, in order, one slot each: a string's index in `strings`, or a number. */
  slots: Float64Array<ArrayBuffer>;
}

// Every field of the two record types is written by the packers below: a field added to either
// type fails the type check here until it is.
type Exhaustive<T, Packed extends keyof T> = [Exclude<keyof T, Packed>] extends [never] ? true : never;
const findingFieldsPacked: Exhaustive<DataFinding, 'detector' | 'group' | 'location' | 'confidence' | 'action' | 'direction'> = true;
const fingerprintFieldsPacked: Exhaustive<ValueFingerprint, 'hash' | 'dataClass' | 'detector' | 'group' | 'shape'> = true;
const shapeFieldsPacked: Exhaustive<CanonicalShape, 'length' | 'digitsOnly' | 'probe'> = true;
void [findingFieldsPacked, fingerprintFieldsPacked, shapeFieldsPacked];

/**
 * The records' strings, each column's value checked against the last few distinct ones of that
 * column (`depths`: how many): the few detectors, groups and actions of a body repeat, its hashes
 * seldom, and then only in a run (the same value many times). A Map of every string cost more than
 * it saved, and so did comparing each hash with several others. A string met again after others
 * may be stored twice: that costs a copy, not a wrong record.
 */
class StringColumns {
  readonly list: string[] = [];
  private readonly recent: (string | null)[];
  private readonly recentIndex: Int32Array;
  private readonly next: Uint8Array;
  private readonly depths: readonly number[];

  constructor(depths: readonly number[]) {
    this.depths = depths;
    this.recent = new Array<string | null>(depths.length * maxDepth).fill(null);
    this.recentIndex = new Int32Array(depths.length * maxDepth);
    this.next = new Uint8Array(depths.length);
  }

  of(column: number, s: string): number {
    const base = column * maxDepth;
    const depth = this.depths[column]!;
    for (let i = base; i < base + depth; i++) if (this.recent[i] === s) return this.recentIndex[i]!;
    const index = this.list.push(s) - 1;
    const slot = base + this.next[column]!;
    this.recent[slot] = s;
    this.recentIndex[slot] = index;
    this.next[column] = (this.next[column]! + 1) % depth;
    return index;
  }
}

const maxDepth = 8;

const findingSlots = 6;

export function packFindings(findings: readonly DataFinding[]): PackedRecords {
  const strings = new StringColumns([8, 8, 8, 8, 8]);
  const slots = new Float64Array(findings.length * findingSlots);
  let at = 0;
  for (const f of findings) {
    slots[at++] = strings.of(0, f.detector);
    slots[at++] = strings.of(1, f.group);
    slots[at++] = strings.of(2, f.location);
    slots[at++] = f.confidence;
    slots[at++] = strings.of(3, f.action);
    slots[at++] = strings.of(4, f.direction);
  }
  return { packed: true, count: findings.length, strings: strings.list, slots };
}

export function unpackFindings(packed: PackedRecords): DataFinding[] {
  const { strings: s, slots: n } = packed;
  const findings: DataFinding[] = new Array(packed.count);
  for (let i = 0, at = 0; i < packed.count; i++, at += findingSlots) {
    findings[i] = {
      detector: s[n[at]!]!,
      group: s[n[at + 1]!]!,
      location: s[n[at + 2]!]!,
      confidence: n[at + 3]!,
      action: s[n[at + 4]!]! as DataFinding['action'],
      direction: s[n[at + 5]!]! as DataFinding['direction'],
    };
  }
  return findings;
}

/** hash, dataClass, detector, group, then whether a shape follows and its length, digitsOnly and probe. */
const fingerprintSlots = 8;

export function packFingerprints(fingerprints: readonly ValueFingerprint[]): PackedRecords {
  const strings = new StringColumns([1, 8, 8, 8]);
  const slots = new Float64Array(fingerprints.length * fingerprintSlots);
  let at = 0;
  for (const f of fingerprints) {
    slots[at++] = strings.of(0, f.hash);
    slots[at++] = strings.of(1, f.dataClass);
    slots[at++] = strings.of(2, f.detector);
    slots[at++] = strings.of(3, f.group);
    const shape = f.shape;
    slots[at++] = shape ? 1 : 0;
    slots[at++] = shape ? shape.length : 0;
    slots[at++] = shape?.digitsOnly ? 1 : 0;
    slots[at++] = shape ? shape.probe : 0;
  }
  return { packed: true, count: fingerprints.length, strings: strings.list, slots };
}

export function unpackFingerprints(packed: PackedRecords): ValueFingerprint[] {
  const { strings: s, slots: n } = packed;
  const fingerprints: ValueFingerprint[] = new Array(packed.count);
  for (let i = 0, at = 0; i < packed.count; i++, at += fingerprintSlots) {
    const hash = s[n[at]!]!;
    const dataClass = s[n[at + 1]!]!;
    const detector = s[n[at + 2]!]!;
    const group = s[n[at + 3]!]!;
    // As inspect.ts writes them: a shape, when there is one, last.
    fingerprints[i] =
      n[at + 4] === 1
        ? { hash, dataClass, detector, group, shape: { length: n[at + 5]!, digitsOnly: n[at + 6] === 1, probe: n[at + 7]! } }
        : { hash, dataClass, detector, group };
  }
  return fingerprints;
}
