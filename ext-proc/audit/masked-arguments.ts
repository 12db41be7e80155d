import type { DataFinding } from '../decision/decision.ts';

/**
 * The copy of a call's arguments the audit trail keeps. It must never hold a value data protection
 * flagged, whatever the field is called: every finding's location is resolved to the exact place in
 * the arguments it names (a value, or a field name when the finding is on the name), and a location
 * that does not resolve redacts the whole part it belongs to. Other strings keep their first few
 * characters and their length; very deep or wide structures are cut.
 */

/** Strings up to this length are kept; longer ones keep this many characters and their length. */
export const maskedStringKeep = 8;
const maxMaskDepth = 6;
const maxMaskItems = 32;

/** A finding's location, parsed: the part of the call it is in, the steps below it, and whether it names a field name. */
export interface FindingPlace {
  /** "$" (the inspected value itself), or the part a finding was located under: "query", "headers", "body", "params"... */
  root: string;
  /** Field names and array indexes, in order. An embedded-JSON step ends the path: it points into a string. */
  steps: (string | number)[];
  /** The path goes on inside JSON carried by the string it reaches. */
  intoString: boolean;
  /** The finding is on the last step's field name, not on its value. */
  onKey: boolean;
}

/**
 * Parses a location as the data-protection engine writes it: `$`, or a part name, then `.name`,
 * `["any name"]`, `[3]` and `<json>` steps, then markers such as ` (key)` or ` (base64)`.
 * Returns null for anything else.
 */
export function parseFindingPlace(location: string): FindingPlace | null {
  let i = 0;
  let root: string;
  if (location.charCodeAt(0) === 36 /* $ */) {
    root = '$';
    i = 1;
  } else {
    while (i < location.length && isNameChar(location.charCodeAt(i), i > 0)) i++;
    if (i === 0) return null;
    root = location.slice(0, i);
  }
  const steps: (string | number)[] = [];
  let intoString = false;
  let onKey = false;
  while (i < location.length) {
    const c = location.charCodeAt(i);
    if (intoString && c !== 32) {
      // Steps inside embedded JSON are not followed: the string that holds it is the place.
      i++;
      continue;
    }
    if (c === 46 /* . */) {
      const start = ++i;
      while (i < location.length && isNameChar(location.charCodeAt(i), i > start)) i++;
      if (i === start) return null;
      steps.push(location.slice(start, i));
    } else if (c === 91 /* [ */) {
      if (location.charCodeAt(i + 1) === 34 /* " */) {
        let j = i + 2;
        while (j < location.length && location.charCodeAt(j) !== 34) j += location.charCodeAt(j) === 92 /* \ */ ? 2 : 1;
        if (j >= location.length || location.charCodeAt(j + 1) !== 93 /* ] */) return null;
        let name: unknown;
        try {
          name = JSON.parse(location.slice(i + 1, j + 1));
        } catch {
          return null;
        }
        steps.push(name as string);
        i = j + 2;
      } else {
        const start = ++i;
        while (i < location.length && location.charCodeAt(i) >= 48 && location.charCodeAt(i) <= 57) i++;
        if (i === start || location.charCodeAt(i) !== 93) return null;
        steps.push(Number(location.slice(start, i)));
        i++;
      }
    } else if (location.startsWith('<json>', i)) {
      intoString = true;
      i += 6;
    } else if (c === 32 /* space */) {
      // Markers: " (key)", " (base64)", " (hex)", " (url)"...
      for (const marker of location.slice(i).split(' ')) {
        if (marker === '') continue;
        if (marker.charCodeAt(0) !== 40 || marker.charCodeAt(marker.length - 1) !== 41) return null;
        if (marker === '(key)' && !intoString) onKey = true;
      }
      break;
    } else {
      return null;
    }
  }
  return { root, steps, intoString, onKey };
}

function isNameChar(c: number, notFirst: boolean): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 || c === 36 || c === 45 || (notFirst && c >= 48 && c <= 57);
}

/** Parts of a call that findings may be located under but that the arguments record does not hold (the tool name holds the masked path; "message" is a JSON-RPC message's id, _meta and other members). */
const partsOutsideTheRecord = new Set(['headers', 'path', 'params', 'result', 'error', 'message']);

/** What to redact in one object or array: by field name or index, the value, the field name, or both. */
type Redactions = Map<string | number, { value?: string; key?: string }>;

/**
 * A copy of the arguments safe to store. `value` is the MCP tool arguments, or for a REST call
 * `{ query, body? }`; findings located at `$` are in the arguments (MCP) or the body (REST).
 */
