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
import { randomBytes } from 'node:crypto';
import { JSONCodec, type NatsConnection, type Subscription } from 'nats';
import { z } from 'zod';
import { environmentSchema } from '../../config/schema.ts';
import { maxCanonicalLength, minCanonicalLength } from './fingerprint.ts';
import type { FlowLimits, FlowOrigin, FlowSignal, FlowTrackerOptions } from './flow.ts';
import { FlowTracker } from './flow.ts';
import type { ValueFingerprint } from './inspect.ts';

const keyBucket = 'mandate-flow';
const keyName = 'fingerprint-key';
/** v2: fingerprints of the canonical form, with shapes (fingerprint.ts); v1 replicas hashed otherwise and are not listened to. */
export const flowSubject = 'mandate.flow.v2';
/** About 200 bytes each as JSON: a message stays near 200 KB. */
const fingerprintsPerMessage = 1000;

/** What a replica publishes per remembered tool result; checked on arrival like any other input. */
const flowMessageSchema = z.object({
  replica: z.string(),
  session: z.string(),
  origin: z.object({ upstream: z.string(), environment: environmentSchema, tool: z.string().optional() }),
  fingerprints: z
    .array(
      z.object({
        hash: z.string(),
        dataClass: z.string(),
        detector: z.string(),
        group: z.string(),
        shape: z.object({ length: z.number().int().min(minCanonicalLength).max(maxCanonicalLength), digitsOnly: z.boolean(), probe: z.number().int().min(0).max(0xffffffff) }).optional(),
      }),
    )
    .max(fingerprintsPerMessage),
  limits: z.object({ maxFingerprintsPerSession: z.number().int().positive(), ttlMs: z.number().positive(), gradualCollectionThreshold: z.number().int().positive() }).nullable(),
});
type FlowMessage = z.infer<typeof flowMessageSchema>;

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
  #subscription: Subscription | null = null;

  constructor(options: FlowTrackerOptions, nats: NatsConnection, replica: string, log: (event: string, fields: Record<string, unknown>) => void) {
    super(options);
    this.#nats = nats;
    this.#replica = replica;
    this.#log = log;
  }

  /** Starts applying the other replicas' values. */
  start(): void {
    const subscription = this.#nats.subscribe(flowSubject);
    this.#subscription = subscription;
    void (async () => {
      for await (const message of subscription) {
        let decoded: unknown;
        try {
          decoded = this.#codec.decode(message.data);
        } catch {
          decoded = null;
        }
        const parsed = flowMessageSchema.safeParse(decoded);
        if (!parsed.success) {
          this.#log('flow_replication_bad_message', { subject: message.subject });
          continue;
        }
        const m = parsed.data;
        if (m.replica === this.#replica) continue;
        // The replica that read the value signals gradual collection; a signal here would repeat it.
        const origin: FlowOrigin = { upstream: m.origin.upstream, environment: m.origin.environment, ...(m.origin.tool !== undefined ? { tool: m.origin.tool } : {}) };
        super.recordResponse(m.session, origin, m.fingerprints, m.limits ?? undefined);
      }
    })();
  }

  override recordResponse(session: string, origin: FlowOrigin, fingerprints: ValueFingerprint[], limits?: FlowLimits): FlowSignal | null {
    const signal = super.recordResponse(session, origin, fingerprints, limits);
    // In batches: a result with thousands of findings would exceed NATS's message size limit (1 MiB by default).
    for (let i = 0; i < fingerprints.length; i += fingerprintsPerMessage) {
      try {
        const message: FlowMessage = { replica: this.#replica, session, origin, fingerprints: fingerprints.slice(i, i + fingerprintsPerMessage), limits: limits ?? null };
        this.#nats.publish(flowSubject, this.#codec.encode(message));
      } catch (error) {
        this.#log('flow_replication_publish_failed', { error: (error as Error).message });
      }
    }
    return signal;
  }

  stop(): void {
    this.#subscription?.unsubscribe();
  }
}
