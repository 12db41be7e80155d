// The behaviour stage's decision core. For each call, in order:
//   1. quarantined agent?  2. ended session?  3. classify the tool
//   4. sequence rules advance (incrementally, no history rescans)
//   5. guardrails: rate limits, quotas, session budget, circuit breaker
//   6. baseline deviation (and learning, in monitor mode)
//   7. combine into one verdict; apply end_session/quarantine when enforced; alert
// Pure apart from the injected clock, state store and alert sink.
import type { BehaviourAction } from '../../config/behaviour-schema.ts';
import type { ToolClass } from '../../config/schema.ts';
import type { DecisionReason } from '../decision/decision.ts';
import type { AlertSink, BehaviourAlert } from './alerts.ts';
import { BaselineRegistry, type BaselineCall } from './baseline.ts';
import type { RiskTier, ToolAnnotations } from './classify.ts';
import { matchesCall, type CompiledBehaviour, type CompiledBreaker, type CompiledRule, type CompiledStep } from './compile.ts';
import type { BreakerState, QuarantineRecord, RuleProgress, SessionState, SessionStateStore } from './state-store.ts';

/** One call as the behaviour stage sees it, normalised across MCP and REST. */
export interface BehaviourCall {
  persona: string;
  agent: string;
  /** The user the agent acts for, when known. */
  user: string | null;
  /** Mcp-Session-Id, when the client sent one. */
  sessionId: string | null;
  /** The agent credential; keys stateless sessions. */
  credentialId: string | null;
  upstream: string;
  /** MCP tool name, or "METHOD /path/template" for a REST operation. */
  tool: string;
  /**
   * The tool as the audit trail names it (the data path redacts segments a detector flags); reasons
   * and alerts quote this, rules and counters read `tool`. Absent: `tool` is quoted.
   */
  recordedTool?: string;
  /** Set when the data path already knows the class; otherwise the compiled classifier decides. */
  toolClass?: ToolClass;
  annotations?: ToolAnnotations;
  arguments: unknown;
  /** Epoch milliseconds; defaults to the engine's clock. */
  timeMs?: number;
  /** Request body size; defaults to the JSON size of the arguments. */
  requestBytes?: number;
}

/** The response side of a call. */
export interface BehaviourResult {
  isError: boolean;
  /** MCP result content, for rule `result` conditions. */
  content?: unknown;
  /** Objects the response revealed (e.g. ids in a list), added to distinct objects read. */
  objects?: string[];
  /** What data protection found in this result: how many sensitive values, in which detector groups (never the values). */
  sensitive?: { values: number; groups: string[] };
}

/** A session-level conclusion of another stage, e.g. data protection's "gradual_collection". */
export interface SessionSignal {
  code: string;
  message: string;
}

/** The `result` a rule's result condition reads: content, isError and sensitive ({values, groups}). */
function resultBindings(result: BehaviourResult): Record<string, unknown> {
  return {
    content: result.content ?? [],
    isError: result.isError,
    sensitive: { values: BigInt(result.sensitive?.values ?? 0), groups: result.sensitive?.groups ?? [] },
  };
}

export interface BehaviourVerdict {
  action: BehaviourAction;
  /** False in monitor mode: the action is what would have happened. */
  enforced: boolean;
  riskScore: number;
  reasons: DecisionReason[];
  /** For throttle: when the agent may retry. */
  retryAfterSeconds: number | null;
  toolClass: ToolClass;
  risk: RiskTier;
  sessionKey: string;
}

export interface BehaviourEngineOptions {
  clock: () => number;
  store: SessionStateStore;
  alertSink: AlertSink;
  baselines?: BaselineRegistry;
}

export interface BehaviourEngine {
  evaluate(compiled: CompiledBehaviour, call: BehaviourCall): BehaviourVerdict;
  recordResult(compiled: CompiledBehaviour, call: BehaviourCall, result: BehaviourResult): void;
  /**
   * Marks the call's session with another stage's signal (once per session): later rule
   * conditions see it in `signals`, and an alert records it. Monitor mode records it too.
   */
  signal(compiled: CompiledBehaviour, call: BehaviourCall, signal: SessionSignal): void;
  readonly quarantine: {
    list(): QuarantineRecord[];
    isQuarantined(agent: string): boolean;
    /** Lets a quarantined agent call again; true if it was quarantined. */
    release(agent: string): boolean;
  };
  readonly baselines: BaselineRegistry;
}

