// The admin API's OpenAPI 3.1 document, generated from the zod schemas the API
// validates with (config/schema.ts, store/records.ts, admin/api-schemas.ts).
import { z } from 'zod';
import { personaSchema, skillSchema, upstreamSchema } from '../../config/schema.ts';
import { credentialRequestSchema, credentialSummarySchema, revisionSummarySchema } from '../store/records.ts';
import {
  applyRequestSchema,
  changeResponseSchema,
  configIssueSchema,
  credentialIssuedSchema,
  credentialListSchema,
  problemSchema,
  revisionListSchema,
  statusResponseSchema,
  xdsNodeStatusSchema,
} from './api-schemas.ts';

type JsonObject = Record<string, unknown>;

export const configCollections = [
  { path: 'personas', kind: 'Persona', schema: personaSchema },
  { path: 'skills', kind: 'Skill', schema: skillSchema },
  { path: 'upstreams', kind: 'Upstream', schema: upstreamSchema },
] as const;

export function buildOpenApiDocument(): JsonObject {
  const schemas: Record<string, JsonObject> = {
    ConfigIssue: toSchema(configIssueSchema),
    Problem: toSchema(problemSchema),
    ApplyRequest: toSchema(applyRequestSchema, 'input'),
    ChangeResponse: toSchema(changeResponseSchema),
    CredentialRequest: toSchema(credentialRequestSchema, 'input'),
    CredentialIssued: toSchema(credentialIssuedSchema),
    CredentialSummary: toSchema(credentialSummarySchema),
    CredentialList: toSchema(credentialListSchema),
    RevisionSummary: toSchema(revisionSummarySchema),
    RevisionList: toSchema(revisionListSchema),
    XdsNodeStatus: toSchema(xdsNodeStatusSchema),
    Status: toSchema(statusResponseSchema),
  };
  const paths: Record<string, JsonObject> = {
    '/healthz': { get: { summary: 'Liveness', security: [], responses: { '200': jsonResponse('OK', { type: 'object', properties: { ok: { type: 'boolean' } } }) } } },
    '/readyz': {
      get: {
        summary: 'Readiness: 200 when this control plane can take writes (scaled out: connected to NATS and not halted), else 503',
        security: [],
        responses: {
          '200': jsonResponse('Ready', { type: 'object', properties: { ready: { type: 'boolean' }, configVersion: { type: 'integer' } } }),
          '503': jsonResponse('Not ready (scaled out: NATS unreachable or the replica halted); reads and ADS still serve the last applied config', { type: 'object', properties: { ready: { type: 'boolean' } } }),
        },
      },
    },
    '/metrics': {
      get: {
        summary: 'Prometheus metrics: config version, Envoy nodes (connected, version sent, NACKs), policy streams, replication, admin answers',
        security: [],
        responses: { '200': { description: 'Prometheus text format 0.0.4', content: { 'text/plain': { schema: { type: 'string' } } } } },
      },
    },
    '/v1/openapi.json': { get: { summary: 'This document', security: [], responses: { '200': jsonResponse('OpenAPI 3.1 document', { type: 'object' }) } } },
  };

  for (const { path, kind, schema } of configCollections) {
    schemas[kind] = toSchema(schema, 'output');
    schemas[`${kind}Input`] = toSchema(schema, 'input');
    const nameParameter = { name: 'name', in: 'path', required: true, schema: { type: 'string' } };
    paths[`/v1/${path}`] = {
      get: {
        summary: `List ${path} (upstream secrets masked)`,
        responses: { '200': jsonResponse('Current objects', { type: 'object', properties: { version: { type: 'integer' }, items: { type: 'array', items: ref(kind) } }, required: ['version', 'items'] }), ...errorResponses('401') },
      },
    };
    paths[`/v1/${path}/{name}`] = {
      parameters: [nameParameter],
      get: { summary: `Get one ${kind}`, responses: { '200': jsonResponse(kind, ref(kind)), ...errorResponses('401', '404') } },
      put: {
        summary: `Create or replace one ${kind} (kind and name default to the route)`,
        requestBody: { required: true, content: { 'application/json': { schema: ref(`${kind}Input`) }, 'application/yaml': { schema: ref(`${kind}Input`) } } },
        responses: { '200': jsonResponse('Committed', ref('ChangeResponse')), ...errorResponses('400', '401', '403', '409', '413', '415', '422', '503') },
      },
      delete: { summary: `Delete one ${kind}`, responses: { '200': jsonResponse('Committed', ref('ChangeResponse')), ...errorResponses('401', '403', '404', '409', '413', '422', '503') } },
    };
  }

  paths['/v1/apply'] = {
    post: {
      summary: 'Apply documents atomically as one new config version',
      description: 'JSON body {documents, prune?, dryRun?}, or application/yaml multi-document text with ?prune=true&dryRun=true. Nothing is applied unless every document and reference is valid.',
      requestBody: { required: true, content: { 'application/json': { schema: ref('ApplyRequest') }, 'application/yaml': { schema: { type: 'string' } } } },
      responses: { '200': jsonResponse('Committed, or what would change when dryRun', ref('ChangeResponse')), ...errorResponses('400', '401', '403', '409', '413', '415', '422', '503') },
    },
  };
  paths['/v1/personas/{name}/credentials'] = {
    parameters: [{ name: 'name', in: 'path', required: true, schema: { type: 'string' } }],
    post: {
      summary: 'Issue an agent credential for this Persona; the token is returned once',
      requestBody: { required: true, content: { 'application/json': { schema: ref('CredentialRequest') } } },
      responses: { '201': jsonResponse('Issued', ref('CredentialIssued')), ...errorResponses('400', '401', '403', '404', '409', '413', '415', '422', '503') },
    },
  };
  paths['/v1/credentials'] = {
    get: {
      summary: 'List agent credentials (never secrets)',
      parameters: [{ name: 'persona', in: 'query', required: false, schema: { type: 'string' } }],
      responses: { '200': jsonResponse('Credentials', ref('CredentialList')), ...errorResponses('401') },
    },
  };
  paths['/v1/credentials/{id}'] = {
    parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
    delete: { summary: 'Revoke a credential', responses: { '200': jsonResponse('Revoked', ref('ChangeResponse')), ...errorResponses('401', '403', '404', '409', '413', '422', '503') } },
  };
  paths['/v1/revisions'] = {
    get: {
      summary: 'Config history, newest first',
      parameters: [{ name: 'limit', in: 'query', required: false, schema: { type: 'integer', minimum: 1, maximum: 1000 } }],
      responses: { '200': jsonResponse('Revisions', ref('RevisionList')), ...errorResponses('401') },
    },
  };
  paths['/v1/status'] = {
    get: { summary: 'Config version and per-Envoy ACK/NACK state', responses: { '200': jsonResponse('Status', ref('Status')), ...errorResponses('401') } },
  };
  paths['/internal/v1/policy'] = {
    get: {
      summary: 'Current PolicySnapshot for ext_proc replicas, secrets resolved',
      security: [{ internalToken: [] }],
      responses: { '200': jsonResponse('PolicySnapshot', { type: 'object' }), ...errorResponses('401') },
    },
  };
  paths['/internal/v1/policy/stream'] = {
    get: {
      summary: 'PolicySnapshot stream: one line now, one per change, {"heartbeat":true} every 15 s',
      security: [{ internalToken: [] }],
      responses: { '200': { description: 'Newline-delimited JSON', content: { 'application/x-ndjson': { schema: { type: 'string' } } } }, ...errorResponses('401') },
    },
  };

  return {
    openapi: '3.1.0',
    info: { title: 'Mandate admin API', version: '1', description: 'Manage Personas, Skills, Upstreams and agent credentials. Errors are RFC 9457 problem documents with a stable `code`.' },
    servers: [{ url: 'http://127.0.0.1:18080' }],
    security: [{ adminToken: [] }],
    paths,
    components: {
      schemas,
      securitySchemes: {
        adminToken: { type: 'http', scheme: 'bearer', description: 'The admin token from <data dir>/admin-token' },
        internalToken: { type: 'http', scheme: 'bearer', description: 'The internal token from <data dir>/internal-token, for ext_proc replicas' },
      },
    },
  };
}

