// How far a match of a pattern can reach, read from its text: what lets the RE2.Set pass run over a
// large body in overlapping pieces (compile.ts, EntrySets) and find every entry it would find in one
// pass. A Set entry only gates work (a detector's own pattern, a decoder, a slower reading), so what
// it must never miss is a *witness*: a stretch of at most `witnessBytes` bytes that it matches wherever
// the thing it gates is in the text. For a pattern whose matches are bounded, a whole match is the
// witness. For one with an unbounded repetition (`[A-Za-z0-9]{20,}`, `(?:\.x+)*`), the Set carries
// the pattern cut before that repetition's extra counts (`boundedPrefix`): every match of the whole
// pattern begins with a match of the cut one, so the cut one still gates it, and its matches are
// bounded. Pieces that overlap by more than every entry's witness (and a byte either side for a `\b`
// or a character taken before a word) then hold each witness whole, and the Set hits there.
//
// The reading is conservative: byte lengths assume the widest UTF-8 a construct can match; a
// construct it does not know makes it throw, and the caller then scans in one piece.

import { countedRepetition, patternPieces, type PatternPiece } from './prefilter.ts';

type SpanNode =
  | { kind: 'sequence'; items: SpanNode[] }
  | { kind: 'alternation'; options: SpanNode[] }
  | { kind: 'group'; open: string; body: SpanNode }
  | { kind: 'repeat'; body: SpanNode; min: number; max: number; text: string }
  | { kind: 'atom'; text: string; bytes: number }
  | { kind: 'zero-width'; text: string };

export class UnreadablePattern extends Error {}

/** The widest match of the pattern in UTF-8 bytes; Infinity when a repetition is unbounded. */
export function longestMatchBytes(source: string): number {
  return widest(parse(source));
}

/**
 * The pattern cut before the extra counts of its first unbounded repetition, and everything after
 * it: `\bglpat-[A-Za-z0-9_-]{20,}\b` -> `\bglpat-[A-Za-z0-9_-]{20}`; a repetition that may be empty
 * is dropped. A bounded pattern is returned as it is. Every text the pattern matches starts with a
 * text the result matches.
 */
export function boundedPrefix(source: string): string {
  return witnessOf(source).source;
}

/** The bounded prefix of a pattern (boundedPrefix) and its widest match in bytes, read once. */
export function witnessOf(source: string): { source: string; bytes: number } {
  const tree = parse(source);
  const bytes = widest(tree);
  if (Number.isFinite(bytes)) return { source, bytes };
  const prefix = cut(tree).node;
  return { source: render(prefix), bytes: widest(prefix) };
}

