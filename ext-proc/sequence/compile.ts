// Compiles a Persona's `behaviour` block once per config version: durations to
// milliseconds, tool patterns to regular expressions, CEL to planned programs,
// and a memoised classifier for the Persona's upstreams. evaluate() only reads this.
import { celEnv, isCelError, parse, plan } from '@bufbuild/cel';
import type { ConfigIssue } from '../../config/bundle.ts';
import type { Persona, ToolClass, Upstream } from '../../config/schema.ts';
import { behaviourSchema, type BehaviourAction, type CallMatch, type GuardrailKey } from '../../config/behaviour-schema.ts';
import { classifyTool, type ToolAnnotations, type ToolClassification } from './classify.ts';

/** A planned CEL predicate. Returns false when the expression errors (missing field, wrong type). */
export type CompiledPredicate = (bindings: Record<string, unknown>) => boolean;

export interface CompiledMatch {
  toolPattern: RegExp | null;
  classes: ReadonlySet<ToolClass> | null;
  upstream: string | null;
  when: CompiledPredicate | null;
  result: CompiledPredicate | null;
}

export interface CompiledStep {
  match: CompiledMatch;
  atLeast: number;
  windowMs: number | null;
  withinMs: number | null;
  /** True when the step tests the result, so it advances in recordResult. */
  atResponse: boolean;
}

export interface CompiledRule {
  name: string;
  description: string;
  steps: CompiledStep[];
  action: Exclude<BehaviourAction, 'allow'>;
  risk: number;
}

export interface CompiledRateLimit {
  label: string;
  key: GuardrailKey;
  match: CompiledMatch;
  capacity: number;
  refillPerMs: number;
  action: 'throttle' | 'block';
}

export interface CompiledQuota {
  label: string;
  key: GuardrailKey;
  match: CompiledMatch;
  limit: number;
  periodMs: number;
  action: 'throttle' | 'block' | 'end_session' | 'quarantine';
}

export interface CompiledBreaker {
  repeated: { threshold: number; windowMs: number } | null;
  errorRate: { minCalls: number; maxRatio: number; windowMs: number } | null;
  novel: { threshold: number; windowMs: number; onlyFailed: boolean } | null;
  openForMs: number;
  halfOpenProbes: number;
  maxTrips: number;
  maxRejectedWhileOpen: number;
  stopAction: 'block' | 'end_session' | 'quarantine';
}

export interface CompiledBehaviour {
  persona: string;
  /** False in monitor mode: verdicts are recorded as "would have". */
  enforced: boolean;
  /** False when there is nothing to evaluate: evaluate() returns allow at once. */
  active: boolean;
  idleTimeoutMs: number;
  statelessGapMs: number;
  rules: CompiledRule[];
  /** Whether any rule step tests results (recordResult has rule work to do). */
  hasResponseSteps: boolean;
  rateLimits: CompiledRateLimit[];
  quotas: CompiledQuota[];
  budget: { maxCalls: number | null; maxDistinctObjects: number | null; maxBytesOut: number | null; action: 'alert' | 'throttle' | 'block' | 'end_session' | 'quarantine' } | null;
  breaker: CompiledBreaker | null;
  baseline: { learn: 'off' | 'monitor' | 'always'; minObservations: number; alertAbove: number; blockAbove: number | null; objectWindowMs: number };
  /** Class and risk of a tool on one of the Persona's upstreams, memoised. */
  classify(upstream: string, tool: string, annotations?: ToolAnnotations, description?: string): ToolClassification;
}

export type CompileResult = { ok: true; compiled: CompiledBehaviour } | { ok: false; issues: ConfigIssue[] };

const DURATION_UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "10m" -> 600000. The schema has already checked the shape. */
export function durationMs(text: string): number {
  const match = /^([0-9]+)(ms|s|m|h|d)$/.exec(text);
  if (!match) throw new Error(`not a duration: ${text}`);
  return Number(match[1]) * (DURATION_UNIT_MS[match[2] ?? 's'] ?? 1000);
}

/** "tickets.*" -> /^tickets\..*$/ ; several patterns become one alternation. */
export function toolPatternRegExp(patterns: string | string[]): RegExp {
  const list = Array.isArray(patterns) ? patterns : [patterns];
  const alternatives = list.map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*'));
  return new RegExp(`^(?:${alternatives.join('|')})$`);
}

const DEFAULT_RULE_RISK: Record<Exclude<BehaviourAction, 'allow'>, number> = {
  alert: 0.5,
  throttle: 0.7,
  block: 0.9,
  end_session: 0.95,
  quarantine: 1,
};

