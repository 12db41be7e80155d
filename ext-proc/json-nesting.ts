// How deeply a JSON text nests, checked on its bytes before anything parses it.
// Agents' bodies are refused past a fixed depth (docs/errors.md, json_too_deep): the
// decision, audit and data-protection stages then never walk a pathological value.

/** The deepest nesting of objects and arrays any agent's JSON body may have. */
export const maxJsonNestingDepth = 128;

/** True if the JSON text (UTF-8 bytes) opens more than `max` objects or arrays inside one another. Strings are skipped. */
export function jsonNestingExceeds(body: Uint8Array, max: number = maxJsonNestingDepth): boolean {
  let depth = 0;
  const n = body.length;
  for (let i = 0; i < n; i++) {
    const c = body[i]!;
    if (c === 34 /* " */) {
      // Skip the string, escapes included.
      for (i++; i < n; i++) {
        const s = body[i]!;
        if (s === 92 /* \ */) i++;
        else if (s === 34) break;
      }
    } else if (c === 123 /* { */ || c === 91 /* [ */) {
      if (++depth > max) return true;
    } else if (c === 125 /* } */ || c === 93 /* ] */) {
      depth--;
    }
  }
  return false;
}