const ACTION_RANK: Record<BehaviourAction, number> = { allow: 0, alert: 1, throttle: 2, block: 3, end_session: 4, quarantine: 5 };
const RECENT_RUNS = 12;
const MAX_OBJECTS_PER_SESSION = 100_000;
const MAX_SEEN_FINGERPRINTS = 4096;
const MINUTE_MS = 60_000;
// Argument keys that name the object a call is about.
const OBJECT_KEY = /^(id|key|path|uri|url|file|filename|name|ref|[a-z]+_?(id|Id|path|Path|uri|Uri|key|Key))$/;
// Argument keys that change on every retry without changing what is asked.
const VOLATILE_KEY = /^(timestamp|ts|time|nonce|request_?id|requestId|trace_?id|traceId|idempotency_?key|idempotencyKey|attempt|retry)$/i;

interface Finding {
  action: BehaviourAction;
  risk: number;
  reason: DecisionReason;
  retryAfterMs: number | null;
  rule: string | null;
}

/** FNV-1a, 32-bit: cheap, stable hashes for object ids and call fingerprints. */
export function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i += 1) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** The object a call is about: the first identifying argument, e.g. {id: 42} -> "42". */
export function objectOfCall(args: unknown): string | null {
  if (typeof args !== 'object' || args === null || Array.isArray(args)) return null;
  for (const [key, value] of Object.entries(args)) {
    if ((typeof value === 'string' || typeof value === 'number') && OBJECT_KEY.test(key)) return String(value);
  }
  return null;
}

/** Near-identical calls share a fingerprint: volatile keys dropped, strings trimmed and lower-cased. */
export function callFingerprint(tool: string, args: unknown): number {
  const text = JSON.stringify(args ?? null, (key, value: unknown) => {
    if (key !== '' && VOLATILE_KEY.test(key)) return undefined;
    return typeof value === 'string' ? value.trim().toLowerCase().replace(/\s+/g, ' ') : value;
  });
  return hash32(`${tool}\u0000${text}`);
}

/** Session model: Mcp-Session-Id where present; otherwise the credential, split by gaps (see docs/behaviour.md). */
export function sessionKeyOf(call: BehaviourCall): string {
  const scope = `${call.persona}\u0000${call.agent}\u0000${call.user ?? ''}`;
  return call.sessionId !== null ? `${scope}\u0000s:${call.sessionId}` : `${scope}\u0000c:${call.credentialId ?? call.agent}`;
}

function newSession(key: string, call: BehaviourCall, now: number): SessionState {
  return {
    key,
    persona: call.persona,
    agent: call.agent,
    user: call.user,
    sessionId: call.sessionId,
    startedAt: now,
    lastSeenAt: now,
    calls: 0,
    bytesOut: 0,
    results: 0,
    errors: 0,
    ended: null,
    objects: null,
    rules: null,
    recent: [],
    lastTool: null,
    lastClass: null,
    breaker: null,
    rateWindowStart: now,
    rateWindowCalls: 0,
    objectWindowStart: now,
    objectWindow: null,
  };
}

function newBreaker(now: number): BreakerState {
  return {
    phase: 'closed',
    openUntil: 0,
    trips: 0,
    rejectedWhileOpen: 0,
    probesLeft: 0,
    stopped: false,
    lastTrip: '',
    repeatWindowStart: now,
    repeats: new Map(),
    errorWindowStart: now,
    windowResults: 0,
    windowErrors: 0,
    novelWindowStart: now,
    novelCount: 0,
    seen: new Map(),
  };
}

/** The tool as reasons and alerts name it: as the audit trail records it. */
function quotedTool(call: BehaviourCall): string {
  return call.recordedTool ?? call.tool;
}

function reason(code: string, message: string): DecisionReason {
  return { stage: 'behaviour', code, message };
}

function sessionLabel(state: SessionState): string {
  return state.sessionId ?? `credential:${state.key.slice(state.key.lastIndexOf('c:') + 2)}@${new Date(state.startedAt).toISOString()}`;
}

