// Printable ASCII from a seed, for bodies that cost the engine the most: each is text its automata
// have not met. xorshift32 in 32-bit integers. (A linear congruential generator computed in doubles,
// `(s * 1103515245 + 12345) % 2 ** 31`, loses its low bits and repeats itself every ten thousand
// characters or so: after the first ten kilobytes the automata meet the same text again.)

/** `bytes` characters 0x20-0x7e; the same seed gives the same text. */
export function randomPrintable(bytes: number, seed: number): Buffer {
  let s = seed >>> 0 || 1;
  const out = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = 0x20 + ((s >>> 0) % 0x5f);
  }
  return out;
}

/** The same as a string (latin1: one character per byte). */
export function randomText(bytes: number, seed: number): string {
  return randomPrintable(bytes, seed).toString('latin1');
}
