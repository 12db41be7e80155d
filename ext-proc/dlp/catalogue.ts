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
    validation: validationKind(d),
    requiresContext: d.requiresContext ?? false,
    keywords: [...(d.keywords ?? [])],
    confidence: { ...d.confidence },
    profiles: [...d.profiles],
  }));
}

function validationKind(d: DetectorDefinition): DetectorInfo['validation'] {
  if (!d.validate) return 'none';
  return /checksum|luhn|mod-|check digit|check char|verhoeff|crc32|stdnum/i.test(d.description) ? 'checksum' : 'structure';
}
