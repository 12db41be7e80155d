// Behaviour state shared by ext_proc replicas over NATS JetStream KV.
// The engine's reads and writes stay synchronous and local (an InMemorySessionStateStore);
// this store replicates them behind its back:
//   - sessions and counters: write-behind, coalesced per key, last writer by logical clock,
//     with the security-relevant parts of a session and the counters merged conservatively;
//   - quarantine: a put/delete per agent in its own bucket, applied by every replica in the
//     server's order.
// A NATS outage never blocks evaluate(): writes stay dirty (bounded) and are flushed on reconnect.
// The consistency model and what an outage loses are in docs/behaviour.md ("More than one replica").
import { Buffer } from 'node:buffer';
import { connectToNats, type NatsSettings } from '../../config/nats-connection.ts';
import type { KV, KvEntry, NatsConnection, QueuedIterator } from 'nats';
import type { DecisionReason } from '../decision/decision.ts';
import {
  InMemorySessionStateStore,
  type BreakerState,
  type InMemoryStoreLimits,
  type QuarantineRecord,
  type RuleProgress,
  type ScopeCounter,
  type SessionState,
  type SessionStateStore,
} from './state-store.ts';

export interface NatsSessionStateStoreOptions extends InMemoryStoreLimits {
  /** The NATS servers, credentials and TLS (config/nats-connection.ts, from MANDATE_NATS_*). */
  nats: NatsSettings;
  /** Bucket names are `<prefix>-sessions`, `<prefix>-counters`, `<prefix>-quarantine`. */
  bucketPrefix?: string;
  /** Unique per replica and stable across its restarts (e.g. the pod name). */
  replicaId: string;
  log: (event: string, fields: Record<string, unknown>) => void;
  /** Writes of one key within this many ms are published once. Default 2. */
  coalesceMs?: number;
  /** Keys waiting to be published; beyond this new writes are dropped (counted). Default 50,000. */
  maxPendingWrites?: number;
  /** KV puts awaiting their acknowledgement. Default 512. */
  maxInFlight?: number;
  /** Distinct objects replicated per session (4 bytes each). Default 65,536. */
  maxReplicatedObjects?: number;
  /** Two token-bucket views this close in time are concurrent: the lower balance wins. Default 250. */
  counterMergeWindowMs?: number;
  /** Sessions not written for this long expire from the bucket. Default 1h (the default idle timeout). */
  sessionTtlMs?: number;
  /** Counters not written for this long expire from the bucket. Default 48h (covers a 1d quota). */
  counterTtlMs?: number;
  /** How long the first connection may take. Default 5s. */
  connectTimeoutMs?: number;
  /** Instrumentation: called for every applied remote update with its propagation delay. */
  onRemoteApplied?: (kind: ReplicatedKind, delayMs: number) => void;
}

export type ReplicatedKind = 'session' | 'counter' | 'quarantine';

export interface NatsStateStoreStats {
  connected: boolean;
  /** KV writes acknowledged by the server. */
  published: number;
  /** Remote updates applied to the local store. */
  applied: number;
  /** Remote updates not applied: own echoes and older versions. */
  ignored: number;
  /** Local writes never published: the pending-write bound was full. */
  dropped: number;
  /** KV writes that failed (timeout, disconnect); the key is retried if there is room. */
  publishErrors: number;
  /** Sessions whose distinct-object set was cut to maxReplicatedObjects when published. */
  truncated: number;
  /** Remote records that could not be decoded. */
  malformed: number;
  pendingWrites: number;
  inFlight: number;
  /** Write on the remote replica to application here, in ms; null before the first. */
  lastPropagationDelayMs: number | null;
  resyncs: number;
}

export interface NatsSessionStateStore extends SessionStateStore {
  readonly replicaId: string;
  /** Reads a session without publishing it afterwards (getSession() assumes the caller will modify it). */
  peekSession(key: string): SessionState | undefined;
  stats(): NatsStateStoreStats;
  /** Publishes what is pending (best effort, bounded by timeoutMs) and closes the connection. */
  close(timeoutMs?: number): Promise<void>;
}

