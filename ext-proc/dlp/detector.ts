// The shape of one built-in detector. Detectors are data: a candidate pattern
// (RE2 syntax), optional context keywords, an optional validator, and a
// confidence model. The engine compiles all of them into the entries of its RE2.Sets.

export const detectorGroups = [
  'financial',
  'health',
  'national-id',
  'tax-id',
  'company-id',
  'contact',
  'network',
  'device',
  'credentials',
  'crypto',
] as const;

export type DetectorGroup = (typeof detectorGroups)[number];

/** Which compliance profiles turn a detector on. */
export const complianceProfiles = ['pci-dss', 'hipaa', 'soc2', 'gdpr-pii', 'secrets'] as const;
export type ComplianceProfile = (typeof complianceProfiles)[number];

export interface ConfidenceModel {
  /** Confidence when the pattern matches (and the validator passes, if any). */
  base: number;
  /** Added when a context keyword is near the match or names the JSON field. */
  contextBoost: number;
  /** Subtracted when a negative keyword (order, invoice, tracking...) is near. */
  negativePenalty: number;
}

/**
 * How much a detector's validator proves beyond the candidate's shape; the catalogue reports it and
 * the evaluation holds 'checksum' detectors to its strictest bar.
 * - checksum: a check digit or checksum over the whole value, so almost every single-character change
 *   is rejected (catalogue.test.ts holds each to 90% of the one-digit changes of its examples).
 * - structure: rules beyond the shape but no whole-value checksum: dates, ranges, registry prefixes,
 *   decoding, entropy, or a check digit over only part of the value.
 * - format: the shape alone (pattern, length, character classes).
 */
export const validationKinds = ['checksum', 'structure', 'format'] as const;
export type ValidationKind = (typeof validationKinds)[number];

/** A validator always says what it proves; a detector without one is checked by its format alone. */
export type DetectorValidation =
  | { validate?: undefined; validation?: 'format' }
  | {
      /** Candidate must pass this. */
      validate: (candidate: string) => boolean;
      validation: ValidationKind;
    };

export type DetectorDefinition = DetectorShape & DetectorValidation;

interface DetectorShape {
  id: string;
  group: DetectorGroup;
  /** What kind of data it is; used in redaction placeholders and flow rules. */
  dataClass: string;
  description: string;
  /** Synthetic examples that the detector reports (checked by the tests). */
  examples: string[];
  /**
   * RE2 pattern for candidates. Absent for keyword-gated detectors that use the
   * shared identifier shape (national identifiers validated by stdnum).
   */
  pattern?: string;
  /** Case-insensitive pattern (only for the detector's own pattern). */
  caseInsensitive?: boolean;
  /** Context words. With requiresContext, a match counts only near one of them. */
  keywords?: string[];
  /**
   * Context words that count only in a field's name, never in running text: abbreviations that are
   * other words far more often ("uid", "run", ".org" of a domain). A field named so is a label; the
   * word in prose is not.
   */
  fieldNameKeywords?: string[];
  requiresContext?: boolean;
  /** How many characters after a keyword a candidate may start (default 48). */
  contextWindow?: number;
  /** Words that lower confidence when near (order numbers, tracking ids...). */
  negativeKeywords?: string[];
  /**
   * If true a failed validation lowers confidence below the default bar instead of discarding
   * (vendor token checksums: see failedChecksumPenalty in scan.ts).
   */
  validationBoostsOnly?: boolean;
  confidence: ConfidenceModel;
  profiles: ComplianceProfile[];
  /** Characters kept visible by "mask" unless the policy says otherwise. */
  maskKeep?: number;
  /** Run this detector on the whole JSON value when its key matches a keyword (e.g. password fields). */
  wholeValueWhenKeyMatches?: boolean;
  /**
   * In running text, the value must be assigned to a name ending in a context word (assignment.ts):
   * `password: x`, `DB_PASSWORD=x`, `--password x`, "the password is x". A code reference or a type name
   * is never the value. `weakLink` checks a value tied by "is"/"was" or by spaces alone ("password x"),
   * which prose and code use for much else ("password string").
   */
  assignment?: { weakLink: (value: string) => boolean };
  /** A match marks the start of a block (PEM key): the whole string value is treated as the secret. */
  wholeBlock?: boolean;
}

export interface DetectorInfo {
  id: string;
  group: DetectorGroup;
  dataClass: string;
  description: string;
  examples: string[];
  validation: ValidationKind;
  requiresContext: boolean;
  keywords: string[];
  fieldNameKeywords: string[];
  confidence: ConfidenceModel;
  profiles: ComplianceProfile[];
}

export const strongConfidence: ConfidenceModel = { base: 0.9, contextBoost: 0.08, negativePenalty: 0.3 };
export const checksumConfidence: ConfidenceModel = { base: 0.8, contextBoost: 0.15, negativePenalty: 0.35 };
export const contextConfidence: ConfidenceModel = { base: 0.75, contextBoost: 0.15, negativePenalty: 0.3 };
export const weakConfidence: ConfidenceModel = { base: 0.5, contextBoost: 0.3, negativePenalty: 0.3 };
