// Per-Persona sensitive-data protection settings (detectors, actions, flow rules).
// Owned by the data-protection stage: ext-proc/dlp compiles this once per config version.
// Detector ids and groups are checked against the built-in catalogue at compile
// time (ext-proc/dlp/compile.ts), which reports unknown ones with their field path.
import { z } from 'zod';

export const dataProtectionActionSchema = z.enum(['detect', 'mask', 'redact', 'block']);

export const complianceProfileSchema = z.enum(['pci-dss', 'hipaa', 'soc2', 'gdpr-pii', 'secrets']);

export const dataDirectionSchema = z.enum(['request', 'response', 'both']);

const nameListSchema = z.array(z.string().min(1).max(128)).optional();

/** One action rule. Every selector given must match; the first matching rule wins. */
export const dataProtectionRuleSchema = z
  .object({
    groups: nameListSchema.describe('Detector groups, e.g. financial, health, national-id, credentials'),
    detectors: nameListSchema.describe('Detector ids from `mandate dlp catalogue`'),
    direction: dataDirectionSchema.default('both').describe('request: agent to tool; response: tool to agent'),
    upstreams: nameListSchema.describe('Upstream names; absent means any'),
    tools: nameListSchema.describe('Tool names or "METHOD /path" operations; absent means any'),
    action: dataProtectionActionSchema,
  })
  .strict();

/** Per-detector settings that win over rules and profiles. */
export const detectorOverrideSchema = z
  .object({
    id: z.string().min(1).max(128),
    enabled: z.boolean().default(true).describe('false turns the detector off even if a profile enables it'),
    action: dataProtectionActionSchema.optional(),
    minConfidence: z.number().min(0).max(1).optional(),
    maskKeep: z.number().int().min(0).max(16).optional().describe('Trailing characters left visible by mask'),
  })
  .strict();

export const dataFlowRuleSchema = z
  .object({
    dataClasses: nameListSchema.describe('Data classes (payment-card, credential, national-id...); absent means any sensitive class'),
    fromEnvironments: z.array(z.enum(['production', 'pre-production', 'development', 'external'])).optional(),
    toEnvironments: z.array(z.enum(['production', 'pre-production', 'development', 'external'])).optional(),
    toToolClasses: z.array(z.enum(['read', 'write', 'destructive', 'egress', 'admin'])).optional(),
    toTools: nameListSchema,
    crossUpstreamOnly: z.boolean().default(true).describe('Only values that came from a different upstream'),
    action: z.enum(['block', 'detect']).default('block'),
  })
  .strict();

export const dataFlowSchema = z
  .object({
    enabled: z.boolean().default(false),
    rules: z
      .array(dataFlowRuleSchema)
      .default([])
      .describe('Empty means the defaults: production data may not reach development or external upstreams, sensitive data may not reach egress tools'),
    maxFingerprintsPerSession: z.number().int().min(16).max(100_000).default(4096),
    fingerprintTtlSeconds: z.number().int().min(1).max(7 * 24 * 3600).default(3600),
    gradualCollectionThreshold: z.number().int().min(2).max(1_000_000).default(50).describe('Distinct sensitive values read by one session before a signal is raised'),
  })
  .strict();

const timeoutSchema = z.number().int().min(10).max(60_000);

export const externalDlpSchema = z
  .object({
    type: z.enum(['icap', 'webhook']),
    url: z.string().regex(/^(icap|https?):\/\/[^\s]+$/, 'must be an icap://, http:// or https:// URL'),
    mode: z.enum(['inline', 'async']).default('inline').describe('async sends for audit only and never changes the body; the verdict is noted in the call\'s response audit event (external_dlp_async_verdict)'),
    timeoutMs: timeoutSchema.default(500).describe('For one scan, ICAP OPTIONS (on first use) and a preview included'),
    failMode: z.enum(['open', 'closed']).default('closed').describe('What inline mode does when the service is down or slow'),
    directions: z.array(z.enum(['request', 'response'])).default(['request', 'response']),
  })
  .strict();

export const dataProtectionSchema = z
  .object({
    profiles: z.array(complianceProfileSchema).default([]),
    defaultAction: dataProtectionActionSchema.default('mask'),
    minConfidence: z.number().min(0).max(1).default(0.6),
    maskCharacter: z.string().length(1).default('*'),
    rules: z.array(dataProtectionRuleSchema).default([]),
    detectors: z.array(detectorOverrideSchema).default([]),
    scanKeys: z
      .union([z.boolean(), z.literal('request')])
      .default('request')
      .describe(
        'Also scan JSON object keys, not only values: true in both directions; "request" (the default) in what agents send only, where a key is the agent\'s to choose (a tool result\'s keys are its schema); false never',
      ),
    decodeEncoded: z.boolean().default(true).describe('Decode base64, hex and URL-encoded segments and scan them too'),
    maxStreamHoldBytes: z.number().int().min(256).max(1_048_576).default(65_536).describe('Most bytes of a JSON-lines or text stream held back while no safe cut is in reach (a long record, a PEM block); past it the stream is ended (stream_hold_exceeded)'),
    flow: dataFlowSchema.default({
      enabled: false,
      rules: [],
      maxFingerprintsPerSession: 4096,
      fingerprintTtlSeconds: 3600,
      gradualCollectionThreshold: 50,
    }),
    external: z.array(externalDlpSchema).default([]),
  })
  .strict();

export type DataProtection = z.infer<typeof dataProtectionSchema>;
export type DataProtectionInput = z.input<typeof dataProtectionSchema>;
export type DataProtectionAction = z.infer<typeof dataProtectionActionSchema>;
export type DataProtectionRule = z.infer<typeof dataProtectionRuleSchema>;
export type DataFlowRule = z.infer<typeof dataFlowRuleSchema>;
export type ExternalDlp = z.infer<typeof externalDlpSchema>;