const RECORD_FORMAT = 1;
const MAX_OBJECTS_PER_SESSION = 100_000;

/** Lamport clock of one key's state: the writer's counter and id break ties deterministically. */
interface Version {
  v: number;
  by: string;
}

/** A key waiting to be published, and when it was first written since its last publication. */
interface PendingWrite {
  op: 'put' | 'delete';
  since: number;
}

/** Rule progress is plain data already: it travels as it is. */
type EncodedRuleProgress = RuleProgress;

interface EncodedBreaker extends Omit<BreakerState, 'repeats' | 'seen'> {
  repeats: [number, number][];
  /** Fingerprints and their counts, as base64 of little-endian uint32 pairs. */
  seen: string;
}

/** A SessionState as JSON: Sets and Maps explicit, object hashes as base64 uint32 arrays. */
export interface EncodedSession extends Omit<SessionState, 'objects' | 'objectWindow' | 'rules' | 'breaker'> {
  objects: string | null;
  objectWindow: string | null;
  rules: EncodedRuleProgress[] | null;
  breaker: EncodedBreaker | null;
}

interface SessionRecord {
  f: number;
  by: string;
  v: number;
  /** Wall-clock ms (sub-ms precision) of the oldest local write it carries: staleness is measured from here. */
  t: number;
  s: EncodedSession;
}

interface CounterRecord {
  f: number;
  by: string;
  v: number;
  t: number;
  value: number;
  at: number;
}

interface QuarantineEntry {
  f: number;
  by: string;
  t: number;
  record: QuarantineRecord;
}

function wallClockMs(): number {
  return performance.timeOrigin + performance.now();
}

function newer(a: Version, b: Version): boolean {
  return a.v > b.v || (a.v === b.v && a.by > b.by);
}

/** At most `limit` of `size` uint32 values as base64 (little-endian). */
function encodeHashes(values: Iterable<number>, size: number, limit: number): { text: string; cut: boolean } {
  const count = Math.min(size, limit);
  const array = new Uint32Array(count);
  let i = 0;
  for (const value of values) {
    if (i >= count) break;
    array[i] = value;
    i += 1;
  }
  return { text: Buffer.from(array.buffer, array.byteOffset, array.byteLength).toString('base64'), cut: size > count };
}

function decodeHashes(text: string): Uint32Array {
  const bytes = Buffer.from(text, 'base64');
  const copy = new Uint8Array(bytes.length - (bytes.length % 4));
  copy.set(bytes.subarray(0, copy.length));
  return new Uint32Array(copy.buffer);
}

/** Serializes a session for the bucket; `objectLimit` bounds the size. `cut` tells whether objects were dropped. */
export function encodeSession(state: SessionState, objectLimit: number): { encoded: EncodedSession; cut: boolean } {
  const objects = state.objects ? encodeHashes(state.objects, state.objects.size, objectLimit) : null;
  const window = state.objectWindow ? encodeHashes(state.objectWindow, state.objectWindow.size, objectLimit) : null;
  let breaker: EncodedBreaker | null = null;
  if (state.breaker) {
    const { repeats, seen, ...rest } = state.breaker;
    const pairs: number[] = [];
    for (const [fingerprint, count] of seen) pairs.push(fingerprint, count);
    breaker = { ...rest, repeats: [...repeats], seen: encodeHashes(pairs, pairs.length, pairs.length).text };
  }
  const encoded: EncodedSession = {
    ...state,
    objects: objects?.text ?? null,
    objectWindow: window?.text ?? null,
    rules: state.rules ? state.rules.map((r) => ({ ...r, times: r.times ? [...r.times] : null, counts: [...r.counts] })) : null,
    recent: state.recent.map((run) => ({ ...run })),
    breaker,
  };
  return { encoded, cut: (objects?.cut ?? false) || (window?.cut ?? false) };
}