/** Compiles a Persona's behaviour block against the upstreams it may use. Never throws on bad config. */
export function compileBehaviour(persona: Persona, upstreams: Upstream[]): CompileResult {
  const issues: ConfigIssue[] = [];
  const base: (string | number)[] = ['behaviour'];
  const parsed = behaviourSchema.safeParse(persona.behaviour ?? {});
  if (!parsed.success) {
    return {
      ok: false,
      issues: parsed.error.issues.map((issue) => ({ path: [...base, ...issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p))], code: 'invalid_behaviour', message: issue.message })),
    };
  }
  const behaviour = parsed.data;
  const upstreamByName = new Map(upstreams.map((u) => [u.name, u]));
  const celEnvironment = celEnv({});

  const compilePredicate = (expression: string | undefined, path: (string | number)[]): CompiledPredicate | null => {
    if (expression === undefined) return null;
    try {
      const program = plan(celEnvironment, parse(expression));
      return (bindings) => {
        const value = program(bindings as never);
        return !isCelError(value) && value === true;
      };
    } catch (error) {
      issues.push({ path, code: 'invalid_cel', message: `not a valid CEL expression: ${error instanceof Error ? error.message : String(error)}` });
      return null;
    }
  };

  const compileMatch = (match: CallMatch, path: (string | number)[]): CompiledMatch => {
    if (match.upstream !== undefined && !upstreamByName.has(match.upstream)) {
      issues.push({ path: [...path, 'upstream'], code: 'unknown_upstream', message: `no upstream named "${match.upstream}"` });
    }
    return {
      toolPattern: match.tool === undefined ? null : toolPatternRegExp(match.tool),
      classes: match.class === undefined ? null : new Set(match.class),
      upstream: match.upstream ?? null,
      when: compilePredicate(match.when, [...path, 'when']),
      result: compilePredicate(match.result, [...path, 'result']),
    };
  };

  const ruleNames = new Set<string>();
  const rules: CompiledRule[] = behaviour.rules.map((rule, ruleIndex) => {
    const rulePath = [...base, 'rules', ruleIndex];
    if (ruleNames.has(rule.name)) issues.push({ path: [...rulePath, 'name'], code: 'duplicate_rule_name', message: `rule "${rule.name}" is defined twice` });
    ruleNames.add(rule.name);
    const steps = rule.steps.map((step, stepIndex): CompiledStep => {
      const stepPath = [...rulePath, 'steps', stepIndex];
      if (stepIndex === 0 && step.within !== undefined) {
        issues.push({ path: [...stepPath, 'within'], code: 'within_on_first_step', message: '"within" measures time since the previous step; the first step has none (use "window")' });
      }
      if (stepIndex === rule.steps.length - 1 && step.match.result !== undefined) {
        issues.push({
          path: [...stepPath, 'match', 'result'],
          code: 'result_condition_on_final_step',
          message: 'the last step decides the call before it is forwarded, so it cannot test the result; test the result in an earlier step',
        });
      }
      return {
        match: compileMatch(step.match, [...stepPath, 'match']),
        atLeast: step.atLeast,
        windowMs: step.window === undefined ? null : durationMs(step.window),
        withinMs: step.within === undefined ? null : durationMs(step.within),
        atResponse: step.match.result !== undefined,
      };
    });
    return { name: rule.name, description: rule.description, steps, action: rule.action, risk: rule.risk ?? DEFAULT_RULE_RISK[rule.action] };
  });

  const guardrails = behaviour.guardrails;
  const rateLimits = guardrails.rateLimits.map((limit, index): CompiledRateLimit => {
    const perMs = durationMs(limit.per);
    return {
      label: limit.name ?? `rate limit ${index + 1} (${limit.limit} per ${limit.per} per ${limit.key})`,
      key: limit.key,
      match: compileMatch(limit.match, [...base, 'guardrails', 'rateLimits', index, 'match']),
      capacity: limit.burst ?? limit.limit,
      refillPerMs: limit.limit / perMs,
      action: limit.action,
    };
  });
  const quotas = guardrails.quotas.map((quota, index): CompiledQuota => ({
    label: quota.name ?? `quota ${index + 1} (${quota.limit} per ${quota.period} per ${quota.key})`,
    key: quota.key,
    match: compileMatch(quota.match, [...base, 'guardrails', 'quotas', index, 'match']),
    limit: quota.limit,
    periodMs: durationMs(quota.period),
    action: quota.action,
  }));
  const budgetPolicy = guardrails.sessionBudget;
  const budget = budgetPolicy
    ? { maxCalls: budgetPolicy.maxCalls ?? null, maxDistinctObjects: budgetPolicy.maxDistinctObjects ?? null, maxBytesOut: budgetPolicy.maxBytesOut ?? null, action: budgetPolicy.action }
    : null;
  const breakerPolicy = guardrails.circuitBreaker;
  const breaker: CompiledBreaker | null = breakerPolicy
    ? {
        repeated: breakerPolicy.repeatedCalls ? { threshold: breakerPolicy.repeatedCalls.threshold, windowMs: durationMs(breakerPolicy.repeatedCalls.window) } : null,
        errorRate: breakerPolicy.errorRate ? { minCalls: breakerPolicy.errorRate.minCalls, maxRatio: breakerPolicy.errorRate.maxRatio, windowMs: durationMs(breakerPolicy.errorRate.window) } : null,
        novel: breakerPolicy.novelArguments
          ? { threshold: breakerPolicy.novelArguments.threshold, windowMs: durationMs(breakerPolicy.novelArguments.window), onlyFailed: breakerPolicy.novelArguments.onlyFailed }
          : null,
        openForMs: durationMs(breakerPolicy.openFor),
        halfOpenProbes: breakerPolicy.halfOpenProbes,
        maxTrips: breakerPolicy.maxTrips,
        maxRejectedWhileOpen: breakerPolicy.maxRejectedWhileOpen,
        stopAction: breakerPolicy.stopAction,
      }
    : null;
  if (breakerPolicy && !breaker?.repeated && !breaker?.errorRate && !breaker?.novel) {
    issues.push({ path: [...base, 'guardrails', 'circuitBreaker'], code: 'breaker_without_detector', message: 'a circuit breaker needs at least one of repeatedCalls, errorRate or novelArguments' });
  }
  const baselinePolicy = behaviour.baseline;
  if (baselinePolicy.blockAbove !== undefined && baselinePolicy.blockAbove < baselinePolicy.alertAbove) {
    issues.push({ path: [...base, 'baseline', 'blockAbove'], code: 'block_below_alert', message: 'blockAbove must be at least alertAbove' });
  }

  if (issues.length > 0) return { ok: false, issues };

  const classifications = new Map<string, ToolClassification>();
  const classify = (upstream: string, tool: string, annotations?: ToolAnnotations, description?: string): ToolClassification => {
    const cacheKey = `${upstream}\u0000${tool}`;
    const known = classifications.get(cacheKey);
    if (known && known.source !== 'default' && known.source !== 'name') return known;
    // Annotations and descriptions arrive with calls; name-only results are re-derived when they do.
    if (known && annotations === undefined && description === undefined) return known;
    const descriptor = { tool, ...(annotations ? { annotations } : {}), ...(description ? { description } : {}) };
    const classification = classifyTool(descriptor, upstreamByName.get(upstream));
    if (classifications.size < 10_000) classifications.set(cacheKey, classification);
    return classification;
  };

  // An absent block is "no rules"; a present one, even empty, keeps session state for baselines.
  const active = persona.behaviour !== undefined;
  return {
    ok: true,
    compiled: {
      persona: persona.name,
      enforced: persona.mode === 'enforce',
      active,
      idleTimeoutMs: durationMs(behaviour.session.idleTimeout),
      statelessGapMs: durationMs(behaviour.session.statelessGap),
      rules,
      hasResponseSteps: rules.some((r) => r.steps.some((s) => s.atResponse)),
      rateLimits,
      quotas,
      budget,
      breaker,
      baseline: {
        learn: baselinePolicy.learn,
        minObservations: baselinePolicy.minObservations,
        alertAbove: baselinePolicy.alertAbove,
        blockAbove: baselinePolicy.blockAbove ?? null,
        objectWindowMs: durationMs(baselinePolicy.objectWindow),
      },
      classify,
    },
  };
}

/** Request-side test of a compiled match (the `result` condition is checked in recordResult). */
export function matchesCall(match: CompiledMatch, upstream: string, tool: string, toolClass: ToolClass, args: unknown, signals: readonly string[] = []): boolean {
  if (match.upstream !== null && match.upstream !== upstream) return false;
  if (match.classes !== null && !match.classes.has(toolClass)) return false;
  if (match.toolPattern !== null && !match.toolPattern.test(tool)) return false;
  if (match.when !== null && !match.when({ args: args ?? {}, tool, class: toolClass, upstream, signals })) return false;
  return true;
}
