// What happens to one body: collect its text (JSON string values, JSON nested
// in strings), scan once, decide an action per finding, apply masks and
// redactions on a copy, and report findings without the values.
import { createHmac } from 'node:crypto';
import type { DataFinding } from '../decision/decision.ts';
import type { DataProtectionAction } from '../../config/data-protection-schema.ts';
import { resolveAction, type CompiledDataProtection, type CompiledDataProtectionOk, type CompiledDetector } from './compile.ts';
import { rawBodyMayMatch, scanSegments, type Match, type TextSegment } from './scan.ts';

export interface InspectContext {
  direction: 'request' | 'response';
  upstream: string;
  tool?: string;
}

/** A keyed hash of one sensitive value, for data-flow tracking. Never the value. */
export interface ValueFingerprint {
  hash: string;
  dataClass: string;
  detector: string;
  group: string;
}

export interface BlockedBy {
  group: string;
  detector: string;
}

export interface InspectResult<T> {
  value: T;
  changed: boolean;
  findings: DataFinding[];
  /** Set when a block action applies and the Persona enforces. */
  blocked: BlockedBy | null;
  /** In monitor mode: what would have been blocked. */
  wouldBlock: BlockedBy | null;
  fingerprints: ValueFingerprint[];
}

/** Stable error for a blocked body; names the group and detector, never the data. */
export const dataBlockedCode = 'sensitive_data_blocked';
export function blockedMessage(blocked: BlockedBy, direction: 'request' | 'response'): string {
  const where = direction === 'request' ? 'the tool arguments' : 'the tool result';
  return `${where} contain ${blocked.group} data (${blocked.detector}) that this Persona may not send; remove it and retry`;
}

type PathPart = string | number;

interface Slot {
  /** Where the string lives: parent container and key, or an embedded-JSON owner. */
  parent: Record<string, unknown> | unknown[] | null;
  key: PathPart | null;
  path: PathNode;
  /** Segment is a property name, not a value. */
  isKey: boolean;
  /** The leaf was a number (rewritten as a string only if changed). */
  numeric: boolean;
  embedded: EmbeddedJson | null;
}

interface PathNode {
  parent: PathNode | null;
  part: PathPart | null;
  /** JSON nested in a string at this node. */
  embedded?: boolean;
  /** This node's path without the leading "$", computed once (many findings share a parent). */
  text?: string;
}

/** A string value that held JSON: its parsed root, serialised back if anything inside changes. */
interface EmbeddedJson {
  holder: { root: unknown };
  slot: Slot;
  dirty: boolean;
}

const emptyResult = <T>(value: T): InspectResult<T> => ({ value, changed: false, findings: [], blocked: null, wouldBlock: null, fingerprints: [] });

const maxEmbeddedDepth = 3;

export function inspectJson<T>(compiled: CompiledDataProtection, value: T, context: InspectContext): InspectResult<T> {
  if (!compiled.ok || !compiled.active) return emptyResult(value);
  const segments: TextSegment[] = [];
  const slots: Slot[] = [];
  const root = { root: value as unknown };
  collect(root.root, { root }, null, { parent: null, part: null }, compiled.policy.scanKeys, segments, slots, 0, null);
  const matches = scanSegments(compiled, segments);
  if (matches.length === 0) return emptyResult(value);
  return applyMatches(compiled, context, matches, segments, slots, root, value);
}

/** For non-JSON bodies: scans and rewrites the whole text as one segment. */
export function inspectText(compiled: CompiledDataProtection, text: string, context: InspectContext): InspectResult<string> {
  if (!compiled.ok || !compiled.active) return emptyResult(text);
  const holder = { root: text as unknown };
  const segments: TextSegment[] = [{ key: '', value: text }];
  const slots: Slot[] = [{ parent: null, key: null, path: { parent: null, part: null }, isKey: false, numeric: false, embedded: null }];
  const matches = scanSegments(compiled, segments);
  if (matches.length === 0) return emptyResult(text);
  const result = applyMatches(compiled, context, matches, segments, slots, holder, text);
  return { ...result, findings: result.findings.map((f) => ({ ...f, location: 'body' })) };
}

/**
 * The data path's entry point for a raw body: one Set pass over the bytes as
 * received decides whether anything can match. Only then is the JSON parsed.
 */
export function inspectBody(compiled: CompiledDataProtection, body: Buffer, context: InspectContext): InspectResult<Buffer> {
  if (!compiled.ok || !compiled.active || !compiled.set) return emptyResult(body);
  let hits = compiled.set.match(body);
  if (hits.length === 0) return emptyResult(body);
  let judged = body;
  if (hits.some((h) => compiled.setEntries[h]?.kind === 'control-escape')) {
    // "\n4111..." in raw bytes: the escape's letter hides the number's word boundary. Judge a copy
    // with those escapes blanked (as they are once decoded), together with the raw hits.
    judged = compiled.controlEscape.replace(body, '  ') as unknown as Buffer;
    hits = [...new Set([...hits, ...compiled.set.match(judged)])];
  }
  if (!rawBodyMayMatch(compiled, judged, hits)) return emptyResult(body);
  const text = body.toString('utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    const r = inspectText(compiled, text, context);
    return { ...r, value: r.changed ? Buffer.from(r.value, 'utf8') : body };
  }
  const r = inspectJson(compiled, parsed, context);
  return { ...r, value: r.changed ? Buffer.from(JSON.stringify(r.value), 'utf8') : body };
}