function toSchema(schema: z.ZodType, io: 'input' | 'output' = 'output'): JsonObject {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as JsonObject;
  return rest;
}

function ref(name: string): JsonObject {
  return { $ref: `#/components/schemas/${name}` };
}

function jsonResponse(description: string, schema: JsonObject): JsonObject {
  return { description, content: { 'application/json': { schema } } };
}

const problemDescriptions: Record<string, string> = {
  '400': 'Malformed request (invalid_json, invalid_yaml, invalid_request)',
  '401': 'Missing or wrong bearer token (unauthorized)',
  '403': 'A viewer\'s token tried to change something (forbidden)',
  '404': 'No such object (not_found)',
  '409': 'Still referenced by other config (conflict); scaled out, other replicas kept writing first (config_write_contended)',
  '413': 'Body over 1 MiB (payload_too_large); scaled out, the new revision is over the NATS server\'s max_payload even compressed (config_revision_too_large)',
  '415': 'Content type not accepted (unsupported_media_type)',
  '422': 'Config rejected; `issues` lists each offending field (invalid_config)',
  '503': 'Scaled out: NATS is unreachable, so the write was not committed anywhere (config_replication_unavailable)',
};

function errorResponses(...statuses: string[]): Record<string, JsonObject> {
  return Object.fromEntries(statuses.map((status) => [status, { description: problemDescriptions[status] ?? 'Error', content: { 'application/problem+json': { schema: ref('Problem') } } }]));
}
