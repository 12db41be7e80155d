// Data-flow memory shared by ext_proc replicas over NATS. Envoy spreads a
// session's calls over the replicas, so the value a tool result revealed on one
// replica must be known to the replica that sees the next request:
//   - every replica hashes with the same fingerprint key, derived from the secret
//     the operator provisions to each of them (MANDATE_FLOW_KEY, flow-key.ts);
//     it is never kept on NATS;
//   - each remembered tool result is published (core NATS, at most once) and
//     every other replica records it in its own FlowTracker.
// Only keyed hashes (fingerprints and probes), canonical lengths, data classes
// and origins cross the wire, never values. A message lost in a NATS outage
// leaves that value known to its own replica only.
//
// What a message can do is bounded by the receiver, not the sender:
//   - it is signed (HMAC-SHA256 over its bytes, header Mandate-Flow-Mac) with a
//     key derived from the fingerprint key; a NATS client without the key cannot
//     forge one;
//   - it is dated and has a unique id, both signed: the receiver drops it when
//     its date is outside a short window or its id was seen within the window,
//     so a recorded message cannot be replayed;
//   - it carries no limits: the receiver applies its own compiled config for the
//     session's Persona, and drops messages for a Persona it does not know or
//     has flow control off for (its config is the one that counts, even while
//     replicas briefly run different versions);
//   - sessions it creates are evicted before any session the receiver serves, and
//     it never raises or suppresses the gradual-collection signal (flow.ts).
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { headers, Match, type Msg, type NatsConnection, type Subscription } from 'nats';
import { z } from 'zod';
import { environmentSchema } from '../../config/schema.ts';
import { maxCanonicalLength, minCanonicalLength } from './fingerprint.ts';
import type { FlowLimits, FlowOrigin, FlowSignal, FlowTrackerOptions } from './flow.ts';
import { FlowTracker, personaOfFlowSession } from './flow.ts';
import type { ValueFingerprint } from './inspect.ts';

/**
 * v4: dated, with a unique id (replay protection), under a MAC key derived from the operator's
 * MANDATE_FLOW_KEY. v3 (the key in the NATS KV bucket `mandate-flow`, no date or id), v2 (unsigned,
 * the sender's limits) and v1 replicas are not listened to, nor they to v4.
 */
export const flowSubject = 'mandate.flow.v4';
const macHeader = 'Mandate-Flow-Mac';
/** Domain separation: the MAC key is derived from the fingerprint key, never the key itself. */
const macKeyLabel = 'mandate flow replication mac v4';
const macBytes = 32;
/** About 200 bytes each as JSON: a message stays near 200 KB. */
const fingerprintsPerMessage = 1000;
/** A dropped message is logged at once, then at most once a minute per reason, with how many were dropped. */
const dropLogIntervalMs = 60_000;
/**
 * How far a message's date may be from the receiver's clock, either way. Delivery takes milliseconds;
 * the rest is room for the replicas' clocks to differ (NTP keeps them well within it). A message held
 * longer (a publisher's buffer during a NATS outage) is dropped, like one lost in the outage.
 */
export const flowMessageMaxAgeMs = 30_000;
/** Ids a receiver remembers at most: 3,333 messages a second for the whole window; past that see ReplayGuard. */
export const flowMessageIdsRemembered = 100_000;

const name = z.string().min(1).max(256);
/** What a replica publishes per remembered tool result; checked on arrival like any other input. Unknown fields are ignored. */
const flowMessageSchema = z.object({
  /** Unique per message (a random UUID): a second message with it is a replay. */
  id: z.string().min(16).max(64),
  /** When it was sent, in milliseconds since the epoch (the sender's clock). */
  sentAt: z.number().int().min(0),
  replica: name,
  session: z.string().min(1).max(1024),
  origin: z.object({ upstream: name, environment: environmentSchema, tool: name.optional() }),
  fingerprints: z
    .array(
      z.object({
        hash: name,
        dataClass: name,
        detector: name,
        group: name,
        shape: z.object({ length: z.number().int().min(minCanonicalLength).max(maxCanonicalLength), digitsOnly: z.boolean(), probe: z.number().int().min(0).max(0xffffffff) }).optional(),
      }),
    )
    .max(fingerprintsPerMessage),
});
export type FlowMessage = z.infer<typeof flowMessageSchema>;

