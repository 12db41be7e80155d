// Bytes of a file for tests of binary bodies and files inside JSON: noise that holds no string (no 8
// printable bytes in a row: a NUL every fifth byte), and an image made of it.

/** `n` bytes of noise from a seed, a NUL every fifth byte. */
export function noiseBytes(n: number, seed: number): Buffer {
  return Buffer.from(Array.from({ length: n }, (_, i) => (i % 5 === 0 ? 0 : ((i * 7919 + seed * 104729) % 251) ^ 0x80)));
}

/** `size` bytes of an image: a PNG signature, noise, and `inside` (latin1) at the middle. */
export function imageBytes(size: number, inside = ''): Buffer {
  const half = Math.floor((size - inside.length) / 2);
  return Buffer.concat([Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex'), noiseBytes(half - 16, 1), Buffer.from(inside, 'latin1'), noiseBytes(size - half - inside.length, 2)]);
}
