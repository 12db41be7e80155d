// Per-Persona sensitive-data protection settings (detectors, actions, flow rules).
// Owned by the data-protection stage: ext-proc/dlp compiles this once per config version.
// Detector ids and groups are checked against the built-in catalogue at compile
// time (ext-proc/dlp/compile.ts), which reports unknown ones with their field path.
import { z } from 'zod';
import { extProcMaxMessageWaitMs, maxInlineExternalDlpWaitMs } from './ext-proc-wait.ts';

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
    gradualCollectionThreshold: z.number().int().min(2).max(1_000_000).default(50).describe('Distinct sensitive values read by one session within fingerprintTtlSeconds before a signal is raised (again once the count has fallen to half)'),
  })
  .strict();

/**
 * The longest an async service may take: its verdict holds the call's response audit event until it
 * comes. An inline service is held to maxInlineExternalDlpWaitMs (Envoy's wait), see externalDlpSchema.
 */
export const maxAsyncExternalDlpTimeoutMs = 60_000;

/**
 * Why an external DLP service's URL cannot be used, with the stable code of the config issue, or
 * null. Read with the WHATWG URL parser, as the data path reads it: the scheme must suit the type, a
 * host and a port in range are required, and credentials are refused (they would travel in ICAP
 * request lines and be recorded with every note that names the service).
 */
export function externalUrlProblem(type: 'icap' | 'webhook', url: string): { code: string; message: string } | null {
  const parsed = URL.canParse(url) ? new URL(url) : null;
  if (parsed === null) return { code: 'external_url_invalid', message: 'is not a URL (check the host and that the port is 1-65535)' };
  const schemes = type === 'icap' ? ['icap:'] : ['http:', 'https:'];
  if (!schemes.includes(parsed.protocol)) return { code: 'external_url_scheme', message: `a ${type} integration needs an ${type === 'icap' ? 'icap://' : 'http(s)://'} URL` };
  if (parsed.username !== '' || parsed.password !== '') return { code: 'external_url_credentials', message: 'must not carry credentials (user:password@): authenticating to the service is not supported; reach it over a network only the gateway uses' };
  if (parsed.hostname === '') return { code: 'external_url_invalid', message: 'must name a host' };
  if (parsed.port === '0') return { code: 'external_url_invalid', message: 'port 0 is not a port' };
  if (parsed.hash !== '') return { code: 'external_url_invalid', message: 'must not carry a fragment' };
  return null;
}

export const externalDlpSchema = z
  .object({
    type: z.enum(['icap', 'webhook']),
    url: z.string().max(2048).describe('icap://host[:port]/service for type icap, http(s)://host[:port]/path for type webhook; no credentials'),
    mode: z.enum(['inline', 'async']).default('inline').describe('async sends for audit only and never changes the body; the verdict is noted in the call\'s response audit event (external_dlp_async_verdict)'),
    timeoutMs: z
      .number()
      .int()
      .min(10)
      .max(maxAsyncExternalDlpTimeoutMs)
      .default(500)
      .describe(
        `For one scan, ICAP OPTIONS (on first use) and a preview included. inline: at most ${maxInlineExternalDlpWaitMs} ms, and the inline services of one direction may add up to no more (Envoy waits at most ${extProcMaxMessageWaitMs} ms for ext_proc on one message); async: at most ${maxAsyncExternalDlpTimeoutMs} ms`,
      ),
    failMode: z.enum(['open', 'closed']).default('closed').describe('What inline mode does when the service is down or slow'),
    directions: z.array(z.enum(['request', 'response'])).default(['request', 'response']),
  })
  .strict()
  .superRefine((service, ctx) => {
    const problem = externalUrlProblem(service.type, service.url);
    if (problem) ctx.addIssue({ code: 'custom', path: ['url'], message: problem.message, params: { code: problem.code } });
    if (service.mode === 'inline' && service.timeoutMs > maxInlineExternalDlpWaitMs) {
      ctx.addIssue({
        code: 'custom',
        path: ['timeoutMs'],
        message: `an inline service waits at most ${maxInlineExternalDlpWaitMs} ms (Envoy waits at most ${extProcMaxMessageWaitMs} ms for ext_proc on one message); only an async one may wait up to ${maxAsyncExternalDlpTimeoutMs} ms`,
        params: { code: 'external_dlp_wait_too_long' },
      });
    }
  });

/**
 * Inline services hold the body in turn, each up to its timeoutMs, while Envoy waits for ext_proc: the
 * sum per direction must leave room within Envoy's ceiling, or Envoy would ignore the longer wait
 * ext_proc asks for and answer 504 after its 2 s default, whatever the fail mode.
 */
function checkInlineWait(external: z.infer<typeof externalDlpSchema>[], ctx: z.RefinementCtx): void {
  const reported = new Set<number>();
  for (const direction of ['request', 'response'] as const) {
    let total = 0;
    external.forEach((service, i) => {
      // One past the ceiling on its own is out of its field's bounds, reported there.
      if (service.mode !== 'inline' || !service.directions.includes(direction) || service.timeoutMs > maxInlineExternalDlpWaitMs) return;
      total += service.timeoutMs;
      if (total > maxInlineExternalDlpWaitMs && total - service.timeoutMs <= maxInlineExternalDlpWaitMs && !reported.has(i)) {
        reported.add(i);
        ctx.addIssue({
          code: 'custom',
          path: ['external', i, 'timeoutMs'],
          message: `the inline services for ${direction}s wait up to ${total} ms in all; they may add up to ${maxInlineExternalDlpWaitMs} ms (Envoy waits at most ${extProcMaxMessageWaitMs} ms for ext_proc on one message)`,
          params: { code: 'external_dlp_wait_too_long' },
        });
      }
    });
  }
}

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
  .strict()
  .superRefine((dataProtection, ctx) => checkInlineWait(dataProtection.external, ctx));

export type DataProtection = z.infer<typeof dataProtectionSchema>;
export type DataProtectionInput = z.input<typeof dataProtectionSchema>;
export type DataProtectionAction = z.infer<typeof dataProtectionActionSchema>;
export type DataProtectionRule = z.infer<typeof dataProtectionRuleSchema>;
export type DataFlowRule = z.infer<typeof dataFlowRuleSchema>;
export type ExternalDlp = z.infer<typeof externalDlpSchema>;