export function decodeSession(encoded: EncodedSession): SessionState {
  let breaker: BreakerState | null = null;
  if (encoded.breaker) {
    const { repeats, seen, ...rest } = encoded.breaker;
    const pairs = decodeHashes(seen);
    const seenMap = new Map<number, number>();
    for (let i = 0; i + 1 < pairs.length; i += 2) seenMap.set(pairs[i] ?? 0, pairs[i + 1] ?? 0);
    breaker = { ...rest, repeats: new Map(repeats), seen: seenMap };
  }
  return {
    ...encoded,
    objects: encoded.objects === null ? null : new Set(decodeHashes(encoded.objects)),
    objectWindow: encoded.objectWindow === null ? null : new Set(decodeHashes(encoded.objectWindow)),
    rules: encoded.rules ? encoded.rules.map((r) => ({ ...r })) : null,
    recent: encoded.recent.map((run) => ({ ...run })),
    breaker,
  };
}

function ruleAhead(a: RuleProgress, b: RuleProgress): boolean {
  return a.step > b.step || (a.step === b.step && a.count > b.count);
}

/**
 * Folds `other` into `target` where losing it would make enforcement looser: an ended session stays
 * ended, a rule keeps its furthest progress, a stopped or more-tripped breaker wins, counts and
 * objects never shrink. Only for the same session incarnation (same startedAt).
 */
export function mergeSessionConservatively(target: SessionState, other: SessionState): void {
  if (target.startedAt !== other.startedAt) return;
  target.ended ??= other.ended;
  target.calls = Math.max(target.calls, other.calls);
  target.bytesOut = Math.max(target.bytesOut, other.bytesOut);
  target.results = Math.max(target.results, other.results);
  target.errors = Math.max(target.errors, other.errors);
  target.lastSeenAt = Math.max(target.lastSeenAt, other.lastSeenAt);
  if (other.objects) {
    const objects = (target.objects ??= new Set());
    for (const object of other.objects) {
      if (objects.size >= MAX_OBJECTS_PER_SESSION) break;
      objects.add(object);
    }
  }
  if (other.rules && target.rules && other.rules.length === target.rules.length) {
    target.rules = target.rules.map((mine, i) => {
      const theirs = other.rules?.[i];
      return theirs && ruleAhead(theirs, mine) ? { ...theirs, times: theirs.times ? [...theirs.times] : null, counts: [...theirs.counts] } : mine;
    });
  } else if (other.rules && !target.rules) {
    target.rules = other.rules;
  }
  for (const signal of other.signals ?? []) {
    if (!(target.signals ??= []).includes(signal)) target.signals.push(signal);
  }
  const theirs = other.breaker;
  const mine = target.breaker;
  if (theirs && (!mine || (theirs.stopped && !mine.stopped) || (theirs.stopped === mine.stopped && theirs.trips > mine.trips))) {
    target.breaker = theirs;
  }
}

/**
 * Token bucket or fixed window, from the engine's counter key (engine.ts counterKey): agent and tool
 * keys are `persona, kind, a:agent|t:upstream[, tool]`, session keys `persona, agent, user, s:|c:id, kind`.
 */
export function counterKindOf(key: string): 'bucket' | 'window' | 'unknown' {
  const parts = key.split('\u0000');
  const kind = (parts.length === 5 && /^[sc]:/.test(parts[3] ?? '') ? parts[4] : parts[1]) ?? '';
  if (/^rl\d+$/.test(kind)) return 'bucket';
  if (/^q\d+$/.test(kind)) return 'window';
  return 'unknown';
}

/**
 * Merges a remote view of a counter into the local one so the result is never looser than either:
 * quota windows take the later window and the higher count in the same window; token buckets seen
 * within `concurrentMs` of each other take the lower balance at the later time, otherwise the later view.
 */
export function mergeCounter(kind: 'bucket' | 'window' | 'unknown', local: ScopeCounter, remote: ScopeCounter, concurrentMs: number): ScopeCounter {
  switch (kind) {
    case 'window':
      if (remote.at > local.at) return { value: remote.value, at: remote.at };
      if (remote.at === local.at) return { value: Math.max(local.value, remote.value), at: local.at };
      return local;
    case 'bucket':
      if (Math.abs(remote.at - local.at) <= concurrentMs) return { value: Math.min(local.value, remote.value), at: Math.max(local.at, remote.at) };
      return remote.at > local.at ? { value: remote.value, at: remote.at } : local;
    case 'unknown':
      return remote.at > local.at ? { value: remote.value, at: remote.at } : local;
  }
}

