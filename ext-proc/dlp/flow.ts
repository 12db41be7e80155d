// Data-flow control: remembers keyed fingerprints of sensitive values that came
// out of tool results, per session, and refuses a later request that carries one
// of them somewhere its data class may not go. Pure: clock and memory bounds are
// injected; no values are kept, only keyed hashes (see fingerprint.ts).
//
// A request is matched two ways: the fingerprints of what the detectors found in
// it, and, when the session remembers values the destination may not receive,
// every span of the request that could spell one of them (flow-candidates.ts),
// found or not by a detector. For the latter the tracker keeps, per origin and
// data class, the lengths and kinds of the remembered values, and the probes of
// all of them (fingerprint.ts).
import type { DataFlowRule, DataProtection } from '../../config/data-protection-schema.ts';
import type { Environment, ToolClass } from '../../config/schema.ts';
import type { CanonicalShape } from './fingerprint.ts';
import type { ValueFingerprint } from './inspect.ts';

export interface FlowOrigin {
  upstream: string;
  environment: Environment;
  tool?: string;
}

export interface FlowDestination {
  upstream: string;
  environment: Environment;
  tool?: string;
  toolClass?: ToolClass;
}

export interface FlowViolation {
  code: 'sensitive_data_flow_blocked';
  dataClass: string;
  detector: string;
  from: FlowOrigin;
  to: FlowDestination;
  action: 'block' | 'detect';
  message: string;
}

export interface FlowSignal {
  code: 'gradual_collection';
  session: string;
  distinctValues: number;
  message: string;
}

/** Per-session bounds; one tracker serves every Persona, each call may bring its Persona's. */
export interface FlowLimits {
  maxFingerprintsPerSession: number;
  ttlMs: number;
  gradualCollectionThreshold: number;
}

/**
 * Whose memory of sensitive values a call reads and adds to: the agent's, within its Persona. The
 * Persona comes first, so that a replica receiving another's values knows whose limits apply.
 */
export function flowSessionOf(persona: string, agent: string): string {
  return `${persona}\u0000${agent}`;
}

/** The Persona a data-flow session belongs to, or null when the session names none. */
export function personaOfFlowSession(session: string): string | null {
  const end = session.indexOf('\u0000');
  return end > 0 ? session.slice(0, end) : null;
}

/** A Persona's `dataProtection.flow` settings as the tracker takes them. */
export function flowLimitsOf(flow: DataProtection['flow']): FlowLimits {
  return { maxFingerprintsPerSession: flow.maxFingerprintsPerSession, ttlMs: flow.fingerprintTtlSeconds * 1000, gradualCollectionThreshold: flow.gradualCollectionThreshold };
}

export interface FlowTrackerOptions extends FlowLimits {
  now: () => number;
  maxSessions?: number;
  rules?: DataFlowRule[];
}

interface Remembered {
  origin: FlowOrigin;
  dataClass: string;
  detector: string;
  seenAt: number;
  source: ValueSource;
  shape: CanonicalShape | null;
}

/** The remembered values of one origin and data class: what decides whether a destination may receive them. */
interface ValueSource {
  key: string;
  origin: FlowOrigin;
  dataClass: string;
  values: number;
  /** (length << 1 | digitsOnly) → how many of its values have that shape. */
  shapes: Map<number, number>;
}

interface SessionFlow {
  /** Oldest read first: a value read again moves to the end. */
  values: Map<string, Remembered>;
  sources: Map<string, ValueSource>;
  /** Probe → how many remembered values have it. */
  probes: Map<number, number>;
  /**
   * Values the memory bound dropped while still within the TTL: they were read, so they count toward
   * the gradual-collection threshold until they would have expired. Counted in slices of time.
   */
  dropped: DroppedSlice[];
  /**
   * Set only by a value this replica read: a replicated message can neither raise nor suppress the
   * signal. Cleared once the values read within the TTL fall to half the threshold.
   */
  signalled: boolean;
}

/** How many values the memory bound dropped that were read between `first` and `last`. */
interface DroppedSlice {
  first: number;
  last: number;
  count: number;
}