function parse(source: string): SpanNode {
  const pieces = patternPieces(source);
  let i = 0;
  let caseless = false;

  function alternation(): SpanNode {
    const options = [sequence()];
    while (i < pieces.length && isPlain(pieces[i]!, '|')) {
      i++;
      options.push(sequence());
    }
    return options.length === 1 ? options[0]! : { kind: 'alternation', options };
  }

  function sequence(): SpanNode {
    const items: SpanNode[] = [];
    while (i < pieces.length && !isPlain(pieces[i]!, '|') && !isPlain(pieces[i]!, ')')) items.push(quantified(atom()));
    return { kind: 'sequence', items };
  }

  function quantified(node: SpanNode): SpanNode {
    const q = pieces[i];
    if (q === undefined || q.escape || q.inClass) return node;
    let min: number;
    let max: number;
    let text: string;
    if (q.text === '*' || q.text === '+' || q.text === '?') {
      i++;
      [min, max] = q.text === '*' ? [0, Infinity] : q.text === '+' ? [1, Infinity] : [0, 1];
      text = q.text;
    } else if (q.text === '{') {
      const counted = countedRepetition(source, q.start);
      if (counted === null) throw new UnreadablePattern(`a "{" that is no repetition at ${q.start}`);
      ({ min, max, text } = counted);
      const end = q.start + text.length;
      while (i < pieces.length && pieces[i]!.start < end) i++;
    } else {
      return node;
    }
    if (i < pieces.length && isPlain(pieces[i]!, '?')) {
      text += '?';
      i++;
    }
    return quantified({ kind: 'repeat', body: node, min, max, text });
  }

  function atom(): SpanNode {
    const p = pieces[i]!;
    if (p.inClass) return characterClass();
    if (!p.escape && p.text === '(') return group();
    i++;
    if (p.escape) {
      if (/^\\[bBAz]$/.test(p.text)) return { kind: 'zero-width', text: p.text };
      if (p.text === '\\Q' || p.text === '\\C' || /^\\[1-9]$/.test(p.text)) throw new UnreadablePattern(`${p.text} is not read here`);
      const hex = /^\\x\{([0-9A-Fa-f]+)\}$/.exec(p.text);
      if (hex !== null) return { kind: 'atom', text: p.text, bytes: utf8Width(parseInt(hex[1]!, 16), caseless) };
      if (p.text === '\\x') {
        // \x41: its two digits are pieces of their own
        const digits = pieces.slice(i, i + 2).map((d) => d.text).join('');
        if (!/^[0-9A-Fa-f]{2}$/.test(digits)) throw new UnreadablePattern(`a \\x escape at ${p.start}`);
        i += 2;
        return { kind: 'atom', text: `\\x${digits}`, bytes: utf8Width(parseInt(digits, 16), caseless) };
      }
      // \d \s \w and escaped ASCII punctuation are ASCII; \D \S \W \p{..} \P{..} may be any character.
      const ascii = /^\\[dsw]$/.test(p.text) || /^\\[^A-Za-z0-9]$/.test(p.text) || /^\\[ftnrv]$/.test(p.text);
      return { kind: 'atom', text: p.text, bytes: ascii ? (caseless && /^\\w$/.test(p.text) ? 3 : 1) : 4 };
    }
    if (p.text === '^' || p.text === '$') return { kind: 'zero-width', text: p.text };
    if (p.text === '.') return { kind: 'atom', text: p.text, bytes: 4 };
    if (p.text === '*' || p.text === '+' || p.text === '?' || p.text === '{' || p.text === ')' || p.text === '|') {
      throw new UnreadablePattern(`"${p.text}" where an atom was expected at ${p.start}`);
    }
    return { kind: 'atom', text: p.text, bytes: utf8Width(p.text.codePointAt(0)!, caseless) };
  }

  function characterClass(): SpanNode {
    const start = i;
    let bytes = 1;
    i++; // [
    let negated = false;
    if (i < pieces.length && pieces[i]!.text === '^' && pieces[i]!.start === pieces[start]!.start + 1) {
      negated = true;
      i++;
    }
    let first = true;
    for (; i < pieces.length; i++) {
      const p = pieces[i]!;
      if (!p.escape && p.text === ']' && !first) break;
      first = false;
      if (p.escape) {
        const hex = /^\\x\{([0-9A-Fa-f]+)\}$/.exec(p.text);
        if (hex !== null) bytes = Math.max(bytes, utf8Width(parseInt(hex[1]!, 16), caseless));
        else if (!/^\\[dsw]$/.test(p.text) && !/^\\[^A-Za-z0-9]$/.test(p.text) && !/^\\[ftnrv]$/.test(p.text)) bytes = 4;
      } else {
        if (p.text === '[' && pieces[i + 1]?.text === ':') throw new UnreadablePattern(`a named class at ${p.start}`);
        bytes = Math.max(bytes, utf8Width(p.text.codePointAt(0)!, caseless));
      }
    }
    if (i >= pieces.length) throw new UnreadablePattern('an unclosed character class');
    i++; // ]
    const text = pieces
      .slice(start, i)
      .map((p) => p.text)
      .join('');
    return { kind: 'atom', text, bytes: negated ? 4 : bytes };
  }

  function group(): SpanNode {
    const opened = pieces[i]!.start;
    i++;
    const saved = caseless;
    let open = '(?:';
    if (i < pieces.length && isPlain(pieces[i]!, '?')) {
      i++;
      if (i < pieces.length && isPlain(pieces[i]!, 'P') && pieces[i + 1] !== undefined && isPlain(pieces[i + 1]!, '<')) {
        // (?P<name>...): a group like any other here
        const close = source.indexOf('>', pieces[i]!.start);
        if (close < 0) throw new UnreadablePattern(`an unclosed group name at ${opened}`);
        while (i < pieces.length && pieces[i]!.start <= close) i++;
      } else {
        let flags = '';
        while (i < pieces.length && !isPlain(pieces[i]!, ':') && !isPlain(pieces[i]!, ')')) flags += pieces[i++]!.text;
        if (!/^[imsU]*(?:-[imsU]*)?$/.test(flags) || i >= pieces.length) throw new UnreadablePattern(`the group at ${opened}`);
        const [on = '', off = ''] = flags.split('-');
        if (on.includes('i')) caseless = true;
        if (off.includes('i')) caseless = false;
        if (isPlain(pieces[i]!, ')')) {
          // (?flags): they hold to the end of the enclosing group, which restores its own on closing.
          i++;
          return { kind: 'zero-width', text: `(?${flags})` };
        }
        i++; // :
        open = `(?${flags}:`;
      }
    }
    const body = alternation();
    if (i >= pieces.length || !isPlain(pieces[i]!, ')')) throw new UnreadablePattern(`an unclosed group at ${opened}`);
    i++;
    caseless = saved;
    return { kind: 'group', open, body };
  }

  const tree = alternation();
  if (i !== pieces.length) throw new UnreadablePattern(`an unmatched ")" at ${pieces[i]!.start}`);
  return tree;
}