/** What lets a replica trust and apply another's message: the shared key, and its own config per Persona. */
export interface FlowReplicationTrust {
  fingerprintKey: Buffer;
  /** This replica's limits for a Persona with flow control on; null when it does not know the Persona or has flow off. */
  personaFlowLimits: (persona: string) => FlowLimits | null;
}

export type FlowReplicationDrop = 'bad_mac' | 'bad_message' | 'stale' | 'replayed' | 'unknown_persona';

export interface FlowReplicationCounts {
  applied: number;
  dropped: Record<FlowReplicationDrop, number>;
}

/** The key messages are signed with, derived from the replicas' fingerprint key. */
export function flowMacKey(fingerprintKey: Buffer): Buffer {
  return createHmac('sha256', fingerprintKey).update(macKeyLabel).digest();
}

/** A message as it is published: its bytes (JSON) and their MAC (base64, the Mandate-Flow-Mac header). */
export function sealFlowMessage(macKey: Buffer, message: FlowMessage): { data: Uint8Array; mac: string } {
  const data = new TextEncoder().encode(JSON.stringify(message));
  return { data, mac: createHmac('sha256', macKey).update(data).digest('base64') };
}

/** The message in `data` when `mac` is its MAC and it has a message's shape; else why it is dropped. */
export function openFlowMessage(macKey: Buffer, data: Uint8Array, mac: string | undefined): { ok: true; message: FlowMessage } | { ok: false; reason: 'bad_mac' | 'bad_message' } {
  // The MAC first: a forged message costs one HMAC, never a JSON parse.
  const given = Buffer.from(mac ?? '', 'base64');
  if (given.length !== macBytes || !timingSafeEqual(given, createHmac('sha256', macKey).update(data).digest())) return { ok: false, reason: 'bad_mac' };
  let decoded: unknown;
  try {
    decoded = JSON.parse(new TextDecoder().decode(data));
  } catch {
    decoded = null;
  }
  const parsed = flowMessageSchema.safeParse(decoded);
  return parsed.success ? { ok: true, message: parsed.data } : { ok: false, reason: 'bad_message' };
}

/**
 * Which dated, identified messages are new. A message dated more than maxAgeMs from now (either way)
 * is stale; one whose id was admitted before, a replay. An id is remembered until its message would be
 * stale anyway, and at most `capacity` ids are: when full, the earliest admitted is forgotten and every
 * message dated no later than it counts as stale from then on, so a forgotten id can never pass again.
 * Pure: the caller gives the time.
 */
export class ReplayGuard {
  readonly #maxAgeMs: number;
  readonly #capacity: number;
  /** Admitted ids and their dates, in the order admitted. */
  readonly #seen = new Map<string, number>();
  /** Messages dated at or before this are stale: a forgotten id may have been dated so. */
  #floor = -Infinity;

  constructor(maxAgeMs: number, capacity: number) {
    this.#maxAgeMs = maxAgeMs;
    this.#capacity = capacity;
  }