/** A slice of dropped values spans at most this part of the TTL; its values all expire with its newest. */
const droppedSlicesPerTtl = 8;
/** Held even if the TTL shrinks: the oldest slices are then merged. */
const maxDroppedSlices = 2 * droppedSlicesPerTtl;

/**
 * What a request is searched for when its destination may not receive some remembered values:
 * their canonical lengths, each with the kinds present (1: all digits, 2: with letters), and the
 * probes of the session's values.
 */
export interface RestrictedValues {
  lengths: ReadonlyMap<number, number>;
  probes: ReadonlyMap<number, number>;
}

/** Used when a Persona enables flow control without rules of its own. */
export const defaultFlowRules: DataFlowRule[] = [
  { fromEnvironments: ['production'], toEnvironments: ['development', 'external', 'pre-production'], crossUpstreamOnly: true, action: 'block' },
  { toToolClasses: ['egress'], crossUpstreamOnly: true, action: 'block' },
];

export class FlowTracker {
  /** Sessions this process served (a response recorded or a request checked here), least recently used first. */
  readonly #sessions = new Map<string, SessionFlow>();
  /** Sessions known only from other replicas' messages, oldest first: evicted before any of #sessions. */
  readonly #replicatedOnly = new Map<string, SessionFlow>();
  readonly #options: FlowTrackerOptions;
  readonly #rules: DataFlowRule[];

  constructor(options: FlowTrackerOptions) {
    this.#options = options;
    this.#rules = options.rules && options.rules.length > 0 ? options.rules : defaultFlowRules;
  }

  /**
   * Records values read from a tool result. Returns a signal when the distinct values the session
   * read within the TTL reach the gradual-collection threshold; once signalled, it is signalled again
   * only after that count has fallen to half the threshold (a steady reader at the threshold is one
   * episode, not a signal per value). `limits` are the Persona's, when given; else the tracker's.
   */
  recordResponse(session: string, origin: FlowOrigin, fingerprints: ValueFingerprint[], limits?: FlowLimits): FlowSignal | null {
    const { maxFingerprintsPerSession, ttlMs, gradualCollectionThreshold } = limits ?? this.#options;
    const s = this.#served(session) ?? this.#create(session, this.#sessions);
    const now = this.#options.now();
    rearm(s, now, ttlMs, gradualCollectionThreshold);
    remember(s, origin, fingerprints, maxFingerprintsPerSession, ttlMs, now);
    const distinct = readWithinTtl(s, now, ttlMs);
    if (s.signalled || distinct < gradualCollectionThreshold) return null;
    s.signalled = true;
    return {
      code: 'gradual_collection',
      session,
      distinctValues: distinct,
      message: `session read ${distinct} distinct sensitive values from tool results within ${Math.round(ttlMs / 1000)} s`,
    };
  }

  /**
   * Records values another replica read, under this replica's `limits` for the session's Persona.
   * They count toward the gradual-collection threshold, which only a value read here (recordResponse)
   * can cross with a signal; they never keep it from being re-armed, which is decided before they are
   * added. A session first met this way is evicted before any this replica served.
   */
  recordReplicated(session: string, origin: FlowOrigin, fingerprints: ValueFingerprint[], limits: FlowLimits): void {
    const s = this.#sessions.get(session) ?? this.#replicatedOnly.get(session) ?? this.#create(session, this.#replicatedOnly);
    const now = this.#options.now();
    rearm(s, now, limits.ttlMs, limits.gradualCollectionThreshold);
    remember(s, origin, fingerprints, limits.maxFingerprintsPerSession, limits.ttlMs, now);
  }