function structuredCloneIfObject<T>(value: T): T {
  return typeof value === 'object' && value !== null ? structuredClone(value) : value;
}

function collect(
  node: unknown,
  container: { root: unknown } | Record<string, unknown> | unknown[],
  key: PathPart | null,
  path: PathNode,
  scanKeys: boolean,
  segments: TextSegment[],
  slots: Slot[],
  embeddedDepth: number,
  embedded: EmbeddedJson | null,
  fieldName = '',
): void {
  const parent = key === null ? null : (container as Record<string, unknown> | unknown[]);
  if (typeof node === 'string') {
    const slot: Slot = { parent, key, path, isKey: false, numeric: false, embedded };
    const first = node.charCodeAt(0);
    if ((first === 123 || first === 91) && node.length > 1 && embeddedDepth < maxEmbeddedDepth) {
      const nested = tryParse(node);
      if (nested !== undefined && typeof nested === 'object' && nested !== null) {
        const holder = { root: nested };
        const inner: EmbeddedJson = { holder, slot, dirty: false };
        collect(nested, holder, null, { parent: path, part: null, embedded: true }, scanKeys, segments, slots, embeddedDepth + 1, inner, fieldName);
        return;
      }
    }
    segments.push({ key: fieldName, value: node });
    slots.push(slot);
    return;
  }
  if (typeof node === 'number') {
    segments.push({ key: fieldName, value: String(node) });
    slots.push({ parent, key, path, isKey: false, numeric: true, embedded });
    return;
  }
  if (Array.isArray(node)) {
    for (let i = 0; i < node.length; i++) collect(node[i], node, i, { parent: path, part: i }, scanKeys, segments, slots, embeddedDepth, embedded, fieldName);
    return;
  }
  if (typeof node === 'object' && node !== null) {
    const obj = node as Record<string, unknown>;
    for (const k of Object.keys(obj)) {
      const childPath: PathNode = { parent: path, part: k };
      if (scanKeys) {
        segments.push({ key: fieldName, value: k });
        slots.push({ parent: obj, key: k, path: childPath, isKey: true, numeric: false, embedded });
      }
      collect(obj[k], obj, k, childPath, scanKeys, segments, slots, embeddedDepth, embedded, k);
    }
  }
}

function tryParse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

export function jsonPath(node: PathNode): string {
  return '$' + pathText(node);
}

function pathText(n: PathNode | null): string {
  if (n === null) return '';
  if (n.text !== undefined) return n.text;
  const part = n.part === null ? '' : typeof n.part === 'number' ? `[${n.part}]` : /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(n.part) ? `.${n.part}` : `[${JSON.stringify(n.part)}]`;
  n.text = pathText(n.parent) + part + (n.embedded ? '<json>' : '');
  return n.text;
}

function applyMatches<T>(
  compiled: CompiledDataProtectionOk,
  context: InspectContext,
  matches: Match[],
  segments: TextSegment[],
  slots: Slot[],
  root: { root: unknown },
  original: T,
): InspectResult<T> {
  const findings: DataFinding[] = [];
  const fingerprints: ValueFingerprint[] = [];
  let blocked: BlockedBy | null = null;
  const edits = new Map<number, { start: number; end: number; replacement: string }[]>();
  const actions = new Map<CompiledDetector, DataProtectionAction>();
  for (const m of matches) {
    const d = m.detector;
    let action = actions.get(d);
    if (action === undefined) actions.set(d, (action = resolveAction(compiled, d, context.direction, context.upstream, context.tool)));
    const slot = slots[m.segment]!;
    findings.push({
      detector: d.def.id,
      group: d.def.group,
      location: jsonPath(slot.path) + (slot.isKey ? ' (key)' : '') + (m.encoding ? ` (${m.encoding})` : ''),
      confidence: m.confidence,
      action,
      direction: context.direction,
    });
    if (compiled.fingerprintKey) {
      fingerprints.push({ hash: fingerprint(compiled.fingerprintKey, d.def.dataClass, segments[m.segment]!.value.slice(m.start, m.end)), dataClass: d.def.dataClass, detector: d.def.id, group: d.def.group });
    }
    if (action === 'block') {
      blocked ??= { group: d.def.group, detector: d.def.id };
    } else if (action === 'mask' || action === 'redact') {
      const text = segments[m.segment]!.value.slice(m.start, m.end);
      const replacement = action === 'redact' || m.encoding ? `[REDACTED:${d.def.dataClass}]` : mask(text, d.maskKeep, compiled.policy.maskCharacter, d.def.dataClass === 'credential');
      const list = edits.get(m.segment) ?? [];
      list.push({ start: m.start, end: m.end, replacement });
      edits.set(m.segment, list);
    }
  }
  if (compiled.monitor) {
    return { value: original, changed: false, findings, blocked: null, wouldBlock: blocked, fingerprints };
  }
  if (blocked || edits.size === 0) return { value: original, changed: false, findings, blocked, wouldBlock: null, fingerprints };
  // The input is never modified: top-level slots are re-pointed into a clone.
  const clone = { root: structuredCloneIfObject(root.root) };
  const dirtyEmbedded: EmbeddedJson[] = [];
  for (const [segIndex, list] of edits) {
    const value = segments[segIndex]!.value;
    list.sort((a, b) => b.start - a.start);
    let next = value;
    for (const e of list) next = next.slice(0, e.start) + e.replacement + next.slice(e.end);
    writeBack(slots[segIndex]!, next, clone);
    const e = slots[segIndex]!.embedded;
    if (e && !dirtyEmbedded.includes(e)) dirtyEmbedded.push(e);
  }
  // Innermost embedded documents first: serialising one may dirty the one around it.
  dirtyEmbedded.sort((a, b) => depthOf(a) - depthOf(b));
  for (let e: EmbeddedJson | undefined = dirtyEmbedded.pop(); e; e = dirtyEmbedded.pop()) {
    writeBack(e.slot, JSON.stringify(e.holder.root), clone);
    if (e.slot.embedded && !dirtyEmbedded.includes(e.slot.embedded)) dirtyEmbedded.unshift(e.slot.embedded);
  }
  return { value: clone.root as T, changed: true, findings, blocked: null, wouldBlock: null, fingerprints };
}