function isPlain(p: PatternPiece, text: string): boolean {
  return p.text === text && !p.escape && !p.inClass;
}

/** UTF-8 bytes of a code point; a caseless ASCII letter may also be matched by a wider one (K by U+212A, s by U+017F). */
function utf8Width(code: number, caseless: boolean): number {
  const own = code < 0x80 ? 1 : code < 0x800 ? 2 : code < 0x10000 ? 3 : 4;
  return caseless && ((code >= 65 && code <= 90) || (code >= 97 && code <= 122)) ? Math.max(own, 3) : own;
}

function widest(node: SpanNode): number {
  switch (node.kind) {
    case 'sequence':
      return node.items.reduce((sum, item) => sum + widest(item), 0);
    case 'alternation':
      return Math.max(...node.options.map(widest));
    case 'group':
      return widest(node.body);
    case 'repeat': {
      const each = widest(node.body);
      return each === 0 ? 0 : node.max === Infinity ? Infinity : each * node.max;
    }
    case 'atom':
      return node.bytes;
    case 'zero-width':
      return 0;
  }
}

/** A prefix of the node's matches with bounded reach; `whole` when nothing was cut away. */
function cut(node: SpanNode): { node: SpanNode; whole: boolean } {
  if (Number.isFinite(widest(node))) return { node, whole: true };
  switch (node.kind) {
    case 'sequence': {
      const items: SpanNode[] = [];
      for (const item of node.items) {
        const c = cut(item);
        items.push(c.node);
        if (!c.whole) return { node: { kind: 'sequence', items }, whole: false };
      }
      return { node: { kind: 'sequence', items }, whole: true };
    }
    case 'alternation':
      return { node: { kind: 'alternation', options: node.options.map((o) => cut(o).node) }, whole: false };
    case 'group': {
      const c = cut(node.body);
      return { node: { ...node, body: c.node }, whole: c.whole };
    }
    case 'repeat': {
      const body = cut(node.body);
      if (!body.whole) {
        // The first round is cut: the prefix is that first round's prefix (if it must happen at all).
        return { node: node.min === 0 ? { kind: 'sequence', items: [] } : { kind: 'group', open: '(?:', body: body.node }, whole: false };
      }
      if (node.min === 0) return { node: { kind: 'sequence', items: [] }, whole: false };
      return { node: { kind: 'repeat', body: node.body, min: node.min, max: node.min, text: `{${node.min}}` }, whole: false };
    }
    default:
      return { node, whole: true };
  }
}

function render(node: SpanNode): string {
  switch (node.kind) {
    case 'sequence':
      return node.items.map(render).join('');
    case 'alternation':
      return node.options.map(render).join('|');
    case 'group':
      return `${node.open}${render(node.body)})`;
    case 'repeat': {
      const body = render(node.body);
      return `${node.body.kind === 'atom' || node.body.kind === 'group' ? body : `(?:${body})`}${node.text}`;
    }
    case 'atom':
    case 'zero-width':
      return node.text;
  }
}
