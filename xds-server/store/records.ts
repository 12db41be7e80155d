// Shapes the store hands out about credentials and revisions. zod schemas, so
// the admin API's OpenAPI document and the TypeScript types come from one place.
import { z } from 'zod';
import { configBundleSchema } from '../../config/bundle.ts';
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

/** A credentials row as stored: the secret only as its hex SHA-256. */
export const credentialRowSchema = z.object({
  id: z.string().regex(/^[0-9a-f]{12}$/),
  persona: resourceNameSchema,
  agent: agentNameSchema,
  secretHash: z.string().regex(/^[0-9a-f]{64}$/),
  createdAt: z.iso.datetime({ offset: true }),
  expiresAt: z.iso.datetime({ offset: true }).nullable(),
  revokedAt: z.iso.datetime({ offset: true }).nullable(),
});

export type CredentialRow = z.infer<typeof credentialRowSchema>;

/**
 * One committed change, complete enough to reproduce it row for row in another store:
 * the new revision (bundle_json exactly as stored) and the credential rows it adds or revokes.
 * `change` follows the previous version; `base` is a whole state (every credential row),
 * published once when an existing history starts to be replicated.
 */
export const revisionChangeSchema = z.object({
  kind: z.enum(['change', 'base']),
  version: z.number().int().min(2),
  createdAt: z.iso.datetime({ offset: true }),
  actor: z.string(),
  summary: z.string(),
  bundleJson: z.string().refine((text) => {
    try {
      return configBundleSchema.safeParse(JSON.parse(text)).success;
    } catch {
      return false;
    }
  }, 'must be the JSON of a valid config bundle'),
  credentialsIssued: z.array(credentialRowSchema),
  credentialsRevoked: z.array(z.object({ id: z.string().regex(/^[0-9a-f]{12}$/), revokedAt: z.iso.datetime({ offset: true }) })),
});

export type RevisionChange = z.infer<typeof revisionChangeSchema>;
