// Data-flow control: remembers keyed fingerprints of sensitive values that came
// out of tool results, per session, and refuses a later request that carries one
// of them somewhere its data class may not go. Pure: clock and memory bounds are
// injected; no values are kept, only keyed hashes (see inspect.ts fingerprint()).
import type { DataFlowRule, DataProtection } from '../../config/data-protection-schema.ts';
import type { Environment, ToolClass } from '../../config/schema.ts';
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
}

interface SessionFlow {
  values: Map<string, Remembered>;
  distinctEver: number;
  signalled: boolean;
}

/** Used when a Persona enables flow control without rules of its own. */
export const defaultFlowRules: DataFlowRule[] = [
  { fromEnvironments: ['production'], toEnvironments: ['development', 'external', 'pre-production'], crossUpstreamOnly: true, action: 'block' },
  { toToolClasses: ['egress'], crossUpstreamOnly: true, action: 'block' },
];

export class FlowTracker {
  readonly #sessions = new Map<string, SessionFlow>();
  readonly #options: FlowTrackerOptions;
  readonly #rules: DataFlowRule[];

  constructor(options: FlowTrackerOptions) {
    this.#options = options;
    this.#rules = options.rules && options.rules.length > 0 ? options.rules : defaultFlowRules;
  }

  /**
   * Records values read from a tool result. Returns a signal when the session crosses the
   * gradual-collection threshold. `limits` are the Persona's, when given; else the tracker's.
   */
  recordResponse(session: string, origin: FlowOrigin, fingerprints: ValueFingerprint[], limits?: FlowLimits): FlowSignal | null {
    const { maxFingerprintsPerSession, gradualCollectionThreshold } = limits ?? this.#options;
    const s = this.#session(session);
    const now = this.#options.now();
    for (const f of fingerprints) {
      if (!s.values.has(f.hash)) s.distinctEver++;
      s.values.delete(f.hash);
      s.values.set(f.hash, { origin, dataClass: f.dataClass, detector: f.detector, seenAt: now });
      // Oldest first out: Map keeps insertion order, and re-seen values were re-inserted above.
      while (s.values.size > maxFingerprintsPerSession) s.values.delete(s.values.keys().next().value!);
    }
    if (!s.signalled && s.distinctEver >= gradualCollectionThreshold) {
      s.signalled = true;
      return {
        code: 'gradual_collection',
        session,
        distinctValues: s.distinctEver,
        message: `session read ${s.distinctEver} distinct sensitive values from tool results`,
      };
    }
    return null;
  }

  /**
   * Checks values about to be sent in a request against what the session read earlier.
   * `rules` and `limits` override the tracker's: one tracker serves every Persona, each with its own.
   */
  checkRequest(session: string, destination: FlowDestination, fingerprints: ValueFingerprint[], rules?: DataFlowRule[], limits?: FlowLimits): FlowViolation[] {
    const { ttlMs } = limits ?? this.#options;
    const activeRules = rules && rules.length > 0 ? rules : this.#rules;
    const s = this.#sessions.get(session);
    if (!s) return [];
    const now = this.#options.now();
    const out: FlowViolation[] = [];
    for (const f of fingerprints) {
      const r = s.values.get(f.hash);
      if (!r) continue;
      if (now - r.seenAt > ttlMs) {
        s.values.delete(f.hash);
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

  forgetSession(session: string): void {
    this.#sessions.delete(session);
  }

  #session(id: string): SessionFlow {
    let s = this.#sessions.get(id);
    if (!s) {
      s = { values: new Map(), distinctEver: 0, signalled: false };
      this.#sessions.set(id, s);
      const max = this.#options.maxSessions ?? 10_000;
      while (this.#sessions.size > max) this.#sessions.delete(this.#sessions.keys().next().value!);
    }
    return s;
  }
}

function ruleApplies(rule: DataFlowRule, r: Remembered, to: FlowDestination): boolean {
  if (rule.crossUpstreamOnly && r.origin.upstream === to.upstream) return false;
  if (rule.dataClasses && !rule.dataClasses.includes(r.dataClass)) return false;
  if (rule.fromEnvironments && !rule.fromEnvironments.includes(r.origin.environment)) return false;
  if (rule.toEnvironments && !rule.toEnvironments.includes(to.environment)) return false;
  if (rule.toToolClasses && (!to.toolClass || !rule.toToolClasses.includes(to.toolClass))) return false;
  if (rule.toTools && (!to.tool || !rule.toTools.includes(to.tool))) return false;
  return true;
}
