// Compiles a PolicySnapshot once per config version into the form the data path
// evaluates. A snapshot that does not compile is rejected whole; the previous
// compiled policy stays in force.
import { type AgentCredentialRecord, type ConfigIssue, type PolicySnapshot, type UpstreamCredentialHeader } from '../../config/bundle.ts';
import type { Persona, Upstream } from '../../config/schema.ts';
import { compileGrants, type CompiledUpstreamGrants } from '../authorization/compile-grants.ts';
import { compileDataProtection, type CompiledDataProtectionOk } from '../dlp/compile.ts';
import { compileBehaviour, type CompiledBehaviour } from '../sequence/compile.ts';

export interface CompiledPersona {
  persona: Persona;
  grants: Map<string, CompiledUpstreamGrants>;
  /** Sensitive-data protection; `active` is false when the Persona has no dataProtection block. */
  dataProtection: CompiledDataProtectionOk;
  /** Behaviour rules and guardrails; also the tool classifier every stage uses (even when `active` is false). */
  behaviour: CompiledBehaviour;
}

export interface CompiledPolicy {
  version: number;
  /** Who made this version and what changed, as the control plane recorded it. */
  revision: { actor: string; summary: string } | null;
  personas: Map<string, CompiledPersona>;
  upstreams: Map<string, Upstream>;
  /** Per upstream, the agent request headers it lists in `forwardHeaders` (the protocol ones always pass). */
  forwardedHeaders: Map<string, ReadonlySet<string>>;
  credentials: Map<string, AgentCredentialRecord>;
  upstreamCredentials: Record<string, UpstreamCredentialHeader>;
}

export interface CompilePolicyOptions {
  /**
   * Key for data-flow fingerprints (keyed SHA3-256). It must outlive config versions, so
   * that a value read under one version is recognised under the next: the
   * service creates it once per process.
   */
  fingerprintKey?: Buffer;
  /**
   * Compiled Personas of the previous version, by the source they were compiled from.
   * Compiling data protection builds a large RE2.Set; a version that only issues a
   * credential or edits one Persona must not recompile (and stall the data path for) the rest.
   * Updated in place to hold exactly this version's Personas.
   */
  personaCache?: Map<string, CompiledPersona>;
}

export function compilePolicy(snapshot: PolicySnapshot, options: CompilePolicyOptions = {}): { ok: true; policy: CompiledPolicy } | { ok: false; issues: ConfigIssue[] } {
  const issues: ConfigIssue[] = [];
  const personas = new Map<string, CompiledPersona>();
  const skillIndex = new Map(snapshot.bundle.skills.map((s, i) => [s.name, i]));
  const upstreamsSource = JSON.stringify(snapshot.bundle.upstreams);
  const dataProtectionByConfig = new Map<string, CompiledPersona['dataProtection']>();
  for (const cached of options.personaCache?.values() ?? []) {
    dataProtectionByConfig.set(JSON.stringify([cached.persona.dataProtection ?? null, cached.persona.mode === 'monitor']), cached.dataProtection);
  }
  const reused = new Map<string, CompiledPersona>();
  snapshot.bundle.personas.forEach((persona, personaIndex) => {
    const base = ['personas', personaIndex];
    const skillsSource = persona.skills.map((name) => snapshot.bundle.skills[skillIndex.get(name) ?? -1] ?? null);
    const source = JSON.stringify([persona, skillsSource, upstreamsSource]);
    const cached = options.personaCache?.get(source);
    if (cached) {
      personas.set(persona.name, cached);
      reused.set(source, cached);
      return;
    }
    const own = persona.grants.map((grant, i) => ({ grant, path: [...base, 'grants', i] as (string | number)[] }));
    const fromSkills = persona.skills.flatMap((skillName) => {
      const index = skillIndex.get(skillName);
      const skill = index === undefined ? undefined : snapshot.bundle.skills[index];
      return (skill?.grants ?? []).map((grant, i) => ({ grant, path: ['skills', index ?? -1, 'grants', i] as (string | number)[] }));
    });
    const compiled = compileGrants([...own, ...fromSkills]);
    issues.push(...compiled.issues);

    // Personas with the same data protection (a shared compliance profile) share one compiled engine.
    const dataProtectionSource = JSON.stringify([persona.dataProtection ?? null, persona.mode === 'monitor']);
    const dataProtection =
      dataProtectionByConfig.get(dataProtectionSource) ??
      compileDataProtection(persona.dataProtection, {
        monitor: persona.mode === 'monitor',
        // Fingerprints serve only data-flow control: without it, findings cost no hash.
        ...(options.fingerprintKey && persona.dataProtection?.flow?.enabled ? { fingerprintKey: options.fingerprintKey } : {}),
        basePath: [...base, 'dataProtection'],
      });
    if (!dataProtection.ok) issues.push(...dataProtection.issues);
    else dataProtectionByConfig.set(dataProtectionSource, dataProtection);
    const behaviour = compileBehaviour(persona, snapshot.bundle.upstreams);
    // compileBehaviour reports paths from the Persona ("behaviour", ...).
    if (!behaviour.ok) issues.push(...behaviour.issues.map((issue) => ({ ...issue, path: [...base, ...issue.path] })));
    if (dataProtection.ok && behaviour.ok) {
      const compiledPersona = { persona, grants: compiled.byUpstream, dataProtection, behaviour: behaviour.compiled };
      personas.set(persona.name, compiledPersona);
      reused.set(source, compiledPersona);
    }
  });
  if (issues.length > 0) return { ok: false, issues };
  if (options.personaCache) {
    options.personaCache.clear();
    for (const [source, compiledPersona] of reused) options.personaCache.set(source, compiledPersona);
  }
  return {
    ok: true,
    policy: {
      version: snapshot.version,
      revision: snapshot.revision ?? null,
      personas,
      upstreams: new Map(snapshot.bundle.upstreams.map((u) => [u.name, u])),
      forwardedHeaders: new Map(snapshot.bundle.upstreams.map((u) => [u.name, new Set(u.forwardHeaders)])),
      credentials: new Map(snapshot.credentials.map((c) => [c.id, c])),
      upstreamCredentials: snapshot.upstreamCredentials,
    },
  };
}