  admit(id: string, sentAt: number, now: number): 'fresh' | 'stale' | 'replayed' {
    // Ids whose messages are now stale need no remembering. Admission order is about date order, so
    // looking from the front finds them; one dated later ahead of them only delays their turn.
    for (const [seenId, seenAt] of this.#seen) {
      if (now - seenAt <= this.#maxAgeMs) break;
      this.#seen.delete(seenId);
    }
    if (Math.abs(now - sentAt) > this.#maxAgeMs || sentAt <= this.#floor) return 'stale';
    if (this.#seen.has(id)) return 'replayed';
    if (this.#seen.size >= this.#capacity) {
      const [oldestId, oldestAt] = this.#seen.entries().next().value!;
      this.#seen.delete(oldestId);
      this.#floor = Math.max(this.#floor, oldestAt);
    }
    this.#seen.set(id, sentAt);
    return 'fresh';
  }

  /** Ids remembered now. */
  get size(): number {
    return this.#seen.size;
  }
}

/** A FlowTracker whose remembered values reach every replica. */
export class ReplicatedFlowTracker extends FlowTracker {
  readonly #nats: NatsConnection;
  readonly #replica: string;
  readonly #log: (event: string, fields: Record<string, unknown>) => void;
  readonly #now: () => number;
  readonly #macKey: Buffer;
  readonly #personaFlowLimits: FlowReplicationTrust['personaFlowLimits'];
  readonly #counts: FlowReplicationCounts = { applied: 0, dropped: { bad_mac: 0, bad_message: 0, stale: 0, replayed: 0, unknown_persona: 0 } };
  readonly #replays = new ReplayGuard(flowMessageMaxAgeMs, flowMessageIdsRemembered);
  /** Per reason: when a drop was last logged, and how many were dropped since. */
  readonly #dropLog = new Map<FlowReplicationDrop, { at: number; unlogged: number }>();
  #subscription: Subscription | null = null;

  constructor(options: FlowTrackerOptions, nats: NatsConnection, replica: string, log: (event: string, fields: Record<string, unknown>) => void, trust: FlowReplicationTrust) {
    super(options);
    this.#nats = nats;
    this.#replica = replica;
    this.#log = log;
    this.#now = options.now;
    this.#macKey = flowMacKey(trust.fingerprintKey);
    this.#personaFlowLimits = trust.personaFlowLimits;
  }

  /** Starts applying the other replicas' values. */
  start(): void {
    const subscription = this.#nats.subscribe(flowSubject);
    this.#subscription = subscription;
    void (async () => {
      for await (const message of subscription) this.#receive(message);
    })();
  }

  override recordResponse(session: string, origin: FlowOrigin, fingerprints: ValueFingerprint[], limits?: FlowLimits): FlowSignal | null {
    const signal = super.recordResponse(session, origin, fingerprints, limits);
    // In batches: a result with thousands of findings would exceed NATS's message size limit (1 MiB by default).
    for (let i = 0; i < fingerprints.length; i += fingerprintsPerMessage) {
      try {
        const message: FlowMessage = { id: randomUUID(), sentAt: this.#now(), replica: this.#replica, session, origin, fingerprints: fingerprints.slice(i, i + fingerprintsPerMessage) };
        const { data, mac } = sealFlowMessage(this.#macKey, message);
        const signed = headers();
        signed.set(macHeader, mac);
        this.#nats.publish(flowSubject, data, { headers: signed });
      } catch (error) {
        this.#log('flow_replication_publish_failed', { error: (error as Error).message });
      }
    }
    return signal;
  }

  /** Messages from other replicas applied and dropped since start, for /metrics. */
  replicationCounts(): FlowReplicationCounts {
    return { applied: this.#counts.applied, dropped: { ...this.#counts.dropped } };
  }

  stop(): void {
    this.#subscription?.unsubscribe();
  }

  #receive(message: Msg): void {
    const opened = openFlowMessage(this.#macKey, message.data, message.headers?.get(macHeader, Match.IgnoreCase));
    if (!opened.ok) return this.#drop(opened.reason);
    const m = opened.message;
    if (m.replica === this.#replica) return;
    // Only a signed message's date and id are worth remembering: others never get this far.
    const freshness = this.#replays.admit(m.id, m.sentAt, this.#now());
    if (freshness !== 'fresh') return this.#drop(freshness);
    const persona = personaOfFlowSession(m.session);
    const limits = persona === null ? null : this.#personaFlowLimits(persona);
    if (limits === null) return this.#drop('unknown_persona');
    const origin: FlowOrigin = { upstream: m.origin.upstream, environment: m.origin.environment, ...(m.origin.tool !== undefined ? { tool: m.origin.tool } : {}) };
    super.recordReplicated(m.session, origin, m.fingerprints, limits);
    this.#counts.applied++;
  }

  /** Counted always; logged at once, then at most once per interval per reason (a flood must not flood the log). */
  #drop(reason: FlowReplicationDrop): void {
    this.#counts.dropped[reason]++;
    const now = this.#now();
    const last = this.#dropLog.get(reason);
    if (last !== undefined && now - last.at < dropLogIntervalMs) {
      last.unlogged++;
      return;
    }
    this.#log(`flow_replication_${reason}`, { subject: flowSubject, dropped: (last?.unlogged ?? 0) + 1 });
    this.#dropLog.set(reason, { at: now, unlogged: 0 });
  }
}