function kvKey(key: string): string {
  return Buffer.from(key, 'utf8').toString('base64url');
}

function keyOfKv(kvKeyText: string): string {
  return Buffer.from(kvKeyText, 'base64url').toString('utf8');
}

interface Buckets {
  sessions: KV;
  counters: KV;
  quarantine: KV;
}

export async function openNatsSessionStateStore(options: NatsSessionStateStoreOptions): Promise<NatsSessionStateStore> {
  const connection = await connectToNats(options.nats, {
    name: `mandate-ext-proc-${options.replicaId}`,
    reconnect: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    timeout: options.connectTimeoutMs ?? 5000,
  });
  const store = new NatsReplicatedStore(connection, options);
  try {
    await store.start();
  } catch (error) {
    await connection.close().catch(() => undefined);
    throw error;
  }
  return store;
}

class NatsReplicatedStore implements NatsSessionStateStore {
  readonly replicaId: string;
  readonly #local: InMemorySessionStateStore;
  readonly #connection: NatsConnection;
  readonly #options: NatsSessionStateStoreOptions;
  readonly #prefix: string;
  readonly #coalesceMs: number;
  readonly #maxPending: number;
  readonly #maxInFlight: number;
  readonly #maxObjects: number;
  readonly #mergeWindowMs: number;
  readonly #encoder = new TextEncoder();
  readonly #decoder = new TextDecoder();
  // Versions live beside the state objects, so the local store's LRU bounds them too.
  readonly #sessionVersions = new WeakMap<SessionState, Version>();
  readonly #counterVersions = new WeakMap<ScopeCounter, Version>();
  readonly #pendingSessions = new Map<string, PendingWrite>();
  readonly #pendingCounters = new Map<string, PendingWrite>();
  readonly #pendingQuarantine = new Map<string, { op: 'put'; record: QuarantineRecord } | { op: 'delete' }>();
  #buckets: Buckets | null = null;
  #watchers: QueuedIterator<KvEntry>[] = [];
  #flushTimer: ReturnType<typeof setTimeout> | null = null;
  #connected = true;
  #closing = false;
  #resyncing: Promise<void> | null = null;
  #inFlight = 0;
  readonly #stats = { published: 0, applied: 0, ignored: 0, dropped: 0, publishErrors: 0, truncated: 0, malformed: 0, resyncs: 0 };
  #lastDelayMs: number | null = null;

  constructor(connection: NatsConnection, options: NatsSessionStateStoreOptions) {
    this.replicaId = options.replicaId;
    this.#connection = connection;
    this.#options = options;
    this.#local = new InMemorySessionStateStore(options);
    this.#prefix = options.bucketPrefix ?? 'mandate-behaviour';
    this.#coalesceMs = options.coalesceMs ?? 2;
    this.#maxPending = options.maxPendingWrites ?? 50_000;
    this.#maxInFlight = options.maxInFlight ?? 512;
    this.#maxObjects = options.maxReplicatedObjects ?? 65_536;
    this.#mergeWindowMs = options.counterMergeWindowMs ?? 250;
  }

  async start(): Promise<void> {
    await this.#openBuckets();
    await this.#watchAll();
    void this.#followStatus();
  }

  // --- SessionStateStore: synchronous, local ------------------------------------------

  get sessionCount(): number {
    return this.#local.sessionCount;
  }

  getSession(key: string): SessionState | undefined {
    const state = this.#local.getSession(key);
    // recordResult() mutates the state it gets without setSession: publish it after the call too.
    if (state) this.#markPending(this.#pendingSessions, key, 'put');
    return state;
  }

  peekSession(key: string): SessionState | undefined {
    return this.#local.getSession(key);
  }