export function createBehaviourEngine(options: BehaviourEngineOptions): BehaviourEngine {
  const { clock, store, alertSink } = options;
  const baselines = options.baselines ?? new BaselineRegistry();
  let alertCounter = 0;

  const loadSession = (compiled: CompiledBehaviour, call: BehaviourCall, now: number): SessionState => {
    const key = sessionKeyOf(call);
    const existing = store.getSession(key);
    const limit = call.sessionId !== null ? compiled.idleTimeoutMs : Math.min(compiled.idleTimeoutMs, compiled.statelessGapMs);
    if (existing && now - existing.lastSeenAt <= limit) return existing;
    // A quiet MCP session that comes back after the idle timeout keeps its end, if it had one.
    const fresh = newSession(key, call, now);
    if (existing?.ended && call.sessionId !== null) fresh.ended = existing.ended;
    return fresh;
  };

  // --- sequence rules ---------------------------------------------------------

  const stepMatchesRequest = (step: CompiledStep, call: BehaviourCall, toolClass: ToolClass, state: SessionState): boolean =>
    !step.atResponse && matchesCall(step.match, call.upstream, call.tool, toolClass, call.arguments, state.signals);

  const stepMatchesResponse = (step: CompiledStep, call: BehaviourCall, toolClass: ToolClass, result: BehaviourResult, state: SessionState): boolean =>
    step.atResponse &&
    matchesCall(step.match, call.upstream, call.tool, toolClass, call.arguments, state.signals) &&
    step.match.result !== null &&
    step.match.result({ args: call.arguments ?? {}, result: resultBindings(result) });

  /** Counts one match of the current step; true when the step is complete. */
  const countMatch = (step: CompiledStep, progress: RuleProgress, now: number): boolean => {
    progress.counts[progress.step] = (progress.counts[progress.step] ?? 0) + 1;
    if (step.windowMs === null || step.atLeast === 1) {
      progress.count += 1;
      return progress.count >= step.atLeast;
    }
    // Keep the times of the last atLeast matches; complete when the oldest is inside the window.
    const times = (progress.times ??= []);
    if (times.length < step.atLeast) times.push(now);
    else times[progress.cursor] = now;
    progress.cursor = (progress.cursor + 1) % step.atLeast;
    progress.count = times.length;
    const oldest = times.length < step.atLeast ? Number.NaN : (times[progress.cursor] ?? Number.NaN);
    return now - oldest <= step.windowMs;
  };

  const resetProgress = (progress: RuleProgress): void => {
    progress.step = 0;
    progress.count = 0;
    progress.times = null;
    progress.cursor = 0;
    progress.previousAt = 0;
    progress.counts = [];
  };

  /**
   * Advances one rule by one call. Returns true when the call completes the last step.
   * `matches` tells whether a step matches this call on the side being processed.
   */
  const advanceRule = (rule: CompiledRule, progress: RuleProgress, now: number, matches: (step: CompiledStep) => boolean): boolean => {
    let step = rule.steps[progress.step];
    if (step === undefined) return false;
    if (progress.step > 0 && step.withinMs !== null && now - progress.previousAt > step.withinMs) {
      resetProgress(progress);
      step = rule.steps[0];
      if (step === undefined) return false;
    }
    if (matches(step)) {
      if (!countMatch(step, progress, now)) return false;
      if (progress.step === rule.steps.length - 1) {
        // Stay on the last step: the sequence still holds, so the next such call fires too.
        progress.count = 0;
        progress.times = null;
        progress.cursor = 0;
        return true;
      }
      progress.step += 1;
      progress.count = 0;
      progress.times = null;
      progress.cursor = 0;
      progress.previousAt = now;
      return false;
    }
    // The previous step keeps being satisfied ("still reading tickets"): `within` restarts.
    const previous = rule.steps[progress.step - 1];
    if (previous !== undefined && matches(previous)) {
      progress.previousAt = now;
      progress.counts[progress.step - 1] = (progress.counts[progress.step - 1] ?? 0) + 1;
    }
    return false;
  };

  const ruleFinding = (rule: CompiledRule, progress: RuleProgress, call: BehaviourCall, toolClass: ToolClass): Finding => {
    const earlier = rule.steps
      .slice(0, -1)
      .map((_, i) => `${progress.counts[i] ?? 0} matching call(s)`)
      .join(', then ');
    const sequence = earlier.length > 0 ? `${earlier}, then ${quotedTool(call)} (${toolClass})` : `${quotedTool(call)} (${toolClass})`;
    return {
      action: rule.action,
      risk: rule.risk,
      reason: reason('sequence_rule_matched', `sequence rule "${rule.name}" matched: ${sequence}`),
      retryAfterMs: null,
      rule: rule.name,
    };
  };

  const evaluateRules = (compiled: CompiledBehaviour, state: SessionState, call: BehaviourCall, toolClass: ToolClass, now: number, findings: Finding[]): void => {
    if (compiled.rules.length === 0) return;
    const progresses = (state.rules ??= compiled.rules.map(() => ({ step: 0, count: 0, times: null, cursor: 0, previousAt: 0, counts: [] })));
    compiled.rules.forEach((rule, index) => {
      const progress = progresses[index];
      if (progress && advanceRule(rule, progress, now, (step) => stepMatchesRequest(step, call, toolClass, state))) {
        findings.push(ruleFinding(rule, progress, call, toolClass));
      }
    });
  };

  // --- guardrails ----------------------------------------------------------------

  const counterKey = (compiled: CompiledBehaviour, key: 'agent' | 'agent-tool' | 'tool' | 'session', kind: string, call: BehaviourCall, state: SessionState): string => {
    switch (key) {
      case 'agent':
        return `${compiled.persona}\u0000${kind}\u0000a:${call.agent}`;
      case 'agent-tool':
        return `${compiled.persona}\u0000${kind}\u0000a:${call.agent}\u0000${call.tool}`;
      case 'tool':
        return `${compiled.persona}\u0000${kind}\u0000t:${call.upstream}\u0000${call.tool}`;
      case 'session':
        return `${state.key}\u0000${kind}`;
    }
  };

  const evaluateLimits = (compiled: CompiledBehaviour, state: SessionState, call: BehaviourCall, toolClass: ToolClass, now: number, findings: Finding[]): void => {
    compiled.rateLimits.forEach((limit, index) => {
      if (!matchesCall(limit.match, call.upstream, call.tool, toolClass, call.arguments, state.signals)) return;
      const key = counterKey(compiled, limit.key, `rl${index}`, call, state);
      const bucket = store.getCounter(key) ?? { value: limit.capacity, at: now };
      bucket.value = Math.min(limit.capacity, bucket.value + Math.max(0, now - bucket.at) * limit.refillPerMs);
      bucket.at = now;
      if (bucket.value >= 1) {
        bucket.value -= 1;
      } else {
        const retryAfterMs = Math.ceil((1 - bucket.value) / limit.refillPerMs);
        findings.push({ action: limit.action, risk: 0.3, reason: reason('rate_limited', `${limit.label} exceeded`), retryAfterMs, rule: null });
      }
      store.setCounter(key, bucket);
    });
    compiled.quotas.forEach((quota, index) => {
      if (!matchesCall(quota.match, call.upstream, call.tool, toolClass, call.arguments, state.signals)) return;
      const key = counterKey(compiled, quota.key, `q${index}`, call, state);
      const windowStart = now - (now % quota.periodMs);
      const counter = store.getCounter(key);
      const window = counter && counter.at === windowStart ? counter : { value: 0, at: windowStart };
      window.value += 1;
      store.setCounter(key, window);
      if (window.value > quota.limit) {
        findings.push({ action: quota.action, risk: 0.4, reason: reason('quota_exceeded', `${quota.label} used up`), retryAfterMs: windowStart + quota.periodMs - now, rule: null });
      }
    });
    const budget = compiled.budget;
    if (budget) {
      const exceeded =
        budget.maxCalls !== null && state.calls > budget.maxCalls
          ? `${state.calls} calls (budget ${budget.maxCalls})`
          : budget.maxDistinctObjects !== null && (state.objects?.size ?? 0) > budget.maxDistinctObjects
            ? `${state.objects?.size ?? 0} distinct objects read (budget ${budget.maxDistinctObjects})`
            : budget.maxBytesOut !== null && state.bytesOut > budget.maxBytesOut
              ? `${state.bytesOut} bytes sent (budget ${budget.maxBytesOut})`
              : null;
      if (exceeded !== null) {
        findings.push({ action: budget.action, risk: 0.6, reason: reason('session_budget_exceeded', `session budget exceeded: ${exceeded}`), retryAfterMs: null, rule: null });
      }
    }
  };

  // --- circuit breaker -------------------------------------------------------------

  const trip = (policy: CompiledBreaker, breaker: BreakerState, now: number, why: string): void => {
    breaker.trips += 1;
    breaker.lastTrip = why;
    breaker.phase = 'open';
    breaker.openUntil = now + policy.openForMs;
    breaker.rejectedWhileOpen = 0;
    breaker.repeats.clear();
    breaker.windowResults = 0;
    breaker.windowErrors = 0;
    breaker.novelCount = 0;
    if (breaker.trips >= policy.maxTrips) breaker.stopped = true;
  };

  const stopFinding = (policy: CompiledBreaker, breaker: BreakerState): Finding => ({
    action: policy.stopAction,
    risk: 1,
    reason: reason('runaway_stopped', `runaway agent stopped after ${breaker.trips} circuit breaker trip(s) and ${breaker.rejectedWhileOpen} call(s) ignoring the retry hint; last trip: ${breaker.lastTrip}`),
    retryAfterMs: null,
    rule: null,
  });

  const evaluateBreaker = (compiled: CompiledBehaviour, state: SessionState, call: BehaviourCall, now: number, findings: Finding[]): void => {
    const policy = compiled.breaker;
    if (!policy) return;
    const breaker = (state.breaker ??= newBreaker(now));
    if (breaker.stopped) {
      findings.push(stopFinding(policy, breaker));
      return;
    }
    if (breaker.phase === 'open' && now >= breaker.openUntil) {
      breaker.phase = 'half-open';
      breaker.probesLeft = policy.halfOpenProbes;
    }
    if (breaker.phase === 'open' || (breaker.phase === 'half-open' && breaker.probesLeft === 0)) {
      breaker.rejectedWhileOpen += 1;
      if (breaker.rejectedWhileOpen > policy.maxRejectedWhileOpen) {
        breaker.stopped = true;
        findings.push(stopFinding(policy, breaker));
        return;
      }
      const retryAfterMs = breaker.phase === 'open' ? breaker.openUntil - now : 1000;
      findings.push({ action: 'throttle', risk: 0.5, reason: reason('circuit_open', `circuit breaker open: ${breaker.lastTrip}`), retryAfterMs, rule: null });
      return;
    }
    if (breaker.phase === 'half-open') breaker.probesLeft -= 1;

    const fingerprint = callFingerprint(call.tool, call.arguments);
    const seenBefore = breaker.seen.get(fingerprint) ?? 0;
    if (breaker.seen.size >= MAX_SEEN_FINGERPRINTS && seenBefore === 0) breaker.seen.clear();
    breaker.seen.set(fingerprint, seenBefore + 1);

    let why: string | null = null;
    if (policy.repeated) {
      if (now - breaker.repeatWindowStart > policy.repeated.windowMs) {
        breaker.repeatWindowStart = now;
        breaker.repeats.clear();
      }
      const repeats = (breaker.repeats.get(fingerprint) ?? 0) + 1;
      if (breaker.repeats.size < 64 || breaker.repeats.has(fingerprint)) breaker.repeats.set(fingerprint, repeats);
      if (repeats >= policy.repeated.threshold) why = `${repeats} identical or near-identical calls to ${quotedTool(call)}`;
    }
    if (why === null && policy.novel && !policy.novel.onlyFailed && seenBefore === 0) {
      why = countNovel(policy, breaker, now);
    }
    if (why !== null) {
      trip(policy, breaker, now, why);
      findings.push(breaker.stopped ? stopFinding(policy, breaker) : { action: 'throttle', risk: 0.5, reason: reason('circuit_open', `circuit breaker tripped: ${why}`), retryAfterMs: policy.openForMs, rule: null });
    }
  };

  const countNovel = (policy: CompiledBreaker, breaker: BreakerState, now: number): string | null => {
    const novel = policy.novel;
    if (!novel) return null;
    if (now - breaker.novelWindowStart > novel.windowMs) {
      breaker.novelWindowStart = now;
      breaker.novelCount = 0;
    }
    breaker.novelCount += 1;
    return breaker.novelCount >= novel.threshold ? `${breaker.novelCount} calls with never-seen arguments${novel.onlyFailed ? ' that failed' : ''}` : null;
  };

  const recordBreakerResult = (policy: CompiledBreaker, breaker: BreakerState, call: BehaviourCall, result: BehaviourResult, now: number): void => {
    if (breaker.stopped) return;
    if (breaker.phase === 'half-open') {
      if (result.isError) trip(policy, breaker, now, `probe call to ${quotedTool(call)} failed`);
      else if (breaker.probesLeft === 0) breaker.phase = 'closed';
      return;
    }
    if (breaker.phase !== 'closed') return;
    let why: string | null = null;
    if (policy.errorRate) {
      if (now - breaker.errorWindowStart > policy.errorRate.windowMs) {
        breaker.errorWindowStart = now;
        breaker.windowResults = 0;
        breaker.windowErrors = 0;
      }
      breaker.windowResults += 1;
      if (result.isError) breaker.windowErrors += 1;
      if (breaker.windowResults >= policy.errorRate.minCalls && breaker.windowErrors / breaker.windowResults > policy.errorRate.maxRatio) {
        why = `${breaker.windowErrors} of ${breaker.windowResults} calls failed`;
      }
    }
    if (why === null && policy.novel?.onlyFailed && result.isError && breaker.seen.get(callFingerprint(call.tool, call.arguments)) === 1) {
      why = countNovel(policy, breaker, now);
    }
    if (why !== null) trip(policy, breaker, now, why);
  };

  // --- baseline ------------------------------------------------------------------------

  const rollBaselineWindows = (compiled: CompiledBehaviour, state: SessionState, learning: boolean, now: number): void => {
    const model = learning ? baselines.learner(compiled.persona) : null;
    if (now - state.rateWindowStart >= MINUTE_MS) {
      model?.observeMinute(state.rateWindowCalls);
      state.rateWindowStart = now;
      state.rateWindowCalls = 0;
    }
    if (now - state.objectWindowStart >= compiled.baseline.objectWindowMs) {
      model?.observeObjectWindow(state.objectWindow?.size ?? 0);
      state.objectWindowStart = now;
      state.objectWindow = null;
    }
  };

  const isLearning = (compiled: CompiledBehaviour): boolean => compiled.baseline.learn === 'always' || (compiled.baseline.learn === 'monitor' && !compiled.enforced);

  const evaluateBaseline = (compiled: CompiledBehaviour, state: SessionState, baselineCall: BaselineCall, findings: Finding[]): number | null => {
    const model = baselines.get(compiled.persona);
    if (!model || !model.isReady(compiled.baseline.minObservations)) return null;
    const deviations = model.score(baselineCall, {
      callsThisMinute: state.rateWindowCalls,
      objectsThisWindow: state.objectWindow?.size ?? 0,
      results: state.results,
      errors: state.errors,
    });
    if (deviations.length === 0) return model.version;
    const risk = 1 - deviations.reduce((keep, d) => keep * (1 - d.risk), 1);
    const policy = compiled.baseline;
    const action: BehaviourAction = policy.blockAbove !== null && risk >= policy.blockAbove ? 'block' : risk >= policy.alertAbove ? 'alert' : 'allow';
    for (const deviation of deviations) {
      findings.push({ action, risk: deviation.risk, reason: reason(deviation.code, deviation.message), retryAfterMs: null, rule: null });
    }
    return model.version;
  };

  // --- the call ------------------------------------------------------------------------

  const evaluate = (compiled: CompiledBehaviour, call: BehaviourCall): BehaviourVerdict => {
    const now = call.timeMs ?? clock();
    const classification = call.toolClass
      ? { toolClass: call.toolClass, risk: compiled.classify(call.upstream, call.tool).risk }
      : compiled.classify(call.upstream, call.tool, call.annotations);
    const toolClass = classification.toolClass;
    const sessionKey = sessionKeyOf(call);
    if (!compiled.active) {
      return { action: 'allow', enforced: compiled.enforced, riskScore: 0, reasons: [], retryAfterSeconds: null, toolClass, risk: classification.risk, sessionKey };
    }

    const findings: Finding[] = [];
    const quarantined = store.quarantined(call.agent);
    const state = loadSession(compiled, call, now);
    if (quarantined) {
      findings.push({ action: 'block', risk: 1, reason: reason('agent_quarantined', `agent is quarantined since ${new Date(quarantined.since).toISOString()}: ${quarantined.reason.message}`), retryAfterMs: null, rule: null });
    }
    if (state.ended) {
      findings.push({ action: 'block', risk: 1, reason: reason('session_ended', `session was ended: ${state.ended.message}`), retryAfterMs: null, rule: null });
    }

    // Session bookkeeping: counts, bytes, objects, the run-length excerpt.
    const learning = isLearning(compiled);
    rollBaselineWindows(compiled, state, learning, now);
    state.calls += 1;
    state.rateWindowCalls += 1;
    state.lastSeenAt = now;
    state.bytesOut += call.requestBytes ?? (call.arguments === undefined ? 0 : JSON.stringify(call.arguments).length);
    if (toolClass === 'read') {
      const object = objectOfCall(call.arguments);
      if (object !== null) addObject(state, `${call.upstream}:${object}`);
    }
    const lastRun = state.recent[state.recent.length - 1];
    const previousRecorded = lastRun && lastRun.tool === state.lastTool ? (lastRun.recordedTool ?? lastRun.tool) : state.lastTool;
    if (lastRun && lastRun.tool === call.tool) {
      lastRun.count += 1;
      lastRun.lastAt = now;
    } else {
      if (state.recent.length >= RECENT_RUNS) state.recent.shift();
      const recorded = quotedTool(call);
      state.recent.push({ tool: call.tool, ...(recorded !== call.tool ? { recordedTool: recorded } : {}), toolClass, count: 1, firstAt: now, lastAt: now });
    }

    evaluateRules(compiled, state, call, toolClass, now, findings);
    evaluateLimits(compiled, state, call, toolClass, now, findings);
    evaluateBreaker(compiled, state, call, now, findings);
    const baselineCall: BaselineCall = { user: call.user, tool: call.tool, toolClass, previousTool: state.lastTool, previousClass: state.lastClass, recordedTool: quotedTool(call), recordedPreviousTool: previousRecorded };
    const baselineVersion = evaluateBaseline(compiled, state, baselineCall, findings);
    if (learning) baselines.learner(compiled.persona).observeCall(baselineCall);
    state.lastTool = call.tool;
    state.lastClass = toolClass;

    // Combine: the strongest action wins; risks combine as independent evidence.
    let action: BehaviourAction = 'allow';
    let keep = 1;
    let retryAfterMs: number | null = null;
    for (const finding of findings) {
      if (ACTION_RANK[finding.action] > ACTION_RANK[action]) action = finding.action;
      keep *= 1 - finding.risk;
    }
    if (action === 'throttle') {
      for (const finding of findings) {
        if (finding.action === 'throttle' && finding.retryAfterMs !== null) retryAfterMs = Math.max(retryAfterMs ?? 0, finding.retryAfterMs);
      }
    }
    const riskScore = Math.round((1 - keep) * 1000) / 1000;
    const reasons = findings.map((f) => f.reason);
    const enforced = compiled.enforced;

    if (enforced && (action === 'end_session' || action === 'quarantine') && state.ended === null) {
      state.ended = findings.find((f) => f.action === action)?.reason ?? reason('session_ended', 'session ended');
    }
    if (enforced && action === 'quarantine' && !quarantined) {
      const cause = findings.find((f) => f.action === 'quarantine')?.reason ?? reason('agent_quarantined', 'quarantined');
      store.quarantine({ agent: call.agent, persona: call.persona, since: now, reason: cause });
    }
    store.setSession(sessionKey, state);

    if (action !== 'allow' && !(quarantined && findings.length === 1)) {
      alertSink.emit(buildAlert(compiled, call, state, toolClass, action, enforced, riskScore, reasons, findings, baselineVersion, now));
    }
    return {
      action,
      enforced,
      riskScore,
      reasons,
      retryAfterSeconds: retryAfterMs === null ? null : Math.max(1, Math.ceil(retryAfterMs / 1000)),
      toolClass,
      risk: classification.risk,
      sessionKey,
    };
  };

  const addObject = (state: SessionState, object: string): void => {
    const hashed = hash32(object);
    const objects = (state.objects ??= new Set());
    if (objects.size < MAX_OBJECTS_PER_SESSION) objects.add(hashed);
    const window = (state.objectWindow ??= new Set());
    if (window.size < MAX_OBJECTS_PER_SESSION) window.add(hashed);
  };

  const buildAlert = (
    compiled: CompiledBehaviour,
    call: BehaviourCall,
    state: SessionState,
    toolClass: ToolClass,
    action: BehaviourAction,
    enforced: boolean,
    riskScore: number,
    reasons: DecisionReason[],
    findings: Finding[],
    baselineVersion: number | null,
    now: number,
  ): BehaviourAlert => {
    alertCounter += 1;
    return {
      id: `${compiled.persona}-${now}-${alertCounter}`,
      time: new Date(now).toISOString(),
      persona: compiled.persona,
      agent: call.agent,
      user: call.user,
      session: sessionLabel(state),
      upstream: call.upstream,
      tool: quotedTool(call),
      toolClass,
      action,
      enforced,
      riskScore,
      reasons,
      evidence: {
        sequence: state.recent.map((run) => ({ tool: run.recordedTool ?? run.tool, toolClass: run.toolClass, count: run.count, from: new Date(run.firstAt).toISOString(), to: new Date(run.lastAt).toISOString() })),
        sessionCalls: state.calls,
        rules: findings.flatMap((f) => (f.rule === null ? [] : [f.rule])),
        baselineVersion,
      },
    };
  };

  const recordResult = (compiled: CompiledBehaviour, call: BehaviourCall, result: BehaviourResult): void => {
    if (!compiled.active) return;
    const now = call.timeMs ?? clock();
    const state = store.getSession(sessionKeyOf(call));
    if (!state) return;
    state.results += 1;
    if (result.isError) state.errors += 1;
    for (const object of result.objects ?? []) addObject(state, `${call.upstream}:${object}`);
    const toolClass = call.toolClass ?? compiled.classify(call.upstream, call.tool).toolClass;
    if (isLearning(compiled)) baselines.learner(compiled.persona).observeResult(call.tool, result.isError);
    if (compiled.breaker) recordBreakerResult(compiled.breaker, (state.breaker ??= newBreaker(now)), call, result, now);
    if (compiled.hasResponseSteps && state.rules) {
      // Response-side steps only advance here; request-side steps already advanced in evaluate().
      compiled.rules.forEach((rule, index) => {
        const progress = state.rules?.[index];
        const current = progress ? rule.steps[progress.step] : undefined;
        if (progress && current?.atResponse) advanceRule(rule, progress, now, (step) => stepMatchesResponse(step, call, toolClass, result, state));
      });
    }
  };

  const signal = (compiled: CompiledBehaviour, call: BehaviourCall, sessionSignal: SessionSignal): void => {
    if (!compiled.active) return;
    const key = sessionKeyOf(call);
    const state = store.getSession(key);
    if (!state || state.signals?.includes(sessionSignal.code)) return;
    (state.signals ??= []).push(sessionSignal.code);
    store.setSession(key, state);
    const toolClass = call.toolClass ?? compiled.classify(call.upstream, call.tool).toolClass;
    const cause: DecisionReason = { stage: 'data-protection', code: sessionSignal.code, message: sessionSignal.message };
    alertSink.emit(buildAlert(compiled, call, state, toolClass, 'alert', compiled.enforced, 0.5, [cause], [], null, call.timeMs ?? clock()));
  };

  return {
    evaluate,
    recordResult,
    signal,
    quarantine: {
      list: () => store.listQuarantined(),
      isQuarantined: (agent) => store.quarantined(agent) !== undefined,
      release: (agent) => store.release(agent),
    },
    baselines,
  };
}

/** True if the verdict stops the call: an enforced throttle or stronger. */
export function verdictStopsCall(verdict: BehaviourVerdict): boolean {
  return verdict.enforced && ACTION_RANK[verdict.action] >= ACTION_RANK.throttle;
}
