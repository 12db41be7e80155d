// Where the behaviour stage keeps what it remembers between calls: per-session
// state, shared counters (rate limits, quotas) and the quarantine list.
// The engine only talks to SessionStateStore, so a NATS-backed store shared by
// replicas can replace InMemorySessionStateStore (see docs/behaviour.md).
import type { ToolClass } from '../../config/schema.ts';
import type { DecisionReason } from '../decision/decision.ts';

/** Progress of one sequence rule in one session. */
export interface RuleProgress {
  /** Index of the step being matched. */
  step: number;
  /** Matches counted towards the current step. */
  count: number;
  /** Times of the last `atLeast` matches, when the step has a window. */
  times: number[] | null;
  cursor: number;
  /** When the previous step was (last) satisfied; `within` counts from here. */
  previousAt: number;
  /** Matches seen per step while the rule progressed, for the alert. */
  counts: number[];
}

/** A run of consecutive calls to one tool: the sequence excerpt an alert shows. */
export interface CallRun {
  tool: string;
  /** The tool as the audit trail names it, when that differs from `tool` (see BehaviourCall.recordedTool). */
  recordedTool?: string;
  toolClass: ToolClass;
  count: number;
  firstAt: number;
  lastAt: number;
}

export interface BreakerState {
  phase: 'closed' | 'open' | 'half-open';
  openUntil: number;
  trips: number;
  rejectedWhileOpen: number;
  probesLeft: number;
  stopped: boolean;
  /** Why it last tripped, for the reason message. */
  lastTrip: string;
  repeatWindowStart: number;
  repeats: Map<number, number>;
  errorWindowStart: number;
  windowResults: number;
  windowErrors: number;
  novelWindowStart: number;
  novelCount: number;
  seen: Map<number, number>;
}

export interface SessionState {
  key: string;
  persona: string;
  agent: string;
  user: string | null;
  /** Mcp-Session-Id, or null for a stateless (credential + gap) session. */
  sessionId: string | null;
  startedAt: number;
  lastSeenAt: number;
  calls: number;
  bytesOut: number;
  results: number;
  errors: number;
  ended: DecisionReason | null;
  /** Hashes of distinct objects read; null until the first one. */
  objects: Set<number> | null;
  rules: RuleProgress[] | null;
  recent: CallRun[];
  lastTool: string | null;
  lastClass: ToolClass | null;
  breaker: BreakerState | null;
  rateWindowStart: number;
  rateWindowCalls: number;
  objectWindowStart: number;
  objectWindow: Set<number> | null;
  /**
   * What other stages concluded about the session (e.g. "gradual_collection" from data
   * protection), for rule conditions as `signals`. Absent in sessions stored by older versions.
   */
  signals?: string[];
}

/** A token bucket (rate limit) or a fixed-window counter (quota). */
export interface ScopeCounter {
  /** Tokens left (bucket) or calls counted (window). */
  value: number;
  /** Last refill (bucket) or window start (window). */
  at: number;
}

export interface QuarantineRecord {
  agent: string;
  persona: string;
  since: number;
  reason: DecisionReason;
}

/**
 * State the engine reads and writes per call. Implementations must make get/set of
 * one key atomic with respect to each other; the engine never holds a state across calls.
 */
export interface SessionStateStore {
  getSession(key: string): SessionState | undefined;
  /** Stores (or refreshes) a session; the in-memory store keeps the same object. */
  setSession(key: string, state: SessionState): void;
  deleteSession(key: string): void;
  getCounter(key: string): ScopeCounter | undefined;
  setCounter(key: string, counter: ScopeCounter): void;
  quarantined(agent: string): QuarantineRecord | undefined;
  quarantine(record: QuarantineRecord): void;
  /** Lifts a quarantine; true if the agent was quarantined. */
  release(agent: string): boolean;
  listQuarantined(): QuarantineRecord[];
  readonly sessionCount: number;
}

export interface InMemoryStoreLimits {
  /** Least recently used sessions are dropped beyond this. */
  maxSessions?: number;
  maxCounters?: number;
}

/** One process's state, bounded: least recently used sessions and counters are evicted. */
export class InMemorySessionStateStore implements SessionStateStore {
  readonly #sessions = new Map<string, SessionState>();
  readonly #counters = new Map<string, ScopeCounter>();
  readonly #quarantine = new Map<string, QuarantineRecord>();
  readonly #maxSessions: number;
  readonly #maxCounters: number;

  constructor(limits: InMemoryStoreLimits = {}) {
    this.#maxSessions = limits.maxSessions ?? 250_000;
    this.#maxCounters = limits.maxCounters ?? 250_000;
  }

  get sessionCount(): number {
    return this.#sessions.size;
  }

  getSession(key: string): SessionState | undefined {
    return this.#sessions.get(key);
  }

  setSession(key: string, state: SessionState): void {
    // Re-inserting moves the key to the end of the Map's order: the LRU position.
    this.#sessions.delete(key);
    this.#sessions.set(key, state);
    if (this.#sessions.size > this.#maxSessions) {
      const oldest = this.#sessions.keys().next();
      if (!oldest.done) this.#sessions.delete(oldest.value);
    }
  }

  deleteSession(key: string): void {
    this.#sessions.delete(key);
  }

  getCounter(key: string): ScopeCounter | undefined {
    return this.#counters.get(key);
  }

  setCounter(key: string, counter: ScopeCounter): void {
    this.#counters.delete(key);
    this.#counters.set(key, counter);
    if (this.#counters.size > this.#maxCounters) {
      const oldest = this.#counters.keys().next();
      if (!oldest.done) this.#counters.delete(oldest.value);
    }
  }

  quarantined(agent: string): QuarantineRecord | undefined {
    return this.#quarantine.get(agent);
  }

  quarantine(record: QuarantineRecord): void {
    if (!this.#quarantine.has(record.agent)) this.#quarantine.set(record.agent, record);
  }

  release(agent: string): boolean {
    return this.#quarantine.delete(agent);
  }

  listQuarantined(): QuarantineRecord[] {
    return [...this.#quarantine.values()];
  }
}
