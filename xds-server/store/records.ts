// Shapes the store hands out about credentials and revisions. zod schemas, so
// the admin API's OpenAPI document and the TypeScript types come from one place.
import { z } from 'zod';
import { resourceNameSchema } from '../../config/schema.ts';

export const agentNameSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._@:-]{0,127}$/, 'must be 1-128 letters, digits, ".", "_", "@", ":" or "-", starting with a letter or digit')
  .describe('The agent this credential identifies, as it appears in decisions and audit records');

/** Body of POST /v1/personas/{name}/credentials. */
export const credentialRequestSchema = z
  .object({
    agent: agentNameSchema,
    expiresAt: z.iso.datetime({ offset: true }).nullable().optional().describe('RFC 3339 time after which the credential is refused; omit for no expiry'),
  })
  .strict();

export const credentialIssueInputSchema = credentialRequestSchema.extend({ persona: resourceNameSchema });

export type CredentialIssueInput = z.infer<typeof credentialIssueInputSchema>;

export const credentialSummarySchema = z.object({
  id: z.string().describe('Public id; the token is mnd_<id>_<secret>'),
  persona: z.string(),
  agent: z.string(),
  createdAt: z.string(),
  expiresAt: z.string().nullable(),
  revokedAt: z.string().nullable(),
  status: z.enum(['active', 'expired', 'revoked']),
});

export type CredentialSummary = z.infer<typeof credentialSummarySchema>;

export const revisionSummarySchema = z.object({
  version: z.number().int(),
  createdAt: z.string(),
  actor: z.string(),
  summary: z.string(),
});

export type RevisionSummary = z.infer<typeof revisionSummarySchema>;
