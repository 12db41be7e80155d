// Per-Persona behavioural policy: sequence rules, guardrails and baselines.
// Owned by the sequence stage: ext-proc/sequence compiles this once per config version.
// Every field has a default, so an absent or empty `behaviour` block means "no rules".
//
// This module must not import ./schema.ts: schema.ts imports it, and an ES module
// cycle would leave one of the two schemas undefined at load time. The tool classes
// are therefore spelled out here; a test checks they equal toolClassSchema's.
import { z } from 'zod';

export const behaviourToolClassSchema = z.enum(['read', 'write', 'destructive', 'egress', 'admin']);

/** What the behaviour stage does with a call, mildest first. */
export const behaviourActionSchema = z.enum(['allow', 'alert', 'throttle', 'block', 'end_session', 'quarantine']);

export const durationSchema = z
  .string()
  .regex(/^[0-9]{1,9}(ms|s|m|h|d)$/, 'must be a duration such as 500ms, 30s, 10m, 2h or 1d');

const celExpressionSchema = z.string().min(1).max(4096);

export const toolPatternSchema = z
  .string()
  .min(1)
  .max(256)
  .regex(/^[A-Za-z0-9_.\-/*{} ]+$/, 'must be a tool name or "METHOD /path/template"; * matches any run of characters');

/** Which calls a rule step, rate limit or quota counts. All given conditions must hold. */
export const callMatchSchema = z
  .object({
    tool: z.union([toolPatternSchema, z.array(toolPatternSchema).min(1)]).optional().describe('Tool name pattern(s), e.g. "tickets.*"'),
    class: z.array(behaviourToolClassSchema).min(1).optional().describe('Any of these tool classes'),
    upstream: z.string().min(1).max(63).optional(),
    when: celExpressionSchema.optional().describe('CEL over `args`, `tool`, `class`, `upstream` and `signals` (the session\'s signals, e.g. "gradual_collection"), checked before the call is forwarded'),
    result: celExpressionSchema
      .optional()
      .describe('CEL over `args` and `result` ({content, isError, sensitive: {values, groups}}); a step with this condition advances when the response arrives'),
  })
  .strict();

export const sequenceStepSchema = z
  .object({
    match: callMatchSchema,
    atLeast: z.number().int().min(1).max(10_000).default(1).describe('How many matching calls complete this step'),
    window: durationSchema.optional().describe('The atLeast calls must fall within this sliding window'),
    within: durationSchema.optional().describe('Steps after the first: must complete within this long of the previous step'),
  })
  .strict();

export const sequenceRuleSchema = z
  .object({
    name: z.string().regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 'must be lower-case letters, digits and dashes'),
    description: z.string().max(2000).default(''),
    steps: z.array(sequenceStepSchema).min(1).max(8),
    action: behaviourActionSchema.exclude(['allow']).default('block').describe('Applied to the call that completes the last step'),
    risk: z.number().min(0).max(1).optional().describe('Risk score when the rule matches; defaults by action'),
  })
  .strict();

/** Whose calls share one counter. agent-tool: each agent on each tool; tool: all agents of the Persona on one tool. */
export const guardrailKeySchema = z.enum(['agent', 'agent-tool', 'tool', 'session']);

export const rateLimitSchema = z
  .object({
    name: z.string().min(1).max(63).optional(),
    key: guardrailKeySchema.default('agent'),
    match: callMatchSchema.prefault({}),
    limit: z.number().int().min(1).describe('Calls allowed per `per`, refilled continuously'),
    per: durationSchema,
    burst: z.number().int().min(1).optional().describe('Bucket size; defaults to limit'),
    action: z.enum(['throttle', 'block']).default('throttle'),
  })
  .strict();

export const quotaSchema = z
  .object({
    name: z.string().min(1).max(63).optional(),
    key: guardrailKeySchema.default('agent'),
    match: callMatchSchema.prefault({}),
    limit: z.number().int().min(1).describe('Calls allowed per fixed period'),
    period: durationSchema,
    action: z.enum(['throttle', 'block', 'end_session', 'quarantine']).default('block'),
  })
  .strict();

export const sessionBudgetSchema = z
  .object({
    maxCalls: z.number().int().min(1).optional(),
    maxDistinctObjects: z.number().int().min(1).max(1_000_000).optional().describe('Distinct objects read in the session'),
    maxBytesOut: z.number().int().min(1).optional().describe('Request bytes sent by the agent in the session'),
    action: z.enum(['alert', 'throttle', 'block', 'end_session', 'quarantine']).default('end_session'),
  })
  .strict();

export const circuitBreakerSchema = z
  .object({
    repeatedCalls: z
      .object({
        threshold: z.number().int().min(2).default(20).describe('Identical or near-identical calls (same tool, same arguments up to case, whitespace and volatile keys)'),
        window: durationSchema.default('1m'),
      })
      .strict()
      .optional(),
    errorRate: z
      .object({
        minCalls: z.number().int().min(1).default(20),
        maxRatio: z.number().gt(0).max(1).default(0.5),
        window: durationSchema.default('1m'),
      })
      .strict()
      .optional(),
    novelArguments: z
      .object({
        threshold: z.number().int().min(2).default(30).describe('Calls with never-seen arguments'),
        window: durationSchema.default('1m'),
        onlyFailed: z.boolean().default(true).describe('Count only novel calls whose result is an error (fabricated paths, altered hashes)'),
      })
      .strict()
      .optional(),
    openFor: durationSchema.default('30s').describe('How long a tripped breaker throttles before letting a probe through'),
    halfOpenProbes: z.number().int().min(1).max(100).default(1),
    maxTrips: z.number().int().min(1).max(100).default(3).describe('Trips in one session before the stop action'),
    maxRejectedWhileOpen: z.number().int().min(1).default(50).describe('Calls ignoring the retry hint before the stop action'),
    stopAction: z.enum(['block', 'end_session', 'quarantine']).default('end_session'),
  })
  .strict();

export const guardrailsSchema = z
  .object({
    rateLimits: z.array(rateLimitSchema).default([]),
    quotas: z.array(quotaSchema).default([]),
    sessionBudget: sessionBudgetSchema.optional(),
    circuitBreaker: circuitBreakerSchema.optional(),
  })
  .strict();

export const baselinePolicySchema = z
  .object({
    learn: z.enum(['off', 'monitor', 'always']).default('monitor').describe('monitor: learn from calls while the Persona is in monitor mode'),
    minObservations: z.number().int().min(1).default(500).describe('Calls a baseline needs before it scores'),
    alertAbove: z.number().min(0).max(1).default(0.6),
    blockAbove: z.number().min(0).max(1).optional().describe('Absent: deviations alert, never block'),
    objectWindow: durationSchema.default('10m').describe('Window for "distinct objects read"'),
  })
  .strict();

export const sessionModelSchema = z
  .object({
    idleTimeout: durationSchema.default('1h').describe('A session with no calls for this long is forgotten'),
    statelessGap: durationSchema.default('15m').describe('Without Mcp-Session-Id: a gap this long between calls of one credential starts a new session'),
  })
  .strict();

export const behaviourSchema = z
  .object({
    session: sessionModelSchema.prefault({}),
    rules: z.array(sequenceRuleSchema).default([]),
    guardrails: guardrailsSchema.prefault({}),
    baseline: baselinePolicySchema.prefault({}),
  })
  .strict();

export type Behaviour = z.infer<typeof behaviourSchema>;
export type BehaviourAction = z.infer<typeof behaviourActionSchema>;
export type CallMatch = z.infer<typeof callMatchSchema>;
export type SequenceRule = z.infer<typeof sequenceRuleSchema>;
export type SequenceStep = z.infer<typeof sequenceStepSchema>;
export type RateLimit = z.infer<typeof rateLimitSchema>;
export type Quota = z.infer<typeof quotaSchema>;
export type SessionBudget = z.infer<typeof sessionBudgetSchema>;
export type CircuitBreakerPolicy = z.infer<typeof circuitBreakerSchema>;
export type BaselinePolicy = z.infer<typeof baselinePolicySchema>;
export type GuardrailKey = z.infer<typeof guardrailKeySchema>;
