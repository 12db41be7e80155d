// Compiles a PolicySnapshot once per config version into the form the data path
// evaluates. A snapshot that does not compile is rejected whole; the previous
// compiled policy stays in force.
import { type AgentCredentialRecord, type ConfigIssue, type PolicySnapshot, type UpstreamCredentialHeader } from '../../config/bundle.ts';
import type { Persona, Upstream } from '../../config/schema.ts';
import { compileGrants, type CompiledUpstreamGrants } from '../authorization/compile-grants.ts';

export interface CompiledPersona {
  persona: Persona;
  grants: Map<string, CompiledUpstreamGrants>;
}

export interface CompiledPolicy {
  version: number;
  personas: Map<string, CompiledPersona>;
  upstreams: Map<string, Upstream>;
  credentials: Map<string, AgentCredentialRecord>;
  upstreamCredentials: Record<string, UpstreamCredentialHeader>;
}

export function compilePolicy(snapshot: PolicySnapshot): { ok: true; policy: CompiledPolicy } | { ok: false; issues: ConfigIssue[] } {
  const issues: ConfigIssue[] = [];
  const personas = new Map<string, CompiledPersona>();
  const skillIndex = new Map(snapshot.bundle.skills.map((s, i) => [s.name, i]));
  snapshot.bundle.personas.forEach((persona, personaIndex) => {
    const own = persona.grants.map((grant, i) => ({ grant, path: ['personas', personaIndex, 'grants', i] as (string | number)[] }));
    const fromSkills = persona.skills.flatMap((skillName) => {
      const index = skillIndex.get(skillName);
      const skill = index === undefined ? undefined : snapshot.bundle.skills[index];
      return (skill?.grants ?? []).map((grant, i) => ({ grant, path: ['skills', index ?? -1, 'grants', i] as (string | number)[] }));
    });
    const compiled = compileGrants([...own, ...fromSkills]);
    issues.push(...compiled.issues);
    personas.set(persona.name, { persona, grants: compiled.byUpstream });
  });
  if (issues.length > 0) return { ok: false, issues };
  return {
    ok: true,
    policy: {
      version: snapshot.version,
      personas,
      upstreams: new Map(snapshot.bundle.upstreams.map((u) => [u.name, u])),
      credentials: new Map(snapshot.credentials.map((c) => [c.id, c])),
      upstreamCredentials: snapshot.upstreamCredentials,
    },
  };
}
