// Compiles a Persona's dataProtection block once per config version: picks the
// active detectors, resolves actions, and builds the Set entries (two RE2.Sets,
// see EntrySets) the engine runs over every body. Bad config comes back as ConfigIssue values.
import RE2 from 're2';
import { schemaIssueCode, type ConfigIssue } from '../../config/bundle.ts';
import { dataProtectionSchema, type DataProtection, type DataProtectionAction, type ExternalDlp } from '../../config/data-protection-schema.ts';
import { builtInDetectors } from './catalogue.ts';
import { flowLimitsOf, type FlowLimits } from './flow.ts';
import { detectorGroups, type DetectorDefinition } from './detector.ts';
import { loosenedForSet, mayMatchLineFeed, requirementOf, type Requirement } from './prefilter.ts';
import { lookAlikeSetSource } from './look-alikes.ts';
import { checkInspectionBudget } from './budget.ts';
import { UnreadablePattern, witnessOf } from './pattern-span.ts';

/** Candidate shape for keyword-gated identifiers without a pattern of their own. */
const identifierShape = '[A-Za-z0-9](?:[A-Za-z0-9]|[ ./-][A-Za-z0-9]){3,26}';

/**
 * Memory budget of each RE2.Set: its program and the states of its automaton, built as texts need
 * them and dropped all at once when the budget is full (RE2 then builds them again). Per compiled
 * config, on every thread that inspects (the event loop, the inspection worker): two Sets. 5 MB of
 * installed docs and sources read once grew the two Sets by about 5 MB; with a 4 MiB budget those texts
 * ran at half the speed (states dropped and rebuilt), with 16 to 256 MiB at the same speed.
 */
export const setMaxMemBytes = 64 * 1024 * 1024;

/**
 * A text longer than this is scanned by the Sets in overlapping pieces of this many bytes (EntrySets),
 * with the inspection budget checked between them. On random text (the Sets meet a new state at almost
 * every byte) inspections over budget stopped 2-66 ms past it (docs/benchmarks.md); on text the Sets
 * know, pieces cost what one pass does, plus the overlap (no difference measured on the clean body).
 */
export const setPieceBytes = 32 * 1024;

/**
 * Groups whose numbers must stand alone: a UUID piece or a version string is
 * not a card or an id. A match joined by "-" or "." to more letters or digits
 * on either side is discarded (see `gluedToToken` in scan.ts).
 */
export const standaloneNumberGroups: ReadonlySet<string> = new Set(['financial', 'national-id', 'tax-id', 'company-id', 'health', 'device']);

/**
 * The Set entry of a standalone-number detector carries the same rule as
 * context, so a look-alike glued into a token (the 12-digit last group of a
 * UUID is Aadhaar-shaped) never makes the Set hit and never costs a second pass.
 * It only narrows the Set: every match the scan would keep still hits.
 */
export function standaloneSetSource(source: string): string {
  return `(?:^|^[-.]|[^-.]|[^A-Za-z0-9][-.])(?:${source})(?:$|[^-.]|[-.]$|[-.][^A-Za-z0-9])`;
}

/**
 * The Set's entries as two RE2.Sets, each one pass over a text. An RE2.Set's automaton is the product
 * of its entries' automata, built state by state as texts need them: on text it has not met, as most
 * traffic is, one Set of all entries spent most of its time building states, and two smaller Sets
 * build far fewer (docs/benchmarks.md, the "first-time" rows). The "words" Set holds the context
 * words of keyword-gated detectors and the patterns that begin with a literal (a vendor prefix such
 * as `ghp_`): both follow words, and a literal start keeps a pattern idle until it appears. The
 * other holds the shapes that can start anywhere (digit groups, e-mail addresses, encoded runs,
 * escapes, look-alike characters). On text the Sets already know, the second pass is a cost of its own.
 */
export class EntrySets {
  readonly #words: InstanceType<typeof RE2.Set> | null;
  readonly #wordEntries: Int32Array;
  readonly #shapes: InstanceType<typeof RE2.Set> | null;
  readonly #shapeEntries: Int32Array;
  /** Bytes of each piece a long text is scanned in; Infinity: in one piece. */
  readonly pieceBytes: number;
  /** Bytes each piece shares with the next: more than any entry's witness (pattern-span.ts) and a byte either side. */
  readonly overlapBytes: number;
  /** Entry i's pattern as the Sets carry it. */
  readonly sources: readonly string[];