  /**
   * Checks values about to be sent in a request against what the session read earlier.
   * `rules` and `limits` override the tracker's: one tracker serves every Persona, each with its own.
   */
  checkRequest(session: string, destination: FlowDestination, fingerprints: Iterable<Pick<ValueFingerprint, 'hash'>>, rules?: DataFlowRule[], limits?: FlowLimits): FlowViolation[] {
    const { ttlMs } = limits ?? this.#options;
    const activeRules = rules && rules.length > 0 ? rules : this.#rules;
    const s = this.#served(session);
    if (!s) return [];
    const now = this.#options.now();
    const out: FlowViolation[] = [];
    for (const f of fingerprints) {
      const r = s.values.get(f.hash);
      if (!r) continue;
      if (now - r.seenAt > ttlMs) {
        forget(s, f.hash);
        continue;
      }
      for (const rule of activeRules) {
        if (!ruleApplies(rule, r, destination)) continue;
        out.push({
          code: 'sensitive_data_flow_blocked',
          dataClass: r.dataClass,
          detector: r.detector,
          from: r.origin,
          to: destination,
          action: rule.action,
          message: `${r.dataClass} read from upstream "${r.origin.upstream}" (${r.origin.environment}) may not be sent to ${destination.tool ? `tool "${destination.tool}" on ` : ''}upstream "${destination.upstream}" (${destination.environment})`,
        });
        break;
      }
    }
    return out;
  }

  /**
   * What a request to `destination` must be searched for beyond its findings, or null when no
   * remembered value of the session is barred from it (then the search costs nothing): the
   * lengths and kinds of the barred values, and the probes of all. One look per origin and data
   * class the session read, not per value. Values past their TTL may still count here; checkRequest
   * drops them.
   */
  restrictedValues(session: string, destination: FlowDestination, rules?: DataFlowRule[]): RestrictedValues | null {
    const s = this.#served(session);
    if (!s || s.probes.size === 0) return null;
    const activeRules = rules && rules.length > 0 ? rules : this.#rules;
    let lengths: Map<number, number> | null = null;
    for (const source of s.sources.values()) {
      if (source.shapes.size === 0 || !activeRules.some((rule) => ruleApplies(rule, source, destination))) continue;
      lengths ??= new Map();
      for (const k of source.shapes.keys()) {
        const length = k >>> 1;
        lengths.set(length, (lengths.get(length) ?? 0) | ((k & 1) === 1 ? 1 : 2));
      }
    }
    return lengths === null ? null : { lengths, probes: s.probes };
  }

  forgetSession(session: string): void {
    this.#sessions.delete(session);
    this.#replicatedOnly.delete(session);
  }

  /** The session as a call through this process uses it: now this process's, and its most recently used. */
  #served(id: string): SessionFlow | undefined {
    let s = this.#sessions.get(id);
    if (s !== undefined) {
      this.#sessions.delete(id);
    } else {
      s = this.#replicatedOnly.get(id);
      if (s === undefined) return undefined;
      this.#replicatedOnly.delete(id);
    }
    this.#sessions.set(id, s);
    return s;
  }

  #create(id: string, into: Map<string, SessionFlow>): SessionFlow {
    const s: SessionFlow = { values: new Map(), sources: new Map(), probes: new Map(), dropped: [], signalled: false };
    into.set(id, s);
    const max = this.#options.maxSessions ?? 10_000;
    while (this.#sessions.size + this.#replicatedOnly.size > max) {
      const oldest = this.#replicatedOnly.size > 0 ? this.#replicatedOnly : this.#sessions;
      oldest.delete(oldest.keys().next().value!);
    }
    return s;
  }
}

/** Adds values to a session, at most `maxValues` kept: the oldest go first. */
function remember(s: SessionFlow, origin: FlowOrigin, fingerprints: ValueFingerprint[], maxValues: number, ttlMs: number, now: number): void {
  for (const f of fingerprints) {
    forget(s, f.hash);
    const source = sourceOf(s, origin, f.dataClass);
    const shape = f.shape ?? null;
    s.values.set(f.hash, { origin, dataClass: f.dataClass, detector: f.detector, seenAt: now, source, shape });
    source.values++;
    if (shape) {
      const k = shapeKey(shape);
      source.shapes.set(k, (source.shapes.get(k) ?? 0) + 1);
      s.probes.set(shape.probe, (s.probes.get(shape.probe) ?? 0) + 1);
    }
    // Oldest first out: Map keeps insertion order, and re-seen values were re-inserted above.
    while (s.values.size > maxValues) {
      const [hash, oldest] = s.values.entries().next().value!;
      if (now - oldest.seenAt <= ttlMs) countDropped(s, oldest.seenAt, ttlMs);
      forget(s, hash);
    }
  }
}

