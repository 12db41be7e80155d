// Data-flow memory shared by ext_proc replicas over NATS. Envoy spreads a
// session's calls over the replicas, so the value a tool result revealed on one
// replica must be known to the replica that sees the next request:
//   - every replica hashes with the same fingerprint key, created once by the
//     first replica in a JetStream KV bucket and read by the others;
//   - each remembered tool result is published (core NATS, at most once) and
//     every other replica records it in its own FlowTracker.
// Only keyed hashes (fingerprints and probes), canonical lengths, data classes
// and origins cross the wire, never values. A message lost in a NATS outage
// leaves that value known to its own replica only.
//
// What a message can do is bounded by the receiver, not the sender:
//   - it is signed (HMAC-SHA256 over its bytes, header Mandate-Flow-Mac) with a
//     key derived from the shared fingerprint key; a NATS client that can publish
//     on the subject but not read the bucket cannot forge one;
//   - it carries no limits: the receiver applies its own compiled config for the
//     session's Persona, and drops messages for a Persona it does not know or
//     has flow control off for (its config is the one that counts, even while
//     replicas briefly run different versions);
//   - sessions it creates are evicted before any session the receiver serves, and
//     it never raises or suppresses the gradual-collection signal (flow.ts).
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { headers, JSONCodec, Match, type Msg, type NatsConnection, type Subscription } from 'nats';
import { z } from 'zod';
import { environmentSchema } from '../../config/schema.ts';
import { maxCanonicalLength, minCanonicalLength } from './fingerprint.ts';
import type { FlowLimits, FlowOrigin, FlowSignal, FlowTrackerOptions } from './flow.ts';
import { FlowTracker, personaOfFlowSession } from './flow.ts';
import type { ValueFingerprint } from './inspect.ts';

const keyBucket = 'mandate-flow';
const keyName = 'fingerprint-key';
/**
 * v3: signed, and no limits on the wire. v2 (unsigned, the sender's limits) and v1 replicas are not
 * listened to, nor they to v3.
 */
export const flowSubject = 'mandate.flow.v3';
const macHeader = 'Mandate-Flow-Mac';
/** Domain separation: the MAC key is derived from the fingerprint key, never the key itself. */
const macKeyLabel = 'mandate flow replication mac v3';
const macBytes = 32;
/** About 200 bytes each as JSON: a message stays near 200 KB. */
const fingerprintsPerMessage = 1000;
/** A dropped message is logged at once, then at most once a minute per reason, with how many were dropped. */
const dropLogIntervalMs = 60_000;

const name = z.string().min(1).max(256);
/** What a replica publishes per remembered tool result; checked on arrival like any other input. Unknown fields are ignored. */
const flowMessageSchema = z.object({
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
type FlowMessage = z.infer<typeof flowMessageSchema>;

/** What lets a replica trust and apply another's message: the shared key, and its own config per Persona. */
export interface FlowReplicationTrust {
  fingerprintKey: Buffer;
  /** This replica's limits for a Persona with flow control on; null when it does not know the Persona or has flow off. */
  personaFlowLimits: (persona: string) => FlowLimits | null;
}

export type FlowReplicationDrop = 'bad_mac' | 'bad_message' | 'unknown_persona';

export interface FlowReplicationCounts {
  applied: number;
  dropped: Record<FlowReplicationDrop, number>;
}

/** The fingerprint key all replicas share: created by the first to ask, read by the others. */
export async function sharedFingerprintKey(nats: NatsConnection): Promise<Buffer> {
  const kv = await nats.jetstream().views.kv(keyBucket, { history: 1 });
  try {
    await kv.create(keyName, randomBytes(32));
  } catch {
    // another replica created it first
  }
  const entry = await kv.get(keyName);
  if (!entry || entry.value.length !== 32) throw new Error(`the shared fingerprint key in NATS KV bucket "${keyBucket}" is missing or not 32 bytes`);
  return Buffer.from(entry.value);
}

/** A FlowTracker whose remembered values reach every replica. */
export class ReplicatedFlowTracker extends FlowTracker {
  readonly #nats: NatsConnection;
  readonly #replica: string;
  readonly #codec = JSONCodec<unknown>();
  readonly #log: (event: string, fields: Record<string, unknown>) => void;
  readonly #now: () => number;
  readonly #macKey: Buffer;
  readonly #personaFlowLimits: FlowReplicationTrust['personaFlowLimits'];
  readonly #counts: FlowReplicationCounts = { applied: 0, dropped: { bad_mac: 0, bad_message: 0, unknown_persona: 0 } };
  /** Per reason: when a drop was last logged, and how many were dropped since. */
  readonly #dropLog = new Map<FlowReplicationDrop, { at: number; unlogged: number }>();
  #subscription: Subscription | null = null;

  constructor(options: FlowTrackerOptions, nats: NatsConnection, replica: string, log: (event: string, fields: Record<string, unknown>) => void, trust: FlowReplicationTrust) {
    super(options);
    this.#nats = nats;
    this.#replica = replica;
    this.#log = log;
    this.#now = options.now;
    this.#macKey = createHmac('sha256', trust.fingerprintKey).update(macKeyLabel).digest();
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
        const message: FlowMessage = { replica: this.#replica, session, origin, fingerprints: fingerprints.slice(i, i + fingerprintsPerMessage) };
        const data = this.#codec.encode(message);
        const signed = headers();
        signed.set(macHeader, this.#mac(data).toString('base64'));
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
    // The MAC first: a forged message costs one HMAC, never a JSON parse.
    const given = Buffer.from(message.headers?.get(macHeader, Match.IgnoreCase) ?? '', 'base64');
    if (given.length !== macBytes || !timingSafeEqual(given, this.#mac(message.data))) return this.#drop('bad_mac');
    let decoded: unknown;
    try {
      decoded = this.#codec.decode(message.data);
    } catch {
      decoded = null;
    }
    const parsed = flowMessageSchema.safeParse(decoded);
    if (!parsed.success) return this.#drop('bad_message');
    const m = parsed.data;
    if (m.replica === this.#replica) return;
    const persona = personaOfFlowSession(m.session);
    const limits = persona === null ? null : this.#personaFlowLimits(persona);
    if (limits === null) return this.#drop('unknown_persona');
    const origin: FlowOrigin = { upstream: m.origin.upstream, environment: m.origin.environment, ...(m.origin.tool !== undefined ? { tool: m.origin.tool } : {}) };
    super.recordReplicated(m.session, origin, m.fingerprints, limits);
    this.#counts.applied++;
  }

  #mac(data: Uint8Array): Buffer {
    return createHmac('sha256', this.#macKey).update(data).digest();
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
