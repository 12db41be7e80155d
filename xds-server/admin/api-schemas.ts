// Request and response shapes of the admin API. Requests are validated with
// these; the OpenAPI document is generated from them and from config/schema.ts.
import { z } from 'zod';
import type { XdsNodeStatus } from '../ads/node-status.ts';
import { credentialSummarySchema, revisionSummarySchema } from '../store/records.ts';

export const configIssueSchema = z.object({
  path: z.array(z.union([z.string(), z.number()])).describe('Path of the offending field, e.g. ["documents", 2, "grants", 0, "upstream"]'),
  code: z.string().describe('Stable code, see docs/errors.md'),
  message: z.string(),
});

/** RFC 9457 problem details, with Mandate's stable `code` member. */
export const problemSchema = z.object({
  type: z.string(),
  title: z.string(),
  status: z.number().int(),
  detail: z.string(),
  code: z.string().describe('Stable error code, see docs/errors.md'),
  issues: z.array(configIssueSchema).optional(),
});

export type Problem = z.infer<typeof problemSchema>;

export const applyRequestSchema = z
  .object({
    documents: z.array(z.unknown()).describe('Persona, Skill and Upstream documents, each with its `kind`'),
    prune: z.boolean().default(false).describe('Remove stored objects the documents do not mention'),
    dryRun: z.boolean().default(false).describe('Validate and report what would change without committing'),
  })
  .strict();

export const changeResponseSchema = z.object({
  version: z.number().int().describe('Config version after the change (unchanged if nothing changed)'),
  changed: z.array(z.string()).describe('Objects changed, as Kind/name'),
  dryRun: z.boolean().optional(),
});

export const credentialIssuedSchema = z.object({
  id: z.string(),
  token: z.string().describe('mnd_<id>_<secret>; shown once, only its hash is stored'),
  persona: z.string(),
  agent: z.string(),
  version: z.number().int(),
});

export const credentialListSchema = z.object({ version: z.number().int(), items: z.array(credentialSummarySchema) });
export const revisionListSchema = z.object({ version: z.number().int(), items: z.array(revisionSummarySchema) });

const nackRecordSchema = z.object({ version: z.string(), nonce: z.string(), message: z.string(), at: z.string() });
const resourceTypeStatusSchema = z.object({ sentVersion: z.string().nullable(), ackedVersion: z.string().nullable(), lastNack: nackRecordSchema.nullable() });

/** Mirrors XdsNodeStatus (xds-server/ads/node-status.ts); the assignment below keeps the two in step. */
export const xdsNodeStatusSchema = z.object({
  nodeId: z.string(),
  nodeCluster: z.string(),
  envoyVersion: z.string().nullable(),
  connected: z.boolean(),
  connectedAt: z.string(),
  disconnectedAt: z.string().nullable(),
  configVersion: z.number().int().nullable(),
  resources: z.object({
    clusters: resourceTypeStatusSchema,
    endpoints: resourceTypeStatusSchema,
    listeners: resourceTypeStatusSchema,
    routes: resourceTypeStatusSchema,
  }),
});
type SchemaMatchesInterface = [z.infer<typeof xdsNodeStatusSchema>] extends [XdsNodeStatus] ? ([XdsNodeStatus] extends [z.infer<typeof xdsNodeStatusSchema>] ? true : false) : false;
export const xdsNodeStatusSchemaMatches: SchemaMatchesInterface = true;

export const replicationStatusSchema = z.object({
  replica: z.string().describe('MANDATE_REPLICA_ID of this control plane'),
  connected: z.boolean().describe('Connected to NATS; while false, writes are refused with config_replication_unavailable'),
  streamSequence: z.number().int().describe('Sequence of the last revision message applied from the stream'),
  halted: z.string().nullable().describe('Why this replica stopped applying the stream (its history diverged from it), or null'),
  unauthenticatedMessages: z.number().int().describe('Messages on the revision subject skipped since start because they carry no valid MAC under the config secrets key (not written by a control-plane replica)'),
  connectError: z.string().optional().describe('While not connected: why the last attempt to reach NATS failed (refused credentials, an untrusted certificate, unreachable), with its code'),
});

export type ReplicationStatus = z.infer<typeof replicationStatusSchema>;

export const statusResponseSchema = z.object({
  configVersion: z.number().int(),
  nodes: z.array(xdsNodeStatusSchema).describe('Connected and recently seen Envoys, with per-resource ACK/NACK state'),
  replication: replicationStatusSchema.optional().describe('Only when control-plane replicas share config over NATS (MANDATE_NATS_URL)'),
});