  setSession(key: string, state: SessionState): void {
    const previous = this.#local.getSession(key);
    if (previous && previous !== state && !this.#sessionVersions.has(state)) {
      const version = this.#sessionVersions.get(previous);
      if (version) this.#sessionVersions.set(state, { ...version });
    }
    this.#local.setSession(key, state);
    this.#markPending(this.#pendingSessions, key, 'put');
  }

  deleteSession(key: string): void {
    this.#local.deleteSession(key);
    this.#markPending(this.#pendingSessions, key, 'delete');
  }

  getCounter(key: string): ScopeCounter | undefined {
    return this.#local.getCounter(key);
  }

  setCounter(key: string, counter: ScopeCounter): void {
    const previous = this.#local.getCounter(key);
    if (previous && previous !== counter && !this.#counterVersions.has(counter)) {
      const version = this.#counterVersions.get(previous);
      if (version) this.#counterVersions.set(counter, { ...version });
    }
    this.#local.setCounter(key, counter);
    this.#markPending(this.#pendingCounters, key, 'put');
  }

  quarantined(agent: string): QuarantineRecord | undefined {
    return this.#local.quarantined(agent);
  }

  quarantine(record: QuarantineRecord): void {
    if (this.#local.quarantined(record.agent)) return;
    this.#local.quarantine(record);
    this.#queueQuarantine(record.agent, { op: 'put', record });
  }

  release(agent: string): boolean {
    const released = this.#local.release(agent);
    if (released) this.#queueQuarantine(agent, { op: 'delete' });
    return released;
  }

  listQuarantined(): QuarantineRecord[] {
    return this.#local.listQuarantined();
  }

  stats(): NatsStateStoreStats {
    return {
      connected: this.#connected,
      ...this.#stats,
      pendingWrites: this.#pendingSessions.size + this.#pendingCounters.size + this.#pendingQuarantine.size,
      inFlight: this.#inFlight,
      lastPropagationDelayMs: this.#lastDelayMs,
    };
  }

  async close(timeoutMs = 2000): Promise<void> {
    if (this.#closing) return;
    const deadline = Date.now() + timeoutMs;
    while (this.#connected && (this.#inFlight > 0 || this.stats().pendingWrites > 0) && Date.now() < deadline) {
      this.#flush();
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    this.#closing = true;
    if (this.#flushTimer) clearTimeout(this.#flushTimer);
    for (const watcher of this.#watchers) watcher.stop();
    this.#watchers = [];
    if (!this.#connection.isClosed()) await this.#connection.close().catch(() => undefined);
  }

  // --- write-behind ---------------------------------------------------------------------

  #markPending(pending: Map<string, PendingWrite>, key: string, op: 'put' | 'delete', since = wallClockMs()): void {
    if (this.#closing) return;
    const queued = pending.get(key);
    if (queued) {
      queued.op = op;
      return;
    }
    if (this.#pendingSessions.size + this.#pendingCounters.size >= this.#maxPending) {
      this.#stats.dropped += 1;
      return;
    }
    pending.set(key, { op, since });
    this.#scheduleFlush(this.#coalesceMs);
  }

  #queueQuarantine(agent: string, op: { op: 'put'; record: QuarantineRecord } | { op: 'delete' }): void {
    // One entry per agent, so this is bounded by the agents quarantined or released meanwhile.
    this.#pendingQuarantine.delete(agent);
    this.#pendingQuarantine.set(agent, op);
    this.#scheduleFlush(0);
  }

  #scheduleFlush(delayMs: number): void {
    if (this.#flushTimer !== null || this.#closing || !this.#connected) return;
    this.#flushTimer = setTimeout(() => {
      this.#flushTimer = null;
      this.#flush();
    }, delayMs);
  }

  #flush(): void {
    const buckets = this.#buckets;
    if (!buckets || !this.#connected || this.#closing) return;
    for (const [agent, op] of this.#pendingQuarantine) {
      if (this.#inFlight >= this.#maxInFlight) break;
      this.#pendingQuarantine.delete(agent);
      const write =
        op.op === 'put'
          ? buckets.quarantine.put(kvKey(agent), this.#encode({ f: RECORD_FORMAT, by: this.replicaId, t: wallClockMs(), record: op.record } satisfies QuarantineEntry))
          : buckets.quarantine.delete(kvKey(agent));
      // A failed quarantine write is retried unless a newer one for the agent is queued.
      this.#track(write, () => {
        if (!this.#pendingQuarantine.has(agent)) this.#pendingQuarantine.set(agent, op);
      });
    }
    // Sessions and counters take turns for the in-flight slots, so neither starves the other under load.
    const sessions = this.#pendingSessions.entries();
    const counters = this.#pendingCounters.entries();
    let sessionsLeft = true;
    let countersLeft = true;
    while ((sessionsLeft || countersLeft) && this.#inFlight < this.#maxInFlight) {
      const nextSession = sessionsLeft ? sessions.next() : null;
      if (nextSession?.done) sessionsLeft = false;
      else if (nextSession) this.#publishSession(buckets, nextSession.value[0], nextSession.value[1]);
      if (this.#inFlight >= this.#maxInFlight) break;
      const nextCounter = countersLeft ? counters.next() : null;
      if (nextCounter?.done) countersLeft = false;
      else if (nextCounter) this.#publishCounter(buckets, nextCounter.value[0], nextCounter.value[1]);
    }
    if (this.#pendingSessions.size + this.#pendingCounters.size + this.#pendingQuarantine.size > 0) this.#scheduleFlush(1);
  }

  #publishSession(buckets: Buckets, key: string, write: PendingWrite): void {
    this.#pendingSessions.delete(key);
    const state = this.#local.getSession(key);
    if (write.op === 'delete' || !state) {
      if (write.op === 'delete') this.#track(buckets.sessions.delete(kvKey(key)), () => this.#retry(this.#pendingSessions, key, write));
      return;
    }
    const version = this.#bump(this.#sessionVersions, state);
    const { encoded, cut } = encodeSession(state, this.#maxObjects);
    if (cut) this.#stats.truncated += 1;
    const record: SessionRecord = { f: RECORD_FORMAT, by: this.replicaId, v: version.v, t: write.since, s: encoded };
    this.#track(buckets.sessions.put(kvKey(key), this.#encode(record)), () => this.#retry(this.#pendingSessions, key, write));
  }

  #publishCounter(buckets: Buckets, key: string, write: PendingWrite): void {
    this.#pendingCounters.delete(key);
    const counter = this.#local.getCounter(key);
    if (!counter) return;
    const version = this.#bump(this.#counterVersions, counter);
    const record: CounterRecord = { f: RECORD_FORMAT, by: this.replicaId, v: version.v, t: write.since, value: counter.value, at: counter.at };
    this.#track(buckets.counters.put(kvKey(key), this.#encode(record)), () => this.#retry(this.#pendingCounters, key, write));
  }

  /** A failed write is queued again unless a newer write of the key is already waiting. */
  #retry(pending: Map<string, PendingWrite>, key: string, write: PendingWrite): void {
    if (!pending.has(key)) this.#markPending(pending, key, write.op, write.since);
  }

  #bump<T extends object>(versions: WeakMap<T, Version>, state: T): Version {
    const version = versions.get(state) ?? { v: 0, by: this.replicaId };
    version.v += 1;
    version.by = this.replicaId;
    versions.set(state, version);
    return version;
  }

  #track(write: Promise<unknown>, retry: () => void): void {
    this.#inFlight += 1;
    write.then(
      () => {
        this.#inFlight -= 1;
        this.#stats.published += 1;
      },
      (error: unknown) => {
        this.#inFlight -= 1;
        this.#stats.publishErrors += 1;
        if (this.#closing) return;
        if (this.#stats.publishErrors === 1 || this.#stats.publishErrors % 1000 === 0) {
          this.#options.log('behaviour_replication_publish_failed', { replica: this.replicaId, error: String(error), failures: this.#stats.publishErrors });
        }
        retry();
        this.#scheduleFlush(this.#coalesceMs);
      },
    );
  }

  #encode(value: unknown): Uint8Array {
    return this.#encoder.encode(JSON.stringify(value));
  }

  // --- watching --------------------------------------------------------------------------

  async #openBuckets(): Promise<void> {
    const js = this.#connection.jetstream();
    const sessionTtl = this.#options.sessionTtlMs ?? 3_600_000;
    const counterTtl = this.#options.counterTtlMs ?? 48 * 3_600_000;
    // Opening creates the bucket when it is missing (first replica, or a server that lost its store).
    this.#buckets = {
      sessions: await js.views.kv(`${this.#prefix}-sessions`, { history: 1, ttl: sessionTtl, maxValueSize: 1024 * 1024 }),
      counters: await js.views.kv(`${this.#prefix}-counters`, { history: 1, ttl: counterTtl }),
      quarantine: await js.views.kv(`${this.#prefix}-quarantine`, { history: 1 }),
    };
  }