  /**
   * `sources[i]` is entry i's pattern; `inWords(i)` says which Set carries it. `witnessBytes` bounds
   * every entry's witness (pattern-span.ts); Infinity (an entry not read) scans every text in one piece.
   */
  constructor(sources: string[], inWords: (entry: number) => boolean, witnessBytes: number, pieceBytes = setPieceBytes) {
    const words: number[] = [];
    const shapes: number[] = [];
    sources.forEach((_, i) => (inWords(i) ? words : shapes).push(i));
    this.#words = words.length > 0 ? new RE2.Set(words.map((i) => sources[i]!), { anchor: 'unanchored', maxMem: setMaxMemBytes }) : null;
    this.#wordEntries = Int32Array.from(words);
    this.#shapes = shapes.length > 0 ? new RE2.Set(shapes.map((i) => sources[i]!), { anchor: 'unanchored', maxMem: setMaxMemBytes }) : null;
    this.#shapeEntries = Int32Array.from(shapes);
    this.sources = sources;
    this.overlapBytes = witnessBytes + 2;
    // Pieces must advance: a piece is longer than the overlap and two searches for a quiet cut (quietCut).
    this.pieceBytes = Number.isFinite(witnessBytes) && pieceBytes >= 4 * this.overlapBytes ? pieceBytes : Infinity;
  }