function depthOf(e: EmbeddedJson): number {
  let n = 0;
  for (let x: EmbeddedJson | null = e; x; x = x.slot.embedded) n++;
  return n;
}

/** Path parts from the slot's document root (the body, or the embedded JSON holding it). */
function partsOf(path: PathNode): PathPart[] {
  const parts: PathPart[] = [];
  for (let n: PathNode | null = path; n !== null && !n.embedded; n = n.parent) if (n.part !== null) parts.push(n.part);
  return parts.reverse();
}

function writeBack(slot: Slot, next: string, clone: { root: unknown }): void {
  if (slot.parent === null) {
    if (slot.embedded) slot.embedded.holder.root = next;
    else clone.root = next;
    return;
  }
  // Embedded documents were parsed by us and may be edited in place; the body itself only through the clone.
  let parent: Record<PathPart, unknown> | unknown[] = slot.parent;
  if (!slot.embedded) {
    const parts = partsOf(slot.path);
    let node = clone.root as Record<PathPart, unknown>;
    for (let i = 0; i < parts.length - 1; i++) node = node[parts[i]!] as Record<PathPart, unknown>;
    parent = node;
  }
  if (slot.isKey && !Array.isArray(parent)) {
    const obj = parent as Record<string, unknown>;
    const entries = Object.entries(obj).map(([k, v]) => [k === slot.key ? next : k, v] as const);
    for (const k of Object.keys(obj)) delete obj[k];
    for (const [k, v] of entries) obj[k] = v;
    return;
  }
  (parent as Record<PathPart, unknown>)[slot.key as PathPart] = next;
}

/**
 * Replaces letters and digits with the mask character, leaving separators and
 * the last `keep` of them (never more than half). Credentials are masked whole.
 */
export function mask(text: string, keep: number, maskCharacter: string, whole = false): string {
  if (whole) return maskCharacter.repeat(Math.max(8, Math.min(text.length, 32)));
  if (/^[\x00-\x7f]*$/.test(text)) return maskAscii(text, keep, maskCharacter);
  const chars = [...text];
  let total = 0;
  const alnum = chars.map((ch) => {
    const a = isLetterOrDigit(ch);
    if (a) total++;
    return a;
  });
  const visible = total > keep * 2 ? keep : 0;
  let seen = 0;
  let out = '';
  for (let i = 0; i < chars.length; i++) {
    if (!alnum[i]) out += chars[i];
    else out += ++seen > total - visible ? chars[i] : maskCharacter;
  }
  return out;
}

/** mask() for ASCII text: one char code pass, no per-character strings. */
function maskAscii(text: string, keep: number, maskCharacter: string): string {
  let total = 0;
  for (let i = 0; i < text.length; i++) if (isAsciiAlnum(text.charCodeAt(i))) total++;
  const visible = total > keep * 2 ? keep : 0;
  let seen = 0;
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    out += !isAsciiAlnum(c) || ++seen > total - visible ? text[i] : maskCharacter;
  }
  return out;
}

function isAsciiAlnum(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
}

const letterOrDigit = /[\p{L}\p{N}]/u;

function isLetterOrDigit(ch: string): boolean {
  const c = ch.charCodeAt(0);
  if (c < 128) return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
  return letterOrDigit.test(ch);
}

export function fingerprint(key: Buffer, dataClass: string, value: string): string {
  const normalised = value.replace(/[\s.\-/()]/g, '').toLowerCase();
  return createHmac('sha256', key).update(dataClass).update('\0').update(normalised).digest('hex').slice(0, 32);
}