/**
 * How many distinct values the session read within the TTL (here, or on other replicas): the ones it
 * remembers, and the ones the memory bound dropped that have not expired yet. Forgets what has.
 */
function readWithinTtl(s: SessionFlow, now: number, ttlMs: number): number {
  for (const [hash, r] of s.values) {
    if (now - r.seenAt <= ttlMs) break;
    forget(s, hash);
  }
  while (s.dropped.length > 0 && now - s.dropped[0]!.last > ttlMs) s.dropped.shift();
  let count = s.values.size;
  for (const slice of s.dropped) count += slice.count;
  return count;
}

/** The gradual-collection signal may be raised again once the values read within the TTL fall to half the threshold. */
function rearm(s: SessionFlow, now: number, ttlMs: number, threshold: number): void {
  if (s.signalled && readWithinTtl(s, now, ttlMs) <= Math.floor(threshold / 2)) s.signalled = false;
}

/** Counts a value the memory bound dropped, read at `seenAt`, in the newest slice if it spans little enough. */
function countDropped(s: SessionFlow, seenAt: number, ttlMs: number): void {
  const newest = s.dropped.at(-1);
  if (newest !== undefined && seenAt - newest.first < ttlMs / droppedSlicesPerTtl) {
    newest.count++;
    newest.last = Math.max(newest.last, seenAt);
    return;
  }
  s.dropped.push({ first: seenAt, last: seenAt, count: 1 });
  if (s.dropped.length > maxDroppedSlices) {
    // Only a TTL that shrank leaves this many: the two oldest become one, expiring with the newer.
    const [a, b] = s.dropped.splice(0, 2) as [DroppedSlice, DroppedSlice];
    s.dropped.unshift({ first: a.first, last: Math.max(a.last, b.last), count: a.count + b.count });
  }
}

function sourceOf(s: SessionFlow, origin: FlowOrigin, dataClass: string): ValueSource {
  const key = `${origin.upstream}\0${origin.environment}\0${dataClass}`;
  let source = s.sources.get(key);
  if (source === undefined) s.sources.set(key, (source = { key, origin: { upstream: origin.upstream, environment: origin.environment }, dataClass, values: 0, shapes: new Map() }));
  return source;
}

function shapeKey(shape: CanonicalShape): number {
  return (shape.length << 1) | (shape.digitsOnly ? 1 : 0);
}

/** Drops a remembered value and its share of the session's lengths and probes. */
function forget(s: SessionFlow, hash: string): void {
  const r = s.values.get(hash);
  if (r === undefined) return;
  s.values.delete(hash);
  const source = r.source;
  if (r.shape) {
    decrement(source.shapes, shapeKey(r.shape));
    decrement(s.probes, r.shape.probe);
  }
  if (--source.values === 0) s.sources.delete(source.key);
}

function decrement(counts: Map<number, number>, key: number): void {
  const n = (counts.get(key) ?? 0) - 1;
  if (n <= 0) counts.delete(key);
  else counts.set(key, n);
}

function ruleApplies(rule: DataFlowRule, r: Pick<Remembered, 'origin' | 'dataClass'>, to: FlowDestination): boolean {
  if (rule.crossUpstreamOnly && r.origin.upstream === to.upstream) return false;
  if (rule.dataClasses && !rule.dataClasses.includes(r.dataClass)) return false;
  if (rule.fromEnvironments && !rule.fromEnvironments.includes(r.origin.environment)) return false;
  if (rule.toEnvironments && !rule.toEnvironments.includes(to.environment)) return false;
  if (rule.toToolClasses && (!to.toolClass || !rule.toToolClasses.includes(to.toolClass))) return false;
  if (rule.toTools && (!to.tool || !rule.toTools.includes(to.tool))) return false;
  return true;
}
