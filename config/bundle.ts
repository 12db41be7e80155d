// A config bundle is the whole set of documents at one version. Cross-document
// references are checked here, so nothing half-valid is ever stored or pushed.
import { z } from 'zod';
import {
  personaPathPrefix,
  personaSchema,
  skillSchema,
  upstreamSchema,
  type Persona,
  type Skill,
  type Upstream,
} from './schema.ts';

export const configBundleSchema = z
  .object({
    upstreams: z.array(upstreamSchema).default([]),
    skills: z.array(skillSchema).default([]),
    personas: z.array(personaSchema).default([]),
  })
  .strict();

export type ConfigBundle = z.infer<typeof configBundleSchema>;

/** One problem in submitted config, with the path of the offending field. */
export interface ConfigIssue {
  path: (string | number)[];
  code: string;
  message: string;
}

/** A schema issue's stable code: the one a check names in its params (`params.code`), else `fallback`. */
export function schemaIssueCode(issue: { code: string; params?: unknown }, fallback: string = issue.code): string {
  const named = (issue.params as { code?: unknown } | undefined)?.code;
  return typeof named === 'string' ? named : fallback;
}

/** An agent credential as the data path sees it: never the secret, only its hash. */
export interface AgentCredentialRecord {
  id: string;
  agent: string;
  persona: string;
  /** hex SHA-256 of the secret part of the token */
  secretHash: string;
  createdAt: string;
  expiresAt: string | null;
}

/** The header the data path injects towards an upstream, already resolved from its secret. */
export interface UpstreamCredentialHeader {
  header: string;
  value: string;
}

/**
 * Everything the data path needs at one config version. The control plane builds
 * it from the store; ext_proc compiles it once and evaluates requests against it.
 */
export interface PolicySnapshot {
  version: number;
  createdAt: string;
  /** Who made this version and what changed; the data path records it in the audit chain. */
  revision?: { actor: string; summary: string };
  bundle: ConfigBundle;
  credentials: AgentCredentialRecord[];
  upstreamCredentials: Record<string, UpstreamCredentialHeader>;
}

export function validateBundleReferences(bundle: ConfigBundle): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const upstreams = new Map<string, Upstream>();
  const skills = new Map<string, Skill>();
  checkUnique(bundle.upstreams, 'upstreams', issues).forEach((u) => upstreams.set(u.name, u));
  checkUnique(bundle.skills, 'skills', issues).forEach((s) => skills.set(s.name, s));
  checkUnique(bundle.personas, 'personas', issues);

  const checkGrants = (grants: Persona['grants'], base: (string | number)[]) => {
    grants.forEach((grant, index) => {
      const upstream = upstreams.get(grant.upstream);
      if (!upstream) {
        issues.push({ path: [...base, index, 'upstream'], code: 'unknown_upstream', message: `no upstream named "${grant.upstream}"` });
        return;
      }
      if (upstream.protocol === 'mcp' && grant.operations.length > 0) {
        issues.push({ path: [...base, index, 'operations'], code: 'protocol_mismatch', message: `upstream "${upstream.name}" is an MCP server: grant tools, not REST operations` });
      }
      if (upstream.protocol === 'rest' && grant.tools.length > 0) {
        issues.push({ path: [...base, index, 'tools'], code: 'protocol_mismatch', message: `upstream "${upstream.name}" is a REST API: grant operations, not tools` });
      }
      if (grant.tools.length === 0 && grant.operations.length === 0) {
        issues.push({ path: [...base, index], code: 'empty_grant', message: 'a grant must name at least one tool or operation' });
      }
    });
  };

  bundle.skills.forEach((skill, index) => checkGrants(skill.grants, ['skills', index, 'grants']));
  const prefixes = new Map<string, string>();
  bundle.personas.forEach((persona, index) => {
    persona.skills.forEach((skillName, skillIndex) => {
      if (!skills.has(skillName)) {
        issues.push({ path: ['personas', index, 'skills', skillIndex], code: 'unknown_skill', message: `no skill named "${skillName}"` });
      }
    });
    checkGrants(persona.grants, ['personas', index, 'grants']);
    const prefix = personaPathPrefix(persona);
    const clash = [...prefixes.entries()].find(([other]) => other === prefix || other.startsWith(`${prefix}/`) || prefix.startsWith(`${other}/`));
    if (clash) {
      issues.push({ path: ['personas', index, 'endpoint', 'pathPrefix'], code: 'endpoint_conflict', message: `endpoint ${prefix} overlaps the endpoint ${clash[0]} of persona "${clash[1]}"` });
    }
    prefixes.set(prefix, persona.name);
  });
  return issues;
}

/** The grants a Persona holds: its own and those of its Skills, in that order. */
export function effectiveGrants(persona: Persona, bundle: ConfigBundle): Persona['grants'] {
  const skills = new Map(bundle.skills.map((s) => [s.name, s]));
  return [...persona.grants, ...persona.skills.flatMap((name) => skills.get(name)?.grants ?? [])];
}

function checkUnique<T extends { name: string }>(items: T[], field: string, issues: ConfigIssue[]): T[] {
  const seen = new Set<string>();
  return items.filter((item, index) => {
    if (seen.has(item.name)) {
      issues.push({ path: [field, index, 'name'], code: 'duplicate_name', message: `"${item.name}" is defined twice` });
      return false;
    }
    seen.add(item.name);
    return true;
  });
}