  async #watchAll(): Promise<void> {
    const buckets = this.#buckets;
    if (!buckets) return;
    for (const watcher of this.#watchers) watcher.stop();
    this.#watchers = [];
    let snapshotDone: () => void = () => undefined;
    const quarantineSnapshot = new Promise<void>((resolve) => (snapshotDone = resolve));
    const seenInSnapshot = new Set<string>();
    let inSnapshot = true;
    const sessions = await buckets.sessions.watch({ ignoreDeletes: false });
    const counters = await buckets.counters.watch({ ignoreDeletes: true });
    const quarantine = await buckets.quarantine.watch({
      initializedFn: () => {
        inSnapshot = false;
        snapshotDone();
      },
    });
    this.#watchers = [sessions, counters, quarantine];
    void this.#consume(sessions, (entry) => this.#applySession(entry));
    void this.#consume(counters, (entry) => this.#applyCounter(entry));
    void this.#consume(quarantine, (entry) => {
      if (inSnapshot && entry.operation === 'PUT') seenInSnapshot.add(keyOfKv(entry.key));
      this.#applyQuarantine(entry);
    });
    // The bucket is the truth for quarantine: drop local entries it does not hold, unless ours are queued.
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([quarantineSnapshot, new Promise((resolve) => (timer = setTimeout(resolve, 5000)))]);
    clearTimeout(timer);
    for (const record of this.#local.listQuarantined()) {
      if (!seenInSnapshot.has(record.agent) && !this.#pendingQuarantine.has(record.agent)) this.#local.release(record.agent);
    }
  }

  async #consume(watcher: QueuedIterator<KvEntry>, apply: (entry: KvEntry) => void): Promise<void> {
    try {
      for await (const entry of watcher) {
        try {
          apply(entry);
        } catch (error) {
          this.#stats.malformed += 1;
          if (this.#stats.malformed === 1) this.#options.log('behaviour_replication_bad_record', { replica: this.replicaId, bucket: entry.bucket, error: String(error) });
        }
      }
    } catch (error) {
      if (!this.#closing) this.#options.log('behaviour_replication_watch_ended', { replica: this.replicaId, error: String(error) });
    }
  }

  #noteApplied(kind: ReplicatedKind, writtenAt: number): void {
    const delay = wallClockMs() - writtenAt;
    this.#stats.applied += 1;
    this.#lastDelayMs = delay;
    this.#options.onRemoteApplied?.(kind, delay);
  }

  #applySession(entry: KvEntry): void {
    const key = keyOfKv(entry.key);
    if (entry.operation !== 'PUT') {
      // Deletes carry no writer; our own come back too and are harmless (the key is already gone).
      if (!this.#pendingSessions.has(key)) this.#local.deleteSession(key);
      return;
    }
    const record = JSON.parse(this.#decoder.decode(entry.value)) as SessionRecord;
    if (record.f !== RECORD_FORMAT || record.by === this.replicaId) {
      this.#stats.ignored += 1;
      return;
    }
    const remote = decodeSession(record.s);
    const local = this.#local.getSession(key);
    const localVersion = local ? (this.#sessionVersions.get(local) ?? { v: 0, by: '' }) : { v: -1, by: '' };
    if (!newer(record, localVersion)) {
      // An older or concurrent view: keep ours but never forget what made it stricter.
      if (local) mergeSessionConservatively(local, remote);
      this.#stats.ignored += 1;
      return;
    }
    if (local) mergeSessionConservatively(remote, local);
    this.#sessionVersions.set(remote, { v: record.v, by: record.by });
    this.#local.setSession(key, remote);
    this.#noteApplied('session', record.t);
  }

  #applyCounter(entry: KvEntry): void {
    const record = JSON.parse(this.#decoder.decode(entry.value)) as CounterRecord;
    if (record.f !== RECORD_FORMAT || record.by === this.replicaId) {
      this.#stats.ignored += 1;
      return;
    }
    const key = keyOfKv(entry.key);
    const local = this.#local.getCounter(key);
    const localVersion = local ? (this.#counterVersions.get(local) ?? { v: 0, by: '' }) : { v: -1, by: '' };
    const merged = local ? mergeCounter(counterKindOf(key), local, record, this.#mergeWindowMs) : { value: record.value, at: record.at };
    const version = { v: Math.max(localVersion.v, record.v), by: newer(record, localVersion) ? record.by : localVersion.by };
    if (local && merged === local) {
      this.#counterVersions.set(local, version);
      this.#stats.ignored += 1;
      return;
    }
    this.#counterVersions.set(merged, version);
    this.#local.setCounter(key, merged);
    this.#noteApplied('counter', record.t);
  }

  #applyQuarantine(entry: KvEntry): void {
    // Every replica applies every quarantine put and delete in the server's order, its own included,
    // so all replicas end on the bucket's state.
    const agent = keyOfKv(entry.key);
    const queued = this.#pendingQuarantine.get(agent);
    if (entry.operation !== 'PUT') {
      if (queued?.op !== 'put') this.#local.release(agent);
      return;
    }
    const stored = JSON.parse(this.#decoder.decode(entry.value)) as QuarantineEntry;
    if (queued?.op === 'delete') return;
    const record: QuarantineRecord = { agent: stored.record.agent, persona: stored.record.persona, since: stored.record.since, reason: stored.record.reason as DecisionReason };
    if (this.#local.quarantined(agent)) {
      this.#stats.ignored += 1;
      return;
    }
    this.#local.quarantine(record);
    if (stored.by !== this.replicaId) this.#noteApplied('quarantine', stored.t);
  }

  // --- connection ------------------------------------------------------------------------

  async #followStatus(): Promise<void> {
    for await (const status of this.#connection.status()) {
      if (this.#closing) return;
      if (status.type === 'disconnect') {
        this.#connected = false;
        this.#options.log('behaviour_replication_disconnected', { replica: this.replicaId, server: String(status.data) });
      } else if (status.type === 'reconnect') {
        this.#connected = true;
        this.#options.log('behaviour_replication_reconnected', { replica: this.replicaId, server: String(status.data) });
        this.#resyncing ??= this.#resync().finally(() => (this.#resyncing = null));
      }
    }
  }

  /** After a reconnect: reopen (recreate) the buckets, publish what is pending, replay the buckets. */
  async #resync(): Promise<void> {
    for (let attempt = 0; !this.#closing && this.#connected; attempt += 1) {
      try {
        await this.#openBuckets();
        this.#flush();
        await this.#watchAll();
        this.#stats.resyncs += 1;
        this.#options.log('behaviour_replication_resynced', { replica: this.replicaId, pendingWrites: this.stats().pendingWrites });
        return;
      } catch (error) {
        // JetStream may still be recovering its store right after a restart.
        if (attempt % 10 === 0) this.#options.log('behaviour_replication_resync_failed', { replica: this.replicaId, error: String(error) });
        await new Promise((resolve) => setTimeout(resolve, Math.min(2000, 100 * (attempt + 1))));
      }
    }
  }
}