export function maskArguments(value: unknown, findings: readonly DataFinding[] = [], kind: 'mcp' | 'rest' = 'mcp'): unknown {
  const isRestRecord = kind === 'rest' && isPlainObject(value);
  const redactions = new Map<object, Redactions>();
  /** Subtrees whose every string is redacted (a finding on the whole of it, or one that could not be placed in it). */
  const redactedWhole = new Map<object, string>();
  let wholeRecord: string | null = null;

  const redactPart = (part: unknown, type: string, container: object | null, step: string | number | null) => {
    if (part !== null && typeof part === 'object') {
      if (!redactedWhole.has(part)) redactedWhole.set(part, type);
    } else if (container !== null && step !== null) {
      mark(redactions, container, step, 'value', type);
    } else {
      wholeRecord ??= type;
    }
  };

  for (const finding of findings) {
    const type = `${finding.detector}/${finding.group}`;
    const place = parseFindingPlace(finding.location);
    if (place === null) {
      wholeRecord ??= type;
      continue;
    }
    if (partsOutsideTheRecord.has(place.root)) continue;
    // Where the location starts in the record, and which container holds that start (for a primitive part).
    let start: unknown;
    let startContainer: object | null = null;
    let startStep: string | number | null = null;
    if (place.root === '$') {
      if (isRestRecord) {
        start = (value as Record<string, unknown>)['body'];
        startContainer = value as object;
        startStep = 'body';
      } else start = value;
    } else if (isRestRecord && (place.root === 'query' || place.root === 'body')) {
      start = (value as Record<string, unknown>)[place.root];
      startContainer = value as object;
      startStep = place.root;
    } else {
      // "body" of a non-JSON MCP payload, or a part this record does not know: redact all of it.
      wholeRecord ??= type;
      continue;
    }
    let container = startContainer;
    let step: string | number | null = startStep;
    let current = start;
    let placed = true;
    for (let s = 0; s < place.steps.length; s++) {
      const next = place.steps[s]!;
      const isLast = s === place.steps.length - 1;
      if (current === null || typeof current !== 'object') {
        placed = false;
        break;
      }
      if (Array.isArray(current) ? typeof next !== 'number' || next >= current.length : typeof next !== 'string' || !Object.prototype.hasOwnProperty.call(current, next)) {
        placed = false;
        break;
      }
      if (isLast && place.onKey) {
        mark(redactions, current, next, 'key', type);
        current = undefined;
        break;
      }
      container = current;
      step = next;
      current = (current as Record<string | number, unknown>)[next];
    }
    if (!placed) {
      // Fail closed: the part the location starts in is redacted whole.
      redactPart(start, type, startContainer, startStep);
      continue;
    }
    if (current !== undefined) redactPart(current, type, container, step);
  }

  return walk(value, 0, wholeRecord, redactions, redactedWhole);
}

function mark(redactions: Map<object, Redactions>, container: object, step: string | number, what: 'value' | 'key', type: string): void {
  let byStep = redactions.get(container);
  if (byStep === undefined) redactions.set(container, (byStep = new Map()));
  const entry = byStep.get(step) ?? {};
  entry[what] ??= type;
  byStep.set(step, entry);
}

function walk(v: unknown, depth: number, redactAll: string | null, redactions: Map<object, Redactions>, redactedWhole: Map<object, string>): unknown {
  if (v === null || typeof v === 'boolean' || typeof v === 'number') return v;
  if (typeof v === 'string') {
    if (redactAll !== null) return `[redacted:${redactAll}]`;
    return v.length <= maskedStringKeep ? v : `${v.slice(0, maskedStringKeep)}…(${v.length})`;
  }
  if (typeof v !== 'object') return null;
  const all = redactAll ?? redactedWhole.get(v) ?? null;
  if (depth >= maxMaskDepth) return '[truncated]';
  const byStep = redactions.get(v);
  const item = (child: unknown, step: string | number) => {
    const redaction = byStep?.get(step)?.value;
    if (redaction !== undefined && (child === null || typeof child !== 'object')) return `[redacted:${redaction}]`;
    return walk(child, depth + 1, all ?? redaction ?? null, redactions, redactedWhole);
  };
  if (Array.isArray(v)) {
    const out = v.slice(0, maxMaskItems).map((child, i) => item(child, i));
    if (v.length > maxMaskItems) out.push(`[+${v.length - maxMaskItems} more]`);
    return out;
  }
  const entries = Object.entries(v as Record<string, unknown>);
  let redactedKeys = 0;
  // Built from entries: a key "__proto__" stays an own key (assigned, it would set the prototype and vanish from the record).
  const out: [string, unknown][] = entries.slice(0, maxMaskItems).map(([k, child]) => {
    const keyRedaction = all ?? byStep?.get(k)?.key;
    const name = keyRedaction !== undefined && keyRedaction !== null && needsKeyRedaction(k, all) ? `[redacted-key:${keyRedaction}]#${++redactedKeys}` : k;
    return [name, item(child, k)];
  });
  if (entries.length > maxMaskItems) out.push(['…', `[+${entries.length - maxMaskItems} more keys]`]);
  return Object.fromEntries(out);
}

/** Under a whole-part redaction, field names are redacted too unless they are plain words (letters, "_" and "-", up to 32). */
function needsKeyRedaction(key: string, redactAll: string | null): boolean {
  if (redactAll === null || key.length === 0 || key.length > 32) return true;
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    if (!((c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 || c === 45)) return true;
  }
  return false;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}