  /** The entries that match somewhere in the input, ascending. */
  match(input: Buffer | string): number[] {
    // A string would be converted to UTF-8 by each Set (and by each piece): once here instead.
    const bytes = typeof input === 'string' && ((this.#words !== null && this.#shapes !== null) || input.length * 3 > this.pieceBytes) ? Buffer.from(input) : input;
    const hits = this.matchWords(bytes);
    if (this.#shapes === null) return hits;
    const found = this.#pass(this.#shapes, this.#shapeEntries, bytes);
    if (found.length === 0) return hits;
    for (const h of found) hits.push(h);
    return hits.sort((x, y) => x - y);
  }

  /** Only the words Set's entries (keyword entries and literal-led patterns) that match, ascending. */
  matchWords(input: Buffer | string): number[] {
    if (this.#words === null) return [];
    return this.#pass(this.#words, this.#wordEntries, typeof input === 'string' && input.length * 3 > this.pieceBytes ? Buffer.from(input) : input);
  }

  /**
   * One Set's hits as entries, ascending. A text longer than a piece is scanned in overlapping
   * pieces, the clock checked between them (budget.ts): each entry's witness lies whole in some piece,
   * so the union is every entry the whole text would hit (and, at a piece's edges, which read as the
   * text's start or end, perhaps one more: an entry only gates work, so that costs time, never a finding).
   */
  #pass(set: InstanceType<typeof RE2.Set>, entries: Int32Array, input: Buffer | string): number[] {
    checkInspectionBudget();
    if (typeof input === 'string' || input.length <= this.pieceBytes) {
      const found = set.match(input);
      const hits: number[] = new Array(found.length);
      for (let i = 0; i < found.length; i++) hits[i] = entries[found[i]!]!;
      return hits;
    }
    const hit = new Uint8Array(entries.length);
    const reach = Math.min(cutSearchBytes, this.pieceBytes >> 3);
    for (let start = 0; ; ) {
      const end = start + this.pieceBytes >= input.length ? input.length : quietCut(input, start + this.pieceBytes, reach);
      for (const h of set.match(input.subarray(start, end))) hit[h] = 1;
      if (end === input.length) break;
      checkInspectionBudget();
      start = quietCut(input, end - this.overlapBytes, reach);
    }
    const hits: number[] = [];
    for (let i = 0; i < hit.length; i++) if (hit[i] === 1) hits.push(entries[i]!);
    return hits;
  }
}

/** How far back from a piece's nominal edge a quiet place to cut it is looked for (quietCut). */
const cutSearchBytes = 4096;

/**
 * Where to cut a long text for the Sets, at or before `at` and at most `reach` bytes before it: right
 * after a line feed, else after a space, else after a comma, else at `at`. A piece's edges read as the
 * text's start and end (`^`, `$`, `\b`); after such a byte the entries read them as they read that
 * byte (all their anchors stand beside a "not a letter or digit" alternative, and a field name's `$`
 * beside a line feed), so a piece's edge rarely hits an entry the whole text does not.
 */
function quietCut(text: Buffer, at: number, reach: number): number {
  const from = at - reach;
  const window = text.subarray(from, at);
  for (const byte of [0x0a, 0x20, 0x2c]) {
    const i = window.lastIndexOf(byte);
    if (i >= 0) return from + i + 1;
  }
  return at;
}

/**
 * A gate as the Set carries it: cut to a prefix whose matches are bounded (pattern-span.ts: every
 * match of the gate starts with one, so it still gates what the gate did, and the Sets can scan a long
 * text in overlapping pieces), then, for a detector's pattern, loosened for the automaton
 * (loosenedForSet). `witnessBytes` is the widest match of the cut gate; Infinity if it was not read.
 */
export function setEntrySource(gate: string, loosen: boolean): { source: string; witnessBytes: number } {
  let witness = { source: gate, bytes: Infinity };
  try {
    witness = witnessOf(gate);
  } catch (error) {
    if (!(error instanceof UnreadablePattern)) throw error;
  }
  return { source: loosen ? loosenedForSet(witness.source) : witness.source, witnessBytes: witness.bytes };
}

/** The Set source starts with three literal characters (after an optional `(?i)`, `\b` and group opening). */
function startsWithLiteral(source: string): boolean {
  return /^(?:\(\?i\))?(?:\\b)?(?:\(\?:)?(?:[A-Za-z0-9_]|\\[.\-\/]){3}/.test(source);
}

/** A JSON escape \b \f \n \r \t whose letter is glued to a following letter or digit (the Set's control-escape entry). */
const gluedControlEscapeSource = '\\\\[bfnrt][A-Za-z0-9_]';

/** Any of those escapes (or a backslash and one of those letters). */
const controlEscapeSource = '\\\\[bfnrt]';

/**
 * Fewest characters of a base64 run that is decoded: 9 bytes, the shortest identifiers detected
 * without a context word (a UK NINO, a Spanish DNI); an SSN with dashes is 15 characters, a card
 * of 13 digits 18. A run is one stretch of this many characters without "/", "-" or "_" (a path
 * or a dashed identifier is no base64 of text: text encodes to those only for ">", "?", "~" or
 * non-ASCII bytes), then the rest of the run in either alphabet (standard or URL-safe).
 */
const base64Shortest = 12;
/** Fewest bytes of a hex run that is decoded (two hex digits a byte): the same 9. */
const hexShortest = 9;

/**
 * The decoders' entries. `run` finds the runs to decode once the Set says one may be there;
 * `set` is the Set's entry. For base64 it is narrower, so that ordinary text does not send a body
 * through that pass: the stretch holds a capital, first or at its base64Shortest-th character or
 * later. Base64 of a value with digits, capitals, spaces or punctuation has capitals all along (a
 * printable ASCII byte below "h" starts its 4 characters with one of I-Z), while long lowercase
 * words, lowercase hex (hashes, UUIDs) and digit runs (timestamps, ids) have none. (A capital
 * anywhere in the stretch would be exact, but the Set's automaton would then follow where each
 * capital was: several times slower over identifier-heavy text.) Hex runs that are no text (a
 * hash, a long number) and base64 words decode to bytes that are not mostly printable and are
 * dropped (see `decode` in scan.ts). URL escapes: 6 in a row; shorter escaped values are read by
 * the look-alike pass (look-alikes.ts).
 */
const encodedRuns: { decoder: 'base64' | 'hex' | 'url'; run: string; set: string }[] = [
  {
    decoder: 'base64',
    run: `[A-Za-z0-9+]{${base64Shortest},}[A-Za-z0-9+/_-]*={0,2}`,
    set: `(?:^|[^A-Za-z0-9+])[A-Z][A-Za-z0-9+]{${base64Shortest - 1}}|[A-Za-z0-9+]{${base64Shortest - 1}}[A-Z]`,
  },
  { decoder: 'hex', run: `\\b(?:[0-9a-fA-F]{2}){${hexShortest},}\\b`, set: `\\b(?:[0-9a-fA-F]{2}){${hexShortest},}\\b` },
  { decoder: 'url', run: '(?:%[0-9A-Fa-f]{2}[^%\\s"]{0,2}){6,}', set: '(?:%[0-9A-Fa-f]{2}[^%\\s"]{0,2}){6,}' },
];

export interface CompiledDetector {
  def: DetectorDefinition;
  /** Global regex for candidate positions (run only when the Set says it hit). */
  shape: RE2;
  /** Global case-insensitive regex for context words; null when the detector has none. */
  keyword: RE2 | null;
  /**
   * The context words as keywordSpanPattern finds them in running text: a match does not take the
   * character after the word, so two words one separator apart are both found (the caller checks that
   * the word ends there). Null when the detector has none.
   */
  keywordSpan: RE2 | null;
  keywordsLower: string[];
  negativesLower: string[];
  requiresContext: boolean;
  /** The shape has no ^ or $ anchor, so it matches the same inside a longer text as on its own. */
  anchorFree: boolean;
  contextWindow: number;
  minConfidence: number;
  maskKeep: number;
  /** Fixed action from a per-detector override, else resolved by rules. */
  overrideAction: DataProtectionAction | null;
  /** What every match of the shape contains: values without it are not scanned (see prefilter.ts). */
  need: Requirement;
  /** No match of the shape contains a line feed and the shape has no ^ or $: it can run over lines of values. */
  lineFree: boolean;
  /** Whether the context-word pattern matches a field name, per name seen. */
  keyCache: Map<string, boolean>;
  /** Context and negative words in "fieldname " (a match at the start of its value), per name seen. */
  contextCache: Map<string, number>;
}

export type SetEntry =
  | { kind: 'pattern'; detector: number }
  | { kind: 'keyword'; detector: number }
  | { kind: 'decoder'; decoder: 'base64' | 'hex' | 'url'; regex: RE2; need: Requirement; lineFree: boolean }
  | { kind: 'escape' }
  | { kind: 'line-continuation' }
  | { kind: 'control-escape' }
  | { kind: 'look-alike' };

interface CompiledRule {
  groups: Set<string> | null;
  detectors: Set<string> | null;
  direction: 'request' | 'response' | 'both';
  upstreams: Set<string> | null;
  tools: Set<string> | null;
  action: DataProtectionAction;
}

export interface CompiledDataProtectionOk {
  ok: true;
  /** False when the Persona has no dataProtection block: nothing is scanned. */
  active: boolean;
  /** Monitor mode: findings say what would have happened; nothing is changed or blocked. */
  monitor: boolean;
  policy: DataProtection;
  detectors: CompiledDetector[];
  set: EntrySets | null;
  setEntries: SetEntry[];
  /** Tests raw bytes for a \b \f \n \r \t escape (see `setPass` in inspect.ts). */
  controlEscape: RE2;
  /** Alternations of hit line-free patterns, by Set hits (see `locate` in scan.ts); null when RE2 refused one. */
  locators: Map<string, RE2 | null>;
  rules: CompiledRule[];
  external: ExternalDlp[];
  fingerprintKey: Buffer | null;
  /** The data-flow bounds of `policy.flow`, in the tracker's terms. */
  flowLimits: FlowLimits;
}

export type CompiledDataProtection = CompiledDataProtectionOk | { ok: false; issues: ConfigIssue[] };

export interface CompileOptions {
  /** Persona mode is "monitor". */
  monitor?: boolean;
  /** Secret key for data-flow fingerprints; without it no fingerprints are produced. */
  fingerprintKey?: Buffer;
  /** Path of the dataProtection block inside the submitted document, prefixed to issue paths. */
  basePath?: (string | number)[];
  /** Bytes of the pieces long texts are scanned in (setPieceBytes); tests make them small. */
  setPieceBytes?: number;
}

const knownIds = new Map(builtInDetectors.map((d) => [d.id, d]));
const knownGroups = new Set<string>(detectorGroups);

export function compileDataProtection(policy: DataProtection | undefined, options: CompileOptions = {}): CompiledDataProtection {
  const base = options.basePath ?? [];
  if (policy === undefined) {
    const defaults = dataProtectionSchema.parse({});
    return {
      ok: true, active: false, monitor: options.monitor ?? false, policy: defaults, detectors: [], set: null,
      setEntries: [], controlEscape: new RE2(controlEscapeSource), locators: new Map(), rules: [], external: [], fingerprintKey: options.fingerprintKey ?? null,
      flowLimits: flowLimitsOf(defaults.flow),
    };
  }
  const parsed = dataProtectionSchema.safeParse(policy);
  if (!parsed.success) {
    return { ok: false, issues: parsed.error.issues.map((i) => ({ path: [...base, ...i.path.map((p) => (typeof p === 'symbol' ? String(p) : p))], code: schemaIssueCode(i, 'invalid_data_protection'), message: i.message })) };
  }
  const p = parsed.data;
  const issues: ConfigIssue[] = [];
  p.detectors.forEach((o, i) => {
    if (!knownIds.has(o.id)) issues.push({ path: [...base, 'detectors', i, 'id'], code: 'unknown_detector', message: `no built-in detector "${o.id}" (see \`mandate dlp catalogue\`)` });
  });
  p.rules.forEach((r, i) => {
    r.detectors?.forEach((id, j) => {
      if (!knownIds.has(id)) issues.push({ path: [...base, 'rules', i, 'detectors', j], code: 'unknown_detector', message: `no built-in detector "${id}"` });
    });
    r.groups?.forEach((g, j) => {
      if (!knownGroups.has(g)) issues.push({ path: [...base, 'rules', i, 'groups', j], code: 'unknown_detector_group', message: `no detector group "${g}"; groups are ${[...knownGroups].join(', ')}` });
    });
  });
  if (issues.length > 0) return { ok: false, issues };

  const overrides = new Map(p.detectors.map((o) => [o.id, o]));
  const selected = selectDetectors(p);
  const detectors: CompiledDetector[] = selected.map((def) => {
    const o = overrides.get(def.id);
    const keywords = def.keywords ?? [];
    const allKeywords = [...keywords, ...(def.fieldNameKeywords ?? [])];
    const shapeSource = def.pattern ?? `\\b${identifierShape}\\b`;
    const anchorFree = !/[\^$]/.test((def.pattern ?? '').replace(/\[\^/g, '['));
    return {
      def,
      shape: new RE2(shapeSource, def.caseInsensitive ? 'gi' : 'g'),
      // Field names and the Set take every context word; running text only `keywords`.
      keyword: allKeywords.length > 0 ? new RE2(detectorKeywordPattern(def), 'gi') : null,
      keywordSpan: keywords.length > 0 ? new RE2(keywordSpanPattern(keywords), 'gi') : null,
      keywordsLower: allKeywords.map((k) => k.toLowerCase()),
      negativesLower: (def.negativeKeywords ?? []).map((k) => k.toLowerCase()),
      requiresContext: def.requiresContext ?? false,
      anchorFree,
      contextWindow: def.contextWindow ?? 48,
      minConfidence: o?.minConfidence ?? p.minConfidence,
      maskKeep: o?.maskKeep ?? def.maskKeep ?? 0,
      overrideAction: o?.action ?? null,
      need: requirementOf(shapeSource, def.caseInsensitive ?? false),
      lineFree: anchorFree && !mayMatchLineFeed(shapeSource, def.caseInsensitive ?? false),
      keyCache: new Map(),
      contextCache: new Map(),
    };
  });

  const setEntries: SetEntry[] = [];
  const sources: string[] = [];
  let witnessBytes = 0;
  const addSource = (gate: string, loosen: boolean) => {
    const entry = setEntrySource(gate, loosen);
    sources.push(entry.source);
    witnessBytes = Math.max(witnessBytes, entry.witnessBytes);
  };
  detectors.forEach((d, index) => {
    if (d.requiresContext) {
      if (!d.keyword) return;
      setEntries.push({ kind: 'keyword', detector: index });
      addSource(detectorSetKeywordSource(d.def), false);
    } else {
      setEntries.push({ kind: 'pattern', detector: index });
      // Loosened (see loosenedForSet): a hit only gates the detector's own pattern.
      const gate = standaloneNumberGroups.has(d.def.group) ? standaloneSetSource(d.shape.source) : d.shape.source;
      addSource(d.def.caseInsensitive ? `(?i)${gate}` : gate, true);
    }
  });
  if (p.decodeEncoded) {
    for (const d of encodedRuns) {
      setEntries.push({ kind: 'decoder', decoder: d.decoder, regex: new RE2(d.run, 'g'), need: requirementOf(d.run), lineFree: !/[\^$]/.test(d.run) && !mayMatchLineFeed(d.run) });
      addSource(d.set, false);
    }
  }
  setEntries.push({ kind: 'escape' });
  // JSON escapes (\u0034, \/, JSON5's \x34, \v, \0 and line continuations) could hide a value from the
  // raw-bytes pass: their presence forces the parsed path, or the escape reading of a text
  // (json-escapes.ts escapeAt reads the same escapes; \b \f \n \r \t are the control escapes below).
  addSource('\\\\(?:u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2}|[/v0]|\\x{2028}|\\x{2029})', false);
  // A backslash before a line break (JSON5's line continuation): the same, in a text. Its own entry,
  // because the Set pass over a JSON body's copy with control characters in place (setPass in
  // inspect.ts) makes one of every "\n" escape, where it means nothing.
  setEntries.push({ kind: 'line-continuation' });
  addSource('\\\\[\\r\\n]', false);
  // In raw bytes the letter of \n, \t... glues to a following letter or digit, so a \b-anchored
  // pattern right after it would not hit; its presence makes the Set run over a copy with the
  // control characters in place (see setPass in inspect.ts), or over the decoded values.
  setEntries.push({ kind: 'control-escape' });
  addSource(gluedControlEscapeSource, false);
  // Characters that stand in for ASCII ones and hide a value from patterns written for ASCII (a card
  // typed with zero-width marks, full-width or Arabic-Indic digits): their presence makes the scan
  // read the values in their ASCII reading (see look-alikes.ts and scanTable in scan.ts).
  setEntries.push({ kind: 'look-alike' });
  addSource(lookAlikeSetSource, false);

  return {
    ok: true,
    active: true,
    monitor: options.monitor ?? false,
    policy: p,
    detectors,
    set: new EntrySets(sources, (i) => setEntries[i]!.kind === 'keyword' || (setEntries[i]!.kind === 'pattern' && startsWithLiteral(sources[i]!)), witnessBytes, options.setPieceBytes),
    setEntries,
    controlEscape: new RE2(controlEscapeSource),
    locators: new Map(),
    rules: p.rules.map((r) => ({
      groups: r.groups ? new Set(r.groups) : null,
      detectors: r.detectors ? new Set(r.detectors) : null,
      direction: r.direction,
      upstreams: r.upstreams ? new Set(r.upstreams) : null,
      tools: r.tools ? new Set(r.tools) : null,
      action: r.action,
    })),
    external: p.external,
    fingerprintKey: options.fingerprintKey ?? null,
    flowLimits: flowLimitsOf(p.flow),
  };
}

/**
 * Which detectors run. Without a profile, all of them: rules and overrides then only set actions, so
 * tuning one detector (its maskKeep, its action) or adding a rule never switches the others off. With
 * profiles, those profiles' detectors plus any a rule (`groups`/`detectors`) or an override names.
 * `enabled: false` always wins.
 */
function selectDetectors(p: DataProtection): DetectorDefinition[] {
  const disabled = new Set(p.detectors.filter((o) => !o.enabled).map((o) => o.id));
  if (p.profiles.length === 0) return builtInDetectors.filter((d) => !disabled.has(d.id));
  const ids = new Set<string>(p.detectors.filter((o) => o.enabled).map((o) => o.id));
  const groups = new Set<string>();
  for (const r of p.rules) {
    r.detectors?.forEach((id) => ids.add(id));
    r.groups?.forEach((g) => groups.add(g));
  }
  const profiles = new Set<string>(p.profiles);
  return builtInDetectors.filter((d) => !disabled.has(d.id) && (ids.has(d.id) || groups.has(d.group) || d.profiles.some((x) => profiles.has(x))));
}

/** Keywords match when not glued to other letters or digits (so "customer_ssn" matches "ssn", "lesson" does not). */
export function keywordPattern(keywords: string[], digitsMayFollow = false): string {
  return `(?:^|[^A-Za-z0-9])(?:${keywordAlternatives(keywords)})(?:${digitsMayFollow ? '[^A-Za-z]' : '[^A-Za-z0-9]'}|$)`;
}

/** The keyword pattern of a detector, as a field's name is tested: a credential's name may end in a version number (`PASSWORD2`, see assignment.ts). */
export function detectorKeywordPattern(def: DetectorDefinition): string {
  return keywordPattern([...(def.keywords ?? []), ...(def.fieldNameKeywords ?? [])], def.assignment !== undefined);
}

/**
 * The Set entry of a keyword-gated detector (multi-line: the Set also runs over field names, one a
 * line). Its context words anywhere; its field-name words only where they end a line (a field name
 * alone) or are followed by what ends a name in a body (`"uid":`, `uid=`, `uid: `), so prose and URLs
 * with those words (".org/", "run the tests") leave the Set pass clean.
 *
 * It matches wherever the detector's own keyword patterns do (they find the words; the Set only says
 * which detectors to ask), with a word's start written for the automaton (setWordStart).
 */
export function detectorSetKeywordSource(def: DetectorDefinition): string {
  const textEnd = def.assignment !== undefined ? '[^A-Za-z]' : '[^A-Za-z0-9]';
  const text = (def.keywords ?? []).length > 0 ? setWordStart(def.keywords!, `(?:${textEnd}|$)`) : null;
  const names = def.fieldNameKeywords ?? [];
  const asName = names.length > 0 ? setWordStart(names, `(?:["']?[ \t]{0,16}[:=]|$)`) : null;
  return `(?im)${[text, asName].filter((p) => p !== null).join('|')}`;
}

/**
 * Words that start where no letter or digit comes before them, as the Set carries them. The keyword
 * patterns say so with `(?:^|[^A-Za-z0-9])`, one character taken before the word; in a Set of some
 * 200 keyword entries that made the automaton on text it had not met 4 times as slow as `(?:\b|_)`,
 * which accepts the same places for a word that starts with an ASCII letter or digit (before it: the
 * start, a character that is not a word character, or "_"). Under (?i) a "k" is also the Kelvin sign
 * and an "s" the long s, which are not word characters for \b: those spellings are alternatives of
 * their own, taken anywhere. A word that starts with another character is taken anywhere.
 */
function setWordStart(keywords: string[], end: string): string {
  const bounded = keywords.filter((k) => /^[A-Za-z0-9]/.test(k));
  const anywhere = keywords.filter((k) => !/^[A-Za-z0-9]/.test(k));
  const folded = bounded.flatMap((k) => {
    const first = k[0]!.toLowerCase();
    return first === 'k' ? ['\u212a' + k.slice(1)] : first === 's' ? ['\u017f' + k.slice(1)] : [];
  });
  const parts: string[] = [];
  if (bounded.length > 0) parts.push(`(?:\\b|_)(?:${keywordAlternatives(bounded)})${end}`);
  if (anywhere.length + folded.length > 0) parts.push(`(?:${keywordAlternatives([...anywhere, ...folded])})${end}`);
  return parts.join('|');
}

/**
 * keywordPattern without its last character: the caller checks that no letter or digit follows. The
 * longest words come first, so "cardholder" is not taken for "card" followed by a letter.
 */
export function keywordSpanPattern(keywords: string[]): string {
  return `(?:^|[^A-Za-z0-9])(?:${keywordAlternatives([...keywords].sort((a, b) => b.length - a.length))})`;
}

function keywordAlternatives(keywords: string[]): string {
  return keywords.map((k) => k.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/ /g, '[ _-]?')).join('|');
}

export function resolveAction(
  compiled: CompiledDataProtectionOk,
  detector: CompiledDetector,
  direction: 'request' | 'response',
  upstream: string,
  tool: string | undefined,
): DataProtectionAction {
  if (detector.overrideAction) return detector.overrideAction;
  for (const r of compiled.rules) {
    if (r.direction !== 'both' && r.direction !== direction) continue;
    if (r.upstreams && !r.upstreams.has(upstream)) continue;
    if (r.tools && (tool === undefined || !r.tools.has(tool))) continue;
    const bySelector = (r.detectors?.has(detector.def.id) ?? false) || (r.groups?.has(detector.def.group) ?? false);
    if ((r.detectors || r.groups) && !bySelector) continue;
    return r.action;
  }
  return compiled.policy.defaultAction;
}
