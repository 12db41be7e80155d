// The built-in detector catalogue: every detector with its metadata.
import type { DetectorDefinition, DetectorInfo } from './detector.ts';
import { financialDetectors } from './detectors/financial.ts';
import { healthDetectors } from './detectors/health.ts';
import { nationalDetectors } from './detectors/national.ts';
import { personalDetectors } from './detectors/personal.ts';
import { secretDetectors } from './detectors/secrets.ts';

export const builtInDetectors: readonly DetectorDefinition[] = [
  ...financialDetectors,
  ...healthDetectors,
  ...personalDetectors,
  ...secretDetectors,
  ...nationalDetectors,
];

export function listDetectors(): DetectorInfo[] {
  return builtInDetectors.map((d) => ({
    id: d.id,
    group: d.group,
    dataClass: d.dataClass,
    description: d.description,
    examples: [...d.examples],
    validation: d.validation ?? 'format',
    requiresContext: d.requiresContext ?? false,
    keywords: [...(d.keywords ?? [])],
    fieldNameKeywords: [...(d.fieldNameKeywords ?? [])],
    confidence: { ...d.confidence },
    profiles: [...d.profiles],
  }));
}

export type DetectorFilter = { group?: string | null; profile?: string | null };

/**
 * The catalogue narrowed to one detector group and/or one compliance profile (the catalogue API's
 * ?group= and ?profile=, the CLI's --group and --profile). An unknown name is an error that lists
 * the known ones.
 */
export function selectDetectors(filter: DetectorFilter): { ok: true; detectors: DetectorInfo[] } | { ok: false; message: string } {
  const all = listDetectors();
  const known = {
    group: [...new Set(all.map((d) => d.group as string))].sort(),
    profile: [...new Set(all.flatMap((d) => d.profiles as string[]))].sort(),
  };
  for (const name of ['group', 'profile'] as const) {
    const value = filter[name];
    if (value !== null && value !== undefined && !known[name].includes(value)) return { ok: false, message: `unknown ${name} "${value}"; one of: ${known[name].join(', ')}` };
  }
  const { group, profile } = filter;
  return { ok: true, detectors: all.filter((d) => (group == null || d.group === group) && (profile == null || (d.profiles as string[]).includes(profile))) };
}
